/*
 * api_auth.c - who is calling: the Authorization header of a request,
 * checked against the users and tokens of nvr/users.h.
 *
 *   Authorization: Basic base64(name:password)   Argon2id, slow on purpose
 *   Authorization: Bearer nvr_<64 hex digits>    an API token, fast
 *
 * Basic on every request would cost an Argon2id verification (about 0.1 s
 * and 64 MiB) per request, which a player fetching many segments cannot
 * afford. So a successful Basic check is remembered for AUTH_CACHE_TTL_S
 * seconds, keyed by HMAC-SHA-256(a random key made at start, name | 0 |
 * password): the password is never kept, and the key lives only in this
 * process's memory. An entry also remembers the users database's
 * generation: any change to users or tokens (a new password, a role, a
 * deletion, from nvrd or nvrctl) makes every cached entry miss. Failures
 * are never cached; each is audited as login_failed with the name tried,
 * never the password.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "log.h"
#include "users.h"

#define AUTH_CACHE_SLOTS 64
#define AUTH_CACHE_TTL_S 60
#define AUTH_MAX_B64 2048
#define AUTH_MAX_PLAIN (USERS_MAX_NAME + 1 + USERS_MAX_PASSWORD + 1)

_Static_assert(WEB_ROLE_VIEWER == (int)USERS_ROLE_VIEWER &&
               WEB_ROLE_INVESTIGATOR == (int)USERS_ROLE_INVESTIGATOR &&
               WEB_ROLE_OPERATOR == (int)USERS_ROLE_OPERATOR &&
               WEB_ROLE_ADMIN == (int)USERS_ROLE_ADMIN, "web and users roles differ");

struct api_auth_slot {
	uint8_t key[crypto_auth_hmacsha256_BYTES];
	char user[USERS_MAX_NAME];
	unsigned role;
	uint64_t generation;
	int64_t expires_mono_us;
	bool used;
};

struct api_auth_cache {
	pthread_mutex_t lock;
	uint8_t hmac_key[crypto_auth_hmacsha256_KEYBYTES];
	struct api_auth_slot slot[AUTH_CACHE_SLOTS];
	unsigned next;
};

int api_auth_init(struct web *w)
{
	if (sodium_init() < 0)
		return -EIO;
	struct api_auth_cache *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	crypto_auth_hmacsha256_keygen(c->hmac_key);
	w->auth_cache = c;
	return 0;
}

void api_auth_free(struct web *w)
{
	struct api_auth_cache *c = w->auth_cache;
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	sodium_memzero(c, sizeof *c);
	free(c);
	w->auth_cache = NULL;
}

static void auth_cache_key(struct api_auth_cache *c, const char *name, const char *password,
                           uint8_t out[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, c->hmac_key, sizeof c->hmac_key);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)name, strlen(name) + 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)password, strlen(password));
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

static bool auth_cache_get(struct api_auth_cache *c, const uint8_t *key, uint64_t gen,
                           struct users_user *out)
{
	bool hit = false;
	int64_t now = nvr_mono_us();
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < AUTH_CACHE_SLOTS && !hit; i++) {
		struct api_auth_slot *s = &c->slot[i];
		if (!s->used || sodium_memcmp(s->key, key, sizeof s->key))
			continue;
		if (s->generation != gen || s->expires_mono_us <= now) {
			s->used = false;
			break;
		}
		snprintf(out->name, sizeof out->name, "%s", s->user);
		out->role = s->role;
		hit = true;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void auth_cache_put(struct api_auth_cache *c, const uint8_t *key, uint64_t gen,
                           const struct users_user *u)
{
	pthread_mutex_lock(&c->lock);
	struct api_auth_slot *s = &c->slot[c->next++ % AUTH_CACHE_SLOTS];
	memcpy(s->key, key, sizeof s->key);
	snprintf(s->user, sizeof s->user, "%s", u->name);
	s->role = u->role;
	s->generation = gen;
	s->expires_mono_us = nvr_mono_us() + AUTH_CACHE_TTL_S * 1000000LL;
	s->used = true;
	pthread_mutex_unlock(&c->lock);
}

/* Splits "Basic <base64>" into name and password (in plain). 0 or -EINVAL. */
static int auth_basic_decode(const char *b64, char plain[AUTH_MAX_PLAIN], char **password)
{
	size_t n = strnlen(b64, AUTH_MAX_B64 + 1), len = 0;
	const char *end = NULL;
	if (n == 0 || n > AUTH_MAX_B64 ||
	    sodium_base642bin((unsigned char *)plain, AUTH_MAX_PLAIN - 1, b64, n, NULL, &len, &end,
	                      sodium_base64_VARIANT_ORIGINAL) || end != b64 + n)
		return -EINVAL;
	plain[len] = '\0';
	char *colon = memchr(plain, ':', len);
	if (!colon || memchr(plain, '\0', len))
		return -EINVAL;
	*colon = '\0';
	*password = colon + 1;
	return 0;
}

