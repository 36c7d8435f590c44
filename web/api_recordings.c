/*
 * api_recordings.c - GET /api/v1/health and /api/v1/cameras/{id}/ranges:
 * what the recorder is doing and what it has on disk. The health verdict
 * and its reasons come from api_ops.c.
 *
 * /health answers anyone ({"status": "ok"}, for load balancers and
 * monitors); its details (ingest totals, volumes) only an operator or an
 * admin (or anyone with authentication off).
 *
 * Ranges come from stg_ranges() over [from, to); what lies between them in
 * the window is reported as gaps, so that a timeline can be drawn from one
 * answer. The window is bounded (web_config.max_window_ms) and so is the
 * number of ranges listed (API_MAX_RANGES, "truncated": true beyond it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"

#define API_MAX_VOLUMES 64
#define API_MAX_RANGES 10000

static const char *api_volume_state(enum stg_volume_state s)
{
	switch (s) {
	case STG_VOL_ACTIVE: return "active";
	case STG_VOL_FAILED: return "failed";
	case STG_VOL_REFUSED: return "refused";
	}
	return "unknown";
}

json_t *api_time(int64_t us)
{
	char buf[40];
	return query_format_time(us, buf, sizeof buf) ? json_null() : json_string(buf);
}

static json_t *api_volumes_json(struct web *w)
{
	static __thread struct stg_volume_stats vs[API_MAX_VOLUMES];
	int n = stg_volume_stats(w->ctx.stg, vs, API_MAX_VOLUMES);
	json_t *arr = json_array();
	for (int i = 0; arr && i < n && i < API_MAX_VOLUMES; i++) {
		json_t *v = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o}",
		                      "path", vs[i].path, "state", api_volume_state(vs[i].state),
		                      "segments_total", (json_int_t)vs[i].segments_total,
		                      "segments_free", (json_int_t)vs[i].segments_free,
		                      "bytes_written", (json_int_t)vs[i].bytes_written,
		                      "write_errors", (json_int_t)vs[i].write_errors,
		                      "oldest", vs[i].oldest_us ? api_time(vs[i].oldest_us) : json_null());
		if (v && vs[i].state != STG_VOL_ACTIVE)
			json_object_set_new(v, "last_error", json_string(vs[i].last_error));
		if (!v || json_array_append_new(arr, v)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Retention classes below their promised minimum (storage.h). */
