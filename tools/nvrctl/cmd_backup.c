/*
 * cmd_backup.c - `nvrctl backup` and `nvrctl restore`: the data directory's
 * LMDB environments (index, registry, users, audit) into one compressed
 * file while nvrd runs, and back on a stopped appliance.
 *
 *   nvrctl backup --out FILE [--data DIR] [--level N]
 *   nvrctl restore --in FILE [--data DIR] [--volume DIR ...]
 *   nvrctl restore --check --in FILE
 *
 * The work is in nvr/backup.c (format in nvr/backup.h); this file parses
 * options, takes the daemon's lock for a restore (so it refuses to run
 * while nvrd does, and nvrd cannot start meanwhile) and prints summaries.
 * A restore rebuilds the index from the volumes afterwards, so it must see
 * every volume: DIR/vol0, vol1 ... unless --volume names them (appliances
 * whose configuration has [volume] sections).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../nvr/backup.h"
#include "../../nvr/cli_parse.h"
#include "../../nvr/datadir.h"
#include "../../nvr/log.h"
#include "../../storage/storage.h"
#include "nvrctl.h"

struct backup_args {
	const char *data, *file;
	uint32_t level;
	bool check;
	const char *volumes[DATADIR_MAX_VOLUMES];
	int nvolumes;
};

static void backup_usage(FILE *f)
{
	fprintf(f,
	        "usage: nvrctl backup --out FILE [--data DIR] [--level N]\n"
	        "       nvrctl restore --in FILE [--data DIR] [--volume DIR ...]\n"
	        "       nvrctl restore --check --in FILE\n"
	        "\n"
	        "backup: copies the index, cameras, users and audit trail of DIR, each\n"
	        "consistent and compacted, into one zstd-compressed FILE (written beside\n"
	        "it, synced, then renamed). Works while nvrd records.\n"
	        "restore: nvrd must be stopped. Checks every part of FILE, puts the\n"
	        "environments back (the replaced ones are kept as NAME.before-restore\n"
	        "until the end), then rebuilds the index from the volumes so that what\n"
	        "was recorded after the backup is found again.\n"
	        "\n"
	        "  --data DIR     data directory [./nvr-data]\n"
	        "  --out FILE     backup file to write\n"
	        "  --in FILE      backup file to restore\n"
	        "  --level N      zstd level, 1-19 [%d]\n"
	        "  --volume DIR   a volume of the appliance, repeated for each, when they\n"
	        "                 are not DIR/vol0, vol1 ... (every volume must be given)\n"
	        "  --check        only check FILE (no data directory needed)\n",
	        BKP_DEFAULT_LEVEL);
}

static int backup_parse(int argc, char **argv, bool restore, struct backup_args *a)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' }, { "out", required_argument, NULL, 'o' },
		{ "in", required_argument, NULL, 'i' },   { "level", required_argument, NULL, 'l' },
		{ "volume", required_argument, NULL, 'v' }, { "check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },       { NULL, 0, NULL, 0 },
	};
	*a = (struct backup_args){ .data = "./nvr-data", .level = BKP_DEFAULT_LEVEL };
	const char *cmd = restore ? "restore" : "backup";
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (ch == 'h') {
			backup_usage(stdout);
			return 1;
		}
		if (ch == 'd') {
			a->data = optarg;
		} else if ((ch == 'o' && !restore) || (ch == 'i' && restore)) {
			a->file = optarg;
		} else if (ch == 'l' && !restore && !cli_parse_u32(optarg, 1, 19, &a->level)) {
			continue;
		} else if (ch == 'c' && restore) {
			a->check = true;
		} else if (ch == 'v' && restore && a->nvolumes < DATADIR_MAX_VOLUMES) {
			a->volumes[a->nvolumes++] = optarg;
		} else {
			fprintf(stderr, "nvrctl %s: bad option or value '%s'\n", cmd, argv[optind - 1]);
			backup_usage(stderr);
			return -2;
		}
	}
	if (optind < argc || !a->file) {
		fprintf(stderr, "nvrctl %s: %s\n", cmd, optind < argc ? "unexpected argument" :
		        restore ? "--in FILE is required" : "--out FILE is required");
		backup_usage(stderr);
		return -2;
	}
	return 0;
}

static void format_time(int64_t us, char *out, size_t n)
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	if (!gmtime_r(&s, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, n, "%" PRId64, us);
}

static void print_entries(const struct bkp_info *info)
{
	for (uint32_t i = 0; i < info->count; i++) {
		const struct bkp_entry *e = &info->e[i];
		printf("  %-9s %12" PRIu64 " bytes, %12" PRIu64 " compressed, sha256 ", e->name,
		       e->size, e->zsize);
		for (int k = 0; k < 8; k++)
			printf("%02x", e->sha256[k]);
		printf("...\n");
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cmd_backup(int argc, char **argv)
{
	struct backup_args a;
	int rc = backup_parse(argc, argv, false, &a);
	if (rc)
		return rc > 0 ? 0 : 2;
	nvr_log_set_level("warn");
	struct datadir d;
	if (datadir_init(&d, a.data, 0, false))
		return 1;
	struct bkp_info info;
	double t0 = now_s();
	int err = bkp_backup(&d, a.file, (int)a.level, &info);
	if (err) {
		fprintf(stderr, "nvrctl backup: %s: %s (no backup written)\n", a.file,
		        stg_strerror(err));
		return 1;
	}
	char when[32];
	format_time(info.created_us, when, sizeof when);
	uint64_t raw = 0;
	for (uint32_t i = 0; i < info.count; i++)
		raw += info.e[i].size;
	printf("backup of %s written to %s (%s)\n", d.path, a.file, when);
	print_entries(&info);
	printf("environments=%" PRIu32 " raw_bytes=%" PRIu64 " file_bytes=%" PRIu64
	       " seconds=%.2f\n", info.count, raw, info.file_size, now_s() - t0);
	return 0;
}

/* `restore --check`: the header, then every section decompressed and hashed. */
static int check_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "nvrctl restore: %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct bkp_info info;
	int err = bkp_read_header(fd, &info);
	for (uint32_t i = 0; !err && i < info.count; i++)
		err = bkp_extract(fd, &info.e[i], -1);
	close(fd);
	if (err) {
		fprintf(stderr, "nvrctl restore: %s is not a sound backup: %s\n", path, strerror(-err));
		return 1;
	}
	char when[32];
	format_time(info.created_us, when, sizeof when);
	printf("%s: backup of %s, every checksum verified\n", path, when);
	print_entries(&info);
	return 0;
}

