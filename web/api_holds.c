/*
 * api_holds.c - legal holds over HTTP: POST /holds (create), GET /holds
 * (list, with the capacity they keep), GET /holds/{id}, DELETE /holds/{id}
 * (release), over the storage engine's stg_hold_* (storage.h).
 *
 * Holds decide what evidence survives, so every change is audited:
 * a hold is made by the engine first (its id and the bytes it keeps are
 * only known then) and audited next ("hold"); a hold whose audit entry
 * cannot be written is released again and the answer is 500. A release is
 * audited first ("hold_release") and only then done, so no hold goes
 * away unaudited. The answer to a create lists `gone`: the stretches of the
 * window, up to now, for which a camera has no footage, as the engine
 * found them while making the hold.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

#define AH_MAX_GONE 1000            /* stretches listed in a create's answer */
#define AH_CASE_MAX (sizeof(((struct stg_hold *)0)->case_ref) - 1)
#define AH_REASON_MAX (sizeof(((struct stg_hold *)0)->reason) - 1)

/* ---- shared with api_purge.c and api_retention.c ----------------------------- */

/* A time, or null for 0 ("none"). */
static json_t *ah_opt_time(int64_t us)
{
	return us ? api_time(us) : json_null();
}

static json_t *ah_opt_ms(int64_t us)
{
	return us ? json_integer((json_int_t)(us / 1000)) : json_null();
}

json_t *api_hold_json(const struct stg_hold *h)
{
	json_t *cams = json_array();
	for (uint32_t i = 0; cams && i < h->camera_count; i++)
		if (json_array_append_new(cams, json_integer(h->cameras[i]))) {
			json_decref(cams);
			cams = NULL;
		}
	if (!cams)
		return NULL;
	return json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:o, s:I, s:o, s:o, s:I}",
	                 "id", (json_int_t)h->id, "case", h->case_ref, "reason", h->reason,
	                 "cameras", cams, "from", api_time(h->start_us), "to", api_time(h->end_us),
	                 "from_ms", (json_int_t)(h->start_us / 1000),
	                 "to_ms", (json_int_t)(h->end_us / 1000),
	                 "created", api_time(h->created_us),
	                 "created_ms", (json_int_t)(h->created_us / 1000),
	                 "expires", ah_opt_time(h->expires_us), "expires_ms", ah_opt_ms(h->expires_us),
	                 "bytes", (json_int_t)h->bytes);
}

int api_holds_all(struct web *w, struct stg_hold **out, int *n)
{
	*out = NULL;
	*n = 0;
	for (int tries = 0; tries < 4; tries++) {
		int want = stg_hold_list(w->ctx.stg, NULL, 0);
		if (want < 0)
			return want;
		struct stg_hold *h = calloc((size_t)want + 1, sizeof *h);
		if (!h)
			return -ENOMEM;
		int got = stg_hold_list(w->ctx.stg, h, want + 1);
		if (got < 0) {
			free(h);
			return got;
		}
		if (got <= want + 1) {        /* a hold made meanwhile still fits */
			*out = h;
			*n = got;
			return 0;
		}
		free(h);
	}
	return -EAGAIN;
}

int api_camera_known(struct web *w, uint32_t id, int64_t t0, int64_t t1)
{
	int err = 0;
	if (api_camera_exists(w, id, &err))
		return 1;
	if (err)
		return err;
	struct stg_range r;
	int n = stg_ranges(w->ctx.stg, id, t0, t1, &r, 1);
	return n < 0 ? n : n > 0;
}

/* The hold id of the path, or 0 after a 400 answer. */
static uint64_t ah_path_id(const char *arg, struct web_reply *rep)
{
	int64_t id;
	if (query_parse_int(arg, 1, INT64_MAX, &id)) {
		api_error(rep, 400, "id", "hold id must be a whole number from 1");
		return 0;
	}
	return (uint64_t)id;
}

