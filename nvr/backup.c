/*
 * backup.c - backing up a data directory's LMDB environments while nvrd
 * runs, and restoring them on a stopped appliance (backup.h).
 *
 * Backup: each environment that exists becomes one section of the backup
 * file (backup_file.c). The storage index is copied by the engine itself
 * (stg_index_backup: its layout stays inside storage/); the registry, users
 * and audit trail are nvr's own plain environments (a directory, MDB_NOTLS)
 * and are copied here the same way: opened read-only next to the daemon,
 * then mdb_env_copyfd2(MDB_CP_COMPACT), one read transaction each.
 *
 * Restore, in an order where a failure at any step leaves the data
 * directory as it was (the caller holds the daemon's lock throughout):
 *   1. read the header; refuse unknown environment names, and refuse to
 *      start while a DIR/NAME.before-restore is left from an earlier run;
 *   2. decompress every section into DIR/.restore/NAME/data.mdb, checking
 *      its size and SHA-256, fsync it, and open it read-only as LMDB;
 *   3. for each environment: rename DIR/NAME to DIR/NAME.before-restore,
 *      then DIR/.restore/NAME to DIR/NAME; fsync DIR;
 *   4. the restored index is older than the disks: stg_fsck with rebuild
 *      over the volumes indexes everything on them again, keeping the
 *      backup's volume records, classes, camera classes and holds (the
 *      restored index is fsck's "old index", left as DIR/index.old);
 *   5. remove the *.before-restore directories and DIR/.restore.
 * A failure in 1-2 replaced nothing; in 3-4 the renames are undone.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "backup.h"
#include "log.h"

#define MAP_RETRIES 4

struct env_desc {
	const char *name;
	size_t path_at;        /* offset of its path in struct datadir */
	mode_t dir_mode;       /* of its directory and data.mdb, as its module */
	mode_t mode;           /* creates them */
	bool storage;          /* the storage engine's index */
};

static const struct env_desc envs[] = {
	{ "index", offsetof(struct datadir, index), 0755, 0644, true },
	{ "registry", offsetof(struct datadir, registry), 0700, 0600, false },
	{ "users", offsetof(struct datadir, users), 0700, 0600, false },
	{ "audit", offsetof(struct datadir, audit), 0700, 0600, false },
};
#define ENV_COUNT (sizeof envs / sizeof envs[0])

static const char *env_dir(const struct datadir *d, const struct env_desc *e)
{
	return (const char *)d + e->path_at;
}

static bool env_exists(const char *dir)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	return access(p, F_OK) == 0;
}

static int lmdb_err(int rc)
{
	return rc > 0 ? -rc : rc;
}

/* ---- backup ------------------------------------------------------------------ */

/* Opens `dir` read-only, taking the map size the writer last grew it to. */
static int open_readonly(const char *dir, MDB_env **out)
{
	MDB_env *env;
	int err = lmdb_err(mdb_env_create(&env));
	if (err)
		return err;
	err = lmdb_err(mdb_env_set_maxdbs(env, 8));
	if (!err)
		err = lmdb_err(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600));
	for (int i = 0; !err && i < MAP_RETRIES; i++) {
		MDB_txn *t;
		int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
		if (rc == 0) {
			mdb_txn_abort(t);
			*out = env;
			return 0;
		}
		err = rc == MDB_MAP_RESIZED ? lmdb_err(mdb_env_set_mapsize(env, 0)) : lmdb_err(rc);
		if (!err && i == MAP_RETRIES - 1)
			err = lmdb_err(MDB_MAP_RESIZED);
	}
	mdb_env_close(env);
	return err;
}

/* Section sources: the write end of the pipe gets a compacted data.mdb. */
static int nvr_env_source(void *user, int fd)
{
	MDB_env *env;
	int err = open_readonly(user, &env);
	if (err)
		return err;
	err = lmdb_err(mdb_env_copyfd2(env, fd, MDB_CP_COMPACT));
	mdb_env_close(env);
	return err;
}

static int index_source(void *user, int fd)
{
	return stg_index_backup(user, fd);
}

