/*
 * log.c - structured log lines (see log.h) and the two clocks.
 *
 * A line is formatted whole and written with one fputs on an unbuffered
 * stderr, so lines from several threads do not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int g_min_level = 1;   /* 0 debug, 1 info, 2 warn, 3 error */

static int level_rank(const char *level)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++)
		if (!strcmp(level, names[i]))
			return i;
	return 3;
}

void nvr_log_set_level(const char *level)
{
	g_min_level = level_rank(level);
}

void nvr_log(const char *level, const char *comp, const char *fmt, ...)
{
	if (level_rank(level) < g_min_level)
		return;
	char msg[2048];
	int n = snprintf(msg, sizeof msg, "level=%s comp=%s ", level, comp);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof msg)
		vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strlen(msg);
	if (len + 1 < sizeof msg) {
		msg[len] = '\n';
		msg[len + 1] = '\0';
	}
	fputs(msg, stderr);
}

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t nvr_now_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

int64_t nvr_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}
