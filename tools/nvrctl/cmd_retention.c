/*
 * cmd_retention.c - legal holds, purges and the retention forecast from
 * the command line:
 *
 *   nvrctl holds create --camera ID[,ID...] --from T --to T --case REF
 *                       [--reason TEXT] [--expires T] [--data DIR]
 *   nvrctl holds list [--data DIR]
 *   nvrctl holds release ID [--data DIR]
 *   nvrctl purge --camera ID --from T --to T [--data DIR]
 *   nvrctl retention [--data DIR]
 *
 * Each opens the storage engine on DIR with the daemon's lock held (like
 * `nvrctl frames`), so they work on a stopped appliance and refuse to run
 * while nvrd records on the directory. Creating and releasing holds and
 * purging write an audit line (event=audit, the Unix user and the request)
 * to standard error, which journald keeps with the rest of the log.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../nvr/cli_parse.h"
#include "../../nvr/datadir.h"
#include "../../nvr/log.h"
#include "../../storage/storage.h"
#include "nvrctl.h"

#define DAY_US 86400e6

struct ret_args {
	const char *data;
	uint32_t cameras[STG_HOLD_MAX_CAMERAS];
	uint32_t ncams;
	int64_t from, to, expires;
	bool have_from, have_to;
	const char *case_ref, *reason;
};

static void holds_usage(FILE *f)
{
	fprintf(f,
	        "usage: nvrctl holds create --camera ID[,ID...] --from T --to T --case REF\n"
	        "                           [--reason TEXT] [--expires T] [--data DIR]\n"
	        "       nvrctl holds list [--data DIR]\n"
	        "       nvrctl holds release ID [--data DIR]\n"
	        "\n"
	        "Legal holds: held footage is never reclaimed, expired or purged until the\n"
	        "hold is released (or expires). nvrd must be stopped: these commands open\n"
	        "the recordings of DIR [./nvr-data] themselves.\n"
	        "T: Unix microseconds, or ISO 8601 such as 2026-01-01T12:00:00Z.\n");
}

static void purge_usage(FILE *f)
{
	fprintf(f,
	        "usage: nvrctl purge --camera ID --from T --to T [--data DIR]\n"
	        "\n"
	        "Erases a camera's footage overlapping [T, T) (whole chunks of a few\n"
	        "seconds): the bytes on disk are overwritten, then the index forgets them.\n"
	        "Refused, changing nothing, while a hold covers any of it. nvrd must be\n"
	        "stopped.\n");
}

static void retention_usage(FILE *f)
{
	fprintf(f,
	        "usage: nvrctl retention [--data DIR]\n"
	        "\n"
	        "Per class and per camera: the days of footage kept now, the days the\n"
	        "current ingest rates allow once the disks are full, and alarms (a class\n"
	        "below its promised minimum). Rates are learnt while recording, so on a\n"
	        "stopped appliance the forecast shows '-'. nvrd must be stopped.\n");
}

static int parse_cameras(const char *s, struct ret_args *a)
{
	char buf[1024];
	snprintf(buf, sizeof buf, "%s", s);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		uint32_t id;
		if (a->ncams == STG_HOLD_MAX_CAMERAS || cli_parse_u32(tok, 1, UINT32_MAX, &id))
			return -EINVAL;
		a->cameras[a->ncams++] = id;
	}
	return a->ncams ? 0 : -EINVAL;
}

/* Options shared by the subcommands; returns 0, 1 for --help, -2 bad. */
static int parse(int argc, char **argv, struct ret_args *a, void (*usage)(FILE *))
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "camera", required_argument, NULL, 'c' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "expires", required_argument, NULL, 'e' },
		{ "case", required_argument, NULL, 'C' },
		{ "reason", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*a = (struct ret_args){ .data = "./nvr-data", .reason = "" };
	int ch;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int bad = 0;
		switch (ch) {
		case 'd': a->data = optarg; break;
		case 'c': bad = parse_cameras(optarg, a); break;
		case 'f': bad = nvrctl_parse_time(optarg, &a->from); a->have_from = true; break;
		case 't': bad = nvrctl_parse_time(optarg, &a->to); a->have_to = true; break;
		case 'e': bad = nvrctl_parse_time(optarg, &a->expires); break;
		case 'C': a->case_ref = optarg; break;
		case 'r': a->reason = optarg; break;
		case 'h': usage(stdout); return 1;
		default: bad = -EINVAL; break;
		}
		if (bad) {
			fprintf(stderr, "nvrctl: bad or unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			return -2;
		}
	}
	return 0;
}

