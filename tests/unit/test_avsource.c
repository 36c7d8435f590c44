/*
 * test_avsource.c - cameras recorded through libavformat (nvr/avsource.c).
 *
 * Each test makes its own short MP4 with ffmpeg (testsrc2, 25 fps, no
 * B-frames), records it as a "camera" into a real storage engine on a
 * temporary volume, and reads the frames back: their count must equal the
 * file's packet count, their bytes the Annex B conversion of each packet
 * (made here with the same bitstream filter through the libavcodec API),
 * their times must strictly increase, and the first frame must be a key
 * frame in Annex B carrying its parameter sets. Failure paths (missing
 * file, unsupported codec, HTTP with credentials) run beside a healthy
 * source that must still record every frame.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/base64.h>

#include "avsource.h"
#include "log.h"
#include "testutil.h"

#define WAIT_US (30 * 1000000LL)   /* generous bound for any state to be reached */

/* ---- fixtures --------------------------------------------------------- */

static void make_video(const char *path, const char *codec_args)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "ffmpeg -hide_banner -loglevel error -y -f lavfi "
	         "-i testsrc2=size=320x240:rate=25 -t 2 -pix_fmt yuv420p %s '%s'",
	         codec_args, path);
	cr_assert_eq(system(cmd), 0, "ffmpeg failed: %s", cmd);
}

static void make_h264(const char *path)
{
	make_video(path, "-c:v libx264 -bf 0 -g 25");
}

/* The packets of a file's video stream, converted to Annex B. */
struct ref_frame {
	uint8_t *data;
	int size;
	bool key;
};
struct ref {
	struct ref_frame *f;
	size_t n;
	enum stg_codec codec;
	bool avcc;                 /* the container stores AVCC / hvcC */
	uint64_t bytes;
};

static void ref_push(struct ref *r, const AVPacket *pkt)
{
	r->f = realloc(r->f, (r->n + 1) * sizeof *r->f);
	cr_assert(r->f);
	struct ref_frame *f = &r->f[r->n++];
	f->data = malloc((size_t)pkt->size);
	cr_assert(f->data);
	memcpy(f->data, pkt->data, (size_t)pkt->size);
	f->size = pkt->size;
	f->key = pkt->flags & AV_PKT_FLAG_KEY;
	r->bytes += (uint64_t)pkt->size;
}

static void ref_drain(struct ref *r, AVBSFContext *bsf, AVPacket *out)
{
	int err;
	while ((err = av_bsf_receive_packet(bsf, out)) >= 0) {
		ref_push(r, out);
		av_packet_unref(out);
	}
	cr_assert(err == AVERROR(EAGAIN) || err == AVERROR_EOF, "bsf receive: %d", err);
}

/* Reads a file's video packets the way a viewer of the recording needs
 * them: through h264_mp4toannexb / hevc_mp4toannexb when the container
 * stores AVCC / hvcC (first extradata byte: configurationVersion 1), as
 * they are when the stream is already Annex B. */
static void ref_load(const char *path, struct ref *r)
{
	memset(r, 0, sizeof *r);
	AVFormatContext *ic = NULL;
	cr_assert_eq(avformat_open_input(&ic, path, NULL, NULL), 0, "open %s", path);
	cr_assert_geq(avformat_find_stream_info(ic, NULL), 0);
	int si = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	cr_assert_geq(si, 0);
	const AVCodecParameters *par = ic->streams[si]->codecpar;
	bool hevc = par->codec_id == AV_CODEC_ID_HEVC;
	r->codec = hevc ? STG_CODEC_H265 : STG_CODEC_H264;
	r->avcc = par->extradata_size > 0 && par->extradata[0] == 1;
	AVBSFContext *bsf = NULL;
	if (r->avcc) {
		const AVBitStreamFilter *f = av_bsf_get_by_name(hevc ? "hevc_mp4toannexb"
		                                                     : "h264_mp4toannexb");
		cr_assert(f);
		cr_assert_eq(av_bsf_alloc(f, &bsf), 0);
		cr_assert_geq(avcodec_parameters_copy(bsf->par_in, par), 0);
		bsf->time_base_in = ic->streams[si]->time_base;
		cr_assert_eq(av_bsf_init(bsf), 0);
	}
	AVPacket *pkt = av_packet_alloc(), *out = av_packet_alloc();
	while (av_read_frame(ic, pkt) >= 0) {
		if (pkt->stream_index == si && bsf) {
			cr_assert_eq(av_bsf_send_packet(bsf, pkt), 0);
			ref_drain(r, bsf, out);
		} else if (pkt->stream_index == si) {
			ref_push(r, pkt);
		}
		av_packet_unref(pkt);
	}
	if (bsf) {
		cr_assert_eq(av_bsf_send_packet(bsf, NULL), 0);
		ref_drain(r, bsf, out);
	}
	av_packet_free(&pkt);
	av_packet_free(&out);
	av_bsf_free(&bsf);
	avformat_close_input(&ic);
	cr_assert_gt(r->n, 10, "%s has frames", path);
}

