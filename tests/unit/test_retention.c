/*
 * test_retention.c - retention classes, maximum retention, shares of
 * capacity, alarms, the reclaim order, legal holds across ring wraps,
 * purges and the forecast, on tiny volumes with the engine's clock
 * injected, so that days of footage and many ring wraps take seconds.
 *
 * Footage here is sparse: a camera sends a burst of BURST frames (a key
 * frame and P frames, 40 ms apart) every `step` of simulated time, and the
 * clock follows the newest burst. A frame's bytes are a function of its
 * camera and time, so every frame read back is checked byte for byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include "testutil.h"
#include "format.h"

#define HOUR 3600000000LL
#define DAY (24 * HOUR)
#define BURST 10

static _Atomic int64_t g_now;

static int64_t test_clock(void *user)
{
	(void)user;
	return g_now;
}

static uint32_t frame_no(int64_t t)
{
	return (uint32_t)((t - T_BASE_US) / 1000);
}

static uint32_t fsize(uint32_t cam, int64_t t)
{
	return 1800 + (cam * 131 + frame_no(t) * 97) % 400;
}

/* The bytes of frame (cam, t): xorshift64* from a well mixed seed, so
 * that no two frames share a run of bytes (searched for on disk). */
static void ffill(uint8_t *buf, uint32_t size, uint32_t cam, int64_t t)
{
	uint64_t x = ((uint64_t)cam << 40 ^ (uint64_t)frame_no(t)) * 0x9e3779b97f4a7c15ull;
	x ^= x >> 31;
	x = x * 0xbf58476d1ce4e5b9ull | 1;
	for (uint32_t i = 0; i < size; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		buf[i] = (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
	}
}

/* One burst of camera cam starting at t. */
static void burst(struct stg *stg, uint32_t cam, int64_t t)
{
	struct stg_camera *c;
	cr_assert_eq(stg_camera_get(stg, cam, &c), 0);
	static uint8_t buf[4096];
	for (int i = 0; i < BURST; i++) {
		int64_t ft = t + i * T_FRAME_US;
		uint32_t size = fsize(cam, ft);
		ffill(buf, size, cam, ft);
		struct stg_frame f = { ft, buf, size, i == 0, STG_CODEC_H264 };
		cr_assert_eq(stg_put_frame(c, &f), 0);
	}
}

/* Records bursts of cameras 1..cams every `step` from t0 to t1 (exclusive),
 * moving the clock along; cameras are offset by 1 s. */
static void record_span(struct stg *stg, uint32_t cams, int64_t t0, int64_t t1, int64_t step)
{
	for (int64_t t = t0; t < t1; t += step)
		for (uint32_t cam = 1; cam <= cams; cam++) {
			g_now = t + cam * 1000000 + BURST * T_FRAME_US;
			burst(stg, cam, t + cam * 1000000);
		}
}

static void sync_all(struct stg *stg, uint32_t cams)
{
	for (uint32_t cam = 1; cam <= cams; cam++)
		tu_flush(stg, cam);
	cr_assert_eq(stg_sync(stg), 0);
}

/* Reads cam over [t0, t1) checking every frame's bytes; returns frames. */
static uint64_t read_checked(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1)
{
	struct stg_iter *it;
	cr_assert_eq(stg_iter_open(stg, cam, t0, t1, &it), 0);
	struct stg_read_frame f;
	static uint8_t want[4096];
	uint64_t n = 0;
	int rc;
	while ((rc = stg_iter_next(it, &f)) == 1) {
		uint32_t size = fsize(cam, f.time_us);
		cr_assert_eq(f.size, size, "cam %u frame at %lld: size", cam, (long long)f.time_us);
		ffill(want, size, cam, f.time_us);
		cr_assert(memcmp(want, f.data, size) == 0, "cam %u frame at %lld: bytes", cam,
		          (long long)f.time_us);
		n++;
	}
	cr_assert_eq(rc, 0, "iterator: %s", stg_strerror(rc));
	stg_iter_close(it);
	return n;
}

static int64_t oldest(struct stg *stg, uint32_t cam)
{
	struct stg_range r[1];
	int n = stg_ranges(stg, cam, INT64_MIN / 2, INT64_MAX / 2, r, 1);
	cr_assert(n >= 0);
	return n ? r[0].start_us : 0;
}

static void env_open(struct tu_env *e, uint64_t seg, uint32_t segs)
{
	tu_env_init(e, 1, seg, segs);
	e->cfg.clock = test_clock;
	e->cfg.rate_window_s = 6 * 3600;
	g_now = T_BASE_US;
	tu_env_open(e);
}

static void set_class(struct stg *stg, const char *name, int64_t min, int64_t max)
{
	struct stg_class c = { .min_us = min, .max_us = max };
	snprintf(c.name, sizeof c.name, "%s", name);
	cr_assert_eq(stg_class_set(stg, &c), 0);
}

static struct stg_class_stats class_stats(struct stg *stg, const char *name)
{
	struct stg_class_stats cs[8];
	struct stg_retention_stats rs;
	int n = 0;
	cr_assert_eq(stg_retention_stats(stg, &rs, cs, 8, &n), 0);
	for (int i = 0; i < n && i < 8; i++)
		if (!strcmp(cs[i].cls.name, name))
			return cs[i];
	cr_assert_fail("class %s not found", name);
	return cs[0];
}

/* Does the byte string `pat` occur anywhere in the volume's segment files? */
static bool volume_contains(const char *vol, uint32_t segs, const uint8_t *pat, size_t len)
{
	static uint8_t buf[4 << 20];
	for (uint32_t s = 0; s < segs; s++) {
		char path[600];
		snprintf(path, sizeof path, "%s/seg-%06u", vol, s);
		int fd = open(path, O_RDONLY);
		cr_assert(fd >= 0);
		ssize_t got = pread(fd, buf, sizeof buf, 0);
		close(fd);
		for (ssize_t i = 0; i + (ssize_t)len <= got; i++)
			if (buf[i] == pat[0] && !memcmp(buf + i, pat, len))
				return true;
	}
	return false;
}

/* ---- maximum retention --------------------------------------------------- */

Test(retention, maximum_days_enforced_and_bytes_gone, .timeout = 120)
{
	struct tu_env e;
	tu_env_init(&e, 1, 2 << 20, 8);
	e.cfg.clock = test_clock;
	e.cfg.retention_interval_ms = 50;      /* the sweep runs by itself */
	g_now = T_BASE_US;
	tu_env_open(&e);
	set_class(e.stg, "street", 0, 3 * DAY);
	cr_assert_eq(stg_camera_set_class(e.stg, 1, "street"), 0);
	cr_assert_eq(stg_camera_set_class(e.stg, 2, "nosuch"), -ENOENT);
	record_span(e.stg, 2, T_BASE_US, T_BASE_US + 2 * DAY, HOUR);
	sync_all(e.stg, 2);
	/* a frame of camera 1's first burst, to look for on disk later */
	static uint8_t first[4096];
	int64_t t_first = T_BASE_US + 1000000;
	ffill(first, fsize(1, t_first), 1, t_first);
	cr_assert(volume_contains(e.vol[0], 8, first, 256));
	record_span(e.stg, 2, T_BASE_US + 2 * DAY, T_BASE_US + 5 * DAY, HOUR);
	sync_all(e.stg, 2);
	usleep(400000);                        /* several sweeps */
	int64_t now = g_now;
	int64_t o1 = oldest(e.stg, 1), o2 = oldest(e.stg, 2);
	cr_assert(o1 >= now - 3 * DAY, "street camera keeps at most 3 days (oldest %.2f days)",
	          (now - o1) / (double)DAY);
	cr_assert(o1 < now - 3 * DAY + 2 * HOUR, "and not much less");
	cr_assert_eq(o2, T_BASE_US + 2000000, "the default class keeps everything");
	/* the expired frames are unreadable: gone from the disk, not only the index */
	cr_assert(!volume_contains(e.vol[0], 8, first, 256), "expired bytes overwritten");
	cr_assert_eq(read_checked(e.stg, 1, INT64_MIN / 2, now - 3 * DAY), 0);
	/* what is younger is intact, frame for frame; camera 2 loses nothing */
	uint64_t kept = read_checked(e.stg, 1, INT64_MIN / 2, INT64_MAX / 2);
	cr_assert(kept >= 71 * BURST && kept <= 73 * BURST, "kept %llu", (unsigned long long)kept);
	cr_assert_eq(read_checked(e.stg, 2, INT64_MIN / 2, INT64_MAX / 2), 5 * 24 * BURST);
	struct stg_retention_stats rs;
	cr_assert_eq(stg_retention_stats(e.stg, &rs, NULL, 0, NULL), 0);
	cr_assert_eq(rs.expired_chunks, 5 * 24 - kept / BURST);
	tu_env_close(&e);
	struct stg_fsck_report rep = tu_fsck(&e.cfg, true);
	cr_assert_eq(rep.differences, 0, "index matches the disks after expiry");
	/* classes and camera classes survive a restart and a rebuilt index */
	tu_env_open(&e);
	struct stg_class cl[4];
	cr_assert_eq(stg_class_list(e.stg, cl, 4), 1);
	cr_assert_eq(cl[0].max_us, 3 * DAY);
	struct stg_camera_retention cr[4];
	cr_assert_eq(stg_retention_cameras(e.stg, cr, 4), 2);
	cr_assert_str_eq(cr[0].class_name, "street");
	cr_assert_str_eq(cr[1].class_name, "default");
	tu_env_fini(&e);
}

/* ---- pressure: alarm, reclaim order -------------------------------------- */

Test(retention, minimum_alarm_raised_and_cleared, .timeout = 120)
{
	struct tu_env e;
	env_open(&e, 1 << 20, 6);
	set_class(e.stg, "key", 2 * DAY, 0);
	for (uint32_t cam = 1; cam <= 2; cam++)
		cr_assert_eq(stg_camera_set_class(e.stg, cam, "key"), 0);
	/* ~5.5 MB a day into a ring that holds ~3.5 MB: the promise breaks */
	record_span(e.stg, 2, T_BASE_US, T_BASE_US + 2 * DAY, 10 * 60000000LL);
	sync_all(e.stg, 2);
	cr_assert_eq(stg_retention_enforce(e.stg), 0);
	struct stg_class_stats cs = class_stats(e.stg, "key");
	cr_assert(cs.alarm, "below its promise: alarm");
	cr_assert(cs.retained_us < 2 * DAY);
	struct stg_retention_stats rs;
	cr_assert_eq(stg_retention_stats(e.stg, &rs, NULL, 0, NULL), 0);
	cr_assert_eq(rs.alarms, 1);
	/* recording never stopped */
	for (uint32_t cam = 1; cam <= 2; cam++) {
		struct stg_camera_stats st;
		cr_assert_eq(stg_camera_stats(e.stg, cam, &st), 0);
		cr_assert_eq(st.dropped_frames, 0);
		cr_assert_eq(st.frames_written, 2 * 144 * BURST);
	}
	/* the alarm survives a restart (saved with the class) */
	tu_env_close(&e);
	tu_env_open(&e);
	cr_assert_eq(stg_retention_enforce(e.stg), 0);
	cr_assert(class_stats(e.stg, "key").alarm);
	/* a promise the ring can keep again (half a day): cleared */
	set_class(e.stg, "key", DAY / 2, 0);
	g_now += DAY / 2;
	cr_assert_eq(stg_retention_enforce(e.stg), 0);
	cr_assert(!class_stats(e.stg, "key").alarm, "alarm cleared");
	cr_assert_eq(stg_retention_stats(e.stg, &rs, NULL, 0, NULL), 0);
	cr_assert_eq(rs.alarms, 0);
	tu_env_fini(&e);
}

Test(retention, reclaim_takes_classes_above_their_promise_first, .timeout = 120)
{
	struct tu_env e;
	env_open(&e, 1 << 20, 12);
	set_class(e.stg, "street", 0, 0);
	set_class(e.stg, "key", 3 * DAY / 2, 0);
	cr_assert_eq(stg_camera_set_class(e.stg, 1, "street"), 0);
	cr_assert_eq(stg_camera_set_class(e.stg, 2, "street"), 0);
	cr_assert_eq(stg_camera_set_class(e.stg, 3, "key"), 0);
	/* 3 cameras x ~2.9 MB a day; the ring holds ~9.5 MB: ~1.1 days for
	 * all in a plain ring. The key camera keeps its day and a half, the
	 * street cameras pay for it. */
	int64_t step = 10 * 60000000LL;
	record_span(e.stg, 3, T_BASE_US, T_BASE_US + 4 * DAY, step);
	sync_all(e.stg, 3);
	int64_t now = g_now;
	double street = (now - oldest(e.stg, 1)) / (double)DAY;
	double key = (now - oldest(e.stg, 3)) / (double)DAY;
	cr_assert(key >= 1.48, "key camera keeps its promise (%.2f days)", key);
	cr_assert(street < key - 0.3, "street footage went first (street %.2f, key %.2f)",
	          street, key);
	cr_assert(!class_stats(e.stg, "key").alarm, "no alarm: the promise held");
	/* the key camera's promised day and a half, partly copied forward,
	 * reads back exactly and without holes (older copies may outlive it
	 * until their own segment goes) */
	int64_t from = now - 3 * DAY / 2;
	uint64_t want = 0;
	for (int64_t t = T_BASE_US; t < now; t += step)
		want += t + 3000000 >= from;
	cr_assert_eq(read_checked(e.stg, 3, from, INT64_MAX / 2), want * BURST);
	struct stg_retention_stats rs;
	cr_assert_eq(stg_retention_stats(e.stg, &rs, NULL, 0, NULL), 0);
	cr_assert(rs.relocated_chunks > 0);
	for (uint32_t cam = 1; cam <= 3; cam++) {
		struct stg_camera_stats st;
		cr_assert_eq(stg_camera_stats(e.stg, cam, &st), 0);
		cr_assert_eq(st.dropped_frames, 0);
		cr_assert_eq(st.frames_written, 4 * 144 * BURST, "copies are not counted twice");
	}
	tu_env_fini(&e);
}

/* ---- holds --------------------------------------------------------------- */

Test(retention, holds_survive_ring_wraps, .timeout = 120)
{
	struct tu_env e;
	env_open(&e, 1 << 20, 8);
	int64_t step = 10 * 60000000LL;
	record_span(e.stg, 2, T_BASE_US, T_BASE_US + 6 * HOUR, step);
	sync_all(e.stg, 2);
	/* hold camera 1, hours 1 to 3 */
	struct stg_hold h = { .camera_count = 1, .cameras = { 1 },
	                      .start_us = T_BASE_US + HOUR, .end_us = T_BASE_US + 3 * HOUR };
	snprintf(h.case_ref, sizeof h.case_ref, "CASE-1");
	snprintf(h.reason, sizeof h.reason, "robbery");
	int nmiss = -1;
	cr_assert_eq(stg_hold_create(e.stg, &h, NULL, 0, &nmiss), 0);
	cr_assert_eq(nmiss, 13, "before, between and after its 12 bursts: %d", nmiss);
	cr_assert(h.id > 0);
	uint64_t held_frames = read_checked(e.stg, 1, h.start_us, h.end_us);
	cr_assert_eq(held_frames, 12 * BURST);
	cr_assert(h.bytes > 12 * BURST * 1800);
	/* ~23 MB through an 8 MiB ring: ~3 wraps */
	record_span(e.stg, 2, T_BASE_US + 6 * HOUR, T_BASE_US + 4 * DAY, step);
	sync_all(e.stg, 2);
	struct stg_volume_stats vs;
	cr_assert_eq(stg_volume_stats(e.stg, &vs, 1), 1);
	cr_assert(vs.reclaims >= 16, "two wraps at least: reclaims %llu",
	          (unsigned long long)vs.reclaims);
	cr_assert_eq(read_checked(e.stg, 1, h.start_us, h.end_us), held_frames,
	             "held footage intact after wraps");
	cr_assert_eq(read_checked(e.stg, 2, h.start_us, h.end_us), 0, "unheld camera wrapped");
	struct stg_range r[4];
	cr_assert_eq(stg_ranges(e.stg, 1, h.start_us, h.end_us, r, 4), 12);
	/* a hold asked for footage already gone names exactly what is gone */
	int64_t o2 = oldest(e.stg, 2);
	struct stg_hold h2 = { .camera_count = 1, .cameras = { 2 },
	                       .start_us = T_BASE_US, .end_us = o2 + HOUR };
	struct stg_missing miss[4];
	cr_assert_eq(stg_hold_create(e.stg, &h2, miss, 4, &nmiss), 0);
	/* what went before o2, the 5 gaps between the 6 bursts of the last
	 * hour, and the rest of that hour after the last burst */
	cr_assert_eq(nmiss, 7, "missing stretches: %d", nmiss);
	cr_assert_eq(miss[0].camera_id, 2);
	cr_assert_eq(miss[0].start_us, T_BASE_US);
	cr_assert_eq(miss[0].end_us, o2, "gone up to the oldest footage kept");
	struct stg_hold list[4];
	cr_assert_eq(stg_hold_list(e.stg, list, 4), 2);
	cr_assert_str_eq(list[0].case_ref, "CASE-1");
	/* holds survive a restart, and the index still matches the disks
	 * (relocated copies included); released, the footage goes with the
	 * ring */
	tu_env_close(&e);
	struct stg_fsck_report rep = tu_fsck(&e.cfg, false);
	cr_assert_eq(rep.differences, 0, "index matches the disks after relocations");
	tu_env_open(&e);
	cr_assert_eq(stg_hold_list(e.stg, list, 4), 2);
	cr_assert_eq(stg_hold_release(e.stg, h.id), 0);
	cr_assert_eq(stg_hold_release(e.stg, h.id), -ENOENT);
	cr_assert_eq(stg_hold_release(e.stg, h2.id), 0);
	record_span(e.stg, 2, T_BASE_US + 4 * DAY, T_BASE_US + 6 * DAY, step);
	sync_all(e.stg, 2);
	cr_assert_eq(read_checked(e.stg, 1, h.start_us, h.end_us), 0, "released: reclaimed");
	tu_env_fini(&e);
}

Test(retention, purge_refused_under_hold_and_effective_otherwise, .timeout = 120)
{
	struct tu_env e;
	env_open(&e, 2 << 20, 8);
	int64_t step = 10 * 60000000LL;
	record_span(e.stg, 3, T_BASE_US, T_BASE_US + 12 * HOUR, step);
	sync_all(e.stg, 3);
	uint64_t before[4];
	struct stg_range rb[4][80];
	int nb[4];
	for (uint32_t cam = 1; cam <= 3; cam++) {
		before[cam] = read_checked(e.stg, cam, INT64_MIN / 2, INT64_MAX / 2);
		nb[cam] = stg_ranges(e.stg, cam, INT64_MIN / 2, INT64_MAX / 2, rb[cam], 80);
	}
	struct stg_hold h = { .camera_count = 1, .cameras = { 1 },
	                      .start_us = T_BASE_US + 2 * HOUR, .end_us = T_BASE_US + 3 * HOUR };
	cr_assert_eq(stg_hold_create(e.stg, &h, NULL, 0, NULL), 0);
	/* refused while held, and nothing is lost */
	struct stg_purge_report pr;
	cr_assert_eq(stg_purge(e.stg, 1, T_BASE_US + HOUR, T_BASE_US + 4 * HOUR, &pr), STG_EHELD);
	cr_assert_eq(pr.chunks, 0);
	for (uint32_t cam = 1; cam <= 3; cam++) {
		struct stg_range ra[80];
		cr_assert_eq(read_checked(e.stg, cam, INT64_MIN / 2, INT64_MAX / 2), before[cam]);
		cr_assert_eq(stg_ranges(e.stg, cam, INT64_MIN / 2, INT64_MAX / 2, ra, 80), nb[cam]);
		cr_assert(!memcmp(ra, rb[cam], (size_t)nb[cam] * sizeof *ra));
	}
	/* camera 2, hours 4 to 6: purged, and its bytes are gone from the disk */
	static uint8_t pat[12][256];
	int64_t t0 = T_BASE_US + 4 * HOUR, t1 = T_BASE_US + 6 * HOUR;
	for (int i = 0; i < 12; i++) {
		int64_t ft = t0 + i * step + 2000000 + 3 * T_FRAME_US;
		ffill(pat[i], 256, 2, ft);
		cr_assert(volume_contains(e.vol[0], 8, pat[i], 256), "frame %d on disk before", i);
	}
	cr_assert_eq(stg_purge(e.stg, 2, t0, t1, &pr), 0);
	cr_assert_eq(pr.chunks, 12);
	cr_assert_eq(pr.frames, 12 * BURST);
	cr_assert_eq(pr.start_us, t0 + 2000000);
	for (int i = 0; i < 12; i++)
		cr_assert(!volume_contains(e.vol[0], 8, pat[i], 256), "purged frame %d overwritten (%lld)", i, (long long)(t0 + i * step + 2000000));
	cr_assert_eq(read_checked(e.stg, 2, t0, t1), 0);
	cr_assert_eq(read_checked(e.stg, 2, INT64_MIN / 2, INT64_MAX / 2), before[2] - 12 * BURST);
	cr_assert_eq(read_checked(e.stg, 1, INT64_MIN / 2, INT64_MAX / 2), before[1]);
	cr_assert_eq(read_checked(e.stg, 3, INT64_MIN / 2, INT64_MAX / 2), before[3]);
	/* released, the hold no longer stops a purge */
	cr_assert_eq(stg_hold_release(e.stg, h.id), 0);
	cr_assert_eq(stg_purge(e.stg, 1, h.start_us, h.end_us, &pr), 0);
	cr_assert_eq(pr.chunks, 6);
	tu_env_close(&e);
	struct stg_fsck_report rep = tu_fsck(&e.cfg, false);
	cr_assert_eq(rep.differences, 0, "index matches the disks after purges");
	cr_assert_eq(rep.bad_records, 0);
	tu_env_fini(&e);
}

/* ---- forecast ---------------------------------------------------------------- */

Test(retention, forecast_within_ten_percent_of_what_happens, .timeout = 120)
{
	struct tu_env e;
	env_open(&e, 1 << 20, 24);
	int64_t step = 10 * 60000000LL;
	/* a first day: the ring is not full yet; forecast from the rates */
	record_span(e.stg, 3, T_BASE_US, T_BASE_US + DAY, step);
	sync_all(e.stg, 3);
	struct stg_class_stats fc = class_stats(e.stg, "default");
	cr_assert(fc.forecast_us > 0);
	cr_assert(fc.bytes_per_s > 0);
	/* the truth: what the ring keeps after several wraps */
	record_span(e.stg, 3, T_BASE_US + DAY, T_BASE_US + 12 * DAY, step);
	sync_all(e.stg, 3);
	struct stg_volume_stats vs;
	cr_assert_eq(stg_volume_stats(e.stg, &vs, 1), 1);
	cr_assert(vs.reclaims > 48, "the ring wrapped (%llu reclaims)", (unsigned long long)vs.reclaims);
	double truth = (double)(g_now - oldest(e.stg, 1));
	double err = (fc.forecast_us - truth) / truth;
	cr_assert(err < 0.1 && err > -0.1, "forecast %.2f days, truth %.2f days",
	          fc.forecast_us / (double)DAY, truth / DAY);
	/* per camera the same, and steady now */
	struct stg_camera_retention cr[4];
	cr_assert_eq(stg_retention_cameras(e.stg, cr, 4), 3);
	for (int i = 0; i < 3; i++) {
		double ce = (cr[i].forecast_us - truth) / truth;
		cr_assert(ce < 0.1 && ce > -0.1, "camera %u forecast %.2f days", cr[i].camera_id,
		          cr[i].forecast_us / (double)DAY);
		cr_assert(cr[i].retained_us > 0.9 * truth);
	}
	tu_env_fini(&e);
}

/* A hold freezes what exists: a window reaching into the future is cut at
 * now, one wholly in the future is refused; footage recorded afterwards is
 * not held and goes with the ring. */
Test(retention, hold_windows_end_at_now, .timeout = 60)
{
	struct tu_env e;
	env_open(&e, 1 << 20, 8);
	record_span(e.stg, 1, T_BASE_US, T_BASE_US + 2 * HOUR, 10 * 60000000LL);
	sync_all(e.stg, 1);
	int64_t now = g_now;
	struct stg_hold h = { .camera_count = 1, .cameras = { 1 },
	                      .start_us = T_BASE_US, .end_us = now + 30 * DAY };
	snprintf(h.case_ref, sizeof h.case_ref, "CASE-2");
	cr_assert_eq(stg_hold_create(e.stg, &h, NULL, 0, NULL), 0);
	cr_assert_eq(h.end_us, now, "the window ends at now: %lld", (long long)h.end_us);
	struct stg_hold list[2];
	cr_assert_eq(stg_hold_list(e.stg, list, 2), 1);
	cr_assert_eq(list[0].end_us, now);
	struct stg_hold future = { .camera_count = 1, .cameras = { 1 },
	                           .start_us = now + HOUR, .end_us = now + 2 * HOUR };
	cr_assert_eq(stg_hold_create(e.stg, &future, NULL, 0, NULL), -EINVAL);
	cr_assert_eq(stg_hold_list(e.stg, list, 2), 1, "nothing else held");
	tu_env_close(&e);
}

/* ---- shares of capacity -------------------------------------------------- */

/* Street and key: camera 1 (class street) sends a burst every 5 minutes,
 * cameras 2 and 3 (class key) one every 8 minutes each: street's camera
 * records 1.6 times what a key camera does, street is 44% of the ingest.
 * 24 segments of 1 MiB hold ~1.7 days of all three; a share of 30% holds
 * street to ~1.2 days. */
#define STREET_STEP (5 * 60000000LL)
#define KEY_STEP (8 * 60000000LL)
#define SHARE_SEGS 24

static void set_share_class(struct stg *stg, const char *name, int64_t min, uint32_t pct)
{
	struct stg_class c = { .min_us = min, .share_pct = pct };
	snprintf(c.name, sizeof c.name, "%s", name);
	cr_assert_eq(stg_class_set(stg, &c), 0);
}

/* Bursts of street camera 1 and key cameras 2, 3 over [t0, t1), each at
 * its own step (offset by its id in seconds); the retention sweep runs
 * every hour of footage, as it would every retention_interval_ms. */
static void record_street_key(struct stg *stg, int64_t t0, int64_t t1)
{
	for (int64_t t = t0; t < t1; t += 60000000LL) {
		for (uint32_t cam = 1; cam <= 3; cam++) {
			if ((t - T_BASE_US) % (cam == 1 ? STREET_STEP : KEY_STEP))
				continue;
			g_now = t + cam * 1000000 + BURST * T_FRAME_US;
			burst(stg, cam, t + cam * 1000000);
		}
		if ((t - T_BASE_US) % HOUR == 0)
			cr_assert_eq(stg_retention_enforce(stg), 0);
	}
}

static int64_t cam_step(uint32_t cam)
{
	return cam == 1 ? STREET_STEP : KEY_STEP;
}

/* Bytes of cam's chunks on disk over [t0, t1), through its ranges and the
 * segment directories (stg_estimate), not through the engine's counts:
 * frame bytes plus each chunk's header and frame table. */
static uint64_t disk_bytes(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1)
{
	struct stg_estimate est;
	cr_assert_eq(stg_estimate(stg, cam, t0, t1, &est), 0);
	return est.bytes + est.chunks * sizeof(struct rec_header) +
	       est.frames * sizeof(struct frame_entry);
}

static uint64_t all_bytes(struct stg *stg, uint32_t cam)
{
	return disk_bytes(stg, cam, INT64_MIN / 2, INT64_MAX / 2);
}

/* Bursts of a camera with step `step` starting in [t0, t1). */
static uint64_t bursts_in(uint32_t cam, int64_t step, int64_t t0, int64_t t1)
{
	uint64_t n = 0;
	for (int64_t t = T_BASE_US; t + cam * 1000000 < t1; t += step)
		n += t + cam * 1000000 >= t0;
	return n;
}

/* Sweeps until the footage census after a start is done (the class's
 * bytes are published). */
static void sweep_counted(struct stg *stg, const char *cls)
{
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(stg_retention_enforce(stg), 0);
		if (class_stats(stg, cls).bytes)
			return;
		usleep(10000);
	}
	cr_assert_fail("class %s: no bytes counted", cls);
}

