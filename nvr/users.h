/*
 * users.h - the users of the HTTP API and their API tokens, kept in their
 * own LMDB environment (DATA/users, datadir.h).
 *
 * A user has a name, a role (viewer, investigator, operator, admin), an
 * Argon2id password hash (libsodium crypto_pwhash_str, "interactive"
 * limits: 64 MiB and about 0.1 s per verification, on purpose) and an
 * enabled flag. The password itself is never stored, logged or returned.
 *
 * An API token is 32 random bytes (randombytes_buf) shown once, as
 * "nvr_" followed by 64 hex digits; only its SHA-256 is stored, so a copy
 * of the database gives no usable token. A token has an id (the first 16
 * hex digits of that hash, which is what listings show and revoke takes),
 * a label, its user, its creation time and an optional expiry. A token acts
 * with its user's current role; deleting or disabling the user stops it.
 *
 * Password checks are slow and take 64 MiB each: at most
 * USERS_MAX_VERIFY run at once in a process; a check that waited 2 s for a
 * slot gives up with -EBUSY, so a login flood costs bounded memory. An
 * unknown name costs the same time as a wrong password.
 *
 * Layout: "users" name -> JSON {name, role, hash, enabled, created_us};
 * "tokens" SHA-256(token)[32] -> JSON {id, name, user, created_us,
 * expires_us}; "meta" "generation" -> 8 bytes big-endian, bumped by every
 * change to a user (added, password, role, enabled, deleted), not by token
 * changes: a cache of password checks keyed on users_generation() notices
 * any change that could alter one, also one made by another process, and
 * is not emptied each time someone makes a token.
 */
#ifndef NVR_USERS_H
#define NVR_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum users_role {
	USERS_ROLE_VIEWER = 0,
	USERS_ROLE_INVESTIGATOR = 1,
	USERS_ROLE_OPERATOR = 2,
	USERS_ROLE_ADMIN = 3,
};
#define USERS_ROLE_COUNT 4

#define USERS_MAX_NAME 64          /* bytes, NUL included */
#define USERS_MIN_PASSWORD 8
#define USERS_MAX_PASSWORD 1024
#define USERS_TOKEN_PREFIX "nvr_"
#define USERS_TOKEN_CHARS (4 + 64 + 1)   /* "nvr_" + hex + NUL */
#define USERS_TOKEN_ID_CHARS (16 + 1)
#define USERS_MAX_VERIFY 2

struct users;

struct users_user {
	char name[USERS_MAX_NAME];
	unsigned role;                   /* enum users_role */
	bool enabled;
	int64_t created_us;
};

struct users_token {
	char id[USERS_TOKEN_ID_CHARS];
	char label[USERS_MAX_NAME];
	char user[USERS_MAX_NAME];
	int64_t created_us;
	int64_t expires_us;              /* 0: never */
};

/* "viewer", "investigator", "operator", "admin" ("?" otherwise). */
const char *users_role_name(unsigned role);
/* 0 with *role set, or -EINVAL. */
int users_role_parse(const char *s, unsigned *role);
/* Names: 1 to 63 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool users_name_ok(const char *name);

/* Opens (creating, mode 0700) the store in directory `dir`. */
int users_open(const char *dir, struct users **out);
void users_close(struct users *u);
uint64_t users_generation(struct users *u);
int users_count(struct users *u, uint64_t *out);

/* Adds a user (-EEXIST if the name is taken; -EINVAL for a bad name, role,
 * or a password shorter than USERS_MIN_PASSWORD or longer than the max). */
int users_add(struct users *u, const char *name, unsigned role, const char *password);
int users_set_password(struct users *u, const char *name, const char *password);
int users_set_role(struct users *u, const char *name, unsigned role);
int users_set_enabled(struct users *u, const char *name, bool enabled);
/* Deletes the user and every token of theirs; -ENOENT if absent. */
int users_delete(struct users *u, const char *name);
int users_get(struct users *u, const char *name, struct users_user *out);
typedef int (*users_each_fn)(void *user, const struct users_user *x);
int users_foreach(struct users *u, users_each_fn fn, void *arg);

/* 0 with *out filled when name and password match an enabled user;
 * -EACCES otherwise (unknown, wrong, disabled: the caller cannot tell);
 * -EBUSY when no verification slot freed up in time. */
int users_check_password(struct users *u, const char *name, const char *password,
                         struct users_user *out);

/* Makes a token for an existing, enabled user; the token text (shown once)
 * goes to token[USERS_TOKEN_CHARS], its record to *info (may be NULL). */
int users_token_create(struct users *u, const char *user, const char *label,
                       int64_t expires_us, char token[USERS_TOKEN_CHARS],
                       struct users_token *info);
/* 0 with the token's user (current role) and record when the token is
 * known, unexpired and its user enabled; -EACCES otherwise. */
int users_token_check(struct users *u, const char *token, struct users_user *out,
                      struct users_token *info);
/* Revokes by id; -ENOENT if no such token. */
int users_token_revoke(struct users *u, const char *id);
int users_token_get(struct users *u, const char *id, struct users_token *out);
typedef int (*users_token_fn)(void *user, const struct users_token *t);
int users_token_foreach(struct users *u, users_token_fn fn, void *arg);

#endif
