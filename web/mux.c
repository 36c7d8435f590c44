/*
 * mux.c - recorded frames into libavformat's muxers (mux.h): fragmented
 * MP4 and MPEG-TS streamed through a callback.
 *
 * Codec parameters come from the first key frame, which carries its
 * parameter sets in Annex B form (see nvr/depack.h): the extract_extradata
 * bitstream filter copies VPS/SPS/PPS as extradata and the codec's parser
 * reads the picture size. Frames are handed over as they were recorded;
 * libavformat turns Annex B into length-prefixed NAL units for MP4.
 *
 * Each frame is held until the next one arrives, so that its duration is
 * the time to the next frame (the last one repeats the previous duration,
 * or MUX_DEFAULT_DURATION for a lone frame): players then show the last
 * frame for a frame's time instead of not at all.
 */
#include "mux.h"

#include <errno.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MUX_AVIO_SIZE (64u << 10)    /* the muxer's write buffer */
#define MUX_DEFAULT_DURATION 40000   /* a lone frame's duration (us): 25 fps */

struct mux {
	AVFormatContext *fmt;
	AVPacket *held;                  /* the last frame, muxed once the next
	                                  * one tells its duration */
	enum stg_codec codec;
	mux_write_fn write_fn;
	void *opaque;
	bool has_origin;
	int64_t origin_us;
	int64_t last_pts;                /* microseconds, -1 before the first */
	int64_t held_duration;           /* what the held frame lasts at the end */
	uint64_t frames;
};

/* A libavformat error as a negative errno, logged when it is not one. */
static int mux_errno(int averr, const char *step)
{
	if (averr >= 0)
		return 0;
	if (averr > -4096)
		return averr;               /* AVERROR(e) is -e */
	char msg[AV_ERROR_MAX_STRING_SIZE];
	av_strerror(averr, msg, sizeof msg);
	nvr_log("warn", "mux", "event=mux_error step=%s error=\"%s\"", step, msg);
	return averr == AVERROR_INVALIDDATA ? -EINVAL : -EIO;
}

bool mux_codec_supported(enum stg_codec codec)
{
	return codec == STG_CODEC_H264 || codec == STG_CODEC_H265;
}

static enum AVCodecID mux_codec_id(enum stg_codec c)
{
	switch (c) {
	case STG_CODEC_H264: return AV_CODEC_ID_H264;
	case STG_CODEC_H265: return AV_CODEC_ID_HEVC;
	default: return AV_CODEC_ID_NONE;
	}
}

/* AVIO's write callback in front of the caller's (whose buffer is const). */
static int mux_avio_write(void *opaque, uint8_t *buf, int size)
{
	struct mux *m = opaque;
	if (size <= 0)
		return 0;
	return m->write_fn(m->opaque, buf, size);
}

/* Copies the frame's parameter sets into par->extradata (Annex B). */
static int mux_extradata(const struct stg_read_frame *f, AVCodecParameters *par)
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
static int mux_picture_size(const struct stg_read_frame *f, AVCodecParameters *par)
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

/* The output context and its one video stream, codec parameters filled. */
static int mux_context(struct mux *m, const char *format, const struct stg_read_frame *first)
{
	const AVOutputFormat *ofmt = av_guess_format(format, NULL, NULL);
	if (!ofmt)
		return -EINVAL;
	int err = avformat_alloc_output_context2(&m->fmt, ofmt, NULL, NULL);
	if (err < 0)
		return mux_errno(err, "alloc");
	m->fmt->flags |= AVFMT_FLAG_BITEXACT;
	AVStream *st = avformat_new_stream(m->fmt, NULL);
	m->held = av_packet_alloc();
	if (!st || !m->held)
		return -ENOMEM;
	st->time_base = (AVRational){ 1, 1000000 };
	st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
	st->codecpar->codec_id = mux_codec_id(first->codec);
	err = mux_extradata(first, st->codecpar);
	if (err >= 0)
		err = mux_picture_size(first, st->codecpar);
	return mux_errno(err, "codec_parameters");
}

/* Allocates the mux and checks the first frame. */
static int mux_new(struct mux **out, const struct stg_read_frame *first)
{
	*out = NULL;
	if (!first || !first->key || !mux_codec_supported(first->codec) || !first->data)
		return -EINVAL;
	struct mux *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->codec = first->codec;
	m->last_pts = -1;
	*out = m;
	return 0;
}

