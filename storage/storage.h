/*
 * storage.h - the public API of the storage engine.
 *
 * The storage engine turns frames from many cameras into large sequential
 * writes on a set of volumes (disks) and answers "frames of camera C from t0
 * to t1". It knows nothing about RTSP, HTTP or configuration files: callers
 * hand it frames (camera id, wall-clock time, key-frame flag, codec, bytes)
 * and read them back by camera and time. This header is the whole contract;
 * nothing outside storage/ includes any other storage header.
 *
 * Threads. stg_open() starts the engine's own threads (one or more writer
 * threads driving io_uring, one index thread owning the LMDB write
 * transaction). Every function here may be called from any thread, with one
 * rule: all stg_put_frame() calls for one camera come from one thread at a
 * time (the ingest loop that owns the camera). Readers never block writers.
 *
 * Errors. Functions return 0 (or a count) on success and a negative errno on
 * failure; engine-specific conditions use the STG_E* codes below, and
 * stg_strerror() turns either kind into text.
 *
 * Time. All times are wall-clock microseconds since the Unix epoch (UTC).
 *
 * The on-disk formats and the ordering rules between disk and index are in
 * storage/format.h and docs/STORAGE_FORMAT.md.
 */
#ifndef NVR_STORAGE_H
#define NVR_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Engine error codes, outside the errno range (like LMDB's MDB_* codes). */
enum {
	STG_EGONE = -30800,    /* footage was recorded but has since been reclaimed */
	STG_ECORRUPT = -30801, /* on-disk data failed its checksum or header checks */
	STG_EUUID = -30802,    /* volume UUID does not match the index */
	STG_ENOVOLUME = -30803,/* no healthy volume is left to write to */
	STG_EEXIST = -30804,   /* directory is not empty or already a volume */
	STG_EFORMAT = -30805,  /* not a volume, or an unsupported format version */
	STG_EHELD = -30806,    /* footage is under a legal hold */
};

const char *stg_strerror(int err);

/* Video codecs, stored in every chunk header. Values are on-disk. */
enum stg_codec {
	STG_CODEC_UNKNOWN = 0,
	STG_CODEC_H264 = 1,
	STG_CODEC_H265 = 2,
};

/* ---- Volumes ------------------------------------------------------------ */

struct stg_volume_info {
	uint8_t uuid[16];
	uint64_t segment_size;   /* bytes per segment file */
	uint32_t segment_count;  /* number of segment files */
	int64_t created_us;
	uint32_t format_version;
};

enum stg_format_flags {
	STG_FORMAT_FORCE = 1,   /* format a non-empty directory or existing volume */
	STG_FORMAT_ZERO = 2,    /* write zeros through every segment (see below) */
};

/* Formats directory `path` as a volume: writes the header and creates
 * `segment_count` preallocated segment files of `segment_size` bytes each
 * (segment_size is rounded up to a multiple of 1 MiB). Refuses a non-empty
 * directory or an existing volume with STG_EEXIST unless STG_FORMAT_FORCE.
 *
 * Without STG_FORMAT_ZERO the files are allocated (fallocate) but their
 * blocks are "unwritten" to the file system until the ring first passes
 * over them: each first write then also converts extents, which ext4 and
 * XFS cannot do without blocking, so io_uring runs those writes one at a
 * time in a worker thread. The first pass of the ring therefore writes
 * slower (about half speed measured here); STG_FORMAT_ZERO pays that cost
 * at format time instead (one sequential pass over the disk). */
int stg_volume_format(const char *path, uint64_t segment_size,
                      uint32_t segment_count, unsigned flags,
                      struct stg_volume_info *out);

/* Reads and checks a volume's header without opening the engine. */
int stg_volume_probe(const char *path, struct stg_volume_info *out);

/* ---- Engine ------------------------------------------------------------- */

struct stg;          /* one storage engine: an index and its volumes */
struct stg_camera;   /* a camera's write handle */

