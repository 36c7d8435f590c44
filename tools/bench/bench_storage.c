/*
 * bench_storage.c - `nvr-bench storage`: how well the storage engine records.
 *
 * One run answers the questions that size an appliance: how many bytes per
 * second the engine writes for N cameras (and how that compares with the
 * disk's raw sequential speed), how much index it needs per camera-hour of
 * footage, how fast a viewer can seek into a recording, how much memory it
 * takes, and how busy a real hard disk would be with the engine's write
 * pattern. Steps, in order:
 *
 *   1. format DIR/vol as a fresh volume, wipe DIR/index;
 *   2. open the engine with the HDD model on its write trace;
 *   3. feed N synthetic cameras (as fast as possible, waiting on
 *      back-pressure, or paced in real time and counting drops), then
 *      flush every camera and stg_sync();
 *   4. read the index size and the recorded ranges;
 *   5. time 1000 random seeks and check the frames they return;
 *   6. close the engine, note peak memory, time the raw baseline writer;
 *   7. print the figures, the last line as key=value pairs for scripts.
 *
 * docs/BENCHMARKS.md says what each figure means.
 */
#include "bench.h"
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEEK_PICKS 1000
#define BENCH_QUEUE_BYTES (256ull << 20)
#define SEEK_WINDOW_US 1000000
#define BACKLOG_POLL_NS 200000           /* 0.2 ms between polls */
#define BACKLOG_GIVE_UP_NS 120000000000LL /* 2 min: the engine is stuck */
#define MiB (1024.0 * 1024.0)

struct storage_opts {
	uint64_t cameras, bitrate_kbps, seconds;
	uint64_t volume_size, segment_size, threads;
	const char *dir;
	const char *index_dir;     /* NULL: DIR/index */
	bool realtime;
	bool aligned;
};

struct cam_ranges {
	struct stg_range *r;
	int n;
	int64_t total_us;
};

struct figures {
	uint64_t frames_put, bytes_put, put_errors;
	int64_t max_lag_ns;
	uint64_t frames_written, dropped_frames;
	double elapsed_s, write_mbps;
	struct stg_index_stats index;
	double camera_hours, index_per_cam_hour, index_held_per_cam_hour;
	double raw_before_mbps, raw_after_mbps;
	double index_per_camera;
	double seek_p50_ms, seek_p99_ms;
	uint64_t seeks_done, verify_errors, seek_late;
	uint64_t peak_rss;
	struct raw_result raw;
	double raw_mbps, ratio;
	double hdd_busy;
	uint64_t hdd_seeks, hdd_writes, hdd_bytes;
};

struct run {
	struct storage_opts o;
	char vol_path[4096];
	char index_path[4096];
	struct stg_volume_info vinfo;
	struct synth synth;
	struct hdd_model hdd;
	struct stg *stg;
	struct stg_camera **cams;  /* [camera id - 1] */
	struct cam_ranges *ranges; /* [camera id - 1] */
	atomic_bool stop;          /* a producer failed: all stop */
	struct figures f;
};

struct producer {
	struct run *r;
	uint32_t index;
	pthread_t thread;
	uint64_t frames, bytes, errors;
	int64_t max_lag_ns;        /* realtime: worst delay behind a tick's end */
	int first_err;
};

/* ---- Options ------------------------------------------------------------- */

static void storage_usage(void)
{
	fprintf(stderr,
	        "usage: nvr-bench storage --cameras N --bitrate-kbps B --seconds S\n"
	        "                         --volume DIR [--volume-size BYTES]\n"
	        "                         [--segment-size BYTES] [--realtime] [--threads T]\n"
	        "                         [--aligned] [--index DIR2]\n"
	        "  BYTES may end in K, M, G or T (powers of 1024).\n"
	        "  defaults: --volume-size 8G, --segment-size 256M, --threads 2\n"
	        "  --index DIR2 puts the index in DIR2/index instead of DIR/index (an\n"
	        "  appliance keeps its index on its own SSD, not on a recording disk)\n"
	        "  --aligned starts every camera in the same frame tick (key frames in\n"
	        "  lock step, a worst case); by default starts spread over 4 s.\n");
}