/* Basic: the cache, else Argon2id. 0, -EACCES, -EBUSY or another errno. */
static int auth_basic(struct web *w, const char *name, const char *password,
                      struct users_user *out)
{
	uint8_t key[crypto_auth_hmacsha256_BYTES];
	uint64_t gen = users_generation(w->ctx.users);
	auth_cache_key(w->auth_cache, name, password, key);
	if (auth_cache_get(w->auth_cache, key, gen, out))
		return 0;
	int rc = users_check_password(w->ctx.users, name, password, out);
	if (!rc)
		auth_cache_put(w->auth_cache, key, gen, out);
	sodium_memzero(key, sizeof key);
	return rc;
}

/* The 401 answer, audited as login_failed when credentials were given. */
static int auth_refuse(struct web *w, struct web_request *req, const char *method,
                       const char *tried, struct web_reply *rep)
{
	int err = 0;
	if (method) {
		json_t *d = json_pack("{s:s, s:s}", "method", method, "user_tried", tried);
		snprintf(req->user, sizeof req->user, "anonymous");
		err = d ? api_audit_read(w, req, "login_failed", d) : -ENOMEM;
		json_decref(d);
		nvr_log("warn", "web", "event=login_failed method=%s user_tried=%s remote=%s", method,
		        tried, req->remote[0] ? req->remote : "-");
	}
	if (api_error(rep, 401, NULL, method ? "wrong credentials" : "authentication required"))
		return -ENOMEM;
	rep->challenge = true;
	return err ? err : 1;
}

int api_authenticate(struct web *w, const char *authorization, struct web_request *req,
                     struct web_reply *rep)
{
	char plain[AUTH_MAX_PLAIN];
	char *password = NULL;
	const char *method = NULL, *tried = "";
	struct users_user u;
	int rc = -EACCES;
	if (!authorization)
		return auth_refuse(w, req, NULL, NULL, rep);
	if (!strncasecmp(authorization, "Basic ", 6)) {
		method = "basic";
		tried = "(unreadable)";
		if (auth_basic_decode(authorization + 6 + strspn(authorization + 6, " "), plain,
		                      &password) == 0) {
			tried = users_name_ok(plain) ? plain : "(invalid name)";
			rc = w->ctx.users ? auth_basic(w, plain, password, &u) : -EACCES;
		}
	} else if (!strncasecmp(authorization, "Bearer ", 7)) {
		method = "bearer";
		tried = "(token)";
		const char *tok = authorization + 7 + strspn(authorization + 7, " ");
		rc = w->ctx.users ? users_token_check(w->ctx.users, tok, &u, NULL) : -EACCES;
	} else {
		method = "unsupported";
		tried = "(unsupported scheme)";
	}
	if (rc == -EBUSY) {
		sodium_memzero(plain, sizeof plain);
		return api_error(rep, 503, NULL, "too many logins in progress, retry") ? -ENOMEM : 1;
	}
	if (rc == -EACCES)
		rc = auth_refuse(w, req, method, tried, rep);
	else if (rc == 0) {
		snprintf(req->user, sizeof req->user, "%s", u.name);
		req->role = u.role;
		req->authenticated = true;
	}
	sodium_memzero(plain, sizeof plain);
	return rc;
}
