/*
 * cmd_users.c - `nvrctl users` and `nvrctl tokens`: the users of the HTTP
 * API and their tokens (nvr/users.h) in DIR/users, usable while nvrd runs.
 *
 *   users add NAME --role ROLE      password read from stdin (one line;
 *                                   not echoed on a terminal)
 *   users list
 *   users passwd NAME               new password from stdin
 *   users role NAME ROLE
 *   users enable NAME | disable NAME
 *   users delete NAME               and every token of theirs
 *   tokens create --user NAME [--label TEXT] [--expires-days N]
 *                                   prints the token, this once
 *   tokens list
 *   tokens revoke ID
 *
 * Passwords never appear on the command line (where `ps` would show them),
 * in output or in logs. Every change goes to the audit trail (DIR/audit) as
 * done by "nvrctl:<login name>".
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../../nvr/audit.h"
#include "../../nvr/cli_parse.h"
#include "../../nvr/log.h"
#include "../../nvr/users.h"
#include "nvrctl.h"

#define USR_DEFAULT_DATA "./nvr-data"

struct usr_args {
	const char *data;
	const char *role, *user, *label;
	uint32_t expires_days;
	int npos;
	char **pos;
};

/* Opens DIR/users and DIR/audit. */
static int usr_open(const struct usr_args *a, struct users **u, struct audit **au)
{
	char path[4096];
	int rc;
	*u = NULL;
	*au = NULL;
	if (snprintf(path, sizeof path, "%s/users", a->data) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if ((rc = users_open(path, u))) {
		fprintf(stderr, "nvrctl: cannot open %s: %s\n", path, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof path, "%s/audit", a->data);
	if ((rc = audit_open(path, au))) {
		fprintf(stderr, "nvrctl: cannot open %s: %s\n", path, strerror(-rc));
		users_close(*u);
		*u = NULL;
	}
	return rc;
}

/* Appends a change to the audit trail as "nvrctl:<login>". */
static int usr_audit(struct audit *au, const char *action, json_t *detail)
{
	char who[AUDIT_MAX_USER];
	struct passwd *pw = getpwuid(getuid());
	snprintf(who, sizeof who, "nvrctl:%s", pw && users_name_ok(pw->pw_name) ? pw->pw_name : "?");
	int rc = detail ? audit_append(au, who, action, NULL, detail, NULL) : -ENOMEM;
	json_decref(detail);
	if (rc)
		fprintf(stderr, "nvrctl: the change was made but not audited: %s\n", strerror(-rc));
	return rc;
}

/* One line from stdin into buf (newline removed), without echo on a tty. */
static int usr_read_password(const char *prompt, char *buf, size_t n)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fprintf(stderr, "%s", prompt);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *got = fgets(buf, (int)n, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!got)
		return -EINVAL;
	size_t len = strcspn(buf, "\r\n");
	if (buf[len] == '\0' && len == n - 1)
		return -E2BIG;            /* no newline within the buffer */
	buf[len] = '\0';
	return 0;
}

static int usr_get_password(char *buf, size_t n)
{
	int rc = usr_read_password("password: ", buf, n);
	if (!rc && (strlen(buf) < USERS_MIN_PASSWORD || strlen(buf) > USERS_MAX_PASSWORD))
		rc = -EINVAL;
	if (rc)
		fprintf(stderr, "nvrctl users: a password of %d to %d bytes is read from stdin\n",
		        USERS_MIN_PASSWORD, USERS_MAX_PASSWORD);
	return rc;
}

static const char *usr_why(int rc)
{
	switch (rc) {
	case -EEXIST: return "a user with this name exists";
	case -ENOENT: return "no such user";
	case -EINVAL: return "bad name (1 to 63 of A-Z a-z 0-9 . _ -) or role";
	case -EACCES: return "the user is disabled";
	}
	return strerror(-rc);
}

static int usr_add(struct users *u, struct audit *au, const struct usr_args *a)
{
	char pw[USERS_MAX_PASSWORD + 2];
	unsigned role;
	if (!a->role || users_role_parse(a->role, &role)) {
		fprintf(stderr, "nvrctl users add: --role viewer|investigator|operator|admin is required\n");
		return -EINVAL;
	}
	int rc = usr_get_password(pw, sizeof pw);
	if (!rc)
		rc = users_add(u, a->pos[0], role, pw);
	sodium_memzero(pw, sizeof pw);
	if (rc == -EINVAL && !users_name_ok(a->pos[0]))
		fprintf(stderr, "nvrctl users add: %s\n", usr_why(rc));
	else if (rc && rc != -EINVAL)
		fprintf(stderr, "nvrctl users add: %s: %s\n", a->pos[0], usr_why(rc));
	if (rc)
		return rc;
	printf("added %s (%s)\n", a->pos[0], users_role_name(role));
	return usr_audit(au, "user_created", json_pack("{s:s, s:s}", "name", a->pos[0], "role",
	                                                users_role_name(role)));
}

static void usr_time(int64_t us, char *buf, size_t n)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	if (!us || !gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, n, "-");
}