struct street_key {
	double street_days, key_days;          /* retained at the end */
	double street_fc, key_fc;              /* forecast at day 7 */
	double street_fc_end, key_fc_end;      /* forecast at the end */
	uint64_t share_chunks;
	bool street_alarm, key_alarm;
	uint32_t alarms;
};

/* Every frame camera cam recorded since `from` reads back, byte for byte. */
static void all_frames_since(struct stg *stg, uint32_t cam, int64_t from, int64_t now)
{
	cr_assert_eq(read_checked(stg, cam, from, INT64_MAX / 2),
	             bursts_in(cam, cam_step(cam), from, now) * BURST, "camera %u since %.2f days",
	             cam, (now - from) / (double)DAY);
}

/* Twelve days of street and key (promise street_min, share `share`). */
static struct street_key run_street_key(uint32_t share, int64_t street_min)
{
	struct tu_env e;
	env_open(&e, 1 << 20, SHARE_SEGS);
	set_share_class(e.stg, "street", street_min, share);
	set_share_class(e.stg, "key", 0, 0);
	cr_assert_eq(stg_camera_set_class(e.stg, 1, "street"), 0);
	for (uint32_t cam = 2; cam <= 3; cam++)
		cr_assert_eq(stg_camera_set_class(e.stg, cam, "key"), 0);
	struct street_key out = { 0 };
	record_street_key(e.stg, T_BASE_US, T_BASE_US + 7 * DAY);
	cr_assert_eq(stg_sync(e.stg), 0);      /* rates from everything recorded */
	out.street_fc = class_stats(e.stg, "street").forecast_us / (double)DAY;
	out.key_fc = class_stats(e.stg, "key").forecast_us / (double)DAY;
	record_street_key(e.stg, T_BASE_US + 7 * DAY, T_BASE_US + 12 * DAY);
	sync_all(e.stg, 3);
	cr_assert_eq(stg_retention_enforce(e.stg), 0);
	int64_t now = g_now;
	struct stg_volume_stats vs;
	cr_assert_eq(stg_volume_stats(e.stg, &vs, 1), 1);
	cr_assert(vs.reclaims > 4 * SHARE_SEGS, "the ring wrapped many times (%llu reclaims)",
	          (unsigned long long)vs.reclaims);
	struct stg_retention_stats rs;
	cr_assert_eq(stg_retention_stats(e.stg, &rs, NULL, 0, NULL), 0);
	out.share_chunks = rs.share_chunks;
	out.alarms = rs.alarms;
	struct stg_class_stats st = class_stats(e.stg, "street"), key = class_stats(e.stg, "key");
	out.street_fc_end = st.forecast_us / (double)DAY;
	out.key_fc_end = key.forecast_us / (double)DAY;
	out.street_alarm = st.alarm;
	out.key_alarm = key.alarm;
	out.street_days = (now - oldest(e.stg, 1)) / (double)DAY;
	int64_t key_oldest = oldest(e.stg, 2) < oldest(e.stg, 3) ? oldest(e.stg, 2) : oldest(e.stg, 3);
	out.key_days = (now - key_oldest) / (double)DAY;
	fprintf(stderr, "share %u%%: street %.2f days (forecast %.2f), key %.2f days (forecast %.2f), "
	        "removed for the share %llu chunks, relocated %llu\n", share, out.street_days,
	        out.street_fc, out.key_days, out.key_fc, (unsigned long long)rs.share_chunks,
	        (unsigned long long)rs.relocated_chunks);
	/* the engine's counts are the bytes on disk, exactly (published
	 * while some class has a share) */
	uint64_t street_bytes = all_bytes(e.stg, 1);
	uint64_t key_bytes = all_bytes(e.stg, 2) + all_bytes(e.stg, 3);
	cr_assert_eq(st.bytes, share ? street_bytes : 0, "street counted %llu, on disk %llu",
	             (unsigned long long)st.bytes, (unsigned long long)street_bytes);
	cr_assert_eq(key.bytes, share ? key_bytes : 0, "key counted %llu, on disk %llu",
	             (unsigned long long)key.bytes, (unsigned long long)key_bytes);
	if (share) {
		/* measured right after a sweep: within the share, whole chunks */
		uint64_t limit = (uint64_t)((double)rs.capacity_bytes * share / 100);
		cr_assert_eq(st.share_bytes, limit);
		cr_assert(street_bytes <= limit, "street %llu bytes over its share %llu",
		          (unsigned long long)street_bytes, (unsigned long long)limit);
	} else {
		cr_assert_eq(st.share_bytes, 0);
	}
	/* each camera's retained window is whole: every frame since its
	 * oldest reads back, byte for byte; nothing was dropped on the way */
	for (uint32_t cam = 1; cam <= 3; cam++) {
		all_frames_since(e.stg, cam, oldest(e.stg, cam), now);
		struct stg_camera_stats cs;
		cr_assert_eq(stg_camera_stats(e.stg, cam, &cs), 0);
		cr_assert_eq(cs.dropped_frames, 0);
		cr_assert_eq(cs.frames_written, bursts_in(cam, cam_step(cam), 0, now) * BURST);
	}
	tu_env_close(&e);
	struct stg_fsck_report rep = tu_fsck(&e.cfg, false);
	cr_assert_eq(rep.differences, 0, "index matches the disks after removals");
	cr_assert_eq(rep.bad_records, 0);
	tu_env_fini(&e);
	return out;
}

