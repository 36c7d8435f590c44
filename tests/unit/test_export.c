/*
 * test_export.c - the export job engine (web/export.h) against a real
 * storage engine on a small temporary volume.
 *
 * Footage: a 2 s H.264 clip made with ffmpeg (320x240, 25 fps, a key frame
 * with SPS/PPS every second), its access units recorded over and over as
 * cameras' frames 40 ms apart. Each test exports a window and checks the
 * outcome from the outside: the MP4 is opened with libavformat (codec,
 * size, packet count, moov before mdat), its SHA-256 is computed with the
 * sha256sum program and compared with the manifest's, the manifest's
 * frame counts, times and gaps are compared with what was recorded. The
 * failure paths (quota refusal, cancel, a daemon stopped mid-job) check
 * that the other exports are still whole afterwards.
 */
#include <libavformat/avformat.h>
#include <sys/stat.h>
#include <time.h>

#include "export.h"
#include "log.h"
#include "testutil.h"

#define SEC 1000000LL

/* ---- footage ---------------------------------------------------------- */

struct clip {
	uint8_t *data[64];
	uint32_t size[64];
	bool key[64];
	size_t n;
};

static struct clip g_clip;

static void clip_load(struct clip *c, const char *dir)
{
	char path[600], cmd[1200];
	snprintf(path, sizeof path, "%s/clip.264", dir);
	snprintf(cmd, sizeof cmd,
	         "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=25 "
	         "-t 2 -pix_fmt yuv420p -c:v libx264 -preset veryfast -bf 0 -g 25 -keyint_min 25 "
	         "-sc_threshold 0 -x264-params repeat-headers=1 -f h264 '%s'", path);
	cr_assert_eq(system(cmd), 0, "ffmpeg failed: %s", cmd);
	AVFormatContext *ic = NULL;
	cr_assert_eq(avformat_open_input(&ic, path, NULL, NULL), 0);
	AVPacket *pkt = av_packet_alloc();
	memset(c, 0, sizeof *c);
	while (av_read_frame(ic, pkt) >= 0 && c->n < 64) {
		c->data[c->n] = malloc((size_t)pkt->size);
		memcpy(c->data[c->n], pkt->data, (size_t)pkt->size);
		c->size[c->n] = (uint32_t)pkt->size;
		c->key[c->n] = pkt->flags & AV_PKT_FLAG_KEY;
		c->n++;
		av_packet_unref(pkt);
	}
	av_packet_free(&pkt);
	avformat_close_input(&ic);
	cr_assert_eq(c->n, 50, "the clip has 50 frames, got %zu", c->n);
	cr_assert(c->key[0] && c->key[25] && !c->key[1], "key frames every 25 frames");
}

/* Frame n of a camera: clip frame n % 50, at T_BASE_US + n * 40 ms. */
static int64_t ftime(uint32_t n)
{
	return T_BASE_US + (int64_t)n * T_FRAME_US;
}

static uint64_t fbytes(uint32_t from, uint32_t to)
{
	uint64_t sum = 0;
	for (uint32_t n = from; n < to; n++)
		sum += g_clip.size[n % g_clip.n];
	return sum;
}

static void put(struct stg *stg, uint32_t cam, uint32_t from, uint32_t to)
{
	struct stg_camera *c;
	cr_assert_eq(stg_camera_get(stg, cam, &c), 0);
	for (uint32_t n = from; n < to; n++) {
		size_t k = n % g_clip.n;
		struct stg_frame f = { ftime(n), g_clip.data[k], g_clip.size[k], g_clip.key[k],
		                       STG_CODEC_H264 };
		cr_assert_eq(stg_put_frame(c, &f), 0);
	}
	cr_assert_eq(stg_camera_flush(c), 0);
}

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	struct tu_env env;
	char exports[600];
	struct export_config cfg;
	struct export_engine *ex;
	struct export_camera cams[4];
};

/* Camera 1: frames 0..1499 (60 s); camera 2: 0..999 then, after a 4 s
 * gap, 1100..1499; camera 3: nothing. */
