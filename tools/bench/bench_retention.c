/*
 * bench_retention.c - `nvr-bench retention`: what retention costs the
 * recorder when the disks are full.
 *
 * One run, one volume, the same synthetic cameras throughout (bench_synth.c),
 * fed as fast as the engine takes them (producers wait on back-pressure):
 *
 *   1. format DIR/vol (zeroed, so neither phase pays first-write costs),
 *      wipe DIR/index, open the engine with a clock that follows the
 *      footage and a reclaim trace;
 *   2. classes: a quarter of the cameras in "key" (promised half of what
 *      the ring holds), the rest in "street" (no promise);
 *   3. warm-up: record a fifth of the capacity (not measured: the first
 *      writes of a run pay for cold caches and the index's first pages),
 *      then a hold on two cameras over the first tenth of the ring's
 *      footage (a hold covers footage already recorded);
 *   4. free phase: record half the capacity; no segment is reclaimed;
 *   5. fill the rest of the ring (not measured), then the reclaim phase:
 *      record 1.5 times the capacity; every segment the writer opens is
 *      reclaimed first, held chunks are copied forward each wrap;
 *   6. print both write rates, their ratio, the reclaim latencies (p50,
 *      p99, max, from the engine's reclaim trace), relocated bytes, and a
 *      last line of key=value pairs.
 *
 * The ratio compares two phases of the same run on the same disk, so the
 * disk's own speed cancels out; docs/BENCHMARKS.md has the figures.
 */
#include "bench.h"
#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SAMPLES 100000
#define BACKLOG_POLL_NS 200000

struct ret_opts {
	uint64_t cameras, bitrate_kbps, volume_size, segment_size;
	const char *dir;
};

struct ret_run {
	struct ret_opts o;
	char vol[4096], index[4096];
	struct synth synth;
	struct stg *stg;
	struct stg_camera **cams;
	uint64_t tick;                 /* next frame tick */
	_Atomic int64_t now_us;        /* engine clock: the newest footage */
	pthread_mutex_t lock;
	double *lat_ms;                /* reclaim trace samples */
	size_t nlat;
	uint64_t capacity;
};

static int64_t ret_clock(void *user)
{
	return atomic_load(&((struct ret_run *)user)->now_us);
}

static void ret_trace(void *user, int vol, uint64_t micros)
{
	struct ret_run *r = user;
	(void)vol;
	pthread_mutex_lock(&r->lock);
	if (r->nlat < MAX_SAMPLES)
		r->lat_ms[r->nlat++] = (double)micros / 1e3;
	pthread_mutex_unlock(&r->lock);
}

static void ret_usage(void)
{
	fprintf(stderr,
	        "usage: nvr-bench retention --volume DIR [--cameras N] [--bitrate-kbps B]\n"
	        "                           [--volume-size BYTES] [--segment-size BYTES]\n"
	        "  defaults: 200 cameras x 2000 kbit/s, --volume-size 1G, --segment-size 32M\n"
	        "  DIR/vol is formatted and DIR/index wiped (as nvr-bench storage does).\n");
}

static int parse(int argc, char **argv, struct ret_opts *o)
{
	struct bench_opt opts[] = {
		{ "volume", BENCH_OPT_STR, &o->dir, true, false },
		{ "cameras", BENCH_OPT_U64, &o->cameras, false, false },
		{ "bitrate-kbps", BENCH_OPT_U64, &o->bitrate_kbps, false, false },
		{ "volume-size", BENCH_OPT_U64, &o->volume_size, false, false },
		{ "segment-size", BENCH_OPT_U64, &o->segment_size, false, false },
	};
	*o = (struct ret_opts){ .cameras = 200, .bitrate_kbps = 2000,
	                        .volume_size = 1ull << 30, .segment_size = 32ull << 20 };
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			ret_usage();
			return 1;
		}
	if (bench_parse_opts("retention", argc, argv, opts, sizeof opts / sizeof opts[0])) {
		ret_usage();
		return -EINVAL;
	}
	if (o->cameras < 4 || o->cameras > 100000 || o->segment_size < (1u << 20) ||
	    o->volume_size / o->segment_size < 8 || o->bitrate_kbps < 100) {
		fprintf(stderr, "retention: need 4..100000 cameras, >= 100 kbit/s, segments >= 1M "
		        "and at least 8 of them\n");
		return -EINVAL;
	}
	return 0;
}

