/*
 * hls_plan.h - HLS segments of a camera's footage, planned from its key
 * frames (stg_key_frames: directories only, no frame read), and the lines
 * of a playlist (RFC 8216). Private to web/.
 *
 * The rule that cuts segments depends on the footage alone, never on the
 * window asked for, so that a segment keeps its start and end (and its
 * URL) in every playlist that lists it, live or VOD: a segment starts at
 * the first key frame of each HLS_CELL_US cell of wall-clock time (cells
 * counted from the epoch), and at the first key frame after a gap. It runs
 * to the next segment's start, or to the end of its last GOP before a gap.
 * A segment is therefore one or more whole GOPs, about HLS_CELL_US long
 * when GOPs are shorter than that, one GOP when they are longer.
 */
#ifndef WEB_HLS_PLAN_H
#define WEB_HLS_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage.h"

#define HLS_CELL_US 4000000LL        /* segments start in 4 s cells */
#define HLS_KEY_BATCH 256            /* key frames asked for at once */

struct hls_segment {
	int64_t start_us;               /* its first (key) frame */
	int64_t end_us;                 /* exclusive: the next segment's start,
	                                 * or the end of its last frame */
	bool gap_before;                /* footage before it is missing */
};

struct hls_plan {
	struct stg *stg;
	uint32_t camera;
	int64_t t1;                     /* key frames before this are planned */
	int64_t cursor;                 /* the next batch starts here */
	struct stg_key_frame keys[HLS_KEY_BATCH];
	int nkeys, next;
	bool exhausted;                 /* no key frames after the batch */
	bool have_cur;
	struct hls_segment cur;         /* being extended; end_us = GOP end */
	int64_t prev_key;
};

/* Plans the segments whose first key frame lies in [t0, t1). For segments
 * that agree with every other plan, t0 must be a cell boundary (or the
 * start of a segment). */
void hls_plan_init(struct hls_plan *p, struct stg *stg, uint32_t camera, int64_t t0,
                   int64_t t1);

/* The next segment: 1 for a segment whose end is fixed (the footage goes
 * on after it), 2 for the last one (its end is the end of the footage
 * recorded so far: at the live edge it may still grow), 0 when there is
 * no more, or a negative errno. */
int hls_plan_next(struct hls_plan *p, struct hls_segment *out);

/* "#EXTINF" duration rounded to the nearest second, as RFC 8216 compares
 * it with EXT-X-TARGETDURATION. */
int64_t hls_rounded_seconds(int64_t duration_us);

/* The lines of one segment, relative URL included; with_gap writes
 * EXT-X-DISCONTINUITY first. Returns the length written (< size), or a
 * negative errno when it does not fit or the time cannot be printed. */
int hls_segment_lines(char *buf, size_t size, const struct hls_segment *s, bool with_gap);

/* The start of MPEG-TS time for a segment starting at start_us: TS times
 * are 33-bit counters of 90 kHz, so segments use the wall clock modulo
 * that wrap (about 26.5 hours) and consecutive segments continue each
 * other's times, across segment boundaries and across a wrap. */
int64_t hls_ts_origin(int64_t start_us);

#endif
