/*
 * nvr_fsck.c - nvr-fsck: checks the index against the volumes, offline.
 *
 * The volumes are self-describing, so the index can be rebuilt from them
 * alone; stg_fsck() does that into a scratch index, checks every chunk's
 * checksum on the way, and compares the result with the live index. This
 * tool prints each line of that report and turns the totals into an exit
 * status that scripts can act on. Run it only while nvrd is stopped.
 *
 *   nvr-fsck --index DIR --volume DIR [--volume DIR ...] [--rebuild] [--gap-ms N]
 *
 * Two guards around the engine call:
 *  - The index knows each volume by the exact path it was attached with, and
 *    nvrd attaches canonical paths, so paths given here are canonicalised
 *    too (otherwise "data/vol0" is refused as a volume "known under another
 *    path").
 *  - stg_fsck() with rebuild replaces the index even when a volume was
 *    refused, and the rebuilt index then lacks that volume's segments: the
 *    next nvrd would see them as free and overwrite the footage. So
 *    --rebuild first checks without rebuilding and goes ahead only when
 *    every volume was usable.
 *
 * Exit status: 0 index and volumes agree, nothing damaged, every volume
 * usable; 1 differences, damaged records or unusable volumes were found (and
 * printed); 2 error, or a rebuild refused.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../storage/storage.h"
#include "../../nvr/cli_parse.h"

enum { EXIT_FOUND = 1, EXIT_ERROR = 2 };

/* The engine keeps at most this many volumes (storage/internal.h). */
#define MAX_VOLUMES 256

struct options {
	const char *index;
	const char *volumes[MAX_VOLUMES];   /* canonical where they resolve */
	int nvolumes;
	char *owned[MAX_VOLUMES + 1];       /* canonical paths to free */
	int nowned;
	bool rebuild;
	uint32_t gap_ms;
};

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: nvr-fsck --index DIR --volume DIR [--volume DIR ...] [--rebuild] [--gap-ms N]\n"
	        "\n"
	        "Rebuilds the index the volumes imply (checking every chunk's checksum)\n"
	        "and compares it with the index in --index. nvrd must not be running.\n"
	        "\n"
	        "  --index DIR    the index directory (nvrd: DATA/index)\n"
	        "  --volume DIR   a volume directory; repeat for each (nvrd: DATA/volN).\n"
	        "                 Give every volume of the index: a rebuild forgets the\n"
	        "                 footage of a volume left out, and nvrd then reuses it\n"
	        "  --rebuild      replace the index with the rebuilt one (the old one is\n"
	        "                 kept as DIR.old); refused if a volume cannot be used.\n"
	        "                 Scans the volumes twice (check, then rebuild)\n"
	        "  --gap-ms N     frames further apart start a new range; must match\n"
	        "                 the engine's setting [1000]\n"
	        "  --help         this text\n"
	        "\n"
	        "Exit status: 0 index and volumes agree, 1 differences, damaged records\n"
	        "or unusable volumes found (listed above the summary), 2 error or\n"
	        "rebuild refused.\n");
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nvr-fsck: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nRun 'nvr-fsck --help' for usage.\n");
	va_end(ap);
	return -EXIT_ERROR;
}

/* Fills `o`; returns 0, 1 for --help, or -EXIT_ERROR after a message. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "index", required_argument, NULL, 'i' },
		{ "volume", required_argument, NULL, 'v' },
		{ "rebuild", no_argument, NULL, 'r' },
		{ "gap-ms", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': o->index = optarg; break;
		case 'r': o->rebuild = true; break;
		case 'h': return 1;
		case 'v':
			if (o->nvolumes == MAX_VOLUMES)
				return bad_usage("more than %d volumes", MAX_VOLUMES);
			o->volumes[o->nvolumes++] = optarg;
			break;
		case 'g':
			if (cli_parse_u32(optarg, 1, UINT32_MAX / 1000, &o->gap_ms))
				return bad_usage("bad --gap-ms '%s' (1 to %u)", optarg, UINT32_MAX / 1000);
			break;
		default:
			return bad_usage("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s'", argv[optind]);
	if (!o->index)
		return bad_usage("--index DIR is required");
	if (!o->nvolumes)
		return bad_usage("at least one --volume DIR is required");
	return 0;
}

/* Replaces each path that resolves by its canonical form. */
static void canonicalize(struct options *o)
{
	char *p = realpath(o->index, NULL);
	if (p)
		o->index = o->owned[o->nowned++] = p;
	for (int i = 0; i < o->nvolumes; i++)
		if ((p = realpath(o->volumes[i], NULL)))
			o->volumes[i] = o->owned[o->nowned++] = p;
}

static void release(struct options *o)
{
	for (int i = 0; i < o->nowned; i++)
		free(o->owned[i]);
	o->nowned = 0;
}

static void print_line(void *user, const char *line)
{
	FILE *to = user;
	fprintf(to, "%s\n", line);
	fflush(to);
}

static int run_fsck(const struct options *o, bool rebuild, FILE *to,
                    struct stg_fsck_report *r)
{
	struct stg_config cfg = {
		.index_dir = o->index, .volumes = o->volumes, .volume_count = o->nvolumes,
		.gap_us = o->gap_ms * 1000,
	};
	int err = stg_fsck(&cfg, rebuild, print_line, to, r);
	if (err)
		fprintf(stderr, "nvr-fsck: %s index %s failed: %s\n",
		        rebuild ? "checking and rebuilding" : "checking", o->index,
		        stg_strerror(err));
	return err;
}

/* The check before a rebuild, its report kept back: 0 when every volume is
 * usable, else its report is printed and the rebuild refused. */
static int precheck(const struct options *o)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	if (!mem) {
		fprintf(stderr, "nvr-fsck: %s\n", stg_strerror(-errno));
		return -ENOMEM;
	}
	struct stg_fsck_report r;
	int err = run_fsck(o, false, mem, &r);
	fclose(mem);
	if (!err && r.volumes_refused) {
		fwrite(buf, 1, len, stdout);
		fprintf(stderr, "nvr-fsck: not rebuilding: %" PRIu32 " volume(s) cannot be used "
		        "(see above); a rebuilt index would forget their footage and nvrd "
		        "would overwrite it. Fix or remove them from the command first.\n",
		        r.volumes_refused);
		err = -EPERM;
	}
	free(buf);
	return err;
}

static bool clean(const struct stg_fsck_report *r)
{
	return !r->differences && !r->bad_records && !r->volumes_refused;
}

static void print_verdict(const struct options *o, const struct stg_fsck_report *r)
{
	if (clean(r))
		printf("nvr-fsck: OK: index and volumes agree\n");
	else
		printf("nvr-fsck: PROBLEMS: differences=%" PRIu64 " damaged_records=%" PRIu64
		       " unusable_volumes=%" PRIu32 "\n",
		       r->differences, r->bad_records, r->volumes_refused);
	if (o->rebuild)
		printf("nvr-fsck: the index in %s was replaced by the one rebuilt from the "
		       "volumes (previous index kept in %s.old)\n", o->index, o->index);
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	int rc = parse_args(argc, argv, &o);
	if (rc == 1) {
		usage(stdout);
		return 0;
	}
	if (rc)
		return -rc;
	canonicalize(&o);
	struct stg_fsck_report r;
	if ((o.rebuild && precheck(&o)) || run_fsck(&o, o.rebuild, stdout, &r))
		rc = EXIT_ERROR;
	else
		rc = clean(&r) ? 0 : EXIT_FOUND;
	if (rc != EXIT_ERROR)
		print_verdict(&o, &r);
	release(&o);
	return rc;
}
