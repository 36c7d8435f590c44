/*
 * cmd_frames.c - `nvrctl frames`: a camera's recorded frames, read back
 * through the storage engine, for checks and investigations.
 *
 *   nvrctl frames --camera ID [--data DIR] [--from T] [--to T]
 *                 [--out FILE] [--list FILE]
 *
 * Opens the engine on DIR/index and every DIR/volN (datadir.h), with the
 * daemon's lock held so that nvrd cannot start on the directory meanwhile
 * (and refusing to run while nvrd holds it). Iterates the camera's frames
 * from T0 (default: the first one recorded) to T1 (default: the last one)
 * and writes their bytes back to back to --out: the recorder stores access
 * units in Annex B form, so that file is an elementary stream ffprobe and
 * ffmpeg read. --list writes one line per frame:
 *
 *   time_us size key xxh3
 *
 * (key is 0 or 1; xxh3 is XXH3-64 of the frame's bytes in 16 hex digits).
 * FILE "-" is standard output. Times T are Unix microseconds (digits only)
 * or ISO 8601: 2026-01-01T12:00:00[.ffffff][Z|+hh:mm|-hh:mm], UTC when no
 * offset is given. A summary line goes to standard error.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "../../nvr/cli_parse.h"
#include "../../nvr/datadir.h"
#include "../../nvr/log.h"
#include "../../storage/storage.h"
#include "nvrctl.h"

struct frames_args {
	const char *data;
	uint32_t camera;
	int64_t from, to;
	const char *out, *list, *ranges;
};

struct frames_sum {
	uint64_t frames, bytes, keys, discontinuities;
	int64_t first_us, last_us;
};

static void frames_usage(FILE *f)
{
	fprintf(f,
	        "usage: nvrctl frames --camera ID [--data DIR] [--from T] [--to T]\n"
	        "                     [--out FILE] [--list FILE] [--ranges FILE]\n"
	        "\n"
	        "Reads a camera's recorded frames (nvrd must be stopped).\n"
	        "\n"
	        "  --camera ID   camera id\n"
	        "  --data DIR    data directory [./nvr-data]\n"
	        "  --from T      first time (default: the first frame recorded)\n"
	        "  --to T        end time, exclusive (default: after the last frame)\n"
	        "  --out FILE    frame bytes back to back (Annex B elementary stream)\n"
	        "  --list FILE   one line per frame: time_us size key(0/1) xxh3-64-hex\n"
	        "  --ranges FILE one line per recorded range: start_us end_us (what lies\n"
	        "                between two lines is a gap: no footage)\n"
	        "\n"
	        "T: Unix microseconds, or ISO 8601 such as 2026-01-01T12:00:00.5Z\n"
	        "(UTC when no offset is given). FILE \"-\" is standard output.\n");
}

/* "[.ffffff]" then "Z", "+hh:mm", "-hh:mm", "+hhmm" or nothing. */
static int parse_tail(const char *p, int64_t *frac_us, int64_t *offset_s)
{
	*frac_us = 0;
	*offset_s = 0;
	if (*p == '.' || *p == ',') {
		int64_t scale = 100000;
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++, scale /= 10)
			*frac_us += (*p - '0') * scale;
	}
	if (*p == 'Z' || *p == 'z')
		return p[1] ? -EINVAL : 0;
	if (!*p)
		return 0;
	if (*p != '+' && *p != '-')
		return -EINVAL;
	int sign = *p == '-' ? -1 : 1, hh, mm = 0, n = 0;
	if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 &&
	    sscanf(p + 1, "%2d%2d%n", &hh, &mm, &n) != 2 && sscanf(p + 1, "%2d%n", &hh, &n) != 1)
		return -EINVAL;
	if (p[1 + n] || hh > 23 || mm > 59)
		return -EINVAL;
	*offset_s = sign * (hh * 3600 + mm * 60);
	return 0;
}

int nvrctl_parse_time(const char *s, int64_t *out)
{
	uint64_t us;
	if (cli_parse_uint(s, 0, INT64_MAX, &us) == 0) {
		*out = (int64_t)us;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
	int64_t frac, offset;
	if (!p || parse_tail(p, &frac, &offset))
		return -EINVAL;
	*out = ((int64_t)timegm(&tm) - offset) * 1000000 + frac;
	return 0;
}

static int frames_parse(int argc, char **argv, struct frames_args *a)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' }, { "camera", required_argument, NULL, 'c' },
		{ "from", required_argument, NULL, 'f' }, { "to", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },  { "list", required_argument, NULL, 'l' },
		{ "ranges", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },       { NULL, 0, NULL, 0 },
	};
	*a = (struct frames_args){ .data = "./nvr-data", .from = 0, .to = INT64_MAX };
	bool have_camera = false;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': a->data = optarg; break;
		case 'o': a->out = optarg; break;
		case 'l': a->list = optarg; break;
		case 'r': a->ranges = optarg; break;
		case 'h': frames_usage(stdout); return 1;
		case 'c':
			if (cli_parse_u32(optarg, 1, INT32_MAX, &a->camera))
				goto bad_value;
			have_camera = true;
			break;
		case 'f':
		case 't':
			if (nvrctl_parse_time(optarg, ch == 'f' ? &a->from : &a->to))
				goto bad_value;
			break;
		default:
			fprintf(stderr, "nvrctl frames: bad option '%s'\n", argv[optind - 1]);
			frames_usage(stderr);
			return -2;
		}
	}
	if (optind < argc || !have_camera) {
		fprintf(stderr, "nvrctl frames: %s\n", have_camera ? "unexpected argument" : "--camera is required");
		frames_usage(stderr);
		return -2;
	}
	return 0;
