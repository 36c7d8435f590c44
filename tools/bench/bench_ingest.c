/*
 * bench_ingest.c - `nvr-bench ingest`: what recording N RTSP cameras costs,
 * against what the usual way (one `ffmpeg -c copy` process per camera)
 * costs on the same streams, in one run.
 *
 * Steps, all with the real programs:
 *   1. a fixture at the chosen bitrate and frame rate (scripts/make-fixtures.sh);
 *   2. nvr-camsim serving N cameras from it over loopback, one simulator
 *      process per 12,000 cameras, each on its own port (one address pair
 *      has fewer than 30,000 ephemeral ports, and one process may hold
 *      only RLIMIT_NOFILE sockets);
 *   3. nvrd recording all N (registry filled with `nvrctl cameras import`,
 *      a fresh data directory with one volume). After a warm-up (every
 *      session up and streaming), its CPU time (utime+stime from
 *      /proc/PID/stat) is sampled over --seconds; its peak RSS (VmHWM) is
 *      read at the end; SIGTERM, then its final status line gives the lost
 *      frames (depacketizer losses + storage drops) and reconnects;
 *   4. unless --no-peer: K = min(N, --peer-sample) `ffmpeg -rtsp_transport
 *      tcp -i URL -c copy -f segment` processes on cameras of the same
 *      simulator, measured the same way, summed and divided by K. (All N
 *      ffmpeg processes at 54 MB each would not fit in this machine's
 *      memory at N in the thousands; per-camera figures of K processes are
 *      the same quantity.)
 * The last line holds every figure as key=value pairs.
 */
#include "bench.h"
#include "bench_proc.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SESSIONS_PER_LISTENER 12000
#define MAX_LISTENERS BENCH_MAX_LISTENERS
#define BASE_PORT 18554

struct ingest_opts {
	uint64_t cameras, bitrate_kbps, seconds, fps, peer_sample, volume_size;
	uint64_t loops, warmup;
	bool no_peer;
	const char *dir;
};

struct proc_usage {
	double cpu_s;              /* utime + stime over the measured window */
	uint64_t peak_rss_kib;     /* VmHWM at the end */
};

/* ---- the parts of the run ------------------------------------------------ */

static uint32_t listener_count(const struct ingest_opts *o)
{
	uint64_t l = (o->cameras + SESSIONS_PER_LISTENER - 1) / SESSIONS_PER_LISTENER;
	return (uint32_t)(l < 1 ? 1 : l > MAX_LISTENERS ? MAX_LISTENERS : l);
}

/* Cameras go round the simulators: camera k is number (k-1)/L + 1 of
 * simulator (k-1) % L. */
static uint64_t sim_cameras(const struct ingest_opts *o, uint32_t l)
{
	return (o->cameras - 1 - l) / listener_count(o) + 1;
}

static void camera_url(const struct ingest_opts *o, uint64_t k, char *out, size_t n)
{
	uint32_t count = listener_count(o);
	uint32_t l = (uint32_t)((k - 1) % count);
	snprintf(out, n, "rtsp://127.0.0.1:%u/cam/%" PRIu64, BASE_PORT + l, (k - 1) / count + 1);
}

/* One simulator process per listener, logs in DIR/simL/. */
static int start_sims(const struct ingest_opts *o, const char *fixture, pid_t *pids)
{
	uint32_t count = listener_count(o);
	for (uint32_t l = 0; l < count; l++) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s/sim%u", o->dir, l);
		int err = bench_mkdir(dir);
		pids[l] = err ? err : bench_start_camsim(dir, sim_cameras(o, l), o->fps, fixture, 1,
		                                         BASE_PORT + l);
		if (pids[l] < 0) {
			err = (int)pids[l];
			while (l-- > 0) {
				kill(pids[l], SIGTERM);
				bench_wait_exit(pids[l]);
			}
			return err;
		}
	}
	return 0;
}

