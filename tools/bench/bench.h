/*
 * bench.h - what the nvr-bench source files offer each other.
 *
 * nvr-bench is a set of subcommands (bench_main.c holds the table). The
 * `storage` subcommand (bench_storage.c) is built from three parts that are
 * kept apart so each can be read on its own: the synthetic cameras
 * (bench_synth.c), the spinning-disk model fed by the engine's write trace
 * (bench_hdd.c) and the raw O_DIRECT writer that gives the baseline the
 * engine is compared to (bench_raw.c).
 */
#ifndef NVR_BENCH_H
#define NVR_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../storage/storage.h"

/* ---- Subcommands: fn(argc, argv) with argv[0] the subcommand's name.
 * Return 0 on success or a negative errno (already reported on stderr). */
int bench_storage_main(int argc, char **argv);
int bench_ingest_main(int argc, char **argv);   /* bench_ingest.c */
int bench_http_main(int argc, char **argv);     /* bench_http.c */
int bench_retention_main(int argc, char **argv); /* bench_retention.c */

/* ---- Synthetic cameras (bench_synth.c) ---------------------------------- */

#define SYNTH_FPS 25
#define SYNTH_FRAME_US 40000      /* 1 s / 25 fps */
#define SYNTH_GOP 50              /* a key frame every 2 s */
#define SYNTH_KEY_RATIO 8         /* key frame ~ 8x a P frame */
#define SYNTH_SPREAD_TICKS 100    /* cameras start within 4 s (100 frames) */

struct synth {
	int64_t base_us;          /* wall time of frame 0 (before the phase) */
	uint32_t bitrate_kbps;
	uint32_t p_bytes;         /* nominal P-frame size */
	uint32_t key_bytes;       /* nominal key-frame size */
	uint32_t spread_ticks;    /* cameras start within this many frame ticks */
	uint8_t *pool;            /* random bytes every frame is cut from */
	size_t pool_size;
};

/* Prepares cameras of `bitrate_kbps`. Camera c's frame 0 is at
 * base_us + synth_phase_us(c). With `aligned`, all cameras start in the
 * first frame tick (key frames in lock step); otherwise their starts are
 * spread over SYNTH_SPREAD_TICKS ticks, as cameras that were switched on
 * at different moments. */
int synth_init(struct synth *s, uint32_t bitrate_kbps, int64_t base_us, bool aligned);
void synth_free(struct synth *s);

/* The frame tick (0 .. spread_ticks-1) in which the camera's frame 0 falls. */
uint32_t synth_start_tick(const struct synth *s, uint32_t camera);

/* Offset of the camera's frame clock from base_us: its start tick plus
 * 0-39 ms, so cameras in one tick are not in lock step either. */
int64_t synth_phase_us(const struct synth *s, uint32_t camera);

/* Frame `k` of camera `camera`: time, size, key flag and bytes (pointing
 * into the shared pool; the same call always gives the same frame). */
void synth_frame(const struct synth *s, uint32_t camera, uint64_t k,
                 struct stg_frame *out);

/* Inverse of synth_frame's time: the frame number of camera `camera` at
 * `time_us`. Returns 0, or -EINVAL if no frame of that camera has that time. */
int synth_frame_number(const struct synth *s, uint32_t camera, int64_t time_us,
                       uint64_t *k);

/* ---- HDD model (bench_hdd.c) -------------------------------------------- */

#define HDD_SEEK_SECONDS 0.008    /* cost of a write that is not contiguous */
#define HDD_BYTES_PER_SECOND 200e6

struct hdd_head {
	bool valid;
	uint64_t segment;
	uint64_t end;             /* offset + length of the previous write */
};

struct hdd_model {
	pthread_mutex_t lock;
	int volumes;
	struct hdd_head *heads;   /* one per volume */
	uint64_t writes;
	uint64_t seeks;
	uint64_t bytes;
	uint64_t bad_volume;      /* trace calls with a volume index out of range */
};

int hdd_init(struct hdd_model *m, int volumes);
void hdd_free(struct hdd_model *m);

/* The engine's stg_write_trace_fn; `user` is a struct hdd_model. */
void hdd_trace(void *user, int volume_index, uint64_t segment,
               uint64_t offset, uint64_t length);

/* Modelled busy time of all volumes together, in seconds. */
double hdd_busy_seconds(struct hdd_model *m);

/* ---- Raw baseline writer (bench_raw.c) ---------------------------------- */

#define RAW_BLOCK_BYTES (4u << 20)
#define RAW_QUEUE_DEPTH 16

struct raw_result {
	uint64_t bytes;           /* bytes written */
	double seconds;           /* wall time including the final fdatasync */
	uint32_t segments_touched;
};

/* Writes `total` bytes sequentially into the segment files seg-%06u of
 * volume directory `voldir` (O_DIRECT, io_uring, RAW_QUEUE_DEPTH writes of
 * RAW_BLOCK_BYTES in flight), going round the `seg_count` segments of
 * `seg_size` bytes like a ring. `fill` (at least RAW_BLOCK_BYTES) gives the
 * bytes to write. Returns 0 or a negative errno. */
int raw_write(const char *voldir, uint64_t seg_size, uint32_t seg_count,
              uint64_t total, const uint8_t *fill, struct raw_result *out);

#endif
