/*
 * export.h - evidence export jobs: the recorded video of some cameras over
 * a time window, copied out of the storage ring into an exports area that
 * retention never touches, one MP4 per camera plus a JSON manifest that
 * says what was asked, what was found and the SHA-256 of every file.
 *
 * A job goes held -> queued -> running -> done, or ends failed (with a
 * reason: "quota", "interrupted", "storage", "mux", "io") or cancelled.
 * export_submit() creates a job held, its quota reserved, so that the
 * caller can write the audit entry that names the job before the job runs;
 * export_release() then queues it with the audit entry's id. A small pool
 * of threads (export_config.threads) writes the files: the first
 * export_config.workers of them take queued jobs in order, and any idle
 * one writes the next camera of a running job, so that one job's cameras
 * are written side by side.
 *
 * On disk (export_config.dir, "EXPORTS"):
 *   EXPORTS/.last-id             the last job id handed out (ids never repeat)
 *   EXPORTS/<id>/job.json        the request; "state" says failed and why
 *   EXPORTS/<id>/camera-<c>.mp4  the video of camera c (fragmented MP4)
 *   EXPORTS/<id>/manifest.json   written last (temp file, fsync, rename):
 *                                a job directory with a manifest is done
 * At start a directory with a manifest is a done job, one whose job.json
 * says failed keeps its reason, and any other one was interrupted: its
 * partial files are removed and it reads "failed: interrupted".
 *
 * Quota: the bytes of every file in the exports area, plus what queued and
 * running jobs have reserved, never exceed export_config.quota_bytes. A job
 * reserves its estimate (stg_estimate: frame bytes from the index, plus
 * container overhead) when submitted and is refused if that does not fit;
 * a job that outgrows its reservation takes more while it fits and fails
 * with "quota" (its files removed) when it does not.
 *
 * Every function may be called from any thread.
 */
#ifndef WEB_EXPORT_H
#define WEB_EXPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage.h"

#define EXPORT_MAX_CASE 128       /* case reference: 1..127 bytes */
#define EXPORT_MAX_REASON 1024    /* free text: 0..1023 bytes */
#define EXPORT_MAX_USER 64

struct export_engine;

struct export_config {
	const char *dir;              /* exports area, created if missing (required) */
	uint64_t quota_bytes;         /* [10 GiB] */
	unsigned workers;             /* jobs run at once, 1..8 [1] */
	unsigned threads;             /* threads writing files, workers..8 [2]:
	                               * an idle one writes the next camera of a
	                               * running job */
	unsigned queue_max;           /* jobs held or queued at once [16] */
	unsigned max_cameras;         /* cameras per job [16] */
	int64_t max_window_us;        /* longest window [24 h] */
};

/* A camera as the manifest describes it (from the registry). */
struct export_camera {
	uint32_t id;
	char name[128];
	double latitude, longitude;
	char district[128];
};

struct export_request {
	const struct export_camera *cameras;
	size_t camera_count;          /* 1..max_cameras, no id twice */
	int64_t from_us, to_us;       /* from < to, at most max_window_us apart */
	const char *case_ref;         /* required */
	const char *reason;           /* NULL or "" for none */
	const char *created_by;       /* the authenticated user */
};

/* Why a job was refused for space (export_submit -> -EDQUOT). */
struct export_space {
	uint64_t estimate;            /* bytes the job would need */
	uint64_t used;                /* bytes used or reserved by other exports */
	uint64_t quota;
};

/* Opens the exports area (creating it), loads the jobs found there and
 * starts the workers. Returns 0 or a negative errno (logged). */
int export_open(const struct export_config *cfg, struct stg *stg, struct export_engine **out);

/* Stops the workers: a running job stops between frames and is left
 * "failed: interrupted" with its partial files removed. NULL is fine. */
void export_close(struct export_engine *e);

/* The engine's limits (defaults applied). */
const struct export_config *export_limits(const struct export_engine *e);

/* Checks the request, estimates its size and creates a held job with its
 * quota reserved. Returns 0 with *id set; -EINVAL for a request outside the
 * limits; -EDQUOT when it would overflow the quota (*space filled, nothing
 * created); -EBUSY when queue_max jobs wait already; or another negative
 * errno. */
int export_submit(struct export_engine *e, const struct export_request *r, uint64_t *id,
                  struct export_space *space);

/* Queues a held job; the manifest will carry audit_id. 0, -ENOENT, or
 * -EINVAL if the job is not held. */
int export_release(struct export_engine *e, uint64_t id, uint64_t audit_id);

/* What DELETE does: a held or queued job is dropped and a running one
 * cancelled (it stops between frames and removes its files), both ending
 * "cancelled"; a job that has ended (done, failed, cancelled) is removed
 * with its directory, freeing its quota. *was is set to the state name
 * the job had. 0 or -ENOENT. */
int export_delete(struct export_engine *e, uint64_t id, const char **was);

/* Status of one job (new reference): id, status, error, progress, case,
 * reason, cameras, from/to, created_by, created_at, audit_id,
 * estimated_bytes, frames, frame_bytes, bytes, elapsed_ms, files.
 * NULL with *err = -ENOENT or -ENOMEM. */
json_t *export_status(struct export_engine *e, uint64_t id, int *err);

/* {"quota", "used", "reserved", "exports": [status, ...]} (new reference), or NULL. */
json_t *export_list(struct export_engine *e);

/* Opens a done job's file for reading: its manifest (camera 0) or the MP4
 * of a camera. Returns 0 with *fd and *size set, -ENOENT (no such job or
 * no file for that camera) or -EAGAIN (job not done). */
int export_open_file(struct export_engine *e, uint64_t id, uint32_t camera, int *fd,
                     uint64_t *size);

/* The state names used in status answers. */
const char *export_state_name(int state);

#endif
