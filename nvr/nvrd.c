/*
 * nvrd.c - the recorder daemon.
 *
 * It prepares a data directory (datadir.h: DIR/index, DIR/registry and one
 * volume per DIR/volN, formatted on first use), opens the storage engine
 * and the camera registry, starts the ingest (ingest.h: RTSP event loops
 * and libavformat workers) and hands it every enabled camera of the
 * registry; then, once a second, applies registry changes (camsync.h) and,
 * every 5 s, logs one status line. The HTTP API (web/http.h) starts after
 * the ingest, on --http-listen:--http-port (127.0.0.1:8080; port 0 turns it
 * off), and is the first thing stopped.
 *
 * The embedded demo (simulate.h): with --simulate N, or on a data directory
 * whose registry is empty, nvrd starts the camera simulator as a child
 * process, registers its cameras and records them like any other RTSP
 * camera. DIR/simulated-cameras remembers that choice for later starts.
 *
 * SIGINT or SIGTERM: the ingest tears its sessions down and flushes every
 * camera's unfinished chunk, the engine writes everything out and closes,
 * a final status line is logged and the daemon exits 0. Start-up failures
 * exit 1, bad options 2. Log lines are key=value on stderr (log.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "camsync.h"
#include "cli_parse.h"
#include "datadir.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "registry.h"
#include "simulate.h"
#include "storage.h"
#include "volume_plan.h"

#define STATUS_EVERY_US 5000000LL
#define SYNC_EVERY_US 1000000LL
#define DEFAULT_SIMULATED 200
#define SIMULATE_AUTO (-1)

struct options {
	const char *data;
	int volumes;
	uint64_t volume_size;
	uint32_t loops;
	long simulate;             /* cameras, 0 off, SIMULATE_AUTO */
	uint32_t sim_port;
	const char *camsim;        /* NULL: next to this binary */
	const char *fixtures;      /* NULL: BINDIR/../fixtures */
	uint32_t seconds;          /* 0 = until a signal */
	const char *log_level;
	uint32_t http_port;        /* 0: no HTTP API */
	const char *http_listen;
};

struct daemon {
	struct options opt;
	struct datadir dir;
	struct stg *stg;
	struct registry *reg;
	struct ingest *ingest;
	struct camsync *sync;
	struct sim *sim;
	struct web *web;
	struct web_ctx web_ctx;
	struct ingest_totals last_totals;   /* kept for the final status line */
	int64_t start_mono_us;
};

static volatile sig_atomic_t g_stop;   /* the signal that asked to stop */

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
	        "usage: nvrd [--data DIR] [--volumes N] [--volume-size SIZE] [--loops N]\n"
	        "            [--simulate N] [--sim-port P] [--camsim PATH] [--fixtures DIR]\n"
	        "            [--seconds S] [--log-level L] [--http-port P] [--http-listen ADDR]\n"
	        "\n"
	        "Records every enabled camera of DIR/registry (see `nvrctl cameras`) onto\n"
	        "the volumes DIR/vol0..volN-1 (formatted on first use), indexed in DIR/index.\n"
	        "\n"
	        "  --data DIR          data directory [./nvr-data]\n"
	        "  --volumes N         volumes, 1 to %d [2]\n"
	        "  --volume-size SIZE  size of a newly formatted volume, bytes with an\n"
	        "                      optional K, M, G or T suffix [2G]\n"
	        "  --loops N           RTSP event-loop threads, 1 to 64 [1]\n"
	        "  --simulate N        start the camera simulator with N cameras and record\n"
	        "                      them; 0 never; default: %d when the registry is empty\n"
	        "                      (and on later starts of that data directory)\n"
	        "  --sim-port P        the simulator's RTSP port on 127.0.0.1 [8554]\n"
	        "  --camsim PATH       simulator binary [nvr-camsim next to nvrd]\n"
	        "  --fixtures DIR      simulator video files [BINDIR/../fixtures]\n"
	        "  --seconds S         stop after S seconds; 0 runs until SIGINT/SIGTERM [0]\n"
	        "  --log-level L       debug, info, warn or error [info]\n"
	        "  --http-port P       port of the HTTP API (no authentication yet);\n"
	        "                      0 turns it off [8080]\n"
	        "  --http-listen ADDR  address the HTTP API listens on [127.0.0.1]\n"
	        "  --help              this text\n",
	        DATADIR_MAX_VOLUMES, DEFAULT_SIMULATED);
}

