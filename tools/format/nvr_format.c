/*
 * nvr_format.c - nvr-format: turns a directory into a storage volume, or
 * shows the header of an existing one.
 *
 * A volume (storage/storage.h) is a directory with a header and a ring of
 * preallocated segment files; this tool is the only place where that ring
 * is created, so recording never creates or grows a file. It refuses to
 * touch a directory that already holds something (files or a volume)
 * unless told --force, because formatting erases recorded footage.
 *
 *   nvr-format [--force] [--zero] [--segment-size SIZE] (--segments N | --size SIZE) DIR
 *   nvr-format --probe DIR
 *
 * Exit status: 0 done, 1 refused or failed (message on stderr), 2 usage.
 */
#include <getopt.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../storage/storage.h"
#include "../../nvr/cli_parse.h"
#include "../../nvr/volume_plan.h"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2 };

struct options {
	bool force;
	bool zero;
	bool probe;
	uint64_t segment_size;   /* 0 = default */
	uint32_t segments;       /* 0 = from size */
	uint64_t size;           /* 0 = from segments */
	const char *dir;
};

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: nvr-format [--force] [--zero] [--segment-size SIZE] (--segments N | --size SIZE) DIR\n"
	        "       nvr-format --probe DIR\n"
	        "\n"
	        "Formats DIR as a storage volume: a header and a ring of preallocated\n"
	        "segment files. SIZE is bytes with an optional K, M, G or T suffix\n"
	        "(powers of 1024).\n"
	        "\n"
	        "  --segments N         number of segment files (at least %u)\n"
	        "  --size SIZE          volume size; segments = SIZE / segment size\n"
	        "  --segment-size SIZE  bytes per segment, rounded up to a MiB [256M]\n"
	        "  --force              format even if DIR is not empty or is a volume\n"
	        "                       (erases the footage it holds)\n"
	        "  --zero               write zeros through every segment now: a slow\n"
	        "                       format, but the ring's first pass then records\n"
	        "                       at full speed (see stg_volume_format)\n"
	        "  --probe              print the header of the volume in DIR\n"
	        "  --help               this text\n",
	        VP_MIN_SEGMENTS);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nvr-format: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nRun 'nvr-format --help' for usage.\n");
	va_end(ap);
	return -EXIT_USAGE;
}

/* Fills `o` from the command line; returns 0, 1 for --help, or -EXIT_USAGE. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "zero", no_argument, NULL, 'z' },
		{ "probe", no_argument, NULL, 'p' },
		{ "segment-size", required_argument, NULL, 'S' },
		{ "segments", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o->force = true; break;
		case 'z': o->zero = true; break;
		case 'p': o->probe = true; break;
		case 'h': return 1;
		case 'S':
			if (vp_parse_size(optarg, &o->segment_size))
				return bad_usage("bad --segment-size '%s' (bytes, or a number with K, M, G or T)", optarg);
			break;
		case 's':
			if (vp_parse_size(optarg, &o->size))
				return bad_usage("bad --size '%s' (bytes, or a number with K, M, G or T)", optarg);
			break;
		case 'n':
			if (cli_parse_u32(optarg, 1, UINT32_MAX, &o->segments))
				return bad_usage("bad --segments '%s' (a positive whole number)", optarg);
			break;
		default:
			return bad_usage("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return bad_usage("missing DIR");
	if (optind < argc - 1)
		return bad_usage("more than one DIR given ('%s' and '%s')", argv[optind], argv[optind + 1]);
	o->dir = argv[optind];
	return 0;
}

/* Checks the option combination and works out segment size and count. */
static int plan(struct options *o)
{
	if (o->probe) {
		if (o->force || o->zero || o->segment_size || o->segments || o->size)
			return bad_usage("--probe takes no other option");
		return 0;
	}
	if (!!o->segments == !!o->size)
		return bad_usage("give exactly one of --segments N and --size SIZE");
	uint64_t want = o->segment_size ? o->segment_size : VP_DEFAULT_SEGMENT_SIZE;
	o->segment_size = vp_round_segment(want);
	if (o->size && o->size / o->segment_size > UINT32_MAX)
		return bad_usage("--size holds more than 2^32-1 segments; use a larger --segment-size");
	if (o->size)
		o->segments = vp_segments_in(o->size, o->segment_size);
	if (o->segments < VP_MIN_SEGMENTS) {
		char seg[32];
		vp_human(o->segment_size, seg, sizeof seg);
		fprintf(stderr,
		        "nvr-format: %s: refusing to format with %u segment(s) of %s: a volume "
		        "needs at least %u segments (give a larger --size or --segments, "
		        "or a smaller --segment-size)\n",
		        o->dir, o->segments, seg, VP_MIN_SEGMENTS);
		return -EXIT_REFUSED;
	}
	return 0;
}

static void print_info(const char *dir, const struct stg_volume_info *vi)
{
	char uuid[37], seg[32], total[32];
	vp_uuid_str(vi->uuid, uuid);
	vp_human(vi->segment_size, seg, sizeof seg);
	vp_human(vi->segment_size * vi->segment_count, total, sizeof total);
	printf("volume:         %s\n", dir);
	printf("uuid:           %s\n", uuid);
	printf("segment size:   %" PRIu64 " bytes (%s)\n", vi->segment_size, seg);
	printf("segment count:  %" PRIu32 "\n", vi->segment_count);
	printf("total:          %s\n", total);
}

static void print_created(const struct stg_volume_info *vi)
{
	time_t secs = (time_t)(vi->created_us / 1000000);
	struct tm tm;
	char when[40] = "unknown";
	if (gmtime_r(&secs, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("created:        %s\n", when);
	printf("format version: %" PRIu32 "\n", vi->format_version);
}

static int do_probe(const char *dir)
{
	struct stg_volume_info vi;
	int err = stg_volume_probe(dir, &vi);
	if (err) {
		fprintf(stderr, "nvr-format: %s: cannot read volume header: %s\n", dir,
		        stg_strerror(err));
		return EXIT_REFUSED;
	}
	print_info(dir, &vi);
	print_created(&vi);
	return 0;
}

static int do_format(const struct options *o)
{
	struct stg_volume_info vi;
	unsigned flags = (o->force ? STG_FORMAT_FORCE : 0) | (o->zero ? STG_FORMAT_ZERO : 0);
	int err = stg_volume_format(o->dir, o->segment_size, o->segments, flags, &vi);
	if (err == STG_EEXIST) {
		fprintf(stderr,
		        "nvr-format: %s: directory is not empty or is already a volume; "
		        "use --force to format it anyway (this erases what it holds)\n", o->dir);
		return EXIT_REFUSED;
	}
	if (err) {
		fprintf(stderr, "nvr-format: %s: format failed: %s\n", o->dir, stg_strerror(err));
		return EXIT_REFUSED;
	}
	print_info(o->dir, &vi);
	if (o->force)
		printf("note: the volume has a new UUID; an index that recorded the old "
		       "volume at this path will refuse this one\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	int rc = parse_args(argc, argv, &o);
	if (rc == 1) {
		usage(stdout);
		return 0;
	}
	if (!rc)
		rc = plan(&o);
	if (rc)
		return -rc;
	return o.probe ? do_probe(o.dir) : do_format(&o);
}