static int open_engine(const char *cmd, const char *data, struct datadir *d, struct stg **stg)
{
	nvr_log_set_level("warn");
	int err = datadir_init(d, data, 0, false);
	if (err)
		return err;
	if (!d->volume_count) {
		fprintf(stderr, "nvrctl %s: %s holds no volume (vol0, vol1, ...)\n", cmd, d->path);
		return -ENOENT;
	}
	if ((err = datadir_lock(d))) {
		fprintf(stderr, "nvrctl %s: %s is in use (is nvrd running? stop it first)\n", cmd,
		        d->path);
		return err;
	}
	struct stg_config base = { 0 };
	if ((err = datadir_open_storage(d, &base, stg))) {
		fprintf(stderr, "nvrctl %s: cannot open the storage of %s: %s\n", cmd, d->path,
		        stg_strerror(err));
		datadir_release(d);
	}
	return err;
}

static const char *who(void)
{
	struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_name : "unknown";
}

static void fmt_time(int64_t us, char *out, size_t n)
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	if (!us || !gmtime_r(&s, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, n, "-");
}

static int holds_create(struct stg *stg, const struct ret_args *a)
{
	if (!a->ncams || !a->have_from || !a->have_to || !a->case_ref || a->to <= a->from) {
		fprintf(stderr, "nvrctl holds create: --camera, --from, --to (after --from) and "
		        "--case are required\n");
		return -EINVAL;
	}
	struct stg_hold h = { .camera_count = a->ncams, .start_us = a->from, .end_us = a->to,
	                      .expires_us = a->expires };
	memcpy(h.cameras, a->cameras, a->ncams * sizeof *h.cameras);
	snprintf(h.case_ref, sizeof h.case_ref, "%s", a->case_ref);
	snprintf(h.reason, sizeof h.reason, "%s", a->reason);
	struct stg_missing miss[64];
	int nmiss = 0;
	int err = stg_hold_create(stg, &h, miss, 64, &nmiss);
	nvr_log("warn", "audit", "event=audit action=hold_create user=%s case=\"%s\" cameras=%u "
	        "from_us=%" PRId64 " to_us=%" PRId64 " result=\"%s\"", who(), h.case_ref,
	        h.camera_count, h.start_us, h.end_us, err ? stg_strerror(err) : "ok");
	if (err) {
		fprintf(stderr, "nvrctl holds create: %s%s\n", stg_strerror(err),
		        err == -ENOSPC ? " (holds would keep too much of the capacity)" : "");
		return err;
	}
	printf("hold %" PRIu64 " created: %.1f MB held\n", h.id, h.bytes / 1e6);
	for (int i = 0; i < nmiss && i < 64; i++) {
		char s[32], e[32];
		fmt_time(miss[i].start_us, s, sizeof s);
		fmt_time(miss[i].end_us, e, sizeof e);
		printf("not on disk: camera %" PRIu32 " %s .. %s (%" PRId64 " .. %" PRId64 ")\n",
		       miss[i].camera_id, s, e, miss[i].start_us, miss[i].end_us);
	}
	if (nmiss > 64)
		printf("not on disk: %d more stretches\n", nmiss - 64);
	return 0;
}

static int holds_list(struct stg *stg)
{
	int n = stg_hold_list(stg, NULL, 0);
	struct stg_hold *h = calloc((size_t)(n > 0 ? n : 1), sizeof *h);
	if (!h)
		return -ENOMEM;
	n = stg_hold_list(stg, h, n);
	printf("id\tcase\tcameras\tfrom\tto\texpires\theld_mb\treason\n");
	for (int i = 0; i < n; i++) {
		char f[32], t[32], x[32], cams[256] = "";
		fmt_time(h[i].start_us, f, sizeof f);
		fmt_time(h[i].end_us, t, sizeof t);
		fmt_time(h[i].expires_us, x, sizeof x);
		for (uint32_t j = 0; j < h[i].camera_count; j++)
			snprintf(cams + strlen(cams), sizeof cams - strlen(cams), "%s%" PRIu32,
			         j ? "," : "", h[i].cameras[j]);
		printf("%" PRIu64 "\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\n", h[i].id, h[i].case_ref, cams, f, t,
		       x, h[i].bytes / 1e6, h[i].reason);
	}
	free(h);
	return 0;
}

