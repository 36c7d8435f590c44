/*
 * export_int.h - what the parts of the export engine share (export.c: jobs,
 * queue, workers and quota; export_run.c: running one job; export_disk.c:
 * the exports area on disk). Private to those three files.
 *
 * Locking: engine.lock guards the job list, the queue, every job's state,
 * doc, reservation and helper count, and the quota counters. A running
 * job's cameras are claimed one at a time (next_cam) by its worker and by
 * idle threads that help it; progress counters are atomics updated
 * without the lock; res[i] belongs to the thread that claimed camera i
 * until the job ends; error is written once, by the thread whose failure
 * came first (failed), and read after every thread has left the job.
 */
#ifndef WEB_EXPORT_INT_H
#define WEB_EXPORT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "export.h"
#include "export_file.h"

#define EXPORT_MAX_WORKERS 8
#define EXPORT_MAX_GAPS 1000          /* gaps listed per camera (all counted) */
#define EXPORT_FRAME_OVERHEAD 16      /* MP4 index bytes per frame, estimated */
#define EXPORT_FILE_OVERHEAD (64u << 10)  /* per file and for the manifest */

enum export_state {
	EXPORT_HELD,
	EXPORT_QUEUED,
	EXPORT_RUNNING,
	EXPORT_DONE,
	EXPORT_FAILED,
	EXPORT_CANCELLED,
};

/* One camera's outcome. */
struct export_result {
	atomic_bool busy;             /* being written now */
	atomic_int_fast64_t at_us;    /* time of the frame being written */
	uint64_t frames, frame_bytes, bytes;
	int64_t first_us, end_us;
	enum stg_codec codec;
	char sha256[65];              /* hex */
	bool has_file;
	const char *stopped;          /* NULL, or why the file ends before `to` */
	json_t *gaps;                 /* spans, at most EXPORT_MAX_GAPS */
	uint64_t gap_count;
};

struct export_job {
	uint64_t id;
	int state;                    /* enum export_state */
	char error[32];               /* failure reason */
	json_t *doc;                  /* job.json's content; the manifest once done */
	struct export_camera *cams;
	size_t ncams;
	int64_t from_us, to_us;
	uint64_t audit_id;
	uint64_t estimate;            /* bytes the index predicts, with overhead */
	uint64_t reserved;            /* quota held while held, queued or running */
	uint64_t disk_bytes;          /* its directory's bytes once ended */
	int64_t started_us, finished_us;   /* wall clock, 0 until then */
	int64_t started_mono, elapsed_us;
	int64_t durable_us;               /* of elapsed: settle_us, then the manifest written */
	atomic_int_fast64_t settle_us;    /* longest wait of a thread for its files' syncs */
	atomic_bool cancel;
	atomic_uint_fast64_t frames, frame_bytes, bytes, charged;
	atomic_uint_fast64_t cpu_us;   /* CPU time of the threads writing its cameras */
	atomic_uint next_cam;         /* cameras claimed so far (may pass ncams) */
	atomic_uint cams_done;        /* cameras finished */
	atomic_int failed;            /* the first failure's negative errno, or 0 */
	atomic_uint_fast64_t allowance;  /* copy of reserved, for export_charge */
	unsigned helpers;             /* threads in the job besides its worker */
	struct export_result *res;    /* ncams entries */
	struct export_job *next;      /* job list, id order */
	struct export_job *qnext;     /* queue */
};

struct export_engine {
	struct export_config cfg;
	char dir[PATH_MAX];
	struct stg *stg;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct export_job *jobs, *jobs_tail;
	struct export_job *qhead, *qtail;
	unsigned waiting;             /* held + queued */
	uint64_t last_id;
	uint64_t used;                /* bytes of ended jobs' directories */
	uint64_t reserved;            /* held by held, queued and running jobs */
	atomic_bool stopping;
	pthread_t threads[EXPORT_MAX_WORKERS];
	unsigned nthreads;            /* the first cfg.workers take jobs; the
	                               * others only help running ones */
};

/* ---- export.c ---- */
/* Takes n more bytes of quota for a running job; -EDQUOT when they do not fit. */
int export_charge(struct export_engine *e, struct export_job *j, uint64_t n);
void export_job_free(struct export_job *j);

/* ---- export_run.c ---- */
/* Writes the job's files through the worker's writer `out` (NULL: it
 * could not be made; the job fails), with the help of idle threads, and
 * the manifest (*manifest: its content, new reference); 0, -ECANCELED
 * (cancel or stop), or a negative errno with j->error naming the reason.
 * Called without the lock. */
int export_run(struct export_engine *e, struct export_job *j, struct export_file *out,
               json_t **manifest);
/* Writes cameras of a running job that nobody has claimed yet, one at a
 * time, until none is left or the job fails or stops. 0 or the error. */
int export_cameras(struct export_engine *e, struct export_job *j, struct export_file *out);
/* "2026-01-01T12:00:00.500Z", or null out of range. */
json_t *export_time(int64_t us);
/* The manifest's / job.json's request part. NULL on -ENOMEM. */
json_t *export_request_doc(const struct export_job *j, int64_t created_us,
                           const char *case_ref, const char *reason, const char *created_by);

/* ---- export_disk.c ---- */
/* The name of camera c's file in a job directory. */
#define EXPORT_FILE_NAME_MAX 32
void export_file_name(uint32_t camera, char name[EXPORT_FILE_NAME_MAX]);
/* EXPORTS/<id>[/name] into buf; -ENAMETOOLONG if it does not fit. */
int export_path(const struct export_engine *e, uint64_t id, const char *name, char *buf,
                size_t n);
/* Writes doc as dir/name through dir/name.tmp and rename; with `durable`
 * the file and the directory are fsynced. 0 or a negative errno. */
int export_write_json(const char *dir, const char *name, const json_t *doc, bool durable);
/* Removes a job directory's files (all but job.json when keep_job), and the
 * directory itself unless keep_job. 0 or the first negative errno. */
int export_remove(const char *dir, bool keep_job);
/* Bytes of the regular files in a directory. */
uint64_t export_du(const char *dir);
/* Hands out the next job id, remembered in EXPORTS/.last-id. Lock held. */
int export_next_id(struct export_engine *e, uint64_t *id);
/* Loads the jobs found in the exports area (export_open). */
int export_load(struct export_engine *e);

#endif