static void fx_init(struct fx *x, uint64_t quota)
{
	tu_env_init(&x->env, 1, 16 << 20, 8);
	tu_env_open(&x->env);
	clip_load(&g_clip, x->env.dir);
	put(x->env.stg, 1, 0, 1500);
	put(x->env.stg, 2, 0, 1000);
	put(x->env.stg, 2, 1100, 1500);
	cr_assert_eq(stg_sync(x->env.stg), 0);
	snprintf(x->exports, sizeof x->exports, "%s/exports", x->env.dir);
	x->cfg = (struct export_config){ .dir = x->exports, .quota_bytes = quota, .workers = 1 };
	const char *names[] = { "North gate", "Market street", "Dark alley" };
	for (int i = 0; i < 3; i++) {
		x->cams[i] = (struct export_camera){ .id = (uint32_t)i + 1, .latitude = 39.5 + i,
		                                     .longitude = 106.25 - i };
		snprintf(x->cams[i].name, sizeof x->cams[i].name, "%s", names[i]);
		snprintf(x->cams[i].district, sizeof x->cams[i].district, "District %d", i + 7);
	}
	cr_assert_eq(export_open(&x->cfg, x->env.stg, &x->ex), 0);
}

static void fx_fini(struct fx *x)
{
	export_close(x->ex);
	for (size_t i = 0; i < g_clip.n; i++)
		free(g_clip.data[i]);
	tu_env_fini(&x->env);
}

static uint64_t submit(struct fx *x, size_t ncams, uint32_t from, uint32_t to, uint64_t audit)
{
	struct export_request r = { x->cams, ncams, ftime(from) + 20000, ftime(to), "CASE-2026-001",
	                            "hit and run", "alice" };
	uint64_t id = 0;
	struct export_space sp;
	int err = export_submit(x->ex, &r, &id, &sp);
	cr_assert_eq(err, 0, "submit: %s", strerror(-err));
	cr_assert_eq(export_release(x->ex, id, audit), 0);
	return id;
}

static json_t *status(struct fx *x, uint64_t id)
{
	int err;
	json_t *s = export_status(x->ex, id, &err);
	cr_assert(s, "status of %llu: %d", (unsigned long long)id, err);
	return s;
}

