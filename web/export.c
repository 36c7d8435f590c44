/*
 * export.c - the export job engine (export.h): the job list, the bounded
 * queue, the worker threads, the quota, and the status answers.
 *
 * A job's life: export_submit checks the request, sums the index's
 * estimate of every camera's bytes (stg_estimate, no frame read) and,
 * under the lock, refuses it if the estimate does not fit in the quota
 * beside what other exports use and reserve; else it hands out an id,
 * creates the job's directory and reserves the estimate. export_release
 * writes job.json and queues it. A worker takes queued jobs in order and
 * runs them without the lock (export_run.c); the outcome decides what is
 * left on disk: everything (done), job.json saying why (failed), nothing
 * (cancelled). Then the reservation is returned and the directory's real
 * size counted as used. Deleting an ended job removes its directory and
 * frees that size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "export_int.h"
#include "log.h"

static const char *const export_states[] = {
	[EXPORT_HELD] = "queued",   /* held for its audit entry: queued to the client */
	[EXPORT_QUEUED] = "queued",
	[EXPORT_RUNNING] = "running",
	[EXPORT_DONE] = "done",
	[EXPORT_FAILED] = "failed",
	[EXPORT_CANCELLED] = "cancelled",
};

const char *export_state_name(int state)
{
	return state >= 0 && state <= EXPORT_CANCELLED ? export_states[state] : "unknown";
}

const struct export_config *export_limits(const struct export_engine *e)
{
	return &e->cfg;
}

void export_job_free(struct export_job *j)
{
	if (!j)
		return;
	for (size_t i = 0; j->res && i < j->ncams; i++)
		json_decref(j->res[i].gaps);
	json_decref(j->doc);
	free(j->res);
	free(j->cams);
	free(j);
}

static struct export_job *export_find(struct export_engine *e, uint64_t id)
{
	struct export_job *j = e->jobs;
	while (j && j->id != id)
		j = j->next;
	return j;
}

/* ---- quota ----------------------------------------------------------------- */

int export_charge(struct export_engine *e, struct export_job *j, uint64_t n)
{
	uint64_t charged = atomic_fetch_add(&j->charged, n) + n;
	int err = 0;
	/* frames within the reservation are free: allowance is its copy,
	 * readable without the lock, updated with it */
	if (charged <= atomic_load(&j->allowance))
		return 0;
	pthread_mutex_lock(&e->lock);
	if (charged > j->reserved) {
		uint64_t more = charged - j->reserved;
		if (e->used + e->reserved + more > e->cfg.quota_bytes)
			err = -EDQUOT;
		else {
			j->reserved += more;
			e->reserved += more;
			atomic_store(&j->allowance, j->reserved);
		}
	}
	pthread_mutex_unlock(&e->lock);
	return err;
}

/* ---- workers ------------------------------------------------------------- */

/* Leaves on disk what the outcome calls for; returns the new state. */
static int export_settle(struct export_engine *e, struct export_job *j, int err)
{
	char dir[PATH_MAX];
	if (export_path(e, j->id, NULL, dir, sizeof dir))
		return EXPORT_FAILED;
	if (!err && !atomic_load(&j->cancel))
		return EXPORT_DONE;
	if (atomic_load(&j->cancel)) {
		export_remove(dir, false);
		return EXPORT_CANCELLED;
	}
	if (err == -ECANCELED)
		snprintf(j->error, sizeof j->error, "interrupted");
	else if (!j->error[0])
		snprintf(j->error, sizeof j->error, "io");
	export_remove(dir, true);
	pthread_mutex_lock(&e->lock);
	json_t *doc = json_deep_copy(j->doc);
	pthread_mutex_unlock(&e->lock);
	if (doc) {
		json_object_set_new(doc, "state", json_string("failed"));
		json_object_set_new(doc, "error", json_string(j->error));
		export_write_json(dir, "job.json", doc, false);
		json_decref(doc);
	}
	return EXPORT_FAILED;
}

