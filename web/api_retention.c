/*
 * api_retention.c - GET /retention: the capacity forecast. Per class its
 * promise (minimum and maximum days, share), the days of footage kept now,
 * the days current ingest rates allow once the disks are full, and its
 * alarm (below the promise); per camera the same, paged; on top the
 * capacity and what holds keep. All of it comes from the engine
 * (stg_retention_stats, stg_retention_cameras); nvrctl retention prints
 * the same figures on a stopped appliance.
 *
 * A recorder has up to 30,000 cameras: the engine's per-camera table is
 * read whole (tens of bytes a camera) but only one page of it, at most
 * 1,000 cameras, goes into the answer. A camera's bytes on disk cost a
 * segment directory lookup per segment its footage spans (stg_estimate),
 * so they are counted only when asked (bytes=1) and for at most 100
 * cameras per page.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

#define AR_MAX_CLASSES 65           /* the engine keeps 64 plus the default */
#define AR_MAX_LIMIT_BYTES 100
#define AR_DAY_US 864e8

struct ar_query {
	const char *cls;                /* NULL: every class */
	int64_t limit, offset, bytes;
};

static json_t *ar_days(int64_t us)
{
	return us < 0 ? json_null() : json_real((double)us / AR_DAY_US);
}

static json_t *ar_class_json(const struct stg_class_stats *c)
{
	/* bytes against share_bytes: only counted while some class has a share */
	json_t *share = c->share_bytes ? json_pack("{s:I, s:I}", "bytes", (json_int_t)c->bytes,
	                                           "limit_bytes", (json_int_t)c->share_bytes)
	                               : json_null();
	return json_pack("{s:s, s:o, s:o, s:I, s:o, s:I, s:o, s:o, s:f, s:b, s:o, s:o}",
	                 "name", c->cls.name, "promised_days", ar_days(c->cls.min_us),
	                 "max_days", c->cls.max_us ? ar_days(c->cls.max_us) : json_null(),
	                 "share_pct", (json_int_t)c->cls.share_pct, "share", share,
	                 "cameras", (json_int_t)c->cameras,
	                 "retained_days", ar_days(c->retained_us > 0 ? c->retained_us : 0),
	                 "forecast_days", ar_days(c->forecast_us), "bytes_per_s", c->bytes_per_s,
	                 "alarm", c->alarm, "alarm_since",
	                 c->alarm ? api_time(c->alarm_since_us) : json_null(),
	                 "alarm_since_ms",
	                 c->alarm ? json_integer((json_int_t)(c->alarm_since_us / 1000)) : json_null());
}

/* One camera; `bytes` counted with stg_estimate when asked. */
static json_t *ar_camera_json(struct web *w, const struct stg_camera_retention *c, bool bytes,
                              int *err)
{
	json_t *b = json_null();
	if (bytes && c->oldest_us) {
		struct stg_estimate e;
		*err = stg_estimate(w->ctx.stg, c->camera_id, c->oldest_us, INT64_MAX, &e);
		if (*err)
			return NULL;
		b = json_integer((json_int_t)e.bytes);
	} else if (bytes) {
		b = json_integer(0);
	}
	json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:f, s:o}",
	                      "id", (json_int_t)c->camera_id, "class", c->class_name,
	                      "oldest", c->oldest_us ? api_time(c->oldest_us) : json_null(),
	                      "oldest_ms", c->oldest_us ? json_integer((json_int_t)(c->oldest_us / 1000))
	                                                : json_null(),
	                      "retained_days", ar_days(c->oldest_us && c->retained_us > 0 ?
	                                               c->retained_us : 0),
	                      "forecast_days", ar_days(c->forecast_us),
	                      "bytes_per_s", c->bytes_per_s, "bytes", b);
	if (!o)
		*err = -ENOMEM;
	return o;
}

static int ar_parse(const struct query *q, struct ar_query *a, struct web_reply *rep)
{
	struct query_error qe;
	a->cls = query_get(q, "class");
	if (query_int(q, "limit", 0, API_MAX_LIMIT, API_DEFAULT_LIMIT, &a->limit, &qe) < 0 ||
	    query_int(q, "offset", 0, INT32_MAX, 0, &a->offset, &qe) < 0 ||
	    query_int(q, "bytes", 0, 1, 0, &a->bytes, &qe) < 0) {
		int err = api_query_error(rep, &qe);
		return err ? err : 1;
	}
	if (a->bytes && a->limit > AR_MAX_LIMIT_BYTES) {
		int err = api_error(rep, 400, "limit", "with bytes=1 the limit is at most 100");
		return err ? err : 1;
	}
	return 0;
}

