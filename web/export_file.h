/*
 * export_file.h - an exported MP4 file written once, front to back, with
 * its SHA-256 computed from the bytes as they are written (export_file.c).
 *
 * Use: export_file_new() once, then for each file export_file_open(), hand
 * it to the muxer as its output (export_file_write is a mux_write_fn),
 * export_file_finish() for the length and the hash once every byte is
 * written (it also starts the file's fdatasync), export_file_close();
 * export_file_settle() before anything names the files as kept; last
 * export_file_free(). The writer never seeks: what
 * it is given is the file, in order. Errors are negative errno values (a mux_write_fn's
 * negative AVERROR is -errno too); the first one sticks.
 */
#ifndef WEB_EXPORT_FILE_H
#define WEB_EXPORT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct export_file;

/* A writer: its buffers and its io_uring, for one file after another. */
int export_file_new(struct export_file **out);

/* Creates (or truncates) the file at path and starts its hash (a file
 * still open is closed first). tag names the file in a failed sync
 * (export_file_settle). 0 or a negative errno. */
int export_file_open(struct export_file *f, const char *path, uint64_t tag);

/* Appends size bytes (a mux_write_fn): size, or a negative errno. */
int export_file_write(void *opaque, const uint8_t *buf, int size);

/* Writes what is left and gives the file's length and SHA-256 (64 hex
 * digits). Every write is complete and the file's fdatasync is on its way;
 * the file is durable once export_file_settle() returns 0. 0 or a
 * negative errno. */
int export_file_finish(struct export_file *f, char sha256_hex[65], uint64_t *bytes);

/* Waits until every file finished since the last settle is durable (their
 * syncs ran while later files were written). 0, or the first failed
 * sync's negative errno with that file's tag in *failed_tag. */
int export_file_settle(struct export_file *f, uint64_t *failed_tag);

/* Closes the file (after finish, or instead of it on error). */
void export_file_close(struct export_file *f);

/* Closes and frees. NULL is fine. */
void export_file_free(struct export_file *f);

#endif
