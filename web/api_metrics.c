/*
 * api_metrics.c - GET /metrics: the recorder's state in the Prometheus text
 * exposition format (version 0.0.4), for the operators' monitoring.
 *
 * What is exported: per camera its ingest state, bitrate, frame rate,
 * frames recorded, lost and dropped, reconnects, failures in the last 24 h
 * (repeat failures), days of footage kept; per volume bytes written,
 * write errors, state, free and total segments, age of its oldest footage;
 * the index size; HTTP answers by status code; retention: capacity, holds
 * and held bytes, and per class its promise, the days kept, the forecast
 * and its alarm (below the promise), as GET /retention shows them. Camera labels are the id
 * only (names may change and would multiply series).
 *
 * With 30,000 cameras the answer is several megabytes, so it is streamed
 * (libmicrohttpd reader callback) and never built whole: the camera ids are
 * copied from the registry snapshot when the request starts (with the
 * engine's per-camera retention table, tens of bytes a camera), then each call
 * of mx_read renders the next few cameras' lines into a small buffer. The
 * header lines (volumes, index, HTTP; then retention) are rendered first,
 * the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "log.h"

#define MX_BUF (64u << 10)
#define MX_CAMERA_LINE_MAX 1024     /* one camera's lines are shorter */
#define MX_VOLUMES_MAX 64
#define MX_CLASSES_MAX 65           /* the engine keeps 64 plus the default */
#define MX_DAY_US 864e8

/* The per-camera metric families, rendered family by family. */
enum mx_family {
	MX_CAM_UP, MX_CAM_STATE, MX_CAM_BITRATE, MX_CAM_FPS, MX_CAM_FRAMES,
	MX_CAM_LOST, MX_CAM_DROPPED, MX_CAM_RECONNECTS, MX_CAM_FAILURES, MX_CAM_RETAINED,
	MX_CAM_FAMILIES,
};

static const struct {
	const char *name, *type, *help;
} mx_camera_families[MX_CAM_FAMILIES] = {
	[MX_CAM_UP] = { "nvr_camera_streaming", "gauge", "1 while the camera streams, else 0" },
	[MX_CAM_STATE] = { "nvr_camera_state", "gauge", "ingest state (label state), value 1" },
	[MX_CAM_BITRATE] = { "nvr_camera_bitrate_kbps", "gauge", "received bitrate over the last seconds" },
	[MX_CAM_FPS] = { "nvr_camera_fps", "gauge", "frames per second over the last seconds" },
	[MX_CAM_FRAMES] = { "nvr_camera_frames_total", "counter", "frames handed to storage" },
	[MX_CAM_LOST] = { "nvr_camera_lost_frames_total", "counter", "frames discarded by the depacketizer (gaps, corruption)" },
	[MX_CAM_DROPPED] = { "nvr_camera_dropped_frames_total", "counter", "frames dropped by storage back-pressure" },
	[MX_CAM_RECONNECTS] = { "nvr_camera_reconnects_total", "counter", "reconnections since the daemon started" },
	[MX_CAM_FAILURES] = { "nvr_camera_failures_24h", "gauge", "failures in the last 24 h (3 or more: a repeat failure)" },
	[MX_CAM_RETAINED] = { "nvr_camera_retained_days", "gauge", "days from the oldest footage on disk to now" },
};

struct mx_req {
	struct web *w;
	uint32_t *ids;
	size_t count;
	struct stg_camera_retention *ret; /* id order */
	size_t nret, ret_next;            /* ret_next: merge cursor, ids ascend */
	size_t family, next;            /* cursor: family, then camera index */
	struct api_status_block *sb;    /* statuses of ids[st_at, st_at + st_n) */
	size_t st_at, st_n;
	int header_part;                /* 0 volumes..totals, 1 retention, 2 done */
	char *buf;
	size_t len, off;
};