static int check_opts(struct storage_opts *o)
{
	const char *bad = NULL;

	if (o->cameras < 1 || o->cameras > 1000000)
		bad = "--cameras must be 1..1000000";
	else if (o->bitrate_kbps < 1 || o->bitrate_kbps > 1000000)
		bad = "--bitrate-kbps must be 1..1000000";
	else if (o->seconds < 1 || o->seconds > 10 * 86400)
		bad = "--seconds must be 1..864000";
	else if (o->threads < 1 || o->threads > 1024)
		bad = "--threads must be 1..1024";
	else if (o->segment_size < (1u << 20))
		bad = "--segment-size must be at least 1M";
	else if (o->volume_size / o->segment_size < 1 ||
	         o->volume_size / o->segment_size > UINT32_MAX)
		bad = "--volume-size must hold 1..2^32-1 segments";
	if (bad) {
		fprintf(stderr, "storage: %s\n", bad);
		storage_usage();
		return -EINVAL;
	}
	if (o->threads > o->cameras)
		o->threads = o->cameras;
	return 0;
}

static int parse_storage_opts(int argc, char **argv, struct storage_opts *o)
{
	struct bench_opt opts[] = {
		{ "cameras", BENCH_OPT_U64, &o->cameras, true, false },
		{ "bitrate-kbps", BENCH_OPT_U64, &o->bitrate_kbps, true, false },
		{ "seconds", BENCH_OPT_U64, &o->seconds, true, false },
		{ "volume", BENCH_OPT_STR, &o->dir, true, false },
		{ "volume-size", BENCH_OPT_U64, &o->volume_size, false, false },
		{ "segment-size", BENCH_OPT_U64, &o->segment_size, false, false },
		{ "realtime", BENCH_OPT_FLAG, &o->realtime, false, false },
		{ "threads", BENCH_OPT_U64, &o->threads, false, false },
		{ "aligned", BENCH_OPT_FLAG, &o->aligned, false, false },
		{ "index", BENCH_OPT_STR, &o->index_dir, false, false },
	};

	*o = (struct storage_opts){
		.volume_size = 8ULL << 30,
		.segment_size = 256ULL << 20,
		.threads = 2,
	};
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			storage_usage();
			return 1;
		}
	}
	if (bench_parse_opts("storage", argc, argv, opts, sizeof(opts) / sizeof(opts[0]))) {
		storage_usage();
		return -EINVAL;
	}
	return check_opts(o);
}

/* ---- Step 1: a fresh volume and an empty index ------------------------- */

/* True if `path` is a directory whose entries all end in `suffix`
 * (NULL: a directory with no entries at all). */
static bool dir_holds_only(const char *path, const char *suffix)
{
	size_t sl = suffix ? strlen(suffix) : 0;
	DIR *d = opendir(path);
	struct dirent *e;
	bool ok = true;

	if (!d)
		return false;
	while (ok && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		ok = suffix && n > sl && !strcmp(e->d_name + n - sl, suffix);
	}
	closedir(d);
	return ok;
}

/* Removes what an earlier run left, but nothing that does not look like it:
 * a volume (or an empty directory) at DIR/vol, LMDB files at DIR/index. */
static int remove_old(const char *path, bool is_volume)
{
	struct stg_volume_info info;
	bool ours = is_volume ? stg_volume_probe(path, &info) == 0 || dir_holds_only(path, NULL)
	                      : dir_holds_only(path, ".mdb");
	int err;

	if (access(path, F_OK) != 0)
		return 0;
	if (!ours) {
		fprintf(stderr, "storage: %s exists and is not an earlier benchmark %s; "
		        "remove it by hand or pick another --volume\n",
		        path, is_volume ? "volume" : "index");
		return -EEXIST;
	}
	err = bench_remove_tree(path);
	if (err)
		fprintf(stderr, "storage: cannot remove %s: %s\n", path, strerror(-err));
	return err;
}