static int prepare(struct ret_run *r)
{
	int err;
	if ((err = bench_path_join(r->vol, sizeof r->vol, r->o.dir, "vol")) ||
	    (err = bench_path_join(r->index, sizeof r->index, r->o.dir, "index")) ||
	    (err = bench_mkdir(r->o.dir)))
		return err;
	struct stg_volume_info vi;
	if (access(r->vol, F_OK) == 0 && stg_volume_probe(r->vol, &vi) != 0) {
		fprintf(stderr, "retention: %s exists and is not a volume; not touching it\n", r->vol);
		return -EEXIST;
	}
	if ((err = bench_remove_tree(r->vol)) || (err = bench_remove_tree(r->index)) ||
	    (err = bench_mkdir(r->vol)))
		return err;
	uint32_t count = (uint32_t)(r->o.volume_size / r->o.segment_size);
	err = stg_volume_format(r->vol, r->o.segment_size, count, STG_FORMAT_ZERO, &vi);
	if (err)
		fprintf(stderr, "retention: formatting %s: %s\n", r->vol, stg_strerror(err));
	return err;
}

static int open_engine(struct ret_run *r)
{
	const char *vols[1] = { r->vol };
	struct stg_config cfg = {
		.index_dir = r->index, .volumes = vols, .volume_count = 1,
		.write_block_bytes = RAW_BLOCK_BYTES, .blocks_per_volume = RAW_QUEUE_DEPTH,
		.queue_bytes_per_volume = 256ull << 20,
		.reclaim_trace = ret_trace, .reclaim_trace_user = r,
		.clock = ret_clock, .clock_user = r,
		.rate_window_s = 10,       /* the run covers a minute of footage */
	};
	int err = stg_open(&cfg, &r->stg);
	if (err) {
		fprintf(stderr, "retention: stg_open: %s\n", stg_strerror(err));
		r->stg = NULL;
		return err;
	}
	r->cams = calloc(r->o.cameras, sizeof *r->cams);
	if (!r->cams)
		return -ENOMEM;
	for (uint32_t id = 1; id <= r->o.cameras && !err; id++)
		err = stg_camera_get(r->stg, id, &r->cams[id - 1]);
	return err;
}

/* Footage seconds the ring holds at this rate. */
static double ring_seconds(const struct ret_run *r)
{
	return (double)r->capacity / ((double)r->o.cameras * (double)r->o.bitrate_kbps * 125.0);
}

static int set_policy(struct ret_run *r)
{
	struct stg_retention_stats rs;
	int err = stg_retention_stats(r->stg, &rs, NULL, 0, NULL);
	if (err)
		return err;
	r->capacity = rs.capacity_bytes;
	struct stg_class street = { .name = "street" };
	struct stg_class key = { .name = "key", .min_us = (int64_t)(ring_seconds(r) * 0.5e6) };
	if ((err = stg_class_set(r->stg, &street)) || (err = stg_class_set(r->stg, &key)))
		return err;
	for (uint32_t id = 1; id <= r->o.cameras && !err; id++)
		err = stg_camera_set_class(r->stg, id, id % 4 == 0 ? "key" : "street");
	return err;
}

/* The hold on cameras 1 and 2, once their footage is recorded. */
static int set_hold(struct ret_run *r)
{
	struct stg_hold h = { .camera_count = 2, .cameras = { 1, 2 },
	                      .start_us = r->synth.base_us,
	                      .end_us = r->synth.base_us + (int64_t)(ring_seconds(r) * 0.1e6) +
	                                SYNTH_SPREAD_TICKS * SYNTH_FRAME_US };
	snprintf(h.case_ref, sizeof h.case_ref, "BENCH");
	return stg_hold_create(r->stg, &h, NULL, 0, NULL);
}

/* Feeds whole frame ticks until `bytes` more were put; returns MB/s. */
static int feed(struct ret_run *r, uint64_t bytes, double *mbps, uint64_t *put)
{
	uint64_t done = 0;
	int64_t t0 = bench_now_ns();
	while (done < bytes) {
		for (uint32_t id = 1; id <= r->o.cameras; id++) {
			struct stg_frame f;
			uint64_t start = synth_start_tick(&r->synth, id);
			if (r->tick < start)
				continue;
			synth_frame(&r->synth, id, r->tick - start, &f);
			while (stg_camera_backlogged(r->cams[id - 1]))
				bench_sleep_ns(BACKLOG_POLL_NS);
			if (f.time_us > atomic_load(&r->now_us))
				atomic_store(&r->now_us, f.time_us);
			int err = stg_put_frame(r->cams[id - 1], &f);
			if (err) {
				fprintf(stderr, "retention: put camera %u: %s\n", id, stg_strerror(err));
				return err;
			}
			done += f.size;
		}
		r->tick++;
	}
	int err = stg_sync(r->stg);
	double s = (double)(bench_now_ns() - t0) / 1e9;
	*mbps = (double)done / 1e6 / s;
	*put = done;
	return err;
}

