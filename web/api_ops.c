/*
 * api_ops.c - what the operators' monitoring asks: the health verdict of
 * GET /api/v1/health (ready, degraded or failed, with the reasons) and
 * GET /api/v1/repeat-failures, the cameras the maintenance crew should go
 * after.
 *
 * Health. "failed" when no volume can record (every volume failed or was
 * refused, or the engine cannot list them): nothing is being recorded, so
 * /health answers 503. "degraded" (200) when recording goes on with a
 * problem: a volume failed or was refused, API_HEALTH_BACKOFF_PCT or more
 * of the cameras are waiting to retry after a failure, some cameras are
 * repeat failures (ingest.h), or storage dropped frames (back-pressure, a
 * failing volume) within the last minute. "ready" otherwise. Each reason
 * is {"code", "detail"}; the codes are fixed strings a monitor may match.
 *
 * Dropped frames "in the last minute": the totals are sampled when health
 * is asked (at most every API_DROP_SAMPLE_US, a ring of API_DROP_SAMPLES)
 * and compared with the newest sample at least a minute old, or the oldest
 * one kept (the first is taken when the API starts), so the window is one
 * minute or the time since the API started when that is shorter; with
 * health asked rarely it can reach back further, which the detail says.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

#define API_HEALTH_BACKOFF_PCT 10        /* cameras in backoff: degraded from here */
#define API_DROP_WINDOW_US (60LL * 1000000)
#define API_DROP_SAMPLE_US (10LL * 1000000)
#define API_OPS_MAX_VOLUMES 64

static uint64_t api_dropped_now(struct web *w)
{
	struct ingest_totals t;
	memset(&t, 0, sizeof t);
	if (w->ctx.ingest)
		ingest_totals(w->ctx.ingest, &t);
	return t.frames_dropped;
}

static void api_drop_sample(struct api_drop_watch *d, int64_t now, uint64_t dropped)
{
	d->mono_us[d->next] = now;
	d->dropped[d->next] = dropped;
	d->next = (d->next + 1) % API_DROP_SAMPLES;
	if (d->count < API_DROP_SAMPLES)
		d->count++;
}

int api_ops_init(struct web *w)
{
	int err = -pthread_mutex_init(&w->drops.lock, NULL);
	if (!err)
		api_drop_sample(&w->drops, nvr_mono_us(), api_dropped_now(w));
	return err;
}

void api_ops_free(struct web *w)
{
	pthread_mutex_destroy(&w->drops.lock);
}

/* Frames dropped since the reference sample; its age in *span_us. */
static uint64_t api_drops_recent(struct web *w, uint64_t dropped, int64_t *span_us)
{
	struct api_drop_watch *d = &w->drops;
	int64_t now = nvr_mono_us();
	pthread_mutex_lock(&d->lock);
	uint32_t newest = (d->next + API_DROP_SAMPLES - 1) % API_DROP_SAMPLES;
	uint32_t ref = (d->next + API_DROP_SAMPLES - d->count) % API_DROP_SAMPLES;  /* oldest */
	for (uint32_t i = 0; i < d->count; i++) {
		uint32_t k = (newest + API_DROP_SAMPLES - i) % API_DROP_SAMPLES;
		if (now - d->mono_us[k] >= API_DROP_WINDOW_US) {
			ref = k;
			break;
		}
	}
	uint64_t base = d->dropped[ref];
	*span_us = now - d->mono_us[ref];
	if (now - d->mono_us[newest] >= API_DROP_SAMPLE_US)
		api_drop_sample(d, now, dropped);
	pthread_mutex_unlock(&d->lock);
	return dropped > base ? dropped - base : 0;
}

