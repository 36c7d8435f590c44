/*
 * test_volume.c - volumes: formatting rules, a disk in the wrong place is
 * refused while the others record, and a failing volume is taken out of
 * service with its cameras moved and nothing on the healthy volume lost.
 */
#include <errno.h>
#include <sys/stat.h>
#include "testutil.h"

Test(volume, format_refuses_non_empty_or_existing)
{
	char *dir = tu_tmpdir();
	char vol[600], file[700];
	snprintf(vol, sizeof vol, "%s/v", dir);
	struct stg_volume_info a, b;
	cr_assert_eq(stg_volume_format(vol, 1 << 20, 4, false, &a), 0);
	cr_assert_eq(stg_volume_format(vol, 1 << 20, 4, false, &b), STG_EEXIST);
	cr_assert_eq(stg_volume_probe(vol, &b), 0);
	cr_assert(memcmp(a.uuid, b.uuid, 16) == 0);
	cr_assert_eq(b.segment_count, 4);
	cr_assert_eq(stg_volume_format(vol, 1 << 20, 4, true, &b), 0);
	cr_assert(memcmp(a.uuid, b.uuid, 16) != 0, "forced format gives a new UUID");
	snprintf(vol, sizeof vol, "%s/plain", dir);
	mkdir(vol, 0755);
	snprintf(file, sizeof file, "%s/x", vol);
	FILE *f = fopen(file, "w");
	fputs("x", f);
	fclose(f);
	cr_assert_eq(stg_volume_format(vol, 1 << 20, 4, false, NULL), STG_EEXIST);
	cr_assert_eq(stg_volume_probe(vol, &b), STG_EFORMAT);
	tu_rmrf(dir);
	free(dir);
}

Test(volume, wrong_disk_is_refused_others_record)
{
	struct tu_env e;
	tu_env_init(&e, 2, 4 << 20, 4);
	tu_env_open(&e);
	tu_put_frames(e.stg, 1, 0, 200);
	tu_put_frames(e.stg, 2, 0, 200);
	tu_env_close(&e);
	/* another disk is now mounted where volume 0 was */
	cr_assert_eq(stg_volume_format(e.vol[0], 4 << 20, 4, true, NULL), 0);
	tu_env_open(&e);
	struct stg_volume_stats vs[2];
	cr_assert_eq(stg_volume_stats(e.stg, vs, 2), 2);
	cr_assert_eq(vs[0].state, STG_VOL_REFUSED);
	cr_assert(strstr(vs[0].last_error, "does not match"), "message: %s", vs[0].last_error);
	cr_assert_eq(vs[1].state, STG_VOL_ACTIVE);
	/* recording goes on, on the remaining volume */
	tu_put_frames(e.stg, 3, 0, 200);
	tu_flush(e.stg, 3);
	cr_assert_eq(stg_sync(e.stg), 0);
	cr_assert_eq(tu_read_all(e.stg, 3, NULL, NULL), 200);
	struct stg_camera_stats cs;
	cr_assert_eq(stg_camera_stats(e.stg, 3, &cs), 0);
	cr_assert_eq(cs.volume_index, 1);
	tu_env_fini(&e);
}

Test(volume, only_wrong_disks_means_no_engine)
{
	struct tu_env e;
	tu_env_init(&e, 1, 4 << 20, 4);
	tu_env_open(&e);
	tu_env_close(&e);
	cr_assert_eq(stg_volume_format(e.vol[0], 4 << 20, 4, true, NULL), 0);
	struct stg *s = NULL;
	cr_assert_eq(stg_open(&e.cfg, &s), STG_ENOVOLUME);
	tu_env_fini(&e);
}

Test(volume, failing_volume_moves_cameras_and_keeps_the_rest, .timeout = 120)
{
	struct tu_env e;
	tu_env_init(&e, 2, 4 << 20, 8);
	tu_env_open(&e);
	/* cameras 1..6 spread over both volumes (even -> 0, odd -> 1) */
	for (uint32_t cam = 1; cam <= 6; cam++)
		tu_put_frames(e.stg, cam, 0, 300);
	tu_flush_sync(e.stg, 6);
	cr_assert_eq(stg_inject_write_error(e.stg, 0, 0), 0);
	/* the cameras go on recording while the writer meets the error: the
	 * sync in between lets it meet the error before the last part arrives
	 * (live cameras are spread in time; this loop is not) */
	tu_record(e.stg, 6, 300, 600);
	stg_sync(e.stg);
	tu_record(e.stg, 6, 600, 900);
	tu_flush_sync(e.stg, 6);

	struct stg_volume_stats vs[2];
	stg_volume_stats(e.stg, vs, 2);
	cr_assert_eq(vs[0].state, STG_VOL_FAILED);
	cr_assert(vs[0].write_errors > 0);
	cr_assert(strstr(vs[0].last_error, "write failed"), "%s", vs[0].last_error);
	cr_assert_eq(vs[1].state, STG_VOL_ACTIVE);
	for (uint32_t cam = 1; cam <= 6; cam++) {
		struct stg_camera_stats cs;
		cr_assert_eq(stg_camera_stats(e.stg, cam, &cs), 0);
		cr_assert_eq(cs.volume_index, 1, "cam %u moved to the healthy volume", cam);
		if (cam % 2 == 1) {
			/* cameras of the healthy volume lost nothing at all */
			cr_assert_eq(cs.dropped_frames, 0);
			cr_assert_eq(tu_read_all(e.stg, cam, NULL, NULL), 900);
		} else {
			/* moved cameras lose at most what was in flight on the bad disk,
			 * and record on after it */
			uint32_t last = 0;
			tu_read_all(e.stg, cam, NULL, &last);
			cr_assert_eq(last, 899, "cam %u records on after the failure", cam);
			cr_assert_eq(cs.frames_written + cs.dropped_frames, 900,
			             "cam %u: every frame written or counted as dropped", cam);
			cr_assert(cs.dropped_frames < 600, "cam %u dropped %llu", cam,
			          (unsigned long long)cs.dropped_frames);
			cr_assert_eq(tu_read_check(e.stg, cam, 0, 300), 300,
			             "cam %u: footage from before the failure still reads", cam);
		}
	}
	tu_env_fini(&e);
}