static void mx_printf(struct mx_req *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the buffer; the callers keep MX_CAMERA_LINE_MAX of room, and
 * the header is sized below MX_BUF, so truncation cannot happen silently:
 * it is logged and the line dropped. */
static void mx_printf(struct mx_req *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(m->buf + m->len, MX_BUF - m->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= MX_BUF - m->len) {
		nvr_log("warn", "web", "event=metrics_line_dropped");
		m->buf[m->len] = '\0';
		return;
	}
	m->len += (size_t)n;
}

static void mx_family(struct mx_req *m, const char *name, const char *type, const char *help)
{
	mx_printf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A gauge with one unlabelled sample. */
static void mx_gauge(struct mx_req *m, const char *name, const char *help, uint64_t value)
{
	mx_family(m, name, "gauge", help);
	mx_printf(m, "%s %" PRIu64 "\n", name, value);
}

static const char *mx_volume_state(enum stg_volume_state s)
{
	switch (s) {
	case STG_VOL_ACTIVE: return "active";
	case STG_VOL_FAILED: return "failed";
	case STG_VOL_REFUSED: return "refused";
	}
	return "unknown";
}

/* A label value: backslash, double quote and newline escaped. */
static void mx_escape(const char *in, char *out, size_t outsz)
{
	size_t o = 0;
	for (; *in && o + 3 < outsz; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

static int64_t mx_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void mx_volumes(struct mx_req *m)
{
	static __thread struct stg_volume_stats vs[MX_VOLUMES_MAX];
	int n = stg_volume_stats(m->w->ctx.stg, vs, MX_VOLUMES_MAX);
	if (n > MX_VOLUMES_MAX)
		n = MX_VOLUMES_MAX;
	int64_t now = mx_now_us();
	static const struct { const char *name, *type, *help; } fam[] = {
		{ "nvr_volume_bytes_written_total", "counter", "bytes written to the volume" },
		{ "nvr_volume_write_errors_total", "counter", "failed writes" },
		{ "nvr_volume_state", "gauge", "volume state (label state), value 1" },
		{ "nvr_volume_segments_free", "gauge", "segments ready to be written" },
		{ "nvr_volume_segments_total", "gauge", "segments of the volume" },
		{ "nvr_volume_oldest_footage_age_seconds", "gauge", "age of the oldest footage still on the volume" },
	};
	for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
		mx_family(m, fam[f].name, fam[f].type, fam[f].help);
		for (int i = 0; i < n; i++) {
			const struct stg_volume_stats *v = &vs[i];
			char path[2 * sizeof v->path], label[sizeof path + 32];
			mx_escape(v->path, path, sizeof path);
			snprintf(label, sizeof label, "volume=\"%d\",path=\"%s\"", i, path);
			switch (f) {
			case 0: mx_printf(m, "%s{%s} %" PRIu64 "\n", fam[f].name, label, v->bytes_written); break;
			case 1: mx_printf(m, "%s{%s} %" PRIu64 "\n", fam[f].name, label, v->write_errors); break;
			case 2: mx_printf(m, "%s{%s,state=\"%s\"} 1\n", fam[f].name, label, mx_volume_state(v->state)); break;
			case 3: mx_printf(m, "%s{%s} %" PRIu32 "\n", fam[f].name, label, v->segments_free); break;
			case 4: mx_printf(m, "%s{%s} %" PRIu32 "\n", fam[f].name, label, v->segments_total); break;
			case 5:
				if (v->oldest_us)
					mx_printf(m, "%s{%s} %.3f\n", fam[f].name, label,
					          (double)(now - v->oldest_us) / 1e6);
				break;
			}
		}
	}
}

/* One class gauge family: each class's value, or none when it has none. */
static void mx_class_family(struct mx_req *m, const struct stg_class_stats *cs, int n, int f)
{
	static const struct { const char *name, *help; } fam[] = {
		{ "nvr_retention_class_promised_days", "promised minimum retention (0: none)" },
		{ "nvr_retention_class_max_days", "maximum retention (0: kept while space allows)" },
		{ "nvr_retention_class_retained_days", "days from the class's oldest footage to now" },
		{ "nvr_retention_class_forecast_days", "retention current ingest rates allow once the disks are full" },
		{ "nvr_retention_class_cameras", "cameras of the class with footage" },
		{ "nvr_retention_class_alarm", "1 while the class is below its promised minimum" },
	};
	mx_family(m, fam[f].name, "gauge", fam[f].help);
	for (int i = 0; i < n; i++) {
		const struct stg_class_stats *c = &cs[i];
		char cls[2 * STG_CLASS_NAME_MAX];
		mx_escape(c->cls.name, cls, sizeof cls);
		double v = f == 0 ? (double)c->cls.min_us / MX_DAY_US
		         : f == 1 ? (double)c->cls.max_us / MX_DAY_US
		         : f == 2 ? (double)(c->retained_us > 0 ? c->retained_us : 0) / MX_DAY_US
		         : f == 3 ? (double)c->forecast_us / MX_DAY_US
		         : f == 4 ? (double)c->cameras : (double)c->alarm;
		if (f == 3 && c->forecast_us < 0)
			continue;
		mx_printf(m, "%s{class=\"%s\"} %.6g\n", fam[f].name, cls, v);
	}
}

static void mx_retention(struct mx_req *m)
{
	static __thread struct stg_class_stats cs[MX_CLASSES_MAX];
	struct stg_retention_stats rs;
	int n = 0;
	int err = stg_retention_stats(m->w->ctx.stg, &rs, cs, MX_CLASSES_MAX, &n);
	if (err) {
		nvr_log("warn", "web", "event=metrics_retention_failed error=\"%s\"", stg_strerror(err));
		return;
	}
	mx_gauge(m, "nvr_retention_capacity_bytes", "footage the volumes hold when full",
	         rs.capacity_bytes);
	mx_gauge(m, "nvr_holds", "legal holds in force", rs.holds);
	mx_gauge(m, "nvr_held_bytes", "footage legal holds keep (sum over the holds)",
	         rs.held_bytes);
	mx_gauge(m, "nvr_retention_alarms", "retention classes below their promise", rs.alarms);
	for (int f = 0; f < 6; f++)
		mx_class_family(m, cs, n < MX_CLASSES_MAX ? n : MX_CLASSES_MAX, f);
}

static void mx_header(struct mx_req *m)
{
	mx_volumes(m);
	struct stg_index_stats is;
	if (stg_index_stats(m->w->ctx.stg, &is) == 0) {
		mx_gauge(m, "nvr_index_bytes", "bytes of index pages in use", is.bytes);
		mx_gauge(m, "nvr_index_map_bytes", "size of the index map", is.map_size);
		mx_gauge(m, "nvr_index_ranges", "recorded ranges in the index", is.ranges);
	}
	struct web_http_counts hc;
	web_http_counts(m->w, &hc);
	mx_family(m, "nvr_http_requests_total", "counter", "HTTP answers by status code");
	for (size_t i = 0; i < hc.n; i++)
		mx_printf(m, "nvr_http_requests_total{code=\"%u\"} %" PRIu64 "\n", hc.code[i], hc.count[i]);
	struct ingest_totals t;
	memset(&t, 0, sizeof t);
	if (m->w->ctx.ingest)
		ingest_totals(m->w->ctx.ingest, &t);
	mx_gauge(m, "nvr_cameras", "cameras the ingest knows", t.cameras);
	mx_gauge(m, "nvr_cameras_streaming", "cameras streaming now", t.streaming);
	mx_gauge(m, "nvr_cameras_backoff", "cameras waiting to retry after a failure", t.backoff);
	mx_gauge(m, "nvr_cameras_repeat_failures", "cameras that failed 3 or more times in 24 h",
	         t.repeat_failures);
}

/* A camera's days kept, from the retention table (both lists ascend by
 * id, so one cursor walks it); nothing for a camera without footage. */
static void mx_retained_line(struct mx_req *m, const char *name, uint32_t id)
{
	while (m->ret_next < m->nret && m->ret[m->ret_next].camera_id < id)
		m->ret_next++;
	if (m->ret_next >= m->nret || m->ret[m->ret_next].camera_id != id)
		return;
	const struct stg_camera_retention *r = &m->ret[m->ret_next];
	if (r->oldest_us)
		mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %.4f\n", name, id,
		          (double)(r->retained_us > 0 ? r->retained_us : 0) / MX_DAY_US);
}

/* The status of ids[i]: asked for API_STATUS_BLOCK cameras at a time (one
 * round trip to each recorder thread, not one per camera and family). */
static const struct ingest_camera_status *mx_status(struct mx_req *m, size_t i, bool *known)
{
	if (i < m->st_at || i >= m->st_at + m->st_n) {
		m->st_at = i;
		m->st_n = m->count - i < API_STATUS_BLOCK ? m->count - i : API_STATUS_BLOCK;
		api_statuses(m->w, m->ids + i, m->st_n, m->sb->st, m->sb->known);
	}
	*known = m->sb->known[i - m->st_at];
	return &m->sb->st[i - m->st_at];
}

static void mx_camera_line(struct mx_req *m, size_t i)
{
	uint32_t id = m->ids[i];
	bool known;
	const struct ingest_camera_status *st = mx_status(m, i, &known);
	const char *name = mx_camera_families[m->family].name;
	switch ((enum mx_family)m->family) {
	case MX_CAM_UP:
		mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %d\n", name, id,
		          known && st->state == INGEST_STREAMING);
		break;
	case MX_CAM_STATE:
		mx_printf(m, "%s{camera=\"%" PRIu32 "\",state=\"%s\"} 1\n", name, id,
		          known ? ingest_state_name(st->state) : "not_recording");
		break;
	case MX_CAM_BITRATE: mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %.1f\n", name, id, st->bitrate_kbps); break;
	case MX_CAM_FPS: mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %.2f\n", name, id, st->fps); break;
	case MX_CAM_FRAMES: mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %" PRIu64 "\n", name, id, st->frames); break;
	case MX_CAM_LOST: mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %" PRIu64 "\n", name, id, st->frames_lost); break;
	case MX_CAM_DROPPED: mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %" PRIu64 "\n", name, id, st->frames_dropped); break;
	case MX_CAM_RECONNECTS: mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %" PRIu64 "\n", name, id, st->reconnects); break;
	case MX_CAM_FAILURES: mx_printf(m, "%s{camera=\"%" PRIu32 "\"} %" PRIu32 "\n", name, id, st->failures_24h); break;
	case MX_CAM_RETAINED: mx_retained_line(m, name, id); break;
	case MX_CAM_FAMILIES: break;
	}
}

/* Renders more lines into the (drained) buffer; false at the end. */
static bool mx_fill(struct mx_req *m)
{
	m->len = m->off = 0;
	if (m->header_part < 2) {    /* each part fits the buffer alone */
		if (m->header_part++ == 0)
			mx_header(m);
		else
			mx_retention(m);
		return true;
	}
	while (m->family < MX_CAM_FAMILIES && m->len + MX_CAMERA_LINE_MAX < MX_BUF) {
		if (m->next == 0) {
			mx_family(m, mx_camera_families[m->family].name,
			          mx_camera_families[m->family].type,
			          mx_camera_families[m->family].help);
		}
		if (m->next < m->count) {
			mx_camera_line(m, m->next++);
			continue;
		}
		m->family++;
		m->next = 0;
	}
	return m->len > 0;
}

static ssize_t mx_read(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)pos;
	struct mx_req *m = cls;
	while (m->off == m->len)        /* a part may render nothing */
		if (!mx_fill(m))
			return MHD_CONTENT_READER_END_OF_STREAM;
	size_t n = m->len - m->off;
	if (n > max)
		n = max;
	memcpy(out, m->buf + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static void mx_free(void *cls)
{
	struct mx_req *m = cls;
	free(m->ids);
	free(m->sb);
	free(m->ret);
	free(m->buf);
	free(m);
}

/* Copies the camera ids so that no lock is held while the client reads. */
static int mx_copy_ids(struct mx_req *m)
{
	int err = api_snapshot_acquire(m->w);
	if (err)
		return err;
	m->count = m->w->snap.count;
	m->ids = malloc((m->count ? m->count : 1) * sizeof *m->ids);
	m->sb = malloc(sizeof *m->sb);
	if (m->ids)
		for (size_t i = 0; i < m->count; i++)
			m->ids[i] = m->w->snap.cams[i].id;
	api_snapshot_release(m->w);
	return m->ids && m->sb ? 0 : -ENOMEM;
}

/* The engine's per-camera retention table, for nvr_camera_retained_days. */
static int mx_copy_retention(struct mx_req *m)
{
	int want = stg_retention_cameras(m->w->ctx.stg, NULL, 0);
	if (want < 0)
		return want;
	size_t room = (size_t)want + 64;
	m->ret = calloc(room, sizeof *m->ret);
	if (!m->ret)
		return -ENOMEM;
	int got = stg_retention_cameras(m->w->ctx.stg, m->ret, (int)room);
	if (got < 0)
		return got;
	m->nret = (size_t)got < room ? (size_t)got : room;
	return 0;
}

int api_metrics(struct web *w, const struct web_request *req, const char *arg,
                struct web_reply *rep)
{
	(void)req;
	(void)arg;
	struct mx_req *m = calloc(1, sizeof *m);
	int err = -ENOMEM;
	if (!m)
		return err;
	m->w = w;
	m->buf = malloc(MX_BUF);
	if (!m->buf)
		goto fail;
	err = mx_copy_ids(m);
	if (!err)
		err = mx_copy_retention(m);
	if (err)
		goto fail;
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, MX_BUF,
	                                                           mx_read, m, mx_free);
	if (!r) {
		err = -ENOMEM;
		goto fail;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	rep->response = r;
	rep->status = 200;
	return 0;
fail:
	mx_free(m);
	return err;
}