/* Finds hold `id` into *out: 0, -ENOENT, or a negative errno. */
static int ah_find(struct web *w, uint64_t id, struct stg_hold *out)
{
	struct stg_hold *all;
	int n;
	int err = api_holds_all(w, &all, &n);
	if (err)
		return err;
	err = -ENOENT;
	for (int i = 0; i < n; i++)
		if (all[i].id == id) {
			*out = all[i];
			err = 0;
			break;
		}
	free(all);
	return err;
}

/* ---- POST /holds: the body ------------------------------------------------------ */

/* 1 after a 400 naming `field`, or a negative errno. */
static int ah_bad(struct web_reply *rep, const char *field, const char *msg)
{
	int err = api_error(rep, 400, field, msg);
	return err ? err : 1;
}

static int ah_cameras(json_t *arr, struct stg_hold *h, struct web_reply *rep)
{
	size_t n = json_array_size(arr);
	if (!json_is_array(arr) || n == 0 || n > STG_HOLD_MAX_CAMERAS)
		return ah_bad(rep, "cameras", "a list of 1 to 64 camera ids is required");
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		json_int_t id = json_integer_value(v);
		if (!json_is_integer(v) || id < 1 || id > INT32_MAX)
			return ah_bad(rep, "cameras", "camera ids are whole numbers from 1 to 2147483647");
		for (size_t k = 0; k < i; k++)
			if (h->cameras[k] == (uint32_t)id)
				return ah_bad(rep, "cameras", "a camera is listed twice");
		h->cameras[i] = (uint32_t)id;
	}
	h->camera_count = (uint32_t)n;
	return 0;
}

/* Copies a text field of at most `max` bytes (no NUL inside); `need` makes
 * it required and at least one byte long. */
static int ah_text(json_t *b, const char *field, bool need, size_t max, char *out, size_t outsz,
                   struct web_reply *rep)
{
	json_t *v = json_object_get(b, field);
	char msg[80];
	snprintf(msg, sizeof msg, "%s%zu bytes", need ? "text of 1 to " : "text of at most ", max);
	if (!v && !need) {
		out[0] = '\0';
		return 0;
	}
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (!s || len > max || len >= outsz || strlen(s) != len || (need && len == 0))
		return ah_bad(rep, field, msg);
	memcpy(out, s, len + 1);
	return 0;
}

static int ah_parse(json_t *b, struct stg_hold *h, struct web_reply *rep)
{
	if (!json_is_object(b))
		return ah_bad(rep, "body", "a JSON object is required");
	int r = ah_cameras(json_object_get(b, "cameras"), h, rep);
	if (!r)
		r = api_body_time(json_object_get(b, "from"), "from", &h->start_us, rep);
	if (!r)
		r = api_body_time(json_object_get(b, "to"), "to", &h->end_us, rep);
	if (!r && h->end_us <= h->start_us)
		r = ah_bad(rep, "to", "must be later than from");
	if (!r)
		r = ah_text(b, "case", true, AH_CASE_MAX, h->case_ref, sizeof h->case_ref, rep);
	if (!r)
		r = ah_text(b, "reason", false, AH_REASON_MAX, h->reason, sizeof h->reason, rep);
	json_t *x = json_object_get(b, "expires");
	if (!r && x && !json_is_null(x)) {
		r = api_body_time(x, "expires", &h->expires_us, rep);
		if (!r && h->expires_us <= api_now_us())
			r = ah_bad(rep, "expires", "must be later than now");
	}
	return r;
}

/* Every camera must be known (api_camera_known); 1 after a 404. */
static int ah_check_cameras(struct web *w, const struct stg_hold *h, struct web_reply *rep)
{
	for (uint32_t i = 0; i < h->camera_count; i++) {
		int k = api_camera_known(w, h->cameras[i], h->start_us, h->end_us);
		if (k < 0)
			return k;
		if (k == 0) {
			char msg[96];
			snprintf(msg, sizeof msg, "camera %" PRIu32 " is not in the registry and has no "
			         "footage in the window", h->cameras[i]);
			int err = api_error(rep, 404, "cameras", msg);
			return err ? err : 1;
		}
	}
	return 0;
}

/* ---- POST /holds: the hold ------------------------------------------------------ */

