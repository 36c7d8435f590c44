/*
 * export_run.c - running one export job: for each camera, one pass over
 * the recorded frames of [from, to) (stg_iter_*, starting at the key frame
 * at or before `from`) through the shared muxer (web/mux.h: fragmented MP4,
 * one fragment per key frame, written strictly in order) into
 * EXPORTS/<id>/camera-<c>.mp4 (web/export_file.h: hashed as it is
 * written). Idle export threads write other cameras of the job side by
 * side (export_cameras). Each file's fdatasync starts when it is finished
 * (export_file.h) and runs while the thread writes its next camera; a
 * thread leaving the job waits for its files' syncs, and once every thread
 * has, the manifest (export.h) is written atomically.
 *
 * Why fragmented: a regular MP4's index (moov) is known only at the end,
 * so libavformat either puts it last and patches the file's head, or moves
 * it to the front by rewriting the whole file; either way the bytes must
 * be read back to be hashed. A fragmented MP4 is final byte by byte: one
 * read of the footage, one write, the hash on the way. Players and
 * ffprobe read it like any MP4 (the index is per fragment, plus the
 * random-access table, mfra, at the end), and a file cut short by a crash
 * still plays up to its last whole fragment.
 *
 * SHA-256 comes from OpenSSL's libcrypto, not libsodium: libcrypto uses the
 * CPU's SHA instructions (measured here: 1.4 GB/s against libsodium's
 * portable code at about 100 MB/s, which made hashing the slowest step of
 * an export, slower than reading the footage).
 *
 * Frames are handed to the muxer as the iterator returns them (no copy
 * here). Between frames the job checks its cancel flag and the engine's
 * stop flag, counts progress (the frame's time) and charges the frame's
 * bytes to the quota. A camera without footage in the window is listed
 * with frames 0 and no file. A codec change ends that camera's file
 * ("stopped": "codec changed"). Gaps are where the iterator marks a
 * discontinuity: from the end of the frame before (its time plus the
 * frame interval before it) to the next frame.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export_file.h"
#include "export_int.h"
#include "log.h"
#include "mux.h"
#include "query.h"

#define EXPORT_DEFAULT_FRAME_US 40000   /* a lone frame's duration: 25 fps */

json_t *export_time(int64_t us)
{
	char buf[40];
	return query_format_time(us, buf, sizeof buf) ? json_null() : json_string(buf);
}

static json_t *export_span(int64_t start_us, int64_t end_us)
{
	return json_pack("{s:o, s:o, s:I, s:I}", "start", export_time(start_us), "end",
	                 export_time(end_us), "start_ms", (json_int_t)(start_us / 1000),
	                 "end_ms", (json_int_t)(end_us / 1000));
}

static const char *export_codec_name(enum stg_codec c)
{
	return c == STG_CODEC_H264 ? "h264" : c == STG_CODEC_H265 ? "hevc" : "unknown";
}

json_t *export_request_doc(const struct export_job *j, int64_t created_us,
                           const char *case_ref, const char *reason, const char *created_by)
{
	json_t *cams = json_array();
	for (size_t i = 0; cams && i < j->ncams; i++) {
		const struct export_camera *c = &j->cams[i];
		json_t *o = json_pack("{s:I, s:s, s:f, s:f, s:s}", "id", (json_int_t)c->id,
		                      "name", c->name, "latitude", c->latitude,
		                      "longitude", c->longitude, "district", c->district);
		if (!o || json_array_append_new(cams, o)) {
			json_decref(cams);
			cams = NULL;
		}
	}
	if (!cams)
		return NULL;
	return json_pack("{s:s, s:n, s:s, s:s, s:s, s:o, s:I, s:n, s:o, s:I, s:o}",
	                 "format", "nvr-export/1", "id", "case", case_ref, "reason", reason,
	                 "created_by", created_by, "created_at", export_time(created_us),
	                 "created_at_ms", (json_int_t)(created_us / 1000), "audit_id",
	                 "requested", export_span(j->from_us, j->to_us),
	                 "estimated_bytes", (json_int_t)j->estimate, "cameras", cams);
}

/* Cancelled, stopping, or failed on another thread. */
static bool export_stopped(const struct export_engine *e, struct export_job *j)
{
	return atomic_load_explicit(&j->cancel, memory_order_relaxed) ||
	       atomic_load_explicit(&j->failed, memory_order_relaxed) ||
	       atomic_load_explicit(&((struct export_engine *)e)->stopping, memory_order_relaxed);
}

/* Records the first failure (its reason in j->error) and logs it; returns
 * err. The job's other threads stop at their next frame. */
static int export_fail(struct export_job *j, uint32_t camera, const char *reason, int err)
{
	if (err == -ECANCELED)
		return err;
	int none = 0;
	if (atomic_compare_exchange_strong(&j->failed, &none, err))
		snprintf(j->error, sizeof j->error, "%s", reason);
	nvr_log("warn", "export", "event=job_step_failed id=%" PRIu64 " camera=%" PRIu32
	        " reason=%s error=\"%s\"", j->id, camera, reason, stg_strerror(err));
	return err;
}

