/*
 * test_mux.c - the muxer of recorded frames (web/mux.c) with the
 * simulator's fixture files (H.264 and H.265, 640x360, 25 fps, Annex B as
 * the recorder stores them): a faststart MP4 file holds every frame with
 * the right codec and size and its moov before its mdat; streamed output
 * (fragmented MP4, MPEG-TS) is the same bytes at every run, which is what
 * sizes answers in advance; an origin sets the MPEG-TS times; frames the
 * muxer cannot take are refused, and a failing writer's error comes back.
 * The fixtures are made by `make` (build/fixtures, or $BUILD/fixtures).
 */
#include <errno.h>
#include <libavformat/avformat.h>

#include "mux.h"
#include "testutil.h"

struct clip {
	struct stg_read_frame *f;
	uint8_t **data;
	size_t n;
};

/* The fixture's access units as recorded frames, 40 ms apart. */
static void clip_load(struct clip *c, const char *name, enum stg_codec codec)
{
	char path[512];
	const char *build = getenv("BUILD");
	snprintf(path, sizeof path, "%s/fixtures/%s", build ? build : "build", name);
	if (access(path, R_OK))
		cr_skip_test("fixture %s missing: run make", path);
	AVFormatContext *in = NULL;
	cr_assert_eq(avformat_open_input(&in, path, NULL, NULL), 0, "open %s", path);
	cr_assert(avformat_find_stream_info(in, NULL) >= 0);
	AVPacket *pkt = av_packet_alloc();
	memset(c, 0, sizeof *c);
	while (av_read_frame(in, pkt) >= 0) {
		c->f = realloc(c->f, (c->n + 1) * sizeof *c->f);
		c->data = realloc(c->data, (c->n + 1) * sizeof *c->data);
		cr_assert(c->f && c->data);
		c->data[c->n] = malloc((size_t)pkt->size);
		memcpy(c->data[c->n], pkt->data, (size_t)pkt->size);
		c->f[c->n] = (struct stg_read_frame){ T_BASE_US + (int64_t)c->n * T_FRAME_US,
		                                      c->data[c->n], (uint32_t)pkt->size,
		                                      pkt->flags & AV_PKT_FLAG_KEY, codec, false };
		c->n++;
		av_packet_unref(pkt);
	}
	av_packet_free(&pkt);
	avformat_close_input(&in);
	cr_assert(c->n >= 100 && c->f[0].key, "%s: %zu frames", name, c->n);
}

static void clip_free(struct clip *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->data[i]);
	free(c->data);
	free(c->f);
}

struct membuf {
	uint8_t *b;
	size_t len;
	int fail_after;                 /* calls before failing; < 0 never */
};

static int mem_write(void *opaque, const uint8_t *buf, int size)
{
	struct membuf *m = opaque;
	if (m->fail_after == 0)
		return AVERROR(EPIPE);
	if (m->fail_after > 0)
		m->fail_after--;
	m->b = realloc(m->b, m->len + (size_t)size);
	cr_assert(m->b);
	memcpy(m->b + m->len, buf, (size_t)size);
	m->len += (size_t)size;
	return size;
}

/* Muxes the whole clip into memory. */
static void stream_clip(const struct clip *c, const char *format, const struct mux_options *o,
                        struct membuf *out)
{
	struct mux *m;
	memset(out, 0, sizeof *out);
	out->fail_after = -1;
	cr_assert_eq(mux_open_stream_opts(&m, format, &c->f[0], mem_write, out, o), 0);
	for (size_t i = 0; i < c->n; i++)
		cr_assert_eq(mux_frame(m, &c->f[i]), 0, "frame %zu", i);
	cr_assert_eq(mux_finish(m), 0);
	cr_assert_eq(mux_frames(m), c->n);
	mux_free(m);
}

/* Opens a file with libavformat: codec, size, packet count, first pts. */
static void probe(const char *path, enum AVCodecID codec, size_t frames, int64_t *first_pts)
{
	AVFormatContext *in = NULL;
	cr_assert_eq(avformat_open_input(&in, path, NULL, NULL), 0, "open %s", path);
	cr_assert(avformat_find_stream_info(in, NULL) >= 0);
	AVCodecParameters *par = in->streams[0]->codecpar;
	cr_assert_eq(par->codec_id, codec);
	cr_assert_eq(par->width, 640);
	cr_assert_eq(par->height, 360);
	AVPacket *pkt = av_packet_alloc();
	size_t n = 0;
	while (av_read_frame(in, pkt) >= 0) {
		if (n == 0 && first_pts)
			*first_pts = pkt->pts;
		n++;
		av_packet_unref(pkt);
	}
	cr_assert_eq(n, frames, "%s: %zu packets, %zu frames muxed", path, n, frames);
	av_packet_free(&pkt);
	avformat_close_input(&in);
}

