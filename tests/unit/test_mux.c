/*
 * test_mux.c - the muxer of recorded frames (web/mux.c) with the
 * simulator's fixture files (H.264 and H.265, 640x360, 25 fps, Annex B as
 * the recorder stores them): an export's file (fragmented MP4 through
 * web/export_file.c) holds every frame with the right codec and size, and
 * its hash and length are those of the bytes on disk; streamed output
 * (fragmented MP4, MPEG-TS) is the same bytes at every run, which is what
 * sizes answers in advance; an origin sets the MPEG-TS times; frames the
 * muxer cannot take are refused, and a failing writer's error comes back.
 * The fixtures are made by `make` (build/fixtures, or $BUILD/fixtures).
 */
#include <dirent.h>
#include <errno.h>
#include <libavformat/avformat.h>
#include <openssl/evp.h>

#include "export_file.h"
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

/* SHA-256 of a file as 64 hex digits, read independently of export_file. */
static void file_sha256(const char *path, char hex[65], uint64_t *size)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "open %s", path);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	cr_assert(md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
	uint8_t buf[65536];
	size_t n;
	*size = 0;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		cr_assert_eq(EVP_DigestUpdate(md, buf, n), 1);
		*size += n;
	}
	fclose(f);
	unsigned char sum[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	cr_assert(EVP_DigestFinal_ex(md, sum, &len) == 1 && len == 32);
	EVP_MD_CTX_free(md);
	for (unsigned i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", sum[i]);
}

/* The top-level boxes of an MP4 file, as "ftyp moov moof mdat ...". */
static void file_boxes(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f);
	uint8_t head[8];
	long off = 0;
	out[0] = '\0';
	while (fseek(f, off, SEEK_SET) == 0 && fread(head, 1, 8, f) == 8) {
		uint32_t len = (uint32_t)head[0] << 24 | head[1] << 16 | head[2] << 8 | head[3];
		cr_assert(len >= 8, "box of %u bytes at %ld", len, off);
		size_t at = strlen(out);
		snprintf(out + at, cap - at, "%s%.4s", at ? " " : "", (const char *)head + 4);
		off += len;
	}
	fclose(f);
}

/* An export's file: the fragmented MP4 stream written through export_file
 * holds every frame, is read back by libavformat, and its SHA-256 and
 * length are those of the bytes on disk. */
static void file_roundtrip(const char *fixture, enum stg_codec codec, enum AVCodecID id)
{
	struct clip c;
	clip_load(&c, fixture, codec);
	char *dir = tu_tmpdir(), path[600];
	snprintf(path, sizeof path, "%s/clip.mp4", dir);
	struct export_file *out;
	struct mux *m;
	cr_assert_eq(export_file_new(&out), 0);
	cr_assert_eq(export_file_open(out, path, 1), 0);
	cr_assert_eq(mux_open_stream(&m, "mp4", &c.f[0], export_file_write, out), 0);
	for (size_t i = 0; i < c.n; i++)
		cr_assert_eq(mux_frame(m, &c.f[i]), 0);
	cr_assert_eq(mux_finish(m), 0);
	cr_assert_eq(mux_frames(m), c.n);
	mux_free(m);
	char sha[65], want[65], boxes[4096];
	uint64_t bytes = 0, size = 0;
	cr_assert_eq(export_file_finish(out, sha, &bytes), 0);
	export_file_free(out);
	file_sha256(path, want, &size);
	cr_assert_eq(bytes, size, "finish says %llu bytes, the file has %llu",
	             (unsigned long long)bytes, (unsigned long long)size);
	cr_assert_str_eq(sha, want);
	probe(path, id, c.n, NULL);
	/* one fragment per key frame (a 50-frame GOP), the random-access table last */
	file_boxes(path, boxes, sizeof boxes);
	cr_assert(!strncmp(boxes, "ftyp moov moof mdat moof mdat", 29), "boxes: %s", boxes);
	cr_assert(strlen(boxes) > 5 && !strcmp(boxes + strlen(boxes) - 4, "mfra"), "boxes: %s", boxes);
	tu_rmrf(dir);
	free(dir);
	clip_free(&c);
}

Test(mux, export_file_h264_every_frame_hashed)
{
	file_roundtrip("h264-10-1000-25-640x360.264", STG_CODEC_H264, AV_CODEC_ID_H264);
}

Test(mux, export_file_h265_every_frame_hashed)
{
	file_roundtrip("h265-10-1000-25-640x360.265", STG_CODEC_H265, AV_CODEC_ID_HEVC);
}

/* Bytes across several of the writer's blocks, in odd pieces: the file
 * holds them in order, its length is not a multiple of the alignment, and
 * the hash is theirs; a disk that is full reports -ENOSPC at the latest on
 * finish. */