static int write_cameras_csv(const struct ingest_opts *o, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "id,name,main_url,enabled\n");
	for (uint64_t k = 1; k <= o->cameras; k++) {
		char url[128];
		camera_url(o, k, url, sizeof url);
		fprintf(f, "%" PRIu64 ",bench camera %" PRIu64 ",%s,true\n", k, k, url);
	}
	return fclose(f) ? -errno : 0;
}

/* Waits until nvrd reports every camera streaming (or the warm-up ends). */
static void wait_streaming(const struct ingest_opts *o, const char *log, pid_t pid)
{
	int64_t end = bench_now_ns() + (int64_t)o->warmup * 1000000000LL;
	while (bench_now_ns() < end && waitpid(pid, NULL, WNOHANG) == 0) {
		if (bench_log_value(log, "event=status", "streaming") >= (double)o->cameras)
			break;
		bench_sleep_ns(500000000);
	}
}

struct recorder_result {
	struct proc_usage use;
	double lost, written, reconnects, streaming;
};

static int run_recorder(const struct ingest_opts *o, struct recorder_result *r)
{
	char bin[PATH_MAX + 16], ctl[PATH_MAX + 16], data[PATH_MAX], csv[PATH_MAX + 16];
	char log[PATH_MAX + 16], ilog[PATH_MAX + 16], vsize[32], loops[24];
	bench_bin_path(bin, sizeof bin, "nvrd");
	bench_bin_path(ctl, sizeof ctl, "nvrctl");
	snprintf(data, sizeof data, "%s/data", o->dir);
	snprintf(csv, sizeof csv, "%s/cameras.csv", o->dir);
	snprintf(log, sizeof log, "%s/nvrd.log", o->dir);
	snprintf(ilog, sizeof ilog, "%s/import.log", o->dir);
	snprintf(vsize, sizeof vsize, "%" PRIu64, o->volume_size);
	snprintf(loops, sizeof loops, "%" PRIu64, o->loops);
	bench_remove_tree(data);
	/* The volume is zero-filled first, as an appliance's disks are at
	 * installation: the ring's first pass then writes at full speed. */
	char fmt[PATH_MAX + 16], vol[PATH_MAX + 16], flog[PATH_MAX + 16];
	bench_bin_path(fmt, sizeof fmt, "nvr-format");
	snprintf(vol, sizeof vol, "%s/vol0", data);
	snprintf(flog, sizeof flog, "%s/format.log", o->dir);
	char *format[] = { fmt, "--zero", "--size", vsize, vol, NULL };
	int err = bench_mkdir(data);
	if (!err)
		err = write_cameras_csv(o, csv);
	if (!err)
		err = bench_run_cmd(format, flog);
	char *imp[] = { ctl, "cameras", "import", csv, "--data", data, NULL };
	if (!err)
		err = bench_run_cmd(imp, ilog);
	if (err)
		return err;
	char *argv[] = { bin, "--data", data, "--volumes", "1", "--volume-size", vsize,
	                 "--loops", loops, "--simulate", "0", NULL };
	pid_t pid = bench_spawn(argv, NULL, log);
	if (pid < 0)
		return (int)pid;
	wait_streaming(o, log, pid);
	double c0 = bench_proc_cpu_s(pid);
	bench_sleep_ns((int64_t)o->seconds * 1000000000LL);
	r->use.cpu_s = bench_proc_cpu_s(pid) - c0;
	r->use.peak_rss_kib = bench_proc_status_kib(pid, "VmHWM");
	kill(pid, SIGTERM);
	int rc = bench_wait_exit(pid);
	r->lost = bench_log_value(log, "phase=final", "frames_lost") +
	          bench_log_value(log, "phase=final", "dropped_frames");
	r->written = bench_log_value(log, "phase=final", "frames_written");
	r->reconnects = bench_log_value(log, "phase=final", "reconnects");
	r->streaming = bench_log_value(log, "phase=running", "streaming");
	if (rc) {
		fprintf(stderr, "ingest: nvrd exited %d (see %s)\n", rc, log);
		return -EIO;
	}
	return 0;
}

