/*
 * audit.c - the hash-chained audit log (audit.h) in its own LMDB
 * environment. An append reads the head, builds the entry's canonical
 * body (compact JSON, sorted keys), hashes it after the previous hash with
 * SHA-256 and writes entry and head in one write transaction, which LMDB
 * syncs before the commit returns. audit_verify recomputes every hash.
 *
 * Queued appends (audit_append_queued, for reads such as searches and
 * playback, whose answers must not wait for a disk sync): the entry is
 * checked and copied into a FIFO, and a committer thread (started by the
 * first one) appends everything queued in one transaction, so one sync
 * covers a batch. The chain is built at commit time, in queue order, so it
 * is the same chain a synchronous append would make. audit_list,
 * audit_verify and audit_close first wait for the queue to drain
 * (audit_flush), so nothing queued is ever missing from what they see.
 */
#include "audit.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_env.h"
#include "log.h"

#define AUD_MAP_SIZE ((size_t)8 << 30)
#define AUD_HEAD_KEY "head"
#define AUD_HEAD_BYTES (8 + AUDIT_HASH_BYTES + 8)
#define AUD_PREFIX (2 * AUDIT_HASH_BYTES)

/* An entry waiting for the committer thread. */
struct aud_queued {
	struct aud_queued *next;
	json_t *detail;                 /* owned copy */
	char user[AUDIT_MAX_USER + 1], action[AUDIT_MAX_ACTION + 1];
	char remote[AUDIT_MAX_REMOTE + 1];
};

struct audit {
	MDB_env *env;
	MDB_dbi entries, meta;

	pthread_mutex_t qlock;          /* guards everything below */
	pthread_cond_t qcond;           /* queue grew, or stop */
	pthread_cond_t qdone;           /* a batch was committed */
	struct aud_queued *qhead, *qtail;
	uint64_t queued, committed;     /* entries ever queued / handled */
	uint32_t qlen;
	bool committer, stop;
	pthread_t thread;
};

/* The head: last id, its hash and its time (all zero on an empty log). */
struct aud_head {
	uint64_t id;
	uint8_t hash[AUDIT_HASH_BYTES];
	int64_t time_us;
};

static int aud_fail(const char *op, int rc)
{
	return nvr_lmdb_fail("audit", op, rc);
}

static void aud_put_be64(uint8_t *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static uint64_t aud_get_be64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

void audit_hex(const uint8_t hash[AUDIT_HASH_BYTES], char *out)
{
	sodium_bin2hex(out, 2 * AUDIT_HASH_BYTES + 1, hash, AUDIT_HASH_BYTES);
}

static int aud_open_dbs(struct audit *a)
{
	static const char *const names[] = { "entries", "meta" };
	MDB_dbi dbi[2];
	int rc = nvr_lmdb_open_dbs(a->env, "audit", names, dbi, 2);
	a->entries = dbi[0];
	a->meta = dbi[1];
	return rc;
}

int audit_open(const char *dir, struct audit **out)
{
	int rc;
	if (sodium_init() < 0)
		return -EIO;
	struct audit *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	pthread_mutex_init(&a->qlock, NULL);
	pthread_cond_init(&a->qcond, NULL);
	pthread_cond_init(&a->qdone, NULL);
	if ((rc = nvr_lmdb_open(dir, "audit", 2, AUD_MAP_SIZE, &a->env)))
		goto fail;
	if ((rc = aud_open_dbs(a)))
		goto fail;
	*out = a;
	return 0;
fail:
	if (a->env)
		mdb_env_close(a->env);
	pthread_cond_destroy(&a->qdone);
	pthread_cond_destroy(&a->qcond);
	pthread_mutex_destroy(&a->qlock);
	free(a);
	return rc;
}

static void aud_stop_committer(struct audit *a)
{
	pthread_mutex_lock(&a->qlock);
	bool running = a->committer;
	a->stop = true;
	pthread_cond_broadcast(&a->qcond);
	pthread_mutex_unlock(&a->qlock);
	if (running)
		pthread_join(a->thread, NULL);   /* it drains the queue first */
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	aud_stop_committer(a);
	if (a->env)
		mdb_env_close(a->env);
	pthread_cond_destroy(&a->qdone);
	pthread_cond_destroy(&a->qcond);
	pthread_mutex_destroy(&a->qlock);
	free(a);
}

/* Reads the head; an empty log has an all-zero head. */
static int aud_read_head(struct audit *a, MDB_txn *txn, struct aud_head *h)
{
	MDB_val k = { sizeof AUD_HEAD_KEY - 1, AUD_HEAD_KEY }, v;
	memset(h, 0, sizeof *h);
	int rc = mdb_get(txn, a->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return aud_fail("get_head", rc);
	if (v.mv_size != AUD_HEAD_BYTES) {
		nvr_log("error", "audit", "event=bad_head size=%zu", v.mv_size);
		return -EBADMSG;
	}
	const uint8_t *b = v.mv_data;
	h->id = aud_get_be64(b);
	memcpy(h->hash, b + 8, AUDIT_HASH_BYTES);
	h->time_us = (int64_t)aud_get_be64(b + 8 + AUDIT_HASH_BYTES);
	return 0;
}

static int aud_write_head(struct audit *a, MDB_txn *txn, const struct aud_head *h)
{
	uint8_t b[AUD_HEAD_BYTES];
	aud_put_be64(b, h->id);
	memcpy(b + 8, h->hash, AUDIT_HASH_BYTES);
	aud_put_be64(b + 8 + AUDIT_HASH_BYTES, (uint64_t)h->time_us);
	MDB_val k = { sizeof AUD_HEAD_KEY - 1, AUD_HEAD_KEY }, v = { sizeof b, b };
	int rc = mdb_put(txn, a->meta, &k, &v, 0);
	return rc ? aud_fail("put_head", rc) : 0;
}

/* SHA-256(prev | body). */
static void aud_hash(const uint8_t prev[AUDIT_HASH_BYTES], const char *body, size_t len,
                     uint8_t out[AUDIT_HASH_BYTES])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, prev, AUDIT_HASH_BYTES);
	crypto_hash_sha256_update(&st, (const unsigned char *)body, len);
	crypto_hash_sha256_final(&st, out);
}

