/*
 * registry.c - the camera registry's store (registry.h): an LMDB
 * environment of its own in the registry directory, with two databases:
 *
 *   "cameras"  key = camera id, 4 bytes big-endian (so LMDB's byte order is
 *              id order); value = the camera as compact JSON
 *              (registry_record.c, every field, credentials included)
 *   "meta"     "generation" = 8 bytes big-endian, incremented by every
 *              write transaction this file commits
 *
 * The map is 1 GiB. LMDB maps the file sparse and grows it as pages are
 * written; a camera takes about 500 bytes, so the map holds millions of
 * them. A full map is reported as -ENOSPC.
 *
 * Read transactions are not tied to threads (MDB_NOTLS), so one handle may
 * be shared by threads that read. Callbacks of registry_foreach run inside
 * its read transaction and must not write to the registry.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmdb_env.h"
#include "log.h"
#include "registry_internal.h"

#define REG_MAP_SIZE ((size_t)1 << 30)
#define REG_GENERATION_KEY "generation"

struct registry {
	MDB_env *env;
	MDB_dbi cams, meta;
};

/* LMDB's result as 0 or a negative errno (its own codes have no errno). */
static int mdb_fail(const char *op, int rc)
{
	return nvr_lmdb_fail("registry", op, rc);
}

static void key_of(uint32_t id, uint32_t *buf, MDB_val *k)
{
	*buf = htonl(id);
	k->mv_size = sizeof *buf;
	k->mv_data = buf;
}

static uint32_t id_of(const MDB_val *k)
{
	uint32_t be = 0;
	if (k->mv_size == sizeof be)
		memcpy(&be, k->mv_data, sizeof be);
	return ntohl(be);
}

static int open_dbs(struct registry *r)
{
	static const char *const names[] = { "cameras", "meta" };
	MDB_dbi dbi[2];
	int rc = nvr_lmdb_open_dbs(r->env, "registry", names, dbi, 2);
	r->cams = dbi[0];
	r->meta = dbi[1];
	return rc;
}

int registry_open(const char *dir, struct registry **out)
{
	int rc;
	struct registry *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	if ((rc = nvr_lmdb_open(dir, "registry", 2, REG_MAP_SIZE, &r->env)))
		goto fail;
	if ((rc = open_dbs(r)))
		goto fail;
	*out = r;
	return 0;
fail:
	if (r->env)
		mdb_env_close(r->env);
	free(r);
	return rc;
}

void registry_close(struct registry *r)
{
	if (!r)
		return;
	mdb_env_close(r->env);
	free(r);
}

static uint64_t read_generation(struct registry *r, MDB_txn *txn)
{
	MDB_val k = { sizeof REG_GENERATION_KEY - 1, REG_GENERATION_KEY }, v;
	uint64_t g = 0;
	if (mdb_get(txn, r->meta, &k, &v) == 0 && v.mv_size == 8) {
		const uint8_t *b = v.mv_data;
		for (int i = 0; i < 8; i++)
			g = g << 8 | b[i];
	}
	return g;
}

static int bump_generation(struct registry *r, MDB_txn *txn)
{
	uint64_t g = read_generation(r, txn) + 1;
	uint8_t b[8];
	for (int i = 7; i >= 0; i--, g >>= 8)
		b[i] = (uint8_t)g;
	MDB_val k = { sizeof REG_GENERATION_KEY - 1, REG_GENERATION_KEY }, v = { sizeof b, b };
	int rc = mdb_put(txn, r->meta, &k, &v, 0);
	return rc ? mdb_fail("put_generation", rc) : 0;
}

/* Bumps the generation and commits; aborts on failure. */
static int commit_write(struct registry *r, MDB_txn *txn)
{
	int rc = bump_generation(r, txn);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)))
		return mdb_fail("txn_commit", rc);
	return 0;
}