bad_value:
	fprintf(stderr, "nvrctl frames: bad value '%s' for %s\n", optarg, argv[optind - 1]);
	return -2;
}

static FILE *open_out(const char *path)
{
	if (!path)
		return NULL;
	if (!strcmp(path, "-"))
		return stdout;
	FILE *f = fopen(path, "wb");
	if (!f)
		fprintf(stderr, "nvrctl frames: cannot write %s: %s\n", path, strerror(errno));
	return f;
}

static int close_out(FILE *f, const char *path)
{
	if (!f)
		return 0;
	int err = ferror(f) ? EIO : 0;
	if (f == stdout ? fflush(f) : fclose(f))
		err = errno ? errno : EIO;
	if (err)
		fprintf(stderr, "nvrctl frames: writing %s: %s\n", path, strerror(err));
	return err ? -err : 0;
}

static int put_frame(const struct stg_read_frame *f, FILE *out, FILE *list, struct frames_sum *sum)
{
	if (out && fwrite(f->data, 1, f->size, out) != f->size)
		return -EIO;
	if (list && fprintf(list, "%" PRId64 " %" PRIu32 " %d %016llx\n", f->time_us, f->size,
	                    f->key ? 1 : 0, (unsigned long long)XXH3_64bits(f->data, f->size)) < 0)
		return -EIO;
	if (!sum->frames)
		sum->first_us = f->time_us;
	sum->last_us = f->time_us;
	sum->frames++;
	sum->bytes += f->size;
	sum->keys += f->key;
	sum->discontinuities += f->discontinuity;
	return 0;
}

static int dump(struct stg *stg, const struct frames_args *a, FILE *out, FILE *list,
                struct frames_sum *sum)
{
	struct stg_iter *it;
	int err = stg_iter_open(stg, a->camera, a->from, a->to, &it);
	if (err) {
		fprintf(stderr, "nvrctl frames: camera %" PRIu32 ": %s\n", a->camera, stg_strerror(err));
		return err;
	}
	struct stg_read_frame f;
	while ((err = stg_iter_next(it, &f)) == 1) {
		err = put_frame(&f, out, list, sum);
		if (err) {
			fprintf(stderr, "nvrctl frames: write failed: %s\n", strerror(-err));
			break;
		}
	}
	if (err < 0 && err != -EIO)
		fprintf(stderr, "nvrctl frames: camera %" PRIu32 ": reading: %s\n", a->camera,
		        stg_strerror(err));
	stg_iter_close(it);
	return err < 0 ? err : 0;
}

/* The camera's recorded ranges in the window, one "start_us end_us" line each. */
static int write_ranges(struct stg *stg, const struct frames_args *a, FILE *f)
{
	int n = stg_ranges(stg, a->camera, a->from, a->to, NULL, 0);
	if (n <= 0)
		return n;
	struct stg_range *r = calloc((size_t)n, sizeof *r);
	if (!r)
		return -ENOMEM;
	int got = stg_ranges(stg, a->camera, a->from, a->to, r, n);
	for (int i = 0; i < got && i < n; i++)
		fprintf(f, "%" PRId64 " %" PRId64 "\n", r[i].start_us, r[i].end_us);
	free(r);
	return got < 0 ? got : 0;
}

static int open_storage(const struct frames_args *a, struct datadir *d, struct stg **stg)
{
	int err = datadir_init(d, a->data, 0, false);
	if (err)
		return err;
	if (!d->volume_count) {
		fprintf(stderr, "nvrctl frames: %s holds no volume (vol0, vol1, ...)\n", d->path);
		return -ENOENT;
	}
	err = datadir_lock(d);
	if (err) {
		fprintf(stderr, "nvrctl frames: %s is in use (is nvrd running?)\n", d->path);
		return err;
	}
	struct stg_config base = { 0 };
	err = datadir_open_storage(d, &base, stg);
	if (err) {
		fprintf(stderr, "nvrctl frames: cannot open the storage of %s: %s\n", d->path,
		        stg_strerror(err));
		datadir_release(d);
	}
	return err;
}

int cmd_frames(int argc, char **argv)
{
	struct frames_args a;
	int rc = frames_parse(argc, argv, &a);
	if (rc)
		return rc > 0 ? 0 : 2;
	nvr_log_set_level("warn");
	struct datadir d;
	struct stg *stg;
	if (open_storage(&a, &d, &stg))
		return 1;
	FILE *out = open_out(a.out), *list = open_out(a.list);
	struct frames_sum sum = { 0 };
	int err = (a.out && !out) || (a.list && !list) ? -EIO : dump(stg, &a, out, list, &sum);
	if (close_out(out, a.out))
		err = -EIO;
	if (close_out(list, a.list))
		err = -EIO;
	FILE *ranges = open_out(a.ranges);
	if (a.ranges && (!ranges || write_ranges(stg, &a, ranges) || close_out(ranges, a.ranges)))
		err = -EIO;
	stg_close(stg);
	datadir_release(&d);
	fprintf(stderr, "camera=%" PRIu32 " frames=%" PRIu64 " bytes=%" PRIu64 " key_frames=%" PRIu64
	        " discontinuities=%" PRIu64 " first_us=%" PRId64 " last_us=%" PRId64 "\n", a.camera,
	        sum.frames, sum.bytes, sum.keys, sum.discontinuities, sum.first_us, sum.last_us);
	return err ? 1 : 0;
}