/* Called once for every write the engine issues to a volume (from a writer
 * thread, or the index thread for segment headers: it must be thread-safe).
 * Used by the benchmark to model a spinning disk; NULL for none. */
typedef void (*stg_write_trace_fn)(void *user, int volume_index,
                                   uint64_t segment, uint64_t offset,
                                   uint64_t length);

/* Called by the index thread once per segment reclaimed for reuse, with
 * the wall time the reclaim took from the writer's request being taken up
 * to its commit (choosing the segment, relocating, cutting ranges). For
 * benchmarks; NULL for none. */
typedef void (*stg_reclaim_trace_fn)(void *user, int volume_index, uint64_t micros);

/* A clock the engine reads for "now" (retention, flush timers). NULL means
 * CLOCK_REALTIME. Tests inject their own. */
typedef int64_t (*stg_clock_fn)(void *user);

struct stg_config {
	const char *index_dir;        /* LMDB environment directory (created) */
	const char *const *volumes;   /* volume directories, already formatted */
	int volume_count;

	/* Tuning; 0 means the default in brackets. */
	uint32_t write_block_bytes;   /* bytes per write, 1-4 MiB [4 MiB] */
	uint32_t blocks_per_volume;   /* write buffers = max writes in flight [4] */
	uint32_t flush_interval_ms;   /* max time a frame waits for disk [1000] */
	uint32_t writer_threads;      /* io_uring writer threads [1] */
	uint64_t queue_bytes_per_volume; /* chunk bytes queued before drops [64 MiB] */
	uint64_t dir_cache_bytes;     /* decoded segment directories kept [64 MiB] */
	uint32_t max_chunk_ms;        /* close a chunk after this long [4000] */
	uint32_t max_chunk_bytes;     /* close a chunk above this size [2 MiB] */
	uint32_t gap_us;              /* frames further apart start a new range [1 s],
	                               * or further than 2.5 of the camera's frame
	                               * intervals when that is longer (1 fps) */
	uint64_t map_size;            /* initial LMDB map size [64 MiB]; grows */
	bool no_fsync;                /* skip fdatasync (benchmarks of raw speed only) */

	uint32_t retention_interval_ms; /* enforce maximum retention, expire holds,
	                                   clear alarms this often [60000] */
	uint32_t rate_window_s;       /* ingest rates averaged over [3600] */
	uint32_t hold_max_pct;        /* holds may keep at most this share of the
	                                 capacity [50] */

	stg_write_trace_fn write_trace;
	void *write_trace_user;
	stg_reclaim_trace_fn reclaim_trace;
	void *reclaim_trace_user;
	stg_clock_fn clock;
	void *clock_user;
};

/* Opens (creating if needed) the index, attaches the volumes, recovers the
 * segments that were open at the last stop, and starts the engine's threads.
 * A volume that cannot be used (missing, bad header, UUID that does not match
 * the index) is logged, left out and reported by stg_volume_stats(); the
 * engine still opens if at least one volume is usable. */
int stg_open(const struct stg_config *cfg, struct stg **out);

/* Flushes every camera's unfinished chunk, waits for the disks and the index,
 * stops the threads and frees everything. */
void stg_close(struct stg *stg);

/* ---- Writing ------------------------------------------------------------ */

/* Returns the write handle for camera `camera_id` (created on first use).
 * Handles live until stg_close(). */
int stg_camera_get(struct stg *stg, uint32_t camera_id, struct stg_camera **out);

struct stg_frame {
	int64_t time_us;        /* wall-clock time of the frame */
	const uint8_t *data;    /* access unit, as received (Annex B or AVCC) */
	uint32_t size;
	bool key;               /* an IDR / IRAP frame: decoding can start here */
	enum stg_codec codec;
};

/* Appends one frame. Never blocks on disk: when the camera's volume cannot
 * keep up, the engine drops whole chunks and counts their frames in
 * stg_camera_stats.dropped_frames. Frames must come in time order per
 * camera; a frame older than the previous one is refused with -EINVAL.
 * Returns 0, or a negative error if the frame was not taken. */
