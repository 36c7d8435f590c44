/*
 * avstream.c - recorded frames muxed into a streamed HTTP answer
 * (avstream.h).
 *
 * libmicrohttpd asks for bytes through avs_read; each call pulls frames
 * with stg_iter_next and hands them to the muxer, whose output goes into
 * a per-request buffer that avs_read drains. With fragmented MP4 a
 * fragment is one GOP, so the buffer holds about one GOP; more than
 * AVS_BUF_MAX bytes ends the answer. Output outside [first, last] is
 * counted and dropped; once past `last` nothing more is muxed. One struct
 * avs owns the iterator, the muxer and the buffer and is freed with the
 * response, also when the client goes away mid-stream.
 *
 * Errors after the first byte are logged (event=<what>_error) and the
 * transfer ends early, so the client sees it truncated; a stream whose
 * size was announced and which comes out of another size (the ring took
 * its start between the two passes) ends the same way.
 */
#include "avstream.h"

#include <errno.h>
#include <inttypes.h>
#include <libavutil/error.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define AVS_BUF_LOW (256u << 10)     /* avs_read muxes until this much waits */
#define AVS_BUF_MAX (64u << 20)      /* more pending output ends the stream */

struct avs {
	struct avs_plan plan;
	struct stg_iter *it;
	struct mux *mux;
	enum stg_codec codec;
	uint64_t frames;                 /* frames handed to the muxer */
	uint64_t pos;                    /* bytes the muxer has output */
	uint64_t first, last;            /* the bytes delivered */
	uint64_t total;                  /* the whole output's size, UINT64_MAX
	                                  * when not known in advance */
	uint64_t length, sent;           /* the response body's (UINT64_MAX:
	                                  * chunked), what avs_read handed over */
	uint8_t *buf;                    /* bytes waiting for the client */
	size_t len, off, cap;
	bool done;                       /* trailer written, or nothing more */
	bool failed;                     /* end with a truncated transfer */
	bool started;                    /* the response exists */
	bool delivered;                  /* the end of the stream was handed over */
};

