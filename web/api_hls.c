/*
 * api_hls.c - HLS (RFC 8216) playback of recorded footage, no transcoding:
 *   GET /api/v1/cameras/{id}/hls.m3u8?from=T&to=T   VOD playlist of a window
 *   GET /api/v1/cameras/{id}/hls.m3u8?live=1        live playlist (sliding)
 *   GET /api/v1/cameras/{id}/hls/segment.ts?start=US&end=US   one segment
 *
 * Segments are planned from key frames alone (hls_plan.h) and named by
 * their start and end in epoch microseconds, so a segment's URL stays
 * valid while its footage is on disk, in whichever playlist it appeared;
 * once the ring has reclaimed it, it answers 410. Each segment is muxed
 * on request into MPEG-TS (web/avstream.h), streamed.
 *
 * VOD playlists are written while they are sent: a first pass over the
 * key frames finds the longest segment (EXT-X-TARGETDURATION comes first),
 * a second writes the segments, a few at a time, as libmicrohttpd asks.
 *
 * Live playlists list the last HLS_LIVE_SEGMENTS complete segments of the
 * last HLS_LIVE_LOOKBACK_US. A segment's media sequence number is
 * (UTC day number) x 1,000,000 + (segments of that day before it), which
 * stays the same at every reload and rises by one per segment within a
 * day; at midnight UTC it jumps forward once. EXT-X-DISCONTINUITY-SEQUENCE
 * counts the day's gaps the same way.
 *
 * Playlist requests are audited ("playback": camera, window or live,
 * format "hls") before anything is read, and refused without their audit
 * entry. Segment requests are not audited one by one (a viewer asks for
 * one every 4 s): the playlist that named them was.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "avstream.h"
#include "hls_plan.h"
#include "log.h"

#define HLS_LIVE_SEGMENTS 6
#define HLS_LIVE_LOOKBACK_US (120 * 1000000LL)
#define HLS_LIVE_STALE_US (10 * 1000000LL)   /* a last segment this old is complete */
#define HLS_DAY_US (86400 * 1000000LL)
#define HLS_SEQ_PER_DAY 1000000LL
#define HLS_MAX_SEGMENT_US (120 * 1000000LL) /* longest segment a URL may name */
#define HLS_MIN_TARGET 1
#define HLS_LIVE_MIN_TARGET 8                /* keeps a live target steady */
#define HLS_LINE_MAX 256
#define HLS_OUT_LOW (16u << 10)              /* the VOD writer fills this much */
#define HLS_CONTENT_TYPE "application/vnd.apple.mpegurl"

/* ---- VOD playlist ---------------------------------------------------------- */

struct hls_vod {
	struct hls_plan plan;
	uint32_t camera;
	int64_t target;
	uint64_t segments;
	bool header_done, end_done, failed;
	char buf[HLS_OUT_LOW + 2 * HLS_LINE_MAX];
	size_t len, off;
};

/* The VOD's last segment ends with the window: its frames start before `to`. */
static void hls_clip(struct hls_segment *s, int64_t to)
{
	if (s->end_us > to)
		s->end_us = to;
}

/* Pass 1: the longest segment (rounded) and how many there are. */
static int hls_vod_measure(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1,
                           int64_t *target, uint64_t *count)
{
	struct hls_plan *p = malloc(sizeof *p);
	if (!p)
		return -ENOMEM;
	hls_plan_init(p, stg, cam, t0, t1);
	struct hls_segment s;
	int r;
	*target = HLS_MIN_TARGET;
	*count = 0;
	while ((r = hls_plan_next(p, &s)) > 0) {
		hls_clip(&s, t1);
		int64_t d = hls_rounded_seconds(s.end_us - s.start_us);
		if (d > *target)
			*target = d;
		(*count)++;
	}
	free(p);
	return r;
}

