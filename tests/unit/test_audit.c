/*
 * test_audit.c - the hash-chained audit trail (nvr/audit.h): entries read
 * back as written, each hash recomputed here with SHA-256 over the
 * previous hash and the stored body, listing by id, limit and time, and
 * tampering through raw LMDB writes (one changed byte, a removed entry, a
 * cut-off end) reported at the first broken entry while the entries before
 * it still verify. Refused appends leave the log as it was.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "testutil.h"

#define N_ENTRIES 8

struct got {
	struct audit_entry e[64];
	char body[64][1024];
	char detail[64][256];
	int n;
};

static int collect(void *user, const struct audit_entry *e)
{
	struct got *g = user;
	cr_assert_lt(g->n, 64);
	cr_assert_lt(e->body_len, sizeof g->body[0]);
	g->e[g->n] = *e;
	memcpy(g->body[g->n], e->body, e->body_len);
	char *d = json_dumps(e->detail, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert(d);
	snprintf(g->detail[g->n], sizeof g->detail[0], "%s", d);
	free(d);
	g->e[g->n].detail = NULL;
	g->e[g->n].body = g->body[g->n];
	g->n++;
	return 0;
}

static void list_all(struct audit *a, struct got *g, const struct audit_query *q, bool *more)
{
	memset(g, 0, sizeof *g);
	struct audit_query all = { 0 };
	cr_assert_eq(audit_list(a, q ? q : &all, collect, g, more), 0);
}

/* Appends N_ENTRIES entries of user-i, action-i, detail {"n": i}. */
static void fill(struct audit *a)
{
	for (int i = 1; i <= N_ENTRIES; i++) {
		char user[32], action[32];
		uint64_t id = 0;
		snprintf(user, sizeof user, "user%d", i);
		snprintf(action, sizeof action, i % 2 ? "search" : "playback");
		json_t *d = json_pack("{s:i, s:s}", "n", i, "camera", "c\"1\"");
		cr_assert_eq(audit_append(a, user, action, i % 3 ? "10.0.0.9" : NULL, d, &id), 0);
		cr_assert_eq(id, (uint64_t)i, "ids follow each other from 1");
		cr_assert_eq(json_object_size(d), 2, "detail is borrowed, not changed");
		json_decref(d);
	}
}

/* Replaces one byte of entry id's body (offset from the body's start) by
 * a raw LMDB write, the log being closed. */
static void tamper_byte(const char *dir, uint64_t id, size_t body_off)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val v;
	uint8_t kb[8];
	for (int i = 7; i >= 0; i--, id >>= 8)
		kb[i] = (uint8_t)id;
	MDB_val k = { sizeof kb, kb };
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 2), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, (size_t)8 << 30), 0);
	cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
	cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
	cr_assert_gt(v.mv_size, 64 + body_off);
	uint8_t *copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	copy[64 + body_off] ^= 0x01;
	v.mv_data = copy;
	cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(copy);
}

/* Deletes entry id by a raw LMDB write. */
static void delete_entry(const char *dir, uint64_t id)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t kb[8];
	for (int i = 7; i >= 0; i--, id >>= 8)
		kb[i] = (uint8_t)id;
	MDB_val k = { sizeof kb, kb };
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 2), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, (size_t)8 << 30), 0);
	cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
	cr_assert_eq(mdb_del(txn, dbi, &k, NULL), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static char *dir;
static struct audit *log_;
static struct got g;

static void setup(void)
{
	dir = tu_tmpdir();
	cr_assert_eq(audit_open(dir, &log_), 0);
}

static void teardown(void)
{
	audit_close(log_);
	tu_rmrf(dir);
	free(dir);
}

TestSuite(audit, .init = setup, .fini = teardown);

Test(audit, entries_read_back_and_chain_by_sha256)
{
	fill(log_);
	list_all(log_, &g, NULL, NULL);
	cr_assert_eq(g.n, N_ENTRIES);
	uint8_t prev[AUDIT_HASH_BYTES] = { 0 }, h[AUDIT_HASH_BYTES];
	for (int i = 0; i < g.n; i++) {
		const struct audit_entry *e = &g.e[i];
		char user[32], detail[64];
		snprintf(user, sizeof user, "user%d", i + 1);
		snprintf(detail, sizeof detail, "{\"camera\":\"c\\\"1\\\"\",\"n\":%d}", i + 1);
		cr_assert_eq(e->id, (uint64_t)i + 1);
		cr_assert_str_eq(e->user, user);
		cr_assert_str_eq(e->action, (i + 1) % 2 ? "search" : "playback");
		cr_assert_str_eq(e->remote, (i + 1) % 3 ? "10.0.0.9" : "");
		cr_assert_str_eq(g.detail[i], detail);
		if (i)
			cr_assert_geq(e->time_us, g.e[i - 1].time_us, "times never go back");
		/* the hash, recomputed independently */
		cr_assert_eq(memcmp(e->prev, prev, sizeof prev), 0, "entry %d: prev", i + 1);
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, prev, sizeof prev);
		crypto_hash_sha256_update(&st, (const unsigned char *)e->body, e->body_len);
		crypto_hash_sha256_final(&st, h);
		cr_assert_eq(memcmp(e->hash, h, sizeof h), 0, "entry %d: hash", i + 1);
		memcpy(prev, h, sizeof h);
	}
	struct audit_report r;
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert(r.ok, "%s", r.reason);
	cr_assert_eq(r.entries, N_ENTRIES);
	cr_assert_eq(r.last_id, N_ENTRIES);
	cr_assert_eq(memcmp(r.head, prev, sizeof prev), 0);
}

