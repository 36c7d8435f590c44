/*
 * api_playback.c - GET /api/v1/cameras/{id}/video.mp4?from=T&to=T: the
 * recorded frames of a window as one fragmented MP4, without transcoding.
 *
 * The answer is streamed (chunked, size unknown) and never built in memory:
 * libmicrohttpd asks for bytes through pb_read; each call pulls frames with
 * stg_iter_next and hands them to libavformat's mp4 muxer (empty moov, one
 * fragment per key frame), whose output goes through a custom AVIOContext
 * into a per-request buffer that pb_read drains. A fragment is one GOP, so
 * the buffer holds about one GOP; more than PB_BUF_MAX bytes ends the
 * stream. One struct pb_req owns the iterator, the muxer and the buffer and
 * is freed by pb_free, also when the client goes away mid-stream.
 *
 * Codec parameters come from the first key frame (which carries its
 * parameter sets in Annex B form, see nvr/depack.h): the extract_extradata
 * bitstream filter copies VPS/SPS/PPS as extradata and the codec's parser
 * reads the picture size. Timestamps are microseconds since the first
 * frame; a gap in the recording shows as a jump in time.
 *
 * Errors before the first byte answer JSON (400, 404 "no footage", 500);
 * after it they are logged and the stream ends early (the client sees a
 * truncated transfer).
 *
 * Each request that passed its checks is audited ("playback": camera and
 * window) before anything is read; without its audit entry it is refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

#define PB_AVIO_SIZE (64u << 10)    /* the muxer's write buffer */
#define PB_BUF_LOW (256u << 10)     /* pb_read muxes until this much waits */
#define PB_BUF_MAX (64u << 20)      /* more pending output ends the stream */
#define PB_DEFAULT_DURATION 40000   /* a lone frame's duration (us): 25 fps */

struct pb_req {
	uint32_t camera;
	struct stg_iter *it;
	AVFormatContext *fmt;
	AVPacket *pkt;
	enum stg_codec codec;
	int64_t base_us;                /* time of the first frame */
	int64_t last_pts;               /* in microseconds, -1 before the first */
	int64_t held_duration;          /* the last frame's: the one before it */
	uint64_t frames;
	uint8_t *buf;                   /* muxed bytes waiting for the client */
	size_t len, off, cap;
	bool done;                      /* trailer written or stream ended */
	bool failed;                    /* end with a truncated transfer */
	bool started;                   /* the response exists */
	bool delivered;                 /* the end of the stream was handed over */
	AVPacket *held;                 /* the last frame, muxed once the next one
	                                 * tells its duration */
};

/* AVIO write callback: appends the muxer's output to the request buffer. */
static int pb_write(void *opaque, uint8_t *data, int size)
{
	struct pb_req *p = opaque;
	if (size <= 0)
		return 0;
	if (p->len + (size_t)size > p->cap) {
		size_t cap = p->cap ? p->cap : PB_BUF_LOW;
		while (cap < p->len + (size_t)size)
			cap *= 2;
		if (cap > PB_BUF_MAX)
			return AVERROR(ENOSPC);
		uint8_t *b = realloc(p->buf, cap);
		if (!b)
			return AVERROR(ENOMEM);
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, data, (size_t)size);
	p->len += (size_t)size;
	return size;
}

static void pb_free(void *cls)
{
	struct pb_req *p = cls;
	if (!p)
		return;
	if (p->fmt) {
		if (p->fmt->pb) {
			av_freep(&p->fmt->pb->buffer);
			avio_context_free(&p->fmt->pb);
		}
		avformat_free_context(p->fmt);
	}
	av_packet_free(&p->pkt);
	av_packet_free(&p->held);
	stg_iter_close(p->it);
	if (p->started)
		nvr_log("info", "web", "event=playback_ended camera=%" PRIu32 " frames=%" PRIu64
		         " complete=%s", p->camera, p->frames, p->delivered ? "true" : "false");
	free(p->buf);
	free(p);
}

