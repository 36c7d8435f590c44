/*
 * test_roundtrip.c - frames go through write -> disk -> index -> read and
 * come back byte for byte, with the recorded ranges and gaps right.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include "testutil.h"

Test(roundtrip, frames_come_back_byte_exact)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 5; cam++)
		tu_put_frames(e.stg, cam, 0, 500);
	tu_flush_sync(e.stg, 5);
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

Test(roundtrip, ranges_show_gaps_and_reads_mark_them)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	tu_put_frames(e.stg, 7, 0, 200);
	tu_put_frames(e.stg, 7, 300, 500);     /* 4 s of nothing between */
	tu_flush(e.stg, 7);
	cr_assert_eq(stg_sync(e.stg), 0);
	struct stg_range r[4];
	int n = stg_ranges(e.stg, 7, 0, INT64_MAX, r, 4);
	cr_assert_eq(n, 2, "two ranges, got %d", n);
	cr_assert_eq(r[0].start_us, tu_frame_time(7, 0));
	cr_assert_eq(r[0].end_us, tu_frame_time(7, 199) + T_FRAME_US);
	cr_assert_eq(r[1].start_us, tu_frame_time(7, 300));
	/* a window inside the gap has no ranges; one across it is clipped */
	cr_assert_eq(stg_ranges(e.stg, 7, tu_frame_time(7, 210), tu_frame_time(7, 290), r, 4), 0);
	n = stg_ranges(e.stg, 7, tu_frame_time(7, 100), tu_frame_time(7, 350), r, 4);
	cr_assert_eq(n, 2);
	cr_assert_eq(r[0].start_us, tu_frame_time(7, 100));
	cr_assert_eq(r[1].end_us, tu_frame_time(7, 350));
	/* iterating across the gap marks the first frame after it */
	uint32_t first = 0, last = 0;
	cr_assert_eq(tu_read_all(e.stg, 7, &first, &last), 400);
	cr_assert_eq(first, 0);
	cr_assert_eq(last, 499);
	/* starting inside the gap begins at the next key frame */
	cr_assert_eq(tu_read_check(e.stg, 7, 300, 400), 100);
	struct stg_iter *it;
	cr_assert_eq(stg_iter_open(e.stg, 7, tu_frame_time(7, 250), tu_frame_time(7, 400), &it), 0);
	struct stg_read_frame f;
	cr_assert_eq(stg_iter_next(it, &f), 1);
	cr_assert_eq(f.time_us, tu_frame_time(7, 300));
	stg_iter_close(it);
	/* seeking to a P frame starts at the key frame before it */
	cr_assert_eq(stg_iter_open(e.stg, 7, tu_frame_time(7, 130), tu_frame_time(7, 140), &it), 0);
	cr_assert_eq(stg_iter_next(it, &f), 1);
	cr_assert_eq(f.time_us, tu_frame_time(7, 100));
	cr_assert(f.key);
	stg_iter_close(it);
	tu_env_fini(&e);
}

Test(roundtrip, survives_clean_restart)
{
	struct tu_env e;
	tu_env_init(&e, 2, 8 << 20, 6);
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 4; cam++)
		tu_put_frames(e.stg, cam, 0, 300);
	tu_env_close(&e);
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 4; cam++)
		tu_put_frames(e.stg, cam, 300, 600);
	tu_env_close(&e);
	struct stg_fsck_report r = tu_fsck(&e.cfg, false);
	cr_assert_eq(r.differences, 0);
	cr_assert_eq(r.bad_records, 0);
	tu_env_open(&e);
	for (uint32_t cam = 1; cam <= 4; cam++) {
		uint32_t first = 0, last = 0;
		cr_assert_eq(tu_read_all(e.stg, cam, &first, &last), 600);
		struct stg_range rg[4];
		cr_assert_eq(stg_ranges(e.stg, cam, 0, INT64_MAX, rg, 4), 1,
		             "restart leaves one continuous range");
	}
	tu_env_fini(&e);
}

Test(roundtrip, refuses_frames_out_of_order)
{
	struct tu_env e;
	tu_env_init(&e, 1, 8 << 20, 4);
	tu_env_open(&e);
	tu_put_frames(e.stg, 1, 10, 20);
	struct stg_camera *c;
	cr_assert_eq(stg_camera_get(e.stg, 1, &c), 0);
	uint8_t b[10] = {0};
	struct stg_frame f = { tu_frame_time(1, 5), b, sizeof b, true, STG_CODEC_H264 };
	cr_assert_eq(stg_put_frame(c, &f), -EINVAL);
	f.size = 0;
	f.time_us = tu_frame_time(1, 30);
	cr_assert_eq(stg_put_frame(c, &f), -EINVAL);
	tu_env_fini(&e);
}

