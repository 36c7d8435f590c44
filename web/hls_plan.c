/*
 * hls_plan.c - HLS segments planned from key frames, and playlist lines
 * (hls_plan.h).
 *
 * The planner reads key frames in batches of HLS_KEY_BATCH from the
 * storage engine and folds them into segments one at a time, so that a
 * playlist of any length is planned in constant memory.
 */
#include "hls_plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "query.h"

#define HLS_TS_WRAP_X9 (858993459200LL)  /* 2^33 ticks of 90 kHz, x 100: us x 9 */

void hls_plan_init(struct hls_plan *p, struct stg *stg, uint32_t camera, int64_t t0,
                   int64_t t1)
{
	p->stg = stg;
	p->camera = camera;
	p->t1 = t1;
	p->cursor = t0;
	p->nkeys = p->next = 0;
	p->exhausted = t0 >= t1;
	p->have_cur = false;
	p->prev_key = 0;
}

/* The next key frame: 1, 0 after the last, or a negative errno. */
static int hls_next_key(struct hls_plan *p, struct stg_key_frame *k)
{
	if (p->next == p->nkeys) {
		if (p->exhausted)
			return 0;
		int n = stg_key_frames(p->stg, p->camera, p->cursor, p->t1, p->keys, HLS_KEY_BATCH);
		if (n < 0)
			return n;
		p->exhausted = n < HLS_KEY_BATCH;
		if (n == 0)
			return 0;
		p->nkeys = n;
		p->next = 0;
		p->cursor = p->keys[n - 1].time_us + 1;
	}
	*k = p->keys[p->next++];
	return 1;
}

static int64_t hls_cell(int64_t t)
{
	return t >= 0 ? t / HLS_CELL_US : -((-t + HLS_CELL_US - 1) / HLS_CELL_US);
}

int hls_plan_next(struct hls_plan *p, struct hls_segment *out)
{
	struct stg_key_frame k;
	int r;
	while ((r = hls_next_key(p, &k)) > 0) {
		struct hls_segment *c = &p->cur;
		bool gap = p->have_cur && (k.range_start || k.time_us > c->end_us);
		bool cut = p->have_cur && (gap || hls_cell(k.time_us) != hls_cell(p->prev_key));
		if (cut) {
			*out = *c;
			if (!gap)
				out->end_us = k.time_us;
		}
		if (!p->have_cur || cut)
			*c = (struct hls_segment){ k.time_us, k.end_us, k.range_start || gap };
		else
			c->end_us = k.end_us;
		p->have_cur = true;
		p->prev_key = k.time_us;
		if (cut)
			return 1;
	}
	if (r < 0 || !p->have_cur)
		return r;
	*out = p->cur;
	p->have_cur = false;
	return 2;
}

int64_t hls_rounded_seconds(int64_t duration_us)
{
	return (duration_us + 500000) / 1000000;
}

int hls_segment_lines(char *buf, size_t size, const struct hls_segment *s, bool with_gap)
{
	char when[40];
	if (query_format_time(s->start_us, when, sizeof when))
		return -ERANGE;
	int64_t d = s->end_us - s->start_us;
	int n = snprintf(buf, size,
	                 "%s#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%" PRId64 ".%03" PRId64 ",\n"
	                 "hls/segment.ts?start=%" PRId64 "&end=%" PRId64 "\n",
	                 with_gap ? "#EXT-X-DISCONTINUITY\n" : "", when, d / 1000000,
	                 d % 1000000 / 1000, s->start_us, s->end_us);
	return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

/* The first microsecond at or after wrap number k. */
static int64_t hls_wrap_us(int64_t k)
{
	return (k * HLS_TS_WRAP_X9 + 8) / 9;
}

int64_t hls_ts_origin(int64_t start_us)
{
	if (start_us < 0)
		return 0;
	int64_t k = start_us / (HLS_TS_WRAP_X9 / 9);
	while (hls_wrap_us(k + 1) <= start_us)
		k++;
	while (k > 0 && hls_wrap_us(k) > start_us)
		k--;
	return hls_wrap_us(k);
}