/* Writes playlist lines into the buffer until it holds HLS_OUT_LOW. */
static void hls_vod_fill(struct hls_vod *v)
{
	if (!v->header_done) {
		v->len += (size_t)snprintf(v->buf + v->len, sizeof v->buf - v->len,
		                           "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%" PRId64
		                           "\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
		                           "#EXT-X-INDEPENDENT-SEGMENTS\n", v->target);
		v->header_done = true;
	}
	while (!v->end_done && v->len < HLS_OUT_LOW) {
		struct hls_segment s;
		int r = hls_plan_next(&v->plan, &s);
		if (r < 0) {
			nvr_log("warn", "web", "event=hls_playlist_error camera=%" PRIu32 " error=\"%s\"",
			        v->camera, stg_strerror(r));
			v->failed = v->end_done = true;
			return;
		}
		if (r == 0) {
			v->len += (size_t)snprintf(v->buf + v->len, sizeof v->buf - v->len,
			                           "#EXT-X-ENDLIST\n");
			v->end_done = true;
			return;
		}
		hls_clip(&s, v->plan.t1);
		int n = hls_segment_lines(v->buf + v->len, sizeof v->buf - v->len, &s,
		                          s.gap_before && v->segments > 0);
		if (n < 0) {
			v->failed = v->end_done = true;
			return;
		}
		v->len += (size_t)n;
		v->segments++;
	}
}

static ssize_t hls_vod_read(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)pos;
	struct hls_vod *v = cls;
	if (v->off == v->len) {
		v->off = v->len = 0;
		hls_vod_fill(v);
	}
	if (v->off == v->len)
		return v->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
	size_t n = v->len - v->off < max ? v->len - v->off : max;
	memcpy(out, v->buf + v->off, n);
	v->off += n;
	return (ssize_t)n;
}

static int hls_reply(struct web_reply *rep, struct MHD_Response *r)
{
	if (!r)
		return -ENOMEM;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, HLS_CONTENT_TYPE) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
		MHD_destroy_response(r);
		return -ENOMEM;
	}
	rep->status = 200;
	rep->response = r;
	return 0;
}

static int hls_vod(struct web *w, uint32_t cam, int64_t t0, int64_t t1, struct web_reply *rep)
{
	int64_t target;
	uint64_t count;
	int err = hls_vod_measure(w->ctx.stg, cam, t0, t1, &target, &count);
	if (err)
		return err;
	if (count == 0)
		return api_error(rep, 404, NULL, "no footage in this window");
	struct hls_vod *v = calloc(1, sizeof *v);
	if (!v)
		return -ENOMEM;
	hls_plan_init(&v->plan, w->ctx.stg, cam, t0, t1);
	v->camera = cam;
	v->target = target;
	nvr_log("info", "web", "event=hls_playlist camera=%" PRIu32 " kind=vod segments=%" PRIu64
	        " target_s=%" PRId64, cam, count, target);
	return hls_reply(rep, MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16u << 10,
	                                                        hls_vod_read, v, free));
}

/* ---- live playlist --------------------------------------------------------- */

struct hls_live {
	struct hls_segment seg[HLS_LIVE_SEGMENTS];
	int count;                      /* in the ring, up to HLS_LIVE_SEGMENTS */
};

/* Keeps the last HLS_LIVE_SEGMENTS complete segments of the lookback. */
static int hls_live_window(struct stg *stg, uint32_t cam, int64_t now, struct hls_live *l,
                           struct hls_plan *p)
{
	int64_t t0 = (now - HLS_LIVE_LOOKBACK_US) / HLS_CELL_US * HLS_CELL_US;
	hls_plan_init(p, stg, cam, t0, now + HLS_CELL_US);
	struct hls_segment s;
	int r;
	memset(l, 0, sizeof *l);
	while ((r = hls_plan_next(p, &s)) > 0) {
		if (r == 2 && s.end_us > now - HLS_LIVE_STALE_US)
			break;                  /* still being recorded */
		if (l->count == HLS_LIVE_SEGMENTS) {
			memmove(l->seg, l->seg + 1, sizeof l->seg[0] * (HLS_LIVE_SEGMENTS - 1));
			l->count--;
		}
		l->seg[l->count++] = s;
	}
	return r < 0 ? r : 0;
}

