/*
 * test_log_limit.c - the per-source log limiter (nvr/log.c) and the ring
 * of recent failures behind the repeat-failure list (nvr/ingest.c), both
 * driven by an injected clock: the burst, the refill of one line a minute,
 * the "suppressed=N" count on the next line that passes, levels that are
 * off neither passing nor counting; failures counted within the window,
 * the ring overwriting its oldest entries, the threshold.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "log.h"

#define MIN_US NVR_LOG_LIMIT_REFILL_US

/* How many of `n` takes at time t pass; the last passing take's count of
 * suppressed lines in *held. */
static int take_n(struct nvr_log_limit *l, int64_t t, int n, uint64_t *held)
{
	int passed = 0;
	for (int i = 0; i < n; i++) {
		uint64_t h = 999;
		if (nvr_log_limit_take(l, t, &h)) {
			passed++;
			*held = h;
		}
	}
	return passed;
}

Test(log_limit, burst_then_one_per_refill)
{
	struct nvr_log_limit l;
	memset(&l, 0, sizeof l);
	uint64_t held = 999;
	int64_t t0 = 1000000;
	cr_assert_eq(take_n(&l, t0, 20, &held), NVR_LOG_LIMIT_BURST);
	cr_assert_eq(held, 0, "nothing was held back before the burst ended");
	cr_assert_eq(l.suppressed, 20 - NVR_LOG_LIMIT_BURST);
	/* Just before a token comes back: still nothing passes. */
	cr_assert_eq(take_n(&l, t0 + MIN_US - 1, 3, &held), 0);
	cr_assert_eq(l.suppressed, 18);
	/* One token after one refill period, carrying the count. */
	held = 999;
	cr_assert_eq(take_n(&l, t0 + MIN_US, 4, &held), 1);
	cr_assert_eq(held, 18);
	cr_assert_eq(l.suppressed, 3, "the three after it are counted anew");
	/* Three more periods: three more tokens, not more. */
	cr_assert_eq(take_n(&l, t0 + 4 * MIN_US, 10, &held), 3);
	cr_assert_eq(held, 0, "the first of them reported the 3 held back, the later ones 0");
	cr_assert_eq(l.suppressed, 7);
}

Test(log_limit, refills_to_a_full_burst_only)
{
	struct nvr_log_limit l;
	memset(&l, 0, sizeof l);
	uint64_t held = 0;
	cr_assert_eq(take_n(&l, 0, NVR_LOG_LIMIT_BURST, &held), NVR_LOG_LIMIT_BURST);
	/* A day later the bucket is full again, never fuller. */
	int64_t day = 24LL * 3600 * 1000000;
	cr_assert_eq(take_n(&l, day, 50, &held), NVR_LOG_LIMIT_BURST);
	cr_assert_eq(l.suppressed, 50 - NVR_LOG_LIMIT_BURST);
}

