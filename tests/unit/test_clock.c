/*
 * test_clock.c - frame times (nvr/frame_clock.c): arrival-anchored RTP
 * time before any RTCP sender report, the SR mapping with 32-bit wrap, the
 * skew check against arrival, re-anchoring on drift, and the rule that a
 * camera's times strictly increase, also across reconnects.
 */
#include <criterion/criterion.h>

#include "frame_clock.h"

#define T0 1767225600000000LL       /* 2026-01-01T00:00:00Z */
#define RATE 90000
#define TICKS_40MS 3600u

Test(clock, before_sr_times_follow_rtp_not_jitter)
{
	struct fclock c;
	fclock_init(&c, RATE, 5000, 0);
	uint32_t ts = 123456;
	enum fclock_source src;
	int64_t first = fclock_frame(&c, ts, T0, &src);
	cr_assert_eq(first, T0);
	cr_assert_eq(src, FCLOCK_ARRIVAL);
	static const int jitter_us[] = { 30000, -5000, 12000, 90000, 0, 1000, -20000 };
	for (int i = 1; i <= 7; i++) {
		int64_t arrival = T0 + i * 40000 + jitter_us[i - 1] + 20000;
		int64_t t = fclock_frame(&c, ts + (uint32_t)i * TICKS_40MS, arrival, &src);
		cr_assert_eq(t, T0 + i * 40000, "frame %d: %lld", i, (long long)(t - T0));
		cr_assert_eq(src, FCLOCK_ARRIVAL);
	}
	cr_assert_eq(c.reanchors, 0);
}

Test(clock, rtp_timestamp_wrap_before_sr)
{
	struct fclock c;
	fclock_init(&c, RATE, 5000, 0);
	uint32_t ts = 0xffffffffu - 2 * TICKS_40MS;   /* wraps at frame 3 */
	for (int i = 0; i < 10; i++) {
		int64_t t = fclock_frame(&c, ts + (uint32_t)i * TICKS_40MS, T0 + i * 40000, NULL);
		cr_assert_eq(t, T0 + i * 40000, "frame %d across the wrap: %lld", i, (long long)(t - T0));
	}
}

Test(clock, sender_report_maps_rtp_to_camera_time)
{
	struct fclock c;
	fclock_init(&c, RATE, 5000, 0);
	uint32_t sr_ts = 1000000;
	int64_t cam = T0 - 200000;                   /* camera 200 ms behind arrival */
	fclock_sender_report(&c, cam, sr_ts);
	enum fclock_source src;
	int64_t t = fclock_frame(&c, sr_ts + RATE, T0 + 1000000, &src);
	cr_assert_eq(src, FCLOCK_RTCP);
	cr_assert_eq(t, cam + 1000000);
	/* a frame timed just before the report (negative difference) */
	t = fclock_frame(&c, sr_ts + RATE + 45, T0 + 1000000, &src);
	cr_assert_eq(t, cam + 1000500);
	cr_assert_eq(c.skewed_frames, 0);
}

Test(clock, sender_report_across_wrap)
{
	struct fclock c;
	fclock_init(&c, RATE, 5000, 0);
	uint32_t sr_ts = 0xfffffff0u;
	fclock_sender_report(&c, T0, sr_ts);
	enum fclock_source src;
	int64_t t = fclock_frame(&c, 0x00000010u + 90000, T0 + 1000000, &src);
	cr_assert_eq(src, FCLOCK_RTCP);
	/* 0x20 ticks to the wrap point and back + 90000 ticks */
	cr_assert_eq(t, T0 + 1000000 + (32 * 1000000LL) / RATE);
	/* a frame before the SR across the wrap the other way */
	fclock_init(&c, RATE, 5000, 0);
	fclock_sender_report(&c, T0, 0x00000010u);
	t = fclock_frame(&c, 0xfffffff0u, T0, &src);
	cr_assert_eq(src, FCLOCK_RTCP);
	cr_assert_eq(t, T0 - (32 * 1000000LL + RATE - 1) / RATE);
}

