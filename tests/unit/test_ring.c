/*
 * test_ring.c - the ring: when every segment is used the oldest is
 * reclaimed, ranges move forward with it, no index entry points at
 * overwritten data, and a reader that raced the reclaim gets STG_EGONE,
 * never wrong bytes.
 */
#include "testutil.h"

#define CAMS 5

Test(ring, wraps_without_dangling_entries)
{
	struct tu_env e;
	tu_env_init(&e, 1, 2 << 20, 6);        /* 12 MiB ring */
	tu_env_open(&e);
	tu_record(e.stg, CAMS, 0, 6000);               /* ~60 MB: the ring wraps ~5 times */
	tu_flush_sync(e.stg, CAMS);

	struct stg_volume_stats vs;
	cr_assert_eq(stg_volume_stats(e.stg, &vs, 1), 1);
	cr_assert(vs.reclaims >= 10, "reclaims %llu", (unsigned long long)vs.reclaims);
	cr_assert(vs.oldest_us > tu_frame_time(1, 0), "oldest footage moved on");

	for (uint32_t cam = 1; cam <= CAMS; cam++) {
		struct stg_range r[8];
		int n = stg_ranges(e.stg, cam, 0, INT64_MAX, r, 8);
		cr_assert_eq(n, 1, "cam %u: one range after wrapping, got %d", cam, n);
		uint32_t first = 0, last = 0;
		uint64_t count = tu_read_all(e.stg, cam, &first, &last);
		cr_assert_eq(last, 5999, "cam %u newest frame kept", cam);
		cr_assert_eq(r[0].start_us, tu_frame_time(cam, first),
		             "cam %u range starts at its oldest frame still on disk", cam);
		cr_assert_eq(count, 6000 - first, "cam %u no holes", cam);
		cr_assert(first > 0, "cam %u oldest footage was reclaimed", cam);
		/* reading before the ring's start gives the oldest kept key frame */
		cr_assert_eq(tu_read_check(e.stg, cam, first, first + 50), 50);
	}
	tu_env_close(&e);
	struct stg_fsck_report rep = tu_fsck(&e.cfg, false);
	cr_assert_eq(rep.differences, 0, "index matches the disks after wraps");
	cr_assert_eq(rep.bad_records, 0);
	tu_env_fini(&e);
}

Test(ring, reader_racing_a_reclaim_gets_gone_not_bytes)
{
	struct tu_env e;
	tu_env_init(&e, 1, 2 << 20, 5);
	tu_env_open(&e);
	tu_record(e.stg, CAMS, 0, 500);
	tu_flush_sync(e.stg, CAMS);
	/* open an iterator on the oldest footage, then overwrite the ring */
	struct stg_iter *it;
	cr_assert_eq(stg_iter_open(e.stg, 1, tu_frame_time(1, 0), INT64_MAX / 2, &it), 0);
	struct stg_read_frame f;
	cr_assert_eq(stg_iter_next(it, &f), 1);
	tu_check_frame(&f, 1, 0);
	tu_record(e.stg, CAMS, 500, 6000);
	tu_flush_sync(e.stg, CAMS);
	int rc;
	uint32_t n = 1, gone = 0;
	while ((rc = stg_iter_next(it, &f)) == 1) {
		/* whatever it still returns must be the right bytes */
		tu_check_frame(&f, 1, tu_frame_of(1, f.time_us));
		n++;
	}
	if (rc == STG_EGONE)
		gone = 1;
	cr_assert(rc == 0 || rc == STG_EGONE, "clean end or gone, got %s", stg_strerror(rc));
	cr_assert(gone || n > 0);
	stg_iter_close(it);
	tu_env_fini(&e);
}