Test(roundtrip, index_map_grows_instead_of_failing, .timeout = 120)
{
	struct tu_env e;
	tu_env_init(&e, 1, 32 << 20, 8);       /* room for all of it: no wrap */
	e.cfg.map_size = 64 << 10;             /* far too small on purpose */
	tu_env_open(&e);
	struct stg_index_stats before, after;
	cr_assert_eq(stg_index_stats(e.stg, &before), 0);
	/* 300 cameras x 4 ranges each (a 4 s gap between bursts) */
	for (uint32_t burst = 0; burst < 4; burst++)
		for (uint32_t cam = 1; cam <= 300; cam++)
			tu_put_frames(e.stg, cam, burst * 150, burst * 150 + 50);
	tu_flush_sync(e.stg, 300);
	cr_assert_eq(stg_index_stats(e.stg, &after), 0);
	cr_assert(after.map_size > before.map_size, "map grew: %llu -> %llu",
	          (unsigned long long)before.map_size, (unsigned long long)after.map_size);
	cr_assert_eq(after.ranges, 1200);
	for (uint32_t cam = 1; cam <= 300; cam += 37) {
		struct stg_range r[8];
		cr_assert_eq(stg_ranges(e.stg, cam, 0, INT64_MAX, r, 8), 4);
		cr_assert_eq(tu_read_all(e.stg, cam, NULL, NULL), 200);
	}
	tu_env_fini(&e);
}

/* Stopping many cameras at once flushes more chunk bytes than the volume
 * queue holds: flushed chunks are queued anyway, none is dropped. (Live
 * chunks over the limit are dropped: back-pressure, tested elsewhere.) */
Test(roundtrip, flushing_many_cameras_at_once_drops_nothing)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	e.cfg.queue_bytes_per_volume = 256 << 10;   /* 256 KiB: ~ 4 cameras' GOPs */
	tu_env_open(&e);
	const uint32_t cams = 40, frames = 40;      /* 1.6 s: one open chunk each */
	for (uint32_t cam = 1; cam <= cams; cam++)
		tu_put_frames(e.stg, cam, 0, frames);
	tu_flush_sync(e.stg, cams);
	for (uint32_t cam = 1; cam <= cams; cam++) {
		struct stg_camera_stats st;
		cr_assert_eq(stg_camera_stats(e.stg, cam, &st), 0);
		cr_assert_eq(st.dropped_frames, 0, "camera %u dropped %llu", cam,
		             (unsigned long long)st.dropped_frames);
		cr_assert_eq(st.frames_written, frames);
		cr_assert_eq(tu_read_check(e.stg, cam, 0, frames), frames);
	}
	tu_env_fini(&e);
}

/* A flush marks an interruption (a camera that disconnected): frames put
 * after it start a new range even when they follow within gap_us, and the
 * flag survives on disk (an index rebuilt from the disks agrees). */
Test(roundtrip, flush_starts_a_new_range)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	tu_put_frames(e.stg, 1, 0, 100);
	tu_put_frames(e.stg, 2, 0, 100);
	tu_flush(e.stg, 1);                 /* camera 1 "reconnects" here */
	tu_put_frames(e.stg, 1, 100, 200);
	tu_put_frames(e.stg, 2, 100, 200);  /* camera 2 streams on */
	tu_flush_sync(e.stg, 2);
	struct stg_range r[4];
	int64_t t0 = tu_frame_time(1, 0), t1 = tu_frame_time(1, 300);
	cr_assert_eq(stg_ranges(e.stg, 1, t0, t1, r, 4), 2);
	cr_assert_eq(r[1].start_us, tu_frame_time(1, 100));
	cr_assert_eq(stg_ranges(e.stg, 2, t0, t1, r, 4), 1);
	cr_assert_eq(tu_read_check(e.stg, 1, 0, 200), 200);
	tu_env_close(&e);
	struct stg_fsck_report rep = tu_fsck(&e.cfg, false);
	cr_assert_eq(rep.differences, 0);
	tu_env_fini(&e);
}

/* Chunks much smaller than a GOP (a recorder saving memory): a seek into
 * the end of a GOP still starts at its key frame, many chunks back. */
Test(roundtrip, seek_steps_back_over_many_keyless_chunks)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	e.cfg.max_chunk_bytes = 13 << 10;     /* ~8 chunks per GOP of tu frames */
	tu_env_open(&e);
	tu_put_frames(e.stg, 1, 0, 3 * T_GOP);
	tu_flush_sync(e.stg, 1);
	struct stg_iter *it;
	cr_assert_eq(stg_iter_open(e.stg, 1, tu_frame_time(1, T_GOP + 48),
	                           tu_frame_time(1, 3 * T_GOP), &it), 0);
	struct stg_read_frame f;
	uint32_t n = T_GOP;                    /* the key frame of the second GOP */
	int rc;
	while ((rc = stg_iter_next(it, &f)) == 1)
		tu_check_frame(&f, 1, n++);
	cr_assert_eq(rc, 0);
	cr_assert_eq(n, 3 * T_GOP);
	stg_iter_close(it);
	tu_env_fini(&e);
}

