/*
 * nvrd.c - the recorder daemon, for now only a host for the storage engine.
 *
 * It prepares a data directory (DATA/index and one volume per DATA/volN,
 * formatted the way nvr-format does it when a directory holds no volume
 * yet), opens the engine, and feeds it. Camera ingest (RTSP) does not exist
 * yet, so the frames come from an in-process synthetic demo source: N
 * cameras at 25 fps, a key frame every 2 s, about 1 Mbit/s each, paced in
 * real time from this one thread. Its bytes are not decodable video; the
 * source is named as such in the log so nobody mistakes it for recording.
 *
 * Every 5 s one status line reports frames written and dropped, and each
 * volume's state and free segments. SIGINT or SIGTERM stops the feed, the
 * engine flushes and closes, and the daemon exits 0. Log lines are key=value
 * on stderr, like the engine's. This file is reorganised when ingest lands.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../storage/storage.h"
#include "cli_parse.h"
#include "volume_plan.h"

#define MAX_VOLUMES 64
#define MAX_CAMERAS 100000u
#define STATUS_EVERY_US 5000000LL

#define DEMO_FRAME_US 40000LL      /* 25 fps */
#define DEMO_GOP 50                /* a key frame every 2 s */
#define DEMO_BYTES_PER_GOP 250000u /* 1 Mbit/s over 2 s */
#define DEMO_KEY_RATIO 8           /* key frame ~ 8 P frames */
#define DEMO_POOL_BYTES (256u * 1024)

struct options {
	const char *data;
	int volumes;
	uint64_t volume_size;
	uint32_t cameras;
	uint32_t seconds;          /* 0 = until a signal */
};

/* The synthetic demo source: every frame is cut from one pool of random
 * bytes behind an Annex B start code and an H.264 NAL header. */
struct demo {
	uint8_t *pool;
	uint8_t *frame;            /* scratch for the frame being put */
	uint32_t p_bytes, key_bytes;
	int64_t base_us;           /* wall-clock time of frame 0 */
};

struct daemon {
	struct options opt;
	char data[PATH_MAX];       /* canonical: the index records volume paths */
	char index[PATH_MAX + 8];
	char vol_path[MAX_VOLUMES][PATH_MAX + 8];
	const char *vols[MAX_VOLUMES];
	struct stg *stg;
	struct stg_camera **cams;
	struct demo demo;
	int64_t start_mono_us;
	uint64_t put_errors;
};

static volatile sig_atomic_t g_stop;   /* the signal that asked to stop */

/* ---- logging and clocks ------------------------------------------------- */

static void nvr_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void nvr_log(const char *level, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "level=%s comp=nvrd %s\n", level, msg);
}

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps until monotonic time `t_us`; a signal ends the sleep early. */
static void sleep_until(int64_t t_us)
{
	struct timespec ts = { .tv_sec = t_us / 1000000, .tv_nsec = (t_us % 1000000) * 1000 };
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void on_signal(int sig)
{
	g_stop = sig;
}

static void install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: nvrd [--data DIR] [--volumes N] [--volume-size SIZE]\n"
	        "            [--demo-cameras N] [--seconds S]\n"
	        "\n"
	        "Hosts the storage engine on DIR/index and DIR/vol0..volN-1 (formatting\n"
	        "a volume directory only if it holds no volume yet). Camera ingest does\n"
	        "not exist yet: N cameras come from a synthetic demo source.\n"
	        "\n"
	        "  --data DIR          data directory [./nvr-data]\n"
	        "  --volumes N         volumes, 1 to %d [2]\n"
	        "  --volume-size SIZE  size of a newly formatted volume, bytes with an\n"
	        "                      optional K, M, G or T suffix [2G]\n"
	        "  --demo-cameras N    synthetic cameras, 0 to %u [50]\n"
	        "  --seconds S         stop after S seconds; 0 runs until SIGINT/SIGTERM [0]\n"
	        "  --help              this text\n",
	        MAX_VOLUMES, MAX_CAMERAS);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	uint64_t v;
	int err = cli_parse_uint(s, 0, max, &v);
	if (!err)
		*out = (unsigned long)v;
	return err;
}

static int bad_option(const char *opt, const char *arg, const char *want)
{
	fprintf(stderr, "nvrd: bad %s '%s' (%s)\nRun 'nvrd --help' for usage.\n", opt, arg, want);
	return -2;
}