int stg_put_frame(struct stg_camera *cam, const struct stg_frame *frame);

/* True while the camera's volume queue is above its limit, i.e. the next
 * completed chunk would be dropped. Producers that can wait (benchmarks,
 * imports) poll this instead of losing frames. */
bool stg_camera_backlogged(struct stg_camera *cam);

/* Closes the camera's unfinished chunk now (camera stopped or disconnected).
 * Unlike a chunk closed by stg_put_frame, a flushed chunk is queued even when
 * the volume queue is over its limit (it is dropped only if no volume can
 * take it), so stopping many cameras at once loses nothing. Frames put after
 * a flush start a new recorded range (stg_ranges), however soon they follow:
 * a camera that disconnected and came back shows the gap. */
int stg_camera_flush(struct stg_camera *cam);

/* Waits until every chunk closed before this call is on disk and in the
 * index (or dropped). A camera's unfinished chunk (frames since its last key
 * frame) is not closed by this: its producer calls stg_camera_flush() first
 * if it needs those frames on disk too. For tests, tools and shutdown. */
int stg_sync(struct stg *stg);

/* ---- Reading ------------------------------------------------------------ */

struct stg_range {
	int64_t start_us;
	int64_t end_us;        /* end of the last frame (exclusive) */
};

/* Recorded ranges of a camera that overlap [t0, t1), clipped to the window,
 * in time order; what lies between them is a gap. Fills up to `max` ranges
 * and returns how many ranges exist (which may be more than `max`). */
int stg_ranges(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
               struct stg_range *out, int max);

/* What the index says a camera holds in [t0, t1), without reading a frame:
 * the chunks overlapping the window, from the segment directories (cached,
 * or one read per segment). `bytes` is the frame bytes of those chunks
 * (record length less header and frame table, so within 8 bytes of padding
 * per chunk); whole chunks count, so the sum can exceed the window's share
 * by up to a chunk at each end, and a reader that snaps t0 back to a key
 * frame may read a little more than counted. Exports size their quota with
 * it. Returns 0 (all zero when there is no footage) or a negative error. */
struct stg_estimate {
	uint64_t bytes;
	uint64_t frames;
	uint64_t chunks;
};
int stg_estimate(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
                 struct stg_estimate *out);

struct stg_iter;

/* Iterates a camera's frames from the key frame at or before t0 (or the
 * first key frame after t0 if t0 falls in a gap) up to frames starting before
 * t1, across segments and volumes. */
int stg_iter_open(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
                  struct stg_iter **out);

struct stg_read_frame {
	int64_t time_us;
	const uint8_t *data;    /* valid until the next stg_iter_next/close */
	uint32_t size;
	bool key;
	enum stg_codec codec;
	bool discontinuity;     /* first frame after a gap in the recording */
};

/* Returns 1 and fills `f` with the next frame, 0 at the end, or a negative
 * error. STG_EGONE means the footage was reclaimed while iterating: no bytes
 * of overwritten data are ever returned. */
int stg_iter_next(struct stg_iter *it, struct stg_read_frame *f);
void stg_iter_close(struct stg_iter *it);

/* A key frame and the GOP it starts, as listed by stg_key_frames(). */
struct stg_key_frame {
	int64_t time_us;       /* the key frame's time */
	int64_t end_us;        /* end of its GOP: of the last frame before the
	                        * next key frame, or before a gap (exclusive) */
	bool range_start;      /* it begins a recorded range: what precedes it
	                        * (if anything) is a gap */
};

/* The key frames of a camera whose times lie in [t0, t1), in time order,
 * from the segment directories alone: no frame is read (a directory that
 * is not cached costs one read per segment). This works because a chunk
 * closes at every key frame, so key frames are where chunks flagged as
 * starting with one begin. A GOP listed is complete: its end_us may lie
 * past t1. Fills up to `max` and returns how many it filled; when that is
 * `max`, ask again from the last time + 1 for more. HTTP playback plans
 * HLS segments with this. */
