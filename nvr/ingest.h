/*
 * ingest.h - records cameras into the storage engine.
 *
 * RTSP cameras (rtsp:// URLs) are held by a few event-loop threads, each
 * driving its own io_uring and owning a shard of the cameras (camera id
 * modulo the loop count): connect, OPTIONS, DESCRIBE, SETUP, PLAY,
 * keep-alive, TEARDOWN, RTP over TCP interleaved or UDP, depacketized
 * (depack.h) into frames that go to stg_put_frame() from the loop thread.
 * Every other URL (file, http, rtmp, ...) goes to a bounded pool of
 * libavformat threads (avsource.h).
 *
 * Time: a frame's wall-clock time comes from the RTCP sender reports of its
 * stream when they have arrived (RTP timestamp -> camera NTP time, checked
 * against arrival and replaced by arrival when they disagree by more than
 * ingest_config.max_clock_skew_ms), else from its arrival time; never from
 * the camera's clock alone.
 *
 * Failures: any error (connect, protocol, auth, timeout, EOF) closes the
 * session, records last_error and retries after an exponential backoff with
 * full jitter (between backoff_min_ms and backoff_max_ms), so that thousands
 * of cameras coming back after a network cut spread their reconnects.
 *
 * Thread-safety: ingest_add/remove/status may be called from any thread;
 * they talk to the owning loop through its queue.
 */
#ifndef NVR_INGEST_H
#define NVR_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "registry.h"
#include "storage.h"

struct ingest_config {
	struct stg *stg;              /* where frames go (required) */
	uint32_t loops;               /* RTSP event-loop threads [1] */
	uint32_t av_threads;          /* libavformat worker threads [4] */
	uint16_t udp_port_min;        /* RTP/RTCP over UDP: local port range */
	uint16_t udp_port_max;        /* [50000 .. 59999] */
	uint32_t backoff_min_ms;      /* first retry delay [1000] */
	uint32_t backoff_max_ms;      /* retry delay cap [60000] */
	uint32_t timeout_ms;          /* connect/reply/no-data timeout [10000] */
	uint32_t max_clock_skew_ms;   /* RTCP time vs arrival [5000] */
	uint32_t recv_buffer_max;     /* per-session receive buffer cap [256 KiB] */
	int32_t recv_batch_ms;        /* a streaming session that emptied the socket
	                               * reads again after this long, so that each
	                               * receive takes many packets [100]; < 0: at once */
	uint32_t max_connecting;      /* sessions per loop connecting or negotiating
	                               * at once; the others wait in order [256] */
	bool default_udp;             /* RTP over UDP for records naming no transport [false] */
};

enum ingest_state {
	INGEST_IDLE = 0,          /* added, waiting for its turn to connect */
	INGEST_CONNECTING,
	INGEST_NEGOTIATING,       /* OPTIONS/DESCRIBE/SETUP/PLAY in progress */
	INGEST_STREAMING,
	INGEST_BACKOFF,           /* failed; waiting to retry */
	INGEST_WAITING_WORKER,    /* libavformat source waiting for a free thread */
};
const char *ingest_state_name(enum ingest_state s);

struct ingest_camera_status {
	uint32_t id;
	enum ingest_state state;
	char last_error[160];     /* never holds credentials */
	double bitrate_kbps;      /* over the last few seconds */
	double fps;
	uint64_t frames;          /* frames handed to storage */
	uint64_t bytes;
	uint64_t frames_lost;     /* discarded by the depacketizer (gaps, corruption) */
	uint64_t frames_dropped;  /* refused or dropped by storage (back-pressure) */
	uint64_t reconnects;
	int64_t streaming_since_us; /* wall clock; 0 when not streaming (uptime) */
	bool rtcp_clock;          /* frame times come from RTCP sender reports */
	uint32_t failures_24h;    /* failures within INGEST_REPEAT_WINDOW_US (at
	                           * most INGEST_FAILURE_RING are remembered) */
	int64_t last_failure_us;  /* wall clock of the last failure; 0 never */
};

/*
 * Repeat failures: the maintenance crew's list. Every failure of a camera
 * (an RTSP session that failed, a libavformat session that ended with an
 * error; not a removal, not the end of a file that loops) is remembered
 * with its wall-clock time in a small ring per camera. A camera with
 * INGEST_REPEAT_FAILURES or more failures within INGEST_REPEAT_WINDOW_US
 * is a repeat failure. These constants are the only place to change it.
 */
#define INGEST_FAILURE_RING 16
#define INGEST_REPEAT_FAILURES 3
#define INGEST_REPEAT_WINDOW_US (24LL * 3600 * 1000000)

struct ingest_failures {
	int64_t at_us[INGEST_FAILURE_RING];   /* wall clock, oldest overwritten */
	uint32_t next;                        /* slot of the next failure */
	uint32_t count;                       /* remembered, <= INGEST_FAILURE_RING */
};

/* Remembers a failure at now_us (wall clock). */
void ingest_failures_note(struct ingest_failures *f, int64_t now_us);
/* Failures remembered at or after now_us - window_us; the last one's time
 * (0 when none) in *last_us. */
uint32_t ingest_failures_within(const struct ingest_failures *f, int64_t now_us,
                                int64_t window_us, int64_t *last_us);
/* Whether a status counts as a repeat failure. */
bool ingest_is_repeat_failure(const struct ingest_camera_status *st);

struct ingest;

/* Fills every 0 field of `c` with its default (the brackets above) and
 * clamps the rest; ingest_start and the libavformat pool both use it. */
void ingest_config_defaults(struct ingest_config *c);

int ingest_start(const struct ingest_config *cfg, struct ingest **out);

/* Starts recording a camera (its main_url; credentials from the record).
 * -EEXIST if already added. A disabled record is refused with -EINVAL. */
int ingest_add(struct ingest *in, const struct camera_record *c);

/* ingest_add of n cameras; results[i] is cams[i]'s. Much faster than n
 * calls when many cameras start at once. 0, or -ENOMEM (nothing added). */
int ingest_add_many(struct ingest *in, const struct camera_record *cams, size_t n, int *results);

/* Stops recording a camera: TEARDOWN, flush its unfinished chunk. */
int ingest_remove(struct ingest *in, uint32_t id);

int ingest_status(struct ingest *in, uint32_t id, struct ingest_camera_status *out);

/* The statuses of n cameras at once: found[i] says whether ids[i] is
 * recorded (out[i] filled). An RTSP camera's status lives in its loop
 * thread, so ingest_status costs a round trip to that thread per camera
 * (at 30,000 cameras, /metrics took 9.7 s that way); this makes one per
 * loop and RTSP_STATUS_BATCH cameras. */
void ingest_status_many(struct ingest *in, const uint32_t *ids, size_t n,
                        struct ingest_camera_status *out, bool *found);

/* Sums over all cameras (for status lines and benchmarks). */
struct ingest_totals {
	uint32_t cameras, streaming;
	uint32_t backoff;             /* cameras waiting to retry after a failure */
	uint32_t repeat_failures;     /* cameras with ingest_is_repeat_failure */
	uint64_t frames, bytes, frames_lost, frames_dropped, reconnects;
};
void ingest_totals(struct ingest *in, struct ingest_totals *out);

/* TEARDOWN every session, flush every camera, stop the threads, free.
 * With final (may be NULL): the totals as ingest stopped, counting every
 * frame recorded until the end (a streaming camera's last frames are read
 * from its socket after the stop begins). */
void ingest_stop(struct ingest *in, struct ingest_totals *final);

#endif