/* Media and discontinuity sequence numbers of segment `first`: the
 * segments (and gaps) of its UTC day before it. */
static int hls_live_sequence(struct stg *stg, uint32_t cam, const struct hls_segment *first,
                             struct hls_plan *p, uint64_t *seq, uint64_t *disc)
{
	int64_t day = first->start_us / HLS_DAY_US;
	hls_plan_init(p, stg, cam, day * HLS_DAY_US, first->start_us);
	uint64_t n = 0, gaps = 0;
	struct hls_segment s;
	int r;
	while ((r = hls_plan_next(p, &s)) > 0) {
		if (s.gap_before && n > 0)
			gaps++;
		n++;
	}
	if (r < 0)
		return r;
	/* `first` is listed without its EXT-X-DISCONTINUITY: count it as gone */
	if (first->gap_before && n > 0)
		gaps++;
	*seq = (uint64_t)day * HLS_SEQ_PER_DAY + n;
	*disc = (uint64_t)day * HLS_SEQ_PER_DAY + gaps;
	return 0;
}

static int hls_live_text(const struct hls_live *l, uint64_t seq, uint64_t disc, char **out)
{
	int64_t target = HLS_LIVE_MIN_TARGET;
	for (int i = 0; i < l->count; i++) {
		int64_t d = hls_rounded_seconds(l->seg[i].end_us - l->seg[i].start_us);
		target = d > target ? d : target;
	}
	size_t cap = 256 + (size_t)l->count * HLS_LINE_MAX, len;
	char *t = malloc(cap);
	if (!t)
		return -ENOMEM;
	len = (size_t)snprintf(t, cap, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%" PRId64
	                       "\n#EXT-X-MEDIA-SEQUENCE:%" PRIu64
	                       "\n#EXT-X-DISCONTINUITY-SEQUENCE:%" PRIu64
	                       "\n#EXT-X-INDEPENDENT-SEGMENTS\n", target, seq, disc);
	for (int i = 0; i < l->count; i++) {
		int n = hls_segment_lines(t + len, cap - len, &l->seg[i], l->seg[i].gap_before && i > 0);
		if (n < 0) {
			free(t);
			return n;
		}
		len += (size_t)n;
	}
	*out = t;
	return (int)len;
}

static int hls_live(struct web *w, uint32_t cam, struct web_reply *rep)
{
	struct hls_plan *p = malloc(sizeof *p);
	struct hls_live l;
	uint64_t seq = 0, disc = 0;
	char *text = NULL;
	int err = p ? hls_live_window(w->ctx.stg, cam, nvr_now_us(), &l, p) : -ENOMEM;
	if (err)
		goto fail;
	if (l.count == 0) {
		err = api_error(rep, 404, NULL, "no recent footage for a live playlist");
		goto fail;
	}
	err = hls_live_sequence(w->ctx.stg, cam, &l.seg[0], p, &seq, &disc);
	if (err)
		goto fail;
	int len = hls_live_text(&l, seq, disc, &text);
	err = len < 0 ? len : 0;
	if (err)
		goto fail;
	free(p);
	return hls_reply(rep, MHD_create_response_from_buffer((size_t)len, text,
	                                                      MHD_RESPMEM_MUST_FREE));
fail:
	free(text);
	free(p);
	return err;
}

/* The audit entry of a playlist request (t0 = t1 = 0: live). */
static int hls_audit(struct web *w, const struct web_request *req, uint32_t id, int64_t t0,
                     int64_t t1)
{
	json_t *d = t0 || t1 ? json_pack("{s:I, s:I, s:I, s:s}", "camera", (json_int_t)id,
	                                 "from_ms", (json_int_t)(t0 / 1000), "to_ms",
	                                 (json_int_t)(t1 / 1000), "format", "hls")
	                     : json_pack("{s:I, s:b, s:s}", "camera", (json_int_t)id, "live", 1,
	                                 "format", "hls");
	int err = d ? api_audit_read(w, req, "playback", d) : -ENOMEM;
	json_decref(d);
	return err;
}

