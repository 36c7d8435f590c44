/*
 * cmd_audit.c - `nvrctl audit`: the audit trail (nvr/audit.h) in
 * DIR/audit, readable while nvrd runs.
 *
 *   audit list [--from T] [--to T] [--after ID] [--limit N] [--json]
 *        one line per entry (or one JSON object per line), oldest first;
 *        T is epoch milliseconds or UTC "YYYY-MM-DDTHH:MM:SSZ"
 *   audit verify
 *        walks the hash chain: "audit: ok ..." and exit 0, or the first
 *        broken entry ("audit: BROKEN at entry N: why") and exit 1
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../../nvr/audit.h"
#include "../../nvr/cli_parse.h"
#include "nvrctl.h"

#define AUD_DEFAULT_DATA "./nvr-data"

struct aud_args {
	const char *data;
	struct audit_query q;
	bool json;
	int npos;
};

/* Epoch milliseconds, or "YYYY-MM-DDTHH:MM:SSZ"; microseconds out. */
static int aud_parse_time(const char *s, int64_t *us)
{
	uint64_t ms;
	struct tm tm;
	if (cli_parse_uint(s, 0, INT64_MAX / 1000, &ms) == 0) {
		*us = (int64_t)ms * 1000;
		return 0;
	}
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -EINVAL;
	*us = (int64_t)timegm(&tm) * 1000000;
	return 0;
}

static int aud_parse(int argc, char **argv, struct aud_args *a, const char *usage)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "after", required_argument, NULL, 'a' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, bad = 0;
	*a = (struct aud_args){ .data = AUD_DEFAULT_DATA };
	optind = 1;
	opterr = 0;
	while (!bad && (ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': a->data = optarg; break;
		case 'f': bad = aud_parse_time(optarg, &a->q.from_us); break;
		case 't': bad = aud_parse_time(optarg, &a->q.to_us); break;
		case 'a': bad = cli_parse_uint(optarg, 0, INT64_MAX, &a->q.after_id); break;
		case 'l': bad = cli_parse_uint(optarg, 1, UINT32_MAX, &a->q.limit); break;
		case 'j': a->json = true; break;
		default: bad = 1;
		}
	}
	a->npos = argc - optind;
	if (bad || a->npos) {
		fprintf(stderr, "usage: nvrctl audit %s\n", usage);
		return 2;
	}
	return 0;
}

/* Opens DIR/audit, which must exist (nothing is created by reading). */
static int aud_open(const struct aud_args *a, struct audit **au)
{
	char path[4096];
	struct stat st;
	if (snprintf(path, sizeof path, "%s/audit", a->data) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if (stat(path, &st)) {
		fprintf(stderr, "nvrctl audit: no audit trail in %s\n", a->data);
		return -ENOENT;
	}
	int rc = audit_open(path, au);
	if (rc)
		fprintf(stderr, "nvrctl audit: cannot open %s: %s\n", path, strerror(-rc));
	return rc;
}

static int aud_print(void *arg, const struct audit_entry *e)
{
	const struct aud_args *a = arg;
	char t[40], hash[2 * AUDIT_HASH_BYTES + 1];
	time_t s = (time_t)(e->time_us / 1000000);
	struct tm tm;
	if (!gmtime_r(&s, &tm) || !strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(t, sizeof t, "?");
	if (a->json) {
		/* the stored body itself: what the hash covers */
		printf("%.*s\n", (int)e->body_len, e->body);
		return 0;
	}
	char *detail = json_dumps(e->detail, JSON_COMPACT | JSON_SORT_KEYS);
	audit_hex(e->hash, hash);
	printf("%" PRIu64 " %s.%03dZ %s %s %s %s %.16s\n", e->id, t,
	       (int)(e->time_us / 1000 % 1000), e->user, e->action, e->remote[0] ? e->remote : "-",
	       detail ? detail : "{}", hash);
	free(detail);
	return 0;
}

static int aud_list(int argc, char **argv)
{
	struct aud_args a;
	struct audit *au;
	bool more = false;
	if (aud_parse(argc, argv, &a, "list [--from T] [--to T] [--after ID] [--limit N] [--json] [--data DIR]"))
		return 2;
	if (aud_open(&a, &au))
		return 1;
	int rc = audit_list(au, &a.q, aud_print, &a, &more);
	audit_close(au);
	if (rc) {
		fprintf(stderr, "nvrctl audit list: %s%s\n", strerror(-rc),
		        rc == -EBADMSG ? " (run nvrctl audit verify)" : "");
		return 1;
	}
	if (more)
		fprintf(stderr, "(more entries: --after the last id listed)\n");
	return 0;
}

static int aud_verify(int argc, char **argv)
{
	struct aud_args a;
	struct audit *au;
	struct audit_report r;
	char head[2 * AUDIT_HASH_BYTES + 1];
	if (aud_parse(argc, argv, &a, "verify [--data DIR]"))
		return 2;
	if (aud_open(&a, &au))
		return 1;
	int rc = audit_verify(au, &r);
	audit_close(au);
	if (rc) {
		fprintf(stderr, "nvrctl audit verify: cannot read the log: %s\n", strerror(-rc));
		return 1;
	}
	audit_hex(r.head, head);
	if (!r.ok) {
		printf("audit: BROKEN at entry %" PRIu64 ": %s\n", r.broken_id, r.reason);
		printf("audit: %" PRIu64 " entries before it verify (last good id %" PRIu64
		       ", hash %s)\n", r.entries, r.last_id, head);
		return 1;
	}
	printf("audit: ok, %" PRIu64 " entries, last id %" PRIu64 ", head %s\n", r.entries, r.last_id,
	       head);
	return 0;
}

int cmd_audit(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "list"))
		return aud_list(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return aud_verify(argc - 1, argv + 1);
	FILE *f = argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr;
	fprintf(f, "usage:\n  nvrctl audit list [--from T] [--to T] [--after ID] [--limit N] [--json]"
	        " [--data DIR]\n  nvrctl audit verify [--data DIR]\n"
	        "T: epoch milliseconds or YYYY-MM-DDTHH:MM:SSZ; the log is DIR/audit.\n"
	        "verify exits 1 and names the first broken entry when the chain is broken.\n");
	return f == stdout ? 0 : 2;
}
