/*
 * users.c - users, password hashes and API tokens (users.h) in their own
 * LMDB environment. Passwords go through libsodium's Argon2id
 * (crypto_pwhash_str / crypto_pwhash_str_verify), bounded by a semaphore;
 * tokens through SHA-256 (crypto_hash_sha256), compared by lookup of the
 * hash, never stored in clear.
 */
#include "users.h"

#include <errno.h>
#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lmdb_env.h"
#include "log.h"

#define USR_MAP_SIZE ((size_t)256 << 20)
#define USR_GENERATION_KEY "generation"
#define USR_VERIFY_WAIT_S 2

struct users {
	MDB_env *env;
	MDB_dbi users, tokens, meta;
	sem_t verify_slots;
	pthread_mutex_t dummy_lock;
	bool dummy_ready;
	char dummy_hash[crypto_pwhash_STRBYTES];   /* verified for unknown names */
};

static const char *const usr_roles[USERS_ROLE_COUNT] = {
	"viewer", "investigator", "operator", "admin",
};

const char *users_role_name(unsigned role)
{
	return role < USERS_ROLE_COUNT ? usr_roles[role] : "?";
}

int users_role_parse(const char *s, unsigned *role)
{
	for (unsigned i = 0; s && i < USERS_ROLE_COUNT; i++)
		if (!strcmp(s, usr_roles[i])) {
			*role = i;
			return 0;
		}
	return -EINVAL;
}

bool users_name_ok(const char *name)
{
	size_t n = name ? strnlen(name, USERS_MAX_NAME) : 0;
	if (n == 0 || n == USERS_MAX_NAME || name[0] == '.' || name[0] == '-')
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static bool usr_password_ok(const char *p)
{
	size_t n = p ? strnlen(p, USERS_MAX_PASSWORD + 1) : 0;
	return n >= USERS_MIN_PASSWORD && n <= USERS_MAX_PASSWORD;
}

/* ---- LMDB plumbing ---------------------------------------------------- */

static int usr_fail(const char *op, int rc)
{
	return nvr_lmdb_fail("users", op, rc);
}

static int usr_open_dbs(struct users *u)
{
	static const char *const names[] = { "users", "tokens", "meta" };
	MDB_dbi dbi[3];
	int rc = nvr_lmdb_open_dbs(u->env, "users", names, dbi, 3);
	u->users = dbi[0];
	u->tokens = dbi[1];
	u->meta = dbi[2];
	return rc;
}

int users_open(const char *dir, struct users **out)
{
	int rc;
	if (sodium_init() < 0)
		return -EIO;
	struct users *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	if (sem_init(&u->verify_slots, 0, USERS_MAX_VERIFY)) {
		free(u);
		return -errno;
	}
	pthread_mutex_init(&u->dummy_lock, NULL);
	if ((rc = nvr_lmdb_open(dir, "users", 3, USR_MAP_SIZE, &u->env)))
		goto fail;
	if ((rc = usr_open_dbs(u)))
		goto fail;
	*out = u;
	return 0;
fail:
	if (u->env)
		mdb_env_close(u->env);
	sem_destroy(&u->verify_slots);
	pthread_mutex_destroy(&u->dummy_lock);
	free(u);
	return rc;
}

void users_close(struct users *u)
{
	if (!u)
		return;
	mdb_env_close(u->env);
	sem_destroy(&u->verify_slots);
	pthread_mutex_destroy(&u->dummy_lock);
	sodium_memzero(u->dummy_hash, sizeof u->dummy_hash);
	free(u);
}

static uint64_t usr_read_generation(struct users *u, MDB_txn *txn)
{
	MDB_val k = { sizeof USR_GENERATION_KEY - 1, USR_GENERATION_KEY }, v;
	uint64_t g = 0;
	if (mdb_get(txn, u->meta, &k, &v) == 0 && v.mv_size == 8) {
		const uint8_t *b = v.mv_data;
		for (int i = 0; i < 8; i++)
			g = g << 8 | b[i];
	}
	return g;
}

/* Bumps the generation and commits; aborts on failure. */
static int usr_commit(struct users *u, MDB_txn *txn)
{
	uint64_t g = usr_read_generation(u, txn) + 1;
	uint8_t b[8];
	for (int i = 7; i >= 0; i--, g >>= 8)
		b[i] = (uint8_t)g;
	MDB_val k = { sizeof USR_GENERATION_KEY - 1, USR_GENERATION_KEY }, v = { sizeof b, b };
	int rc = mdb_put(txn, u->meta, &k, &v, 0);
	if (rc) {
		mdb_txn_abort(txn);
		return usr_fail("put_generation", rc);
	}
	return (rc = mdb_txn_commit(txn)) ? usr_fail("txn_commit", rc) : 0;
}

uint64_t users_generation(struct users *u)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(u->env, NULL, MDB_RDONLY, &txn);
	if (rc) {
		usr_fail("txn_begin", rc);
		return 0;
	}
	uint64_t g = usr_read_generation(u, txn);
	mdb_txn_abort(txn);
	return g;
}