int api_hls_playlist(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep)
{
	int err = 0;
	if (query_get(&req->query, "live")) {
		int64_t id = api_path_id(arg, rep);
		if (id < 0)
			return 0;
		if (!api_camera_exists(w, (uint32_t)id, &err))
			return err ? err : api_error(rep, 404, "id", "no camera with this id");
		err = hls_audit(w, req, (uint32_t)id, 0, 0);
		return err ? err : hls_live(w, (uint32_t)id, rep);
	}
	int64_t t0, t1;
	uint32_t id;
	err = api_camera_window(w, req, arg, rep, &id, &t0, &t1);
	if (err)
		return err < 0 ? err : 0;
	err = hls_audit(w, req, id, t0, t1);
	return err ? err : hls_vod(w, id, t0, t1, rep);
}

/* ---- segments -------------------------------------------------------------- */

/* A segment that does not start at a key frame: reclaimed (410) when it
 * lies before the oldest footage of the camera, else unknown (404). */
static int hls_segment_missing(struct web *w, uint32_t cam, int64_t start, struct web_reply *rep)
{
	struct stg_range r;
	int n = stg_ranges(w->ctx.stg, cam, 0, INT64_MAX, &r, 1);
	if (n < 0)
		return n;
	if (n == 0 || start < r.start_us)
		return api_error(rep, 410, "start", "this footage has been overwritten");
	return api_error(rep, 404, "start", "no segment starts at this time");
}

/* start and end from the query: 0, 1 with a 400 reply, or -ENOMEM. */
static int hls_segment_times(const struct query *q, int64_t *start, int64_t *end,
                             struct web_reply *rep)
{
	struct query_error qe;
	int a = query_int(q, "start", 0, INT64_MAX / 2, 0, start, &qe);
	int b = a > 0 ? query_int(q, "end", 1, INT64_MAX / 2, 0, end, &qe) : a;
	if (a == 0 || b == 0) {
		const char *which = a == 0 ? "start" : "end";
		return api_error(rep, 400, which, "is required (epoch microseconds)") ? -ENOMEM : 1;
	}
	if (a < 0 || b < 0)
		return api_query_error(rep, &qe) ? -ENOMEM : 1;
	if (*end <= *start || *end - *start > HLS_MAX_SEGMENT_US)
		return api_error(rep, 400, "end", "must be later than start, by at most 120 s") ?
		       -ENOMEM : 1;
	return 0;
}

int api_hls_segment(struct web *w, const struct web_request *req, const char *arg,
                    struct web_reply *rep)
{
	int64_t id = api_path_id(arg, rep), start, end;
	int err = 0;
	if (id < 0)
		return 0;
	int r = hls_segment_times(&req->query, &start, &end, rep);
	if (r)
		return r < 0 ? r : 0;
	if (!api_camera_exists(w, (uint32_t)id, &err))
		return err ? err : api_error(rep, 404, "id", "no camera with this id");
	struct stg_key_frame k;
	int n = stg_key_frames(w->ctx.stg, (uint32_t)id, start, start + 1, &k, 1);
	if (n < 0)
		return n;
	if (n == 0)
		return hls_segment_missing(w, (uint32_t)id, start, rep);
	struct avs_plan plan = { .stg = w->ctx.stg, .camera = (uint32_t)id, .t0 = start,
	                         .t1 = end, .format = "mpegts", .what = "hls_segment",
	                         .opt = { .origin_us = hls_ts_origin(start), .has_origin = true } };
	struct avs *s;
	err = avs_open(&s, &plan, 0, UINT64_MAX, UINT64_MAX);
	if (err == -ENOENT || err == STG_EGONE)
		return hls_segment_missing(w, (uint32_t)id, start, rep);
	if (err)
		return err;
	struct MHD_Response *resp = avs_response(s, UINT64_MAX);
	if (!resp)
		return -ENOMEM;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "video/mp2t") != MHD_YES) {
		MHD_destroy_response(resp);
		return -ENOMEM;
	}
	rep->status = 200;
	rep->response = resp;
	return 0;
}