static void export_ended(struct export_engine *e, struct export_job *j, int err, json_t *manifest)
{
	int state = export_settle(e, j, err);
	char dir[PATH_MAX];
	uint64_t du = export_path(e, j->id, NULL, dir, sizeof dir) ? 0 : export_du(dir);
	int64_t elapsed = nvr_mono_us() - j->started_mono;
	pthread_mutex_lock(&e->lock);
	e->reserved -= j->reserved;
	j->reserved = 0;
	j->disk_bytes = du;
	e->used += du;
	j->elapsed_us = elapsed;
	j->finished_us = nvr_now_us();
	j->state = state;
	if (state == EXPORT_DONE && manifest) {
		json_decref(j->doc);
		j->doc = manifest;
		manifest = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	json_decref(manifest);
	nvr_log(state == EXPORT_FAILED ? "warn" : "info", "export",
	        "event=job_%s id=%" PRIu64 " error=%s frames=%" PRIu64 " frame_bytes=%" PRIu64
	        " bytes=%" PRIu64 " elapsed_ms=%lld durable_ms=%lld cpu_ms=%llu",
	        export_state_name(state), j->id, state == EXPORT_FAILED ? j->error : "none",
	        (uint64_t)atomic_load(&j->frames), (uint64_t)atomic_load(&j->frame_bytes),
	        (uint64_t)atomic_load(&j->bytes), (long long)(elapsed / 1000),
	        (long long)(j->durable_us / 1000),
	        (unsigned long long)(atomic_load(&j->cpu_us) / 1000));
}

/* A running job with cameras nobody has claimed, or NULL. Lock held. */
static struct export_job *export_helpable(struct export_engine *e)
{
	for (struct export_job *j = e->jobs; j; j = j->next)
		if (j->state == EXPORT_RUNNING && atomic_load(&j->next_cam) < j->ncams &&
		    !atomic_load(&j->failed))
			return j;
	return NULL;
}

/* This thread's file writer, made at its first camera; NULL (logged) if
 * it cannot be made. */
static struct export_file *export_writer(struct export_file **out)
{
	int err = *out ? 0 : export_file_new(out);
	if (err)
		nvr_log("warn", "export", "event=writer_failed error=\"%s\"", strerror(-err));
	return *out;
}

/* Runs the queued job at the head of the queue. Lock held; dropped while
 * the job runs. */
static void export_own(struct export_engine *e, struct export_file **out)
{
	struct export_job *j = e->qhead;
	e->qhead = j->qnext;
	if (!e->qhead)
		e->qtail = NULL;
	e->waiting--;
	j->state = EXPORT_RUNNING;
	j->started_us = nvr_now_us();
	j->started_mono = nvr_mono_us();
	atomic_store(&j->allowance, j->reserved);
	pthread_cond_broadcast(&e->wake);   /* idle threads may help */
	pthread_mutex_unlock(&e->lock);
	nvr_log("info", "export", "event=job_started id=%" PRIu64 " cameras=%zu", j->id, j->ncams);
	json_t *manifest = NULL;
	int err = export_run(e, j, export_writer(out), &manifest);
	export_ended(e, j, err, manifest);
	pthread_mutex_lock(&e->lock);
}

/* Writes cameras of a running job beside its worker. Lock held; dropped
 * while writing. */
static void export_help(struct export_engine *e, struct export_job *j, struct export_file **out)
{
	j->helpers++;
	pthread_mutex_unlock(&e->lock);
	struct export_file *w = export_writer(out);
	if (w)
		(void)export_cameras(e, j, w);   /* a failure is the job's: j->failed */
	pthread_mutex_lock(&e->lock);
	if (!--j->helpers)
		pthread_cond_broadcast(&e->wake);   /* the job's worker waits for this */
}

struct export_thread {
	struct export_engine *e;
	bool takes_jobs;              /* one of the first cfg.workers */
};

/* A thread takes queued jobs in order (when it is one of the first
 * cfg.workers) and otherwise helps a running job with its next camera,
 * with one file writer for all of them. */
static void *export_thread_main(void *arg)
{
	struct export_thread t = *(struct export_thread *)arg;
	struct export_engine *e = t.e;
	struct export_file *out = NULL;
	free(arg);
	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct export_job *h = NULL;
		while (!e->stopping && !(t.takes_jobs && e->qhead) && !(h = export_helpable(e)))
			pthread_cond_wait(&e->wake, &e->lock);
		if (e->stopping)
			break;
		if (t.takes_jobs && e->qhead)
			export_own(e, &out);
		else
			export_help(e, h, &out);
	}
	pthread_mutex_unlock(&e->lock);
	export_file_free(out);
	return NULL;
}

