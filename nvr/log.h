/*
 * log.h - the daemon's log lines and clocks.
 *
 * One line per event on stderr, structured as key=value text:
 *   level=info comp=ingest event=session_up camera=12 ...
 * `comp` names the module (ingest, rtsp, registry, avsource, nvrd, ...).
 * Values with spaces are quoted by the caller. Credentials are never passed
 * to these functions.
 */
#ifndef NVR_LOG_H
#define NVR_LOG_H

#include <stdbool.h>
#include <stdint.h>

void nvr_log(const char *level, const char *comp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Lines below this level are not printed: "debug", "info" (default),
 * "warn", "error". */
void nvr_log_set_level(const char *level);

/* Whether lines of this level are printed at the current level. */
bool nvr_log_enabled(const char *level);

/*
 * Per-source rate limit (a token bucket), so that one flapping camera
 * cannot flood the log: up to NVR_LOG_LIMIT_BURST lines at once, then one
 * more every NVR_LOG_LIMIT_REFILL_US. A line that does not pass is counted,
 * and the next line that passes ends with " suppressed=N". Lines below the
 * current level neither pass nor count. A zeroed struct is a full bucket.
 * Not locked: each limiter belongs to one thread at a time (a camera's
 * owner), like the state it logs about.
 */
#define NVR_LOG_LIMIT_BURST 5
#define NVR_LOG_LIMIT_REFILL_US (60LL * 1000000)

struct nvr_log_limit {
	uint32_t spent;           /* tokens taken from the full bucket */
	int64_t refill_at_us;     /* monotonic: when the next token comes back */
	uint64_t suppressed;      /* lines held back since the last one printed */
};

/* Takes a token at time now_us (monotonic). True when the line may be
 * printed; *suppressed then gets the count held back before it (reset). */
bool nvr_log_limit_take(struct nvr_log_limit *l, int64_t now_us, uint64_t *suppressed);

/* nvr_log through the limiter, on the monotonic clock (nvr_mono_us) or at
 * a given time. Returns true when the line was printed. */
bool nvr_log_limited(struct nvr_log_limit *l, const char *level, const char *comp,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
bool nvr_log_limited_at(struct nvr_log_limit *l, int64_t now_us, const char *level,
                        const char *comp, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

int64_t nvr_now_us(void);        /* CLOCK_REALTIME, microseconds */
int64_t nvr_mono_us(void);       /* CLOCK_MONOTONIC, microseconds */

#endif