static int usr_print(void *arg, const struct users_user *x)
{
	(void)arg;
	char t[32];
	usr_time(x->created_us, t, sizeof t);
	printf("%-24s %-13s %-8s %s\n", x->name, users_role_name(x->role),
	       x->enabled ? "enabled" : "disabled", t);
	return 0;
}

static int usr_list(struct users *u, struct audit *au, const struct usr_args *a)
{
	(void)au;
	(void)a;
	printf("%-24s %-13s %-8s %s\n", "NAME", "ROLE", "STATE", "CREATED");
	return users_foreach(u, usr_print, NULL);
}

static int usr_passwd(struct users *u, struct audit *au, const struct usr_args *a)
{
	char pw[USERS_MAX_PASSWORD + 2];
	int rc = usr_get_password(pw, sizeof pw);
	if (!rc)
		rc = users_set_password(u, a->pos[0], pw);
	sodium_memzero(pw, sizeof pw);
	if (rc) {
		fprintf(stderr, "nvrctl users passwd: %s: %s\n", a->pos[0], usr_why(rc));
		return rc;
	}
	printf("password of %s changed\n", a->pos[0]);
	return usr_audit(au, "user_password_changed", json_pack("{s:s}", "name", a->pos[0]));
}

static int usr_role(struct users *u, struct audit *au, const struct usr_args *a)
{
	unsigned role;
	int rc = users_role_parse(a->pos[1], &role);
	if (!rc)
		rc = users_set_role(u, a->pos[0], role);
	if (rc) {
		fprintf(stderr, "nvrctl users role: %s: %s\n", a->pos[0], usr_why(rc));
		return rc;
	}
	printf("%s is now %s\n", a->pos[0], users_role_name(role));
	return usr_audit(au, "user_role_changed", json_pack("{s:s, s:s}", "name", a->pos[0], "role",
	                                                     users_role_name(role)));
}

static int usr_enable(struct users *u, struct audit *au, const struct usr_args *a, bool on)
{
	int rc = users_set_enabled(u, a->pos[0], on);
	if (rc) {
		fprintf(stderr, "nvrctl users: %s: %s\n", a->pos[0], usr_why(rc));
		return rc;
	}
	printf("%s %s\n", a->pos[0], on ? "enabled" : "disabled");
	return usr_audit(au, on ? "user_enabled" : "user_disabled",
	                 json_pack("{s:s}", "name", a->pos[0]));
}

static int usr_on(struct users *u, struct audit *au, const struct usr_args *a)
{
	return usr_enable(u, au, a, true);
}

static int usr_off(struct users *u, struct audit *au, const struct usr_args *a)
{
	return usr_enable(u, au, a, false);
}

static int usr_delete(struct users *u, struct audit *au, const struct usr_args *a)
{
	int rc = users_delete(u, a->pos[0]);
	if (rc) {
		fprintf(stderr, "nvrctl users delete: %s: %s\n", a->pos[0], usr_why(rc));
		return rc;
	}
	printf("deleted %s and their tokens\n", a->pos[0]);
	return usr_audit(au, "user_deleted", json_pack("{s:s}", "name", a->pos[0]));
}

static int tok_create(struct users *u, struct audit *au, const struct usr_args *a)
{
	char token[USERS_TOKEN_CHARS];
	struct users_token t;
	if (!a->user) {
		fprintf(stderr, "nvrctl tokens create: --user NAME is required\n");
		return -EINVAL;
	}
	int64_t exp = a->expires_days ? nvr_now_us() + (int64_t)a->expires_days * 86400000000LL : 0;
	int rc = users_token_create(u, a->user, a->label, exp, token, &t);
	if (rc) {
		fprintf(stderr, "nvrctl tokens create: %s: %s\n", a->user, usr_why(rc));
		return rc;
	}
	printf("%s\n", token);
	sodium_memzero(token, sizeof token);
	fprintf(stderr, "token %s for %s: shown this once, keep it safe\n", t.id, t.user);
	return usr_audit(au, "token_created", json_pack("{s:s, s:s, s:s}", "token_id", t.id, "user",
	                                                 t.user, "label", t.label));
}