static void file_roundtrip(const char *fixture, enum stg_codec codec, enum AVCodecID id)
{
	struct clip c;
	clip_load(&c, fixture, codec);
	char *dir = tu_tmpdir(), path[600];
	snprintf(path, sizeof path, "%s/clip.mp4", dir);
	struct mux *m;
	cr_assert_eq(mux_open_file(&m, path, &c.f[0]), 0);
	for (size_t i = 0; i < c.n; i++)
		cr_assert_eq(mux_frame(m, &c.f[i]), 0);
	cr_assert_eq(mux_finish(m), 0);
	cr_assert_eq(mux_frames(m), c.n);
	mux_free(m);
	probe(path, id, c.n, NULL);
	/* faststart: the moov box comes before the mdat box */
	FILE *f = fopen(path, "rb");
	uint8_t head[8];
	long moov = -1, mdat = -1, off = 0;
	while (fseek(f, off, SEEK_SET) == 0 && fread(head, 1, 8, f) == 8) {
		uint32_t len = (uint32_t)head[0] << 24 | head[1] << 16 | head[2] << 8 | head[3];
		if (!memcmp(head + 4, "moov", 4))
			moov = off;
		if (!memcmp(head + 4, "mdat", 4))
			mdat = off;
		cr_assert(len >= 8, "box of %u bytes", len);
		off += len;
	}
	fclose(f);
	cr_assert(moov >= 0 && mdat > moov, "moov at %ld, mdat at %ld", moov, mdat);
	tu_rmrf(dir);
	free(dir);
	clip_free(&c);
}

Test(mux, file_h264_faststart_every_frame)
{
	file_roundtrip("h264-10-1000-25-640x360.264", STG_CODEC_H264, AV_CODEC_ID_H264);
}

Test(mux, file_h265_faststart_every_frame)
{
	file_roundtrip("h265-10-1000-25-640x360.265", STG_CODEC_H265, AV_CODEC_ID_HEVC);
}

Test(mux, streams_are_deterministic_and_readable)
{
	struct clip c;
	clip_load(&c, "h264-10-1000-25-640x360.264", STG_CODEC_H264);
	const char *formats[] = { "mp4", "mpegts" };
	char *dir = tu_tmpdir();
	for (int i = 0; i < 2; i++) {
		struct membuf a, b;
		stream_clip(&c, formats[i], NULL, &a);
		stream_clip(&c, formats[i], NULL, &b);
		cr_assert_eq(a.len, b.len, "%s: %zu then %zu bytes", formats[i], a.len, b.len);
		cr_assert(memcmp(a.b, b.b, a.len) == 0, "%s: bytes differ", formats[i]);
		char path[600];
		snprintf(path, sizeof path, "%s/out.%s", dir, formats[i]);
		FILE *f = fopen(path, "wb");
		cr_assert_eq(fwrite(a.b, 1, a.len, f), a.len);
		fclose(f);
		probe(path, AV_CODEC_ID_H264, c.n, NULL);
		free(a.b);
		free(b.b);
	}
	tu_rmrf(dir);
	free(dir);
	clip_free(&c);
}

Test(mux, origin_sets_mpegts_times)
{
	struct clip c;
	clip_load(&c, "h265-10-1000-25-640x360.265", STG_CODEC_H265);
	struct mux_options o = { .origin_us = T_BASE_US - 1000000, .has_origin = true };
	struct membuf a;
	stream_clip(&c, "mpegts", &o, &a);
	char *dir = tu_tmpdir(), path[600];
	snprintf(path, sizeof path, "%s/o.ts", dir);
	FILE *f = fopen(path, "wb");
	cr_assert_eq(fwrite(a.b, 1, a.len, f), a.len);
	fclose(f);
	int64_t pts = -1;
	probe(path, AV_CODEC_ID_HEVC, c.n, &pts);
	cr_assert_eq(pts, 90000, "first pts %lld, 1 s after the origin", (long long)pts);
	free(a.b);
	tu_rmrf(dir);
	free(dir);
	clip_free(&c);
}

Test(mux, refusals_and_writer_errors)
{
	struct clip c;
	clip_load(&c, "h264-10-1000-25-640x360.264", STG_CODEC_H264);
	struct membuf out = { .fail_after = -1 };
	struct mux *m = NULL;
	size_t p = 1;
	while (c.f[p].key)
		p++;
	cr_assert_eq(mux_open_stream(&m, "mp4", &c.f[p], mem_write, &out), -EINVAL, "not a key frame");
	cr_assert_null(m);
	cr_assert_eq(mux_open_stream(&m, "avi", &c.f[0], mem_write, &out), -EINVAL);
	struct stg_read_frame odd = c.f[0];
	odd.codec = STG_CODEC_UNKNOWN;
	cr_assert_eq(mux_open_stream(&m, "mp4", &odd, mem_write, &out), -EINVAL);
	cr_assert_eq(out.len, 0, "nothing written by refused opens");
	cr_assert_eq(mux_open_stream(&m, "mp4", &c.f[0], mem_write, &out), 0);
	cr_assert_eq(mux_frame(m, &c.f[p]), -EINVAL, "a first frame that is not a key frame");
	struct stg_read_frame h265 = c.f[0];
	h265.codec = STG_CODEC_H265;
	cr_assert_eq(mux_frame(m, &c.f[0]), 0);
	cr_assert_eq(mux_frame(m, &h265), -EINVAL, "another codec");
	mux_free(m);
	free(out.b);
	/* a writer that fails: its error comes back, by the end at the latest */
	out = (struct membuf){ .fail_after = 1 };
	cr_assert_eq(mux_open_stream(&m, "mpegts", &c.f[0], mem_write, &out), 0);
	int err = 0;
	for (size_t i = 0; i < c.n && !err; i++)
		err = mux_frame(m, &c.f[i]);
	if (!err)
		err = mux_finish(m);
	cr_assert_eq(err, -EPIPE, "writer error: %d", err);
	mux_free(m);
	free(out.b);
	mux_free(NULL);
	cr_assert_eq(mux_frames(NULL), 0);
	clip_free(&c);
}