uint64_t registry_generation(struct registry *r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
	if (rc) {
		mdb_fail("txn_begin", rc);
		return 0;
	}
	uint64_t g = read_generation(r, txn);
	mdb_txn_abort(txn);
	return g;
}

static int decode_value(uint32_t id, const MDB_val *v, struct camera_record *out)
{
	char err[128];
	if (reg_record_decode(v->mv_data, v->mv_size, out, err, sizeof err) == 0)
		return 0;
	nvr_log("error", "registry", "event=bad_stored_value camera=%u error=\"%s\"", id, err);
	return -EIO;
}

int registry_get(struct registry *r, uint32_t id, struct camera_record *out)
{
	MDB_txn *txn;
	uint32_t kb;
	MDB_val k, v;
	int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return mdb_fail("txn_begin", rc);
	key_of(id, &kb, &k);
	rc = mdb_get(txn, r->cams, &k, &v);
	if (rc == 0)
		rc = decode_value(id, &v, out);
	else if (rc != MDB_NOTFOUND)
		rc = mdb_fail("get", rc);
	else
		rc = -ENOENT;
	mdb_txn_abort(txn);
	return rc;
}

int registry_put(struct registry *r, const struct camera_record *c)
{
	char err[256], *val = NULL;
	size_t len;
	MDB_txn *txn;
	uint32_t kb;
	MDB_val k, v;
	int rc = camera_record_validate(c, err, sizeof err);
	if (rc) {
		nvr_log("warn", "registry", "event=put_rejected camera=%u error=\"%s\"", c->id, err);
		return rc;
	}
	if ((rc = reg_record_encode(c, &val, &len)))
		return rc;
	if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn))) {
		rc = mdb_fail("txn_begin", rc);
		goto fail;
	}
	key_of(c->id, &kb, &k);
	v.mv_size = len;
	v.mv_data = val;
	if ((rc = mdb_put(txn, r->cams, &k, &v, 0))) {
		mdb_txn_abort(txn);
		rc = mdb_fail("put", rc);
		goto fail;
	}
	rc = commit_write(r, txn);
fail:
	free(val);
	return rc;
}

/* Compares the stored value with val inside the write transaction, so that
 * a camera written by another process in between is not missed. */
int registry_upsert(struct registry *r, const struct camera_record *c, bool *changed)
{
	char err[256], *val = NULL;
	size_t len;
	MDB_txn *txn;
	uint32_t kb;
	MDB_val k, v;
	*changed = false;
	int rc = camera_record_validate(c, err, sizeof err);
	if (rc) {
		nvr_log("warn", "registry", "event=put_rejected camera=%u error=\"%s\"", c->id, err);
		return rc;
	}
	if ((rc = reg_record_encode(c, &val, &len)))
		return rc;
	if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn))) {
		rc = mdb_fail("txn_begin", rc);
		goto fail;
	}
	key_of(c->id, &kb, &k);
	rc = mdb_get(txn, r->cams, &k, &v);
	if (rc == 0 && v.mv_size == len && !memcmp(v.mv_data, val, len)) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		rc = mdb_fail("get", rc);
		goto fail;
	}
	v.mv_size = len;
	v.mv_data = val;
	if ((rc = mdb_put(txn, r->cams, &k, &v, 0))) {
		mdb_txn_abort(txn);
		rc = mdb_fail("put", rc);
		goto fail;
	}
	rc = commit_write(r, txn);
	*changed = rc == 0;
fail:
	free(val);
	return rc;
}

int registry_delete(struct registry *r, uint32_t id)
{
	MDB_txn *txn;
	uint32_t kb;
	MDB_val k;
	int rc = mdb_txn_begin(r->env, NULL, 0, &txn);
	if (rc)
		return mdb_fail("txn_begin", rc);
	key_of(id, &kb, &k);
	rc = mdb_del(txn, r->cams, &k, NULL);
	if (rc) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? -ENOENT : mdb_fail("del", rc);
	}
	return commit_write(r, txn);
}