static int bad_option(const char *opt, const char *arg, const char *want)
{
	fprintf(stderr, "nvrd: bad %s '%s' (%s)\nRun 'nvrd --help' for usage.\n", opt, arg, want);
	return -2;
}

static int parse_u32(const char *arg, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (cli_parse_uint(arg, min, max, &v))
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_one(struct options *o, int c, const char *arg)
{
	uint32_t v;
	switch (c) {
	case 'd': o->data = arg; return 0;
	case 'C': o->camsim = arg; return 0;
	case 'F': o->fixtures = arg; return 0;
	case 'L':
		if (strcmp(arg, "debug") && strcmp(arg, "info") && strcmp(arg, "warn") &&
		    strcmp(arg, "error"))
			return bad_option("--log-level", arg, "debug, info, warn or error");
		o->log_level = arg;
		return 0;
	case 'n':
		if (parse_u32(arg, 1, DATADIR_MAX_VOLUMES, &v))
			return bad_option("--volumes", arg, "1 to 64");
		o->volumes = (int)v;
		return 0;
	case 's':
		if (vp_parse_size(arg, &o->volume_size) || o->volume_size < VP_MIN_SEGMENTS * VP_MIB)
			return bad_option("--volume-size", arg, "at least 4M; K, M, G, T suffixes");
		return 0;
	case 'l':
		if (parse_u32(arg, 1, 64, &o->loops))
			return bad_option("--loops", arg, "1 to 64");
		return 0;
	case 'S':
		if (parse_u32(arg, 0, 100000, &v))
			return bad_option("--simulate", arg, "0 to 100000 cameras");
		o->simulate = v;
		return 0;
	case 'P':
		if (parse_u32(arg, 1, 65535, &o->sim_port))
			return bad_option("--sim-port", arg, "1 to 65535");
		return 0;
	case 'H':
		if (parse_u32(arg, 0, 65535, &o->http_port))
			return bad_option("--http-port", arg, "0 to 65535");
		return 0;
	case 'A': o->http_listen = arg; return 0;
	case 't':
		if (parse_u32(arg, 0, UINT32_MAX, &o->seconds))
			return bad_option("--seconds", arg, "a whole number of seconds");
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
		{ "loops", required_argument, NULL, 'l' },
		{ "simulate", required_argument, NULL, 'S' },
		{ "sim-port", required_argument, NULL, 'P' },
		{ "camsim", required_argument, NULL, 'C' },
		{ "fixtures", required_argument, NULL, 'F' },
		{ "seconds", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "http-port", required_argument, NULL, 'H' },
		{ "http-listen", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ .data = "./nvr-data", .volumes = 2, .volume_size = 2ull << 30,
	                       .loops = 1, .simulate = SIMULATE_AUTO, .sim_port = 8554,
	                       .log_level = "info", .http_port = 8080,
	                       .http_listen = "127.0.0.1" };
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

/* ---- start-up ------------------------------------------------------------ */

/* Sessions need one descriptor each (two more for UDP): take the hard limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			nvr_log("warn", "nvrd", "event=fd_limit_not_raised error=\"%s\"", strerror(errno));
	}
}

static int open_storage_and_registry(struct daemon *d)
{
	int err = datadir_init(&d->dir, d->opt.data, d->opt.volumes, true);
	if (!err)
		err = datadir_lock(&d->dir);
	if (!err)
		err = datadir_prepare_volumes(&d->dir, d->opt.volume_size);
	/* Chunks waiting for a volume's writer: at 2,000 cameras x 2 Mbit/s a
	 * volume takes 500 MB/s, and cameras that (re)started together close
	 * their GOPs together; 256 MiB rides out such bursts. A camera's open
	 * chunk is its biggest memory cost: chunks close at 112 KiB, so that
	 * with header and frame table each fits a 128 KiB buffer (a GOP then
	 * spans several chunks; chunks need not start at a key frame). */
	struct stg_config sc = { .queue_bytes_per_volume = 256ull << 20,
	                         .max_chunk_bytes = 112u << 10 };
	if (!err)
		err = datadir_open_storage(&d->dir, &sc, &d->stg);
	if (err)
		return err;
	err = registry_open(d->dir.registry, &d->reg);
	if (err)
		nvr_log("error", "nvrd", "event=registry_open_failed path=%s error=\"%s\"",
		        d->dir.registry, strerror(-err));
	return err;
}

/* How many cameras to simulate: the option, else what DIR/simulated-cameras
 * says, else DEFAULT_SIMULATED if the registry is empty (remembered). */
static long simulated_cameras(struct daemon *d)
{
	if (d->opt.simulate != SIMULATE_AUTO)
		return d->opt.simulate;
	char marker[PATH_MAX + 32];
	snprintf(marker, sizeof marker, "%s/simulated-cameras", d->dir.path);
	long n = 0;
	FILE *f = fopen(marker, "r");
	if (f) {
		if (fscanf(f, "%ld", &n) != 1 || n < 0 || n > 100000)
			n = 0;
		fclose(f);
		return n;
	}
	uint64_t count = 0;
	if (registry_count(d->reg, &count) || count)
		return 0;
	if ((f = fopen(marker, "w")) != NULL) {
		fprintf(f, "%d\n", DEFAULT_SIMULATED);
		fclose(f);
	}
	nvr_log("info", "nvrd", "event=demo_mode reason=\"empty camera registry\" cameras=%d"
	        " hint=\"import cameras with nvrctl, or start with --simulate 0\"", DEFAULT_SIMULATED);
	return DEFAULT_SIMULATED;
}

/* Directory of this executable, for the simulator and its fixtures. */
static void bin_dir(char *out, size_t n)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len <= 0) {
		snprintf(out, n, ".");
		return;
	}
	exe[len] = '\0';
	snprintf(out, n, "%s", dirname(exe));
}