static enum AVCodecID pb_codec_id(enum stg_codec c)
{
	switch (c) {
	case STG_CODEC_H264: return AV_CODEC_ID_H264;
	case STG_CODEC_H265: return AV_CODEC_ID_HEVC;
	default: return AV_CODEC_ID_NONE;
	}
}

/* Copies the frame's parameter sets into par->extradata (Annex B). */
static int pb_extradata(const struct stg_read_frame *f, AVCodecParameters *par)
{
	const AVBitStreamFilter *flt = av_bsf_get_by_name("extract_extradata");
	AVBSFContext *bsf = NULL;
	AVPacket *pkt = av_packet_alloc();
	int err = !flt || !pkt ? AVERROR(ENOSYS) : av_bsf_alloc(flt, &bsf);
	if (err < 0)
		goto fail;
	bsf->par_in->codec_id = par->codec_id;
	err = av_bsf_init(bsf);
	if (err >= 0)
		err = av_new_packet(pkt, (int)f->size);
	if (err < 0)
		goto fail;
	memcpy(pkt->data, f->data, f->size);
	err = av_bsf_send_packet(bsf, pkt);
	if (err >= 0)
		err = av_bsf_receive_packet(bsf, pkt);
	if (err < 0)
		goto fail;
	size_t n = 0;
	const uint8_t *ed = av_packet_get_side_data(pkt, AV_PKT_DATA_NEW_EXTRADATA, &n);
	err = AVERROR_INVALIDDATA;
	if (!ed || !n || n > INT32_MAX - AV_INPUT_BUFFER_PADDING_SIZE)
		goto fail;
	par->extradata = av_mallocz(n + AV_INPUT_BUFFER_PADDING_SIZE);
	err = AVERROR(ENOMEM);
	if (!par->extradata)
		goto fail;
	memcpy(par->extradata, ed, n);
	par->extradata_size = (int)n;
	err = 0;
fail:
	av_packet_free(&pkt);
	av_bsf_free(&bsf);
	return err;
}

/* Reads the picture size from the key frame's SPS with the codec's parser. */
static int pb_size(const struct stg_read_frame *f, AVCodecParameters *par)
{
	AVCodecParserContext *ps = av_parser_init(par->codec_id);
	AVCodecContext *ctx = avcodec_alloc_context3(NULL);
	uint8_t *copy = av_mallocz((size_t)f->size + AV_INPUT_BUFFER_PADDING_SIZE);
	int err = AVERROR(ENOMEM);
	if (!ps || !ctx || !copy)
		goto fail;
	memcpy(copy, f->data, f->size);
	ps->flags |= PARSER_FLAG_COMPLETE_FRAMES;
	uint8_t *out = NULL;
	int out_size = 0;
	err = av_parser_parse2(ps, ctx, &out, &out_size, copy, (int)f->size, AV_NOPTS_VALUE,
	                       AV_NOPTS_VALUE, 0);
	if (err < 0)
		goto fail;
	err = AVERROR_INVALIDDATA;
	if (ps->width <= 0 || ps->height <= 0)
		goto fail;
	par->width = ps->width;
	par->height = ps->height;
	err = 0;
fail:
	av_free(copy);
	avcodec_free_context(&ctx);
	if (ps)
		av_parser_close(ps);
	return err;
}