/* Non-empty, shorter than max, no control characters. */
static bool aud_text_ok(const char *s, size_t max, bool required)
{
	if (!s)
		return !required;
	size_t n = strnlen(s, max);
	if (n == max || (required && n == 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* The canonical body of an entry: compact JSON with sorted keys. */
static int aud_body(uint64_t id, int64_t time_us, const char *user, const char *action,
                    const char *remote, json_t *detail, char **out, size_t *len)
{
	json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:O}", "id", (json_int_t)id,
	                      "time_us", (json_int_t)time_us, "user", user, "action", action,
	                      "remote", remote ? remote : "", "detail", detail);
	if (!o)
		return -EINVAL;   /* not valid UTF-8 */
	*out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (!*out)
		return -ENOMEM;
	*len = strlen(*out);
	if (*len > AUDIT_MAX_BODY) {
		free(*out);
		*out = NULL;
		return -E2BIG;
	}
	return 0;
}

/* Puts entry and head in txn (which the caller commits or aborts). */
static int aud_put_entry(struct audit *a, MDB_txn *txn, const char *user, const char *action,
                         const char *remote, json_t *detail, uint64_t *id)
{
	struct aud_head h;
	char *body = NULL;
	size_t len = 0;
	uint8_t *val = NULL;
	int rc = aud_read_head(a, txn, &h);
	if (rc)
		return rc;
	int64_t now = nvr_now_us();
	struct aud_head next = { .id = h.id + 1, .time_us = now > h.time_us ? now : h.time_us };
	if ((rc = aud_body(next.id, next.time_us, user, action, remote, detail, &body, &len)))
		goto fail;
	aud_hash(h.hash, body, len, next.hash);
	rc = -ENOMEM;
	if (!(val = malloc(AUD_PREFIX + len)))
		goto fail;
	memcpy(val, h.hash, AUDIT_HASH_BYTES);
	memcpy(val + AUDIT_HASH_BYTES, next.hash, AUDIT_HASH_BYTES);
	memcpy(val + AUD_PREFIX, body, len);
	uint8_t kb[8];
	aud_put_be64(kb, next.id);
	MDB_val k = { sizeof kb, kb }, v = { AUD_PREFIX + len, val };
	if ((rc = mdb_put(txn, a->entries, &k, &v, MDB_APPEND))) {
		rc = aud_fail("put_entry", rc);
		goto fail;
	}
	if ((rc = aud_write_head(a, txn, &next)))
		goto fail;
	*id = next.id;
fail:
	free(val);
	free(body);
	return rc;
}

int audit_append(struct audit *a, const char *user, const char *action, const char *remote,
                 json_t *detail, uint64_t *id)
{
	uint64_t got = 0;
	MDB_txn *txn;
	json_t *empty = NULL;
	int rc = -EINVAL;
	if (!aud_text_ok(user, AUDIT_MAX_USER, true) || !aud_text_ok(action, AUDIT_MAX_ACTION, true) ||
	    !aud_text_ok(remote, AUDIT_MAX_REMOTE, false) || (detail && !json_is_object(detail)))
		goto fail;
	rc = -ENOMEM;
	if (!detail && !(detail = empty = json_object()))
		goto fail;
	if ((rc = mdb_txn_begin(a->env, NULL, 0, &txn))) {
		rc = aud_fail("txn_begin", rc);
		goto fail;
	}
	if ((rc = aud_put_entry(a, txn, user, action, remote, detail, &got))) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn))) {
		rc = aud_fail("txn_commit", rc);
		goto fail;
	}
	if (id)
		*id = got;
