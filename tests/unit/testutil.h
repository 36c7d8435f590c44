/*
 * testutil.h - helpers shared by the storage unit tests: temporary
 * directories, small volumes, and deterministic synthetic frames whose bytes
 * can be recomputed from (camera, frame number) to check reads byte by byte.
 */
#ifndef NVR_TESTUTIL_H
#define NVR_TESTUTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "storage.h"

#define T_BASE_US 1767225600000000LL   /* 2026-01-01T00:00:00Z */
#define T_FRAME_US 40000LL             /* 25 fps */
#define T_GOP 50                       /* key frame every 2 s */

static inline char *tu_tmpdir(void)
{
	char tmpl[] = "/tmp/nvrtest.XXXXXX";
	char *d = mkdtemp(tmpl);
	cr_assert(d, "mkdtemp");
	return strdup(d);
}

static inline void tu_rmrf(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert(system(cmd) == 0);
}

static inline uint32_t tu_frame_size(uint32_t cam, uint32_t n)
{
	uint32_t base = (n % T_GOP == 0) ? 12000 : 1500;
	return base + (cam * 131 + n * 97) % 700;
}

static inline void tu_frame_fill(uint8_t *buf, uint32_t size, uint32_t cam, uint32_t n)
{
	uint32_t x = cam * 2654435761u ^ n * 40503u;
	for (uint32_t i = 0; i < size; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
}

static inline int64_t tu_frame_time(uint32_t cam, uint32_t n)
{
	return T_BASE_US + (int64_t)n * T_FRAME_US + cam * 10;
}

/* Puts frames [from, to) of a camera. */
static inline void tu_put_frames(struct stg *stg, uint32_t cam, uint32_t from, uint32_t to)
{
	struct stg_camera *c;
	cr_assert_eq(stg_camera_get(stg, cam, &c), 0);
	static uint8_t buf[1 << 16];
	for (uint32_t n = from; n < to; n++) {
		uint32_t size = tu_frame_size(cam, n);
		tu_frame_fill(buf, size, cam, n);
		struct stg_frame f = { tu_frame_time(cam, n), buf, size, n % T_GOP == 0,
		                       STG_CODEC_H264 };
		cr_assert_eq(stg_put_frame(c, &f), 0, "put cam %u frame %u", cam, n);
	}
}

static inline void tu_flush(struct stg *stg, uint32_t cam)
{
	struct stg_camera *c;
	cr_assert_eq(stg_camera_get(stg, cam, &c), 0);
	cr_assert_eq(stg_camera_flush(c), 0);
}

/* Records frames [from, to) of cameras 1..cams, a GOP of each camera in
 * turn, as live cameras interleave. */
static inline void tu_record(struct stg *stg, uint32_t cams, uint32_t from, uint32_t to)
{
	for (uint32_t n = from; n < to; n += T_GOP)
		for (uint32_t cam = 1; cam <= cams; cam++)
			tu_put_frames(stg, cam, n, n + T_GOP < to ? n + T_GOP : to);
}

/* Closes the open chunks of cameras 1..cams and waits for disk and index. */
static inline void tu_flush_sync(struct stg *stg, uint32_t cams)
{
	for (uint32_t cam = 1; cam <= cams; cam++)
		tu_flush(stg, cam);
	cr_assert_eq(stg_sync(stg), 0);
}

/* Checks that frame read back is frame n of cam, byte for byte. */
static inline void tu_check_frame(const struct stg_read_frame *f, uint32_t cam, uint32_t n)
{
	static uint8_t want[1 << 16];
	uint32_t size = tu_frame_size(cam, n);
	cr_assert_eq(f->time_us, tu_frame_time(cam, n), "time of cam %u frame %u", cam, n);
	cr_assert_eq(f->size, size, "size of cam %u frame %u", cam, n);
	tu_frame_fill(want, size, cam, n);
	cr_assert(memcmp(f->data, want, size) == 0, "bytes of cam %u frame %u", cam, n);
	cr_assert_eq(f->key, n % T_GOP == 0);
}

/* Reads frames of cam from time of frame `from` and checks they are exactly
 * frames from..to-1 (from must be a key frame). Returns frames read. */
static inline uint32_t tu_read_check(struct stg *stg, uint32_t cam, uint32_t from, uint32_t to)
{
	struct stg_iter *it;
	int err = stg_iter_open(stg, cam, tu_frame_time(cam, from),
	                        tu_frame_time(cam, to), &it);
	cr_assert_eq(err, 0, "iter_open cam %u: %s", cam, stg_strerror(err));
	struct stg_read_frame f;
	uint32_t n = from;
	int rc;
	while ((rc = stg_iter_next(it, &f)) == 1) {
		tu_check_frame(&f, cam, n);
		n++;
	}
	cr_assert_eq(rc, 0, "iterator error %s", stg_strerror(rc));
	stg_iter_close(it);
	return n - from;
}

/* Frame number of a time written by tu_put_frames for cam. */
static inline uint32_t tu_frame_of(uint32_t cam, int64_t t)
{
	return (uint32_t)((t - T_BASE_US - cam * 10) / T_FRAME_US);
}

/* Reads everything a camera has and checks each frame is exactly the frame
 * its timestamp names and that frames follow each other without holes
 * except at reported discontinuities. Returns the number of frames. */
static inline uint64_t tu_read_all(struct stg *stg, uint32_t cam, uint32_t *first,
                                   uint32_t *last)
{
	struct stg_iter *it;
	int err = stg_iter_open(stg, cam, INT64_MIN / 2, INT64_MAX / 2, &it);
	cr_assert_eq(err, 0, "iter_open cam %u: %s", cam, stg_strerror(err));
	struct stg_read_frame f;
	uint64_t count = 0;
	uint32_t prev = 0;
	while ((err = stg_iter_next(it, &f)) == 1) {
		uint32_t n = tu_frame_of(cam, f.time_us);
		tu_check_frame(&f, cam, n);
		if (count == 0) {
			cr_assert(f.key, "cam %u starts at a key frame", cam);
			if (first)
				*first = n;
		} else {
			cr_assert(n > prev, "cam %u frames in order (%u after %u)", cam, n, prev);
			cr_assert(n == prev + 1 || f.discontinuity,
			          "cam %u hole after frame %u (next %u) not marked", cam, prev, n);
		}
		prev = n;
		count++;
	}
	cr_assert_eq(err, 0, "iterator cam %u: %s", cam, stg_strerror(err));
	stg_iter_close(it);
	if (last)
		*last = prev;
	return count;
}

static void tu_fsck_print(void *user, const char *line)
{
	(void)user;
	fprintf(stderr, "fsck: %s\n", line);
}

/* Runs the checker on the env's index and volumes (engine closed). */
static inline struct stg_fsck_report tu_fsck(const struct stg_config *cfg, bool rebuild)
{
	struct stg_fsck_report r;
	int err = stg_fsck(cfg, rebuild, tu_fsck_print, NULL, &r);
	cr_assert_eq(err, 0, "fsck: %s", stg_strerror(err));
	return r;
}

struct tu_env {
	char *dir;
	char index[512];
	char vol[4][512];
	const char *vols[4];
	struct stg_config cfg;
	struct stg *stg;
};

static inline void tu_env_init(struct tu_env *e, int nvols, uint64_t seg_size, uint32_t segs)
{
	memset(e, 0, sizeof *e);
	e->dir = tu_tmpdir();
	snprintf(e->index, sizeof e->index, "%s/index", e->dir);
	for (int i = 0; i < nvols; i++) {
		snprintf(e->vol[i], sizeof e->vol[i], "%s/vol%d", e->dir, i);
		cr_assert_eq(stg_volume_format(e->vol[i], seg_size, segs, false, NULL), 0);
		e->vols[i] = e->vol[i];
	}
	e->cfg.index_dir = e->index;
	e->cfg.volumes = e->vols;
	e->cfg.volume_count = nvols;
	e->cfg.write_block_bytes = 1 << 20;
	e->cfg.flush_interval_ms = 200;
}

static inline void tu_env_open(struct tu_env *e)
{
	int err = stg_open(&e->cfg, &e->stg);
	cr_assert_eq(err, 0, "stg_open: %s", stg_strerror(err));
}

static inline void tu_env_close(struct tu_env *e)
{
	stg_close(e->stg);
	e->stg = NULL;
}

static inline void tu_env_fini(struct tu_env *e)
{
	if (e->stg)
		tu_env_close(e);
	tu_rmrf(e->dir);
	free(e->dir);
}

#endif