/* The share holds street to 30% of the capacity. The ring reuses whole
 * segments, so the space street's removed footage leaves is free only
 * when the ring comes round: key keeps what it kept without the share
 * (no more, no less), and loses no frame. */
Test(retention, share_caps_a_class_and_costs_others_nothing, .timeout = 240)
{
	struct street_key plain = run_street_key(0, 0), shared = run_street_key(30, 0);
	cr_assert_eq(plain.share_chunks, 0);
	cr_assert(shared.share_chunks > 0, "street was held to its share");
	cr_assert(shared.street_days < 0.8 * plain.street_days,
	          "street keeps less under its share (%.2f against %.2f days)",
	          shared.street_days, plain.street_days);
	double d = shared.key_days / plain.key_days;
	cr_assert(d > 0.97 && d < 1.03, "key keeps the same (%.2f against %.2f days)",
	          shared.key_days, plain.key_days);
	cr_assert(!shared.street_alarm && !shared.key_alarm && shared.alarms == 0);
}

/* The forecast per class, made at day 7 and at the end, against the days
 * kept at the end, with the share in force. */
Test(retention, forecast_with_a_share_within_ten_percent, .timeout = 120)
{
	struct street_key r = run_street_key(30, 0);
	double fc[4] = { r.street_fc, r.street_fc_end, r.key_fc, r.key_fc_end };
	double truth[4] = { r.street_days, r.street_days, r.key_days, r.key_days };
	for (int i = 0; i < 4; i++) {
		double err = (fc[i] - truth[i]) / truth[i];
		cr_assert(err < 0.1 && err > -0.1, "%s forecast %.2f days, kept %.2f",
		          i < 2 ? "street" : "key", fc[i], truth[i]);
	}
	/* the share binds: street's forecast is its share of the capacity at
	 * its rate, well under what the ring keeps key */
	cr_assert(r.street_fc_end < 0.8 * r.key_fc_end);
}