int stg_key_frames(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
                   struct stg_key_frame *out, int max);

/* ---- Statistics --------------------------------------------------------- */

struct stg_camera_stats {
	uint64_t frames_written;   /* frames on disk and indexed */
	uint64_t bytes_written;
	uint64_t dropped_frames;   /* frames lost to back-pressure or volume failure */
	int volume_index;          /* volume currently receiving this camera, -1 none */
};
int stg_camera_stats(struct stg *stg, uint32_t camera_id,
                     struct stg_camera_stats *out);

enum stg_volume_state {
	STG_VOL_ACTIVE = 0,
	STG_VOL_FAILED = 1,       /* I/O error: out of service until restart */
	STG_VOL_REFUSED = 2,      /* not attached at start (see last_error) */
};

struct stg_volume_stats {
	char path[256];
	enum stg_volume_state state;
	char last_error[160];
	uint64_t bytes_written;
	uint64_t write_errors;
	uint32_t segments_total;
	uint32_t segments_free;
	uint64_t reclaims;
	int64_t oldest_us;        /* oldest footage still on the volume, 0 none */
};
/* Fills up to `max` entries, one per configured volume, in config order. */
int stg_volume_stats(struct stg *stg, struct stg_volume_stats *out, int max);

struct stg_index_stats {
	uint64_t bytes;            /* pages in use x page size */
	uint64_t map_size;
	uint64_t ranges;           /* entries in the camera/time table */
	uint64_t segments;         /* live segment records */
	uint64_t range_bytes;      /* bytes of pages holding ranges */
	uint64_t segment_bytes;    /* bytes of pages holding segment records */
};
int stg_index_stats(struct stg *stg, struct stg_index_stats *out);

/* ---- Retention ---------------------------------------------------------------
 *
 * Every decision here reads the engine's clock (stg_config.clock), so tests
 * run days in seconds. The rules (storage/retention.c has the design):
 *  - Maximum: footage older than its class's max_us is taken out of the
 *    index and its chunk bytes are overwritten with zeros, within
 *    retention_interval_ms (plus one chunk, at most max_chunk_ms).
 *  - Pressure: recording never waits for retention. When a volume needs a
 *    segment, the oldest segment is reused; before that, the chunks in it
 *    that must outlive it are copied forward (relocated): held chunks
 *    always, and chunks still inside their class's promised minimum while
 *    the copies stay under half a segment (the youngest first). What is not
 *    copied is reclaimed, so classes above their promise lose footage first
 *    and, beyond that, the oldest footage goes first. A class that loses
 *    footage younger than its promise is in alarm until it again holds
 *    min_us of footage (logged when raised and cleared, polled with
 *    stg_retention_stats()).
 *  - Shares: a class with share_pct keeps at most that share of the
 *    capacity (capacity_bytes less what holds keep) in unheld footage;
 *    every retention_interval_ms the oldest footage of a class above it is
 *    removed (zeroed, as for the maximum) until it is at or under it. The
 *    share wins over the class's promise (the class is then in alarm). The
 *    space removed is free only when the ring reuses its segments, so
 *    other classes keep what the ring gives them, no more.
 *  - Holds: held footage is never reclaimed, expired, removed for a share
 *    or purged, and counts toward the holds, not the share; a segment
 *    whose held chunks are not copied yet is skipped by the ring.
 * Classes, camera classes and holds live in the index and survive restarts
 * (not a rebuild from the disks alone: stg_fsck copies them from the old
 * index when it can read it, and says so when it cannot).
 *
 * These calls run on the engine's index thread and wait for it. */

#define STG_CLASS_NAME_MAX 32
#define STG_DEFAULT_CLASS "default"  /* the class of cameras given none */

