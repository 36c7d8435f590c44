/*
 * api_playback.c - GET (and HEAD) /api/v1/cameras/{id}/video.mp4?from=T&to=T:
 * the recorded frames of a window as one fragmented MP4, without
 * transcoding, with Content-Length and single byte ranges (RFC 9110).
 *
 * The answer is muxed twice and never built in memory (web/avstream.h):
 * first into a byte counter, which gives its size and frame count (the
 * muxer's output is deterministic), then for the client, stopping at the
 * same frame and delivering only the bytes of the requested range; output
 * before the range is muxed and dropped. The first pass reads every frame
 * of the window (the muxer rewrites Annex B start codes as lengths, so the
 * size depends on the bytes, not only on frame sizes): it costs about what
 * sending the answer costs, without the network.
 *
 * Errors before the first byte answer JSON (400, 404 "no footage", 416,
 * 500); after it they are logged and the transfer ends early (the client
 * sees it truncated).
 *
 * Each request that passed its checks is audited ("playback": camera,
 * window, format, and the Range asked for) before anything is read;
 * without its audit entry it is refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "avstream.h"
#include "log.h"
#include "range.h"

/* 416 with Content-Range: bytes * / size, and a JSON error body. */
static int pb_unsatisfiable(struct web_reply *rep, uint64_t size)
{
	char cr[48];
	snprintf(cr, sizeof cr, "bytes */%" PRIu64, size);
	const char *text = "{\"error\":{\"code\":416,\"message\":\"range not satisfiable\"}}";
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
	                                                         MHD_RESPMEM_PERSISTENT);
	if (!r)
		return -ENOMEM;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr) != MHD_YES) {
		MHD_destroy_response(r);
		return -ENOMEM;
	}
	rep->status = 416;
	rep->response = r;
	return 0;
}

/* The headers of the MP4 answer; a range gets 206 and Content-Range. */
static int pb_headers(struct MHD_Response *r, uint32_t camera, int64_t t0, bool partial,
                      uint64_t first, uint64_t last, uint64_t size)
{
	char disp[96], cr[80];
	snprintf(disp, sizeof disp, "inline; filename=\"camera-%" PRIu32 "-%lld.mp4\"", camera,
	         (long long)(t0 / 1000));
	snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "video/mp4") != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") != MHD_YES ||
	    (partial && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr) != MHD_YES))
		return -ENOMEM;
	return 0;
}

/* Which bytes to send: 1 for a range, 0 for the whole body, or 416 sent
 * (-ERANGE). If-Range is not evaluated (the answer has no validator), so
 * a request carrying it gets the whole body, as RFC 9110 allows. */
static int pb_range(const struct web_request *req, uint64_t size, uint64_t *first,
                    uint64_t *last)
{
	*first = 0;
	*last = size - 1;
	if (!req->range || req->if_range)
		return 0;
	return range_parse(req->range, strlen(req->range), size, first, last);
}

/* The audit entry of a playback request; 0 or a negative errno. */
static int pb_audit(struct web *w, const struct web_request *req, uint32_t id, int64_t t0,
                    int64_t t1)
{
	json_t *d = json_pack("{s:I, s:I, s:I, s:s}", "camera", (json_int_t)id, "from_ms",
	                      (json_int_t)(t0 / 1000), "to_ms", (json_int_t)(t1 / 1000),
	                      "format", "mp4");
	if (d && req->range)
		json_object_set_new(d, "range", json_string(req->range));
	int err = d ? api_audit_read(w, req, "playback", d) : -ENOMEM;
	json_decref(d);
	return err;
}

/* The body of a HEAD answer, which libmicrohttpd never reads. */
static ssize_t pb_no_body(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)cls;
	(void)pos;
	(void)out;
	(void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The no-footage answers: nothing in the window, or reclaimed meanwhile. */
static int pb_missing(struct web_reply *rep, int err)
{
	if (err == -ENOENT)
		return api_error(rep, 404, NULL, "no footage in this window");
	if (err == STG_EGONE)
		return api_error(rep, 410, NULL, "this footage has been overwritten");
	return err;
}

int api_playback(struct web *w, const struct web_request *req, const char *arg,
                 struct web_reply *rep)
{
	int64_t t0, t1;
	uint32_t id;
	int err = api_camera_window(w, req, arg, rep, &id, &t0, &t1);
	if (err)
		return err < 0 ? err : 0;
	err = pb_audit(w, req, id, t0, t1);
	if (err)
		return err;
	struct avs_plan plan = { .stg = w->ctx.stg, .camera = id, .t0 = t0, .t1 = t1,
	                         .format = "mp4", .what = "playback" };
	uint64_t size, frames, first, last;
	int64_t t = nvr_mono_us();
	err = avs_measure(&plan, &size, &frames);
	if (err)
		return pb_missing(rep, err);
	nvr_log("info", "web", "event=playback_sized camera=%" PRIu32 " bytes=%" PRIu64
	        " frames=%" PRIu64 " ms=%.1f", id, size, frames, (nvr_mono_us() - t) / 1000.0);
	int r = pb_range(req, size, &first, &last);
	if (r == -ERANGE)
		return pb_unsatisfiable(rep, size);
	if (r == 0) {
		first = 0;
		last = size - 1;
	}
	plan.max_frames = frames;
	struct MHD_Response *resp;
	if (req->head) {
		resp = MHD_create_response_from_callback(last - first + 1, 1024, pb_no_body, NULL,
		                                         NULL);
	} else {
		struct avs *s;
		err = avs_open(&s, &plan, first, last, size);
		if (err)
			return pb_missing(rep, err);
		resp = avs_response(s, last - first + 1);
	}
	if (!resp)
		return -ENOMEM;
	err = pb_headers(resp, id, t0, r == 1, first, last, size);
	if (err) {
		MHD_destroy_response(resp);     /* frees the stream */
		return err;
	}
	rep->status = r == 1 ? 206 : 200;
	rep->response = resp;
	return 0;
}