static void ref_free(struct ref *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->f[i].data);
	free(r->f);
}

/* ---- checks ----------------------------------------------------------- */

/* True when an Annex B access unit holds an SPS NAL (H.264 type 7, H.265
 * type 33). */
static bool has_sps(const uint8_t *d, uint32_t n, enum stg_codec codec)
{
	for (uint32_t i = 0; i + 3 < n; i++) {
		if (d[i] || d[i + 1] || d[i + 2] != 1)
			continue;
		uint8_t h = d[i + 3];
		int type = codec == STG_CODEC_H265 ? (h >> 1) & 0x3f : h & 0x1f;
		if (type == (codec == STG_CODEC_H265 ? 33 : 7))
			return true;
	}
	return false;
}

struct recorded {
	size_t frames;
	int64_t first_us, last_us;
};

/* Reads everything camera `cam` has and checks it against `passes` plays
 * of the reference (every frame, in order, byte for byte). With
 * `exact_times`, frame i of a pass must be 40 ms x i after the pass's
 * first (25 fps). */
static struct recorded check_recorded(struct stg *stg, uint32_t cam,
                                      const struct ref *r, size_t passes,
                                      bool exact_times)
{
	struct stg_iter *it;
	int err = stg_iter_open(stg, cam, INT64_MIN / 2, INT64_MAX / 2, &it);
	cr_assert_eq(err, 0, "iter_open cam %u: %s", cam, stg_strerror(err));
	struct stg_read_frame f;
	struct recorded rec = { 0, 0, 0 };
	int64_t pass_first = 0;
	while ((err = stg_iter_next(it, &f)) == 1) {
		size_t n = rec.frames, i = n % r->n;
		cr_assert_lt(n, r->n * passes, "cam %u: more frames than %zu plays", cam, passes);
		if (n == 0) {
			cr_assert(f.key, "cam %u starts with a key frame", cam);
			cr_assert(f.size >= 4 && !memcmp(f.data, "\0\0\0\1", 4),
			          "cam %u: first frame starts with an Annex B start code", cam);
			cr_assert(has_sps(f.data, f.size, f.codec), "cam %u: SPS in front", cam);
			rec.first_us = f.time_us;
		} else {
			cr_assert_gt(f.time_us, rec.last_us, "cam %u frame %zu time increases", cam, n);
		}
		if (i == 0)
			pass_first = f.time_us;
		if (exact_times)
			cr_assert_eq(f.time_us - pass_first, (int64_t)i * 40000,
			             "cam %u frame %zu at its stream time", cam, n);
		cr_assert_eq(f.codec, r->codec, "cam %u frame %zu codec", cam, n);
		cr_assert_eq(f.key, r->f[i].key, "cam %u frame %zu key flag", cam, n);
		cr_assert_eq(f.size, (uint32_t)r->f[i].size, "cam %u frame %zu size", cam, n);
		cr_assert(!memcmp(f.data, r->f[i].data, f.size), "cam %u frame %zu bytes", cam, n);
		rec.last_us = f.time_us;
		rec.frames++;
	}
	cr_assert_eq(err, 0, "iterator cam %u: %s", cam, stg_strerror(err));
	stg_iter_close(it);
	cr_assert_eq(rec.frames, r->n * passes, "cam %u: %zu frames recorded, %zu plays "
	             "of the file have %zu", cam, rec.frames, passes, r->n * passes);
	return rec;
}

/* ---- pool helpers ----------------------------------------------------- */

static struct avsource_pool *pool_start(struct stg *stg, uint32_t threads,
                                        uint32_t backoff_min_ms, uint32_t backoff_max_ms)
{
	struct ingest_config cfg = {
		.stg = stg, .av_threads = threads,
		.backoff_min_ms = backoff_min_ms, .backoff_max_ms = backoff_max_ms,
		.timeout_ms = 5000,
	};
	struct avsource_pool *p;
	cr_assert_eq(avsource_pool_start(&cfg, &p), 0);
	return p;
}

