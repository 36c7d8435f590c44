/*
 * backup.c - a consistent, compacted copy of the index, taken while the
 * engine runs (stg_index_backup in storage.h).
 *
 * Why this works next to a running engine: the index is an ordinary LMDB
 * environment (a directory with data.mdb and lock.mdb, opened MDB_NOTLS by
 * idx_open), and LMDB lets any number of processes read an environment
 * while one writes. This file opens it a second time, MDB_RDONLY, and hands
 * it to LMDB's own copier, mdb_env_copyfd2(MDB_CP_COMPACT): the copy is one
 * read transaction (an MVCC snapshot: the engine's commits go on meanwhile
 * and are not in it), written as a new environment without free pages.
 * The reader slot it takes only stops the engine from reusing the pages of
 * that snapshot until the copy ends, so the index may grow a little while
 * a large backup runs.
 *
 * The map size is not set: a read-only open takes the size the writer
 * recorded. When the engine grew the map after that record was read,
 * beginning a transaction fails with MDB_MAP_RESIZED; the map is then
 * adopted (mdb_env_set_mapsize 0) and the copy begun again. The check runs
 * before the copy so that nothing has been written to `fd` when it retries.
 */
#include <errno.h>
#include <sys/stat.h>
#include "internal.h"

#define BACKUP_MAP_RETRIES 4

/* LMDB returns positive errno values and its own negative MDB_* codes; the
 * engine's convention is negative errno or a code stg_strerror knows. */
static int lmdb_err(int rc)
{
	return rc > 0 ? -rc : rc;
}

/* Begins and ends a read transaction, adopting a grown map first if needed. */
static int adopt_map(MDB_env *env)
{
	for (int i = 0; i < BACKUP_MAP_RETRIES; i++) {
		MDB_txn *t;
		int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
		if (rc == 0) {
			mdb_txn_abort(t);
			return 0;
		}
		if (rc != MDB_MAP_RESIZED)
			return lmdb_err(rc);
		if ((rc = mdb_env_set_mapsize(env, 0)))
			return lmdb_err(rc);
	}
	return lmdb_err(MDB_MAP_RESIZED);
}

int stg_index_backup(const char *index_dir, int fd)
{
	struct stat st;
	if (stat(index_dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	MDB_env *env = NULL;
	int err = lmdb_err(mdb_env_create(&env));
	if (!err) err = lmdb_err(mdb_env_set_maxdbs(env, 8));
	if (!err) err = lmdb_err(mdb_env_open(env, index_dir, MDB_RDONLY | MDB_NOTLS, 0644));
	if (!err) err = adopt_map(env);
	if (!err) err = lmdb_err(mdb_env_copyfd2(env, fd, MDB_CP_COMPACT));
	if (err)
		LOG_ERR("event=index_backup_failed index=%s error=\"%s\"", index_dir,
		        stg_strerror(err));
	if (env)
		mdb_env_close(env);
	return err;
}