/* Runs the limited logger with stderr in a file; returns the text. */
static char *capture(struct nvr_log_limit *l, const char *level, int lines, int64_t t,
                     int *printed)
{
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	int saved = dup(2);
	cr_assert_geq(saved, 0);
	cr_assert_eq(dup2(fileno(f), 2), 2);
	*printed = 0;
	for (int i = 0; i < lines; i++)
		*printed += nvr_log_limited_at(l, t, level, "test", "event=fail camera=7 n=%d", i);
	cr_assert_eq(dup2(saved, 2), 2);
	close(saved);
	long len = ftell(f);
	cr_assert_geq(len, 0);
	char *text = calloc(1, (size_t)len + 1);
	rewind(f);
	cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return text;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(log_limit, lines_say_how_many_were_suppressed)
{
	struct nvr_log_limit l;
	memset(&l, 0, sizeof l);
	nvr_log_set_level("info");
	int printed;
	char *a = capture(&l, "warn", 12, 0, &printed);
	cr_assert_eq(printed, NVR_LOG_LIMIT_BURST);
	cr_assert_eq(count_lines(a), NVR_LOG_LIMIT_BURST, "%s", a);
	cr_assert_not_null(strstr(a, "level=warn comp=test event=fail camera=7 n=4\n"), "%s", a);
	cr_assert_null(strstr(a, "suppressed="), "%s", a);
	cr_assert_null(strstr(a, "n=5"), "%s", a);
	free(a);
	char *b = capture(&l, "warn", 2, MIN_US, &printed);
	cr_assert_eq(printed, 1);
	cr_assert_str_eq(b, "level=warn comp=test event=fail camera=7 n=0 suppressed=7\n");
	free(b);
}

Test(log_limit, lines_below_the_level_neither_pass_nor_count)
{
	struct nvr_log_limit l;
	memset(&l, 0, sizeof l);
	nvr_log_set_level("info");
	int printed;
	char *a = capture(&l, "debug", 30, 0, &printed);
	cr_assert_eq(printed, 0);
	cr_assert_str_eq(a, "");
	cr_assert_eq(l.spent, 0);
	cr_assert_eq(l.suppressed, 0);
	free(a);
	char *b = capture(&l, "error", 1, 0, &printed);
	cr_assert_eq(printed, 1);
	cr_assert_str_eq(b, "level=error comp=test event=fail camera=7 n=0\n");
	free(b);
}

#define HOUR_US (3600LL * 1000000)

Test(repeat_failures, counted_within_the_window)
{
	struct ingest_failures f;
	memset(&f, 0, sizeof f);
	int64_t last = -1, now = 100 * 24 * HOUR_US;
	cr_assert_eq(ingest_failures_within(&f, now, INGEST_REPEAT_WINDOW_US, &last), 0);
	cr_assert_eq(last, 0);
	ingest_failures_note(&f, now - 30 * HOUR_US);    /* outside 24 h */
	ingest_failures_note(&f, now - 20 * HOUR_US);
	ingest_failures_note(&f, now - 2 * HOUR_US);
	cr_assert_eq(ingest_failures_within(&f, now, INGEST_REPEAT_WINDOW_US, &last), 2);
	cr_assert_eq(last, now - 2 * HOUR_US);
	struct ingest_camera_status st = { .failures_24h = 2 };
	cr_assert_not(ingest_is_repeat_failure(&st));
	ingest_failures_note(&f, now - HOUR_US);
	st.failures_24h = ingest_failures_within(&f, now, INGEST_REPEAT_WINDOW_US, &last);
	cr_assert_eq(st.failures_24h, INGEST_REPEAT_FAILURES);
	cr_assert(ingest_is_repeat_failure(&st));
	/* Ten hours on, the one from 20 h before is out of the window. */
	st.failures_24h = ingest_failures_within(&f, now + 10 * HOUR_US, INGEST_REPEAT_WINDOW_US,
	                                         &last);
	cr_assert_eq(st.failures_24h, 2);
	cr_assert_not(ingest_is_repeat_failure(&st));
	cr_assert_eq(last, now - HOUR_US);
}

Test(repeat_failures, ring_keeps_the_newest)
{
	struct ingest_failures f;
	memset(&f, 0, sizeof f);
	int64_t last = 0;
	for (int i = 0; i < 40; i++)
		ingest_failures_note(&f, (int64_t)i * HOUR_US);
	int64_t now = 39 * HOUR_US;
	cr_assert_eq(f.count, INGEST_FAILURE_RING);
	/* 24 failures happened in [15 h, 39 h]; only the newest 16 are kept. */
	cr_assert_eq(ingest_failures_within(&f, now, INGEST_REPEAT_WINDOW_US, &last),
	             INGEST_FAILURE_RING);
	cr_assert_eq(last, now);
	/* Within the last 5 hours: 34..39, six of them. */
	cr_assert_eq(ingest_failures_within(&f, now, 5 * HOUR_US, &last), 6);
}
