/*
 * test_fsck.c - the index rebuilt from the disks alone equals the live
 * index; a damaged chunk is detected, reported and skipped by readers while
 * everything around it is still served.
 */
#include <fcntl.h>
#include "testutil.h"
#include "format.h"

Test(fsck, rebuilt_index_equals_live_index)
{
	struct tu_env e;
	tu_env_init(&e, 2, 2 << 20, 6);
	tu_env_open(&e);
	tu_record(e.stg, 6, 0, 3000);           /* wraps the small rings */
	tu_env_close(&e);
	struct stg_fsck_report r = tu_fsck(&e.cfg, false);
	cr_assert_eq(r.differences, 0);
	cr_assert_eq(r.bad_records, 0);
	cr_assert(r.chunks > 100);

	/* replace the index with the rebuilt one: everything still reads */
	uint64_t before[7];
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 6; cam++)
		before[cam] = tu_read_all(e.stg, cam, NULL, NULL);
	tu_env_close(&e);
	r = tu_fsck(&e.cfg, true);
	cr_assert_eq(r.differences, 0);
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 6; cam++)
		cr_assert_eq(tu_read_all(e.stg, cam, NULL, NULL), before[cam]);
	tu_env_fini(&e);
}

Test(fsck, lost_index_is_rebuilt_from_disks)
{
	struct tu_env e;
	tu_env_init(&e, 1, 4 << 20, 6);
	tu_env_open(&e);
	tu_record(e.stg, 3, 0, 1000);
	tu_env_close(&e);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", e.index);
	cr_assert_eq(system(cmd), 0);
	struct stg_fsck_report r = tu_fsck(&e.cfg, true);
	cr_assert(r.differences > 0, "a missing index differs from the disks");
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 3; cam++)
		cr_assert_eq(tu_read_all(e.stg, cam, NULL, NULL), 1000);
	tu_env_fini(&e);
}

/* Finds the offset of camera `cam`'s chunk holding frame `n` in slot 0. */
static off_t find_chunk(const char *vol, uint32_t cam, int64_t t)
{
	char path[600];
	snprintf(path, sizeof path, "%s/seg-000000", vol);
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	static uint8_t buf[4 << 20];
	ssize_t got = pread(fd, buf, sizeof buf, 0);
	close(fd);
	cr_assert(got > 0);
	for (off_t off = STG_BLOCK; off + (off_t)sizeof(struct rec_header) < got; off += 8) {
		struct rec_header h;
		memcpy(&h, buf + off, sizeof h);
		if (h.magic == STG_REC_MAGIC && h.type == REC_CHUNK && h.camera_id == cam &&
		    h.first_us <= t && t < h.end_us)
			return off;
	}
	cr_assert_fail("chunk not found");
	return -1;
}

Test(fsck, damaged_chunk_is_detected_and_skipped)
{
	struct tu_env e;
	tu_env_init(&e, 1, 4 << 20, 6);
	tu_env_open(&e);
	tu_record(e.stg, 3, 0, 500);
	tu_env_close(&e);
	/* flip one byte in the middle of camera 2's chunk for frames 200-249 */
	off_t off = find_chunk(e.vol[0], 2, tu_frame_time(2, 220));
	char path[600];
	snprintf(path, sizeof path, "%s/seg-000000", e.vol[0]);
	int fd = open(path, O_RDWR);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, off + 5000), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, off + 5000), 1);
	close(fd);

	struct stg_fsck_report r = tu_fsck(&e.cfg, false);
	cr_assert_eq(r.bad_records, 1, "fsck reports the damaged chunk");
	/* only the damaged chunk is missing from what the disks show: its
	 * segment's chunk count and camera 2's range, now split in two */
	cr_assert_eq(r.differences, 3, "differences %llu", (unsigned long long)r.differences);
	tu_env_open(&e);
	/* camera 2 plays everything but the damaged GOP, marking the hole */
	uint32_t first = 0, last = 0;
	cr_assert_eq(tu_read_all(e.stg, 2, &first, &last), 450);
	cr_assert_eq(first, 0);
	cr_assert_eq(last, 499);
	/* starting inside the damaged GOP goes to the next good key frame */
	struct stg_iter *it;
	cr_assert_eq(stg_iter_open(e.stg, 2, tu_frame_time(2, 220), tu_frame_time(2, 400), &it), 0);
	struct stg_read_frame f;
	cr_assert_eq(stg_iter_next(it, &f), 1);
	tu_check_frame(&f, 2, 250);
	stg_iter_close(it);
	/* the other cameras lose nothing */
	cr_assert_eq(tu_read_all(e.stg, 1, NULL, NULL), 500);
	cr_assert_eq(tu_read_all(e.stg, 3, NULL, NULL), 500);
	tu_env_fini(&e);
}