static int start_simulator(struct daemon *d)
{
	long n = simulated_cameras(d);
	if (n <= 0)
		return 0;
	char dir[PATH_MAX], camsim[PATH_MAX + 16], fixtures[PATH_MAX + 16];
	bin_dir(dir, sizeof dir);
	snprintf(camsim, sizeof camsim, "%s/nvr-camsim", dir);
	snprintf(fixtures, sizeof fixtures, "%s/../fixtures", dir);
	struct sim_config sc = {
		.camsim_path = d->opt.camsim ? d->opt.camsim : camsim,
		.fixture_dir = d->opt.fixtures ? d->opt.fixtures : fixtures,
		.cameras = (uint32_t)n, .port = (uint16_t)d->opt.sim_port, .registry = d->reg,
	};
	return sim_start(&sc, &d->sim);
}

static int start_ingest(struct daemon *d)
{
	struct ingest_config ic = { .stg = d->stg, .loops = d->opt.loops };
	int err = ingest_start(&ic, &d->ingest);
	if (err) {
		nvr_log("error", "nvrd", "event=ingest_start_failed error=\"%s\"", strerror(-err));
		return err;
	}
	err = camsync_init(d->reg, d->ingest, &d->sync);
	if (!err)
		err = camsync_poll(d->sync) < 0 ? -EIO : 0;
	return err;
}

/* A port already taken must not stop the recording: the API is left off
 * (web_start logged why) and the daemon records on. */