struct stg_class {
	char name[STG_CLASS_NAME_MAX];  /* 1-31 of [a-z0-9_-] */
	int64_t min_us;       /* promised minimum retention; 0 promises nothing */
	int64_t max_us;       /* maximum retention; 0 keeps footage until reclaimed */
	uint32_t share_pct;   /* percent of the capacity (less what holds keep)
	                         the class's unheld footage may fill: its oldest
	                         beyond it is removed, even inside min_us; 0 none */
};

/* Creates or changes a class (min_us <= max_us unless max_us is 0,
 * share_pct <= 100). A camera without a class belongs to
 * STG_DEFAULT_CLASS, which behaves as {0, 0, 0} until it is defined.
 * Shares that add up to more than 100 are accepted with a warning (each
 * is held on its own; callers that can refuse, like the configuration
 * file, should). Returns 0, -EINVAL or -ENOSPC (too many classes). */
int stg_class_set(struct stg *stg, const struct stg_class *c);

/* Fills up to `max` classes in name order; returns how many exist. */
int stg_class_list(struct stg *stg, struct stg_class *out, int max);

/* Puts a camera in a class (NULL or "" for the default). -ENOENT if the
 * class does not exist (the default always does). */
int stg_camera_set_class(struct stg *stg, uint32_t camera_id, const char *name);

#define STG_HOLD_MAX_CAMERAS 64

struct stg_hold {
	uint64_t id;               /* given by stg_hold_create */
	uint32_t cameras[STG_HOLD_MAX_CAMERAS];
	uint32_t camera_count;
	int64_t start_us, end_us;  /* held window; may reach into the future */
	int64_t created_us;
	int64_t expires_us;        /* 0: until released */
	char case_ref[64];
	char reason[160];
	uint64_t bytes;            /* footage held now (chunk bytes on disk) */
};

/* A stretch of a camera's footage that is not on disk. */
struct stg_missing {
	uint32_t camera_id;
	int64_t start_us, end_us;
};

/* Creates a hold on `h` (id, created_us and bytes are filled in). A hold
 * covers footage already recorded: h->end_us is cut to now (and a window
 * wholly in the future is -EINVAL). The parts of the window up to now for which a camera has no footage (already
 * reclaimed or expired, purged, or never recorded) are listed in
 * `missing` (up to `max_missing`; *nmissing says how many there are): the
 * hold is created for what exists. -ENOSPC when holds would keep more
 * than hold_max_pct of the capacity, -EINVAL for a bad request. */
int stg_hold_create(struct stg *stg, struct stg_hold *h, struct stg_missing *missing,
                    int max_missing, int *nmissing);

/* Fills up to `max` holds in id order; returns how many exist. */
int stg_hold_list(struct stg *stg, struct stg_hold *out, int max);

/* Releases a hold: its footage follows the rules of its classes again.
 * -ENOENT if there is no such hold. */
int stg_hold_release(struct stg *stg, uint64_t id);

struct stg_purge_report {
	uint64_t chunks, bytes, frames;  /* taken out and overwritten */
	int64_t start_us, end_us;        /* what was removed (whole chunks, so
	                                    it may reach past the window) */
};

/* Removes a camera's footage that overlaps [t0, t1): the chunks are
 * overwritten with zeros on disk (synced) and then taken out of the index.
 * Refused with STG_EHELD, changing nothing, when a hold covers any of it. */
int stg_purge(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
              struct stg_purge_report *out);

/* Runs the periodic retention work now (maximum retention, hold expiry,
 * alarms) instead of at the next retention_interval_ms. */
int stg_retention_enforce(struct stg *stg);

struct stg_class_stats {
	struct stg_class cls;
	uint32_t cameras;          /* cameras of the class with footage */
	int64_t retained_us;       /* now minus the class's oldest footage */
	int64_t forecast_us;       /* retention current ingest rates allow once
	                              the disks are full; -1 none is ingested */
	double bytes_per_s;        /* ingest rate */
	bool alarm;                /* below its promise */
	int64_t alarm_since_us;    /* 0 unless in alarm */
	uint64_t bytes;            /* footage of the class on disk (chunk bytes),
	                              held footage excluded, as of the last
	                              retention sweep while some class has a
	                              share; 0 otherwise, and after a start
	                              until the footage is counted */
	uint64_t share_bytes;      /* what its share allowed at that sweep
	                              (share_pct of capacity less holds); 0 none */
};

