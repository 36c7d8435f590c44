/*
 * log.c - the engine's log lines and clock.
 *
 * Log lines are structured key=value text on stderr (journald keeps them);
 * every line names the component so operators can grep "comp=storage".
 * The clock is CLOCK_REALTIME unless the configuration injects one (tests
 * of retention and flush timing run days in seconds that way).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "internal.h"

void stg_log(const char *level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "level=%s comp=storage %s\n", level, msg);
}

int64_t stg_realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t stg_now(const struct stg *stg)
{
	if (stg && stg->cfg.clock)
		return stg->cfg.clock(stg->cfg.clock_user);
	return stg_realtime_us();
}

const char *stg_strerror(int err)
{
	switch (err) {
	case STG_EGONE: return "footage is no longer recorded (reclaimed)";
	case STG_ECORRUPT: return "on-disk data failed its checks";
	case STG_EUUID: return "volume UUID does not match the index";
	case STG_ENOVOLUME: return "no healthy volume left";
	case STG_EEXIST: return "directory is not empty or already a volume";
	case STG_EFORMAT: return "not a volume or unsupported format version";
	case STG_EHELD: return "footage is under a legal hold";
	}
	if (err <= -30700 && err >= -31000)
		return mdb_strerror(err);
	static __thread char buf[64];
	snprintf(buf, sizeof buf, "%s", strerror(-err));
	return buf;
}