static json_t *api_alarms_json(struct web *w)
{
	static __thread struct stg_class_stats cs[65];
	int n = 0;
	json_t *arr = json_array();
	if (!arr || stg_retention_stats(w->ctx.stg, NULL, cs, 65, &n))
		return arr;
	for (int i = 0; i < n && i < 65; i++) {
		if (!cs[i].alarm)
			continue;
		json_t *a = json_pack("{s:s, s:s, s:o, s:f, s:f}", "kind", "retention_below_promise",
		                      "class", cs[i].cls.name, "since", api_time(cs[i].alarm_since_us),
		                      "promised_days", cs[i].cls.min_us / 864e8,
		                      "retained_days", cs[i].retained_us / 864e8);
		if (!a || json_array_append_new(arr, a)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* A class below its promise degrades the verdict (the alarm's reason). */
static const char *api_with_alarms(const char *status, json_t *reasons, json_t *alarms)
{
	size_t n = json_array_size(alarms);
	if (!n)
		return status;
	char detail[96];
	snprintf(detail, sizeof detail, "%zu retention classes keep less than their promised days", n);
	json_array_append_new(reasons, json_pack("{s:s, s:s}", "code", "retention_below_promise",
	                                         "detail", detail));
	return strcmp(status, "ready") ? status : "degraded";
}

/* Everyone (monitors too) gets the verdict; operators and admins also its
 * reasons, the totals, the volumes and the retention alarms. */
int api_health(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep)
{
	(void)arg;
	struct ingest_totals t;
	memset(&t, 0, sizeof t);
	if (w->ctx.ingest)
		ingest_totals(w->ctx.ingest, &t);
	const char *status;
	json_t *reasons = NULL, *vols = NULL, *alarms = api_alarms_json(w);
	if (!alarms || api_health_assess(w, &t, &status, &reasons)) {
		json_decref(alarms);
		return -ENOMEM;
	}
	status = api_with_alarms(status, reasons, alarms);
	rep->status = strcmp(status, "failed") ? 200 : 503;
	if (!req->authenticated || !(WEB_ROLES_OPERATORS & WEB_ROLE_BIT(req->role))) {
		json_decref(reasons);
		json_decref(alarms);
		rep->body = json_pack("{s:s}", "status", status);
		return rep->body ? 0 : -ENOMEM;
	}
	vols = api_volumes_json(w);
	if (!vols) {
		json_decref(reasons);
		json_decref(alarms);
		return -ENOMEM;
	}
	rep->body = json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "status", status,
	                      "reasons", reasons, "cameras", (json_int_t)t.cameras,
	                      "streaming", (json_int_t)t.streaming, "backoff", (json_int_t)t.backoff,
	                      "repeat_failures", (json_int_t)t.repeat_failures,
	                      "frames", (json_int_t)t.frames,
	                      "frames_dropped", (json_int_t)t.frames_dropped, "volumes", vols,
	                      "alarms", alarms);
	return rep->body ? 0 : -ENOMEM;
}

json_t *api_span(int64_t start_us, int64_t end_us)
{
	return json_pack("{s:o, s:o, s:I, s:I}", "start", api_time(start_us), "end", api_time(end_us),
	                 "start_ms", (json_int_t)(start_us / 1000), "end_ms", (json_int_t)(end_us / 1000));
}

/* Fills "ranges" and "gaps" of the window [t0, t1). */
static int api_spans(const struct stg_range *r, int n, int64_t t0, int64_t t1, json_t *ranges,
                     json_t *gaps)
{
	int64_t at = t0;
	for (int i = 0; i < n; i++) {
		if (r[i].start_us > at && json_array_append_new(gaps, api_span(at, r[i].start_us)))
			return -ENOMEM;
		if (json_array_append_new(ranges, api_span(r[i].start_us, r[i].end_us)))
			return -ENOMEM;
		if (r[i].end_us > at)
			at = r[i].end_us;
	}
	if (at < t1 && json_array_append_new(gaps, api_span(at, t1)))
		return -ENOMEM;
	return 0;
}

int api_body_time(json_t *v, const char *name, int64_t *us, struct web_reply *rep)
{
	if (json_is_integer(v) && json_integer_value(v) > -(INT64_MAX / 1000) &&
	    json_integer_value(v) < INT64_MAX / 1000) {
		*us = json_integer_value(v) * 1000;
		return 0;
	}
	if (json_is_string(v) && !query_parse_time(json_string_value(v), us))
		return 0;
	int err = api_error(rep, 400, name, v ? "must be RFC 3339 with a zone, or epoch milliseconds"
	                                      : "is required");
	return err ? err : 1;
}

int64_t api_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int api_window(struct web *w, const struct query *q, int64_t *t0, int64_t *t1,
               struct web_reply *rep)
{
	struct query_error qe;
	int a = query_time(q, "from", t0, &qe);
	if (a == 0)
		return api_error(rep, 400, "from", "is required (RFC 3339 or epoch ms)") ? -ENOMEM : 1;
	int b = a < 0 ? a : query_time(q, "to", t1, &qe);
	if (b == 0)
		return api_error(rep, 400, "to", "is required (RFC 3339 or epoch ms)") ? -ENOMEM : 1;
	if (b < 0)
		return api_query_error(rep, &qe) ? -ENOMEM : 1;
	if (*t1 <= *t0)
		return api_error(rep, 400, "to", "must be later than from") ? -ENOMEM : 1;
	if ((*t1 - *t0) / 1000 > w->cfg.max_window_ms) {
		char msg[96];
		snprintf(msg, sizeof msg, "window longer than %lld ms",
		         (long long)w->cfg.max_window_ms);
		return api_error(rep, 400, "to", msg) ? -ENOMEM : 1;
	}
	return 0;
}

bool api_camera_exists(struct web *w, uint32_t id, int *err)
{
	*err = api_snapshot_acquire(w);
	if (*err)
		return false;
	bool found = api_snapshot_find(w, id) != NULL;
	api_snapshot_release(w);
	return found;
}

int api_camera_window(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep, uint32_t *id, int64_t *t0, int64_t *t1)
{
	int64_t n = api_path_id(arg, rep);
	if (n < 0)
		return 1;
	int r = api_window(w, &req->query, t0, t1, rep);
	if (r)
		return r < 0 ? r : 1;
	int err = 0;
	if (!api_camera_exists(w, (uint32_t)n, &err)) {
		if (err)
			return err;
		r = api_error(rep, 404, "id", "no camera with this id");
		return r < 0 ? r : 1;
	}
	*id = (uint32_t)n;
	return 0;
}

int api_ranges(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep)
{
	int64_t t0, t1;
	uint32_t id;
	int err = api_camera_window(w, req, arg, rep, &id, &t0, &t1);
	if (err)
		return err < 0 ? err : 0;
	struct stg_range *ranges = malloc(API_MAX_RANGES * sizeof *ranges);
	json_t *jr = json_array(), *jg = json_array();
	err = -ENOMEM;
	if (!ranges || !jr || !jg)
		goto fail;
	int n = stg_ranges(w->ctx.stg, id, t0, t1, ranges, API_MAX_RANGES);
	if (n < 0) {
		err = n;
		goto fail;
	}
	/* When truncated, what follows the last listed range is unknown, not a gap. */
	err = api_spans(ranges, n < API_MAX_RANGES ? n : API_MAX_RANGES, t0,
	                n > API_MAX_RANGES ? INT64_MIN : t1, jr, jg);
	if (err)
		goto fail;
	rep->body = json_pack("{s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:b}", "camera", (json_int_t)id,
	                      "from", api_time(t0), "to", api_time(t1),
	                      "from_ms", (json_int_t)(t0 / 1000), "to_ms", (json_int_t)(t1 / 1000),
	                      "ranges", jr, "gaps", jg, "truncated", n > API_MAX_RANGES);
	jr = jg = NULL;
	err = rep->body ? 0 : -ENOMEM;
fail:
	json_decref(jr);
	json_decref(jg);
	free(ranges);
	return err;
}