/* The classes (all, or the one asked for); 1 after a 404 naming class. */
static int ar_classes(const struct ar_query *a, const struct stg_class_stats *cs, int n,
                      json_t **out, struct web_reply *rep)
{
	json_t *arr = json_array();
	for (int i = 0; arr && i < n; i++) {
		if (a->cls && strcmp(a->cls, cs[i].cls.name))
			continue;
		if (json_array_append_new(arr, ar_class_json(&cs[i]))) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (!arr)
		return -ENOMEM;
	if (a->cls && json_array_size(arr) == 0) {
		json_decref(arr);
		int err = api_error(rep, 404, "class", "no such retention class");
		return err ? err : 1;
	}
	*out = arr;
	return 0;
}

/* The engine's camera table, whole: *out malloc'd, *n entries. */
static int ar_camera_table(struct web *w, struct stg_camera_retention **out, int *n)
{
	int want = stg_retention_cameras(w->ctx.stg, NULL, 0);
	if (want < 0)
		return want;
	int room = want + 64;           /* cameras that appear meanwhile */
	struct stg_camera_retention *t = calloc((size_t)room, sizeof *t);
	if (!t)
		return -ENOMEM;
	int got = stg_retention_cameras(w->ctx.stg, t, room);
	if (got < 0) {
		free(t);
		return got;
	}
	*out = t;
	*n = got < room ? got : room;
	return 0;
}

/* One page of cameras into *page; *total counts those that match. */
static int ar_cameras(struct web *w, const struct ar_query *a, json_t **page, int64_t *total)
{
	struct stg_camera_retention *t;
	int n, err = ar_camera_table(w, &t, &n);
	if (err)
		return err;
	json_t *arr = json_array();
	err = arr ? 0 : -ENOMEM;
	*total = 0;
	for (int i = 0; !err && i < n; i++) {
		if (a->cls && strcmp(a->cls, t[i].class_name))
			continue;
		int64_t k = (*total)++;
		if (k < a->offset || k >= a->offset + a->limit)
			continue;
		json_t *o = ar_camera_json(w, &t[i], a->bytes, &err);
		if (o && json_array_append_new(arr, o))
			err = -ENOMEM;
	}
	free(t);
	if (err) {
		json_decref(arr);
		return err;
	}
	*page = arr;
	return 0;
}

static json_t *ar_totals(const struct stg_retention_stats *rs)
{
	return json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	                 "now", api_time(api_now_us()), "now_ms", (json_int_t)(api_now_us() / 1000),
	                 "capacity_bytes", (json_int_t)rs->capacity_bytes,
	                 "held_bytes", (json_int_t)rs->held_bytes, "holds", (json_int_t)rs->holds,
	                 "alarms", (json_int_t)rs->alarms,
	                 "relocated_chunks", (json_int_t)rs->relocated_chunks,
	                 "relocated_bytes", (json_int_t)rs->relocated_bytes,
	                 "expired_chunks", (json_int_t)rs->expired_chunks,
	                 "purged_chunks", (json_int_t)rs->purged_chunks);
}

int api_retention(struct web *w, const struct web_request *req, const char *arg,
                  struct web_reply *rep)
{
	(void)arg;
	struct ar_query a;
	int err = ar_parse(&req->query, &a, rep);
	if (err)
		return err < 0 ? err : 0;
	static __thread struct stg_class_stats cs[AR_MAX_CLASSES];
	struct stg_retention_stats rs;
	int ncls = 0;
	json_t *classes = NULL, *cams = NULL, *body;
	int64_t total = 0;
	err = stg_retention_stats(w->ctx.stg, &rs, cs, AR_MAX_CLASSES, &ncls);
	if (!err)
		err = ar_classes(&a, cs, ncls < AR_MAX_CLASSES ? ncls : AR_MAX_CLASSES, &classes, rep);
	if (!err && (err = ar_cameras(w, &a, &cams, &total)))
		json_decref(classes);
	if (err)
		return err < 0 ? err : 0;
	body = ar_totals(&rs);
	if (!body) {
		json_decref(classes);
		json_decref(cams);
		return -ENOMEM;
	}
	/* set_new takes its value even when it fails */
	if (json_object_set_new(body, "classes", classes) |
	    json_object_set_new(body, "cameras", cams) |
	    json_object_set_new(body, "total", json_integer(total)) |
	    json_object_set_new(body, "offset", json_integer(a.offset)) |
	    json_object_set_new(body, "limit", json_integer(a.limit))) {
		json_decref(body);
		return -ENOMEM;
	}
	rep->body = body;
	return 0;
}
