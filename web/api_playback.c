/*
 * api_playback.c - GET /api/v1/cameras/{id}/video.mp4?from=T&to=T: the
 * recorded frames of a window as one fragmented MP4, without transcoding.
 *
 * The answer is streamed (chunked, size unknown) and never built in memory:
 * libmicrohttpd asks for bytes through pb_read; each call pulls frames with
 * stg_iter_next and hands them to the muxer (web/mux.h: fragmented MP4,
 * one fragment per key frame), whose output goes into a per-request buffer
 * that pb_read drains. A fragment is one GOP, so the buffer holds about one
 * GOP; more than PB_BUF_MAX bytes ends the stream. One struct pb_req owns
 * the iterator, the muxer and the buffer and is freed by pb_free, also when
 * the client goes away mid-stream. Timestamps start at the first frame; a
 * gap in the recording shows as a jump in time.
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
#include <libavutil/error.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "mux.h"

#define PB_BUF_LOW (256u << 10)     /* pb_read muxes until this much waits */
#define PB_BUF_MAX (64u << 20)      /* more pending output ends the stream */

struct pb_req {
	uint32_t camera;
	struct stg_iter *it;
	struct mux *mux;
	enum stg_codec codec;
	uint8_t *buf;                   /* muxed bytes waiting for the client */
	size_t len, off, cap;
	bool done;                      /* trailer written or stream ended */
	bool failed;                    /* end with a truncated transfer */
	bool started;                   /* the response exists */
	bool delivered;                 /* the end of the stream was handed over */
};

/* The muxer's output: appended to the request buffer. */
static int pb_write(void *opaque, const uint8_t *data, int size)
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
	uint64_t frames = mux_frames(p->mux);
	mux_free(p->mux);
	stg_iter_close(p->it);
	if (p->started)
		nvr_log("info", "web", "event=playback_ended camera=%" PRIu32 " frames=%" PRIu64
		         " complete=%s", p->camera, frames, p->delivered ? "true" : "false");
	free(p->buf);
	free(p);
}

static void pb_fail(struct pb_req *p, const char *what, int err)
{
	nvr_log("warn", "web", "event=playback_error camera=%" PRIu32 " step=%s frames=%" PRIu64
	        " error=\"%s\"", p->camera, what, mux_frames(p->mux), stg_strerror(err));
	p->failed = true;
	p->done = true;
}

/* Feeds the next frame to the muxer, or writes the trailer at the end. */
static void pb_pump(struct pb_req *p)
{
	struct stg_read_frame f;
	int r = stg_iter_next(p->it, &f);
	if (r < 0) {
		pb_fail(p, "read", r);
		return;
	}
	if (r > 0 && f.codec != p->codec) {
		nvr_log("info", "web", "event=playback_codec_changed camera=%" PRIu32, p->camera);
		r = 0;
	}
	if (r > 0) {
		int err = mux_frame(p->mux, &f);
		if (err)
			pb_fail(p, "mux", err);
		return;
	}
	int err = mux_finish(p->mux);
	if (err) {
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
		if (f->key && mux_codec_supported(f->codec))
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
	err = d ? api_audit_read(w, req, "playback", d) : -ENOMEM;
	json_decref(d);
	if (err)
		return err;
	struct pb_req *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->camera = id;
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
	err = mux_open_stream(&p->mux, "mp4", &f, pb_write, p);
	if (!err)
		err = mux_frame(p->mux, &f);
	if (err) {
		nvr_log("error", "web", "event=playback_open_failed camera=%" PRIu32 " error=\"%s\"",
		        p->camera, stg_strerror(err));
		goto fail;
	}
	nvr_log("info", "web", "event=playback_started camera=%" PRIu32 " from_ms=%lld to_ms=%lld",
	        p->camera, (long long)(t0 / 1000), (long long)(t1 / 1000));
	return pb_response(p, t0, rep);
fail:
	pb_free(p);
	return err;
}