/* Sets up the muxer from the first key frame and writes the header. */
static int pb_mux_open(struct pb_req *p, const struct stg_read_frame *f)
{
	uint8_t *iobuf = NULL;
	AVDictionary *opts = NULL;
	int err = avformat_alloc_output_context2(&p->fmt, av_guess_format("mp4", NULL, NULL),
	                                         NULL, NULL);
	if (err < 0)
		goto fail;
	AVStream *st = avformat_new_stream(p->fmt, NULL);
	p->pkt = av_packet_alloc();
	p->held = av_packet_alloc();
	iobuf = av_malloc(PB_AVIO_SIZE);
	err = AVERROR(ENOMEM);
	if (!st || !p->pkt || !p->held || !iobuf)
		goto fail;
	p->fmt->pb = avio_alloc_context(iobuf, PB_AVIO_SIZE, 1, p, NULL, pb_write, NULL);
	if (!p->fmt->pb)
		goto fail;
	iobuf = NULL;
	p->fmt->pb->seekable = 0;
	st->time_base = (AVRational){ 1, 1000000 };
	st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
	st->codecpar->codec_id = pb_codec_id(f->codec);
	err = pb_extradata(f, st->codecpar);
	if (err >= 0)
		err = pb_size(f, st->codecpar);
	if (err >= 0)
		err = av_dict_set(&opts, "movflags", "frag_keyframe+empty_moov+default_base_moof", 0);
	if (err >= 0)
		err = avformat_write_header(p->fmt, &opts);
fail:
	av_dict_free(&opts);
	av_free(iobuf);
	return err < 0 ? err : 0;
}

/* Muxes the held frame, lasting `duration` microseconds (its muxed copy
 * stays with the muxer); returns 0 or an AVERROR. */
static int pb_mux_held(struct pb_req *p, int64_t duration)
{
	if (!p->held->data)
		return 0;
	AVRational us = { 1, 1000000 };
	AVStream *st = p->fmt->streams[0];
	p->held->duration = av_rescale_q(duration, us, st->time_base);
	p->held->pts = p->held->dts = av_rescale_q(p->held->pts, us, st->time_base);
	int err = av_write_frame(p->fmt, p->held);
	av_packet_unref(p->held);
	if (err >= 0)
		p->frames++;
	return err;
}

/* Muxes the frame held so far and holds a copy of `f`; 0 or an AVERROR. */
static int pb_mux_frame(struct pb_req *p, const struct stg_read_frame *f)
{
	int64_t pts = f->time_us - p->base_us;
	if (pts <= p->last_pts)
		pts = p->last_pts + 1;  /* the muxer needs strictly rising times */
	int err = pb_mux_held(p, p->last_pts < 0 ? 0 : pts - p->last_pts);
	if (err < 0)
		return err;
	err = av_new_packet(p->pkt, (int)f->size);
	if (err < 0)
		return err;
	memcpy(p->pkt->data, f->data, f->size);
	p->pkt->pts = p->pkt->dts = pts;    /* microseconds until muxed */
	p->pkt->flags = f->key ? AV_PKT_FLAG_KEY : 0;
	p->pkt->stream_index = 0;
	p->held_duration = p->last_pts < 0 ? PB_DEFAULT_DURATION : pts - p->last_pts;
	p->last_pts = pts;
	av_packet_move_ref(p->held, p->pkt);
	return 0;
}

static void pb_fail(struct pb_req *p, const char *what, int err)
{
	char msg[AV_ERROR_MAX_STRING_SIZE];
	av_strerror(err, msg, sizeof msg);
	nvr_log("warn", "web", "event=playback_error camera=%" PRIu32 " step=%s frames=%" PRIu64
	        " error=\"%s\"", p->camera, what, p->frames, msg);
	p->failed = true;
	p->done = true;
}

/* Feeds the next frame to the muxer, or writes the trailer at the end. */
static void pb_pump(struct pb_req *p)
{
	struct stg_read_frame f;
	int r = stg_iter_next(p->it, &f);
	if (r < 0) {
		pb_fail(p, "read", AVERROR(-r));
		return;
	}
	if (r > 0 && f.codec != p->codec) {
		nvr_log("info", "web", "event=playback_codec_changed camera=%" PRIu32, p->camera);
		r = 0;
	}
	if (r > 0) {
		int err = pb_mux_frame(p, &f);
		if (err < 0)
			pb_fail(p, "mux", err);
		return;
	}
	int err = pb_mux_held(p, p->held_duration);
	if (err >= 0)
		err = av_write_trailer(p->fmt);
	if (err >= 0) {
		avio_flush(p->fmt->pb);
		err = p->fmt->pb->error;
	}
	if (err < 0) {
		pb_fail(p, "trailer", err);
		return;
	}
	p->done = true;
}

