/*
 * log.c - structured log lines (see log.h) and the two clocks.
 *
 * A line is formatted whole and written with one fputs on an unbuffered
 * stderr, so lines from several threads do not interleave. The per-source
 * limiter (struct nvr_log_limit) is a token bucket counted in whole tokens:
 * `spent` tokens are out, and one comes back every NVR_LOG_LIMIT_REFILL_US
 * from the moment the first was taken from a full bucket.
 */
#include <stdarg.h>
#include <stdbool.h>
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

bool nvr_log_enabled(const char *level)
{
	return level_rank(level) >= g_min_level;
}

/* One line: prefix, the caller's text, then `suffix` (may be empty). */
static void nvr_vlog(const char *level, const char *comp, const char *suffix, const char *fmt,
                     va_list ap)
{
	char msg[2048];
	int n = snprintf(msg, sizeof msg, "level=%s comp=%s ", level, comp);
	if (n > 0 && (size_t)n < sizeof msg)
		vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	size_t len = strlen(msg);
	n = snprintf(msg + len, sizeof msg - len, "%s\n", suffix);
	if (n < 0 || (size_t)n >= sizeof msg - len) {   /* cut short: still one line */
		msg[sizeof msg - 2] = '\n';
		msg[sizeof msg - 1] = '\0';
	}
	fputs(msg, stderr);
}

void nvr_log(const char *level, const char *comp, const char *fmt, ...)
{
	if (!nvr_log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	nvr_vlog(level, comp, "", fmt, ap);
	va_end(ap);
}

bool nvr_log_limit_take(struct nvr_log_limit *l, int64_t now_us, uint64_t *suppressed)
{
	if (l->spent > 0 && now_us >= l->refill_at_us) {
		int64_t back = 1 + (now_us - l->refill_at_us) / NVR_LOG_LIMIT_REFILL_US;
		l->spent = back >= l->spent ? 0 : l->spent - (uint32_t)back;
		l->refill_at_us += back * NVR_LOG_LIMIT_REFILL_US;
	}
	if (l->spent >= NVR_LOG_LIMIT_BURST) {
		l->suppressed++;
		return false;
	}
	if (l->spent++ == 0)
		l->refill_at_us = now_us + NVR_LOG_LIMIT_REFILL_US;
	*suppressed = l->suppressed;
	l->suppressed = 0;
	return true;
}

static bool nvr_vlog_limited(struct nvr_log_limit *l, int64_t now_us, const char *level,
                             const char *comp, const char *fmt, va_list ap)
{
	uint64_t held;
	if (!nvr_log_enabled(level) || !nvr_log_limit_take(l, now_us, &held))
		return false;
	char suffix[40] = "";
	if (held)
		snprintf(suffix, sizeof suffix, " suppressed=%llu", (unsigned long long)held);
	nvr_vlog(level, comp, suffix, fmt, ap);
	return true;
}

bool nvr_log_limited_at(struct nvr_log_limit *l, int64_t now_us, const char *level,
                        const char *comp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool printed = nvr_vlog_limited(l, now_us, level, comp, fmt, ap);
	va_end(ap);
	return printed;
}

bool nvr_log_limited(struct nvr_log_limit *l, const char *level, const char *comp,
                     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool printed = nvr_vlog_limited(l, nvr_mono_us(), level, comp, fmt, ap);
	va_end(ap);
	return printed;
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
