/*
 * bench_proc.c - the processes a benchmark runs: spawning and reaping
 * programs, their CPU time and memory from /proc, the fixture video, the
 * camera simulator, and values read back from nvrd's log lines. Shared by
 * the subcommands that drive the real binaries (ingest, http).
 */
#include "bench_proc.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Starts argv with stdout and stderr to files (NULL: /dev/null). */
pid_t bench_spawn(char *const argv[], const char *out, const char *err)
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
		fprintf(stderr, "bench: cannot start %s: %s\n", argv[0], strerror(rc));
		return -rc;
	}
	return pid;
}

int bench_wait_exit(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int bench_run_cmd(char *const argv[], const char *log)
{
	pid_t pid = bench_spawn(argv, log, log);
	if (pid < 0)
		return (int)pid;
	int rc = bench_wait_exit(pid);
	if (rc)
		fprintf(stderr, "bench: %s exited %d (see %s)\n", argv[0], rc, log ? log : "-");
	return rc ? -EIO : 0;
}

/* utime + stime of a process, in seconds. */
double bench_proc_cpu_s(pid_t pid)
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

uint64_t bench_proc_status_kib(pid_t pid, const char *key)
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

void bench_bin_path(char *out, size_t n, const char *name)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[len > 0 ? len : 0] = '\0';
	snprintf(out, n, "%s/%s", len > 0 ? dirname(exe) : ".", name);
}

/* Makes (or reuses) the fixture; its path goes to out. */
int bench_make_fixture(const char *dir, uint64_t bitrate_kbps, uint64_t fps_v, char *out, size_t n)
{
	char script[PATH_MAX + 64], fixdir[PATH_MAX + 32], kbps[24], fps[24], log[PATH_MAX + 32];
	bench_bin_path(script, sizeof script, "../../scripts/make-fixtures.sh");
	snprintf(fixdir, sizeof fixdir, "%s/fixtures", dir);
	snprintf(kbps, sizeof kbps, "%" PRIu64, bitrate_kbps);
	snprintf(fps, sizeof fps, "%" PRIu64, fps_v);
	snprintf(log, sizeof log, "%s/fixture.log", dir);
	const char *size = bitrate_kbps >= 1500 ? "1280x720" : "640x360";
	char *argv[] = { script, fixdir, "20", kbps, fps, (char *)size, NULL };
	int err = bench_run_cmd(argv, log);
	if (err)
		return err;
	if (snprintf(out, n, "%s/h264-20-%s-%s-%s.264", fixdir, kbps, fps, size) >= (int)n)
		return -ENAMETOOLONG;
	return access(out, R_OK) ? -errno : 0;
}

/* Starts the simulator and waits for its "ready" line. */
pid_t bench_start_camsim(const char *dir, uint64_t cameras, uint64_t fps_v, const char *fixture,
                         uint32_t listeners, unsigned base_port)
{
	char bin[PATH_MAX + 16], cams[24], fps[24], out[PATH_MAX + 32], err[PATH_MAX + 32];
	char listen[BENCH_MAX_LISTENERS][32];
	char *argv[16 + 2 * BENCH_MAX_LISTENERS];
	int a = 0;
	bench_bin_path(bin, sizeof bin, "nvr-camsim");
	snprintf(cams, sizeof cams, "%" PRIu64, cameras);
	snprintf(fps, sizeof fps, "%" PRIu64, fps_v);
	snprintf(out, sizeof out, "%s/camsim.out", dir);
	snprintf(err, sizeof err, "%s/camsim.log", dir);
	argv[a++] = bin;
	argv[a++] = "--cameras"; argv[a++] = cams;
	argv[a++] = "--fixture"; argv[a++] = (char *)fixture;
	argv[a++] = "--fps"; argv[a++] = fps;
	for (uint32_t l = 0; l < listeners; l++) {
		snprintf(listen[l], sizeof listen[l], "127.0.0.1:%u", base_port + l);
		argv[a++] = "--listen";
		argv[a++] = listen[l];
	}
	argv[a] = NULL;
	pid_t pid = bench_spawn(argv, out, err);
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
			fprintf(stderr, "bench: nvr-camsim exited early (see %s)\n", err);
			return -EIO;
		}
		bench_sleep_ns(100000000);
	}
	if (pid > 0) {
		fprintf(stderr, "bench: nvr-camsim not ready after 30 s (see %s)\n", err);
		kill(pid, SIGKILL);
		bench_wait_exit(pid);
	}
	return -ETIMEDOUT;
}

/* Value of `key` in the last line of `path` that contains `match`. */
double bench_log_value(const char *path, const char *match, const char *key)
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