fail:
	json_decref(empty);
	if (rc)
		nvr_log("error", "audit", "event=append_failed action=%s error=\"%s\"",
		        aud_text_ok(action, AUDIT_MAX_ACTION, true) ? action : "?", strerror(-rc));
	return rc;
}

/* ---- queued appends --------------------------------------------------- */

/* Appends a batch in one transaction; an entry that cannot be stored is
 * logged and skipped, a transaction that fails loses the batch (logged). */
static void aud_commit_batch(struct audit *a, struct aud_queued *batch, uint32_t n)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc) {
		nvr_log("error", "audit", "event=batch_lost entries=%" PRIu32 " error=\"%s\"", n,
		        mdb_strerror(rc));
		return;
	}
	for (struct aud_queued *q = batch; q; q = q->next) {
		uint64_t id;
		int err = aud_put_entry(a, txn, q->user, q->action, q->remote, q->detail, &id);
		if (err)
			nvr_log("error", "audit", "event=append_failed action=%s error=\"%s\"", q->action,
			        strerror(-err));
	}
	if ((rc = mdb_txn_commit(txn)))
		nvr_log("error", "audit", "event=batch_lost entries=%" PRIu32 " error=\"%s\"", n,
		        mdb_strerror(rc));
}

static void *aud_committer(void *arg)
{
	struct audit *a = arg;
	pthread_mutex_lock(&a->qlock);
	for (;;) {
		while (!a->qhead && !a->stop)
			pthread_cond_wait(&a->qcond, &a->qlock);
		if (!a->qhead)
			break;                  /* stop, and nothing left */
		struct aud_queued *batch = a->qhead;
		uint32_t n = a->qlen;
		a->qhead = a->qtail = NULL;
		a->qlen = 0;
		pthread_mutex_unlock(&a->qlock);
		aud_commit_batch(a, batch, n);
		while (batch) {
			struct aud_queued *next = batch->next;
			json_decref(batch->detail);
			free(batch);
			batch = next;
		}
		pthread_mutex_lock(&a->qlock);
		a->committed += n;
		pthread_cond_broadcast(&a->qdone);
	}
	pthread_mutex_unlock(&a->qlock);
	return NULL;
}

int audit_append_queued(struct audit *a, const char *user, const char *action,
                        const char *remote, json_t *detail)
{
	if (!aud_text_ok(user, AUDIT_MAX_USER, true) || !aud_text_ok(action, AUDIT_MAX_ACTION, true) ||
	    !aud_text_ok(remote, AUDIT_MAX_REMOTE, false) || (detail && !json_is_object(detail)))
		return -EINVAL;
	struct aud_queued *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	q->detail = detail ? json_deep_copy(detail) : json_object();
	if (!q->detail) {
		free(q);
		return -ENOMEM;
	}
	snprintf(q->user, sizeof q->user, "%s", user);
	snprintf(q->action, sizeof q->action, "%s", action);
	snprintf(q->remote, sizeof q->remote, "%s", remote ? remote : "");
	int err = 0;
	pthread_mutex_lock(&a->qlock);
	if (a->stop) {
		err = -ESHUTDOWN;
	} else if (!a->committer) {
		err = -pthread_create(&a->thread, NULL, aud_committer, a);
		a->committer = !err;
	}
	if (!err) {
		/* Back-pressure: a full queue waits for the committer. */
		while (a->qlen >= AUDIT_QUEUE_MAX)
			pthread_cond_wait(&a->qdone, &a->qlock);
		if (a->qtail)
			a->qtail->next = q;
		else
			a->qhead = q;
		a->qtail = q;
		a->qlen++;
		a->queued++;
		pthread_cond_signal(&a->qcond);
	}
	pthread_mutex_unlock(&a->qlock);
	if (err) {
		json_decref(q->detail);
		free(q);
	}
	return err;
}