/* The first key frame the muxer can take: 1, 0 when there is none, or an error. */
static int export_first_key(struct stg_iter *it, struct stg_read_frame *f)
{
	int r;
	while ((r = stg_iter_next(it, f)) > 0)
		if (f->key && mux_codec_supported(f->codec))
			return 1;
	return r;
}

static int export_gap(struct export_result *r, int64_t from_us, int64_t to_us)
{
	r->gap_count++;
	if (json_array_size(r->gaps) >= EXPORT_MAX_GAPS)
		return 0;
	json_t *g = export_span(from_us, to_us);
	return g && !json_array_append_new(r->gaps, g) ? 0 : -ENOMEM;
}

/* One pass: every frame from the first key frame `f` on into the muxer. */
static int export_frames(struct export_engine *e, struct export_job *j, struct export_result *r,
                         uint32_t camera, struct stg_iter *it, struct mux *m,
                         struct stg_read_frame *f)
{
	int64_t prev = 0, interval = 0;
	int n = 1, err;
	r->first_us = f->time_us;
	r->codec = f->codec;
	for (; n > 0; n = stg_iter_next(it, f)) {
		if (export_stopped(e, j))
			return -ECANCELED;
		if (f->codec != r->codec) {
			r->stopped = "codec changed";
			break;
		}
		if (r->frames && f->discontinuity &&
		    (err = export_gap(r, prev + (interval ? interval : EXPORT_DEFAULT_FRAME_US),
		                      f->time_us)))
			return export_fail(j, camera, "memory", err);
		if ((err = mux_frame(m, f)))
			return export_fail(j, camera, "mux", err);
		if ((err = export_charge(e, j, f->size)))
			return export_fail(j, camera, "quota", err);
		if (r->frames)
			interval = f->time_us - prev;
		prev = f->time_us;
		r->frames++;
		r->frame_bytes += f->size;
		atomic_fetch_add_explicit(&j->frames, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&j->frame_bytes, f->size, memory_order_relaxed);
		atomic_store_explicit(&r->at_us, f->time_us, memory_order_relaxed);
	}
	if (n < 0)
		return export_fail(j, camera, "storage", n);
	r->end_us = prev + (interval ? interval : EXPORT_DEFAULT_FRAME_US);
	return 0;
}

/* Writes camera i's file (none without footage) and fills res[i]. */
static int export_camera(struct export_engine *e, struct export_job *j, size_t i,
                         struct export_file *out)
{
	uint32_t cam = j->cams[i].id;
	struct export_result *r = &j->res[i];
	struct stg_iter *it = NULL;
	struct mux *m = NULL;
	struct stg_read_frame f;
	char name[EXPORT_FILE_NAME_MAX], path[PATH_MAX];
	export_file_name(cam, name);
	atomic_store(&r->at_us, j->from_us);
	r->gaps = json_array();
	int err = !r->gaps ? -ENOMEM : export_path(e, j->id, name, path, sizeof path);
	if (err)
		return export_fail(j, cam, "memory", err);
	err = stg_iter_open(e->stg, cam, j->from_us, j->to_us, &it);
	int found = err ? err : export_first_key(it, &f);
	if (found <= 0) {
		err = found < 0 ? export_fail(j, cam, "storage", found) : 0;
		goto out;
	}
	err = export_file_open(out, path, cam);
	if (err) {
		export_fail(j, cam, "io", err);
		goto out;
	}
	r->has_file = true;
	err = mux_open_stream(&m, "mp4", &f, export_file_write, out);
	if (err) {
		export_fail(j, cam, "mux", err);
		goto out;
	}
	err = export_frames(e, j, r, cam, it, m, &f);
	if (!err && (err = mux_finish(m)))
		export_fail(j, cam, "mux", err);
	if (!err && (err = export_file_finish(out, r->sha256, &r->bytes)))
		export_fail(j, cam, "io", err);
	if (!err) {
		atomic_fetch_add(&j->bytes, r->bytes);
		if (r->bytes > r->frame_bytes && (err = export_charge(e, j, r->bytes - r->frame_bytes)))
			export_fail(j, cam, "quota", err);
	}
out:
	mux_free(m);
	export_file_close(out);
	stg_iter_close(it);
	return err;
}

