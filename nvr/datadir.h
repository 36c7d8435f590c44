/*
 * datadir.h - the layout of a recorder's data directory, shared by the
 * daemon and the admin tools so both find things in the same places:
 *
 *   DIR/nvrd.lock    flock()ed by the daemon: one daemon per directory
 *   DIR/index/       the storage engine's LMDB index
 *   DIR/registry/    the camera registry (registry.h)
 *   DIR/users/       API users and tokens (users.h)
 *   DIR/audit/       the hash-chained audit trail (audit.h)
 *   DIR/vol0 ...     volumes (storage rings), formatted on first use
 *
 * Paths are canonical (realpath): the index identifies volumes by the path
 * they were attached with, so they must not depend on the working directory.
 */
#ifndef NVR_DATADIR_H
#define NVR_DATADIR_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage.h"

#define DATADIR_MAX_VOLUMES 64

struct datadir {
	char path[PATH_MAX];
	char index[PATH_MAX + 16];
	char registry[PATH_MAX + 16];
	char users[PATH_MAX + 16];
	char audit[PATH_MAX + 16];
	int volume_count;
	char vol_path[DATADIR_MAX_VOLUMES][PATH_MAX + 16];
	const char *vols[DATADIR_MAX_VOLUMES];   /* points into vol_path */
	int lock_fd;                             /* -1 unless locked */
};

/* Creates DIR when `create`, canonicalises it and names its parts.
 * volumes > 0: DIR/vol0 .. vol{volumes-1}; volumes == 0: every DIR/volN
 * that exists (N from 0 up, until the first missing one). Returns 0 or a
 * negative errno (logged with the path). */
int datadir_init(struct datadir *d, const char *dir, int volumes, bool create);

/* Uses the n directories of `paths` as the volumes instead of DIR/volN
 * (each created if missing and canonicalised). Returns 0 or a negative
 * errno (logged with the path). */
int datadir_set_volumes(struct datadir *d, const char *const *paths, int n);

/* Takes the daemon's exclusive lock; -EWOULDBLOCK if another process holds
 * it (logged with a hint). */
int datadir_lock(struct datadir *d);

/* Formats each volume directory that holds no volume yet, with segments
 * planned for `volume_size` bytes (volume_plan.h). A directory with files
 * but no volume is never formatted: STG_EEXIST, logged with a hint. */
int datadir_prepare_volumes(struct datadir *d, uint64_t volume_size);

/* The same for volume i alone, of `volume_size` bytes. */
int datadir_prepare_volume(struct datadir *d, int i, uint64_t volume_size);

/* Opens the storage engine on the index and volumes; `base` may carry
 * tuning (its index_dir/volumes are replaced). */
int datadir_open_storage(struct datadir *d, const struct stg_config *base,
                         struct stg **out);

/* Releases the lock. */
void datadir_release(struct datadir *d);

#endif