void audit_flush(struct audit *a)
{
	pthread_mutex_lock(&a->qlock);
	uint64_t target = a->queued;
	while (a->committer && a->committed < target)
		pthread_cond_wait(&a->qdone, &a->qlock);
	pthread_mutex_unlock(&a->qlock);
}

/* ---- reading ---------------------------------------------------------- */

static bool aud_copy_str(json_t *o, const char *key, char *out, size_t n)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s || strlen(s) >= n)
		return false;
	strcpy(out, s);
	return true;
}

/* Decodes a stored value; e->detail is a new reference the caller drops
 * with json_decref(e->detail) (NULL on failure). */
static int aud_decode(const MDB_val *k, const MDB_val *v, struct audit_entry *e)
{
	memset(e, 0, sizeof *e);
	if (k->mv_size != 8 || v->mv_size <= AUD_PREFIX)
		return -EBADMSG;
	const uint8_t *b = v->mv_data;
	e->id = aud_get_be64(k->mv_data);
	memcpy(e->prev, b, AUDIT_HASH_BYTES);
	memcpy(e->hash, b + AUDIT_HASH_BYTES, AUDIT_HASH_BYTES);
	e->body = (const char *)b + AUD_PREFIX;
	e->body_len = v->mv_size - AUD_PREFIX;
	json_t *o = json_loadb(e->body, e->body_len, JSON_REJECT_DUPLICATES, NULL);
	json_t *id = json_object_get(o, "id"), *t = json_object_get(o, "time_us");
	json_t *d = json_object_get(o, "detail");
	bool ok = json_is_integer(id) && (uint64_t)json_integer_value(id) == e->id &&
	          json_is_integer(t) && json_is_object(d) &&
	          aud_copy_str(o, "user", e->user, sizeof e->user) &&
	          aud_copy_str(o, "action", e->action, sizeof e->action) &&
	          aud_copy_str(o, "remote", e->remote, sizeof e->remote);
	if (ok) {
		e->time_us = json_integer_value(t);
		e->detail = json_incref(d);
	}
	json_decref(o);
	return ok ? 0 : -EBADMSG;
}

/* The time of entry id, or -1 when it cannot be read. */
static int64_t aud_time_of(struct audit *a, MDB_txn *txn, uint64_t id)
{
	uint8_t kb[8];
	aud_put_be64(kb, id);
	MDB_val k = { sizeof kb, kb }, v;
	struct audit_entry e;
	if (mdb_get(txn, a->entries, &k, &v) || aud_decode(&k, &v, &e))
		return -1;
	json_decref(e.detail);
	return e.time_us;
}

/* The first id whose time is >= from_us (head.id + 1 when none): times
 * never decrease along the log. */
