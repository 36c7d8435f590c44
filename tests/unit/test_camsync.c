/*
 * test_camsync.c - the registry -> ingest synchronisation (nvr/camsync.c)
 * with a real registry and a real ingest: hundreds of cameras (more than
 * one batch of adds) start in one poll, RTSP and libavformat ones alike;
 * a disabled, a deleted and a changed camera are stopped, and restarted
 * for the change, while the others are left alone; a camera whose add
 * failed is retried at the next registry change. The cameras point at
 * closed ports and missing files: what is checked is who is handed to the
 * ingest, not what they record.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "camsync.h"
#include "ingest.h"
#include "registry.h"
#include "testutil.h"

#define RTSP_CAMERAS 600          /* more than two batches */
#define FILE_CAMERAS 2

struct rig {
	struct tu_env env;
	char *regdir;
	struct registry *reg;
	struct ingest *in;
	struct camsync *cs;
};

static void put_camera(struct rig *r, uint32_t id, const char *url, bool enabled)
{
	struct camera_record c;
	camera_record_init(&c);
	c.id = id;
	c.enabled = enabled;
	snprintf(c.name, sizeof c.name, "cam%u", id);
	snprintf(c.main_url, sizeof c.main_url, "%s", url);
	cr_assert_eq(registry_put(r->reg, &c), 0, "camera %u", id);
}

static void put_rtsp(struct rig *r, uint32_t id, uint16_t port, bool enabled)
{
	char url[64];
	snprintf(url, sizeof url, "rtsp://127.0.0.1:%u/cam/%u", port, id);
	put_camera(r, id, url, enabled);
}

static void rig_start(struct rig *r)
{
	tu_env_init(&r->env, 1, 4 << 20, 8);
	tu_env_open(&r->env);
	r->regdir = tu_tmpdir();
	cr_assert_eq(registry_open(r->regdir, &r->reg), 0);
	for (uint32_t id = 1; id <= RTSP_CAMERAS; id++)
		put_rtsp(r, id, 9, true);
	for (uint32_t id = 1001; id < 1001 + FILE_CAMERAS; id++)
		put_camera(r, id, "file:///nonexistent/camera.mp4", true);
	struct ingest_config ic = { .stg = r->env.stg, .loops = 2, .av_threads = 1,
	                            .backoff_min_ms = 1000, .backoff_max_ms = 2000 };
	cr_assert_eq(ingest_start(&ic, &r->in), 0);
	cr_assert_eq(camsync_init(r->reg, r->in, &r->cs), 0);
}

static void rig_stop(struct rig *r)
{
	camsync_free(r->cs);
	ingest_stop(r->in, NULL);
	registry_close(r->reg);
	tu_rmrf(r->regdir);
	free(r->regdir);
	tu_env_fini(&r->env);
}

static bool in_ingest(struct rig *r, uint32_t id)
{
	struct ingest_camera_status st;
	int err = ingest_status(r->in, id, &st);
	cr_assert(err == 0 || err == -ENOENT, "status of %u: %d", id, err);
	return err == 0;
}

Test(camsync, starts_and_stops_what_the_registry_says, .timeout = 60)
{
	struct rig r;
	rig_start(&r);
	cr_assert_eq(camsync_poll(r.cs), RTSP_CAMERAS + FILE_CAMERAS);
	cr_assert_eq(camsync_count(r.cs), RTSP_CAMERAS + FILE_CAMERAS);
	for (uint32_t id = 1; id <= RTSP_CAMERAS; id++)
		cr_assert(in_ingest(&r, id), "camera %u started", id);
	for (uint32_t id = 1001; id < 1001 + FILE_CAMERAS; id++)
		cr_assert(in_ingest(&r, id), "file camera %u started", id);
	cr_assert_eq(camsync_poll(r.cs), 0, "nothing changed, nothing done");

	put_rtsp(&r, 5, 9, false);                 /* disabled */
	cr_assert_eq(registry_delete(r.reg, 7), 0);
	put_rtsp(&r, 6, 10, true);                 /* another URL: restarted */
	cr_assert_eq(camsync_poll(r.cs), 3);
	cr_assert(!in_ingest(&r, 5) && !in_ingest(&r, 7));
	cr_assert(in_ingest(&r, 6));
	struct ingest_camera_status st;
	cr_assert_eq(ingest_status(r.in, 6, &st), 0);
	cr_assert_eq(camsync_count(r.cs), RTSP_CAMERAS + FILE_CAMERAS - 2);
	for (uint32_t id = 1; id <= RTSP_CAMERAS; id++)
		cr_assert_eq(in_ingest(&r, id), id != 5 && id != 7, "camera %u", id);
	rig_stop(&r);
}

Test(camsync, a_failed_add_is_retried_at_the_next_change, .timeout = 60)
{
	struct rig r;
	rig_start(&r);
	/* camera 900 is already in the ingest when camsync adds it: -EEXIST */
	struct camera_record c;
	camera_record_init(&c);
	c.id = 900;
	snprintf(c.main_url, sizeof c.main_url, "rtsp://127.0.0.1:9/other");
	cr_assert_eq(ingest_add(r.in, &c), 0);
	put_rtsp(&r, 900, 9, true);
	cr_assert_eq(camsync_poll(r.cs), RTSP_CAMERAS + FILE_CAMERAS + 1);
	for (uint32_t id = 1; id <= RTSP_CAMERAS; id++)
		cr_assert(in_ingest(&r, id), "camera %u started beside the failed one", id);
	/* the stray session goes away; the next registry change retries 900 */
	cr_assert_eq(ingest_remove(r.in, 900), 0);
	cr_assert(!in_ingest(&r, 900));
	put_rtsp(&r, 901, 9, true);
	cr_assert_eq(camsync_poll(r.cs), 2, "901 added, 900 retried");
	cr_assert(in_ingest(&r, 900) && in_ingest(&r, 901));
	cr_assert_eq(camsync_poll(r.cs), 0);
	rig_stop(&r);
}

/* The statuses of many cameras asked at once (one call into each loop per
 * block) are those asked one by one: RTSP cameras on both loops, file
 * cameras, cameras the ingest does not hold, and more ids than one block. */
Test(camsync, statuses_asked_at_once_match_one_by_one, .timeout = 60)
{
	struct rig r;
	rig_start(&r);
	cr_assert_eq(camsync_poll(r.cs), RTSP_CAMERAS + FILE_CAMERAS);
	enum { N = 1200 };
	static uint32_t ids[N];
	static struct ingest_camera_status many[N];
	static bool found[N];
	for (uint32_t i = 0; i < N; i++)
		ids[i] = N - i;                  /* 1200..1: unknown, file, RTSP, in no order */
	memset(found, 1, sizeof found);      /* stale answers must not survive */
	ingest_status_many(r.in, ids, N, many, found);
	size_t held = 0;
	for (uint32_t i = 0; i < N; i++) {
		struct ingest_camera_status one;
		int err = ingest_status(r.in, ids[i], &one);
		cr_assert_eq(found[i], err == 0, "camera %u: found %d, alone %d", ids[i], found[i], err);
		if (err)
			continue;
		held++;
		cr_assert_eq(many[i].id, ids[i], "camera %u answered as %u", ids[i], many[i].id);
		cr_assert_eq(one.id, ids[i]);
	}
	cr_assert_eq(held, RTSP_CAMERAS + FILE_CAMERAS);
	ingest_status_many(r.in, ids, 0, many, found);    /* nothing asked, nothing done */
	rig_stop(&r);
}
