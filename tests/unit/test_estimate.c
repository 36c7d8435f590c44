/*
 * test_estimate.c - stg_estimate: what the index says a camera holds in a
 * window (frames and frame bytes of the overlapping chunks), checked
 * against the frames actually written and read back, across a gap, across
 * sealed and open segments, and for windows without footage.
 */
#include "testutil.h"

/* Frame bytes of frames [from, to) of a camera, as tu_put_frames wrote them. */
static uint64_t written_bytes(uint32_t cam, uint32_t from, uint32_t to)
{
	uint64_t sum = 0;
	for (uint32_t n = from; n < to; n++)
		sum += tu_frame_size(cam, n);
	return sum;
}

/* Frames whose time lies in [t0, t1), counted through the iterator. */
static uint64_t frames_in(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1)
{
	struct stg_iter *it;
	cr_assert_eq(stg_iter_open(stg, cam, t0, t1, &it), 0);
	struct stg_read_frame f;
	uint64_t n = 0;
	int rc;
	while ((rc = stg_iter_next(it, &f)) == 1)
		n += f.time_us >= t0;
	cr_assert_eq(rc, 0);
	stg_iter_close(it);
	return n;
}

#define CHUNK_FRAMES_MAX 100    /* max_chunk_ms 4000 at 25 fps */

Test(estimate, whole_footage_is_counted_exactly, .timeout = 60)
{
	struct tu_env e;
	tu_env_init(&e, 1, 8 << 20, 8);
	tu_env_open(&e);
	/* 2 x 3,000 frames of ~1.9 KB: more than one 8 MiB segment, so the
	 * first is sealed (sorted directory) and the last still open */
	tu_record(e.stg, 2, 0, 1500);
	tu_put_frames(e.stg, 1, 1600, 3000);   /* camera 1: a 4 s gap */
	tu_put_frames(e.stg, 2, 1500, 3000);
	tu_flush_sync(e.stg, 2);
	struct stg_volume_stats vs;
	cr_assert_eq(stg_volume_stats(e.stg, &vs, 1), 1);
	cr_assert_lt(vs.segments_free + 2, vs.segments_total, "footage spans segments");
	struct stg_estimate est;
	cr_assert_eq(stg_estimate(e.stg, 1, INT64_MIN / 2, INT64_MAX / 2, &est), 0);
	uint64_t want = written_bytes(1, 0, 1500) + written_bytes(1, 1600, 3000);
	cr_assert_eq(est.frames, 2900, "frames %llu", (unsigned long long)est.frames);
	cr_assert_geq(est.bytes, want);
	cr_assert_leq(est.bytes, want + 8 * est.chunks, "bytes %llu, written %llu",
	              (unsigned long long)est.bytes, (unsigned long long)want);
	cr_assert_eq(stg_estimate(e.stg, 2, INT64_MIN / 2, INT64_MAX / 2, &est), 0);
	cr_assert_eq(est.frames, 3000);
	cr_assert_geq(est.bytes, written_bytes(2, 0, 3000));
	tu_env_fini(&e);
}

Test(estimate, windows_count_overlapping_chunks, .timeout = 60)
{
	struct tu_env e;
	tu_env_init(&e, 1, 8 << 20, 8);
	tu_env_open(&e);
	tu_record(e.stg, 2, 0, 1500);
	tu_put_frames(e.stg, 1, 1600, 3000);
	tu_flush_sync(e.stg, 2);
	/* windows inside one range, across the gap, at the edges */
	const uint32_t win[][2] = { { 130, 140 }, { 1000, 2000 }, { 1490, 1700 }, { 0, 50 },
	                            { 2950, 3100 } };
	for (size_t i = 0; i < sizeof win / sizeof win[0]; i++) {
		int64_t t0 = tu_frame_time(1, win[i][0]), t1 = tu_frame_time(1, win[i][1]);
		struct stg_estimate est;
		cr_assert_eq(stg_estimate(e.stg, 1, t0, t1, &est), 0);
		uint64_t in = frames_in(e.stg, 1, t0, t1);
		cr_assert_geq(est.frames, in, "window %zu: %llu < %llu frames", i,
		              (unsigned long long)est.frames, (unsigned long long)in);
		cr_assert_leq(est.frames, in + 2 * CHUNK_FRAMES_MAX, "window %zu: %llu frames for %llu",
		              i, (unsigned long long)est.frames, (unsigned long long)in);
		cr_assert_gt(est.bytes, 0);
	}
	/* the gap itself, another camera's lack of footage, the far future */
	struct stg_estimate est;
	cr_assert_eq(stg_estimate(e.stg, 1, tu_frame_time(1, 1510), tu_frame_time(1, 1590), &est), 0);
	cr_assert_eq(est.frames + est.bytes + est.chunks, 0);
	cr_assert_eq(stg_estimate(e.stg, 9, INT64_MIN / 2, INT64_MAX / 2, &est), 0);
	cr_assert_eq(est.frames + est.bytes + est.chunks, 0);
	cr_assert_eq(stg_estimate(e.stg, 2, tu_frame_time(2, 5000), tu_frame_time(2, 6000), &est), 0);
	cr_assert_eq(est.frames, 0);
	tu_env_fini(&e);
}

Test(estimate, many_ranges_are_all_counted, .timeout = 60)
{
	struct tu_env e;
	tu_env_init(&e, 1, 8 << 20, 8);
	tu_env_open(&e);
	/* 100 ranges (more than one batch of the range scan) of 50 frames */
	for (uint32_t r = 0; r < 100; r++) {
		tu_put_frames(e.stg, 3, r * 100, r * 100 + 50);
		tu_flush(e.stg, 3);
	}
	cr_assert_eq(stg_sync(e.stg), 0);
	struct stg_range rg[1];
	cr_assert_eq(stg_ranges(e.stg, 3, INT64_MIN / 2, INT64_MAX / 2, rg, 1), 100);
	struct stg_estimate est;
	cr_assert_eq(stg_estimate(e.stg, 3, INT64_MIN / 2, INT64_MAX / 2, &est), 0);
	cr_assert_eq(est.frames, 5000);
	uint64_t want = 0;
	for (uint32_t r = 0; r < 100; r++)
		want += written_bytes(3, r * 100, r * 100 + 50);
	cr_assert_geq(est.bytes, want);
	cr_assert_leq(est.bytes, want + 8 * est.chunks);
	tu_env_fini(&e);
}