static void add_camera(struct avsource_pool *p, uint32_t id, const char *url)
{
	struct camera_record c = { .id = id, .enabled = true };
	snprintf(c.name, sizeof c.name, "cam%u", id);
	snprintf(c.main_url, sizeof c.main_url, "%s", url);
	cr_assert_eq(avsource_add(p, &c), 0, "add camera %u", id);
}

static struct ingest_camera_status status_of(struct avsource_pool *p, uint32_t id)
{
	struct ingest_camera_status st;
	cr_assert_eq(avsource_status(p, id, &st), 0, "status of camera %u", id);
	cr_assert_eq(st.id, id);
	return st;
}

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Polls until a camera's first session has ended (BACKOFF) and checks it
 * handed exactly `frames` frames to storage; returns that status. */
static struct ingest_camera_status wait_done(struct avsource_pool *p, uint32_t id,
                                             uint64_t frames)
{
	int64_t end = nvr_mono_us() + WAIT_US;
	struct ingest_camera_status st;
	while ((st = status_of(p, id)).state != INGEST_BACKOFF) {
		cr_assert_lt(nvr_mono_us(), end, "camera %u: %llu frames, state %d",
		             id, (unsigned long long)st.frames, st.state);
		nap_ms(10);
	}
	cr_assert_eq(st.frames, frames, "camera %u: %llu frames handed to storage, "
	             "file has %llu (error '%s')", id, (unsigned long long)st.frames,
	             (unsigned long long)frames, st.last_error);
	return st;
}

static void wait_state(struct avsource_pool *p, uint32_t id, enum ingest_state s)
{
	int64_t end = nvr_mono_us() + WAIT_US;
	while (status_of(p, id).state != s) {
		cr_assert_lt(nvr_mono_us(), end, "camera %u never reached state %d", id, s);
		nap_ms(5);
	}
}

/* ---- tests ------------------------------------------------------------ */

Test(avsource, h264_file_recorded_byte_exact_in_real_time)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	char path[600];
	snprintf(path, sizeof path, "%s/h264.mp4", e.dir);
	make_h264(path);
	struct ref r;
	ref_load(path, &r);
	cr_assert_eq(r.codec, STG_CODEC_H264);
	cr_assert(r.avcc, "MP4 stores AVCC");

	struct avsource_pool *p = pool_start(e.stg, 2, 60000, 60000);
	int64_t t_add = nvr_now_us();
	add_camera(p, 1, path);

	/* streaming: paced at 25 fps, uptime known */
	wait_state(p, 1, INGEST_STREAMING);
	int64_t streaming_at = nvr_mono_us();
	struct ingest_camera_status st = status_of(p, 1);
	cr_assert_geq(st.streaming_since_us, t_add);
	double fps = 0, kbps = 0;
	int64_t end = nvr_mono_us() + WAIT_US;
	while ((st = status_of(p, 1)).frames < r.n / 2) {
		cr_assert_lt(nvr_mono_us(), end);
		nap_ms(10);
	}
	if (st.state == INGEST_STREAMING) {
		fps = st.fps;
		kbps = st.bitrate_kbps;
	}
	st = wait_done(p, 1, r.n);
	int64_t streamed_us = nvr_mono_us() - streaming_at;

	cr_assert(fps > 15 && fps < 35, "paced at about 25 fps (%.1f)", fps);
	cr_assert_gt(kbps, 0);
	cr_assert_geq(streamed_us, (int64_t)(r.n - 1) * 40000 - 200000,
	              "%zu frames took %lld us: paced at real time", r.n,
	              (long long)streamed_us);
	cr_assert_eq(st.bytes, r.bytes);
	cr_assert_eq(st.frames_dropped, 0);
	cr_assert_eq(st.reconnects, 0);
	cr_assert_eq(st.streaming_since_us, 0);
	cr_assert(strstr(st.last_error, "end of input"), "last_error '%s'", st.last_error);
	cr_assert(strstr(st.last_error, "h264.mp4"), "last_error '%s'", st.last_error);
	struct ingest_totals tot;
	avsource_totals(p, &tot);
	cr_assert_eq(tot.cameras, 1);
	cr_assert_eq(tot.frames, r.n);
	cr_assert_eq(tot.bytes, r.bytes);

	cr_assert_eq(avsource_remove(p, 1), 0);
	cr_assert_eq(avsource_status(p, 1, &st), -ENOENT);
	cr_assert_eq(avsource_remove(p, 1), -ENOENT);
	cr_assert_eq(stg_sync(e.stg), 0);
	struct recorded rec = check_recorded(e.stg, 1, &r, 1, true);
	cr_assert_geq(rec.first_us, t_add);
	cr_assert_leq(rec.last_us, nvr_now_us());

	avsource_pool_stop(p);
	ref_free(&r);
	tu_env_fini(&e);
}