static uint64_t aud_first_from(struct audit *a, MDB_txn *txn, uint64_t last, int64_t from_us)
{
	uint64_t lo = 1, hi = last + 1;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int64_t t = aud_time_of(a, txn, mid);
		if (t >= 0 && t < from_us)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct aud_walk {
	const struct audit_query *q;
	audit_each_fn fn;
	void *user;
	bool *more;
	uint64_t seen;
};

/* Visits entries from the cursor's position on. */
static int aud_walk(MDB_cursor *cur, MDB_val *k, MDB_val *v, int rc, struct aud_walk *w)
{
	for (; rc == 0; rc = mdb_cursor_get(cur, k, v, MDB_NEXT)) {
		struct audit_entry e;
		if (aud_decode(k, v, &e)) {
			nvr_log("error", "audit", "event=bad_entry id=%llu",
			        (unsigned long long)(k->mv_size == 8 ? aud_get_be64(k->mv_data) : 0));
			return -EBADMSG;
		}
		bool stop = w->q->to_us && e.time_us >= w->q->to_us;
		if (!stop && w->q->limit && w->seen == w->q->limit) {
			if (w->more)
				*w->more = true;
			stop = true;
		}
		int err = stop ? 0 : w->fn(w->user, &e);
		json_decref(e.detail);
		if (stop || err)
			return err;
		w->seen++;
	}
	return rc == MDB_NOTFOUND ? 0 : aud_fail("cursor_get", rc);
}

int audit_list(struct audit *a, const struct audit_query *q, audit_each_fn fn, void *user,
               bool *more)
{
	audit_flush(a);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	struct aud_head h;
	struct aud_walk w = { .q = q, .fn = fn, .user = user, .more = more };
	if (more)
		*more = false;
	int rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return aud_fail("txn_begin", rc);
	if ((rc = aud_read_head(a, txn, &h)))
		goto out;
	uint64_t start = q->after_id + 1;
	if (q->from_us > 0) {
		uint64_t f = aud_first_from(a, txn, h.id, q->from_us);
		start = f > start ? f : start;
	}
	if ((rc = mdb_cursor_open(txn, a->entries, &cur))) {
		rc = aud_fail("cursor_open", rc);
		goto out;
	}
	uint8_t kb[8];
	aud_put_be64(kb, start);
	MDB_val k = { sizeof kb, kb }, v;
	rc = aud_walk(cur, &k, &v, mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE), &w);
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

/* ---- verification ----------------------------------------------------- */

static void aud_broken(struct audit_report *r, uint64_t id, const char *reason)
{
	r->ok = false;
	r->broken_id = id;
	snprintf(r->reason, sizeof r->reason, "%s", reason);
}

/* Checks one entry against the chain so far; false with r filled when broken. */
static bool aud_check(const MDB_val *k, const MDB_val *v, struct audit_report *r)
{
	uint64_t want = r->last_id + 1;
	if (k->mv_size != 8) {
		aud_broken(r, want, "a key is not an 8-byte id");
		return false;
	}
	uint64_t id = aud_get_be64(k->mv_data);
	if (id != want) {
		aud_broken(r, want, "entry missing: the next stored id is larger");
		return false;
	}
	if (v->mv_size <= AUD_PREFIX) {
		aud_broken(r, id, "entry too short");
		return false;
	}
	const uint8_t *b = v->mv_data;
	uint8_t h[AUDIT_HASH_BYTES];
	aud_hash(b, (const char *)b + AUD_PREFIX, v->mv_size - AUD_PREFIX, h);
	if (sodium_memcmp(h, b + AUDIT_HASH_BYTES, AUDIT_HASH_BYTES)) {
		aud_broken(r, id, "altered: the entry's hash does not match its bytes");
		return false;
	}
	if (sodium_memcmp(b, r->head, AUDIT_HASH_BYTES)) {
		aud_broken(r, id, "chain broken: the previous hash is not the previous entry's hash");
		return false;
	}
	struct audit_entry e;
	if (aud_decode(k, v, &e)) {
		aud_broken(r, id, "undecodable entry, or its body holds another id");
		return false;
	}
	json_decref(e.detail);
	memcpy(r->head, h, AUDIT_HASH_BYTES);
	r->last_id = id;
	r->entries++;
	return true;
}

/* The walk ended cleanly: the recorded head must be the last entry. */
static void aud_check_head(const struct aud_head *h, struct audit_report *r)
{
	if (h->id > r->last_id)
		aud_broken(r, r->last_id + 1, "entries missing at the end of the log");
	else if (h->id < r->last_id)
		aud_broken(r, h->id + 1, "entry beyond the recorded head");
	else if (sodium_memcmp(h->hash, r->head, AUDIT_HASH_BYTES))
		aud_broken(r, h->id, "the recorded head hash differs from the last entry's");
}

int audit_verify(struct audit *a, struct audit_report *r)
{
	audit_flush(a);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct aud_head h;
	memset(r, 0, sizeof *r);
	r->ok = true;
	int rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return aud_fail("txn_begin", rc);
	if ((rc = aud_read_head(a, txn, &h)))
		goto out;
	if ((rc = mdb_cursor_open(txn, a->entries, &cur))) {
		rc = aud_fail("cursor_open", rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (!aud_check(&k, &v, r))
			break;
	if (rc && rc != MDB_NOTFOUND) {
		rc = aud_fail("cursor_get", rc);
		goto out;
	}
	rc = 0;
	if (r->ok)
		aud_check_head(&h, r);
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (!rc && !r->ok)
		nvr_log("error", "audit", "event=audit_chain_broken id=%llu reason=\"%s\"",
		        (unsigned long long)r->broken_id, r->reason);
	return rc;
}
