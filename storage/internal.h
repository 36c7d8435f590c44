/*
 * internal.h - structures shared by the files of storage/ (never included
 * from outside the directory).
 *
 * Who owns what:
 *   struct stg          the engine; owns volumes, cameras, threads, the index.
 *   struct vol          one volume; its slot map is changed only by the index
 *                       thread (after a commit), its write state only by the
 *                       writer thread that owns it.
 *   struct stg_camera   one camera; its open chunk is touched only by the
 *                       camera's producer thread.
 *   struct chunk_buf    a closed chunk on its way to disk: owned by the
 *                       producer until queued, then by the writer, then freed.
 *   struct segdir       the directory of one live segment generation, shared
 *                       (refcounted) between writer, index thread and readers.
 */
#ifndef NVR_STORAGE_INTERNAL_H
#define NVR_STORAGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <lmdb.h>
#include "storage.h"
#include "format.h"

#define STG_MAX_VOLUMES 256
#define STG_RESERVE 2            /* prepared segments kept per volume */

/* ---- logging (log.c) ---- */
void stg_log(const char *level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define LOG_ERR(...) stg_log("error", __VA_ARGS__)
#define LOG_WARN(...) stg_log("warn", __VA_ARGS__)
#define LOG_INFO(...) stg_log("info", __VA_ARGS__)

int64_t stg_now(const struct stg *stg);
int64_t stg_realtime_us(void);

/* ---- records (record.c) ---- */
uint64_t rec_checksum(const struct rec_header *h, const void *payload);
uint64_t rec_payload_hash(const void *payload, uint32_t len);
uint64_t rec_header_hash(const struct rec_header *h, uint64_t payload_hash);
/* Checks a record header read at some offset of a segment of `seg_size`
 * bytes; returns 0 if it is a plausible record of generation `gen`. */
int rec_header_check(const struct rec_header *h, uint32_t gen,
                     uint64_t offset, uint64_t seg_size);
/* Full check of a record whose header and payload are in `buf`. */
int rec_verify(const void *buf, size_t len, uint32_t gen);
/* Checks a chunk record (header, checksum, camera, frame table) and points
 * *table and *frames into buf. */
int chunk_parse(const void *buf, size_t len, uint32_t gen, uint32_t camera_id,
                struct rec_header *h, const struct frame_entry **table,
                const uint8_t **frames);
/* Bytes a directory record of n entries can take at most, padding included. */
uint64_t dir_record_bound(uint32_t n);
/* Builds a directory record (header + compressed, sorted entries) in a new
 * malloc'd buffer of *len bytes (aligned to 8). */
int dir_record_build(struct dir_entry *e, uint32_t n, uint32_t gen,
                     void **out, uint32_t *len);
/* Decodes a directory record into a malloc'd, sorted entry array. */
int dir_record_decode(const void *buf, size_t len, uint32_t gen,
                      struct dir_entry **out, uint32_t *n);
int dir_entry_cmp(const void *a, const void *b);

/* ---- volumes (volume.c) ---- */
struct vol {
	int index;                 /* position in the configuration */
	uint16_t id;               /* id in the index */
	char path[232];
	struct vol_header hdr;
	_Atomic int state;         /* enum stg_volume_state */
	char last_error[160];
	int *seg_fd;               /* buffered read fds, one per slot */
	uint32_t *slot_gen;        /* live generation in each slot, 0 = free */
	pthread_mutex_t lock;      /* slot_gen, free count, queue */
	uint32_t free_slots;

	/* chunk queue from producers to the writer */
	struct chunk_buf *q_head, *q_tail;
	_Atomic uint64_t q_bytes;  /* changed under lock, read without it */
	_Atomic uint64_t q_pushes; /* chunks ever queued: the writer's "anything new?" */
	uint64_t q_limit;

	/* prepared segments for the writer (index thread -> writer), oldest
	 * first; STG_RESERVE are kept so that a slow index commit under heavy
	 * writing never leaves the writer without a segment */
	uint32_t ready_gen[STG_RESERVE], ready_slot[STG_RESERVE];
	int nready;
	uint32_t slots_requested;  /* prepared segments asked for, not yet ready */

	struct writer *writer;
	struct wvol *w;            /* writer-private state */

	_Atomic uint64_t bytes_written;
	_Atomic uint64_t write_errors;
	_Atomic uint64_t reclaims;
	_Atomic uint64_t inject_after;   /* fault injection: fail after N bytes */
	_Atomic int inject_armed;
	_Atomic uint32_t assigned_cameras;
};

int vol_attach(struct stg *stg, struct vol *v, const char *path);
void vol_detach(struct vol *v);
void vol_fail(struct stg *stg, struct vol *v, const char *why, int err);
int vol_open_segment_direct(struct vol *v, uint32_t slot);
int vol_open_segment_buffered(struct vol *v, uint32_t slot);
int vol_pick_for_camera(struct stg *stg, uint32_t camera_id);
void seg_header_block(const struct vol *v, uint32_t slot, uint32_t gen,
                      int64_t now_us, uint8_t block[STG_BLOCK]);

/* ---- chunks in flight ---- */
struct chunk_buf {
	struct chunk_buf *next;
	struct stg_camera *cam;
	uint32_t len;              /* record length (aligned to 8) */
	uint32_t cap;
	bool carved;               /* from a bufpool slab: never freed */
	uint64_t payload_hash;     /* set by the producer; the writer adds the
	                              generation and finishes the checksum */
	uint8_t data[];            /* rec_header, frame bytes, frame table */
};

/* bufpool.c: chunk buffers of power-of-two capacity, recycled */
struct chunk_buf *bufpool_get(uint32_t want);
void bufpool_put(struct chunk_buf *b);

struct stg_camera {
	struct stg *stg;
	uint32_t id;
	int vol;                   /* volume receiving this camera, -1 none */
	/* open chunk (producer thread only) */
	struct chunk_buf *cur;
	uint32_t cur_len, cur_cap;  /* fill and capacity of cur's data */
	struct chunk_buf *spare;    /* first buffer, reserved at registration */
	uint32_t nframes, table_cap;
	struct frame_entry *table;
	int64_t first_us, last_us, prev_dt;
	int64_t frame_dt8;         /* 8 x the camera's frame interval, smoothed;
	                              0 before its second frame (cam_gap_us) */
	enum stg_codec codec;
	bool key_start;
	bool range_break;         /* next closed chunk gets REC_RANGE_START */
	int64_t last_time;
	/* counters */
	_Atomic uint64_t frames_written, bytes_written, dropped_frames;
	uint32_t size_hint;
};

/* ---- segment directories (segdir.c) ---- */
struct segdir {
	uint16_t vol;
	uint32_t gen;
	pthread_mutex_t lock;
	struct dir_entry *e;
	uint32_t n, cap;
	uint32_t visible;          /* entries readers may see (on disk, synced) */
	bool sorted;               /* sealed: sorted by (camera, start) */
	bool pinned;               /* open segment: never evicted */
	int refs;
	size_t bytes;
	struct segdir *lru_prev, *lru_next, *hnext;
};

struct dircache;
int dc_create(uint64_t max_bytes, struct dircache **out);
void dc_destroy(struct dircache *dc);
/* Creates the pinned, empty directory of a newly opened generation. */
struct segdir *dc_open_gen(struct dircache *dc, uint16_t vol, uint32_t gen);
/* Gets the directory of a live generation, reading it from disk if needed. */
int dc_get(struct stg *stg, uint16_t vol, uint32_t gen, struct segdir **out);
void dc_put(struct dircache *dc, struct segdir *d);
void dc_seal(struct dircache *dc, struct segdir *d);
void dc_drop(struct dircache *dc, uint16_t vol, uint32_t gen);
void segdir_append(struct segdir *d, const struct dir_entry *e);
/* A copy of the visible entries (to work on without the directory's lock);
 * the caller frees *out. 0 or -ENOMEM. */
int segdir_copy(struct segdir *d, struct dir_entry **out, uint32_t *n);

/* Lookups return 1 and fill *out when found, 0 when not. They see only
 * chunks of one kind: `kind` is REC_RELOCATED for relocated copies, 0 for
 * everything else (a range is made of one kind, see format.h). */
int segdir_last_before(struct segdir *d, uint32_t cam, int64_t t, uint16_t kind,
                       struct dir_entry *out);
int segdir_first_after(struct segdir *d, uint32_t cam, int64_t t, uint16_t kind,
                       struct dir_entry *out);
/* Removes the entries matching `rm` (camera and start; `rm` sorted by
 * dir_entry_cmp) from a directory in memory: chunks purged or expired.
 * Returns how many were removed. */
uint32_t segdir_remove(struct segdir *d, const struct dir_entry *rm, uint32_t n);
/* Adds the camera's chunks overlapping [t0, t1) to *acc (stg_estimate);
 * relocated copies count too, so a held chunk may count twice (an
 * estimate errs on the large side). */
void segdir_sum(struct segdir *d, uint32_t cam, int64_t t0, int64_t t1,
                struct stg_estimate *acc);

/* ---- index (index.c) ---- */
struct index;
int idx_open(const char *dir, uint64_t map_size, struct index **out);
void idx_close(struct index *ix);
MDB_env *idx_env(struct index *ix);
/* Read transactions; safe from any thread (the env uses MDB_NOTLS). */
int idx_read_begin(struct index *ix, MDB_txn **txn);
void idx_read_end(struct index *ix, MDB_txn *txn);
int idx_write_begin(struct index *ix, MDB_txn **txn);
/* Commits; on MDB_MAP_FULL the caller aborts, grows and redoes. */
int idx_write_commit(struct index *ix, MDB_txn *txn);
int idx_grow(struct index *ix);

MDB_dbi idx_db_volumes(struct index *ix);
MDB_dbi idx_db_segments(struct index *ix);
MDB_dbi idx_db_ranges(struct index *ix);
MDB_dbi idx_db_classes(struct index *ix);
MDB_dbi idx_db_camclass(struct index *ix);
MDB_dbi idx_db_holds(struct index *ix);

/* Does a segment record carry times (a chunk that is not a relocated copy)? */
static inline bool seg_has_times(const struct idx_segment *s)
{
	return s->t_min != 0 || s->t_max != 0;
}

/* A chunk and the generation it lies in. */
struct loc_entry {
	struct dir_entry e;
	uint32_t gen;
};
int loc_entry_cmp(const void *a, const void *b);   /* camera, start, kind, gen */

void seg_key_make(struct seg_key *k, uint16_t vol, uint32_t gen);
void seg_key_parse(const struct seg_key *k, uint16_t *vol, uint32_t *gen);
void range_key_make(struct range_key *k, uint32_t cam, int64_t start);
void range_key_parse(const struct range_key *k, uint32_t *cam, int64_t *start);

int idx_get_segment(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    struct idx_segment *out);
/* idx_get_segment in a read transaction of its own (readers outside any
 * transaction): 0, MDB_NOTFOUND or an error. */
int idx_lookup_segment(struct index *ix, uint16_t vol, uint32_t gen, struct idx_segment *out);
int idx_put_segment(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    const struct idx_segment *s);
/* Calls fn for each live segment of a volume, oldest generation first,
 * until fn returns non-zero (which is then returned; 1 means "found"). */
typedef int (*idx_segment_fn)(void *user, uint32_t gen, const struct idx_segment *s);
/* Calls fn for every record of `db` in key order until fn returns non-zero
 * (which is then returned); 0 at the end, or an LMDB error. */
typedef int (*idx_record_fn)(void *user, const MDB_val *k, const MDB_val *d);
int idx_foreach(MDB_txn *t, MDB_dbi db, idx_record_fn fn, void *user);
int idx_foreach_segment(MDB_txn *t, struct index *ix, uint16_t vol,
                        idx_segment_fn fn, void *user);
/* The first live segment of a volume at or after generation `from`: 0
 * with *gen and *out, or MDB_NOTFOUND. */
int idx_next_segment(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t from,
                     uint32_t *gen, struct idx_segment *out);
/* Merges one chunk into the camera's ranges (idempotent). *indexed (if
 * not NULL) says whether the index holds the chunk now and did not before:
 * a new range or one it extends; not a chunk already inside a range
 * (merged again) nor a copy whose time is indexed already. */
int idx_merge_chunk(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    uint32_t gap_us, const struct dir_entry *e, bool *indexed);
/* Adds a chunk's extent to its segment record's time range and count. */
int idx_segment_add_chunk(MDB_txn *t, struct index *ix, uint16_t vol,
                          uint32_t gen, const struct dir_entry *e);
/* The range of `cam` that holds time `at`: 0, or MDB_NOTFOUND. */
int idx_range_containing(MDB_txn *t, struct index *ix, uint32_t cam, int64_t at,
                         int64_t *rstart, struct idx_range *r);
/* Does range (rstart, r) hold chunk e of generation gen on volume vol
 * (same volume and kind, gen among its generations, start inside it)? */
bool idx_range_holds(int64_t rstart, const struct idx_range *r, uint16_t vol, uint32_t gen,
                     const struct dir_entry *e);
/* Is chunk e of generation gen on volume vol indexed? Fills the range
 * that holds its time (*rstart, *r) when there is one. */
bool idx_chunk_indexed(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                       const struct dir_entry *e, int64_t *rstart, struct idx_range *r);
/* Takes the chunks first..last (a run in time of one camera and one kind,
 * inside range (rstart, r)) out of the range: what is left before them
 * keeps the range's key, what is left after becomes a range starting at its
 * first chunk. Invariant kept: every range starts and ends on a chunk of
 * its own, in live generations that follow its time. */
int idx_cut(MDB_txn *t, struct stg *stg, uint32_t cam, int64_t rstart,
            const struct idx_range *r, const struct dir_entry *first, uint32_t first_gen,
            const struct dir_entry *last, uint32_t last_gen);
/* Cuts every chunk of `c` (sorted by loc_entry_cmp, all on volume `vol`)
 * out of the ranges that hold it; chunks no range holds are skipped.
 * Adds the chunks cut to *cut if not NULL, and tells usage.c. */
int idx_cut_chunks(MDB_txn *t, struct stg *stg, uint16_t vol, const struct loc_entry *c,
                   size_t n, uint64_t *cut);
/* Removes everything that points into generation `gen` of volume `vol`:
 * every range is cut around the chunks it has there (any generation, not
 * only the oldest: the retention engine skips held segments). */
int idx_reclaim_gen(MDB_txn *t, struct stg *stg, uint16_t vol, uint32_t gen);

/* ---- recovery and rebuild (recover.c) ---- */
struct scan_result {
	struct dir_entry *e;
	uint32_t n, cap;
	uint64_t end;              /* offset just past the last valid record */
	bool sealed;               /* a valid directory record was found */
	uint64_t dir_off;
	uint32_t dir_len;
	uint64_t bad_records;      /* records that failed their checks */
};
int seg_read_header(struct vol *v, uint32_t slot, struct seg_header *out);
int seg_scan(struct vol *v, uint32_t slot, uint32_t gen, struct scan_result *r);
void scan_result_free(struct scan_result *r);
int recover_open_segments(struct stg *stg);

/* ---- writer (writer.c) ---- */
struct writer;
int writer_start(struct stg *stg, struct writer **out, struct vol **vols, int n);
void writer_stop(struct writer *w);
void writer_wake(struct writer *w);
/* A chunk was queued and `queued_bytes` now wait on its volume: wakes the
 * writer if it is asleep (or about to sleep) and a whole write block is
 * waiting; a busy writer finds the chunk on its next pass, a sleeping one
 * at its next tick. */
void writer_nudge(struct writer *w, uint64_t queued_bytes);
/* Blocks until every chunk queued before the call is synced and reported. */
int writer_drain(struct writer *w);

/* ---- index thread (indexer.c) ---- */
enum imsg_type {
	IMSG_CHUNKS = 1,           /* chunks synced to disk */
	IMSG_SEAL,                 /* segment sealed, directory on disk */
	IMSG_NEED_SEGMENT,         /* writer wants a prepared segment */
	IMSG_BARRIER,              /* signal when everything before is committed */
	IMSG_CALL,                 /* run a function in a transaction of its own */
};

/* A function run on the index thread in a write transaction of its own
 * (indexer_call): `fn` returns 0 to commit or an error to abort; `after`,
 * if set, runs once the commit succeeded (in-memory effects). */
typedef int (*idx_call_fn)(MDB_txn *t, struct stg *stg, void *arg);
typedef void (*idx_after_fn)(struct stg *stg, void *arg);
struct imsg {
	struct imsg *next;
	enum imsg_type type;
	struct vol *vol;
	uint32_t gen;
	struct segdir *dir;        /* IMSG_SEAL */
	uint64_t dir_off;
	uint32_t dir_len;
	uint32_t n;                /* IMSG_CHUNKS: entries; IMSG_NEED_SEGMENT: segments */
	struct dir_entry *e;
	sem_t *done;               /* IMSG_BARRIER, IMSG_CALL */
	bool retry;                /* IMSG_NEED_SEGMENT: nothing to reclaim yet */
	idx_call_fn call;          /* IMSG_CALL */
	idx_after_fn after;
	void *arg;
	int *result;
};
int indexer_start(struct stg *stg);
/* Runs fn (then after) on the index thread and waits; returns fn's result
 * or the commit's error. */
int indexer_call(struct stg *stg, idx_call_fn fn, idx_after_fn after, void *arg);
void indexer_stop(struct stg *stg);
void indexer_send(struct stg *stg, struct imsg *m);

/* ---- retention (retention.c, relocate.c) ---- */
struct retention;
int ret_open(struct stg *stg);
void ret_close(struct stg *stg);
/* Picks the segment to reuse on volume v, relocating what must outlive it,
 * and reclaims it in transaction t: 0 with *gen and *s (its record before
 * the reclaim), or MDB_NOTFOUND when none can be reused yet. */
int ret_reclaim_one(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t *gen,
                    struct idx_segment *s);
/* After the commit of the reclaim of (v, gen). */
void ret_reclaim_committed(struct stg *stg, struct vol *v, uint32_t gen);
/* A relocated copy reached the disk and the index thread: false if it must
 * be dropped (its footage was purged meanwhile); its bytes are then zeroed. */
bool ret_copy_landed(struct stg *stg, struct vol *v, uint32_t gen, const struct dir_entry *e);
/* A chunk was indexed: counts it in its camera's ingest rate. */
void ret_note_chunk(struct stg *stg, const struct dir_entry *e);
/* The periodic work (maximum retention, hold expiry, alarms), then in a
 * transaction of its own the shares (so that a failure of one leaves the
 * other done). Both take indexer.c's 512 zeroed bytes as arg. */
int ret_sweep(MDB_txn *t, struct stg *stg, void *arg);
void ret_sweep_after(struct stg *stg, void *arg);
int ret_shares(MDB_txn *t, struct stg *stg, void *arg);
void ret_shares_after(struct stg *stg, void *arg);

/* Shared between retention.c and relocate.c (index thread). */
struct ret_class;
const struct ret_class *ret_class_of(struct retention *r, uint32_t cam);
/* The promise relocation keeps (0 while the class is held to its share). */
int64_t ret_class_min(const struct ret_class *c);
bool ret_held(struct retention *r, uint32_t cam, int64_t start, int64_t end, int64_t now);
bool ret_relocation_needed(struct retention *r);
void ret_short(struct stg *stg, MDB_txn *t, uint32_t cam, const struct dir_entry *e, int64_t now);
/* Overwrites the records of `c` (n chunks of volume v) with zeros and syncs. */
int ret_zero_chunks(struct stg *stg, struct vol *v, const struct loc_entry *c, size_t n);
struct vol *vol_by_index_id(struct stg *stg, uint16_t id);

/* relocate.c: copies of chunks that must outlive their segment */
int evac_init(struct stg *stg);
int evac_pick(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t *gen, struct idx_segment *s);
void evac_committed(struct stg *stg, struct vol *v, uint32_t gen);
bool evac_landed(struct stg *stg, struct vol *v, uint32_t gen, const struct dir_entry *e);
void evac_purged(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1);
void evac_free(struct stg *stg);
void evac_counts(struct stg *stg, uint64_t *chunks, uint64_t *bytes);

/* usage.c: bytes of indexed footage per camera (index thread only) */
int use_init(struct stg *stg);
void use_free(struct stg *stg);
/* Starts the census of what is on the disks (indexer_main, at start). */
void use_start(struct stg *stg);
/* Spends at most a slice of time on the census (cheap when there is
 * none): returns the milliseconds to wait before the next step (0: go on
 * at once), or -1 when there is nothing to count. */
int use_census_step(struct stg *stg);
/* Has the census finished (the counts are complete)? */
bool use_ready(struct stg *stg);
/* A chunk entered or left the index in the current write transaction. */
void use_chunk_in(struct stg *stg, uint16_t vol, uint32_t gen, const struct dir_entry *e);
void use_chunk_out(struct stg *stg, uint16_t vol, uint32_t gen, const struct dir_entry *e);
/* The counts can no longer be trusted: a new census after the commit. */
void use_recount(struct stg *stg);
/* After the current write transaction committed, or aborted. */
void use_commit(struct stg *stg);
void use_abort(struct stg *stg);
/* Calls fn for each camera's bytes, then for each change of the current
 * transaction (a signed delta), so that the sums include it. */
typedef void (*use_fn)(void *user, uint32_t cam, int64_t bytes);
void use_each(struct stg *stg, use_fn fn, void *user);

/* ---- the engine ---- */
struct stg {
	struct stg_config cfg;
	struct index *ix;
	struct dircache *dc;
	struct vol vols[STG_MAX_VOLUMES];
	int nvols;
	struct writer **writers;
	int nwriters;

	pthread_mutex_t cam_lock;
	struct stg_camera **cams;   /* open-addressing table by id */
	uint32_t cam_cap, cam_count;

	/* index thread */
	pthread_t ix_thread;
	pthread_mutex_t ix_lock;
	pthread_cond_t ix_cond;
	struct imsg *ix_head, *ix_tail;
	bool ix_stop;
	bool ix_running;

	struct retention *ret;
	struct evac_state *evac;    /* relocate.c, index thread only */
	struct usage *use;          /* usage.c, index thread only */
};

#endif
