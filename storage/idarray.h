/*
 * idarray.h - per-camera records in an array sorted by camera id
 * (idarray.c). A record type must start with its `uint32_t id`.
 */
#ifndef STORAGE_IDARRAY_H
#define STORAGE_IDARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The record of camera id in *items (*n records of `size` bytes, room
 * for *cap), or with create a new zeroed one holding id, inserted in order
 * (the array grows as needed; *created says so and may be NULL); NULL when
 * absent or out of memory. A pointer is valid until the next insertion. */
void *idarray_get(void **items, uint32_t *n, uint32_t *cap, size_t size, uint32_t id,
                  bool create, bool *created);

#endif