/* A share below what the class's promise needs wins (it is the operator's
 * explicit cap), and the class is in alarm for its promise; other classes
 * lose nothing. */
Test(retention, share_below_promise_raises_the_alarm, .timeout = 120)
{
	struct street_key r = run_street_key(30, 2 * DAY);
	cr_assert(r.street_days < 1.5, "the share wins: street kept %.2f days", r.street_days);
	cr_assert(r.street_alarm, "street is below its promise: alarm");
	cr_assert(!r.key_alarm);
	cr_assert_eq(r.alarms, 1);
}

/* A hold on a street camera keeps its stretch however far street is over
 * its share, and what it keeps counts toward the holds (less capacity),
 * not toward the share. Street alone fills the ring, so its share (not
 * the ring) decides how much it keeps. After a restart, the census of the
 * disks gives the same counts. */
Test(retention, held_footage_outside_the_share, .timeout = 120)
{
	struct tu_env e;
	env_open(&e, 1 << 20, 16);
	set_share_class(e.stg, "street", 0, 30);
	for (uint32_t cam = 1; cam <= 2; cam++)
		cr_assert_eq(stg_camera_set_class(e.stg, cam, "street"), 0);
	record_span(e.stg, 2, T_BASE_US, T_BASE_US + 6 * HOUR, STREET_STEP);
	sync_all(e.stg, 2);
	struct stg_hold h = { .camera_count = 1, .cameras = { 1 },
	                      .start_us = T_BASE_US + 2 * HOUR, .end_us = T_BASE_US + 5 * HOUR };
	snprintf(h.case_ref, sizeof h.case_ref, "CASE-S");
	cr_assert_eq(stg_hold_create(e.stg, &h, NULL, 0, NULL), 0);
	uint64_t held_frames = read_checked(e.stg, 1, h.start_us, h.end_us);
	cr_assert_eq(held_frames, 36 * BURST);
	/* four days through a 16 MiB ring, a sweep every hour */
	for (int64_t t = T_BASE_US + 6 * HOUR; t < T_BASE_US + 4 * DAY; t += HOUR) {
		record_span(e.stg, 2, t, t + HOUR, STREET_STEP);
		cr_assert_eq(stg_retention_enforce(e.stg), 0);
	}
	sync_all(e.stg, 2);
	cr_assert_eq(stg_retention_enforce(e.stg), 0);
	struct stg_volume_stats vs;
	cr_assert_eq(stg_volume_stats(e.stg, &vs, 1), 1);
	cr_assert(vs.reclaims >= 32, "the ring wrapped twice (%llu reclaims)",
	          (unsigned long long)vs.reclaims);
	cr_assert_eq(read_checked(e.stg, 1, h.start_us, h.end_us), held_frames,
	             "held stretch intact");
	uint64_t held = disk_bytes(e.stg, 1, h.start_us, h.end_us);
	uint64_t unheld = all_bytes(e.stg, 1) + all_bytes(e.stg, 2) - held;
	struct stg_retention_stats rs;
	cr_assert_eq(stg_retention_stats(e.stg, &rs, NULL, 0, NULL), 0);
	cr_assert_eq(rs.held_bytes, held);
	uint64_t limit = (uint64_t)((double)(rs.capacity_bytes - held) * 30 / 100);
	struct stg_class_stats st = class_stats(e.stg, "street");
	cr_assert_eq(st.share_bytes, limit);
	cr_assert_eq(st.bytes, unheld, "counted %llu, on disk %llu unheld",
	             (unsigned long long)st.bytes, (unsigned long long)unheld);
	/* at most its share, and not less by what the hold keeps: under it by
	 * less than one chunk (~22 KB), as whole chunks go */
	cr_assert(unheld <= limit, "unheld %llu over %llu", (unsigned long long)unheld,
	          (unsigned long long)limit);
	cr_assert(unheld + 25000 > limit, "unheld %llu, share %llu, held %llu",
	          (unsigned long long)unheld, (unsigned long long)limit,
	          (unsigned long long)held);
	cr_assert(held > 25000 * 20, "the hold keeps far more than a chunk");
	/* the unheld footage is the youngest, whole */
	int64_t now = g_now, from = oldest(e.stg, 2);
	cr_assert(from > h.end_us);
	for (uint32_t cam = 1; cam <= 2; cam++)
		cr_assert_eq(read_checked(e.stg, cam, from, INT64_MAX / 2),
		             bursts_in(cam, STREET_STEP, from, now) * BURST);
	/* after a restart the counts are rebuilt from the index and the disks */
	tu_env_close(&e);
	tu_env_open(&e);
	sweep_counted(e.stg, "street");
	cr_assert_eq(class_stats(e.stg, "street").bytes, unheld, "census");
	cr_assert_eq(read_checked(e.stg, 1, h.start_us, h.end_us), held_frames);
	tu_env_fini(&e);
}