/* ---- submitting ------------------------------------------------------------ */

static int export_check(const struct export_engine *e, const struct export_request *r)
{
	const struct export_config *c = &e->cfg;
	if (!r->camera_count || r->camera_count > c->max_cameras || r->from_us >= r->to_us ||
	    r->to_us - r->from_us > c->max_window_us || !r->case_ref || !r->case_ref[0] ||
	    strlen(r->case_ref) >= EXPORT_MAX_CASE ||
	    (r->reason && strlen(r->reason) >= EXPORT_MAX_REASON) ||
	    !r->created_by || strlen(r->created_by) >= EXPORT_MAX_USER)
		return -EINVAL;
	for (size_t i = 0; i < r->camera_count; i++)
		for (size_t k = 0; k < i; k++)
			if (r->cameras[i].id == r->cameras[k].id)
				return -EINVAL;
	return 0;
}

/* The bytes a job will need: frame bytes from the index plus the MP4
 * index per frame, a file's fixed part and the manifest. */
static int export_estimate(struct export_engine *e, const struct export_request *r,
                           uint64_t *out)
{
	uint64_t sum = EXPORT_FILE_OVERHEAD;
	for (size_t i = 0; i < r->camera_count; i++) {
		struct stg_estimate est;
		int err = stg_estimate(e->stg, r->cameras[i].id, r->from_us, r->to_us, &est);
		if (err) {
			nvr_log("error", "export", "event=estimate_failed camera=%" PRIu32
			        " error=\"%s\"", r->cameras[i].id, stg_strerror(err));
			return err < 0 ? err : -EIO;
		}
		if (est.frames)
			sum += est.bytes + est.frames * EXPORT_FRAME_OVERHEAD + EXPORT_FILE_OVERHEAD;
	}
	*out = sum;
	return 0;
}

static int export_new_job(const struct export_request *r, uint64_t estimate,
                          struct export_job **out)
{
	struct export_job *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	j->ncams = r->camera_count;
	j->cams = calloc(j->ncams, sizeof *j->cams);
	j->res = calloc(j->ncams, sizeof *j->res);
	if (!j->cams || !j->res) {
		export_job_free(j);
		return -ENOMEM;
	}
	memcpy(j->cams, r->cameras, j->ncams * sizeof *j->cams);
	j->from_us = r->from_us;
	j->to_us = r->to_us;
	j->estimate = estimate;
	j->state = EXPORT_HELD;
	*out = j;
	return 0;
}

/* Under the lock: the quota and queue checks, an id and a directory. */
static int export_admit(struct export_engine *e, struct export_job *j,
                        struct export_space *space)
{
	char dir[PATH_MAX];
	if (e->stopping)
		return -ESHUTDOWN;
	if (e->waiting >= e->cfg.queue_max)
		return -EBUSY;
	if (e->used + e->reserved + j->estimate > e->cfg.quota_bytes) {
		*space = (struct export_space){ j->estimate, e->used + e->reserved, e->cfg.quota_bytes };
		return -EDQUOT;
	}
	int err = export_next_id(e, &j->id);
	if (!err)
		err = export_path(e, j->id, NULL, dir, sizeof dir);
	if (!err && mkdir(dir, 0755))
		err = -errno;
	if (err)
		return err;
	j->reserved = j->estimate;
	e->reserved += j->reserved;
	e->waiting++;
	if (e->jobs_tail)
		e->jobs_tail->next = j;
	else
		e->jobs = j;
	e->jobs_tail = j;
	return 0;
}