static int prepare_dirs(struct run *r)
{
	uint32_t count = (uint32_t)(r->o.volume_size / r->o.segment_size);
	int64_t t0;
	int err;

	if ((err = bench_path_join(r->vol_path, sizeof(r->vol_path), r->o.dir, "vol")) ||
	    (err = r->o.index_dir ?
	           bench_path_join(r->index_path, sizeof(r->index_path), r->o.index_dir, "index") :
	           bench_path_join(r->index_path, sizeof(r->index_path), r->o.dir, "index"))) {
		fprintf(stderr, "storage: --volume path too long\n");
		return err;
	}
	if ((err = bench_mkdir(r->o.dir))) {
		fprintf(stderr, "storage: mkdir %s: %s\n", r->o.dir, strerror(-err));
		return err;
	}
	if ((err = remove_old(r->vol_path, true)) || (err = remove_old(r->index_path, false)))
		return err;
	if ((err = bench_mkdir(r->vol_path))) {
		fprintf(stderr, "storage: mkdir %s: %s\n", r->vol_path, strerror(-err));
		return err;
	}
	t0 = bench_now_ns();
	err = stg_volume_format(r->vol_path, r->o.segment_size, count, STG_FORMAT_ZERO, &r->vinfo);
	if (err) {
		fprintf(stderr, "storage: formatting %s (%u x %" PRIu64 " bytes): %s\n",
		        r->vol_path, count, r->o.segment_size, stg_strerror(err));
		return err;
	}
	printf("volume: %s, %u segments of %.0f MiB, formatted in %.2f s\n",
	       r->vol_path, r->vinfo.segment_count, (double)r->vinfo.segment_size / MiB,
	       (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}

/* ---- Step 2: the engine -------------------------------------------------- */

static int open_engine(struct run *r)
{
	const char *vols[1] = { r->vol_path };
	struct stg_config cfg = {
		.index_dir = r->index_path,
		.volumes = vols,
		.volume_count = 1,
		.write_trace = hdd_trace,
		.write_trace_user = &r->hdd,
		/* the same writes in flight as the raw baseline (RAW_QUEUE_DEPTH
		 * x RAW_BLOCK_BYTES), so the ratio compares the engine's work, not
		 * two queue depths; the engine's default of 4 suits an HDD */
		.write_block_bytes = RAW_BLOCK_BYTES,
		.blocks_per_volume = RAW_QUEUE_DEPTH,
		/* one volume here carries what an appliance spreads over 24-36
		 * disks (up to ~1 GB/s): its queue must cover the same stall time
		 * as the default 64 MiB does for one HDD's share (~0.3 s) */
		.queue_bytes_per_volume = BENCH_QUEUE_BYTES,
	};
	int err = stg_open(&cfg, &r->stg);

	if (err) {
		fprintf(stderr, "storage: stg_open(index %s, volume %s): %s\n",
		        r->index_path, r->vol_path, stg_strerror(err));
		r->stg = NULL;
	}
	return err;
}

static int get_cameras(struct run *r)
{
	r->cams = calloc(r->o.cameras, sizeof(*r->cams));
	if (!r->cams) {
		fprintf(stderr, "storage: out of memory for %" PRIu64 " cameras\n", r->o.cameras);
		return -ENOMEM;
	}
	for (uint32_t id = 1; id <= r->o.cameras; id++) {
		int err = stg_camera_get(r->stg, id, &r->cams[id - 1]);

		if (err) {
			fprintf(stderr, "storage: stg_camera_get(%u): %s\n", id, stg_strerror(err));
			return err;
		}
	}
	return 0;
}

/* ---- Step 3: producers --------------------------------------------------- */

/* Waits while the camera's volume queue is full. Returns 0 or -ETIMEDOUT. */
static int wait_backlog(struct stg_camera *cam, uint32_t id)
{
	int64_t start = 0;

	while (stg_camera_backlogged(cam)) {
		int64_t now = bench_now_ns();

		if (!start)
			start = now;
		else if (now - start > BACKLOG_GIVE_UP_NS) {
			fprintf(stderr, "storage: camera %u still backlogged after %lld s; "
			        "is the engine stuck?\n", id, BACKLOG_GIVE_UP_NS / 1000000000LL);
			return -ETIMEDOUT;
		}
		bench_sleep_ns(BACKLOG_POLL_NS);
	}
	return 0;
}

static int put_one(struct producer *p, uint32_t id, uint64_t k)
{
	struct run *r = p->r;
	struct stg_camera *cam = r->cams[id - 1];
	struct stg_frame fr;
	int err;

	if (!r->o.realtime && (err = wait_backlog(cam, id)))
		return err;
	synth_frame(&r->synth, id, k, &fr);
	err = stg_put_frame(cam, &fr);
	if (err) {
		fprintf(stderr, "storage: stg_put_frame(camera %u, frame %" PRIu64 "): %s\n",
		        id, k, stg_strerror(err));
		return err;
	}
	p->frames++;
	p->bytes += fr.size;
	return 0;
}

static void producer_fail(struct producer *p, int err)
{
	p->errors++;
	p->first_err = err;
	atomic_store(&p->r->stop, true);
}

/* The cameras stop: their unfinished chunks are closed, from the thread
 * that owns them, so that stg_sync() covers every frame put. Closing all
 * of them at once is a burst no live system sees, so even in real-time
 * mode each flush waits for room in the queue instead of dropping. */
static void flush_shard(struct producer *p)
{
	struct run *r = p->r;

	for (uint32_t id = p->index + 1; id <= r->o.cameras; id += (uint32_t)r->o.threads) {
		int err = wait_backlog(r->cams[id - 1], id);

		if (!err && (err = stg_camera_flush(r->cams[id - 1])))
			fprintf(stderr, "storage: stg_camera_flush(%u): %s\n", id, stg_strerror(err));
		if (err) {
			producer_fail(p, err);
			return;
		}
	}
}

/* Tick j: every camera of the shard that is recording puts frame
 * j - start tick. Returns 0 or the first error. */
static int put_tick(struct producer *p, uint64_t j, uint64_t frames)
{
	struct run *r = p->r;

	for (uint32_t id = p->index + 1; id <= r->o.cameras; id += (uint32_t)r->o.threads) {
		uint64_t start = synth_start_tick(&r->synth, id);
		int err;

		if (j < start || j - start >= frames)
			continue;
		if ((err = put_one(p, id, j - start)))
			return err;
	}
	return 0;
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct run *r = p->r;
	uint64_t frames = r->o.seconds * SYNTH_FPS;
	uint64_t ticks = frames + r->synth.spread_ticks - 1;
	int64_t start = bench_now_ns();

	for (uint64_t j = 0; j < ticks && !atomic_load(&r->stop); j++) {
		int64_t deadline = start + (int64_t)(j + 1) * SYNTH_FRAME_US * 1000;
		int err;

		if (r->o.realtime)
			bench_sleep_until_ns(deadline - SYNTH_FRAME_US * 1000);
		if ((err = put_tick(p, j, frames))) {
			producer_fail(p, err);
			return NULL;
		}
		if (r->o.realtime && bench_now_ns() - deadline > p->max_lag_ns)
			p->max_lag_ns = bench_now_ns() - deadline;
	}
	if (!atomic_load(&r->stop))
		flush_shard(p);
	return NULL;
}

static int join_producers(struct run *r, struct producer *ps, uint32_t started)
{
	int err = 0;

	for (uint32_t i = 0; i < started; i++) {
		pthread_join(ps[i].thread, NULL);
		r->f.frames_put += ps[i].frames;
		r->f.bytes_put += ps[i].bytes;
		r->f.put_errors += ps[i].errors;
		if (ps[i].max_lag_ns > r->f.max_lag_ns)
			r->f.max_lag_ns = ps[i].max_lag_ns;
		if (!err && ps[i].first_err)
			err = ps[i].first_err;
	}
	return err;
}

static int run_producers(struct run *r)
{
	uint32_t n = (uint32_t)r->o.threads, started = 0;
	struct producer *ps = calloc(n, sizeof(*ps));
	int err = 0, jerr;

	if (!ps)
		return -ENOMEM;
	for (; started < n; started++) {
		ps[started] = (struct producer){ .r = r, .index = started };
		err = pthread_create(&ps[started].thread, NULL, producer_main, &ps[started]);
		if (err) {
			fprintf(stderr, "storage: pthread_create: %s\n", strerror(err));
			atomic_store(&r->stop, true);
			err = -err;
			break;
		}
	}
	jerr = join_producers(r, ps, started);

	free(ps);
	return err ? err : jerr;
}

static int record(struct run *r)
{
	int64_t t0 = bench_now_ns();
	int err = run_producers(r);
	int serr = stg_sync(r->stg);

	r->f.elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
	if (serr)
		fprintf(stderr, "storage: stg_sync: %s\n", stg_strerror(serr));
	r->f.write_mbps = (double)r->f.bytes_put / 1e6 / r->f.elapsed_s;
	printf("record: %" PRIu64 " frames, %.1f MB in %.2f s = %.1f MB/s (%s, %" PRIu64
	       " threads)\n", r->f.frames_put, (double)r->f.bytes_put / 1e6, r->f.elapsed_s,
	       r->f.write_mbps, r->o.realtime ? "realtime" : "as fast as possible", r->o.threads);
	if (r->o.realtime)
		printf("record: producers ran at most %.1f ms behind real time%s\n",
		       (double)r->f.max_lag_ns / 1e6, r->f.max_lag_ns > 1000000000 ?
		       " (more than 1 s: this machine cannot feed this load in real time)" : "");
	return err ? err : serr;
}

/* Sums the per-camera engine counters; warns if frames went missing. */
static int camera_totals(struct run *r)
{
	for (uint32_t id = 1; id <= r->o.cameras; id++) {
		struct stg_camera_stats st;
		int err = stg_camera_stats(r->stg, id, &st);

		if (err) {
			fprintf(stderr, "storage: stg_camera_stats(%u): %s\n", id, stg_strerror(err));
			return err;
		}
		r->f.frames_written += st.frames_written;
		r->f.dropped_frames += st.dropped_frames;
	}
	printf("engine: %" PRIu64 " frames written, %" PRIu64 " dropped\n",
	       r->f.frames_written, r->f.dropped_frames);
	if (r->f.frames_written + r->f.dropped_frames != r->f.frames_put)
		fprintf(stderr, "storage: warning: engine accounts for %" PRIu64
		        " frames (written + dropped) but %" PRIu64 " were put\n",
		        r->f.frames_written + r->f.dropped_frames, r->f.frames_put);
	return 0;
}

/* ---- Step 4: index size per camera-hour --------------------------------- */

static int load_ranges(struct run *r, uint32_t id, struct cam_ranges *cr)
{
	int max = 16, n;

	for (;;) {
		struct stg_range *a = realloc(cr->r, (size_t)max * sizeof(*a));

		if (!a)
			return -ENOMEM;
		cr->r = a;
		n = stg_ranges(r->stg, id, 0, INT64_MAX, cr->r, max);
		if (n < 0) {
			fprintf(stderr, "storage: stg_ranges(camera %u): %s\n", id, stg_strerror(n));
			return n;
		}
		if (n <= max)
			break;
		max = n;
	}
	cr->n = n;
	cr->total_us = 0;
	for (int i = 0; i < n; i++)
		cr->total_us += cr->r[i].end_us - cr->r[i].start_us;
	return 0;
}

static int index_figures(struct run *r)
{
	int64_t total_us = 0;
	int err;

	r->ranges = calloc(r->o.cameras, sizeof(*r->ranges));
	if (!r->ranges)
		return -ENOMEM;
	for (uint32_t id = 1; id <= r->o.cameras; id++) {
		if ((err = load_ranges(r, id, &r->ranges[id - 1])))
			return err;
		total_us += r->ranges[id - 1].total_us;
	}
	if ((err = stg_index_stats(r->stg, &r->f.index))) {
		fprintf(stderr, "storage: stg_index_stats: %s\n", stg_strerror(err));
		return err;
	}
	/*
	 * What the index costs, split the way it grows (docs/BENCHMARKS.md):
	 * - per camera: its first range row, whatever its retention;
	 * - per camera-hour of footage held: the segment records (the ring's
	 *   share) and every range row beyond a camera's first (one per gap).
	 * The second is the figure that sizes the index SSD for months of
	 * footage. The plain ratio (all range and segment bytes over the
	 * camera-hours held) is printed too: with a ring of a few GiB a camera
	 * holds only seconds of footage, so there it is dominated by the
	 * per-camera row.
	 */
	const struct stg_index_stats *ix = &r->f.index;
	uint64_t cams_with_footage = 0;
	for (uint32_t id = 1; id <= r->o.cameras; id++)
		cams_with_footage += r->ranges[id - 1].n > 0;
	double range_row = ix->ranges ? (double)ix->range_bytes / (double)ix->ranges : 0;
	r->f.camera_hours = (double)total_us / 3.6e9;
	r->f.index_per_camera = range_row;
	if (r->f.camera_hours > 0) {
		double extra_ranges = (double)(ix->ranges - cams_with_footage);
		r->f.index_per_cam_hour = ((double)ix->segment_bytes + extra_ranges * range_row) /
		                          r->f.camera_hours;
		r->f.index_held_per_cam_hour = (double)(ix->range_bytes + ix->segment_bytes) /
		                               r->f.camera_hours;
	}
	printf("index: %" PRIu64 " bytes in use (%" PRIu64 " range, %" PRIu64 " segment), "
	       "%" PRIu64 " ranges, %" PRIu64 " segments; %.3f camera-hours held; "
	       "%.0f bytes per camera + %.0f bytes per camera-hour "
	       "(all bytes / camera-hours held: %.0f)\n", ix->bytes, ix->range_bytes,
	       ix->segment_bytes, ix->ranges, ix->segments, r->f.camera_hours,
	       r->f.index_per_camera, r->f.index_per_cam_hour, r->f.index_held_per_cam_hour);
	return 0;
}

/* ---- Step 5: seek latency and read-back check --------------------------- */

/* A random (camera, time) inside what is recorded; false if nothing is. */
static bool pick_seek(struct run *r, uint64_t i, uint32_t *id, int64_t *t)
{
	uint64_t h = bench_mix64(0x5eeca11ULL + i);

	for (uint64_t tries = 0; tries < r->o.cameras; tries++) {
		uint32_t c = (uint32_t)((h + tries) % r->o.cameras);
		struct cam_ranges *cr = &r->ranges[c];
		int64_t off;

		if (cr->total_us <= 0)
			continue;
		off = (int64_t)(bench_mix64(h) % (uint64_t)cr->total_us);
		for (int k = 0; k < cr->n; k++) {
			int64_t len = cr->r[k].end_us - cr->r[k].start_us;

			if (off < len) {
				*id = c + 1;
				*t = cr->r[k].start_us + off;
				return true;
			}
			off -= len;
		}
	}
	return false;
}

/* Checks a frame read back against the synthetic camera; 0 if it matches. */
static int check_frame(struct run *r, uint32_t id, int64_t t, const struct stg_read_frame *f)
{
	struct stg_frame want;
	uint64_t k;

	if (synth_frame_number(&r->synth, id, f->time_us, &k)) {
		fprintf(stderr, "seek: camera %u at %" PRId64 ": frame time %" PRId64
		        " is not on the camera's frame clock\n", id, t, f->time_us);
		return -1;
	}
	synth_frame(&r->synth, id, k, &want);
	if (!f->key || f->codec != STG_CODEC_H264 || f->size != want.size ||
	    memcmp(f->data, want.data, want.size) != 0) {
		fprintf(stderr, "seek: camera %u at %" PRId64 ": frame %" PRIu64
		        " differs (key %d, codec %d, size %u, expected key %d size %u)\n",
		        id, t, k, f->key, f->codec, f->size, want.key, want.size);
		return -1;
	}
	if (f->time_us > t)
		r->f.seek_late++;
	return 0;
}

/* One seek: open at t and read the first frame. Returns seconds or < 0. */
static double seek_once(struct run *r, uint32_t id, int64_t t)
{
	struct stg_iter *it;
	struct stg_read_frame f;
	int64_t t0 = bench_now_ns();
	int err = stg_iter_open(r->stg, id, t, t + SEEK_WINDOW_US, &it);
	double s;

	if (err) {
		fprintf(stderr, "seek: stg_iter_open(camera %u, %" PRId64 "): %s\n",
		        id, t, stg_strerror(err));
		return -1;
	}
	err = stg_iter_next(it, &f);
	s = (double)(bench_now_ns() - t0) / 1e9;
	if (err != 1)
		fprintf(stderr, "seek: stg_iter_next(camera %u, %" PRId64 "): %s\n", id, t,
		        err == 0 ? "no frame" : stg_strerror(err));
	else if (check_frame(r, id, t, &f))
		err = -1;
	stg_iter_close(it);
	return err == 1 ? s : -1;
}

static int seek_figures(struct run *r)
{
	double *lat = calloc(SEEK_PICKS, sizeof(*lat));
	uint64_t n = 0;

	if (!lat)
		return -ENOMEM;
	for (uint64_t i = 0; i < SEEK_PICKS; i++) {
		uint32_t id;
		int64_t t;
		double s;

		if (!pick_seek(r, i, &id, &t))
			break;
		s = seek_once(r, id, t);
		if (s < 0)
			r->f.verify_errors++;
		else
			lat[n++] = s * 1e3;
	}
	r->f.seeks_done = n;
	r->f.seek_p50_ms = bench_percentile(lat, n, 50);
	r->f.seek_p99_ms = bench_percentile(lat, n, 99);
	free(lat);
	printf("seek: %" PRIu64 " seeks, p50 %.3f ms, p99 %.3f ms, %" PRIu64
	       " verify errors, %" PRIu64 " started after the asked time\n", n,
	       r->f.seek_p50_ms, r->f.seek_p99_ms, r->f.verify_errors, r->f.seek_late);
	if (n == 0)
		fprintf(stderr, "storage: no recorded footage to seek into\n");
	return 0;
}

/* ---- Step 6: memory, HDD model, raw baseline ---------------------------- */

static void hdd_figures(struct run *r)
{
	r->f.hdd_busy = hdd_busy_seconds(&r->hdd) / (double)r->o.seconds;
	pthread_mutex_lock(&r->hdd.lock);
	r->f.hdd_seeks = r->hdd.seeks;
	r->f.hdd_writes = r->hdd.writes;
	r->f.hdd_bytes = r->hdd.bytes;
	pthread_mutex_unlock(&r->hdd.lock);
	printf("hdd model: %" PRIu64 " writes, %.1f MB, %" PRIu64 " seeks; busy %.4f of "
	       "%" PRIu64 " s of footage\n", r->f.hdd_writes, (double)r->f.hdd_bytes / 1e6,
	       r->f.hdd_seeks, r->f.hdd_busy, r->o.seconds);
	if (r->hdd.bad_volume)
		fprintf(stderr, "storage: warning: %" PRIu64 " write traces named an unknown "
		        "volume\n", r->hdd.bad_volume);
}

/* One raw pass of `bytes`; adds to the run's raw totals and returns its
 * rate in *mbps. */
static int raw_pass(struct run *r, uint64_t bytes, const char *when, double *mbps)
{
	struct raw_result res;
	int err = raw_write(r->vol_path, r->vinfo.segment_size, r->vinfo.segment_count,
	                    bytes, r->synth.pool, &res);
	if (err) {
		fprintf(stderr, "storage: raw baseline in %s failed: %s\n", r->vol_path,
		        strerror(-err));
		return err;
	}
	*mbps = (double)res.bytes / 1e6 / res.seconds;
	printf("raw %s the engine: %.1f MB in %.2f s = %.1f MB/s\n", when,
	       (double)res.bytes / 1e6, res.seconds, *mbps);
	r->f.raw.bytes += res.bytes;
	r->f.raw.seconds += res.seconds;
	if (res.segments_touched > r->f.raw.segments_touched)
		r->f.raw.segments_touched = res.segments_touched;
	return 0;
}

/* The raw baseline brackets the engine run: half of the bytes just before
 * it, the rest just after, so that a disk whose speed drifts during the run
 * (shared, virtual) does not favour either side. */
static uint64_t expected_bytes(const struct run *r)
{
	return r->o.cameras * r->o.bitrate_kbps * 125 * r->o.seconds;
}

static int raw_before(struct run *r)
{
	return raw_pass(r, expected_bytes(r) / 2, "before", &r->f.raw_before_mbps);
}

static int raw_figures(struct run *r)
{
	uint64_t rest = r->f.bytes_put > r->f.raw.bytes ? r->f.bytes_put - r->f.raw.bytes : 0;
	int err = rest ? raw_pass(r, rest, "after", &r->f.raw_after_mbps) : 0;
	if (err)
		return err;
	r->f.raw_mbps = (double)r->f.raw.bytes / 1e6 / r->f.raw.seconds;
	r->f.ratio = r->f.raw_mbps > 0 ? r->f.write_mbps / r->f.raw_mbps : 0;
	printf("raw: %.1f MB in %.2f s = %.1f MB/s over %u segment files; "
	       "engine/raw = %.3f\n", (double)r->f.raw.bytes / 1e6, r->f.raw.seconds,
	       r->f.raw_mbps, r->f.raw.segments_touched, r->f.ratio);
	return 0;
}

/* ---- Step 7: output ------------------------------------------------------ */

static void print_result_line(const struct run *r)
{
	const struct figures *f = &r->f;

	printf("cameras=%" PRIu64 " bitrate_kbps=%" PRIu64 " seconds=%" PRIu64
	       " threads=%" PRIu64 " frames=%" PRIu64 " bytes=%" PRIu64 " elapsed_s=%.3f"
	       " write_mbps=%.2f raw_mbps=%.2f ratio=%.4f dropped_frames=%" PRIu64
	       " put_errors=%" PRIu64 " peak_rss_mib=%.1f index_bytes=%" PRIu64
	       " index_bytes_per_camera_hour=%.1f index_bytes_per_camera=%.1f"
	       " index_bytes_held_per_camera_hour=%.1f camera_hours=%.4f"
	       " seek_p50_ms=%.3f seek_p99_ms=%.3f seeks=%" PRIu64
	       " hdd_busy=%.5f hdd_seeks=%" PRIu64 " verify_errors=%" PRIu64
	       " realtime=%d aligned=%d max_lag_ms=%.1f raw_before_mbps=%.2f"
	       " raw_after_mbps=%.2f ratio_after=%.4f\n",
	       r->o.cameras, r->o.bitrate_kbps, r->o.seconds, r->o.threads, f->frames_put,
	       f->bytes_put, f->elapsed_s, f->write_mbps, f->raw_mbps, f->ratio,
	       f->dropped_frames, f->put_errors, (double)f->peak_rss / MiB, f->index.bytes,
	       f->index_per_cam_hour, f->index_per_camera, f->index_held_per_cam_hour,
	       f->camera_hours, f->seek_p50_ms, f->seek_p99_ms,
	       f->seeks_done, f->hdd_busy, f->hdd_seeks, f->verify_errors, r->o.realtime,
	       r->o.aligned, (double)f->max_lag_ns / 1e6, f->raw_before_mbps,
	       f->raw_after_mbps, f->raw_after_mbps > 0 ? f->write_mbps / f->raw_after_mbps : 0);
}

/* ---- The run ------------------------------------------------------------- */

/* Steps 2-5: everything done with the engine open. */
static int engine_phase(struct run *r)
{
	int err;

	if ((err = open_engine(r)))
		return err;
	if (!(err = get_cameras(r)) && !(err = record(r)) && !(err = camera_totals(r)) &&
	    !(err = index_figures(r)))
		err = seek_figures(r);
	stg_close(r->stg);
	r->stg = NULL;
	return err;
}

static int storage_run(struct run *r)
{
	int err;

	if ((err = prepare_dirs(r)) || (err = raw_before(r)) || (err = engine_phase(r)))
		return err;
	hdd_figures(r);
	if ((err = bench_peak_rss(&r->f.peak_rss)))
		fprintf(stderr, "storage: cannot read VmHWM: %s\n", strerror(-err));
	printf("memory: peak RSS %.1f MiB (before the raw baseline)\n",
	       (double)r->f.peak_rss / MiB);
	if ((err = raw_figures(r)))
		return err;
	print_result_line(r);
	if (r->f.verify_errors) {
		fprintf(stderr, "storage: %" PRIu64 " seeks failed or returned wrong frames "
		        "(see above)\n", r->f.verify_errors);
		return -EIO;
	}
	return 0;
}

static void free_run(struct run *r)
{
	if (r->ranges)
		for (uint64_t i = 0; i < r->o.cameras; i++)
			free(r->ranges[i].r);
	free(r->ranges);
	free(r->cams);
	hdd_free(&r->hdd);
	synth_free(&r->synth);
}

int bench_storage_main(int argc, char **argv)
{
	struct run *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	if ((err = parse_storage_opts(argc - 1, argv + 1, &r->o))) {
		free(r);
		return err > 0 ? 0 : err; /* > 0: --help was asked for */
	}
	err = synth_init(&r->synth, (uint32_t)r->o.bitrate_kbps, bench_wall_us(), r->o.aligned);
	if (!err && (err = hdd_init(&r->hdd, 1)))
		synth_free(&r->synth);
	if (err) {
		free(r);
		return err;
	}
	printf("nvr-bench storage: %" PRIu64 " cameras x %" PRIu64 " kbit/s for %" PRIu64
	       " s of footage, %s\n", r->o.cameras, r->o.bitrate_kbps, r->o.seconds,
	       r->o.realtime ? "real time" : "as fast as possible");
	fflush(stdout);
	err = storage_run(r);
	free_run(r);
	free(r);
	return err;
}
