/*
 * backup.h - backups of a data directory's LMDB environments, and restoring
 * them on a stopped appliance (backup.c), in one file format (backup_file.c).
 *
 * A backup holds each environment of the data directory (datadir.h) that
 * exists: DIR/index (the storage engine's), DIR/registry, DIR/users and
 * DIR/audit. Each is a compacted copy taken in one LMDB read transaction,
 * so it is consistent while nvrd writes; the copies are taken one after
 * the other (each environment is consistent in itself; they are not one
 * snapshot together, which none of them needs).
 *
 * File format, version 1 (integers little-endian):
 *
 *   offset  size  header (BKP_HEADER_SIZE = 1024 bytes)
 *        0     8  magic "NVRBKP\r\n" (the CR LF reveals a text-mode copy)
 *        8     4  version (1)
 *       12     4  number of environments N (1..BKP_MAX_ENTRIES)
 *       16     8  creation time, Unix microseconds
 *       24     8  header size (1024)
 *       32  8x96  entries; entry i (i < N), at 32 + 96 i:
 *                   0 16  name, NUL-padded ([a-z0-9_-], 1-15 bytes)
 *                  16  8  offset of its section in the file
 *                  24  8  bytes of the section (compressed)
 *                  32  8  bytes of the environment (data.mdb, raw)
 *                  40 32  SHA-256 of the raw bytes
 *                  72 24  zero
 *                 unused entries are zero
 *      800   192  zero
 *      992    32  SHA-256 of header bytes 0..991
 *   1024          sections, back to back in entry order: each one zstd
 *                 frame (with zstd's content checksum) of a data.mdb
 *
 * The file ends where the last section ends. A reader checks the header's
 * hash, that the sections tile the file exactly, and each section's size
 * and SHA-256 after decompressing it; anything else is refused.
 *
 * Writing: a temporary file beside the destination (NAME.tmp.PID), the
 * header zeroed, then each section streamed (LMDB's copier writes into a
 * pipe, a thread of ours compresses what comes out), then the header, an
 * fsync, a rename to NAME and an fsync of the directory. A crash leaves
 * the previous NAME or the new one, never half of one.
 *
 * Errors: 0 or a negative errno, logged (comp=backup) with what failed;
 * -EBADMSG for a file that is not a sound backup (bad magic, header hash,
 * layout, truncation, decompression or checksum failure).
 */
#ifndef NVR_BACKUP_H
#define NVR_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datadir.h"
#include "storage.h"

#define BKP_MAGIC "NVRBKP\r\n"
#define BKP_VERSION 1
#define BKP_HEADER_SIZE 1024
#define BKP_MAX_ENTRIES 8
#define BKP_NAME_MAX 16
#define BKP_SHA256_BYTES 32
#define BKP_DEFAULT_LEVEL 3

struct bkp_entry {
	char name[BKP_NAME_MAX];       /* NUL-terminated */
	uint64_t offset;               /* of the section in the file */
	uint64_t zsize;                /* compressed bytes */
	uint64_t size;                 /* raw bytes */
	uint8_t sha256[BKP_SHA256_BYTES];
};

struct bkp_info {
	int64_t created_us;
	uint32_t count;
	struct bkp_entry e[BKP_MAX_ENTRIES];
	uint64_t file_size;
};

/* ---- The file (backup_file.c) ------------------------------------------ */

struct bkp_writer;

/* Starts a backup file to be renamed to `path` by bkp_writer_finish;
 * `level` is zstd's compression level (1-19). */
int bkp_writer_open(const char *path, int level, struct bkp_writer **out);

/* Writes a section's raw bytes into `fd` (the write end of a pipe, closed
 * when it returns); runs in a thread of its own. Returns 0 or an error. */
typedef int (*bkp_source_fn)(void *user, int fd);

/* Adds section `name`: runs `source` and compresses what it writes. */
int bkp_writer_add(struct bkp_writer *w, const char *name, bkp_source_fn source, void *user);

/* Sections added so far. */
uint32_t bkp_writer_count(const struct bkp_writer *w);

/* Writes the header, syncs and renames into place; fills `info` (may be
 * NULL) and frees the writer, whatever the outcome. */
int bkp_writer_finish(struct bkp_writer *w, struct bkp_info *info);

/* Removes the temporary file and frees the writer (NULL is ignored). */
void bkp_writer_abort(struct bkp_writer *w);

/* Reads and checks the header of the backup open on `fd`. */
int bkp_read_header(int fd, struct bkp_info *info);

/* Decompresses entry `e` of the backup on `fd` into `out_fd` (-1: only
 * check it), verifying its size and SHA-256. */
int bkp_extract(int fd, const struct bkp_entry *e, int out_fd);

/* ---- Data directories (backup.c) --------------------------------------- */

/* Backs up every environment of `d` that exists into `path` (works while
 * nvrd runs on it). */
int bkp_backup(const struct datadir *d, const char *path, int level, struct bkp_info *info);

struct bkp_restore_report {
	struct bkp_info info;          /* what the backup held */
	bool rebuilt;                  /* the index was rebuilt from the volumes */
	struct stg_fsck_report fsck;   /* that rebuild's figures */
};

/* Restores the backup in `path` into `d`, whose lock the caller holds
 * (datadir_lock: nvrd is stopped). Every section is decompressed into
 * DIR/.restore and checked before anything is replaced; each environment
 * replaced is kept as DIR/NAME.before-restore until the end. Then, when
 * the backup held an index and `d` has volumes, the index is rebuilt from
 * them (stg_fsck with rebuild, the engine's default gap) so that what was
 * recorded after the backup is indexed again,
 * with the classes and holds of the backup. On failure everything is put
 * back as it was; on success the *.before-restore copies are removed.
 * Lines of the rebuild's report go to `report`. */
int bkp_restore(struct datadir *d, const char *path, stg_report_fn report, void *user,
                struct bkp_restore_report *out);

#endif