/* libmicrohttpd's content reader: drains the buffer, muxing more first. */
static ssize_t pb_read(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)pos;
	struct pb_req *p = cls;
	while (!p->done && p->len - p->off < PB_BUF_LOW)
		pb_pump(p);
	size_t n = p->len - p->off;
	if (n == 0 && p->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n == 0) {
		p->delivered = true;
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (n > max)
		n = max;
	memcpy(out, p->buf + p->off, n);
	p->off += n;
	if (p->off == p->len)
		p->off = p->len = 0;
	else if (p->off >= p->cap / 2) {
		memmove(p->buf, p->buf + p->off, p->len - p->off);
		p->len -= p->off;
		p->off = 0;
	}
	return (ssize_t)n;
}

/* The first key frame of the window; 0 when there is none. */
static int pb_first_key(struct pb_req *p, struct stg_read_frame *f)
{
	int r;
	while ((r = stg_iter_next(p->it, f)) > 0)
		if (f->key && pb_codec_id(f->codec) != AV_CODEC_ID_NONE)
			return 1;
	return r;
}

static int pb_response(struct pb_req *p, int64_t t0, struct web_reply *rep)
{
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64u << 10,
	                                                           pb_read, p, pb_free);
	if (!r) {
		pb_free(p);
		return -ENOMEM;
	}
	p->started = true;
	char disp[96];
	snprintf(disp, sizeof disp, "inline; filename=\"camera-%" PRIu32 "-%lld.mp4\"", p->camera,
	         (long long)(t0 / 1000));
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "video/mp4") != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
		MHD_destroy_response(r);    /* frees p through pb_free */
		return -ENOMEM;
	}
	rep->status = 200;
	rep->response = r;
	return 0;
}

int api_playback(struct web *w, const struct web_request *req, const char *arg,
                 struct web_reply *rep)
{
	int64_t t0, t1;
	uint32_t id;
	int err = api_camera_window(w, req, arg, rep, &id, &t0, &t1);
	if (err)
		return err < 0 ? err : 0;
	json_t *d = json_pack("{s:I, s:I, s:I}", "camera", (json_int_t)id, "from_ms",
	                      (json_int_t)(t0 / 1000), "to_ms", (json_int_t)(t1 / 1000));
	err = d ? api_audit(w, req, "playback", d, NULL) : -ENOMEM;
	json_decref(d);
	if (err)
		return err;
	struct pb_req *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->camera = id;
	p->last_pts = -1;
	struct stg_read_frame f;
	err = stg_iter_open(w->ctx.stg, p->camera, t0, t1, &p->it);
	if (err)
		goto fail;
	int r = pb_first_key(p, &f);
	if (r <= 0) {
		err = r < 0 ? r : api_error(rep, 404, NULL, "no footage in this window");
		goto fail;
	}
	p->codec = f.codec;
	p->base_us = f.time_us;
	int averr = pb_mux_open(p, &f);
	if (averr >= 0)
		averr = pb_mux_frame(p, &f);
	if (averr < 0) {
		char msg[AV_ERROR_MAX_STRING_SIZE];
		av_strerror(averr, msg, sizeof msg);
		nvr_log("error", "web", "event=playback_open_failed camera=%" PRIu32 " error=\"%s\"",
		        p->camera, msg);
		err = -EIO;
		goto fail;
	}
	nvr_log("info", "web", "event=playback_started camera=%" PRIu32 " from_ms=%lld to_ms=%lld",
	        p->camera, (long long)(t0 / 1000), (long long)(t1 / 1000));
	return pb_response(p, t0, rep);
fail:
	pb_free(p);
	return err;
}