static void print_line(void *user, const char *line)
{
	(void)user;
	printf("  fsck: %s\n", line);
}

static void print_restored(const char *dir, const struct bkp_restore_report *r)
{
	char when[32];
	format_time(r->info.created_us, when, sizeof when);
	printf("restored into %s from the backup of %s:\n", dir, when);
	print_entries(&r->info);
	if (!r->rebuilt) {
		printf("index not rebuilt (no index in the backup, or no volume)\n");
		return;
	}
	printf("index rebuilt from the volumes: volumes=%" PRIu32 " segments=%" PRIu64
	       " chunks=%" PRIu64 " ranges=%" PRIu64 " damaged_records=%" PRIu64 "\n",
	       r->fsck.volumes, r->fsck.segments, r->fsck.chunks, r->fsck.ranges,
	       r->fsck.bad_records);
	printf("index entries the volumes added or extended: %" PRIu64 " (footage recorded "
	       "after the backup, and older footage the ring reused since)\n", r->fsck.differences);
	printf("the index as restored, before the rebuild, is kept in %s/index.old\n", dir);
}

static int open_datadir(const struct backup_args *a, struct datadir *d)
{
	int err = datadir_init(d, a->data, 0, false);
	if (!err && a->nvolumes)
		err = datadir_set_volumes(d, a->volumes, a->nvolumes);
	if (err)
		return err;
	if ((err = datadir_lock(d)))
		fprintf(stderr, "nvrctl restore: %s is in use (is nvrd running? stop it first); "
		        "nothing restored\n", d->path);
	return err;
}

int cmd_restore(int argc, char **argv)
{
	struct backup_args a;
	int rc = backup_parse(argc, argv, true, &a);
	if (rc)
		return rc > 0 ? 0 : 2;
	nvr_log_set_level("warn");
	if (a.check)
		return check_file(a.file);
	struct datadir d;
	if (open_datadir(&a, &d))
		return 1;
	struct bkp_restore_report r;
	int err = bkp_restore(&d, a.file, print_line, NULL, &r);
	if (err)
		fprintf(stderr, "nvrctl restore: %s: %s; the data directory is as it was\n", a.file,
		        stg_strerror(err));
	else
		print_restored(d.path, &r);
	datadir_release(&d);
	return err ? 1 : 0;
}
