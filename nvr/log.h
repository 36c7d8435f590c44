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

#include <stdint.h>

void nvr_log(const char *level, const char *comp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Lines below this level are not printed: "debug", "info" (default),
 * "warn", "error". */
void nvr_log_set_level(const char *level);

int64_t nvr_now_us(void);        /* CLOCK_REALTIME, microseconds */
int64_t nvr_mono_us(void);       /* CLOCK_MONOTONIC, microseconds */

#endif