int cmd_holds(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "create") && strcmp(argv[1], "list") &&
	                 strcmp(argv[1], "release"))) {
		bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
		holds_usage(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	const char *sub = argv[1];
	struct ret_args a;
	int rc = parse(argc - 1, argv + 1, &a, holds_usage);
	if (rc)
		return rc > 0 ? 0 : 2;
	uint64_t id = 0;
	if (!strcmp(sub, "release") && (optind + 1 != argc - 1 ||
	    cli_parse_uint(argv[optind + 1], 1, UINT64_MAX, &id))) {
		holds_usage(stderr);
		return 2;
	}
	struct datadir d;
	struct stg *stg;
	if (open_engine("holds", a.data, &d, &stg))
		return 1;
	int err;
	if (!strcmp(sub, "create")) {
		err = holds_create(stg, &a);
	} else if (!strcmp(sub, "list")) {
		err = stg_retention_enforce(stg);   /* expired holds out, sizes now */
		if (!err)
			err = holds_list(stg);
	} else {
		err = stg_hold_release(stg, id);
		nvr_log("warn", "audit", "event=audit action=hold_release user=%s id=%" PRIu64
		        " result=\"%s\"", who(), id, err ? stg_strerror(err) : "ok");
		if (err)
			fprintf(stderr, "nvrctl holds release: %s\n",
			        err == -ENOENT ? "no such hold" : stg_strerror(err));
		else
			printf("hold %" PRIu64 " released\n", id);
	}
	stg_close(stg);
	datadir_release(&d);
	return err ? 1 : 0;
}

int cmd_purge(int argc, char **argv)
{
	struct ret_args a;
	int rc = parse(argc, argv, &a, purge_usage);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (a.ncams != 1 || !a.have_from || !a.have_to || a.to <= a.from) {
		fprintf(stderr, "nvrctl purge: one --camera, --from and --to (after --from) are "
		        "required\n");
		return 2;
	}
	struct datadir d;
	struct stg *stg;
	if (open_engine("purge", a.data, &d, &stg))
		return 1;
	struct stg_purge_report pr;
	int err = stg_purge(stg, a.cameras[0], a.from, a.to, &pr);
	nvr_log("warn", "audit", "event=audit action=purge user=%s camera=%" PRIu32 " from_us=%" PRId64
	        " to_us=%" PRId64 " chunks=%" PRIu64 " result=\"%s\"", who(), a.cameras[0], a.from,
	        a.to, pr.chunks, err ? stg_strerror(err) : "ok");
	if (err)
		fprintf(stderr, "nvrctl purge: %s%s\n", stg_strerror(err),
		        err == STG_EHELD ? " (release the hold first); nothing was erased" : "");
	else
		printf("purged camera %" PRIu32 ": %" PRIu64 " chunks, %" PRIu64 " frames, %.1f MB, "
		       "%" PRId64 " .. %" PRId64 "\n", a.cameras[0], pr.chunks, pr.frames,
		       pr.bytes / 1e6, pr.start_us, pr.end_us);
	stg_close(stg);
	datadir_release(&d);
	return err ? 1 : 0;
}

static void days(char *out, size_t n, int64_t us)
{
	if (us < 0)
		snprintf(out, n, "-");
	else
		snprintf(out, n, "%.2f", (double)us / DAY_US);
}

int cmd_retention(int argc, char **argv)
{
	struct ret_args a;
	int rc = parse(argc, argv, &a, retention_usage);
	if (rc)
		return rc > 0 ? 0 : 2;
	struct datadir d;
	struct stg *stg;
	if (open_engine("retention", a.data, &d, &stg))
		return 1;
	struct stg_retention_stats rs;
	struct stg_class_stats cs[65];
	int ncls = 0;
	int err = stg_retention_enforce(stg);
	if (!err)
		err = stg_retention_stats(stg, &rs, cs, 65, &ncls);
	int ncam = err ? 0 : stg_retention_cameras(stg, NULL, 0);
	struct stg_camera_retention *cr = calloc((size_t)(ncam > 0 ? ncam : 1), sizeof *cr);
	if (!err && !cr)
		err = -ENOMEM;
	if (!err && ncam > 0)
		ncam = stg_retention_cameras(stg, cr, ncam);
	if (!err) {
		printf("capacity_mb=%.0f held_mb=%.1f holds=%" PRIu32 " alarms=%" PRIu32 "\n",
		       rs.capacity_bytes / 1e6, rs.held_bytes / 1e6, rs.holds, rs.alarms);
		printf("class\tmin_days\tmax_days\tcameras\tkept_days\tforecast_days\tmbit_s\talarm\n");
		for (int i = 0; i < ncls && i < 65; i++) {
			char mn[16], mx[16], kept[16], fc[16];
			days(mn, sizeof mn, cs[i].cls.min_us);
			days(mx, sizeof mx, cs[i].cls.max_us ? cs[i].cls.max_us : -1);
			days(kept, sizeof kept, cs[i].retained_us);
			days(fc, sizeof fc, cs[i].forecast_us);
			printf("%s\t%s\t%s\t%" PRIu32 "\t%s\t%s\t%.2f\t%s\n", cs[i].cls.name, mn, mx,
			       cs[i].cameras, kept, fc, cs[i].bytes_per_s * 8 / 1e6,
			       cs[i].alarm ? "BELOW_PROMISE" : "ok");
		}
		printf("\ncamera\tclass\tkept_days\tforecast_days\tmbit_s\n");
		for (int i = 0; i < ncam; i++) {
			char kept[16], fc[16];
			days(kept, sizeof kept, cr[i].retained_us);
			days(fc, sizeof fc, cr[i].forecast_us);
			printf("%" PRIu32 "\t%s\t%s\t%s\t%.2f\n", cr[i].camera_id, cr[i].class_name, kept,
			       fc, cr[i].bytes_per_s * 8 / 1e6);
		}
	} else {
		fprintf(stderr, "nvrctl retention: %s\n", stg_strerror(err));
	}
	free(cr);
	stg_close(stg);
	datadir_release(&d);
	return err ? 1 : 0;
}