int users_count(struct users *u, uint64_t *out)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc = mdb_txn_begin(u->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	rc = mdb_stat(txn, u->users, &st);
	mdb_txn_abort(txn);
	if (rc)
		return usr_fail("stat", rc);
	*out = st.ms_entries;
	return 0;
}

/* ---- user records ----------------------------------------------------- */

/* Decodes a stored user; hash (may be NULL) receives the Argon2id string. */
static int usr_decode(const MDB_val *v, struct users_user *out, char *hash, size_t hashsz)
{
	json_t *o = json_loadb(v->mv_data, v->mv_size, 0, NULL);
	const char *name = json_string_value(json_object_get(o, "name"));
	const char *h = json_string_value(json_object_get(o, "hash"));
	json_t *created = json_object_get(o, "created_us");
	unsigned role;
	int rc = -EBADMSG;
	if (!name || !users_name_ok(name) || !h || strlen(h) >= crypto_pwhash_STRBYTES ||
	    !json_is_integer(created) ||
	    users_role_parse(json_string_value(json_object_get(o, "role")), &role) ||
	    !json_is_boolean(json_object_get(o, "enabled"))) {
		nvr_log("error", "users", "event=bad_stored_user");
		goto out;
	}
	snprintf(out->name, sizeof out->name, "%s", name);
	out->role = role;
	out->enabled = json_is_true(json_object_get(o, "enabled"));
	out->created_us = json_integer_value(created);
	if (hash)
		snprintf(hash, hashsz, "%s", h);
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static int usr_put(struct users *u, MDB_txn *txn, const struct users_user *x, const char *hash,
                   unsigned flags)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:I}", "name", x->name, "role",
	                      users_role_name(x->role), "hash", hash, "enabled", x->enabled,
	                      "created_us", (json_int_t)x->created_us);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!text)
		return -ENOMEM;
	MDB_val k = { strlen(x->name), (void *)x->name }, v = { strlen(text), text };
	int rc = mdb_put(txn, u->users, &k, &v, flags);
	free(text);
	if (rc == MDB_KEYEXIST)
		return -EEXIST;
	return rc ? usr_fail("put_user", rc) : 0;
}

static int usr_get(struct users *u, MDB_txn *txn, const char *name, struct users_user *out,
                   char *hash, size_t hashsz)
{
	if (!users_name_ok(name))
		return -ENOENT;
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc = mdb_get(txn, u->users, &k, &v);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc)
		return usr_fail("get_user", rc);
	return usr_decode(&v, out, hash, hashsz);
}

static int usr_hash_password(const char *password, char hash[crypto_pwhash_STRBYTES])
{
	if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE)) {
		nvr_log("error", "users", "event=password_hash_failed reason=out_of_memory");
		return -ENOMEM;
	}
	return 0;
}