static int avs_grow(struct avs *s, size_t need)
{
	if (need <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : AVS_BUF_LOW;
	while (cap < need)
		cap *= 2;
	if (cap > AVS_BUF_MAX)
		return AVERROR(ENOSPC);
	uint8_t *b = realloc(s->buf, cap);
	if (!b)
		return AVERROR(ENOMEM);
	s->buf = b;
	s->cap = cap;
	return 0;
}

/* The muxer's output: the part inside [first, last] joins the buffer. */
static int avs_write(void *opaque, const uint8_t *data, int size)
{
	struct avs *s = opaque;
	uint64_t start = s->pos, end = s->pos + (uint64_t)size;
	s->pos = end;
	if (end <= s->first || start > s->last)
		return size;
	uint64_t lo = (s->first > start ? s->first : start) - start;
	uint64_t hi = (s->last < end - 1 ? s->last + 1 : end) - start;
	int err = avs_grow(s, s->len + (size_t)(hi - lo));
	if (err)
		return err;
	memcpy(s->buf + s->len, data + lo, (size_t)(hi - lo));
	s->len += (size_t)(hi - lo);
	return size;
}

void avs_free(struct avs *s)
{
	if (!s)
		return;
	uint64_t frames = mux_frames(s->mux);
	mux_free(s->mux);
	stg_iter_close(s->it);
	if (s->started)
		nvr_log("info", "web", "event=%s_ended camera=%" PRIu32 " frames=%" PRIu64
		        " bytes=%" PRIu64 " complete=%s", s->plan.what, s->plan.camera, frames,
		        s->pos, s->delivered ? "true" : "false");
	free(s->buf);
	free(s);
}

/* The next frame of the answer: 1, 0 at its end, or a negative errno. The
 * first is the first key frame of a supported codec; the answer ends at
 * the end of the window, at max_frames, or where the codec changes. */
static int avs_next(struct avs *s, struct stg_read_frame *f)
{
	if (s->plan.max_frames && s->frames >= s->plan.max_frames)
		return 0;
	int r;
	while ((r = stg_iter_next(s->it, f)) > 0) {
		if (s->frames == 0 && !(f->key && mux_codec_supported(f->codec)))
			continue;
		if (s->frames > 0 && f->codec != s->codec) {
			nvr_log("info", "web", "event=%s_codec_changed camera=%" PRIu32, s->plan.what,
			        s->plan.camera);
			return 0;
		}
		s->frames++;
		return 1;
	}
	return r;
}

int avs_open(struct avs **out, const struct avs_plan *plan, uint64_t first, uint64_t last,
             uint64_t total)
{
	*out = NULL;
	struct avs *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->plan = *plan;
	s->first = first;
	s->last = last;
	s->total = total;
	struct stg_read_frame f;
	int err = stg_iter_open(plan->stg, plan->camera, plan->t0, plan->t1, &s->it);
	if (err)
		goto fail;
	int r = avs_next(s, &f);
	err = r < 0 ? r : -ENOENT;
	if (r <= 0)
		goto fail;
	s->codec = f.codec;
	err = mux_open_stream_opts(&s->mux, plan->format, &f, avs_write, s, &plan->opt);
	if (!err)
		err = mux_frame(s->mux, &f);
	if (err)
		goto fail;
	*out = s;
	return 0;
fail:
	avs_free(s);
	return err;
}

static void avs_fail(struct avs *s, const char *step, int err)
{
	nvr_log("warn", "web", "event=%s_error camera=%" PRIu32 " step=%s frames=%" PRIu64
	        " error=\"%s\"", s->plan.what, s->plan.camera, step, mux_frames(s->mux),
	        stg_strerror(err));
	s->failed = true;
	s->done = true;
}

/* Feeds the next frame to the muxer, or writes the trailer at the end. */
static void avs_pump(struct avs *s)
{
	struct stg_read_frame f;
	int r = avs_next(s, &f);
	if (r < 0) {
		avs_fail(s, "read", r);
		return;
	}
	int err = r > 0 ? mux_frame(s->mux, &f) : mux_finish(s->mux);
	if (err) {
		avs_fail(s, r > 0 ? "mux" : "trailer", err);
		return;
	}
	if (r > 0 && s->pos <= s->last)
		return;
	s->done = true;     /* at the end, or the rest lies outside the range */
	if (s->total != UINT64_MAX && (r == 0 ? s->pos != s->total : s->pos > s->total)) {
		nvr_log("warn", "web", "event=%s_error camera=%" PRIu32 " step=size announced=%"
		        PRIu64 " muxed=%" PRIu64, s->plan.what, s->plan.camera, s->total, s->pos);
		s->failed = true;
	}
}

int avs_measure(const struct avs_plan *plan, uint64_t *size, uint64_t *frames)
{
	struct avs *s;
	/* count, keep nothing */
	int err = avs_open(&s, plan, UINT64_MAX, UINT64_MAX, UINT64_MAX);
	if (err)
		return err;
	while (!s->done)
		avs_pump(s);
	err = s->failed ? -EIO : 0;
	*size = s->pos;
	*frames = s->frames;
	avs_free(s);
	return err;
}

/* libmicrohttpd's content reader: drains the buffer, muxing more first. */
static ssize_t avs_read(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)pos;
	struct avs *s = cls;
	while (!s->done && s->len - s->off < AVS_BUF_LOW)
		avs_pump(s);
	size_t n = s->len - s->off;
	if (n == 0 && s->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n == 0) {
		s->delivered = true;
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (n > max)
		n = max;
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	s->sent += n;
	if (s->sent == s->length)
		s->delivered = true;        /* libmicrohttpd asks no more */
	if (s->off == s->len) {
		s->off = s->len = 0;
	} else if (s->off >= s->cap / 2) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	}
	return (ssize_t)n;
}

static void avs_release(void *cls)
{
	avs_free(cls);
}

struct MHD_Response *avs_response(struct avs *s, uint64_t size)
{
	s->length = size;
	struct MHD_Response *r = MHD_create_response_from_callback(
	        size == UINT64_MAX ? MHD_SIZE_UNKNOWN : size, 64u << 10, avs_read, s, avs_release);
	if (!r) {
		avs_free(s);
		return NULL;
	}
	s->started = true;
	nvr_log("info", "web", "event=%s_started camera=%" PRIu32 " from_ms=%lld to_ms=%lld",
	        s->plan.what, s->plan.camera, (long long)(s->plan.t0 / 1000),
	        (long long)(s->plan.t1 / 1000));
	return r;
}