int registry_foreach(struct registry *r, registry_each_fn fn, void *user)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct camera_record c;
	int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return mdb_fail("txn_begin", rc);
	if ((rc = mdb_cursor_open(txn, r->cams, &cur))) {
		rc = mdb_fail("cursor_open", rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int err = decode_value(id_of(&k), &v, &c);
		if (!err)
			err = fn(user, &c);
		if (err) {
			rc = err;
			goto out;
		}
	}
	rc = rc == MDB_NOTFOUND ? 0 : mdb_fail("cursor_get", rc);
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int registry_count(struct registry *r, uint64_t *out)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return mdb_fail("txn_begin", rc);
	rc = mdb_stat(txn, r->cams, &st);
	mdb_txn_abort(txn);
	if (rc)
		return mdb_fail("stat", rc);
	*out = st.ms_entries;
	return 0;
}

/* ---- import batches ---- */

static int cmp_entry_id(const void *key, const void *elem)
{
	uint32_t id = *(const uint32_t *)key, eid = ((const struct reg_entry *)elem)->id;
	return id < eid ? -1 : id > eid;
}

/* REGISTRY_IMPORT_REPLACE: deletes every stored camera not in e[]. */
static int remove_absent(struct registry *r, MDB_txn *txn, const struct reg_entry *e, size_t n,
                         uint64_t *removed)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, r->cams, &cur);
	if (rc)
		return mdb_fail("cursor_open", rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id = id_of(&k);
		if (n && bsearch(&id, e, n, sizeof *e, cmp_entry_id))
			continue;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		(*removed)++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : mdb_fail("remove_absent", rc);
}

/* The entry's value with the stored credentials it asks to keep. */
static int merge_kept(const struct reg_entry *e, const MDB_val *old, char **val, size_t *len)
{
	struct camera_record was, now;
	char err[128];
	int rc = decode_value(e->id, old, &was);
	if (rc)
		return rc;
	if ((rc = reg_record_decode(e->val, e->len, &now, err, sizeof err)))
		return -EIO;
	if (e->keep & REG_BIT(REG_F_USERNAME))
		memcpy(now.username, was.username, sizeof now.username);
	if (e->keep & REG_BIT(REG_F_PASSWORD))
		memcpy(now.password, was.password, sizeof now.password);
	return reg_record_encode(&now, val, len);
}

static int apply_one(struct registry *r, MDB_txn *txn, const struct reg_entry *e,
                     struct registry_import_result *res)
{
	uint32_t kb;
	MDB_val k, old, v = { e->len, e->val };
	char *merged = NULL;
	key_of(e->id, &kb, &k);
	int rc = mdb_get(txn, r->cams, &k, &old);
	if (rc && rc != MDB_NOTFOUND)
		return mdb_fail("get", rc);
	bool exists = rc == 0;
	if (exists && e->keep) {
		if ((rc = merge_kept(e, &old, &merged, &v.mv_size)))
			return rc;
		v.mv_data = merged;
	}
	if (exists && old.mv_size == v.mv_size && !memcmp(old.mv_data, v.mv_data, v.mv_size)) {
		free(merged);
		return 0;
	}
	rc = mdb_put(txn, r->cams, &k, &v, 0);
	free(merged);
	if (rc)
		return mdb_fail("put", rc);
	if (exists)
		res->updated++;
	else
		res->added++;
	return 0;
}

int reg_apply(struct registry *r, struct reg_entry *e, size_t n, unsigned flags,
              struct registry_import_result *res)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(r->env, NULL, 0, &txn);
	if (rc)
		return mdb_fail("txn_begin", rc);
	if (flags & REGISTRY_IMPORT_REPLACE) {
		if ((rc = remove_absent(r, txn, e, n, &res->removed)))
			goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = apply_one(r, txn, &e[i], res)))
			goto fail;
	if ((rc = commit_write(r, txn)))
		return rc;
	return 0;
fail:
	mdb_txn_abort(txn);
	return rc;
}
