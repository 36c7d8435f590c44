/*
 * test_users.c - users and API tokens (nvr/users.h): the stored bytes never
 * hold a password or a token (the whole database file is searched for
 * them), the hash is Argon2id, a wrong password, an unknown name or a
 * disabled user is refused, a password change and a role change take
 * effect, tokens are checked by their hash, expire, are revoked, and go
 * with their user; failures leave the other users and tokens working.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "testutil.h"
#include "users.h"

static char *dir;
static struct users *db;

static void setup(void)
{
	dir = tu_tmpdir();
	cr_assert_eq(users_open(dir, &db), 0);
}

static void teardown(void)
{
	users_close(db);
	tu_rmrf(dir);
	free(dir);
}

TestSuite(users, .init = setup, .fini = teardown);

/* Whether the database file holds these bytes anywhere. */
static bool file_holds(const char *needle)
{
	char path[600];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	FILE *f = fopen(path, "rb");
	cr_assert(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n);
	cr_assert(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	bool found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
	free(buf);
	return found;
}

Test(users, password_is_stored_only_as_argon2id)
{
	const char *pw = "correct horse battery staple";
	cr_assert_eq(users_add(db, "alice", USERS_ROLE_INVESTIGATOR, pw), 0);
	cr_assert(file_holds("alice"), "the search would find what is there");
	cr_assert(file_holds("$argon2id$"), "the hash is Argon2id");
	cr_assert_not(file_holds(pw), "the password is in the database file");
	cr_assert_not(file_holds("horse battery"));
	struct users_user u;
	cr_assert_eq(users_get(db, "alice", &u), 0);
	cr_assert_str_eq(u.name, "alice");
	cr_assert_eq(u.role, USERS_ROLE_INVESTIGATOR);
	cr_assert(u.enabled);
}

Test(users, wrong_password_unknown_name_and_disabled_are_refused)
{
	struct users_user u;
	cr_assert_eq(users_add(db, "alice", USERS_ROLE_VIEWER, "alice-pass-1"), 0);
	cr_assert_eq(users_add(db, "bob", USERS_ROLE_ADMIN, "bob-pass-22"), 0);
	cr_assert_eq(users_check_password(db, "alice", "alice-pass-1", &u), 0);
	cr_assert_str_eq(u.name, "alice");
	cr_assert_eq(u.role, USERS_ROLE_VIEWER);
	cr_assert_eq(users_check_password(db, "alice", "alice-pass-2", &u), -EACCES);
	cr_assert_eq(users_check_password(db, "alice", "bob-pass-22", &u), -EACCES);
	cr_assert_eq(users_check_password(db, "alice", "", &u), -EACCES);
	cr_assert_eq(users_check_password(db, "carol", "alice-pass-1", &u), -EACCES);
	cr_assert_eq(users_check_password(db, "../x", "alice-pass-1", &u), -EACCES);
	cr_assert_eq(users_set_enabled(db, "alice", false), 0);
	cr_assert_eq(users_check_password(db, "alice", "alice-pass-1", &u), -EACCES);
	/* bob is untouched by all this */
	cr_assert_eq(users_check_password(db, "bob", "bob-pass-22", &u), 0);
	cr_assert_eq(u.role, USERS_ROLE_ADMIN);
}

Test(users, bad_input_is_refused_and_changes_nothing)
{
	uint64_t n, gen;
	cr_assert_eq(users_add(db, "alice", USERS_ROLE_VIEWER, "alice-pass-1"), 0);
	gen = users_generation(db);
	cr_assert_eq(users_add(db, "alice", USERS_ROLE_ADMIN, "another-pass"), -EEXIST);
	cr_assert_eq(users_add(db, "bad name", USERS_ROLE_VIEWER, "long-enough"), -EINVAL);
	cr_assert_eq(users_add(db, "short", USERS_ROLE_VIEWER, "1234567"), -EINVAL);
	cr_assert_eq(users_add(db, "role", 9, "long-enough"), -EINVAL);
	cr_assert_eq(users_delete(db, "nobody"), -ENOENT);
	cr_assert_eq(users_count(db, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(users_generation(db), gen, "a refused change bumped the generation");
	struct users_user u;
	cr_assert_eq(users_check_password(db, "alice", "alice-pass-1", &u), 0);
	cr_assert_eq(u.role, USERS_ROLE_VIEWER, "the refused add changed alice");
}

Test(users, password_and_role_changes_take_effect)
{
	struct users_user u;
	cr_assert_eq(users_add(db, "alice", USERS_ROLE_VIEWER, "first-pass"), 0);
	uint64_t gen = users_generation(db);
	cr_assert_eq(users_set_password(db, "alice", "second-pass"), 0);
	cr_assert_gt(users_generation(db), gen);
	cr_assert_eq(users_check_password(db, "alice", "first-pass", &u), -EACCES);
	cr_assert_eq(users_check_password(db, "alice", "second-pass", &u), 0);
	cr_assert_eq(users_set_role(db, "alice", USERS_ROLE_OPERATOR), 0);
	cr_assert_eq(users_check_password(db, "alice", "second-pass", &u), 0);
	cr_assert_eq(u.role, USERS_ROLE_OPERATOR);
}

Test(users, tokens_are_stored_hashed_and_checked)
{
	char tok[USERS_TOKEN_CHARS], tok2[USERS_TOKEN_CHARS];
	struct users_token t, t2, seen;
	struct users_user u;
	cr_assert_eq(users_add(db, "alice", USERS_ROLE_INVESTIGATOR, "alice-pass-1"), 0);
	cr_assert_eq(users_add(db, "bob", USERS_ROLE_VIEWER, "bob-pass-22"), 0);
	cr_assert_eq(users_token_create(db, "alice", "laptop", 0, tok, &t), 0);
	cr_assert_eq(users_token_create(db, "bob", "", 0, tok2, &t2), 0);
	cr_assert_eq(strlen(tok), USERS_TOKEN_CHARS - 1);
	cr_assert_eq(strncmp(tok, "nvr_", 4), 0);
	cr_assert_str_neq(tok, tok2);
	cr_assert_str_neq(t.id, t2.id);
	cr_assert(file_holds(t.id), "the token's id is stored");
	cr_assert_not(file_holds(tok), "the token is in the database file");
	cr_assert_not(file_holds(tok + 4), "the token's secret is in the database file");
	cr_assert_eq(users_token_check(db, tok, &u, &seen), 0);
	cr_assert_str_eq(u.name, "alice");
	cr_assert_eq(u.role, USERS_ROLE_INVESTIGATOR);
	cr_assert_str_eq(seen.id, t.id);
	cr_assert_str_eq(seen.label, "laptop");
	/* one changed digit, a cut token, another prefix: refused */
	char bad[USERS_TOKEN_CHARS];
	memcpy(bad, tok, sizeof bad);
	bad[10] = bad[10] == '0' ? '1' : '0';
	cr_assert_eq(users_token_check(db, bad, &u, NULL), -EACCES);
	bad[10] = tok[10];
	bad[USERS_TOKEN_CHARS - 2] = '\0';
	cr_assert_eq(users_token_check(db, bad, &u, NULL), -EACCES);
	cr_assert_eq(users_token_check(db, tok + 4, &u, NULL), -EACCES);
	/* the token acts with the user's current role */
	cr_assert_eq(users_set_role(db, "alice", USERS_ROLE_VIEWER), 0);
	cr_assert_eq(users_token_check(db, tok, &u, NULL), 0);
	cr_assert_eq(u.role, USERS_ROLE_VIEWER);
	/* revoked: gone; bob's still works */
	cr_assert_eq(users_token_revoke(db, t.id), 0);
	cr_assert_eq(users_token_check(db, tok, &u, NULL), -EACCES);
	cr_assert_eq(users_token_revoke(db, t.id), -ENOENT);
	cr_assert_eq(users_token_check(db, tok2, &u, NULL), 0);
	cr_assert_str_eq(u.name, "bob");
}

Test(users, tokens_expire_and_go_with_their_user)
{
	char tok[USERS_TOKEN_CHARS], old[USERS_TOKEN_CHARS], keep[USERS_TOKEN_CHARS];
	struct users_user u;
	cr_assert_eq(users_add(db, "alice", USERS_ROLE_ADMIN, "alice-pass-1"), 0);
	cr_assert_eq(users_add(db, "bob", USERS_ROLE_VIEWER, "bob-pass-22"), 0);
	cr_assert_eq(users_token_create(db, "alice", "", nvr_now_us() + 3600000000LL, tok, NULL), 0);
	cr_assert_eq(users_token_create(db, "alice", "", nvr_now_us() - 1, old, NULL), 0);
	cr_assert_eq(users_token_create(db, "bob", "", 0, keep, NULL), 0);
	cr_assert_eq(users_token_check(db, tok, &u, NULL), 0);
	cr_assert_eq(users_token_check(db, old, &u, NULL), -EACCES, "an expired token works");
	char none[USERS_TOKEN_CHARS];
	cr_assert_eq(users_token_create(db, "nobody", "", 0, none, NULL), -ENOENT);
	cr_assert_eq(users_set_enabled(db, "alice", false), 0);
	cr_assert_eq(users_token_check(db, tok, &u, NULL), -EACCES, "disabled user's token works");
	cr_assert_eq(users_set_enabled(db, "alice", true), 0);
	cr_assert_eq(users_token_check(db, tok, &u, NULL), 0);
	cr_assert_eq(users_delete(db, "alice"), 0);
	cr_assert_eq(users_token_check(db, tok, &u, NULL), -EACCES);
	/* bob and his token are still there */
	cr_assert_eq(users_token_check(db, keep, &u, NULL), 0);
	cr_assert_str_eq(u.name, "bob");
	uint64_t n;
	cr_assert_eq(users_count(db, &n), 0);
	cr_assert_eq(n, 1);
}