int bkp_backup(const struct datadir *d, const char *path, int level, struct bkp_info *info)
{
	struct bkp_writer *w;
	int err = bkp_writer_open(path, level, &w);
	if (err)
		return err;
	for (size_t i = 0; i < ENV_COUNT; i++) {
		const char *dir = env_dir(d, &envs[i]);
		if (!env_exists(dir)) {
			nvr_log("info", "backup", "event=backup_skipped name=%s reason=\"no %s/data.mdb\"",
			        envs[i].name, dir);
			continue;
		}
		err = bkp_writer_add(w, envs[i].name, envs[i].storage ? index_source : nvr_env_source,
		                     (void *)dir);
		if (err)
			goto fail;
	}
	if (bkp_writer_count(w) == 0) {
		nvr_log("error", "backup", "event=backup_empty path=%s", d->path);
		err = -ENOENT;
		goto fail;
	}
	return bkp_writer_finish(w, info);
fail:
	bkp_writer_abort(w);
	return err;
}

/* ---- restore ------------------------------------------------------------------- */

struct restore {
	struct datadir *d;
	int fd;
	struct bkp_info info;
	const struct env_desc *desc[BKP_MAX_ENTRIES];
	char stage[PATH_MAX + 32];
	int swapped;                   /* environments renamed into place */
	bool had_old[BKP_MAX_ENTRIES]; /* DIR/NAME existed and was set aside */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) ? -1 : 0;
}

/* Removes a directory tree (an environment directory); a missing one is fine. */
static int rm_tree(const char *path)
{
	if (access(path, F_OK) && errno == ENOENT)
		return 0;
	if (nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS)) {
		int err = -errno;
		nvr_log("error", "backup", "event=remove_failed path=%s error=\"%s\"", path,
		        strerror(-err));
		return err;
	}
	return 0;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = fd < 0 || fsync(fd) ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (err)
		nvr_log("error", "backup", "event=sync_failed path=%s error=\"%s\"", dir,
		        strerror(-err));
	return err;
}

static void aside_path(const struct restore *r, int i, char *out, size_t n)
{
	snprintf(out, n, "%s.before-restore", env_dir(r->d, r->desc[i]));
}

/* Step 1: every entry names a known environment, once; no earlier restore
 * was left half done. */
static int match_entries(struct restore *r)
{
	for (uint32_t i = 0; i < r->info.count; i++) {
		r->desc[i] = NULL;
		for (size_t k = 0; k < ENV_COUNT; k++)
			if (!strcmp(r->info.e[i].name, envs[k].name))
				r->desc[i] = &envs[k];
		for (uint32_t j = 0; j < i && r->desc[i]; j++)
			if (r->desc[j] == r->desc[i])
				r->desc[i] = NULL;
		if (!r->desc[i]) {
			nvr_log("error", "backup", "event=restore_refused reason=\"unknown or repeated "
			        "environment %s\"", r->info.e[i].name);
			return -EBADMSG;
		}
		char aside[PATH_MAX + 64];
		aside_path(r, (int)i, aside, sizeof aside);
		if (access(aside, F_OK) == 0) {
			nvr_log("error", "backup", "event=restore_refused reason=\"%s exists: an earlier "
			        "restore did not finish; inspect it and move it away\"", aside);
			return -EEXIST;
		}
	}
	return 0;
}

/* Step 1, continued: an index without its volumes cannot be brought up to
 * date, and the engine would then reuse the segments recorded since. */
static int check_volumes(const struct restore *r)
{
	for (uint32_t i = 0; i < r->info.count; i++)
		if (r->desc[i]->storage && r->d->volume_count == 0) {
			nvr_log("error", "backup", "event=restore_refused reason=\"the backup holds an "
			        "index but %s has no volume (vol0, ...); name the volumes\"", r->d->path);
			return -ENOENT;
		}
	return 0;
}

/* Step 2 for one entry: DIR/.restore/NAME/data.mdb, checked. */
static int stage_one(struct restore *r, int i)
{
	char dir[PATH_MAX + 64], file[PATH_MAX + 80];
	snprintf(dir, sizeof dir, "%s/%s", r->stage, r->desc[i]->name);
	snprintf(file, sizeof file, "%s/data.mdb", dir);
	if (mkdir(dir, r->desc[i]->dir_mode))
		return -errno;
	int out = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, r->desc[i]->mode);
	if (out < 0)
		return -errno;
	int err = bkp_extract(r->fd, &r->info.e[i], out);
	if (!err && fsync(out))
		err = -errno;
	close(out);
	MDB_env *env;
	if (!err && !(err = open_readonly(dir, &env)))
		mdb_env_close(env);
	else if (!err)
		nvr_log("error", "backup", "event=restore_refused reason=\"%s is not a readable "
		        "LMDB environment\"", r->desc[i]->name);
	return err;
}

