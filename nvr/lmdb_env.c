/*
 * lmdb_env.c - opens the daemon's LMDB environments (lmdb_env.h): the
 * directory, the environment, its limits and its flags in one place, so
 * the registry, the users and the audit trail cannot drift apart.
 */
#include "lmdb_env.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

int nvr_lmdb_open(const char *dir, const char *comp, unsigned maxdbs, size_t map_size,
                  MDB_env **out)
{
	MDB_env *env = NULL;
	*out = NULL;
	if (mkdir(dir, 0700) && errno != EEXIST) {
		int err = errno;
		nvr_log("error", comp, "event=mkdir_failed dir=\"%s\" error=\"%s\"", dir, strerror(err));
		return -err;
	}
	int rc = mdb_env_create(&env);
	if (!rc)
		rc = mdb_env_set_maxdbs(env, maxdbs);
	if (!rc)
		rc = mdb_env_set_mapsize(env, map_size);
	if (!rc)
		rc = mdb_env_open(env, dir, MDB_NOTLS, 0600);
	if (rc) {
		nvr_log("error", comp, "event=open_failed dir=\"%s\" error=\"%s\"", dir, mdb_strerror(rc));
		if (env)
			mdb_env_close(env);
		return rc > 0 ? -rc : -EIO;
	}
	*out = env;
	return 0;
}

int nvr_lmdb_errno(int rc)
{
	if (rc >= 0)
		return -rc;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_MAP_FULL)
		return -ENOSPC;
	if (rc == MDB_KEYEXIST)
		return -EEXIST;
	return -EIO;
}

int nvr_lmdb_fail(const char *comp, const char *op, int rc)
{
	nvr_log("error", comp, "event=lmdb_error op=%s error=\"%s\"", op, mdb_strerror(rc));
	return nvr_lmdb_errno(rc);
}

int nvr_lmdb_open_dbs(MDB_env *env, const char *comp, const char *const *names, MDB_dbi *dbis,
                      int n)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc)
		return nvr_lmdb_fail(comp, "txn_begin", rc);
	for (int i = 0; i < n; i++) {
		if ((rc = mdb_dbi_open(txn, names[i], MDB_CREATE, &dbis[i]))) {
			mdb_txn_abort(txn);
			return nvr_lmdb_fail(comp, "dbi_open", rc);
		}
	}
	if ((rc = mdb_txn_commit(txn)))
		return nvr_lmdb_fail(comp, "txn_commit", rc);
	return 0;
}