int users_add(struct users *u, const char *name, unsigned role, const char *password)
{
	char hash[crypto_pwhash_STRBYTES];
	MDB_txn *txn;
	if (!users_name_ok(name) || role >= USERS_ROLE_COUNT || !usr_password_ok(password))
		return -EINVAL;
	int rc = usr_hash_password(password, hash);
	if (rc)
		return rc;
	struct users_user x = { .role = role, .enabled = true, .created_us = nvr_now_us() };
	snprintf(x.name, sizeof x.name, "%s", name);
	if ((rc = mdb_txn_begin(u->env, NULL, 0, &txn)))
		return usr_fail("txn_begin", rc);
	if ((rc = usr_put(u, txn, &x, hash, MDB_NOOVERWRITE))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return usr_commit(u, txn);
}

/* Reads a user, lets `change` edit it (and its hash), writes it back. */
typedef int (*usr_change_fn)(struct users_user *x, char *hash, const void *arg);

static int usr_update(struct users *u, const char *name, usr_change_fn change, const void *arg)
{
	char hash[crypto_pwhash_STRBYTES];
	struct users_user x;
	MDB_txn *txn;
	int rc = mdb_txn_begin(u->env, NULL, 0, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	if ((rc = usr_get(u, txn, name, &x, hash, sizeof hash)) || (rc = change(&x, hash, arg)) ||
	    (rc = usr_put(u, txn, &x, hash, 0))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return usr_commit(u, txn);
}

static int usr_change_hash(struct users_user *x, char *hash, const void *arg)
{
	(void)x;
	memcpy(hash, arg, crypto_pwhash_STRBYTES);
	return 0;
}

static int usr_change_role(struct users_user *x, char *hash, const void *arg)
{
	(void)hash;
	x->role = *(const unsigned *)arg;
	return 0;
}

static int usr_change_enabled(struct users_user *x, char *hash, const void *arg)
{
	(void)hash;
	x->enabled = *(const bool *)arg;
	return 0;
}

int users_set_password(struct users *u, const char *name, const char *password)
{
	char hash[crypto_pwhash_STRBYTES];
	if (!usr_password_ok(password))
		return -EINVAL;
	int rc = usr_hash_password(password, hash);
	return rc ? rc : usr_update(u, name, usr_change_hash, hash);
}

int users_set_role(struct users *u, const char *name, unsigned role)
{
	if (role >= USERS_ROLE_COUNT)
		return -EINVAL;
	return usr_update(u, name, usr_change_role, &role);
}

int users_set_enabled(struct users *u, const char *name, bool enabled)
{
	return usr_update(u, name, usr_change_enabled, &enabled);
}

int users_get(struct users *u, const char *name, struct users_user *out)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(u->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	rc = usr_get(u, txn, name, out, NULL, 0);
	mdb_txn_abort(txn);
	return rc;
}

/* Calls each(ctx, value) for every record of dbi in key order, in one read
 * transaction; stops at the first non-zero answer and returns it. */
static int usr_walk(struct users *u, MDB_dbi dbi, int (*each)(void *ctx, const MDB_val *v),
                    void *ctx)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc = mdb_txn_begin(u->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
		rc = usr_fail("cursor_open", rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int err = each(ctx, &v);
		if (err) {
			rc = err;
			goto out;
		}
	}
	rc = rc == MDB_NOTFOUND ? 0 : usr_fail("cursor_get", rc);
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

struct usr_each {
	users_each_fn user_fn;
	users_token_fn token_fn;
	void *arg;
};

static int usr_each_user(void *ctx, const MDB_val *v)
{
	struct usr_each *e = ctx;
	struct users_user x;
	int err = usr_decode(v, &x, NULL, 0);
	return err ? err : e->user_fn(e->arg, &x);
}

int users_foreach(struct users *u, users_each_fn fn, void *arg)
{
	struct usr_each e = { .user_fn = fn, .arg = arg };
	return usr_walk(u, u->users, usr_each_user, &e);
}

/* ---- password checks -------------------------------------------------- */

/* A hash of a random password, made once: unknown names are verified
 * against it, so they cost the same time as a wrong password. */
static void usr_dummy_hash(struct users *u, char hash[crypto_pwhash_STRBYTES])
{
	pthread_mutex_lock(&u->dummy_lock);
	if (!u->dummy_ready) {
		unsigned char pw[16];
		randombytes_buf(pw, sizeof pw);
		u->dummy_ready = crypto_pwhash_str(u->dummy_hash, (const char *)pw, sizeof pw,
		                                   crypto_pwhash_OPSLIMIT_INTERACTIVE,
		                                   crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0;
	}
	memcpy(hash, u->dummy_hash, crypto_pwhash_STRBYTES);
	if (!u->dummy_ready)
		hash[0] = '\0';
	pthread_mutex_unlock(&u->dummy_lock);
}

/* Takes a verification slot, waiting at most USR_VERIFY_WAIT_S. */
static int usr_slot_take(struct users *u)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += USR_VERIFY_WAIT_S;
	while (sem_timedwait(&u->verify_slots, &until)) {
		if (errno == ETIMEDOUT) {
			nvr_log("warn", "users", "event=verify_busy slots=%d", USERS_MAX_VERIFY);
			return -EBUSY;
		}
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int users_check_password(struct users *u, const char *name, const char *password,
                         struct users_user *out)
{
	char hash[crypto_pwhash_STRBYTES];
	struct users_user x = { .enabled = false };
	int rc = users_name_ok(name) && password && strlen(password) <= USERS_MAX_PASSWORD ? 0 : -EACCES;
	if (!rc) {
		MDB_txn *txn;
		if ((rc = mdb_txn_begin(u->env, NULL, MDB_RDONLY, &txn)))
			return usr_fail("txn_begin", rc);
		rc = usr_get(u, txn, name, &x, hash, sizeof hash);
		mdb_txn_abort(txn);
		if (rc && rc != -ENOENT)
			return rc;
	}
	bool known = rc == 0;
	if (!known)
		usr_dummy_hash(u, hash);
	int slot = usr_slot_take(u);
	if (slot)
		return slot;
	bool match = hash[0] && password &&
	             crypto_pwhash_str_verify(hash, password, strnlen(password, USERS_MAX_PASSWORD)) == 0;
	sem_post(&u->verify_slots);
	sodium_memzero(hash, sizeof hash);
	if (!known || !match || !x.enabled)
		return -EACCES;
	*out = x;
	return 0;
}

/* ---- tokens ----------------------------------------------------------- */

static int usr_token_decode(const MDB_val *v, struct users_token *t)
{
	json_t *o = json_loadb(v->mv_data, v->mv_size, 0, NULL);
	const char *id = json_string_value(json_object_get(o, "id"));
	const char *label = json_string_value(json_object_get(o, "label"));
	const char *user = json_string_value(json_object_get(o, "user"));
	json_t *c = json_object_get(o, "created_us"), *e = json_object_get(o, "expires_us");
	int rc = -EBADMSG;
	if (!id || strlen(id) != USERS_TOKEN_ID_CHARS - 1 || !label || strlen(label) >= sizeof t->label ||
	    !user || !users_name_ok(user) || !json_is_integer(c) || !json_is_integer(e)) {
		nvr_log("error", "users", "event=bad_stored_token");
		goto out;
	}
	memset(t, 0, sizeof *t);
	snprintf(t->id, sizeof t->id, "%s", id);
	snprintf(t->label, sizeof t->label, "%s", label);
	snprintf(t->user, sizeof t->user, "%s", user);
	t->created_us = json_integer_value(c);
	t->expires_us = json_integer_value(e);
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static int usr_token_put(struct users *u, MDB_txn *txn, const uint8_t key[32],
                         const struct users_token *t)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "id", t->id, "label", t->label, "user",
	                      t->user, "created_us", (json_int_t)t->created_us, "expires_us",
	                      (json_int_t)t->expires_us);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!text)
		return -ENOMEM;
	MDB_val k = { 32, (void *)key }, v = { strlen(text), text };
	int rc = mdb_put(txn, u->tokens, &k, &v, MDB_NOOVERWRITE);
	free(text);
	return rc ? usr_fail("put_token", rc) : 0;
}

int users_token_create(struct users *u, const char *user, const char *label,
                       int64_t expires_us, char token[USERS_TOKEN_CHARS],
                       struct users_token *info)
{
	uint8_t secret[32], key[32];
	char hex[2 * sizeof key + 1];
	struct users_user x;
	struct users_token t = { .created_us = nvr_now_us(), .expires_us = expires_us };
	MDB_txn *txn;
	label = label ? label : "";
	if (strlen(label) >= sizeof t.label || expires_us < 0)
		return -EINVAL;
	int rc = mdb_txn_begin(u->env, NULL, 0, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	if ((rc = usr_get(u, txn, user, &x, NULL, 0)))
		goto fail;
	rc = -EACCES;
	if (!x.enabled)
		goto fail;
	randombytes_buf(secret, sizeof secret);
	sodium_bin2hex(token + 4, USERS_TOKEN_CHARS - 4, secret, sizeof secret);
	memcpy(token, USERS_TOKEN_PREFIX, 4);
	crypto_hash_sha256(key, (const unsigned char *)token, USERS_TOKEN_CHARS - 1);
	sodium_bin2hex(hex, sizeof hex, key, sizeof key);
	snprintf(t.id, sizeof t.id, "%.16s", hex);
	snprintf(t.label, sizeof t.label, "%s", label);
	snprintf(t.user, sizeof t.user, "%s", x.name);
	if ((rc = usr_token_put(u, txn, key, &t)))
		goto fail;
	sodium_memzero(secret, sizeof secret);
	if ((rc = mdb_txn_commit(txn))) {
		rc = usr_fail("txn_commit", rc);
		sodium_memzero(token, USERS_TOKEN_CHARS);
		return rc;
	}
	if (info)
		*info = t;
	return 0;
fail:
	mdb_txn_abort(txn);
	sodium_memzero(secret, sizeof secret);
	sodium_memzero(token, USERS_TOKEN_CHARS);
	return rc;
}

int users_token_check(struct users *u, const char *token, struct users_user *out,
                      struct users_token *info)
{
	uint8_t key[32];
	struct users_token t;
	struct users_user x;
	MDB_txn *txn;
	size_t n = token ? strnlen(token, USERS_TOKEN_CHARS) : 0;
	if (n != USERS_TOKEN_CHARS - 1 || strncmp(token, USERS_TOKEN_PREFIX, 4))
		return -EACCES;
	crypto_hash_sha256(key, (const unsigned char *)token, n);
	int rc = mdb_txn_begin(u->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	MDB_val k = { sizeof key, key }, v;
	rc = mdb_get(txn, u->tokens, &k, &v);
	if (rc == 0)
		rc = usr_token_decode(&v, &t);
	else
		rc = rc == MDB_NOTFOUND ? -EACCES : usr_fail("get_token", rc);
	if (!rc)
		rc = usr_get(u, txn, t.user, &x, NULL, 0);
	mdb_txn_abort(txn);
	if (rc == -ENOENT || (!rc && (!x.enabled || (t.expires_us && t.expires_us <= nvr_now_us()))))
		rc = -EACCES;
	if (rc)
		return rc;
	*out = x;
	if (info)
		*info = t;
	return 0;
}

/* Finds a token by id with a cursor in txn; 0 leaves the cursor on it. */
static int usr_token_seek(MDB_cursor *cur, const char *id, struct users_token *t)
{
	MDB_val k, v;
	int rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (usr_token_decode(&v, t) == 0 && !strcmp(t->id, id))
			return 0;
	return rc == MDB_NOTFOUND ? -ENOENT : usr_fail("cursor_get", rc);
}

int users_token_revoke(struct users *u, const char *id)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	struct users_token t;
	int rc = mdb_txn_begin(u->env, NULL, 0, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	if ((rc = mdb_cursor_open(txn, u->tokens, &cur))) {
		rc = usr_fail("cursor_open", rc);
		goto fail;
	}
	if ((rc = usr_token_seek(cur, id, &t)))
		goto fail;
	if ((rc = mdb_cursor_del(cur, 0))) {
		rc = usr_fail("del_token", rc);
		goto fail;
	}
	mdb_cursor_close(cur);
	return (rc = mdb_txn_commit(txn)) ? usr_fail("txn_commit", rc) : 0;
fail:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int users_token_get(struct users *u, const char *id, struct users_token *out)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	int rc = mdb_txn_begin(u->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	if ((rc = mdb_cursor_open(txn, u->tokens, &cur)))
		rc = usr_fail("cursor_open", rc);
	else
		rc = usr_token_seek(cur, id, out);
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

static int usr_each_token(void *ctx, const MDB_val *v)
{
	struct usr_each *e = ctx;
	struct users_token t;
	int err = usr_token_decode(v, &t);
	return err ? err : e->token_fn(e->arg, &t);
}

int users_token_foreach(struct users *u, users_token_fn fn, void *arg)
{
	struct usr_each e = { .token_fn = fn, .arg = arg };
	return usr_walk(u, u->tokens, usr_each_token, &e);
}

/* Deletes the user's tokens inside txn. */
static int usr_delete_tokens(struct users *u, MDB_txn *txn, const char *name)
{
	MDB_cursor *cur;
	MDB_val k, v;
	struct users_token t;
	int rc = mdb_cursor_open(txn, u->tokens, &cur);
	if (rc)
		return usr_fail("cursor_open", rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (usr_token_decode(&v, &t) || strcmp(t.user, name))
			continue;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : usr_fail("delete_tokens", rc);
}

int users_delete(struct users *u, const char *name)
{
	MDB_txn *txn;
	if (!users_name_ok(name))
		return -ENOENT;
	int rc = mdb_txn_begin(u->env, NULL, 0, &txn);
	if (rc)
		return usr_fail("txn_begin", rc);
	MDB_val k = { strlen(name), (void *)name };
	if ((rc = mdb_del(txn, u->users, &k, NULL))) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? -ENOENT : usr_fail("del_user", rc);
	}
	if ((rc = usr_delete_tokens(u, txn, name))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return usr_commit(u, txn);
}
