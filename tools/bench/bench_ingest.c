/*
 * bench_ingest.c - `nvr-bench ingest`: what recording N RTSP cameras costs,
 * against what the usual way (one `ffmpeg -c copy` process per camera)
 * costs on the same streams, in one run.
 *
 * Steps, all with the real programs:
 *   1. a fixture at the chosen bitrate and frame rate (scripts/make-fixtures.sh);
 *   2. nvr-camsim serving N cameras from it over loopback, spread over
 *      several listening ports (one address pair has fewer than 30,000
 *      ephemeral ports);
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
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SESSIONS_PER_LISTENER 12000
#define MAX_LISTENERS 16
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

/* ---- processes ----------------------------------------------------------- */

/* Starts argv with stdout and stderr to files (NULL: /dev/null). */
static pid_t spawn(char *const argv[], const char *out, const char *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null",
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, err ? err : "/dev/null",
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		fprintf(stderr, "ingest: cannot start %s: %s\n", argv[0], strerror(rc));
		return -rc;
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_cmd(char *const argv[], const char *log)
{
	pid_t pid = spawn(argv, log, log);
	if (pid < 0)
		return (int)pid;
	int rc = wait_exit(pid);
	if (rc)
		fprintf(stderr, "ingest: %s exited %d (see %s)\n", argv[0], rc, log ? log : "-");
	return rc ? -EIO : 0;
}

/* utime + stime of a process, in seconds. */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');   /* the command name may hold spaces */
	unsigned long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                 &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static uint64_t proc_status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	uint64_t v = 0;
	size_t kl = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = strtoull(line + kl + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

/* ---- the parts of the run ------------------------------------------------ */

static void bin_path(char *out, size_t n, const char *name)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[len > 0 ? len : 0] = '\0';
	snprintf(out, n, "%s/%s", len > 0 ? dirname(exe) : ".", name);
}

/* Makes (or reuses) the fixture; its path goes to out. */
static int make_fixture(const struct ingest_opts *o, char *out, size_t n)
{
	char script[PATH_MAX + 64], fixdir[PATH_MAX + 32], kbps[24], fps[24], log[PATH_MAX + 32];
	bin_path(script, sizeof script, "../../scripts/make-fixtures.sh");
	snprintf(fixdir, sizeof fixdir, "%s/fixtures", o->dir);
	snprintf(kbps, sizeof kbps, "%" PRIu64, o->bitrate_kbps);
	snprintf(fps, sizeof fps, "%" PRIu64, o->fps);
	snprintf(log, sizeof log, "%s/fixture.log", o->dir);
	const char *size = o->bitrate_kbps >= 1500 ? "1280x720" : "640x360";
	char *argv[] = { script, fixdir, "20", kbps, fps, (char *)size, NULL };
	int err = run_cmd(argv, log);
	if (err)
		return err;
	if (snprintf(out, n, "%s/h264-20-%s-%s-%s.264", fixdir, kbps, fps, size) >= (int)n)
		return -ENAMETOOLONG;
	return access(out, R_OK) ? -errno : 0;
}

static uint32_t listener_count(const struct ingest_opts *o)
{
	uint64_t l = (o->cameras + SESSIONS_PER_LISTENER - 1) / SESSIONS_PER_LISTENER;
	return (uint32_t)(l < 1 ? 1 : l > MAX_LISTENERS ? MAX_LISTENERS : l);
}

static void camera_url(const struct ingest_opts *o, uint64_t k, char *out, size_t n)
{
	uint32_t l = (uint32_t)((k - 1) % listener_count(o));
	snprintf(out, n, "rtsp://127.0.0.1:%u/cam/%" PRIu64, BASE_PORT + l, k);
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

/* Starts the simulator and waits for its "ready" line. */
static pid_t start_camsim(const struct ingest_opts *o, const char *fixture)
{
	char bin[PATH_MAX + 16], cams[24], fps[24], out[PATH_MAX + 32], err[PATH_MAX + 32];
	char listen[MAX_LISTENERS][32];
	char *argv[16 + 2 * MAX_LISTENERS];
	int a = 0;
	bin_path(bin, sizeof bin, "nvr-camsim");
	snprintf(cams, sizeof cams, "%" PRIu64, o->cameras);
	snprintf(fps, sizeof fps, "%" PRIu64, o->fps);
	snprintf(out, sizeof out, "%s/camsim.out", o->dir);
	snprintf(err, sizeof err, "%s/camsim.log", o->dir);
	argv[a++] = bin;
	argv[a++] = "--cameras"; argv[a++] = cams;
	argv[a++] = "--fixture"; argv[a++] = (char *)fixture;
	argv[a++] = "--fps"; argv[a++] = fps;
	for (uint32_t l = 0; l < listener_count(o); l++) {
		snprintf(listen[l], sizeof listen[l], "127.0.0.1:%u", BASE_PORT + l);
		argv[a++] = "--listen";
		argv[a++] = listen[l];
	}
	argv[a] = NULL;
	pid_t pid = spawn(argv, out, err);
	for (int i = 0; pid > 0 && i < 300; i++) {
		char buf[256] = "";
		FILE *f = fopen(out, "r");
		if (f) {
			if (!fgets(buf, sizeof buf, f))
				buf[0] = '\0';
			fclose(f);
		}
		if (!strncmp(buf, "ready", 5))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "ingest: nvr-camsim exited early (see %s)\n", err);
			return -EIO;
		}
		bench_sleep_ns(100000000);
	}
	if (pid > 0) {
		fprintf(stderr, "ingest: nvr-camsim not ready after 30 s (see %s)\n", err);
		kill(pid, SIGKILL);
		wait_exit(pid);
	}
	return -ETIMEDOUT;
}