Test(avsource, failing_sources_back_off_and_others_record)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	char good[600], missing[600], mpeg4[600];
	snprintf(good, sizeof good, "%s/good.mp4", e.dir);
	snprintf(missing, sizeof missing, "%s/missing.mp4", e.dir);
	snprintf(mpeg4, sizeof mpeg4, "%s/part2.mp4", e.dir);
	make_h264(good);
	make_video(mpeg4, "-c:v mpeg4");
	struct ref r;
	ref_load(good, &r);

	struct avsource_pool *p = pool_start(e.stg, 2, 1000, 2000);
	add_camera(p, 2, missing);
	add_camera(p, 3, mpeg4);
	add_camera(p, 1, good);

	wait_state(p, 2, INGEST_BACKOFF);
	struct ingest_camera_status st = status_of(p, 2);
	cr_assert(strstr(st.last_error, "missing.mp4"), "last_error '%s'", st.last_error);
	cr_assert(strstr(st.last_error, "No such file"), "last_error '%s'", st.last_error);
	cr_assert_eq(st.frames, 0);

	struct ingest_camera_status ok = wait_done(p, 1, r.n);
	cr_assert_eq(avsource_remove(p, 1), 0);   /* before its own retry */
	cr_assert_eq(ok.frames_dropped, 0);

	/* the failing ones kept retrying, each retry counted */
	int64_t end = nvr_mono_us() + WAIT_US;
	while (status_of(p, 2).reconnects < 1 || status_of(p, 3).reconnects < 1) {
		cr_assert_lt(nvr_mono_us(), end, "failing sources retried");
		nap_ms(20);
	}
	st = status_of(p, 3);
	cr_assert(strstr(st.last_error, "unsupported codec mpeg4"), "last_error '%s'",
	          st.last_error);
	cr_assert_eq(st.frames, 0);

	cr_assert_eq(stg_sync(e.stg), 0);
	check_recorded(e.stg, 1, &r, 1, true);
	struct stg_range range;
	cr_assert_eq(stg_ranges(e.stg, 2, 0, INT64_MAX, &range, 1), 0);
	cr_assert_eq(stg_ranges(e.stg, 3, 0, INT64_MAX, &range, 1), 0);
	struct ingest_totals tot;
	avsource_totals(p, &tot);
	cr_assert_eq(tot.cameras, 2);
	cr_assert_eq(tot.frames, 0);
	cr_assert_geq(tot.reconnects, 2);

	avsource_pool_stop(p);
	ref_free(&r);
	tu_env_fini(&e);
}

Test(avsource, more_sources_than_threads_wait_their_turn)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	char path[600];
	snprintf(path, sizeof path, "%s/h264.mp4", e.dir);
	make_h264(path);
	struct ref r;
	ref_load(path, &r);

	struct avsource_pool *p = pool_start(e.stg, 1, 60000, 60000);
	add_camera(p, 1, path);
	add_camera(p, 2, path);
	wait_state(p, 1, INGEST_STREAMING);
	struct ingest_camera_status st = status_of(p, 2);
	cr_assert_eq(st.state, INGEST_WAITING_WORKER, "second source waits (state %d)", st.state);
	cr_assert_eq(st.frames, 0);
	struct ingest_totals tot;
	avsource_totals(p, &tot);
	cr_assert_eq(tot.cameras, 2);
	cr_assert_eq(tot.streaming, 1);

	/* the only thread moves on when the first one ends and backs off */
	wait_done(p, 2, r.n);
	st = status_of(p, 1);
	cr_assert_eq(st.state, INGEST_BACKOFF);
	cr_assert_eq(st.frames, r.n);

	cr_assert_eq(avsource_remove(p, 1), 0);
	cr_assert_eq(avsource_remove(p, 2), 0);
	cr_assert_eq(stg_sync(e.stg), 0);
	struct recorded a = check_recorded(e.stg, 1, &r, 1, true);
	struct recorded b = check_recorded(e.stg, 2, &r, 1, true);
	cr_assert_gt(b.first_us, a.last_us, "the second was recorded after the first");

	avsource_pool_stop(p);
	ref_free(&r);
	tu_env_fini(&e);
}