/* Camera i's entry of the manifest: its description plus what was found. */
static int export_manifest_camera(const struct export_job *j, size_t i, json_t *c)
{
	const struct export_result *r = &j->res[i];
	char name[EXPORT_FILE_NAME_MAX];
	export_file_name(j->cams[i].id, name);
	int err = json_object_set_new(c, "actual", r->has_file ? export_span(r->first_us, r->end_us)
	                                                       : json_null());
	err |= json_object_set_new(c, "frames", json_integer((json_int_t)r->frames));
	err |= json_object_set_new(c, "bytes", json_integer((json_int_t)r->bytes));
	err |= json_object_set_new(c, "frame_bytes", json_integer((json_int_t)r->frame_bytes));
	err |= json_object_set_new(c, "sha256", r->has_file ? json_string(r->sha256) : json_null());
	err |= json_object_set_new(c, "file", r->has_file ? json_string(name) : json_null());
	err |= json_object_set_new(c, "codec", r->has_file ? json_string(export_codec_name(r->codec))
	                                                   : json_null());
	err |= json_object_set(c, "gaps", r->gaps ? r->gaps : json_array());
	err |= json_object_set_new(c, "gap_count", json_integer((json_int_t)r->gap_count));
	if (r->stopped)
		err |= json_object_set_new(c, "stopped", json_string(r->stopped));
	return err ? -ENOMEM : 0;
}

static json_t *export_manifest(struct export_engine *e, struct export_job *j)
{
	pthread_mutex_lock(&e->lock);
	json_t *m = json_deep_copy(j->doc);
	pthread_mutex_unlock(&e->lock);
	json_t *cams = json_object_get(m, "cameras");
	int64_t now = nvr_now_us();
	int err = !m || json_array_size(cams) != j->ncams;
	err |= json_object_set_new(m, "started_at", export_time(j->started_us));
	err |= json_object_set_new(m, "started_at_ms", json_integer(j->started_us / 1000));
	err |= json_object_set_new(m, "finished_at", export_time(now));
	err |= json_object_set_new(m, "finished_at_ms", json_integer(now / 1000));
	err |= json_object_set_new(m, "total_frames", json_integer((json_int_t)atomic_load(&j->frames)));
	err |= json_object_set_new(m, "total_bytes", json_integer((json_int_t)atomic_load(&j->bytes)));
	for (size_t i = 0; !err && i < j->ncams; i++)
		err = export_manifest_camera(j, i, json_array_get(cams, i));
	if (err) {
		json_decref(m);
		return NULL;
	}
	return m;
}

static int64_t thread_cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits for this thread's files to be durable; the wait is the job's
 * settle_us when it is the longest of its threads'. */
static int export_settle(struct export_job *j, struct export_file *out)
{
	uint64_t tag = 0;
	int64_t t0 = nvr_mono_us();
	int err = export_file_settle(out, &tag);
	int64_t waited = nvr_mono_us() - t0;
	int64_t seen = atomic_load(&j->settle_us);
	while (waited > seen && !atomic_compare_exchange_weak(&j->settle_us, &seen, waited))
		;
	return err ? export_fail(j, (uint32_t)tag, "io", err) : 0;
}

int export_cameras(struct export_engine *e, struct export_job *j, struct export_file *out)
{
	int err = 0;
	int64_t cpu0 = thread_cpu_us();
	for (unsigned i; !err && (i = atomic_fetch_add(&j->next_cam, 1)) < j->ncams;) {
		if (export_stopped(e, j)) {
			err = -ECANCELED;
			break;
		}
		atomic_store(&j->res[i].busy, true);
		err = export_camera(e, j, i, out);
		atomic_store(&j->res[i].busy, false);
		atomic_fetch_add(&j->cams_done, 1);
	}
	int serr = export_settle(j, out);   /* also after a failure: closes the files */
	atomic_fetch_add(&j->cpu_us, (uint64_t)(thread_cpu_us() - cpu0));
	return err ? err : serr;
}

/* Waits until the threads that help the job have left it. */
static void export_join_helpers(struct export_engine *e, struct export_job *j)
{
	pthread_mutex_lock(&e->lock);
	while (j->helpers)
		pthread_cond_wait(&e->wake, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

int export_run(struct export_engine *e, struct export_job *j, struct export_file *out,
               json_t **manifest)
{
	char dir[PATH_MAX];
	int err = out ? export_path(e, j->id, NULL, dir, sizeof dir)
	              : export_fail(j, 0, "memory", -ENOMEM);
	if (!err)
		err = export_cameras(e, j, out);
	/* closed to new helpers (also after a failure or a cancel), then the
	 * ones inside are waited for: nobody touches the job once it ends */
	atomic_store(&j->next_cam, (unsigned)j->ncams);
	export_join_helpers(e, j);
	if (!err || err == -ECANCELED)
		err = atomic_load(&j->failed) ? atomic_load(&j->failed) : err;
	if (err)
		return err;
	int64_t t0 = nvr_mono_us();
	if (export_stopped(e, j))
		return -ECANCELED;
	json_t *m = export_manifest(e, j);
	if (!m)
		return export_fail(j, 0, "memory", -ENOMEM);
	err = export_write_json(dir, "manifest.json", m, true);
	if (err) {
		json_decref(m);
		return export_fail(j, 0, "io", err);
	}
	*manifest = m;
	j->durable_us = atomic_load(&j->settle_us) + (nvr_mono_us() - t0);
	return 0;
}