static int stage_all(struct restore *r)
{
	int err = rm_tree(r->stage);
	if (!err && mkdir(r->stage, 0700))
		err = -errno;
	for (uint32_t i = 0; !err && i < r->info.count; i++)
		if ((err = stage_one(r, (int)i)))
			nvr_log("error", "backup", "event=restore_refused name=%s stage=%s error=\"%s\" "
			        "hint=\"nothing was replaced\"", r->info.e[i].name, r->stage,
			        strerror(-err));
	return err;
}

/* Step 3, undone by unswap_all. */
static int swap_one(struct restore *r, int i)
{
	char aside[PATH_MAX + 64], staged[PATH_MAX + 64];
	const char *live = env_dir(r->d, r->desc[i]);
	aside_path(r, i, aside, sizeof aside);
	snprintf(staged, sizeof staged, "%s/%s", r->stage, r->desc[i]->name);
	r->had_old[i] = access(live, F_OK) == 0;
	if (r->had_old[i] && rename(live, aside))
		return -errno;
	if (rename(staged, live)) {
		int err = -errno;
		if (r->had_old[i] && rename(aside, live))
			nvr_log("error", "backup", "event=restore_undo_failed path=%s", aside);
		return err;
	}
	return 0;
}

static int swap_all(struct restore *r)
{
	for (uint32_t i = 0; i < r->info.count; i++) {
		int err = swap_one(r, (int)i);
		if (err)
			return err;
		r->swapped++;
	}
	return sync_dir(r->d->path);
}

static void unswap_all(struct restore *r)
{
	for (int i = r->swapped - 1; i >= 0; i--) {
		char aside[PATH_MAX + 64];
		const char *live = env_dir(r->d, r->desc[i]);
		aside_path(r, i, aside, sizeof aside);
		if (rm_tree(live) || (r->had_old[i] && rename(aside, live)))
			nvr_log("error", "backup", "event=restore_undo_failed path=%s hint=\"the "
			        "environment before the restore is in %s\"", live, aside);
	}
	r->swapped = 0;
	(void)sync_dir(r->d->path);   /* logged; the undo itself is done */
}

/* Step 4. */
static int rebuild_index(struct restore *r, stg_report_fn report, void *user,
                         struct bkp_restore_report *out)
{
	bool has_index = false;
	for (uint32_t i = 0; i < r->info.count; i++)
		has_index |= r->desc[i]->storage;
	if (!has_index) {
		nvr_log("info", "backup", "event=restore_no_rebuild reason=\"no index in the backup\"");
		return 0;
	}
	struct stg_config cfg = {
		.index_dir = r->d->index, .volumes = r->d->vols, .volume_count = r->d->volume_count,
	};
	int err = stg_fsck(&cfg, true, report, user, &out->fsck);
	if (err)
		nvr_log("error", "backup", "event=restore_rebuild_failed index=%s error=\"%s\"",
		        r->d->index, stg_strerror(err));
	out->rebuilt = !err;
	return err;
}

/* Step 5: what remains are copies; a failure to remove them is logged only. */
static void clean_up(struct restore *r)
{
	for (uint32_t i = 0; i < r->info.count; i++) {
		char aside[PATH_MAX + 64];
		aside_path(r, (int)i, aside, sizeof aside);
		(void)rm_tree(aside);   /* logged */
	}
	(void)sync_dir(r->d->path);   /* logged */
}

int bkp_restore(struct datadir *d, const char *path, stg_report_fn report, void *user,
                struct bkp_restore_report *out)
{
	struct restore r = { .d = d, .fd = -1 };
	memset(out, 0, sizeof *out);
	if (d->lock_fd < 0)
		return -EINVAL;
	snprintf(r.stage, sizeof r.stage, "%s/.restore", d->path);
	r.fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = r.fd < 0 ? -errno : 0;
	if (err)
		nvr_log("error", "backup", "event=restore_failed path=%s error=\"%s\"", path,
		        strerror(-err));
	if (!err)
		err = bkp_read_header(r.fd, &r.info);
	if (!err)
		err = match_entries(&r);
	if (!err)
		err = check_volumes(&r);
	if (!err)
		err = stage_all(&r);
	if (!err)
		err = swap_all(&r);
	if (!err)
		err = rebuild_index(&r, report, user, out);
	if (err)
		goto fail;
	clean_up(&r);
	(void)rm_tree(r.stage);   /* logged */
	out->info = r.info;
	close(r.fd);
	return 0;
fail:
	unswap_all(&r);
	(void)rm_tree(r.stage);   /* logged */
	if (r.fd >= 0)
		close(r.fd);
	return err;
}