static int parse_one(struct options *o, int c, const char *arg)
{
	unsigned long v;
	switch (c) {
	case 'd':
		o->data = arg;
		return 0;
	case 'n':
		if (parse_uint(arg, MAX_VOLUMES, &v) || v == 0)
			return bad_option("--volumes", arg, "1 to 64");
		o->volumes = (int)v;
		return 0;
	case 's':
		if (vp_parse_size(arg, &o->volume_size) || o->volume_size < VP_MIN_SEGMENTS * VP_MIB)
			return bad_option("--volume-size", arg, "at least 4M; K, M, G, T suffixes");
		return 0;
	case 'c':
		if (parse_uint(arg, MAX_CAMERAS, &v))
			return bad_option("--demo-cameras", arg, "0 to 100000");
		o->cameras = (uint32_t)v;
		return 0;
	case 't':
		if (parse_uint(arg, UINT32_MAX, &v))
			return bad_option("--seconds", arg, "a whole number of seconds");
		o->seconds = (uint32_t)v;
		return 0;
	}
	return -2;
}

/* Returns 0, 1 for --help, or -2 after a usage message. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "volumes", required_argument, NULL, 'n' },
		{ "volume-size", required_argument, NULL, 's' },
		{ "demo-cameras", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ "./nvr-data", 2, 2ull << 30, 50, 0 };
	int c, err = 0;
	opterr = 0;
	while (!err && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'h')
			return 1;
		if (c == '?' || c == ':') {
			fprintf(stderr, "nvrd: unknown or incomplete option '%s'\n"
			        "Run 'nvrd --help' for usage.\n", argv[optind - 1]);
			return -2;
		}
		err = parse_one(o, c, optarg);
	}
	if (!err && optind < argc) {
		fprintf(stderr, "nvrd: unexpected argument '%s'\n", argv[optind]);
		return -2;
	}
	return err;
}

/* ---- data directory and volumes ----------------------------------------- */

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0755) && errno != EEXIST ? -errno : 0;
}

/* Creates DATA, takes its lock (one daemon per data directory) and names
 * the index and volume directories by their canonical paths. */
static int prepare_data_dir(struct daemon *d)
{
	int err = mkdir_p(d->opt.data);
	if (!err && !realpath(d->opt.data, d->data))
		err = -errno;
	if (err) {
		nvr_log("error", "event=data_dir_failed path=%s error=\"%s\"", d->opt.data,
		        stg_strerror(err));
		return err;
	}
	char lock[PATH_MAX + 16];
	snprintf(lock, sizeof lock, "%s/nvrd.lock", d->data);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
		err = -errno;
		nvr_log("error", "event=data_dir_locked path=%s error=\"%s\" hint=\"%s\"", d->data,
		        stg_strerror(err), err == -EWOULDBLOCK ? "another nvrd uses this directory" : "");
		return err;
	}
	snprintf(d->index, sizeof d->index, "%s/index", d->data);
	for (int i = 0; i < d->opt.volumes; i++) {
		snprintf(d->vol_path[i], sizeof d->vol_path[i], "%s/vol%d", d->data, i);
		d->vols[i] = d->vol_path[i];
	}
	return 0;
}

static void log_volume(const char *event, const char *path, const struct stg_volume_info *vi)
{
	char uuid[37];
	vp_uuid_str(vi->uuid, uuid);
	nvr_log("info", "event=%s path=%s uuid=%s segment_size=%" PRIu64 " segments=%" PRIu32,
	        event, path, uuid, vi->segment_size, vi->segment_count);
}

/* Formats `path` as a volume of `size` bytes, unless it already is one. */
static int prepare_volume(const char *path, uint64_t size)
{
	struct stg_volume_info vi;
	int err = stg_volume_probe(path, &vi);
	if (!err) {
		log_volume("volume_found", path, &vi);
		return 0;
	}
	if (err != STG_EFORMAT) {
		nvr_log("error", "event=volume_unreadable path=%s error=\"%s\"", path, stg_strerror(err));
		return err;
	}
	uint64_t seg = vp_auto_segment_size(size);
	err = stg_volume_format(path, seg, vp_segments_in(size, seg), 0, &vi);
	if (err) {
		nvr_log("error", "event=volume_format_failed path=%s error=\"%s\"%s", path,
		        stg_strerror(err), err == STG_EEXIST ?
		        " hint=\"the directory holds files but no volume; move them away or run nvr-format --force\"" : "");
		return err;
	}
	log_volume("volume_formatted", path, &vi);
	return 0;
}