int export_submit(struct export_engine *e, const struct export_request *r, uint64_t *id,
                  struct export_space *space)
{
	struct export_job *j = NULL;
	uint64_t estimate = 0;
	int err = export_check(e, r);
	if (!err)
		err = export_estimate(e, r, &estimate);
	if (!err)
		err = export_new_job(r, estimate, &j);
	if (err)
		return err;
	j->doc = export_request_doc(j, nvr_now_us(), r->case_ref, r->reason ? r->reason : "",
	                            r->created_by);
	if (!j->doc) {
		export_job_free(j);
		return -ENOMEM;
	}
	pthread_mutex_lock(&e->lock);
	err = export_admit(e, j, space);
	pthread_mutex_unlock(&e->lock);
	if (err) {
		if (err == -EDQUOT)
			nvr_log("warn", "export", "event=job_refused reason=quota estimate=%" PRIu64
			        " used=%" PRIu64 " quota=%" PRIu64, space->estimate, space->used,
			        space->quota);
		export_job_free(j);
		return err;
	}
	json_object_set_new(j->doc, "id", json_integer((json_int_t)j->id));
	*id = j->id;
	nvr_log("info", "export", "event=job_created id=%" PRIu64 " cameras=%zu estimate=%" PRIu64,
	        j->id, j->ncams, estimate);
	return 0;
}

int export_release(struct export_engine *e, uint64_t id, uint64_t audit_id)
{
	char dir[PATH_MAX];
	int err = export_path(e, id, NULL, dir, sizeof dir);
	if (err)
		return err;
	pthread_mutex_lock(&e->lock);
	struct export_job *j = export_find(e, id);
	err = !j ? -ENOENT : j->state != EXPORT_HELD ? -EINVAL : 0;
	if (!err) {
		j->audit_id = audit_id;
		json_object_set_new(j->doc, "audit_id", json_integer((json_int_t)audit_id));
		json_object_set_new(j->doc, "state", json_string("queued"));
		err = export_write_json(dir, "job.json", j->doc, false);
		json_object_del(j->doc, "state");
	}
	if (!err) {
		j->state = EXPORT_QUEUED;
		if (e->qtail)
			e->qtail->qnext = j;
		else
			e->qhead = j;
		e->qtail = j;
		pthread_cond_broadcast(&e->wake);   /* a helper-only thread may be the one woken */
	}
	pthread_mutex_unlock(&e->lock);
	return err;
}

/* ---- deleting -------------------------------------------------------------- */

static void export_unqueue(struct export_engine *e, struct export_job *j)
{
	struct export_job **pp = &e->qhead, *prev = NULL;
	while (*pp && *pp != j) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (!*pp)
		return;
	*pp = j->qnext;
	if (e->qtail == j)
		e->qtail = prev;
	j->qnext = NULL;
}