static int tok_print(void *arg, const struct users_token *t)
{
	(void)arg;
	char c[32], e[32];
	usr_time(t->created_us, c, sizeof c);
	usr_time(t->expires_us, e, sizeof e);
	printf("%-16s %-24s %-20s %-20s %s\n", t->id, t->user, c, e, t->label);
	return 0;
}

static int tok_list(struct users *u, struct audit *au, const struct usr_args *a)
{
	(void)au;
	(void)a;
	printf("%-16s %-24s %-20s %-20s %s\n", "ID", "USER", "CREATED", "EXPIRES", "LABEL");
	return users_token_foreach(u, tok_print, NULL);
}

static int tok_revoke(struct users *u, struct audit *au, const struct usr_args *a)
{
	struct users_token t;
	int rc = users_token_get(u, a->pos[0], &t);
	if (!rc)
		rc = users_token_revoke(u, a->pos[0]);
	if (rc) {
		fprintf(stderr, "nvrctl tokens revoke: %s: %s\n", a->pos[0],
		        rc == -ENOENT ? "no such token" : strerror(-rc));
		return rc;
	}
	printf("revoked %s\n", t.id);
	return usr_audit(au, "token_revoked", json_pack("{s:s, s:s}", "token_id", t.id, "user",
	                                                 t.user));
}

typedef int (*usr_run_fn)(struct users *u, struct audit *au, const struct usr_args *a);

struct usr_sub {
	const char *group, *name;
	usr_run_fn run;
	int npos;
	const char *usage;
};

static const struct usr_sub usr_subs[] = {
	{ "users", "add", usr_add, 1, "add NAME --role viewer|investigator|operator|admin (password on stdin)" },
	{ "users", "list", usr_list, 0, "list" },
	{ "users", "passwd", usr_passwd, 1, "passwd NAME (password on stdin)" },
	{ "users", "role", usr_role, 2, "role NAME viewer|investigator|operator|admin" },
	{ "users", "enable", usr_on, 1, "enable NAME" },
	{ "users", "disable", usr_off, 1, "disable NAME" },
	{ "users", "delete", usr_delete, 1, "delete NAME" },
	{ "tokens", "create", tok_create, 0, "create --user NAME [--label TEXT] [--expires-days N]" },
	{ "tokens", "list", tok_list, 0, "list" },
	{ "tokens", "revoke", tok_revoke, 1, "revoke ID" },
};
#define USR_NSUBS (sizeof usr_subs / sizeof usr_subs[0])

static void usr_usage(FILE *f, const char *group)
{
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < USR_NSUBS; i++)
		if (!strcmp(usr_subs[i].group, group))
			fprintf(f, "  nvrctl %s %s [--data DIR]\n", group, usr_subs[i].usage);
	fprintf(f, "DIR defaults to %s; users and tokens are in DIR/users, changes are\n"
	        "audited in DIR/audit.\n", USR_DEFAULT_DATA);
}

/* Options; returns 0, or 2 after a message. */
static int usr_parse(const struct usr_sub *s, int argc, char **argv, struct usr_args *a)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "role", required_argument, NULL, 'r' },
		{ "user", required_argument, NULL, 'u' },
		{ "label", required_argument, NULL, 'l' },
		{ "expires-days", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	*a = (struct usr_args){ .data = USR_DEFAULT_DATA };
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': a->data = optarg; break;
		case 'r': a->role = optarg; break;
		case 'u': a->user = optarg; break;
		case 'l': a->label = optarg; break;
		case 'e':
			if (cli_parse_u32(optarg, 1, 3650, &a->expires_days))
				goto bad;
			break;
		default:
			goto bad;
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos == s->npos)
		return 0;
bad:
	fprintf(stderr, "usage: nvrctl %s %s [--data DIR]\n", s->group, s->usage);
	return 2;
}

static int usr_group(const char *group, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help")) {
		usr_usage(argc < 2 ? stderr : stdout, group);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < USR_NSUBS; i++) {
		const struct usr_sub *s = &usr_subs[i];
		if (strcmp(s->group, group) || strcmp(s->name, argv[1]))
			continue;
		struct usr_args a;
		struct users *u;
		struct audit *au;
		if (usr_parse(s, argc - 1, argv + 1, &a))
			return 2;
		if (usr_open(&a, &u, &au))
			return 1;
		int rc = s->run(u, au, &a);
		users_close(u);
		audit_close(au);
		return rc ? 1 : 0;
	}
	fprintf(stderr, "nvrctl %s: unknown subcommand \"%s\"\n", group, argv[1]);
	usr_usage(stderr, group);
	return 2;
}

int cmd_users(int argc, char **argv)
{
	return usr_group("users", argc, argv);
}

int cmd_tokens(int argc, char **argv)
{
	return usr_group("tokens", argc, argv);
}