/* A camera at one frame a second, its frames arriving up to 150 ms early
 * or late, key frame every other frame: its footage is one range, not a
 * range per late frame (gap_us is 1 s); a real outage of 5 s is a gap;
 * the same holds after a restart rebuilt nothing (the chunks' ends are on
 * disk). A 25 fps camera still shows a 1.5 s outage. */
Test(roundtrip, a_slow_camera_is_not_a_string_of_gaps)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	struct stg_camera *cam;
	cr_assert_eq(stg_camera_get(e.stg, 9, &cam), 0);
	static const int jitter_ms[] = { 0, 150, -120, 90, -150, 140, 30, -60 };
	uint8_t buf[2000];
	int64_t t0 = 1700000000LL * 1000000;
	for (int i = 0; i < 160; i++) {
		int64_t t = t0 + (int64_t)i * 1000000 + jitter_ms[i % 8] * 1000;
		if (i >= 100)
			t += 5000000;                       /* 5 s outage before frame 100 */
		tu_frame_fill(buf, sizeof buf, 9, (uint32_t)i);
		struct stg_frame f = { .time_us = t, .data = buf, .size = sizeof buf,
		                       .key = i % 2 == 0, .codec = STG_CODEC_H264 };
		cr_assert_eq(stg_put_frame(cam, &f), 0, "frame %d", i);
	}
	cr_assert_eq(stg_camera_flush(cam), 0);
	tu_put_frames(e.stg, 7, 0, 100);
	tu_put_frames(e.stg, 7, 138, 200);             /* 25 fps, 1.52 s without frames */
	tu_flush(e.stg, 7);
	cr_assert_eq(stg_sync(e.stg), 0);
	for (int round = 0; round < 2; round++) {
		struct stg_range r[8];
		int n = stg_ranges(e.stg, 9, 0, INT64_MAX, r, 8);
		cr_assert_eq(n, 2, "round %d: the slow camera has %d ranges", round, n);
		cr_assert_eq(r[0].start_us, t0);
		cr_assert_geq(r[0].end_us, t0 + 99 * 1000000LL - 150000);
		cr_assert_eq(r[1].start_us, t0 + 105 * 1000000LL + jitter_ms[100 % 8] * 1000);
		n = stg_ranges(e.stg, 7, 0, INT64_MAX, r, 8);
		cr_assert_eq(n, 2, "round %d: the 25 fps camera has %d ranges", round, n);
		tu_env_close(&e);
		tu_env_open(&e);
	}
	tu_env_fini(&e);
}

/* Bytes of vol's segment files in the page cache; with drop, evicts them
 * first. */
static uint64_t resident_bytes(const char *vol, bool drop)
{
	uint64_t total = 0;
	for (int seg = 0;; seg++) {
		char path[600];
		snprintf(path, sizeof path, "%s/seg-%06d", vol, seg);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			break;
		off_t size = lseek(fd, 0, SEEK_END);
		if (drop)
			cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
		void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
		cr_assert(p != MAP_FAILED);
		size_t pages = ((size_t)size + 4095) / 4096;
		unsigned char *v = malloc(pages);
		cr_assert_eq(mincore(p, (size_t)size, v), 0);
		for (size_t i = 0; i < pages; i++)
			total += (v[i] & 1) ? 4096 : 0;
		free(v);
		munmap(p, (size_t)size);
		close(fd);
	}
	return total;
}

/* Footage is written with O_DIRECT (never in the page cache) and a
 * camera's chunks lie between other cameras'; the iterator asks the
 * kernel for the camera's next chunks as soon as it starts, so that the
 * disk reads them while the caller works on the first. */
Test(roundtrip, iterating_reads_the_next_chunks_ahead)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	tu_record(e.stg, 2, 0, 3000);
	tu_flush_sync(e.stg, 2);
	uint64_t cam1 = 0;
	for (uint32_t n = 0; n < 3000; n++)
		cam1 += tu_frame_size(1, n);
	uint64_t before = resident_bytes(e.vol[0], true);
	cr_assert_lt(before, cam1 / 10, "%llu bytes cached after eviction", (unsigned long long)before);
	struct stg_iter *it;
	struct stg_read_frame f;
	cr_assert_eq(stg_iter_open(e.stg, 1, 0, INT64_MAX, &it), 0);
	cr_assert_eq(stg_iter_next(it, &f), 1);
	tu_check_frame(&f, 1, 0);
	uint64_t got = 0;
	for (int t = 0; t < 200 && (got = resident_bytes(e.vol[0], false)) < cam1 * 9 / 10; t++)
		usleep(10000);
	cr_assert_geq(got, cam1 * 9 / 10, "%llu of camera 1's %llu bytes read ahead",
	              (unsigned long long)got, (unsigned long long)cam1);
	cr_assert_lt(got, cam1 * 3 / 2, "%llu bytes cached: the other camera's chunks too",
	             (unsigned long long)got);
	stg_iter_close(it);
	cr_assert_eq(tu_read_check(e.stg, 1, 0, 3000), 3000);
	cr_assert_eq(tu_read_check(e.stg, 2, 0, 3000), 3000);
	tu_env_fini(&e);
}
