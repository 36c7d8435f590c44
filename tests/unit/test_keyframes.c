/*
 * test_keyframes.c - stg_key_frames(): the key frames of a window and the
 * GOPs they start, from the segment directories alone, checked against the
 * frames the test wrote (a key frame every T_GOP frames, 25 fps): times,
 * GOP ends, range starts after a gap and after a flush, windows starting
 * inside a GOP, paging with `max`, and GOPs split over several chunks.
 */
#include <errno.h>
#include "testutil.h"

#define MAXK 64

static int keys(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1, struct stg_key_frame *k,
                int max)
{
	int n = stg_key_frames(stg, cam, t0, t1, k, max);
	cr_assert(n >= 0, "stg_key_frames: %s", stg_strerror(n));
	return n;
}

Test(keyframes, gops_of_a_window_and_gaps)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	tu_put_frames(e.stg, 7, 0, 200);       /* GOPs at 0, 50, 100, 150 */
	tu_put_frames(e.stg, 7, 300, 420);     /* 4 s gap; GOPs at 300, 350, 400 */
	tu_flush(e.stg, 7);
	tu_put_frames(e.stg, 7, 450, 500);     /* after a flush: a new range */
	tu_flush_sync(e.stg, 7);
	struct stg_key_frame k[MAXK];
	int n = keys(e.stg, 7, 0, INT64_MAX, k, MAXK);
	uint32_t want[] = { 0, 50, 100, 150, 300, 350, 400, 450 };
	cr_assert_eq(n, 8, "%d key frames", n);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(k[i].time_us, tu_frame_time(7, want[i]), "key %d", i);
		bool starts = want[i] == 0 || want[i] == 300 || want[i] == 450;
		cr_assert_eq(k[i].range_start, starts, "key %d range_start", i);
	}
	/* a GOP ends where the next begins, or at its last frame's end before a gap */
	cr_assert_eq(k[0].end_us, tu_frame_time(7, 50));
	cr_assert_eq(k[3].end_us, tu_frame_time(7, 199) + T_FRAME_US);
	cr_assert_eq(k[6].end_us, tu_frame_time(7, 419) + T_FRAME_US);
	cr_assert_eq(k[7].end_us, tu_frame_time(7, 499) + T_FRAME_US);
	/* a window starting inside a GOP lists from the next key frame; a GOP
	 * that starts inside the window is whole even past its end */
	n = keys(e.stg, 7, tu_frame_time(7, 60), tu_frame_time(7, 360), k, MAXK);
	cr_assert_eq(n, 4);
	cr_assert_eq(k[0].time_us, tu_frame_time(7, 100));
	cr_assert(!k[0].range_start);
	cr_assert_eq(k[2].time_us, tu_frame_time(7, 300));
	cr_assert(k[2].range_start);
	cr_assert_eq(k[3].time_us, tu_frame_time(7, 350));
	cr_assert_eq(k[3].end_us, tu_frame_time(7, 400));
	/* t1 is exclusive; a window inside the gap is empty */
	cr_assert_eq(keys(e.stg, 7, tu_frame_time(7, 0), tu_frame_time(7, 50), k, MAXK), 1);
	cr_assert_eq(keys(e.stg, 7, tu_frame_time(7, 210), tu_frame_time(7, 290), k, MAXK), 0);
	cr_assert_eq(keys(e.stg, 8, 0, INT64_MAX, k, MAXK), 0, "another camera");
	tu_env_fini(&e);
}

Test(keyframes, paging_with_max)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	tu_put_frames(e.stg, 3, 0, 1000);      /* 20 GOPs */
	tu_flush_sync(e.stg, 3);
	struct stg_key_frame k[MAXK];
	int64_t t = 0;
	int total = 0;
	for (;;) {
		int n = keys(e.stg, 3, t, INT64_MAX, k, 3);
		cr_assert(n <= 3);
		for (int i = 0; i < n; i++, total++) {
			cr_assert_eq(k[i].time_us, tu_frame_time(3, (uint32_t)total * T_GOP));
			cr_assert_eq(k[i].end_us, tu_frame_time(3, (uint32_t)(total + 1) * T_GOP - 1) +
			                          T_FRAME_US);
		}
		if (n < 3)
			break;
		t = k[n - 1].time_us + 1;
	}
	cr_assert_eq(total, 20);
	cr_assert_eq(stg_key_frames(e.stg, 3, 0, INT64_MAX, k, -1), -EINVAL);
	cr_assert_eq(stg_key_frames(e.stg, 3, 0, INT64_MAX, k, 0), 0);
	tu_env_fini(&e);
}

Test(keyframes, gops_split_over_chunks)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	e.cfg.max_chunk_bytes = 16 << 10;      /* a 2 s GOP takes several chunks */
	tu_env_open(&e);
	tu_put_frames(e.stg, 2, 0, 250);
	tu_flush_sync(e.stg, 2);
	struct stg_key_frame k[MAXK];
	int n = keys(e.stg, 2, 0, INT64_MAX, k, MAXK);
	cr_assert_eq(n, 5);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(k[i].time_us, tu_frame_time(2, (uint32_t)i * T_GOP));
		cr_assert_eq(k[i].end_us, i < 4 ? tu_frame_time(2, (uint32_t)(i + 1) * T_GOP)
		                                : tu_frame_time(2, 249) + T_FRAME_US);
	}
	/* a window starting on a key-less chunk inside a GOP */
	n = keys(e.stg, 2, tu_frame_time(2, 70), INT64_MAX, k, MAXK);
	cr_assert_eq(n, 3);
	cr_assert_eq(k[0].time_us, tu_frame_time(2, 100));
	tu_env_fini(&e);
}