/* Value of `key` in the last line of `path` that contains `match`. */
static double log_value(const char *path, const char *match, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[8192], last[8192] = "";
	while (f && fgets(line, sizeof line, f))
		if (strstr(line, match))
			memcpy(last, line, sizeof last);
	if (f)
		fclose(f);
	char pat[64];
	snprintf(pat, sizeof pat, " %s=", key);
	char *p = strstr(last, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* Waits until nvrd reports every camera streaming (or the warm-up ends). */
static void wait_streaming(const struct ingest_opts *o, const char *log, pid_t pid)
{
	int64_t end = bench_now_ns() + (int64_t)o->warmup * 1000000000LL;
	while (bench_now_ns() < end && waitpid(pid, NULL, WNOHANG) == 0) {
		if (log_value(log, "event=status", "streaming") >= (double)o->cameras)
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
	bin_path(bin, sizeof bin, "nvrd");
	bin_path(ctl, sizeof ctl, "nvrctl");
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
	bin_path(fmt, sizeof fmt, "nvr-format");
	snprintf(vol, sizeof vol, "%s/vol0", data);
	snprintf(flog, sizeof flog, "%s/format.log", o->dir);
	char *format[] = { fmt, "--zero", "--size", vsize, vol, NULL };
	int err = bench_mkdir(data);
	if (!err)
		err = write_cameras_csv(o, csv);
	if (!err)
		err = run_cmd(format, flog);
	char *imp[] = { ctl, "cameras", "import", csv, "--data", data, NULL };
	if (!err)
		err = run_cmd(imp, ilog);
	if (err)
		return err;
	char *argv[] = { bin, "--data", data, "--volumes", "1", "--volume-size", vsize,
	                 "--loops", loops, "--simulate", "0", NULL };
	pid_t pid = spawn(argv, NULL, log);
	if (pid < 0)
		return (int)pid;
	wait_streaming(o, log, pid);
	double c0 = proc_cpu_s(pid);
	bench_sleep_ns((int64_t)o->seconds * 1000000000LL);
	r->use.cpu_s = proc_cpu_s(pid) - c0;
	r->use.peak_rss_kib = proc_status_kib(pid, "VmHWM");
	kill(pid, SIGTERM);
	int rc = wait_exit(pid);
	r->lost = log_value(log, "phase=final", "frames_lost") +
	          log_value(log, "phase=final", "dropped_frames");
	r->written = log_value(log, "phase=final", "frames_written");
	r->reconnects = log_value(log, "phase=final", "reconnects");
	r->streaming = log_value(log, "phase=running", "streaming");
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
		pid_t pid = spawn(argv, NULL, NULL);
		if (pid < 0)
			err = (int)pid;
		else
			pids[i] = pid;
	}
	if (!err) {
		bench_sleep_ns(5000000000LL);   /* connect, probe the stream */
		double c0 = 0, c1 = 0;
		for (uint64_t i = 0; i < k; i++)
			c0 += proc_cpu_s(pids[i]);
		bench_sleep_ns((int64_t)o->seconds * 1000000000LL);
		*u = (struct proc_usage){ 0 };
		for (uint64_t i = 0; i < k; i++) {
			c1 += proc_cpu_s(pids[i]);
			u->peak_rss_kib += proc_status_kib(pids[i], "VmHWM");
		}
		u->cpu_s = c1 - c0;
	}
	for (uint64_t i = 0; i < k; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGTERM);
			wait_exit(pids[i]);
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
	if ((err = bench_mkdir(o.dir)) || (err = make_fixture(&o, fixture, sizeof fixture)))
		return err;
	pid_t sim = start_camsim(&o, fixture);
	if (sim < 0)
		return (int)sim;
	struct recorder_result r = { 0 };
	struct proc_usage peer = { 0 };
	uint64_t k = o.no_peer ? 0 : (o.peer_sample < o.cameras ? o.peer_sample : o.cameras);
	err = run_recorder(&o, &r);
	if (!err && k)
		err = run_peer(&o, k, &peer);
	kill(sim, SIGTERM);
	wait_exit(sim);
	if (!err)
		print_result(&o, &r, &peer, k);
	return err;
}