/* 507: holds would keep too much of the capacity. */
static int ah_refused_space(struct web *w, struct web_reply *rep)
{
	struct stg_retention_stats rs;
	memset(&rs, 0, sizeof rs);
	int err = stg_retention_stats(w->ctx.stg, &rs, NULL, 0, NULL);
	if (err)
		nvr_log("warn", "web", "event=retention_stats_failed error=\"%s\"", stg_strerror(err));
	err = api_error(rep, 507, NULL, "holds would keep more than their share of the capacity; "
	                "nothing was held");
	json_t *e = json_object_get(rep->body, "error");
	if (!err && e)
		err = json_object_set_new(e, "held_bytes", json_integer((json_int_t)rs.held_bytes)) |
		      json_object_set_new(e, "capacity_bytes",
		                          json_integer((json_int_t)rs.capacity_bytes));
	return err ? -ENOMEM : 0;
}

static json_t *ah_cameras_json(const struct stg_hold *h)
{
	json_t *a = json_array();
	for (uint32_t i = 0; a && i < h->camera_count; i++)
		if (json_array_append_new(a, json_integer(h->cameras[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* Audits a hold just made; releases it again when the entry fails. */
static int ah_audit_create(struct web *w, const struct web_request *req, const struct stg_hold *h,
                           int ngone, uint64_t *audit_id)
{
	json_t *cams = ah_cameras_json(h);
	json_t *d = cams ? json_pack("{s:I, s:s, s:s, s:o, s:I, s:I, s:o, s:I, s:i}",
	                             "hold_id", (json_int_t)h->id, "case", h->case_ref,
	                             "reason", h->reason, "cameras", cams,
	                             "from_ms", (json_int_t)(h->start_us / 1000),
	                             "to_ms", (json_int_t)(h->end_us / 1000),
	                             "expires_ms", ah_opt_ms(h->expires_us),
	                             "bytes", (json_int_t)h->bytes, "gone_count", ngone)
	                 : NULL;
	int err = d ? api_audit(w, req, "hold", d, audit_id) : -ENOMEM;
	json_decref(d);
	if (!err)
		return 0;
	int rerr = stg_hold_release(w->ctx.stg, h->id);
	nvr_log("error", "web", "event=hold_not_audited id=%" PRIu64 " released=%s error=\"%s\"",
	        h->id, rerr ? "no" : "yes", strerror(-err));
	return err;
}

static json_t *ah_gone_json(const struct stg_missing *m, int n)
{
	json_t *a = json_array();
	for (int i = 0; a && i < n && i < AH_MAX_GONE; i++) {
		json_t *s = api_span(m[i].start_us, m[i].end_us);
		if (!s || json_object_set_new(s, "camera", json_integer(m[i].camera_id)) ||
		    json_array_append_new(a, s)) {
			json_decref(s);
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The 201 answer: the hold, gone, gone_count, audit_id. */
static int ah_created(const struct stg_hold *h, const struct stg_missing *m, int n,
                      uint64_t audit_id, struct web_reply *rep)
{
	json_t *body = api_hold_json(h), *gone = ah_gone_json(m, n);
	if (!body || !gone || json_object_set_new(body, "gone", gone) ||
	    json_object_set_new(body, "gone_count", json_integer(n)) ||
	    json_object_set_new(body, "audit_id", json_integer((json_int_t)audit_id))) {
		json_decref(body);
		return -ENOMEM;
	}
	rep->status = 201;
	rep->body = body;
	return 0;
}

int api_holds_create(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep)
{
	(void)arg;
	struct stg_hold h;
	memset(&h, 0, sizeof h);
	json_error_t jerr;
	json_t *b = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	int err = ah_parse(b, &h, rep);
	json_decref(b);
	if (!err)
		err = ah_check_cameras(w, &h, rep);
	if (err)
		return err < 0 ? err : 0;
	struct stg_missing *gone = calloc(AH_MAX_GONE, sizeof *gone);
	if (!gone)
		return -ENOMEM;
	int ngone = 0;
	uint64_t audit_id = 0;
	err = stg_hold_create(w->ctx.stg, &h, gone, AH_MAX_GONE, &ngone);
	if (err == -ENOSPC)
		err = ah_refused_space(w, rep);
	else if (err == -EINVAL)
		err = api_error(rep, 400, NULL, "the storage engine refused this hold");
	else if (!err && !(err = ah_audit_create(w, req, &h, ngone, &audit_id)))
		err = ah_created(&h, gone, ngone, audit_id, rep);
	free(gone);
	return err;
}

/* ---- reading ------------------------------------------------------------------------ */

int api_holds_list(struct web *w, const struct web_request *req, const char *arg,
                   struct web_reply *rep)
{
	(void)arg;
	struct query_error qe;
	int64_t limit, offset;
	if (query_int(&req->query, "limit", 1, API_MAX_LIMIT, API_DEFAULT_LIMIT, &limit, &qe) < 0 ||
	    query_int(&req->query, "offset", 0, INT32_MAX, 0, &offset, &qe) < 0)
		return api_query_error(rep, &qe);
	struct stg_retention_stats rs;
	int err = stg_retention_stats(w->ctx.stg, &rs, NULL, 0, NULL);
	struct stg_hold *all = NULL;
	int n = 0;
	if (!err)
		err = api_holds_all(w, &all, &n);
	json_t *arr = err ? NULL : json_array();
	for (int64_t i = offset; arr && i < n && i < offset + limit; i++)
		if (json_array_append_new(arr, api_hold_json(&all[i]))) {
			json_decref(arr);
			arr = NULL;
		}
	free(all);
	if (err || !arr)
		return err ? err : -ENOMEM;
	double share = rs.capacity_bytes ? (double)rs.held_bytes / (double)rs.capacity_bytes : 0;
	rep->body = json_pack("{s:i, s:I, s:I, s:o, s:I, s:I, s:f}", "total", n,
	                      "offset", (json_int_t)offset, "limit", (json_int_t)limit,
	                      "holds", arr, "held_bytes", (json_int_t)rs.held_bytes,
	                      "capacity_bytes", (json_int_t)rs.capacity_bytes, "held_share", share);
	return rep->body ? 0 : -ENOMEM;
}

int api_holds_get(struct web *w, const struct web_request *req, const char *arg,
                  struct web_reply *rep)
{
	(void)req;
	uint64_t id = ah_path_id(arg, rep);
	if (!id)
		return 0;
	struct stg_hold h;
	int err = ah_find(w, id, &h);
	if (err == -ENOENT)
		return api_error(rep, 404, "id", "no such hold");
	if (err)
		return err;
	rep->body = api_hold_json(&h);
	return rep->body ? 0 : -ENOMEM;
}

/* ---- DELETE /holds/{id} ------------------------------------------------------------- */

static int ah_audit_release(struct web *w, const struct web_request *req,
                            const struct stg_hold *h, uint64_t *audit_id)
{
	json_t *cams = ah_cameras_json(h);
	json_t *d = cams ? json_pack("{s:I, s:s, s:o, s:I, s:I, s:I}", "hold_id", (json_int_t)h->id,
	                             "case", h->case_ref, "cameras", cams,
	                             "from_ms", (json_int_t)(h->start_us / 1000),
	                             "to_ms", (json_int_t)(h->end_us / 1000),
	                             "bytes", (json_int_t)h->bytes)
	                 : NULL;
	int err = d ? api_audit(w, req, "hold_release", d, audit_id) : -ENOMEM;
	json_decref(d);
	return err;
}

int api_holds_release(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep)
{
	uint64_t id = ah_path_id(arg, rep);
	if (!id)
		return 0;
	struct stg_hold h;
	uint64_t audit_id = 0;
	int err = ah_find(w, id, &h);
	if (!err)
		err = ah_audit_release(w, req, &h, &audit_id);
	if (!err)
		err = stg_hold_release(w->ctx.stg, id);
	if (err == -ENOENT)       /* unknown, or released by someone else meanwhile */
		return api_error(rep, 404, "id", "no such hold");
	if (err)
		return err;
	rep->body = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)id, "status", "released",
	                      "audit_id", (json_int_t)audit_id);
	return rep->body ? 0 : -ENOMEM;
}