Test(audit, survives_reopen_and_continues_the_chain)
{
	fill(log_);
	audit_close(log_);
	cr_assert_eq(audit_open(dir, &log_), 0);
	uint64_t id;
	cr_assert_eq(audit_append(log_, "later", "hold", NULL, NULL, &id), 0);
	cr_assert_eq(id, N_ENTRIES + 1);
	list_all(log_, &g, NULL, NULL);
	cr_assert_eq(g.n, N_ENTRIES + 1);
	cr_assert_str_eq(g.detail[N_ENTRIES], "{}");
	cr_assert_eq(memcmp(g.e[N_ENTRIES].prev, g.e[N_ENTRIES - 1].hash, AUDIT_HASH_BYTES), 0);
	struct audit_report r;
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert(r.ok);
	cr_assert_eq(r.entries, N_ENTRIES + 1);
}

Test(audit, list_by_after_limit_and_time)
{
	struct got all;
	bool more = true;
	fill(log_);
	list_all(log_, &all, NULL, &more);
	cr_assert_not(more);
	struct audit_query q = { .after_id = 3, .limit = 2 };
	list_all(log_, &g, &q, &more);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(g.e[0].id, 4);
	cr_assert_eq(g.e[1].id, 5);
	cr_assert(more, "entries beyond the limit are announced");
	q = (struct audit_query){ .after_id = N_ENTRIES - 2, .limit = 2 };
	list_all(log_, &g, &q, &more);
	cr_assert_eq(g.n, 2);
	cr_assert_not(more, "nothing beyond the last entry");
	/* [from, to) with from = entry 3's time, to = entry 6's time */
	q = (struct audit_query){ .from_us = all.e[2].time_us, .to_us = all.e[5].time_us };
	list_all(log_, &g, &q, NULL);
	int want = 0;
	for (int i = 0; i < all.n; i++)
		if (all.e[i].time_us >= q.from_us && all.e[i].time_us < q.to_us) {
			cr_assert_lt(want, g.n);
			cr_assert_eq(g.e[want].id, all.e[i].id, "window: entry %d", i + 1);
			want++;
		}
	cr_assert_eq(g.n, want);
}

Test(audit, one_changed_byte_is_found_at_its_entry)
{
	fill(log_);
	struct audit_report before;
	cr_assert_eq(audit_verify(log_, &before), 0);
	cr_assert(before.ok);
	list_all(log_, &g, NULL, NULL);
	audit_close(log_);
	log_ = NULL;
	/* one bit of entry 5's user name ("user5" -> "user4"... any byte) */
	const char *at = strstr(g.body[4], "user5");
	cr_assert(at);
	tamper_byte(dir, 5, (size_t)(at - g.body[4]) + 4);
	cr_assert_eq(audit_open(dir, &log_), 0);
	struct audit_report r;
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert_not(r.ok);
	cr_assert_eq(r.broken_id, 5, "broken at %llu: %s", (unsigned long long)r.broken_id, r.reason);
	cr_assert(strstr(r.reason, "altered"), "%s", r.reason);
	/* the entries before it still verify, and their head is entry 4's hash */
	cr_assert_eq(r.entries, 4);
	cr_assert_eq(r.last_id, 4);
	cr_assert_eq(memcmp(r.head, g.e[3].hash, AUDIT_HASH_BYTES), 0);
	/* the other entries are all still there, unchanged */
	struct got after;
	list_all(log_, &after, NULL, NULL);
	cr_assert_eq(after.n, N_ENTRIES);
	for (int i = 0; i < N_ENTRIES; i++)
		if (i != 4)
			cr_assert_str_eq(after.body[i], g.body[i], "entry %d changed", i + 1);
	cr_assert_str_neq(after.body[4], g.body[4]);
}