static int run(struct ret_run *r)
{
	int err;
	if ((err = prepare(r)) || (err = open_engine(r)))
		return err;
	atomic_store(&r->now_us, r->synth.base_us);
	if ((err = set_policy(r)))
		return err;
	printf("volume: %s, %" PRIu64 " x %" PRIu64 " MiB segments, capacity %.0f MB = %.0f s of "
	       "footage for %" PRIu64 " cameras x %" PRIu64 " kbit/s\n", r->vol,
	       r->o.volume_size / r->o.segment_size, r->o.segment_size >> 20,
	       (double)r->capacity / 1e6, ring_seconds(r), r->o.cameras, r->o.bitrate_kbps);
	double free_mbps, reclaim_mbps, unused;
	uint64_t free_bytes, reclaim_bytes, skipped;
	if ((err = feed(r, r->capacity / 5, &unused, &skipped)) || (err = set_hold(r)) ||
	    (err = feed(r, r->capacity / 2, &free_mbps, &free_bytes)))
		return err;
	struct stg_volume_stats vs;
	stg_volume_stats(r->stg, &vs, 1);
	uint64_t reclaims_free = vs.reclaims;
	printf("free: %.1f MB at %.1f MB/s, %" PRIu64 " reclaims\n", free_bytes / 1e6, free_mbps,
	       reclaims_free);
	if ((err = feed(r, r->capacity * 2 / 5, &unused, &skipped)))
		return err;
	stg_volume_stats(r->stg, &vs, 1);
	reclaims_free = vs.reclaims;
	if ((err = feed(r, r->capacity * 3 / 2, &reclaim_mbps, &reclaim_bytes)) ||
	    (err = stg_retention_enforce(r->stg)))
		return err;
	stg_volume_stats(r->stg, &vs, 1);
	struct stg_retention_stats rs;
	struct stg_class_stats cs[4];
	int ncls = 0;
	if ((err = stg_retention_stats(r->stg, &rs, cs, 4, &ncls)))
		return err;
	uint64_t dropped = 0;
	for (uint32_t id = 1; id <= r->o.cameras; id++) {
		struct stg_camera_stats st;
		if (stg_camera_stats(r->stg, id, &st) == 0)
			dropped += st.dropped_frames;
	}
	pthread_mutex_lock(&r->lock);
	size_t n = r->nlat;
	double p50 = bench_percentile(r->lat_ms, n, 50), p99 = bench_percentile(r->lat_ms, n, 99);
	double max = n ? r->lat_ms[n - 1] : 0;
	pthread_mutex_unlock(&r->lock);
	double ratio = free_mbps > 0 ? reclaim_mbps / free_mbps : 0;
	printf("reclaim: %.1f MB at %.1f MB/s, %" PRIu64 " reclaims, latency p50 %.2f ms p99 %.2f ms "
	       "max %.2f ms; relocated %" PRIu64 " chunks, %.1f MB; held %.1f MB\n",
	       reclaim_bytes / 1e6, reclaim_mbps, vs.reclaims - reclaims_free, p50, p99, max,
	       rs.relocated_chunks, rs.relocated_bytes / 1e6, rs.held_bytes / 1e6);
	for (int i = 0; i < ncls && i < 4; i++)
		if (cs[i].cameras)
			printf("class %s: %u cameras, oldest footage %.0f s old, forecast %.0f s, "
			       "alarm %d\n", cs[i].cls.name, cs[i].cameras, cs[i].retained_us / 1e6,
			       cs[i].forecast_us / 1e6, cs[i].alarm);
	printf("cameras=%" PRIu64 " bitrate_kbps=%" PRIu64 " capacity_bytes=%" PRIu64
	       " free_mbps=%.2f reclaim_mbps=%.2f reclaim_ratio=%.4f reclaims=%" PRIu64
	       " reclaim_p50_ms=%.3f reclaim_p99_ms=%.3f reclaim_max_ms=%.3f relocated_bytes=%" PRIu64
	       " held_bytes=%" PRIu64 " alarms=%u dropped_frames=%" PRIu64 "\n",
	       r->o.cameras, r->o.bitrate_kbps, r->capacity, free_mbps, reclaim_mbps, ratio,
	       vs.reclaims - reclaims_free, p50, p99, max, rs.relocated_bytes, rs.held_bytes,
	       rs.alarms, dropped);
	return 0;
}

int bench_retention_main(int argc, char **argv)
{
	struct ret_run *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	int err = parse(argc - 1, argv + 1, &r->o);
	if (err) {
		free(r);
		return err > 0 ? 0 : err;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->lat_ms = calloc(MAX_SAMPLES, sizeof *r->lat_ms);
	err = r->lat_ms ? synth_init(&r->synth, (uint32_t)r->o.bitrate_kbps, bench_wall_us(), false)
	                : -ENOMEM;
	if (!err) {
		err = run(r);
		stg_close(r->stg);
		synth_free(&r->synth);
	}
	free(r->cams);
	free(r->lat_ms);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return err;
}
