/*
 * idarray.c - an array of per-camera records kept sorted by camera id:
 * binary search, and insertion in place of a zeroed record (idarray.h).
 *
 * Why: the retention state and the footage counts each keep a record per
 * camera and look one up for every chunk indexed or removed; a sorted
 * array is compact (tens of thousands of cameras) and needs no hashing.
 * Insertions are rare (a camera's first chunk), so moving the tail is fine.
 */
#include "idarray.h"

#include <stdlib.h>
#include <string.h>

/* The record of `id` at base + i * size; records start with their id. */
static uint32_t id_at(const void *base, size_t size, uint32_t i)
{
	uint32_t id;
	memcpy(&id, (const char *)base + (size_t)i * size, sizeof id);
	return id;
}

void *idarray_get(void **items, uint32_t *n, uint32_t *cap, size_t size, uint32_t id,
                  bool create, bool *created)
{
	uint32_t lo = 0, hi = *n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (id_at(*items, size, mid) < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (created)
		*created = false;
	if (lo < *n && id_at(*items, size, lo) == id)
		return (char *)*items + (size_t)lo * size;
	if (!create)
		return NULL;
	char *at = *items ? (char *)*items + (size_t)lo * size : NULL;   /* none yet: grown below */
	if (*n == *cap) {
		uint32_t grown = *cap ? *cap * 2 : 256;
		void *p = realloc(*items, (size_t)grown * size);
		if (!p)
			return NULL;
		*items = p;
		*cap = grown;
		at = (char *)p + (size_t)lo * size;
	}
	memmove(at + size, at, (size_t)(*n - lo) * size);
	memset(at, 0, size);
	memcpy(at, &id, sizeof id);
	(*n)++;
	if (created)
		*created = true;
	return at;
}
