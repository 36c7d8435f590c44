/*
 * lmdb_env.h - opening one of the daemon's own LMDB environments (camera
 * registry, users, audit trail: each in its own directory of the data
 * directory, see datadir.h), the same way for each (lmdb_env.c).
 */
#ifndef NVR_LMDB_ENV_H
#define NVR_LMDB_ENV_H

#include <lmdb.h>
#include <stddef.h>

/* Creates `dir` (mode 0700) if needed and opens an environment there with
 * room for `maxdbs` named databases and a map of `map_size` bytes
 * (MDB_NOTLS: read transactions may move between threads). Failures are
 * logged under component `comp`. Returns 0 with *out set, or a negative
 * errno (-EIO for LMDB's own codes). */
int nvr_lmdb_open(const char *dir, const char *comp, unsigned maxdbs, size_t map_size,
                  MDB_env **out);

/* Opens (creating) the named databases names[0..n) in one transaction,
 * their handles into dbis[]. 0 or a negative errno (logged). */
int nvr_lmdb_open_dbs(MDB_env *env, const char *comp, const char *const *names, MDB_dbi *dbis,
                      int n);

/* An LMDB return code as a negative errno: errno values as they are,
 * MDB_NOTFOUND -ENOENT, MDB_MAP_FULL -ENOSPC, MDB_KEYEXIST -EEXIST, other
 * LMDB codes -EIO. */
int nvr_lmdb_errno(int rc);

/* Logs `op` failing with rc under component `comp`; returns nvr_lmdb_errno(rc). */
int nvr_lmdb_fail(const char *comp, const char *op, int rc);

#endif