static int open_engine(struct daemon *d)
{
	for (int i = 0; i < d->opt.volumes; i++) {
		int err = prepare_volume(d->vols[i], d->opt.volume_size);
		if (err)
			return err;
	}
	struct stg_config cfg = {
		.index_dir = d->index, .volumes = d->vols, .volume_count = d->opt.volumes,
	};
	int err = stg_open(&cfg, &d->stg);
	if (err)
		nvr_log("error", "event=engine_open_failed index=%s error=\"%s\"", d->index,
		        stg_strerror(err));
	return err;
}

/* ---- synthetic demo source ---------------------------------------------- */

static uint32_t mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	return x ^ (x >> 16);
}

static int demo_init(struct demo *s)
{
	s->p_bytes = DEMO_BYTES_PER_GOP / (DEMO_GOP - 1 + DEMO_KEY_RATIO);
	s->key_bytes = s->p_bytes * DEMO_KEY_RATIO;
	s->pool = malloc(DEMO_POOL_BYTES);
	s->frame = malloc(s->key_bytes * 2);
	if (!s->pool || !s->frame)
		return -ENOMEM;
	for (uint32_t i = 0; i < DEMO_POOL_BYTES; i++)
		s->pool[i] = (uint8_t)mix(i);
	s->base_us = clock_us(CLOCK_REALTIME);
	return 0;
}

static void demo_free(struct demo *s)
{
	free(s->pool);
	free(s->frame);
}

/* Frame k (of the camera's own count) of camera `cam`, at tick `tick`:
 * nominal size +-12%, key every DEMO_GOP frames. */
static struct stg_frame demo_frame(struct demo *s, uint32_t cam, uint64_t k, uint64_t tick)
{
	bool key = k % DEMO_GOP == 0;
	uint32_t h = mix(cam * 2654435761u ^ (uint32_t)k);
	uint32_t nominal = key ? s->key_bytes : s->p_bytes;
	uint32_t size = nominal - nominal / 8 + h % (nominal / 4);
	static const uint8_t nal_key[] = { 0, 0, 0, 1, 0x65 }, nal_p[] = { 0, 0, 0, 1, 0x41 };
	memcpy(s->frame, key ? nal_key : nal_p, sizeof nal_key);
	memcpy(s->frame + sizeof nal_key, s->pool + h % (DEMO_POOL_BYTES - size),
	       size - sizeof nal_key);
	return (struct stg_frame){
		.time_us = s->base_us + (int64_t)tick * DEMO_FRAME_US, .data = s->frame,
		.size = size, .key = key, .codec = STG_CODEC_H264,
	};
}

static int demo_start(struct daemon *d)
{
	int err = demo_init(&d->demo);
	d->cams = calloc(d->opt.cameras ? d->opt.cameras : 1, sizeof *d->cams);
	if (!err && !d->cams)
		err = -ENOMEM;
	for (uint32_t i = 0; !err && i < d->opt.cameras; i++)
		err = stg_camera_get(d->stg, i + 1, &d->cams[i]);
	if (err) {
		nvr_log("error", "event=demo_start_failed error=\"%s\"", stg_strerror(err));
		return err;
	}
	nvr_log("warn", "event=demo_source source=\"synthetic demo source\" cameras=%" PRIu32
	        " camera_ids=1-%" PRIu32 " fps=25 key_every_s=2 kbps=1000"
	        " note=\"no camera ingest yet: frames are generated in-process, not decodable video\"",
	        d->opt.cameras, d->opt.cameras);
	return 0;
}

/* Puts frame k of every demo camera. */
/* Cameras are switched on at different ticks within one GOP, as on a real
 * site: with every key frame in the same 40 ms, all chunks would close at
 * once, a burst no real installation produces. */
static void demo_feed(struct daemon *d, uint64_t k)
{
	for (uint32_t i = 0; i < d->opt.cameras; i++) {
		uint64_t phase = (uint64_t)(i * 7) % DEMO_GOP;
		if (k < phase)
			continue;
		struct stg_frame f = demo_frame(&d->demo, i + 1, k - phase, k);
		int err = stg_put_frame(d->cams[i], &f);
		if (err && d->put_errors++ == 0)
			nvr_log("error", "event=put_frame_failed camera=%" PRIu32 " error=\"%s\" "
			        "note=\"further failures are only counted in status lines\"",
			        i + 1, stg_strerror(err));
	}
}

/* ---- status -------------------------------------------------------------- */

struct line {
	char buf[6144];
	size_t len;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct line *l, const char *fmt, ...)
{
	if (l->len >= sizeof l->buf)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len += (size_t)n;
}

