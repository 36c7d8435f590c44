/*
 * bench_util.c - small helpers shared by the nvr-bench subcommands.
 *
 * Timing, percentiles and peak memory are what every benchmark figure is
 * built from, so they live in one place and are measured one way. Option
 * parsing is a table walk so that each subcommand only lists its options.
 */
#include "bench_util.h"

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void bench_sleep_until_ns(int64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = deadline_ns / 1000000000,
		.tv_nsec = deadline_ns % 1000000000,
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_percentile(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	/* Nearest-rank: the smallest value with at least p% of values <= it. */
	i = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

int bench_peak_rss(uint64_t *out)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kib;

		if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) {
			*out = (uint64_t)kib * 1024;
			err = 0;
			break;
		}
	}
	fclose(f);
	return err;
}

uint64_t bench_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

int bench_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: break;
	}
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static struct bench_opt *find_opt(struct bench_opt *opts, size_t n, const char *arg)
{
	if (strncmp(arg, "--", 2) != 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(arg + 2, opts[i].name) == 0)
			return &opts[i];
	return NULL;
}

static int set_opt(const char *cmd, struct bench_opt *o, const char *val)
{
	int err;

	switch (o->kind) {
	case BENCH_OPT_FLAG:
		*(bool *)o->dst = true;
		return 0;
	case BENCH_OPT_STR:
		*(const char **)o->dst = val;
		return 0;
	case BENCH_OPT_U64:
		err = bench_parse_u64(val, o->dst);
		if (err)
			fprintf(stderr, "%s: --%s: not an unsigned number: '%s'\n",
			        cmd, o->name, val);
		return err ? -EINVAL : 0;
	}
	return -EINVAL;
}

int bench_parse_opts(const char *cmd, int argc, char **argv,
                     struct bench_opt *opts, size_t nopts)
{
	for (int i = 0; i < argc; i++) {
		struct bench_opt *o = find_opt(opts, nopts, argv[i]);
		const char *val = NULL;

		if (!o) {
			fprintf(stderr, "%s: unknown option '%s'\n", cmd, argv[i]);
			return -EINVAL;
		}
		if (o->kind != BENCH_OPT_FLAG) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: --%s needs a value\n", cmd, o->name);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (set_opt(cmd, o, val))
			return -EINVAL;
		o->seen = true;
	}
	for (size_t i = 0; i < nopts; i++) {
		if (opts[i].required && !opts[i].seen) {
			fprintf(stderr, "%s: --%s is required\n", cmd, opts[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

int bench_path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) ? -1 : 0;
	return unlink(path) ? -1 : 0;
}

int bench_remove_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return errno ? -errno : -EIO;
	return 0;
}

int bench_mkdir(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}