Test(avsource, h265_file_stored_as_h265)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	char path[600];
	snprintf(path, sizeof path, "%s/h265.mp4", e.dir);
	make_video(path, "-c:v libx265 -x265-params bframes=0:keyint=25:log-level=error");
	struct ref r;
	ref_load(path, &r);
	cr_assert_eq(r.codec, STG_CODEC_H265);
	cr_assert(r.avcc, "MP4 stores hvcC");

	struct avsource_pool *p = pool_start(e.stg, 1, 60000, 60000);
	add_camera(p, 5, path);
	wait_done(p, 5, r.n);
	cr_assert_eq(avsource_remove(p, 5), 0);
	cr_assert_eq(stg_sync(e.stg), 0);
	check_recorded(e.stg, 5, &r, 1, true);   /* checks STG_CODEC_H265 on every frame */

	avsource_pool_stop(p);
	ref_free(&r);
	tu_env_fini(&e);
}

Test(avsource, annexb_elementary_stream_passes_through)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	char path[600];
	snprintf(path, sizeof path, "%s/cam.264", e.dir);
	make_video(path, "-c:v libx264 -bf 0 -g 25 -x264-params repeat-headers=1 -f h264");
	struct ref r;
	ref_load(path, &r);
	cr_assert(!r.avcc, "a raw .264 stream is Annex B");

	struct avsource_pool *p = pool_start(e.stg, 1, 60000, 60000);
	add_camera(p, 4, path);
	struct ingest_camera_status st = wait_done(p, 4, r.n);
	cr_assert_eq(st.bytes, r.bytes, "bytes unchanged");
	cr_assert_eq(avsource_remove(p, 4), 0);
	cr_assert_eq(stg_sync(e.stg), 0);
	check_recorded(e.stg, 4, &r, 1, true);

	avsource_pool_stop(p);
	ref_free(&r);
	tu_env_fini(&e);
}

Test(avsource, file_loops_after_a_backoff)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	char path[600];
	snprintf(path, sizeof path, "%s/loop.mp4", e.dir);
	make_h264(path);
	struct ref r;
	ref_load(path, &r);

	struct avsource_pool *p = pool_start(e.stg, 1, 300, 600);
	add_camera(p, 6, path);
	int64_t end = nvr_mono_us() + WAIT_US;
	struct ingest_camera_status st;
	int64_t first_end = 0;
	/* the end of the second play: one reconnect, back in BACKOFF */
	while (!((st = status_of(p, 6)).reconnects == 1 && st.state == INGEST_BACKOFF)) {
		if (!first_end && st.state == INGEST_BACKOFF)
			first_end = nvr_mono_us();
		if (first_end && st.state == INGEST_STREAMING && st.reconnects == 1)
			cr_assert_geq(nvr_mono_us() - first_end, 300000 - 20000,
			              "waited out the backoff before playing again");
		cr_assert_lt(nvr_mono_us(), end, "state %d reconnects %llu", st.state,
		             (unsigned long long)st.reconnects);
		nap_ms(5);
	}
	cr_assert(first_end, "the first play ended in BACKOFF");
	cr_assert_eq(st.frames, 2 * r.n);
	cr_assert_eq(avsource_remove(p, 6), 0);
	cr_assert_eq(stg_sync(e.stg), 0);
	struct recorded rec = check_recorded(e.stg, 6, &r, 2, true);
	cr_assert_gt(rec.last_us - rec.first_us, (int64_t)(2 * r.n - 1) * 40000,
	             "a gap between the plays");

	avsource_pool_stop(p);
	ref_free(&r);
	tu_env_fini(&e);
}

/* A one-shot HTTP server: asks for Basic credentials, then answers 404. */
struct http_srv {
	int fd;
	uint16_t port;
	char req[4][2048];
	int nreq;
	pthread_t th;
};

static void *http_srv_run(void *arg)
{
	struct http_srv *h = arg;
	for (int i = 0; i < 4; i++) {
		struct pollfd pfd = { h->fd, POLLIN, 0 };
		if (poll(&pfd, 1, 15000) <= 0)
			break;
		int c = accept(h->fd, NULL, NULL);
		if (c < 0)
			break;
		char *buf = h->req[i];
		size_t len = 0;
		while (len < sizeof h->req[i] - 1 && !strstr(buf, "\r\n\r\n")) {
			ssize_t k = recv(c, buf + len, sizeof h->req[i] - 1 - len, 0);
			if (k <= 0)
				break;
			len += (size_t)k;
			buf[len] = '\0';
		}
		h->nreq = i + 1;
		bool authed = strstr(buf, "Authorization:") != NULL;
		const char *resp = authed
			? "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
			: "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n"
			  "Content-Length: 0\r\nConnection: close\r\n\r\n";
		ssize_t sent = send(c, resp, strlen(resp), MSG_NOSIGNAL);
		(void)sent;
		close(c);
		if (authed)
			break;
	}
	return NULL;
}

