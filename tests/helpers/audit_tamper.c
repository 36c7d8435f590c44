/*
 * audit_tamper.c - a test helper that edits the audit trail behind the
 * recorder's back, the way someone with write access to DATA/audit could:
 * it replaces FIND by REPLACE (same length) in the stored bytes of entry
 * ID, through a plain LMDB write, leaving the stored hashes alone.
 *
 *   audit_tamper DIR/audit ID FIND REPLACE
 *
 * Exit 0 after the edit, 1 when the entry or FIND is not there, 2 on bad
 * usage. Run it only while nvrd is stopped. Used by
 * tests/blackbox/http_auth.sh to show that `nvrctl audit verify` and
 * GET /api/v1/audit/verify name the edited entry.
 */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replaces the first FIND in val (past the 64 bytes of hashes). */
static int tamper_value(MDB_val *v, const char *find, const char *repl, char **out)
{
	size_t n = strlen(find);
	if (v->mv_size <= 64 || n == 0 || strlen(repl) != n)
		return -1;
	char *b = malloc(v->mv_size);
	if (!b)
		return -1;
	memcpy(b, v->mv_data, v->mv_size);
	for (size_t i = 64; i + n <= v->mv_size; i++)
		if (!memcmp(b + i, find, n)) {
			memcpy(b + i, repl, n);
			*out = b;
			return 0;
		}
	free(b);
	return -1;
}

static int tamper(const char *dir, uint64_t id, const char *find, const char *repl)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	uint8_t kb[8];
	char *edited = NULL;
	int rc = 1;
	for (int i = 7; i >= 0; i--, id >>= 8)
		kb[i] = (uint8_t)id;
	MDB_val k = { sizeof kb, kb }, v;
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 2) ||
	    mdb_env_set_mapsize(env, (size_t)8 << 30) || mdb_env_open(env, dir, 0, 0600) ||
	    mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "entries", 0, &dbi)) {
		fprintf(stderr, "audit_tamper: cannot open %s\n", dir);
		goto fail;
	}
	if (mdb_get(txn, dbi, &k, &v) || tamper_value(&v, find, repl, &edited)) {
		fprintf(stderr, "audit_tamper: no entry with \"%s\"\n", find);
		goto fail;
	}
	v.mv_data = edited;
	if (mdb_put(txn, dbi, &k, &v, 0) || mdb_txn_commit(txn)) {
		txn = NULL;
		fprintf(stderr, "audit_tamper: write failed\n");
		goto fail;
	}
	txn = NULL;
	rc = 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	free(edited);
	return rc;
}

int main(int argc, char **argv)
{
	char *end;
	if (argc != 5) {
		fprintf(stderr, "usage: audit_tamper DIR/audit ID FIND REPLACE\n");
		return 2;
	}
	unsigned long long id = strtoull(argv[2], &end, 10);
	if (*end || !id || strlen(argv[3]) != strlen(argv[4])) {
		fprintf(stderr, "audit_tamper: ID is a number > 0, FIND and REPLACE of one length\n");
		return 2;
	}
	return tamper(argv[1], id, argv[3], argv[4]);
}