int mux_open_stream_opts(struct mux **out, const char *format,
                         const struct stg_read_frame *first, mux_write_fn write_fn,
                         void *opaque, const struct mux_options *opt)
{
	AVDictionary *opts = NULL;
	uint8_t *iobuf = NULL;
	struct mux *m = NULL;
	bool mp4 = strcmp(format, "mp4") == 0;
	int err = -EINVAL;
	if (!write_fn || (!mp4 && strcmp(format, "mpegts")))
		goto fail;
	err = mux_new(&m, first);
	if (err)
		goto fail;
	m->write_fn = write_fn;
	m->opaque = opaque;
	if (opt && opt->has_origin) {
		m->has_origin = true;
		m->origin_us = opt->origin_us;
	}
	err = mux_context(m, format, first);
	if (err)
		goto fail;
	err = -ENOMEM;
	iobuf = av_malloc(MUX_AVIO_SIZE);
	if (!iobuf)
		goto fail;
	m->fmt->pb = avio_alloc_context(iobuf, MUX_AVIO_SIZE, 1, m, NULL, mux_avio_write, NULL);
	if (!m->fmt->pb)
		goto fail;
	iobuf = NULL;
	m->fmt->pb->seekable = 0;
	int averr = mp4 ? av_dict_set(&opts, "movflags",
	                              "frag_keyframe+empty_moov+default_base_moof", 0)
	                : av_dict_set(&opts, "mpegts_copyts", "1", 0);
	if (averr >= 0)
		averr = avformat_write_header(m->fmt, &opts);
	err = mux_errno(averr, "header");
	if (err)
		goto fail;
	av_dict_free(&opts);
	*out = m;
	return 0;
fail:
	av_dict_free(&opts);
	av_free(iobuf);
	mux_free(m);
	return err;
}

int mux_open_stream(struct mux **out, const char *format, const struct stg_read_frame *first,
                    mux_write_fn write_fn, void *opaque)
{
	return mux_open_stream_opts(out, format, first, write_fn, opaque, NULL);
}

/* The output's error (a failed write_fn), or the muxer's own. */
static int mux_result(struct mux *m, int averr, const char *step)
{
	if (averr >= 0 && m->fmt->pb && m->fmt->pb->error < 0)
		averr = m->fmt->pb->error;
	return mux_errno(averr, step);
}

/* Muxes the held frame, lasting `duration` microseconds. */
static int mux_write_held(struct mux *m, int64_t duration)
{
	if (!m->held->data)
		return 0;
	AVRational us = { 1, 1000000 };
	AVRational tb = m->fmt->streams[0]->time_base;  /* the muxer's choice */
	m->held->duration = av_rescale_q(duration, us, tb);
	m->held->pts = m->held->dts = av_rescale_q(m->held->pts, us, tb);
	int averr = av_write_frame(m->fmt, m->held);
	av_packet_unref(m->held);
	int err = mux_result(m, averr, "frame");
	if (!err)
		m->frames++;
	return err;
}

int mux_frame(struct mux *m, const struct stg_read_frame *f)
{
	if (f->codec != m->codec || (m->last_pts < 0 && !f->key) || !f->data)
		return -EINVAL;
	int64_t base = m->has_origin ? m->origin_us : 0;
	if (!m->has_origin) {
		if (m->last_pts < 0)
			m->origin_us = f->time_us;
		base = m->origin_us;
	}
	int64_t pts = f->time_us - base;
	if (pts <= m->last_pts)
		pts = m->last_pts + 1;      /* the muxer needs strictly rising times */
	if (pts < 0)
		return -EINVAL;             /* before the given origin */
	int err = mux_write_held(m, m->last_pts < 0 ? 0 : pts - m->last_pts);
	if (err)
		return err;
	err = mux_errno(av_new_packet(m->held, (int)f->size), "packet");
	if (err)
		return err;
	memcpy(m->held->data, f->data, f->size);
	m->held->pts = m->held->dts = pts;  /* microseconds until muxed */
	m->held->flags = f->key ? AV_PKT_FLAG_KEY : 0;
	m->held->stream_index = 0;
	m->held_duration = m->last_pts < 0 ? MUX_DEFAULT_DURATION : pts - m->last_pts;
	m->last_pts = pts;
	return 0;
}

int mux_finish(struct mux *m)
{
	int err = mux_write_held(m, m->held_duration);
	if (err)
		return err;
	err = mux_result(m, av_write_trailer(m->fmt), "trailer");
	if (err)
		return err;
	avio_flush(m->fmt->pb);
	return mux_result(m, 0, "flush");
}

void mux_free(struct mux *m)
{
	if (!m)
		return;
	if (m->fmt) {
		if (m->fmt->pb) {
			av_freep(&m->fmt->pb->buffer);
			avio_context_free(&m->fmt->pb);
		}
		avformat_free_context(m->fmt);
	}
	av_packet_free(&m->held);
	free(m);
}

uint64_t mux_frames(const struct mux *m)
{
	return m ? m->frames : 0;
}