struct stg_camera_retention {
	uint32_t camera_id;
	char class_name[STG_CLASS_NAME_MAX];
	int64_t oldest_us;         /* oldest footage on disk, 0 none */
	int64_t retained_us;       /* now minus oldest_us */
	int64_t forecast_us;       /* as for its class */
	double bytes_per_s;
};

struct stg_retention_stats {
	uint64_t capacity_bytes;   /* footage the volumes hold when full */
	uint64_t held_bytes;       /* of which holds keep */
	uint32_t holds;
	uint32_t alarms;           /* classes below their promise */
	uint64_t relocated_chunks, relocated_bytes;
	uint64_t expired_chunks, purged_chunks;
	uint64_t share_chunks;     /* removed to keep classes within their share */
};

/* Retention figures now: totals in *out, one entry per class in `classes`
 * (up to max_classes; *nclasses says how many exist). */
int stg_retention_stats(struct stg *stg, struct stg_retention_stats *out,
                        struct stg_class_stats *classes, int max_classes, int *nclasses);

/* Per camera with footage or a class, in id order: fills up to `max` and
 * returns how many there are. */
int stg_retention_cameras(struct stg *stg, struct stg_camera_retention *out, int max);

/* ---- Checking and rebuilding the index (offline) ------------------------ */

struct stg_fsck_report {
	uint32_t volumes;          /* volumes scanned */
	uint32_t volumes_refused;  /* volumes that could not be used */
	uint64_t segments;         /* live segment generations found on the disks */
	uint64_t chunks;           /* chunks that passed every check */
	uint64_t bad_records;      /* records of a live generation failing checks */
	uint64_t ranges;           /* ranges the disks imply */
	uint64_t differences;      /* index entries that differ from the disks */
};

typedef void (*stg_report_fn)(void *user, const char *line);

/* Scans every segment of every volume in `cfg` (index_dir, volumes, gap_us)
 * and builds the index the disks imply in `<index_dir>.rebuild`, checking
 * each chunk's checksum. It then compares that index with the one in
 * index_dir and reports each difference through `report`. With `rebuild`
 * the rebuilt index replaces the old one (kept as `<index_dir>.old`),
 * unless a volume is refused or a volume the old index knows is not given
 * (-EINVAL: rebuilding from part of the disks would let the engine reuse
 * the others' segments). The engine must not be running on these volumes.
 * Returns 0 or an error. */
int stg_fsck(const struct stg_config *cfg, bool rebuild, stg_report_fn report,
             void *user, struct stg_fsck_report *out);

/* ---- Backup (online) ------------------------------------------------------ */

/* Writes a consistent, compacted copy of the index in `index_dir` to `fd`
 * (a file or a pipe): an LMDB environment's data.mdb, without free pages,
 * as of one read transaction. Works while an engine records on the index
 * (from this process or another: the index is opened a second time,
 * read-only); its commits go on meanwhile and are not in the copy. Put
 * the copy back as `index_dir`/data.mdb of a stopped engine, then run
 * stg_fsck with rebuild to add what the disks recorded since: the copy is
 * then the old index whose classes, camera classes and holds are kept.
 * Returns 0 or an error (logged with the path). */
int stg_index_backup(const char *index_dir, int fd);

/* ---- Test hooks ------------------------------------------------------------ */

/* Fault injection for tests of failing disks: makes every write to volume `volume_index` fail with -EIO once
 * `after_bytes` more bytes were written to it. */
int stg_inject_write_error(struct stg *stg, int volume_index, uint64_t after_bytes);

#ifdef __cplusplus
}
#endif
#endif