/* K ffmpeg -c copy processes on cameras 1..K, measured like nvrd. */
static int run_peer(const struct ingest_opts *o, uint64_t k, struct proc_usage *u)
{
	pid_t *pids = calloc(k, sizeof *pids);
	if (!pids)
		return -ENOMEM;
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/peer", o->dir);
	bench_remove_tree(dir);
	bench_mkdir(dir);
	int err = 0;
	for (uint64_t i = 0; i < k && !err; i++) {
		char url[128], out[PATH_MAX + 32];
		camera_url(o, i + 1, url, sizeof url);
		snprintf(out, sizeof out, "%s/cam%" PRIu64 "-%%03d.mkv", dir, i + 1);
		char *argv[] = { "ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
		                 "-i", url, "-c", "copy", "-f", "segment", "-segment_time", "60",
		                 "-reset_timestamps", "1", out, NULL };
		pid_t pid = bench_spawn(argv, NULL, NULL);
		if (pid < 0)
			err = (int)pid;
		else
			pids[i] = pid;
	}
	if (!err) {
		bench_sleep_ns(5000000000LL);   /* connect, probe the stream */
		double c0 = 0, c1 = 0;
		for (uint64_t i = 0; i < k; i++)
			c0 += bench_proc_cpu_s(pids[i]);
		bench_sleep_ns((int64_t)o->seconds * 1000000000LL);
		*u = (struct proc_usage){ 0 };
		for (uint64_t i = 0; i < k; i++) {
			c1 += bench_proc_cpu_s(pids[i]);
			u->peak_rss_kib += bench_proc_status_kib(pids[i], "VmHWM");
		}
		u->cpu_s = c1 - c0;
	}
	for (uint64_t i = 0; i < k; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGTERM);
			bench_wait_exit(pids[i]);
		}
	free(pids);
	return err;
}

/* ---- options and main ---------------------------------------------------- */

static void ingest_usage(void)
{
	fprintf(stderr,
	        "usage: nvr-bench ingest --cameras N --bitrate-kbps B --seconds S [--fps F]\n"
	        "                        [--no-peer] [--peer-sample K] [--dir DIR]\n"
	        "                        [--volume-size BYTES] [--loops L] [--warmup S]\n"
	        "Records N nvr-camsim cameras with nvrd over loopback and, unless --no-peer,\n"
	        "K (default 20) `ffmpeg -c copy` processes on the same streams; prints CPU and\n"
	        "memory per camera of both. DIR (default /var/tmp/nvr-bench-ingest) holds the\n"
	        "fixture, the data directory (one volume, default 8G) and the logs.\n");
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int parse(int argc, char **argv, struct ingest_opts *o)
{
	*o = (struct ingest_opts){ .fps = 25, .peer_sample = 20, .volume_size = 8ull << 30,
	                           .loops = 1, .dir = "/var/tmp/nvr-bench-ingest" };
	struct bench_opt opts[] = {
		{ "cameras", BENCH_OPT_U64, &o->cameras, true, false },
		{ "bitrate-kbps", BENCH_OPT_U64, &o->bitrate_kbps, true, false },
		{ "seconds", BENCH_OPT_U64, &o->seconds, true, false },
		{ "fps", BENCH_OPT_U64, &o->fps, false, false },
		{ "no-peer", BENCH_OPT_FLAG, &o->no_peer, false, false },
		{ "peer-sample", BENCH_OPT_U64, &o->peer_sample, false, false },
		{ "dir", BENCH_OPT_STR, &o->dir, false, false },
		{ "volume-size", BENCH_OPT_U64, &o->volume_size, false, false },
		{ "loops", BENCH_OPT_U64, &o->loops, false, false },
		{ "warmup", BENCH_OPT_U64, &o->warmup, false, false },
	};
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			ingest_usage();
			return 1;
		}
	if (bench_parse_opts("ingest", argc - 1, argv + 1, opts, sizeof opts / sizeof opts[0])) {
		ingest_usage();
		return -EINVAL;
	}
	if (!o->cameras || !o->bitrate_kbps || !o->seconds || !o->fps || o->fps > 120 ||
	    o->cameras > SESSIONS_PER_LISTENER * MAX_LISTENERS || !o->loops || o->loops > 64) {
		fprintf(stderr, "ingest: cameras 1..%d, bitrate, seconds > 0, fps 1..120, loops 1..64\n",
		        SESSIONS_PER_LISTENER * MAX_LISTENERS);
		return -EINVAL;
	}
	if (!opts[9].seen)
		o->warmup = 10 + o->cameras / 500;   /* sessions ramp up with backoff jitter */
	return 0;
}

