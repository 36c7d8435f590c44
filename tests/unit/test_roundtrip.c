/*
 * test_roundtrip.c - frames go through write -> disk -> index -> read and
 * come back byte for byte, with the recorded ranges and gaps right.
 */
#include "testutil.h"

Test(roundtrip, frames_come_back_byte_exact)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 5; cam++)
		tu_put_frames(e.stg, cam, 0, 500);
	for (uint32_t cam = 1; cam <= 5; cam++)
		tu_flush(e.stg, cam);
	cr_assert_eq(stg_sync(e.stg), 0);
	for (uint32_t cam = 1; cam <= 5; cam++) {
		cr_assert_eq(tu_read_check(e.stg, cam, 0, 500), 500);
		cr_assert_eq(tu_read_check(e.stg, cam, 100, 250), 150);
		struct stg_camera_stats st;
		cr_assert_eq(stg_camera_stats(e.stg, cam, &st), 0);
		cr_assert_eq(st.frames_written, 500);
		cr_assert_eq(st.dropped_frames, 0);
	}
	tu_env_fini(&e);
}