Test(audit, a_changed_hash_breaks_the_next_link)
{
	fill(log_);
	audit_close(log_);
	log_ = NULL;
	/* body offset -1 is the last byte of the stored hash of entry 3:
	 * entry 3 no longer matches its bytes */
	tamper_byte(dir, 3, (size_t)-1);
	cr_assert_eq(audit_open(dir, &log_), 0);
	struct audit_report r;
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert_not(r.ok);
	cr_assert_eq(r.broken_id, 3, "%s", r.reason);
	cr_assert_eq(r.entries, 2);
}

Test(audit, removed_entries_are_found)
{
	fill(log_);
	audit_close(log_);
	log_ = NULL;
	delete_entry(dir, 6);
	cr_assert_eq(audit_open(dir, &log_), 0);
	struct audit_report r;
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert_not(r.ok);
	cr_assert_eq(r.broken_id, 6, "%s", r.reason);
	cr_assert_eq(r.entries, 5);
	/* and the last one cut off: the head names it */
	audit_close(log_);
	log_ = NULL;
	tu_rmrf(dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(audit_open(dir, &log_), 0);
	fill(log_);
	audit_close(log_);
	log_ = NULL;
	delete_entry(dir, N_ENTRIES);
	cr_assert_eq(audit_open(dir, &log_), 0);
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert_not(r.ok);
	cr_assert_eq(r.broken_id, N_ENTRIES, "%s", r.reason);
	cr_assert_eq(r.entries, N_ENTRIES - 1);
}

Test(audit, refused_appends_leave_the_log_alone)
{
	fill(log_);
	list_all(log_, &g, NULL, NULL);
	json_t *arr = json_array();
	char long_user[AUDIT_MAX_USER + 8];
	memset(long_user, 'u', sizeof long_user - 1);
	long_user[sizeof long_user - 1] = '\0';
	uint64_t id = 77;
	cr_assert_eq(audit_append(log_, "bob", "search\n", NULL, NULL, &id), -EINVAL);
	cr_assert_eq(audit_append(log_, "", "search", NULL, NULL, &id), -EINVAL);
	cr_assert_eq(audit_append(log_, long_user, "search", NULL, NULL, &id), -EINVAL);
	cr_assert_eq(audit_append(log_, "bob", "search", NULL, arr, &id), -EINVAL);
	cr_assert_eq(id, 77, "no id handed out");
	json_decref(arr);
	struct got after;
	list_all(log_, &after, NULL, NULL);
	cr_assert_eq(after.n, g.n);
	for (int i = 0; i < g.n; i++)
		cr_assert_str_eq(after.body[i], g.body[i]);
	struct audit_report r;
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert(r.ok);
	cr_assert_eq(r.entries, N_ENTRIES);
}

/* Queued appends from several threads, mixed with synchronous ones: every
 * entry is there once, in one valid chain; closing with entries still
 * queued writes them. */
#define Q_THREADS 4
#define Q_PER_THREAD 500

static void *queue_many(void *arg)
{
	struct audit *a = arg;
	for (int i = 0; i < Q_PER_THREAD; i++) {
		json_t *d = json_pack("{s:i}", "n", i);
		cr_assert_eq(audit_append_queued(a, "reader", "search", "10.0.0.1", d), 0);
		json_decref(d);
	}
	return NULL;
}

static int count_action(void *user, const struct audit_entry *e)
{
	int *n = user;
	n[!strcmp(e->action, "search") ? 0 : 1]++;
	return 0;
}

Test(audit, queued_appends_join_the_chain)
{
	pthread_t t[Q_THREADS];
	for (int i = 0; i < Q_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, queue_many, log_), 0);
	for (int i = 0; i < N_ENTRIES; i++)              /* synchronous, meanwhile */
		cr_assert_eq(audit_append(log_, "admin", "hold", NULL, NULL, NULL), 0);
	for (int i = 0; i < Q_THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(audit_append_queued(log_, "user\x01", "search", NULL, NULL), -EINVAL);
	int n[2] = { 0, 0 };
	struct audit_query all = { 0 };
	all.limit = 100000;
	bool more = false;
	cr_assert_eq(audit_list(log_, &all, count_action, n, &more), 0);   /* flushes first */
	cr_assert_eq(n[0], Q_THREADS * Q_PER_THREAD);
	cr_assert_eq(n[1], N_ENTRIES);
	struct audit_report r;
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert(r.ok, "%s", r.reason);
	cr_assert_eq(r.entries, Q_THREADS * Q_PER_THREAD + N_ENTRIES);

	for (int i = 0; i < 100; i++)
		cr_assert_eq(audit_append_queued(log_, "late", "playback", NULL, NULL), 0);
	audit_close(log_);                               /* writes what is queued */
	cr_assert_eq(audit_open(dir, &log_), 0);
	cr_assert_eq(audit_verify(log_, &r), 0);
	cr_assert(r.ok, "%s", r.reason);
	cr_assert_eq(r.entries, Q_THREADS * Q_PER_THREAD + N_ENTRIES + 100);
}