static void print_result(const struct ingest_opts *o, const struct recorder_result *r,
                         const struct proc_usage *peer, uint64_t k)
{
	double n = (double)o->cameras, s = (double)o->seconds;
	double cpu = 100.0 * r->use.cpu_s / s / n, rss = (double)r->use.peak_rss_kib / n;
	double pcpu = k ? 100.0 * peer->cpu_s / s / (double)k : 0;
	double prss = k ? (double)peer->peak_rss_kib / (double)k : 0;
	printf("nvrd: %.2f s CPU over %.0f s for %" PRIu64 " cameras, peak RSS %" PRIu64 " KiB\n",
	       r->use.cpu_s, s, o->cameras, r->use.peak_rss_kib);
	if (k)
		printf("ffmpeg -c copy x %" PRIu64 ": %.2f s CPU over %.0f s, RSS %" PRIu64 " KiB in all\n",
		       k, peer->cpu_s, s, peer->peak_rss_kib);
	printf("cameras=%" PRIu64 " bitrate_kbps=%" PRIu64 " fps=%" PRIu64 " seconds=%" PRIu64
	       " streaming=%.0f frames_written=%.0f lost_frames=%.0f reconnects=%.0f"
	       " cpu_pct_per_camera=%.4f rss_kib_per_camera=%.1f peak_rss_mib=%.1f"
	       " peer_sample=%" PRIu64 " peer_cpu_pct_per_camera=%.4f peer_rss_kib_per_camera=%.1f"
	       " cpu_ratio=%.1f mem_ratio=%.1f\n",
	       o->cameras, o->bitrate_kbps, o->fps, o->seconds, r->streaming, r->written, r->lost,
	       r->reconnects, cpu, rss, (double)r->use.peak_rss_kib / 1024.0, k, pcpu, prss,
	       k && cpu > 0 ? pcpu / cpu : 0, k && rss > 0 ? prss / rss : 0);
}

int bench_ingest_main(int argc, char **argv)
{
	struct ingest_opts o;
	int err = parse(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : err;
	raise_fd_limit();
	char fixture[PATH_MAX + 64];
	if ((err = bench_mkdir(o.dir)) || (err = bench_make_fixture(o.dir, o.bitrate_kbps, o.fps, fixture, sizeof fixture)))
		return err;
	pid_t sims[MAX_LISTENERS];
	if ((err = start_sims(&o, fixture, sims)))
		return err;
	struct recorder_result r = { 0 };
	struct proc_usage peer = { 0 };
	uint64_t k = o.no_peer ? 0 : (o.peer_sample < o.cameras ? o.peer_sample : o.cameras);
	err = run_recorder(&o, &r);
	if (!err && k)
		err = run_peer(&o, k, &peer);
	for (uint32_t l = 0; l < listener_count(&o); l++) {
		kill(sims[l], SIGTERM);
		bench_wait_exit(sims[l]);
	}
	if (!err)
		print_result(&o, &r, &peer, k);
	return err;
}