static void add_camera_totals(struct daemon *d, struct line *l)
{
	uint64_t frames = 0, bytes = 0, dropped = 0;
	for (uint32_t i = 0; i < d->opt.cameras; i++) {
		struct stg_camera_stats cs;
		if (stg_camera_stats(d->stg, i + 1, &cs) == 0) {
			frames += cs.frames_written;
			bytes += cs.bytes_written;
			dropped += cs.dropped_frames;
		}
	}
	add(l, " cameras=%" PRIu32 " frames_written=%" PRIu64 " dropped_frames=%" PRIu64
	    " bytes_written=%" PRIu64 " put_errors=%" PRIu64,
	    d->opt.cameras, frames, dropped, bytes, d->put_errors);
}

static void add_volumes(struct daemon *d, struct line *l)
{
	static const char *state[] = { "active", "failed", "refused" };
	struct stg_volume_stats vs[MAX_VOLUMES];
	int n = stg_volume_stats(d->stg, vs, MAX_VOLUMES);
	for (int i = 0; i < n; i++) {
		add(l, " vol%d=%s vol%d_free_segments=%" PRIu32 "/%" PRIu32, i,
		    vs[i].state <= STG_VOL_REFUSED ? state[vs[i].state] : "unknown", i,
		    vs[i].segments_free, vs[i].segments_total);
		if (vs[i].state != STG_VOL_ACTIVE)
			add(l, " vol%d_error=\"%s\"", i, vs[i].last_error);
	}
}

static void log_status(struct daemon *d, const char *phase)
{
	struct line l = { .len = 0 };
	int64_t up = (clock_us(CLOCK_MONOTONIC) - d->start_mono_us) / 1000000;
	add(&l, "event=status phase=%s uptime_s=%" PRId64, phase, up);
	add_camera_totals(d, &l);
	add_volumes(d, &l);
	struct stg_index_stats is;
	if (stg_index_stats(d->stg, &is) == 0)
		add(&l, " index_ranges=%" PRIu64 " index_segments=%" PRIu64 " index_bytes=%" PRIu64,
		    is.ranges, is.segments, is.bytes);
	nvr_log("info", "%s", l.buf);
}

/* ---- main loop and shutdown ---------------------------------------------- */

/* Feeds frame after frame in real time until a signal or --seconds. */
static void run(struct daemon *d)
{
	int64_t t0 = clock_us(CLOCK_MONOTONIC);
	int64_t end = d->opt.seconds ? t0 + (int64_t)d->opt.seconds * 1000000 : INT64_MAX;
	int64_t next_status = t0 + STATUS_EVERY_US;
	for (uint64_t k = 0; !g_stop; k++) {
		int64_t tick = t0 + (int64_t)k * DEMO_FRAME_US;
		if (tick >= end)
			break;
		sleep_until(tick);
		if (g_stop)
			break;
		demo_feed(d, k);
		if (clock_us(CLOCK_MONOTONIC) >= next_status) {
			log_status(d, "running");
			next_status += STATUS_EVERY_US;
		}
	}
}

/* Closes every camera's open chunk, waits for disk and index, reports the
 * final counts and closes the engine. */
static void stop_engine(struct daemon *d)
{
	for (uint32_t i = 0; d->cams && i < d->opt.cameras; i++) {
		int err = stg_camera_flush(d->cams[i]);
		if (err)
			nvr_log("error", "event=flush_failed camera=%" PRIu32 " error=\"%s\"", i + 1,
			        stg_strerror(err));
	}
	int err = stg_sync(d->stg);
	if (err)
		nvr_log("error", "event=sync_failed error=\"%s\"", stg_strerror(err));
	log_status(d, "final");
	stg_close(d->stg);
	d->stg = NULL;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	int rc = parse_args(argc, argv, &d.opt);
	if (rc == 1) {
		usage(stdout);
		return 0;
	}
	if (rc)
		return 2;
	install_signals();
	d.start_mono_us = clock_us(CLOCK_MONOTONIC);
	if (prepare_data_dir(&d) || open_engine(&d))
		return 1;
	nvr_log("info", "event=started data=%s index=%s volumes=%d seconds=%" PRIu32 " pid=%ld",
	        d.data, d.index, d.opt.volumes, d.opt.seconds, (long)getpid());
	bool fed = demo_start(&d) == 0;
	if (fed)
		run(&d);
	stop_engine(&d);
	demo_free(&d.demo);
	free(d.cams);
	if (!fed)
		return 1;
	if (g_stop)
		nvr_log("info", "event=stopped reason=signal signal=%s",
		        g_stop == SIGINT ? "SIGINT" : "SIGTERM");
	else
		nvr_log("info", "event=stopped reason=seconds_elapsed");
	return 0;
}