static void start_http(struct daemon *d)
{
	if (!d->opt.http_port)
		return;
	struct web_config wc = { .listen_addr = d->opt.http_listen,
	                         .port = (uint16_t)d->opt.http_port };
	d->web_ctx = (struct web_ctx){ .stg = d->stg, .reg = d->reg, .ingest = d->ingest };
	if (web_start(&wc, &d->web_ctx, &d->web)) {
		nvr_log("error", "nvrd", "event=http_disabled reason=start_failed");
		return;
	}
	const char *v6 = strchr(wc.listen_addr, ':');
	nvr_log("info", "nvrd", "event=http_started url=http://%s%s%s:%" PRIu32 "/",
	        v6 ? "[" : "", wc.listen_addr, v6 ? "]" : "", d->opt.http_port);
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

/* Ingest counters, and what the engine has on disk and indexed. */
static void add_camera_totals(struct daemon *d, struct line *l)
{
	struct ingest_totals t = d->last_totals;
	if (d->ingest)
		ingest_totals(d->ingest, &t);
	uint64_t written = 0, bytes = 0, dropped = 0;
	uint32_t n = d->sync ? camsync_count(d->sync) : 0;
	for (uint32_t i = 0; i < n; i++) {
		struct stg_camera_stats cs;
		if (stg_camera_stats(d->stg, camsync_id(d->sync, i), &cs) == 0) {
			written += cs.frames_written;
			bytes += cs.bytes_written;
			dropped += cs.dropped_frames;
		}
	}
	add(l, " cameras=%" PRIu32 " streaming=%" PRIu32 " frames=%" PRIu64
	    " frames_lost=%" PRIu64 " reconnects=%" PRIu64 " frames_written=%" PRIu64
	    " dropped_frames=%" PRIu64 " bytes_written=%" PRIu64,
	    t.cameras, t.streaming, t.frames, t.frames_lost, t.reconnects, written, dropped, bytes);
}

static void add_volumes(struct daemon *d, struct line *l)
{
	static const char *state[] = { "active", "failed", "refused" };
	struct stg_volume_stats vs[DATADIR_MAX_VOLUMES];
	int n = stg_volume_stats(d->stg, vs, DATADIR_MAX_VOLUMES);
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
	int64_t up = (nvr_mono_us() - d->start_mono_us) / 1000000;
	add(&l, "event=status phase=%s uptime_s=%" PRId64, phase, up);
	add_camera_totals(d, &l);
	add_volumes(d, &l);
	struct stg_index_stats is;
	if (stg_index_stats(d->stg, &is) == 0)
		add(&l, " index_ranges=%" PRIu64 " index_segments=%" PRIu64 " index_bytes=%" PRIu64,
		    is.ranges, is.segments, is.bytes);
	nvr_log("info", "nvrd", "%s", l.buf);
}

/* ---- main loop and shutdown ---------------------------------------------- */

static void sleep_until(int64_t mono_us)
{
	struct timespec ts = { .tv_sec = mono_us / 1000000, .tv_nsec = (mono_us % 1000000) * 1000 };
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void run(struct daemon *d)
{
	int64_t t0 = nvr_mono_us();
	int64_t end = d->opt.seconds ? t0 + (int64_t)d->opt.seconds * 1000000 : INT64_MAX;
	int64_t next_status = t0 + STATUS_EVERY_US;
	for (int64_t tick = t0 + SYNC_EVERY_US; !g_stop; tick += SYNC_EVERY_US) {
		sleep_until(tick < end ? tick : end);
		if (g_stop || nvr_mono_us() >= end)
			break;
		camsync_poll(d->sync);
		if (nvr_mono_us() >= next_status) {
			log_status(d, "running");
			next_status += STATUS_EVERY_US;
		}
	}
}

/* Stops the sessions (each camera's unfinished chunk is flushed), waits for
 * disk and index, reports the final counts and closes everything. */
static void shut_down(struct daemon *d)
{
	web_stop(d->web);
	d->web = NULL;
	if (d->ingest) {
		ingest_totals(d->ingest, &d->last_totals);
		ingest_stop(d->ingest);
		d->ingest = NULL;
	}
	sim_stop(d->sim);
	d->sim = NULL;
	if (d->stg) {
		int err = stg_sync(d->stg);
		if (err)
			nvr_log("error", "nvrd", "event=sync_failed error=\"%s\"", stg_strerror(err));
		log_status(d, "final");
		stg_close(d->stg);
		d->stg = NULL;
	}
	camsync_free(d->sync);
	if (d->reg)
		registry_close(d->reg);
	datadir_release(&d->dir);
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
	nvr_log_set_level(d.opt.log_level);
	install_signals();
	raise_fd_limit();
	d.start_mono_us = nvr_mono_us();
	bool ok = open_storage_and_registry(&d) == 0 && start_simulator(&d) == 0 &&
	          start_ingest(&d) == 0;
	if (ok) {
		start_http(&d);
		nvr_log("info", "nvrd", "event=started data=%s volumes=%d cameras=%" PRIu32
		        " loops=%" PRIu32 " seconds=%" PRIu32 " pid=%ld", d.dir.path, d.dir.volume_count,
		        camsync_count(d.sync), d.opt.loops, d.opt.seconds, (long)getpid());
		run(&d);
	}
	shut_down(&d);
	if (!ok)
		return 1;
	if (g_stop)
		nvr_log("info", "nvrd", "event=stopped reason=signal signal=%s",
		        g_stop == SIGINT ? "SIGINT" : "SIGTERM");
	else
		nvr_log("info", "nvrd", "event=stopped reason=seconds_elapsed");
	return 0;
}