Test(mux, export_file_blocks_and_full_disk)
{
	size_t total = (9u << 20) + 12345;
	uint8_t *src = malloc(total);
	cr_assert(src);
	for (size_t i = 0; i < total; i++)
		src[i] = (uint8_t)(i * 2654435761u >> 13);
	char *dir = tu_tmpdir(), path[600];
	snprintf(path, sizeof path, "%s/bytes.bin", dir);
	struct export_file *out;
	cr_assert_eq(export_file_new(&out), 0);
	cr_assert_eq(export_file_write(out, src, 1), -EBADF);
	cr_assert_eq(export_file_open(out, path, 1), 0);
	for (size_t at = 0, piece = 1; at < total; piece = piece * 7 % 100003 + 1) {
		size_t n = piece < total - at ? piece : total - at;
		cr_assert_eq(export_file_write(out, src + at, (int)n), (int)n);
		at += n;
	}
	char sha[65], want[65];
	uint64_t bytes = 0, size = 0;
	cr_assert_eq(export_file_finish(out, sha, &bytes), 0);
	file_sha256(path, want, &size);
	cr_assert_eq(bytes, total);
	cr_assert_eq(size, total);
	cr_assert_str_eq(sha, want);
	export_file_close(out);
	FILE *f = fopen(path, "rb");
	uint8_t *back = malloc(total);
	cr_assert(f && back && fread(back, 1, total, f) == total);
	fclose(f);
	cr_assert(memcmp(back, src, total) == 0, "the file's bytes differ from what was written");
	free(back);
	cr_assert_eq(export_file_open(out, dir, 2), -EISDIR);
	snprintf(path, sizeof path, "%s/no/such/dir", dir);
	cr_assert_eq(export_file_open(out, path, 3), -ENOENT);
	if (access("/dev/full", W_OK) == 0) {
		cr_assert_eq(export_file_open(out, "/dev/full", 4), 0);
		int err = 0;
		for (size_t at = 0; at < total && !err; at += 1u << 20) {
			size_t n = total - at < (1u << 20) ? total - at : 1u << 20;
			int r = export_file_write(out, src + at, (int)n);
			err = r < 0 ? r : 0;
		}
		if (!err)
			err = export_file_finish(out, sha, &bytes);
		cr_assert_eq(err, -ENOSPC, "a full disk gave %d", err);
	}
	/* the same writer goes on with the next file after a failed one */
	snprintf(path, sizeof path, "%s/again.bin", dir);
	cr_assert_eq(export_file_open(out, path, 1), 0);
	cr_assert_eq(export_file_write(out, src, 100000), 100000);
	cr_assert_eq(export_file_finish(out, sha, &bytes), 0);
	file_sha256(path, want, &size);
	cr_assert(bytes == 100000 && size == 100000);
	cr_assert_str_eq(sha, want);
	export_file_free(out);
	free(src);
	tu_rmrf(dir);
	free(dir);
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	cr_assert(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Finished files are synced while the next ones are written, more of them
 * than have syncs in flight at once: after settle each holds its bytes and
 * no descriptor is left open. A file whose sync fails (a character device
 * cannot be synced) is named by its tag; the files around it are still
 * settled, and the writer goes on. */
Test(mux, export_file_settle_syncs_every_finished_file)
{
	char *dir = tu_tmpdir(), path[600], sha[65], want[65];
	enum { N = 40 };
	uint8_t src[5000];
	for (size_t i = 0; i < sizeof src; i++)
		src[i] = (uint8_t)(i * 131u);
	struct export_file *out;
	cr_assert_eq(export_file_new(&out), 0);
	int fds0 = open_fds();
	uint64_t bytes = 0, size = 0, tag = 0;
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof path, "%s/camera-%d.mp4", dir, i);
		cr_assert_eq(export_file_open(out, path, (uint64_t)i), 0);
		cr_assert_eq(export_file_write(out, src, (int)sizeof src - i), (int)sizeof src - i);
		cr_assert_eq(export_file_finish(out, sha, &bytes), 0);
		export_file_close(out);
	}
	cr_assert_eq(export_file_settle(out, &tag), 0);
	cr_assert_eq(open_fds(), fds0, "descriptors left open after settle");
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof path, "%s/camera-%d.mp4", dir, i);
		file_sha256(path, want, &size);
		cr_assert_eq(size, sizeof src - (size_t)i);
	}
	for (int i = 0; i < 3; i++) {
		if (i == 1)
			snprintf(path, sizeof path, "/dev/null");
		else
			snprintf(path, sizeof path, "%s/after-%d.mp4", dir, i);
		cr_assert_eq(export_file_open(out, path, 100 + (uint64_t)i), 0);
		cr_assert_eq(export_file_write(out, src, 1000), 1000);
		cr_assert_eq(export_file_finish(out, sha, &bytes), 0);
	}
	cr_assert_eq(export_file_settle(out, &tag), -EINVAL);
	cr_assert_eq(tag, 101);
	cr_assert_eq(open_fds(), fds0);
	snprintf(path, sizeof path, "%s/after-2.mp4", dir);
	file_sha256(path, want, &size);
	cr_assert_eq(size, 1000);
	cr_assert_eq(export_file_settle(out, &tag), 0, "a failure is reported once");
	export_file_free(out);
	tu_rmrf(dir);
	free(dir);
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