Test(clock, skewed_camera_clock_falls_back_to_arrival)
{
	struct fclock c;
	fclock_init(&c, RATE, 5000, 0);
	fclock_sender_report(&c, T0 - 3600 * 1000000LL, 0);  /* camera an hour behind */
	enum fclock_source src;
	for (int i = 0; i < 5; i++) {
		int64_t t = fclock_frame(&c, (uint32_t)i * TICKS_40MS, T0 + i * 40000, &src);
		cr_assert_eq(src, FCLOCK_ARRIVAL);
		cr_assert_eq(t, T0 + i * 40000);
	}
	cr_assert_eq(c.skewed_frames, 5);
	/* a good report later switches to RTCP time */
	fclock_sender_report(&c, T0 + 5 * 40000 - 10000, 5 * TICKS_40MS);
	int64_t t = fclock_frame(&c, 6 * TICKS_40MS, T0 + 6 * 40000, &src);
	cr_assert_eq(src, FCLOCK_RTCP);
	cr_assert_eq(t, T0 + 6 * 40000 - 10000);
}

Test(clock, times_strictly_increase_when_sr_jumps_back)
{
	struct fclock c;
	fclock_init(&c, RATE, 5000, 0);
	int64_t prev = 0;
	for (int i = 0; i < 10; i++) {
		prev = fclock_frame(&c, (uint32_t)i * TICKS_40MS, T0 + i * 40000, NULL);
	}
	/* camera time 300 ms earlier than arrival: frames 10..16 would go back */
	fclock_sender_report(&c, T0 + 10 * 40000 - 300000, 10 * TICKS_40MS);
	for (int i = 10; i < 20; i++) {
		enum fclock_source src;
		int64_t t = fclock_frame(&c, (uint32_t)i * TICKS_40MS, T0 + i * 40000, &src);
		cr_assert_eq(src, FCLOCK_RTCP);
		cr_assert_gt(t, prev, "frame %d at %lld not after %lld", i, (long long)t, (long long)prev);
		int64_t mapped = T0 + i * 40000 - 300000;
		cr_assert_eq(t, mapped > prev ? mapped : prev + 1);
		prev = t;
	}
}

Test(clock, drift_beyond_skew_moves_the_anchor)
{
	struct fclock c;
	fclock_init(&c, RATE, 1000, 0);
	/* the camera's RTP clock runs 1% fast: 3636 ticks per 40 ms */
	int64_t prev = 0;
	int i;
	for (i = 0; i < 4000 && c.reanchors == 0; i++) {
		int64_t arrival = T0 + i * 40000;
		int64_t t = fclock_frame(&c, (uint32_t)i * 3636u, arrival, NULL);
		cr_assert_gt(t, prev);
		cr_assert_leq(llabs(t - arrival), 1000000, "frame %d off by %lld", i,
		              (long long)(t - arrival));
		prev = t;
	}
	cr_assert_eq(c.reanchors, 1);
	/* 1 s of drift at 1% takes 100 s = 2500 frames */
	cr_assert(i > 2400 && i < 2600, "re-anchored at frame %d", i);
}

Test(clock, reset_keeps_times_increasing_across_reconnects)
{
	struct fclock c;
	fclock_init(&c, RATE, 5000, 0);
	int64_t last = 0;
	for (int i = 0; i < 5; i++)
		last = fclock_frame(&c, 5000 + (uint32_t)i * TICKS_40MS, T0 + i * 40000, NULL);
	fclock_reset(&c, RATE);
	cr_assert_eq(c.last_us, last);
	cr_assert_not(c.have_sr);
	/* the new connection's first frame arrives "earlier" (clock stepped) */
	int64_t t = fclock_frame(&c, 777, T0 - 1000000, NULL);
	cr_assert_eq(t, last + 1);
	struct fclock d;
	fclock_init(&d, 0, 5000, T0);
	cr_assert_eq(d.rate, 90000);
	cr_assert_eq(fclock_frame(&d, 1, T0 - 5, NULL), T0 + 1);
}
