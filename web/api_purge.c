/*
 * api_purge.c - POST /cameras/{id}/purge: deletion on request. A privacy
 * request asks that a camera's footage in a window be erased; the engine
 * (stg_purge) overwrites the chunks with zeros, syncs, and takes them out
 * of the index, or refuses with STG_EHELD, changing nothing, while a legal
 * hold covers any of it. Admins only (http.c).
 *
 * Both outcomes are audited (action "purge", detail with "result" done or
 * refused). The entry is written after the engine answered, because it
 * must say what was erased or which holds stood in the way; when it cannot
 * be written the answer is 500 and the same detail goes to the log
 * (event=audit_failed), so the erasure is never without a record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

#define AP_REASON_MAX 1023

struct ap_request {
	uint32_t camera;
	int64_t from_us, to_us;
	const char *reason;
};

/* 1 after a 400 naming `field`, or a negative errno. */
static int ap_bad(struct web_reply *rep, const char *field, const char *msg)
{
	int err = api_error(rep, 400, field, msg);
	return err ? err : 1;
}

static int ap_parse(json_t *b, struct ap_request *p, struct web_reply *rep)
{
	if (!json_is_object(b))
		return ap_bad(rep, "body", "a JSON object is required");
	int r = api_body_time(json_object_get(b, "from"), "from", &p->from_us, rep);
	if (!r)
		r = api_body_time(json_object_get(b, "to"), "to", &p->to_us, rep);
	if (!r && p->to_us <= p->from_us)
		r = ap_bad(rep, "to", "must be later than from");
	json_t *v = json_object_get(b, "reason");
	p->reason = json_string_value(v);
	if (!r && (!p->reason || !p->reason[0] || json_string_length(v) > AP_REASON_MAX ||
	           strlen(p->reason) != json_string_length(v)))
		r = ap_bad(rep, "reason", "a reason of 1 to 1023 bytes is required (the request's "
		           "reference)");
	return r;
}

/* Whether hold h is in force on the camera over [t0, t1) at `now`. */
static bool ap_hold_applies(const struct stg_hold *h, uint32_t cam, int64_t t0, int64_t t1,
                            int64_t now)
{
	if (h->expires_us && h->expires_us <= now)
		return false;
	if (t0 >= h->end_us || t1 <= h->start_us)
		return false;
	for (uint32_t i = 0; i < h->camera_count; i++)
		if (h->cameras[i] == cam)
			return true;
	return false;
}

/* The holds that stand in the way: those over the window, else (the
 * purge takes whole chunks, which may reach past the window) every hold
 * in force on the camera. A new JSON array of {id, case}. */
static json_t *ap_blocking_holds(struct web *w, const struct ap_request *p)
{
	struct stg_hold *all;
	int n;
	if (api_holds_all(w, &all, &n))
		return NULL;
	json_t *a = json_array();
	int64_t now = api_now_us();
	for (int pass = 0; a && pass < 2 && json_array_size(a) == 0; pass++) {
		int64_t t0 = pass ? INT64_MIN : p->from_us, t1 = pass ? INT64_MAX : p->to_us;
		for (int i = 0; a && i < n; i++) {
			if (!ap_hold_applies(&all[i], p->camera, t0, t1, now))
				continue;
			json_t *o = json_pack("{s:I, s:s}", "id", (json_int_t)all[i].id, "case",
			                      all[i].case_ref);
			if (!o || json_array_append_new(a, o)) {
				json_decref(a);
				a = NULL;
			}
		}
	}
	free(all);
	return a;
}

/* The audit detail of the request; the outcome is added by the caller. */
static json_t *ap_detail(const struct ap_request *p, const char *result)
{
	return json_pack("{s:I, s:I, s:I, s:s, s:s}", "camera", (json_int_t)p->camera,
	                 "from_ms", (json_int_t)(p->from_us / 1000),
	                 "to_ms", (json_int_t)(p->to_us / 1000), "reason", p->reason,
	                 "result", result);
}

/* Audits; on failure logs the detail itself (event=audit_failed). */
static int ap_audit(struct web *w, const struct web_request *req, json_t *d, uint64_t *id)
{
	int err = api_audit(w, req, "purge", d, id);
	if (!err)
		return 0;
	char *text = json_dumps(d, JSON_COMPACT);
	nvr_log("error", "web", "event=audit_failed action=purge user=%s detail=%s error=\"%s\"",
	        req->user, text ? text : "(out of memory)", strerror(-err));
	free(text);
	return err;
}

