/*
 * bench_util.h - small helpers shared by the nvr-bench subcommands.
 *
 * Clocks, sleeping, percentiles, the process's peak memory, a tiny
 * deterministic random number generator, "--name value" option parsing and
 * removal of directories the benchmark made earlier. Nothing here knows
 * about the storage engine.
 */
#ifndef NVR_BENCH_UTIL_H
#define NVR_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). */
int64_t bench_now_ns(void);

/* Wall-clock time in microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t bench_wall_us(void);

/* Sleeps for `ns` nanoseconds (restarting after signals). */
void bench_sleep_ns(int64_t ns);

/* Sleeps until the monotonic clock reaches `deadline_ns`. */
void bench_sleep_until_ns(int64_t deadline_ns);

/* The p-th percentile (0..100) of `v[0..n)`; sorts `v` in place.
 * Returns 0 for n == 0. */
double bench_percentile(double *v, size_t n, double p);

/* Peak resident set size (VmHWM from /proc/self/status) in bytes, stored in
 * *out. Returns 0 or a negative errno. */
int bench_peak_rss(uint64_t *out);

/* splitmix64: a cheap, good 64-bit mixer. Same input, same output. */
uint64_t bench_mix64(uint64_t x);

/* Command-line options of the form "--name value" or "--flag". */
enum bench_opt_kind {
	BENCH_OPT_U64,   /* unsigned integer, optional K/M/G/T suffix (x1024) */
	BENCH_OPT_STR,   /* string, stored as a pointer into argv */
	BENCH_OPT_FLAG,  /* no value; sets a bool to true */
};

struct bench_opt {
	const char *name;          /* without the leading "--" */
	enum bench_opt_kind kind;
	void *dst;                 /* uint64_t *, const char **, or bool * */
	bool required;
	bool seen;                 /* set by bench_parse_opts */
};

/* Parses argv[0..argc) against `opts`. Reports the first problem on stderr
 * (prefixed with `cmd`) and returns -EINVAL. */
int bench_parse_opts(const char *cmd, int argc, char **argv,
                     struct bench_opt *opts, size_t nopts);

/* Parses an unsigned integer with an optional K, M, G or T suffix. */
int bench_parse_u64(const char *s, uint64_t *out);

/* Joins `dir` and `name` into `out` (size `cap`). Returns 0 or -ENAMETOOLONG. */
int bench_path_join(char *out, size_t cap, const char *dir, const char *name);

/* Removes the directory tree at `path`. A missing path is not an error.
 * Returns 0 or a negative errno. */
int bench_remove_tree(const char *path);

/* Creates `path` as a directory if it does not exist yet. */
int bench_mkdir(const char *path);

#endif
