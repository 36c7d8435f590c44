/*
 * test_hls_plan.c - HLS segments planned from recorded key frames
 * (web/hls_plan.c) over a real storage engine: segments start at the first
 * key frame of each 4 s cell and after a gap, end at the next segment or
 * at the last frame before a gap, keep whole GOPs longer than a cell, come
 * out the same whatever cell-aligned window plans them; playlist lines;
 * MPEG-TS time origins that continue across the 33-bit wrap.
 */
#include <errno.h>
#include "testutil.h"
#include "hls_plan.h"

#define MAXS 32

/* Frames [from, to) of cam with a key frame every `gop` frames. */
static void put_gop(struct stg *stg, uint32_t cam, uint32_t from, uint32_t to, uint32_t gop)
{
	struct stg_camera *c;
	cr_assert_eq(stg_camera_get(stg, cam, &c), 0);
	static uint8_t buf[1 << 16];
	for (uint32_t n = from; n < to; n++) {
		uint32_t size = tu_frame_size(cam, n);
		tu_frame_fill(buf, size, cam, n);
		struct stg_frame f = { tu_frame_time(cam, n), buf, size, n % gop == 0, STG_CODEC_H264 };
		cr_assert_eq(stg_put_frame(c, &f), 0);
	}
}

/* Plans [t0, t1) into s; returns the count, *last_kind the last result. */
static int plan(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1, struct hls_segment *s,
                int *last_kind)
{
	static struct hls_plan p;
	hls_plan_init(&p, stg, cam, t0, t1);
	int n = 0, r;
	*last_kind = 0;
	while ((r = hls_plan_next(&p, &s[n])) > 0) {
		cr_assert(n < MAXS - 1);
		*last_kind = r;
		n++;
	}
	cr_assert_eq(r, 0, "plan: %s", stg_strerror(r));
	return n;
}

static int64_t t(uint32_t cam, uint32_t frame)
{
	return tu_frame_time(cam, frame);
}

Test(hls_plan, cells_gaps_and_ends)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	put_gop(e.stg, 4, 0, 200, 50);        /* key frames at 0, 2, 4, 6 s */
	put_gop(e.stg, 4, 300, 500, 50);      /* gap; key frames at 12, 14, 16, 18 s */
	tu_flush_sync(e.stg, 4);
	struct hls_segment s[MAXS];
	int kind;
	int n = plan(e.stg, 4, T_BASE_US, INT64_MAX, s, &kind);
	cr_assert_eq(n, 4, "%d segments", n);
	cr_assert_eq(s[0].start_us, t(4, 0));
	cr_assert_eq(s[0].end_us, t(4, 100), "two GOPs, to the next segment");
	cr_assert_eq(s[1].start_us, t(4, 100));
	cr_assert_eq(s[1].end_us, t(4, 199) + T_FRAME_US, "ends with its last frame before the gap");
	cr_assert(!s[1].gap_before);
	cr_assert_eq(s[2].start_us, t(4, 300));
	cr_assert(s[2].gap_before, "a segment after a gap says so");
	cr_assert_eq(s[2].end_us, t(4, 400));
	cr_assert_eq(s[3].start_us, t(4, 400));
	cr_assert_eq(s[3].end_us, t(4, 499) + T_FRAME_US);
	cr_assert_eq(kind, 2, "the last segment is open-ended");
	/* a window starting at a later cell plans the same segments from there */
	struct hls_segment s2[MAXS];
	n = plan(e.stg, 4, T_BASE_US + HLS_CELL_US, INT64_MAX, s2, &kind);
	cr_assert_eq(n, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(s2[i].start_us, s[i + 1].start_us, "segment %d start", i);
		cr_assert_eq(s2[i].end_us, s[i + 1].end_us, "segment %d end", i);
	}
	/* t1 ends the plan before the segment whose key frame is at t1 */
	n = plan(e.stg, 4, T_BASE_US, t(4, 300), s2, &kind);
	cr_assert_eq(n, 2);
	cr_assert_eq(s2[1].end_us, t(4, 199) + T_FRAME_US);
	tu_env_fini(&e);
}

Test(hls_plan, gops_longer_than_a_cell_stay_whole)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	put_gop(e.stg, 5, 0, 600, 150);       /* a key frame every 6 s */
	tu_flush_sync(e.stg, 5);
	struct hls_segment s[MAXS];
	int kind;
	int n = plan(e.stg, 5, T_BASE_US, INT64_MAX, s, &kind);
	cr_assert_eq(n, 4);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(s[i].start_us, t(5, (uint32_t)i * 150));
		cr_assert_eq(s[i].end_us, i < 3 ? t(5, (uint32_t)(i + 1) * 150)
		                                : t(5, 599) + T_FRAME_US);
		cr_assert_eq(hls_rounded_seconds(s[i].end_us - s[i].start_us), 6);
	}
	tu_env_fini(&e);
}

Test(hls_plan, playlist_lines)
{
	char buf[256];
	struct hls_segment s = { T_BASE_US + 500000, T_BASE_US + 4540000, false };
	int n = hls_segment_lines(buf, sizeof buf, &s, false);
	const char *want = "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.500Z\n#EXTINF:4.040,\n"
	                   "hls/segment.ts?start=1767225600500000&end=1767225604540000\n";
	cr_assert_str_eq(buf, want);
	cr_assert_eq(n, (int)strlen(want));
	n = hls_segment_lines(buf, sizeof buf, &s, true);
	cr_assert(strncmp(buf, "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:", 46) == 0);
	cr_assert_eq(hls_segment_lines(buf, 40, &s, false), -ENOSPC);
	cr_assert_eq(hls_rounded_seconds(4499999), 4);
	cr_assert_eq(hls_rounded_seconds(4500000), 5);
}

Test(hls_plan, ts_origin_wraps_every_2_pow_33_ticks)
{
	/* 2^33 ticks of 90 kHz = 95443717688.888... us */
	int64_t wrap_x9 = 858993459200LL;
	int64_t times[] = { 0, 1, T_BASE_US, T_BASE_US + 123456789, 95443717688LL,
	                    95443717689LL, 18 * wrap_x9 / 9 + 5 };
	for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
		int64_t o = hls_ts_origin(times[i]);
		cr_assert(o <= times[i], "origin after the time %lld", (long long)times[i]);
		cr_assert(times[i] - o < 95443717689LL, "origin too far back");
		/* the origin is a whole number of wraps: its ticks are 0 mod 2^33 */
		int64_t ticks = (o * 9 + 50) / 100;
		cr_assert_eq(ticks % (1LL << 33), 0, "origin %lld not on a wrap", (long long)o);
	}
	cr_assert_eq(hls_ts_origin(95443717688LL), 0);
	cr_assert_eq(hls_ts_origin(95443717689LL), 95443717689LL);
}