static void http_srv_start(struct http_srv *h)
{
	memset(h, 0, sizeof *h);
	h->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(h->fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	cr_assert_eq(bind(h->fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(h->fd, 4), 0);
	cr_assert_eq(getsockname(h->fd, (struct sockaddr *)&a, &alen), 0);
	h->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&h->th, NULL, http_srv_run, h), 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert(f);
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

Test(avsource, credentials_reach_the_server_but_never_logs_or_errors)
{
	struct tu_env e;
	tu_env_init(&e, 1, 16 << 20, 8);
	tu_env_open(&e);
	char good[600], logpath[600];
	snprintf(good, sizeof good, "%s/good.mp4", e.dir);
	snprintf(logpath, sizeof logpath, "%s/stderr.log", e.dir);
	make_h264(good);
	struct ref r;
	ref_load(good, &r);
	struct http_srv h;
	http_srv_start(&h);

	/* everything the pool and libavformat log goes to a file */
	fflush(stderr);
	int saved = dup(2);
	int fd = open(logpath, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	cr_assert(saved >= 0 && fd >= 0);
	cr_assert_geq(dup2(fd, 2), 0);
	close(fd);

	struct avsource_pool *p = pool_start(e.stg, 2, 60000, 60000);
	struct camera_record c = { .id = 9, .enabled = true };
	/* the record's credentials replace any in the URL */
	snprintf(c.main_url, sizeof c.main_url, "http://old:stale-creds@127.0.0.1:%u/cam.mp4",
	         h.port);
	snprintf(c.username, sizeof c.username, "admin");
	snprintf(c.password, sizeof c.password, "p@ss:w/rd%%");
	cr_assert_eq(avsource_add(p, &c), 0);
	add_camera(p, 1, good);

	wait_state(p, 9, INGEST_BACKOFF);
	struct ingest_camera_status st = status_of(p, 9);
	struct ingest_camera_status ok = wait_done(p, 1, r.n);
	cr_assert_eq(avsource_remove(p, 1), 0);
	cr_assert_eq(avsource_remove(p, 9), 0);
	avsource_pool_stop(p);
	pthread_join(h.th, NULL);
	close(h.fd);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);

	/* the credentials were sent, decoded as the record has them */
	char want[320], b64[256];
	const char *plain = "admin:p@ss:w/rd%";
	cr_assert(av_base64_encode(b64, sizeof b64, (const uint8_t *)plain, (int)strlen(plain)));
	snprintf(want, sizeof want, "Authorization: Basic %s\r\n", b64);
	cr_assert_eq(h.nreq, 2, "a challenge, then a request with credentials (%d)", h.nreq);
	cr_assert(strstr(h.req[1], want), "request with credentials:\n%s", h.req[1]);
	cr_assert(strstr(h.req[1], "GET /cam.mp4 "), "request:\n%s", h.req[1]);

	/* ... and appear nowhere else */
	cr_assert(strstr(st.last_error, "404"), "last_error '%s'", st.last_error);
	char where[64];
	snprintf(where, sizeof where, "http://127.0.0.1:%u/cam.mp4", h.port);
	cr_assert(strstr(st.last_error, where), "last_error '%s'", st.last_error);
	const char *log = slurp(logpath);
	cr_assert(strstr(log, where), "the log names the URL:\n%s", log);
	static const char *const secrets[] = { "admin", "p@ss", "p%40ss", "stale-creds", "old:" };
	for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
		cr_assert(!strstr(st.last_error, secrets[i]), "'%s' in last_error", secrets[i]);
		cr_assert(!strstr(log, secrets[i]), "'%s' in the log:\n%s", secrets[i], log);
	}

	/* the healthy source beside it lost nothing */
	cr_assert_eq(ok.frames_dropped, 0);
	cr_assert_eq(stg_sync(e.stg), 0);
	check_recorded(e.stg, 1, &r, 1, true);
	ref_free(&r);
	tu_env_fini(&e);
}
