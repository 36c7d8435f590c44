/*
 * bench_proc.h - running the real programs from a benchmark (bench_proc.c):
 * spawning, waiting, CPU and memory of a process, the fixture video, the
 * camera simulator and values from nvrd's key=value log lines.
 */
#ifndef NVR_BENCH_PROC_H
#define NVR_BENCH_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_LISTENERS 16

/* Starts argv with stdin from /dev/null and stdout/stderr to files (NULL:
 * /dev/null); returns the pid or a negative errno (reported). */
pid_t bench_spawn(char *const argv[], const char *out, const char *err);
/* Waits for pid: its exit status, 128 + signal, or a negative errno. */
int bench_wait_exit(pid_t pid);
/* Runs argv to completion with its output in `log`; 0 or -EIO (reported). */
int bench_run_cmd(char *const argv[], const char *log);
/* utime + stime of a process so far, in seconds (0 if unreadable). */
double bench_proc_cpu_s(pid_t pid);
/* A "Key: N kB" field of /proc/PID/status (VmHWM, VmRSS), 0 if absent. */
uint64_t bench_proc_status_kib(pid_t pid, const char *key);
/* The path of program `name` next to this executable. */
void bench_bin_path(char *out, size_t n, const char *name);
/* Makes (or reuses) a 20 s H.264 fixture of that bitrate and frame rate in
 * DIR/fixtures with scripts/make-fixtures.sh; its path goes to out. */
int bench_make_fixture(const char *dir, uint64_t bitrate_kbps, uint64_t fps, char *out, size_t n);
/* Starts nvr-camsim with `cameras` cameras on 127.0.0.1:base_port ..
 * base_port+listeners-1 and waits for its "ready" line; logs in DIR. */
pid_t bench_start_camsim(const char *dir, uint64_t cameras, uint64_t fps, const char *fixture,
                         uint32_t listeners, unsigned base_port);
/* The number after " key=" in the last line of `path` containing `match`,
 * or -1. */
double bench_log_value(const char *path, const char *match, const char *key);

#endif