static void export_unlink(struct export_engine *e, struct export_job *j)
{
	struct export_job **pp = &e->jobs, *prev = NULL;
	while (*pp && *pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = j->next;
	if (e->jobs_tail == j)
		e->jobs_tail = prev;
}

int export_delete(struct export_engine *e, uint64_t id, const char **was)
{
	char dir[PATH_MAX];
	int err = export_path(e, id, NULL, dir, sizeof dir);
	if (err)
		return err;
	struct export_job *gone = NULL;
	bool remove_dir = false;
	pthread_mutex_lock(&e->lock);
	struct export_job *j = export_find(e, id);
	if (!j) {
		pthread_mutex_unlock(&e->lock);
		return -ENOENT;
	}
	*was = export_state_name(j->state);
	if (j->state == EXPORT_HELD || j->state == EXPORT_QUEUED) {
		export_unqueue(e, j);
		e->waiting--;
		e->reserved -= j->reserved;
		j->reserved = 0;
		j->state = EXPORT_CANCELLED;
		remove_dir = true;
	} else if (j->state == EXPORT_RUNNING) {
		atomic_store(&j->cancel, true);   /* its worker removes the files */
	} else {
		export_unlink(e, j);
		e->used -= j->disk_bytes < e->used ? j->disk_bytes : e->used;
		gone = j;
		remove_dir = true;
	}
	pthread_mutex_unlock(&e->lock);
	if (remove_dir)
		err = export_remove(dir, false);
	nvr_log("info", "export", "event=job_deleted id=%" PRIu64 " was=%s", id, *was);
	export_job_free(gone);
	return err;
}

/* ---- status ---------------------------------------------------------------- */

/* Share of the job done: finished cameras, plus the share of the window
 * covered by each camera being written. */
static double export_progress(struct export_job *j)
{
	if (j->state == EXPORT_DONE)
		return 1.0;
	if (j->state != EXPORT_RUNNING || !j->ncams)
		return 0.0;
	double p = (double)atomic_load(&j->cams_done);
	for (size_t i = 0; i < j->ncams; i++) {
		if (!atomic_load(&j->res[i].busy))
			continue;
		int64_t at = atomic_load(&j->res[i].at_us);
		double part = at > j->from_us ? (double)(at - j->from_us) /
		                                (double)(j->to_us - j->from_us) : 0;
		p += part > 1 ? 1 : part;
	}
	p /= (double)j->ncams;
	return p > 1 ? 1 : p;
}

/* A done job's files, from its manifest's cameras. */
static json_t *export_files(const struct export_job *j)
{
	json_t *files = json_array(), *c;
	size_t i;
	json_array_foreach(json_object_get(j->doc, "cameras"), i, c) {
		if (!json_is_string(json_object_get(c, "file")))
			continue;
		char url[96];
		snprintf(url, sizeof url, "/api/v1/exports/%" PRIu64 "/download?camera=%" JSON_INTEGER_FORMAT,
		         j->id, json_integer_value(json_object_get(c, "id")));
		json_t *f = json_pack("{s:O, s:O, s:O, s:O, s:O, s:s}", "camera", json_object_get(c, "id"),
		                      "file", json_object_get(c, "file"), "frames",
		                      json_object_get(c, "frames"), "bytes", json_object_get(c, "bytes"),
		                      "sha256", json_object_get(c, "sha256"), "download", url);
		if (!f || json_array_append_new(files, f)) {
			json_decref(files);
			return NULL;
		}
	}
	return files;
}

static json_t *export_status_locked(struct export_job *j)
{
	int64_t elapsed = j->state == EXPORT_RUNNING ? nvr_mono_us() - j->started_mono : j->elapsed_us;
	json_t *cams = json_array();
	for (size_t i = 0; cams && i < j->ncams; i++)
		json_array_append_new(cams, json_integer(j->cams[i].id));
	json_t *doc = j->doc;
	json_t *s = json_pack("{s:I, s:s, s:f, s:O*, s:O*, s:O*, s:O*, s:o, s:o, s:o, s:I, s:I,"
	                      " s:o, s:I, s:I, s:I, s:I, s:I}",
	                      "id", (json_int_t)j->id, "status", export_state_name(j->state),
	                      "progress", export_progress(j),
	                      "case", json_object_get(doc, "case"),
	                      "reason", json_object_get(doc, "reason"),
	                      "created_by", json_object_get(doc, "created_by"),
	                      "created_at", json_object_get(doc, "created_at"),
	                      "cameras", cams, "from", export_time(j->from_us),
	                      "to", export_time(j->to_us),
	                      "from_ms", (json_int_t)(j->from_us / 1000),
	                      "to_ms", (json_int_t)(j->to_us / 1000),
	                      "audit_id", j->audit_id ? json_integer((json_int_t)j->audit_id) : json_null(),
	                      "estimated_bytes", (json_int_t)j->estimate,
	                      "frames", (json_int_t)atomic_load(&j->frames),
	                      "frame_bytes", (json_int_t)atomic_load(&j->frame_bytes),
	                      "bytes", (json_int_t)atomic_load(&j->bytes),
	                      "elapsed_ms", (json_int_t)(elapsed / 1000));
	if (s && j->state == EXPORT_FAILED)
		json_object_set_new(s, "error", json_string(j->error));
	if (s && j->state == EXPORT_DONE) {
		json_t *files = export_files(j);
		if (!files || json_object_set_new(s, "files", files)) {
			json_decref(s);
			return NULL;
		}
	}
	return s;
}

json_t *export_status(struct export_engine *e, uint64_t id, int *err)
{
	pthread_mutex_lock(&e->lock);
	struct export_job *j = export_find(e, id);
	json_t *s = j ? export_status_locked(j) : NULL;
	pthread_mutex_unlock(&e->lock);
	*err = !j ? -ENOENT : !s ? -ENOMEM : 0;
	return s;
}

json_t *export_list(struct export_engine *e)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&e->lock);
	for (struct export_job *j = e->jobs; arr && j; j = j->next) {
		json_t *s = export_status_locked(j);
		if (!s || json_array_append_new(arr, s)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	json_t *out = arr ? json_pack("{s:I, s:I, s:I, s:o}", "quota", (json_int_t)e->cfg.quota_bytes,
	                              "used", (json_int_t)e->used, "reserved",
	                              (json_int_t)e->reserved, "exports", arr) : NULL;
	pthread_mutex_unlock(&e->lock);
	return out;
}

int export_open_file(struct export_engine *e, uint64_t id, uint32_t camera, int *fd,
                     uint64_t *size)
{
	char name[EXPORT_FILE_NAME_MAX], path[PATH_MAX];
	if (camera)
		export_file_name(camera, name);
	else
		snprintf(name, sizeof name, "manifest.json");
	int err = export_path(e, id, name, path, sizeof path);
	if (err)
		return err;
	pthread_mutex_lock(&e->lock);
	struct export_job *j = export_find(e, id);
	/* opened under the lock: a DELETE cannot remove it in between (an open
	 * descriptor keeps reading a file removed after this) */
	err = !j ? -ENOENT : j->state != EXPORT_DONE ? -EAGAIN : 0;
	if (!err && (*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		err = -errno;
	pthread_mutex_unlock(&e->lock);
	struct stat st;
	if (!err && fstat(*fd, &st)) {
		err = -errno;
		close(*fd);
	}
	if (!err)
		*size = (uint64_t)st.st_size;
	return err;
}

/* ---- open and close -------------------------------------------------------- */

static void export_defaults(struct export_config *c)
{
	if (!c->quota_bytes)
		c->quota_bytes = 10ull << 30;
	if (!c->workers)
		c->workers = 1;
	if (c->workers > EXPORT_MAX_WORKERS)
		c->workers = EXPORT_MAX_WORKERS;
	if (!c->threads)
		c->threads = 2;
	if (c->threads < c->workers)
		c->threads = c->workers;
	if (c->threads > EXPORT_MAX_WORKERS)
		c->threads = EXPORT_MAX_WORKERS;
	if (!c->queue_max)
		c->queue_max = 16;
	if (!c->max_cameras)
		c->max_cameras = 16;
	if (!c->max_window_us)
		c->max_window_us = 24LL * 3600 * 1000000;
}

static int export_start_workers(struct export_engine *e)
{
	for (unsigned i = 0; i < e->cfg.threads; i++) {
		struct export_thread *t = malloc(sizeof *t);
		if (!t)
			return -ENOMEM;
		*t = (struct export_thread){ e, i < e->cfg.workers };
		int err = -pthread_create(&e->threads[i], NULL, export_thread_main, t);
		if (err) {
			free(t);
			return err;
		}
		e->nthreads++;
	}
	return 0;
}

int export_open(const struct export_config *cfg, struct stg *stg, struct export_engine **out)
{
	struct export_engine *e = calloc(1, sizeof *e);
	int err = -ENOMEM;
	if (!e)
		goto fail;
	e->cfg = *cfg;
	export_defaults(&e->cfg);
	e->stg = stg;
	err = -ENAMETOOLONG;
	if (!cfg->dir || snprintf(e->dir, sizeof e->dir, "%s", cfg->dir) >= (int)sizeof e->dir)
		goto fail;
	err = mkdir(e->dir, 0755) && errno != EEXIST ? -errno : 0;
	if (err)
		goto fail;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->wake, NULL);
	e->cfg.dir = e->dir;
	err = export_load(e);
	if (!err)
		err = export_start_workers(e);
	if (err) {
		export_close(e);
		e = NULL;
		goto fail;
	}
	*out = e;
	return 0;
fail:
	nvr_log("error", "export", "event=open_failed dir=%s error=\"%s\"",
	        cfg->dir ? cfg->dir : "(none)", strerror(-err));
	free(e);
	return err;
}

void export_close(struct export_engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_broadcast(&e->wake);
	pthread_mutex_unlock(&e->lock);
	for (unsigned i = 0; i < e->nthreads; i++)
		pthread_join(e->threads[i], NULL);
	while (e->jobs) {
		struct export_job *j = e->jobs;
		e->jobs = j->next;
		export_job_free(j);
	}
	pthread_cond_destroy(&e->wake);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