static const char *sget(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

static json_int_t iget(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* Waits until the job has ended; returns its status (new reference). */
static json_t *wait_end(struct fx *x, uint64_t id)
{
	for (int i = 0; i < 3000; i++) {
		json_t *s = status(x, id);
		const char *st = sget(s, "status");
		if (strcmp(st, "queued") && strcmp(st, "running"))
			return s;
		json_decref(s);
		usleep(10000);
	}
	cr_assert_fail("job %llu did not end", (unsigned long long)id);
	return NULL;
}

static void job_path(struct fx *x, uint64_t id, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%llu%s%s", x->exports, (unsigned long long)id, name ? "/" : "",
	         name ? name : "");
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ---- independent checks ---------------------------------------------------- */

static void sha256sum(const char *path, char out[65])
{
	char cmd[700];
	snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	cr_assert_eq(fscanf(p, "%64s", out), 1);
	cr_assert_eq(pclose(p), 0);
}

struct probe {
	enum AVCodecID codec;
	int width, height;
	uint64_t packets;
	double duration_s;
	long moov_at, mdat_at;     /* top-level box offsets, -1 if absent */
	uint64_t size;
};

static void probe(const char *path, struct probe *p)
{
	memset(p, 0, sizeof *p);
	p->moov_at = p->mdat_at = -1;
	FILE *f = fopen(path, "rb");
	cr_assert(f, "open %s", path);
	uint8_t h[8];
	long off = 0;
	while (fseek(f, off, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
		uint32_t len = (uint32_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		if (!memcmp(h + 4, "moov", 4))
			p->moov_at = off;
		if (!memcmp(h + 4, "mdat", 4))
			p->mdat_at = off;
		if (len < 8)
			break;
		off += len;
	}
	fseek(f, 0, SEEK_END);
	p->size = (uint64_t)ftell(f);
	fclose(f);
	AVFormatContext *ic = NULL;
	cr_assert_eq(avformat_open_input(&ic, path, NULL, NULL), 0, "libavformat opens %s", path);
	cr_assert_geq(avformat_find_stream_info(ic, NULL), 0);
	p->codec = ic->streams[0]->codecpar->codec_id;
	p->width = ic->streams[0]->codecpar->width;
	p->height = ic->streams[0]->codecpar->height;
	p->duration_s = (double)ic->duration / AV_TIME_BASE;
	AVPacket *pkt = av_packet_alloc();
	while (av_read_frame(ic, pkt) >= 0) {
		p->packets++;
		av_packet_unref(pkt);
	}
	av_packet_free(&pkt);
	avformat_close_input(&ic);
}

/* Checks one camera of a done job: manifest entry, file, hash. */
static void check_camera(struct fx *x, uint64_t id, json_t *mc, uint32_t cam, uint64_t frames,
                         uint64_t frame_bytes, int64_t first_us, int64_t end_us)
{
	cr_assert_eq(iget(mc, "id"), cam);
	cr_assert_str_eq(sget(mc, "name"), x->cams[cam - 1].name);
	cr_assert_str_eq(sget(mc, "district"), x->cams[cam - 1].district);
	cr_assert_float_eq(json_real_value(json_object_get(mc, "latitude")),
	                   x->cams[cam - 1].latitude, 1e-9);
	cr_assert_float_eq(json_real_value(json_object_get(mc, "longitude")),
	                   x->cams[cam - 1].longitude, 1e-9);
	cr_assert_eq((uint64_t)iget(mc, "frames"), frames, "camera %u: %lld frames, expected %llu",
	             cam, (long long)iget(mc, "frames"), (unsigned long long)frames);
	if (!frames) {
		cr_assert(json_is_null(json_object_get(mc, "file")));
		cr_assert(json_is_null(json_object_get(mc, "sha256")));
		cr_assert(json_is_null(json_object_get(mc, "actual")));
		cr_assert_eq(iget(mc, "bytes"), 0);
		return;
	}
	cr_assert_eq((uint64_t)iget(mc, "frame_bytes"), frame_bytes);
	json_t *act = json_object_get(mc, "actual");
	cr_assert_eq(iget(act, "start_ms"), first_us / 1000);
	cr_assert_eq(iget(act, "end_ms"), end_us / 1000);
	char name[32], path[700], sum[65];
	snprintf(name, sizeof name, "camera-%u.mp4", cam);
	cr_assert_str_eq(sget(mc, "file"), name);
	cr_assert_str_eq(sget(mc, "codec"), "h264");
	job_path(x, id, name, path, sizeof path);
	sha256sum(path, sum);
	cr_assert_str_eq(sget(mc, "sha256"), sum, "camera %u: manifest hash is the file's", cam);
	struct probe p;
	probe(path, &p);
	cr_assert_eq((uint64_t)iget(mc, "bytes"), p.size);
	cr_assert_gt(p.size, frame_bytes, "the file holds every frame byte");
	cr_assert_lt(p.size, frame_bytes + 64 * 1024 + frames * 16);
	cr_assert_eq(p.codec, AV_CODEC_ID_H264);
	cr_assert_eq(p.width, 320);
	cr_assert_eq(p.height, 240);
	cr_assert_eq(p.packets, frames, "camera %u: %llu packets", cam,
	             (unsigned long long)p.packets);
	cr_assert(p.moov_at >= 0 && p.mdat_at > p.moov_at, "the moov before the media");
	double want = (double)(end_us - first_us) / SEC;
	cr_assert(p.duration_s > want - 0.1 && p.duration_s < want + 0.1,
	          "camera %u: duration %.3f s, expected %.3f", cam, p.duration_s, want);
}

/* ---- tests -------------------------------------------------------------- */

Test(export, manifest_and_files_match_the_recording, .timeout = 120)
{
	struct fx x;
	fx_init(&x, 0);
	/* window [10.02 s, 50 s): from snaps back to the key frame at 10 s;
	 * camera 2 has a gap from 40 s to 44 s in it */
	uint64_t id = submit(&x, 3, 250, 1250, 77);
	json_t *s = wait_end(&x, id);
	cr_assert_str_eq(sget(s, "status"), "done", "status %s error %s", sget(s, "status"),
	                 sget(s, "error"));
	uint64_t bytes2 = fbytes(250, 1000) + fbytes(1100, 1250);
	cr_assert_eq(iget(s, "frames"), 1000 + 900);
	cr_assert_eq((uint64_t)iget(s, "frame_bytes"), fbytes(250, 1250) + bytes2);
	cr_assert_float_eq(json_real_value(json_object_get(s, "progress")), 1.0, 1e-9);
	cr_assert_eq(json_array_size(json_object_get(s, "files")), 2);
	cr_assert_eq(iget(s, "audit_id"), 77);
	cr_assert_geq(iget(s, "elapsed_ms"), 0);
	json_decref(s);

	char path[700];
	job_path(&x, id, "manifest.json", path, sizeof path);
	json_error_t jerr;
	json_t *m = json_load_file(path, 0, &jerr);
	cr_assert(m, "manifest: %s", jerr.text);
	cr_assert_eq(iget(m, "id"), (json_int_t)id);
	cr_assert_str_eq(sget(m, "case"), "CASE-2026-001");
	cr_assert_str_eq(sget(m, "reason"), "hit and run");
	cr_assert_str_eq(sget(m, "created_by"), "alice");
	cr_assert_eq(iget(m, "audit_id"), 77);
	int64_t now_ms = nvr_now_us() / 1000;
	cr_assert(iget(m, "created_at_ms") > now_ms - 120000 && iget(m, "created_at_ms") <= now_ms);
	cr_assert_eq(strlen(sget(m, "created_at")), strlen("2026-01-01T00:00:00.000Z"));
	json_t *req = json_object_get(m, "requested");
	cr_assert_eq(iget(req, "start_ms"), (ftime(250) + 20000) / 1000);
	cr_assert_eq(iget(req, "end_ms"), ftime(1250) / 1000);
	cr_assert_str_eq(sget(req, "start"), "2026-01-01T00:00:10.020Z");
	json_t *cams = json_object_get(m, "cameras");
	cr_assert_eq(json_array_size(cams), 3);
	check_camera(&x, id, json_array_get(cams, 0), 1, 1000, fbytes(250, 1250), ftime(250),
	             ftime(1250));
	check_camera(&x, id, json_array_get(cams, 1), 2, 900, bytes2, ftime(250), ftime(1250));
	check_camera(&x, id, json_array_get(cams, 2), 3, 0, 0, 0, 0);
	/* camera 2's gap: from the end of frame 999 to frame 1100 */
	json_t *gaps = json_object_get(json_array_get(cams, 1), "gaps");
	cr_assert_eq(json_array_size(gaps), 1);
	cr_assert_eq(iget(json_array_get(gaps, 0), "start_ms"), ftime(1000) / 1000);
	cr_assert_eq(iget(json_array_get(gaps, 0), "end_ms"), ftime(1100) / 1000);
	cr_assert_eq(json_array_size(json_object_get(json_array_get(cams, 0), "gaps")), 0);
	cr_assert_eq(iget(m, "total_frames"), 1900);
	json_decref(m);
	/* the manifest and each file are what export_open_file serves */
	int fd;
	uint64_t size;
	cr_assert_eq(export_open_file(x.ex, id, 0, &fd, &size), 0);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(size, (uint64_t)st.st_size);
	close(fd);
	cr_assert_eq(export_open_file(x.ex, id, 3, &fd, &size), -ENOENT, "no file for camera 3");
	cr_assert_eq(export_open_file(x.ex, id + 1, 1, &fd, &size), -ENOENT);
	fx_fini(&x);
}

Test(export, quota_refusal_leaves_other_exports_intact, .timeout = 120)
{
	struct fx x;
	fx_init(&x, 0);
	uint64_t a = submit(&x, 1, 0, 500, 1);       /* 20 s of camera 1 */
	json_t *s = wait_end(&x, a);
	cr_assert_str_eq(sget(s, "status"), "done");
	uint64_t est = (uint64_t)iget(s, "estimated_bytes");
	uint64_t bytes = (uint64_t)iget(s, "bytes");
	cr_assert_geq(est, bytes, "the estimate covers the file (%llu < %llu)",
	              (unsigned long long)est, (unsigned long long)bytes);
	json_decref(s);
	char mp4[700], sum_before[65], sum_after[65];
	job_path(&x, a, "camera-1.mp4", mp4, sizeof mp4);
	sha256sum(mp4, sum_before);
	export_close(x.ex);
	/* room for export a and a little more: the same window again does not fit */
	x.cfg.quota_bytes = bytes + est / 2;
	cr_assert_eq(export_open(&x.cfg, x.env.stg, &x.ex), 0);
	struct export_request r = { x.cams, 1, ftime(0), ftime(500), "CASE-2", "", "bob" };
	struct export_space sp = { 0 };
	uint64_t b = 0;
	cr_assert_eq(export_submit(x.ex, &r, &b, &sp), -EDQUOT);
	cr_assert_eq(sp.quota, x.cfg.quota_bytes);
	cr_assert_eq(sp.estimate, est);
	cr_assert_geq(sp.used, bytes);
	char dir[700];
	job_path(&x, a + 1, NULL, dir, sizeof dir);
	cr_assert(!exists(dir), "nothing created for the refused export");
	json_t *list = export_list(x.ex);
	cr_assert_eq(json_array_size(json_object_get(list, "exports")), 1);
	json_decref(list);
	/* export a is whole: done, same file, same hash as its manifest */
	s = status(&x, a);
	cr_assert_str_eq(sget(s, "status"), "done");
	sha256sum(mp4, sum_after);
	cr_assert_str_eq(sum_after, sum_before);
	cr_assert_str_eq(sget(json_array_get(json_object_get(s, "files"), 0), "sha256"), sum_after);
	json_decref(s);
	/* deleting a frees its quota: the same request now fits */
	const char *was;
	cr_assert_eq(export_delete(x.ex, a, &was), 0);
	cr_assert_str_eq(was, "done");
	job_path(&x, a, NULL, dir, sizeof dir);
	cr_assert(!exists(dir), "deleted export's directory removed");
	cr_assert_eq(export_submit(x.ex, &r, &b, &sp), 0);
	cr_assert_gt(b, a, "ids are not reused");
	cr_assert_eq(export_release(x.ex, b, 2), 0);
	s = wait_end(&x, b);
	cr_assert_str_eq(sget(s, "status"), "done");
	json_decref(s);
	fx_fini(&x);
}

Test(export, cancel_removes_partial_files, .timeout = 120)
{
	struct fx x;
	fx_init(&x, 0);
	uint64_t keep = submit(&x, 1, 0, 100, 1);
	json_decref(wait_end(&x, keep));
	/* a queued job behind a running one; the running one is cancelled
	 * once it has written frames, the queued one before it starts */
	uint64_t run = submit(&x, 2, 0, 1500, 2);
	uint64_t queued = submit(&x, 2, 0, 1500, 3);
	const char *was;
	bool caught = false;
	for (int i = 0; i < 20000 && !caught; i++) {
		json_t *s = status(&x, run);
		caught = !strcmp(sget(s, "status"), "running") && iget(s, "frames") > 0;
		bool ended = !strcmp(sget(s, "status"), "done");
		json_decref(s);
		cr_assert(!ended, "the job ended before it could be cancelled");
		if (caught)
			cr_assert_eq(export_delete(x.ex, run, &was), 0);
		else
			usleep(100);
	}
	cr_assert(caught, "the job never ran");
	cr_assert_str_eq(was, "running");
	cr_assert_eq(export_delete(x.ex, queued, &was), 0);
	cr_assert_str_eq(was, "queued");
	json_t *s = wait_end(&x, run);
	cr_assert_str_eq(sget(s, "status"), "cancelled");
	json_decref(s);
	s = status(&x, queued);
	cr_assert_str_eq(sget(s, "status"), "cancelled");
	json_decref(s);
	char dir[700];
	job_path(&x, run, NULL, dir, sizeof dir);
	cr_assert(!exists(dir), "cancelled job's files removed");
	job_path(&x, queued, NULL, dir, sizeof dir);
	cr_assert(!exists(dir));
	/* the earlier export is untouched and its hash still holds */
	s = status(&x, keep);
	cr_assert_str_eq(sget(s, "status"), "done");
	char mp4[700], sum[65];
	job_path(&x, keep, "camera-1.mp4", mp4, sizeof mp4);
	sha256sum(mp4, sum);
	cr_assert_str_eq(sget(json_array_get(json_object_get(s, "files"), 0), "sha256"), sum);
	json_decref(s);
	json_t *list = export_list(x.ex);
	cr_assert_eq(iget(list, "reserved"), 0, "cancelled jobs returned their reservation");
	json_decref(list);
	fx_fini(&x);
}

Test(export, restart_keeps_done_jobs_and_fails_interrupted_ones, .timeout = 120)
{
	struct fx x;
	fx_init(&x, 0);
	uint64_t done = submit(&x, 2, 0, 300, 5);
	json_t *before = wait_end(&x, done);
	cr_assert_str_eq(sget(before, "status"), "done");
	/* a job stopped by the daemon's stop is left "interrupted" */
	uint64_t stopped = submit(&x, 2, 0, 1500, 6);
	for (int i = 0; i < 20000; i++) {
		json_t *s = status(&x, stopped);
		bool running = !strcmp(sget(s, "status"), "running") && iget(s, "frames") > 0;
		json_decref(s);
		if (running)
			break;
		usleep(100);
	}
	export_close(x.ex);
	/* and a directory left by a crash mid-job: partial file, no manifest */
	char dir[700], part[760];
	job_path(&x, 900, NULL, dir, sizeof dir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(part, sizeof part, "%s/camera-1.mp4", dir);
	FILE *f = fopen(part, "w");
	cr_assert(f);
	fputs("partial", f);
	fclose(f);
	cr_assert_eq(export_open(&x.cfg, x.env.stg, &x.ex), 0);
	json_t *after = status(&x, done);
	cr_assert_str_eq(sget(after, "status"), "done");
	cr_assert(json_equal(json_object_get(before, "files"), json_object_get(after, "files")),
	          "the done job's files and hashes survive a restart");
	const char *same[] = { "frames", "frame_bytes", "bytes", "estimated_bytes", "from_ms", "to_ms" };
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
		cr_assert_eq(iget(after, same[i]), iget(before, same[i]), "%s after a restart", same[i]);
	cr_assert_gt(iget(after, "estimated_bytes"), 0);
	cr_assert_eq(iget(after, "audit_id"), 5);
	json_decref(before);
	json_decref(after);
	json_t *s = status(&x, stopped);
	cr_assert_str_eq(sget(s, "status"), "failed");
	cr_assert_str_eq(sget(s, "error"), "interrupted");
	cr_assert_eq(iget(s, "audit_id"), 6);
	json_decref(s);
	char mp4[700];
	job_path(&x, stopped, "camera-1.mp4", mp4, sizeof mp4);
	cr_assert(!exists(mp4), "the stopped job's partial file is removed");
	s = status(&x, 900);
	cr_assert_str_eq(sget(s, "status"), "failed");
	cr_assert_str_eq(sget(s, "error"), "interrupted");
	json_decref(s);
	cr_assert(!exists(part), "the crashed job's partial file is removed");
	/* ids go on after the highest one found */
	uint64_t next = submit(&x, 1, 0, 50, 7);
	cr_assert_eq(next, 901);
	json_decref(wait_end(&x, next));
	fx_fini(&x);
}

Test(export, bad_requests_are_refused_before_anything_is_created, .timeout = 60)
{
	struct fx x;
	fx_init(&x, 0);
	struct export_space sp;
	uint64_t id;
	struct export_request ok = { x.cams, 2, ftime(0), ftime(100), "CASE-1", NULL, "carol" };
	struct export_request r = ok;
	r.camera_count = 0;
	cr_assert_eq(export_submit(x.ex, &r, &id, &sp), -EINVAL);
	r = ok;
	r.to_us = r.from_us;
	cr_assert_eq(export_submit(x.ex, &r, &id, &sp), -EINVAL);
	r = ok;
	r.to_us = r.from_us + 25 * 3600 * SEC;
	cr_assert_eq(export_submit(x.ex, &r, &id, &sp), -EINVAL);
	r = ok;
	r.case_ref = "";
	cr_assert_eq(export_submit(x.ex, &r, &id, &sp), -EINVAL);
	struct export_camera twice[2] = { x.cams[0], x.cams[0] };
	r = ok;
	r.cameras = twice;
	cr_assert_eq(export_submit(x.ex, &r, &id, &sp), -EINVAL);
	json_t *list = export_list(x.ex);
	cr_assert_eq(json_array_size(json_object_get(list, "exports")), 0);
	cr_assert_eq(iget(list, "reserved"), 0);
	json_decref(list);
	cr_assert_eq(export_submit(x.ex, &ok, &id, &sp), 0);
	cr_assert_eq(id, 1);
	fx_fini(&x);
}

Test(export, a_job_outgrowing_the_quota_fails_and_removes_its_files, .timeout = 120)
{
	struct fx x;
	fx_init(&x, 0);
	uint64_t keep = submit(&x, 1, 0, 100, 1);
	json_decref(wait_end(&x, keep));
	/* what a job over cameras 1 and 2's first 120 s would reserve now,
	 * with only 60 s recorded; the two cameras are written side by side,
	 * so the failure may come on either thread */
	struct export_request r = { x.cams, 2, ftime(0), ftime(3000), "CASE-Q", "", "dave" };
	struct export_space sp;
	uint64_t id;
	cr_assert_eq(export_submit(x.ex, &r, &id, &sp), 0);
	json_t *s = status(&x, id);
	uint64_t est = (uint64_t)iget(s, "estimated_bytes");
	json_decref(s);
	const char *was;
	cr_assert_eq(export_delete(x.ex, id, &was), 0);
	cr_assert_eq(export_delete(x.ex, id, &was), 0);
	json_t *list = export_list(x.ex);
	uint64_t used = (uint64_t)iget(list, "used");
	json_decref(list);
	export_close(x.ex);
	/* a quota with room for that estimate only; then the next 60 s are
	 * recorded before the job runs: it needs twice what it reserved */
	x.cfg.quota_bytes = used + est + 4096;
	cr_assert_eq(export_open(&x.cfg, x.env.stg, &x.ex), 0);
	cr_assert_eq(export_submit(x.ex, &r, &id, &sp), 0);
	put(x.env.stg, 1, 1500, 3000);
	cr_assert_eq(stg_sync(x.env.stg), 0);
	cr_assert_eq(export_release(x.ex, id, 9), 0);
	s = wait_end(&x, id);
	cr_assert_str_eq(sget(s, "status"), "failed");
	cr_assert_str_eq(sget(s, "error"), "quota");
	cr_assert_gt(iget(s, "frame_bytes"), 0, "it ran before it failed");
	json_decref(s);
	char path[700];
	job_path(&x, id, "camera-1.mp4", path, sizeof path);
	cr_assert(!exists(path), "the failed job's file is removed");
	job_path(&x, id, "camera-2.mp4", path, sizeof path);
	cr_assert(!exists(path), "the failed job's other file is removed");
	job_path(&x, id, "job.json", path, sizeof path);
	json_error_t jerr;
	json_t *jj = json_load_file(path, 0, &jerr);
	cr_assert(jj, "job.json: %s", jerr.text);
	cr_assert_str_eq(sget(jj, "state"), "failed");
	cr_assert_str_eq(sget(jj, "error"), "quota");
	json_decref(jj);
	/* the quota is whole again, the earlier export untouched */
	list = export_list(x.ex);
	cr_assert_eq(iget(list, "reserved"), 0);
	cr_assert_leq((uint64_t)iget(list, "used"), used + 4096, "only job.json remains");
	json_decref(list);
	s = status(&x, keep);
	cr_assert_str_eq(sget(s, "status"), "done");
	char mp4[700], sum[65];
	job_path(&x, keep, "camera-1.mp4", mp4, sizeof mp4);
	sha256sum(mp4, sum);
	cr_assert_str_eq(sget(json_array_get(json_object_get(s, "files"), 0), "sha256"), sum);
	json_decref(s);
	fx_fini(&x);
}