/* 409: held; nothing was erased. Audited as refused. */
static int ap_refused(struct web *w, const struct web_request *req, const struct ap_request *p,
                      struct web_reply *rep)
{
	json_t *holds = ap_blocking_holds(w, p), *ids = json_array();
	json_t *d = ap_detail(p, "refused");
	int err = holds && ids && d ? 0 : -ENOMEM;
	for (size_t i = 0; !err && i < json_array_size(holds); i++)
		err = json_array_append(ids, json_object_get(json_array_get(holds, i), "id"));
	if (!err)
		err = json_object_set(d, "holds", ids);
	if (!err)
		err = ap_audit(w, req, d, NULL);
	if (!err)
		err = api_error(rep, 409, NULL, "footage under a legal hold: release the hold first; "
		                "nothing was erased");
	json_t *e = json_object_get(rep->body, "error");
	if (!err && (!e || json_object_set(e, "holds", holds)))
		err = -ENOMEM;
	nvr_log("warn", "web", "event=purge_refused user=%s camera=%" PRIu32 " holds=%zu",
	        req->user, p->camera, json_array_size(holds));
	json_decref(holds);
	json_decref(ids);
	json_decref(d);
	return err;
}

/* 200: what was erased. Audited as done. */
static int ap_done(struct web *w, const struct web_request *req, const struct ap_request *p,
                   const struct stg_purge_report *pr, struct web_reply *rep)
{
	json_t *d = ap_detail(p, "done");
	uint64_t audit_id = 0;
	int err = d ? 0 : -ENOMEM;
	if (!err)
		err = json_object_set_new(d, "chunks", json_integer((json_int_t)pr->chunks)) |
		      json_object_set_new(d, "frames", json_integer((json_int_t)pr->frames)) |
		      json_object_set_new(d, "bytes", json_integer((json_int_t)pr->bytes))
		      ? -ENOMEM : 0;
	nvr_log("warn", "web", "event=purged user=%s camera=%" PRIu32 " from_us=%" PRId64
	        " to_us=%" PRId64 " chunks=%" PRIu64 " bytes=%" PRIu64, req->user, p->camera,
	        p->from_us, p->to_us, pr->chunks, pr->bytes);
	if (!err)
		err = ap_audit(w, req, d, &audit_id);
	json_decref(d);
	if (err)
		return api_error(rep, 500, NULL, "the footage was erased but the audit entry could "
		                 "not be written (see the log)");
	rep->status = 200;
	rep->body = json_pack("{s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:I}",
	                      "camera", (json_int_t)p->camera, "from", api_time(p->from_us),
	                      "to", api_time(p->to_us), "from_ms", (json_int_t)(p->from_us / 1000),
	                      "to_ms", (json_int_t)(p->to_us / 1000),
	                      "chunks", (json_int_t)pr->chunks, "frames", (json_int_t)pr->frames,
	                      "bytes", (json_int_t)pr->bytes,
	                      "erased", pr->chunks ? api_span(pr->start_us, pr->end_us) : json_null(),
	                      "audit_id", (json_int_t)audit_id);
	return rep->body ? 0 : -ENOMEM;
}

/* 500: the engine failed (an I/O error); audited as failed with the error. */
static int ap_failed(struct web *w, const struct web_request *req, const struct ap_request *p,
                     int stg_err, struct web_reply *rep)
{
	nvr_log("error", "web", "event=purge_failed user=%s camera=%" PRIu32 " error=\"%s\"",
	        req->user, p->camera, stg_strerror(stg_err));
	json_t *d = ap_detail(p, "failed");
	int err = d ? json_object_set_new(d, "error", json_string(stg_strerror(stg_err))) : -ENOMEM;
	if (!err)
		err = ap_audit(w, req, d, NULL);
	json_decref(d);
	char msg[160];
	snprintf(msg, sizeof msg, "the purge failed: %s", stg_strerror(stg_err));
	int r = api_error(rep, 500, NULL, msg);
	return err ? err : r;
}

int api_purge(struct web *w, const struct web_request *req, const char *arg,
              struct web_reply *rep)
{
	struct ap_request p = { 0 };
	int64_t id = api_path_id(arg, rep);
	if (id < 0)
		return 0;
	p.camera = (uint32_t)id;
	json_error_t jerr;
	json_t *b = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	int err = ap_parse(b, &p, rep);
	int known = err ? 0 : api_camera_known(w, p.camera, p.from_us, p.to_us);
	if (!err && known < 0)
		err = known;
	else if (!err && known == 0)
		err = api_error(rep, 404, "id", "no camera with this id in the registry, and no "
		                "footage of it in the window") < 0 ? -ENOMEM : 1;
	struct stg_purge_report pr;
	memset(&pr, 0, sizeof pr);
	if (!err) {
		err = stg_purge(w->ctx.stg, p.camera, p.from_us, p.to_us, &pr);
		if (err == STG_EHELD)
			err = ap_refused(w, req, &p, rep);
		else if (!err)
			err = ap_done(w, req, &p, &pr, rep);
		else
			err = ap_failed(w, req, &p, err, rep);
	}
	json_decref(b);   /* p.reason points into it */
	return err < 0 ? err : 0;
}