static int api_reason(json_t *reasons, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int api_reason(json_t *reasons, const char *code, const char *fmt, ...)
{
	char detail[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	json_t *r = json_pack("{s:s, s:s}", "code", code, "detail", detail);
	return r && !json_array_append_new(reasons, r) ? 0 : -ENOMEM;
}

/* Volume reasons; *usable counts the volumes that can record. */
static int api_volume_reasons(struct web *w, json_t *reasons, int *usable)
{
	static __thread struct stg_volume_stats vs[API_OPS_MAX_VOLUMES];
	int n = stg_volume_stats(w->ctx.stg, vs, API_OPS_MAX_VOLUMES);
	*usable = 0;
	if (n < 0)
		return api_reason(reasons, "storage_failed", "volumes cannot be listed: %s",
		                  stg_strerror(n));
	int err = 0;
	for (int i = 0; !err && i < n && i < API_OPS_MAX_VOLUMES; i++) {
		if (vs[i].state == STG_VOL_ACTIVE) {
			(*usable)++;
			continue;
		}
		bool failed = vs[i].state == STG_VOL_FAILED;
		err = api_reason(reasons, failed ? "volume_failed" : "volume_refused", "%s: %s",
		                 vs[i].path, vs[i].last_error[0] ? vs[i].last_error : "no error text");
	}
	if (!err && *usable == 0)
		err = api_reason(reasons, "no_volume", "no volume can record (%d volumes, none active)",
		                 n);
	return err;
}

static int api_ingest_reasons(struct web *w, const struct ingest_totals *t, json_t *reasons)
{
	int err = 0;
	if (t->backoff && (uint64_t)t->backoff * 100 >= (uint64_t)t->cameras * API_HEALTH_BACKOFF_PCT)
		err = api_reason(reasons, "cameras_backoff", "%" PRIu32 " of %" PRIu32 " cameras are "
		                 "waiting to retry after a failure (threshold %d%%)", t->backoff,
		                 t->cameras, API_HEALTH_BACKOFF_PCT);
	if (!err && t->repeat_failures)
		err = api_reason(reasons, "repeat_failures", "%" PRIu32 " cameras failed %d or more "
		                 "times in %lld h (GET /api/v1/repeat-failures)", t->repeat_failures,
		                 INGEST_REPEAT_FAILURES,
		                 (long long)(INGEST_REPEAT_WINDOW_US / 3600000000LL));
	int64_t span_us = 0;
	uint64_t dropped = api_drops_recent(w, t->frames_dropped, &span_us);
	if (!err && dropped)
		err = api_reason(reasons, "frames_dropped", "%" PRIu64 " frames dropped by storage in"
		                 " the last %lld s (back-pressure or a failing volume)", dropped,
		                 (long long)(span_us / 1000000));
	return err;
}

int api_health_assess(struct web *w, const struct ingest_totals *t, const char **status,
                      json_t **reasons_out)
{
	json_t *reasons = json_array();
	int usable = 0;
	int err = reasons ? api_volume_reasons(w, reasons, &usable) : -ENOMEM;
	if (!err)
		err = api_ingest_reasons(w, t, reasons);
	if (err) {
		json_decref(reasons);
		return err;
	}
	*status = usable == 0 ? "failed" : json_array_size(reasons) ? "degraded" : "ready";
	*reasons_out = reasons;
	return 0;
}

/* ---- GET /api/v1/repeat-failures ---------------------------------------- */

struct api_repeat {
	const struct api_camera *cam;
	struct ingest_camera_status st;
};

/* Most failures first, then the latest failure, then the id. */
static int api_cmp_repeat(const void *a, const void *b)
{
	const struct api_repeat *x = a, *y = b;
	if (x->st.failures_24h != y->st.failures_24h)
		return x->st.failures_24h > y->st.failures_24h ? -1 : 1;
	if (x->st.last_failure_us != y->st.last_failure_us)
		return x->st.last_failure_us > y->st.last_failure_us ? -1 : 1;
	return x->cam->id < y->cam->id ? -1 : x->cam->id > y->cam->id;
}

static json_t *api_repeat_json(const struct api_repeat *r)
{
	json_t *c = api_camera_json(r->cam, &r->st, true);
	if (!c)
		return NULL;
	json_object_set_new(c, "failures_24h", json_integer(r->st.failures_24h));
	json_object_set_new(c, "last_failure", api_time(r->st.last_failure_us));
	json_object_set_new(c, "last_failure_ms", json_integer(r->st.last_failure_us / 1000));
	json_object_set_new(c, "last_error", json_string(r->st.last_error));
	json_object_set_new(c, "reconnects", json_integer((json_int_t)r->st.reconnects));
	return c;
}

/* The repeat failures of the snapshot (held), sorted; *out is malloc'd. */
static int api_repeat_list(struct web *w, struct api_repeat **out, size_t *n)
{
	struct api_repeat *list = malloc((w->snap.count ? w->snap.count : 1) * sizeof *list);
	struct api_status_block *b = malloc(sizeof *b);
	*n = 0;
	if (!list || !b) {
		free(list);
		free(b);
		return -ENOMEM;
	}
	for (size_t at = 0; at < w->snap.count; at += API_STATUS_BLOCK) {
		size_t k = w->snap.count - at < API_STATUS_BLOCK ? w->snap.count - at : API_STATUS_BLOCK;
		for (size_t i = 0; i < k; i++)
			b->ids[i] = w->snap.cams[at + i].id;
		api_statuses(w, b->ids, k, b->st, b->known);
		for (size_t i = 0; i < k; i++)
			if (b->known[i] && ingest_is_repeat_failure(&b->st[i]))
				list[(*n)++] = (struct api_repeat){ &w->snap.cams[at + i], b->st[i] };
	}
	free(b);
	qsort(list, *n, sizeof *list, api_cmp_repeat);
	*out = list;
	return 0;
}

int api_repeat_failures(struct web *w, const struct web_request *req, const char *arg,
                        struct web_reply *rep)
{
	(void)req;
	(void)arg;
	int err = api_snapshot_acquire(w);
	if (err)
		return err;
	struct api_repeat *list = NULL;
	size_t n = 0;
	json_t *arr = json_array();
	err = arr ? api_repeat_list(w, &list, &n) : -ENOMEM;
	for (size_t i = 0; !err && i < n; i++) {
		json_t *c = api_repeat_json(&list[i]);
		if (!c || json_array_append_new(arr, c))
			err = -ENOMEM;
	}
	api_snapshot_release(w);
	free(list);
	if (!err) {
		rep->body = json_pack("{s:i, s:I, s:I, s:o}", "threshold", INGEST_REPEAT_FAILURES,
		                      "window_s", (json_int_t)(INGEST_REPEAT_WINDOW_US / 1000000),
		                      "total", (json_int_t)n, "cameras", arr);
		arr = NULL;
		err = rep->body ? 0 : -ENOMEM;
	}
	json_decref(arr);
	return err;
}
