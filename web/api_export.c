/*
 * api_export.c - the evidence export endpoints over the job engine
 * (export.h): create (POST, JSON body), list, status, manifest, download
 * and DELETE (cancel or remove). Investigators and admins only (http.c).
 *
 * A create is checked whole before anything happens: a bad field answers
 * 400 naming it, an unknown camera 404 naming it, a job that would not fit
 * in the quota 507 with the figures, a full queue 503. An accepted job is
 * created held, audited (action "export", detail naming the job), then
 * queued with the audit entry's id, which its manifest records; if the
 * audit entry cannot be written the job is dropped and the answer is 500.
 * Downloads and deletions are audited too ("export_download",
 * "export_delete"). Files are served from disk with their length
 * (libmicrohttpd sends them with sendfile).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "export.h"
#include "log.h"

/* The engine, or NULL after a 503 answer. */
static struct export_engine *ax_engine(struct web *w, struct web_reply *rep)
{
	if (!w->ctx.exports)
		api_error(rep, 503, NULL, "exports are not enabled on this recorder");
	return w->ctx.exports;
}

/* The job id of the path, or 0 after a 400 answer. */
static uint64_t ax_path_id(const char *arg, struct web_reply *rep)
{
	int64_t id;
	if (query_parse_int(arg, 1, INT64_MAX, &id)) {
		api_error(rep, 400, "id", "export id must be a whole number from 1");
		return 0;
	}
	return (uint64_t)id;
}

/* ---- POST /exports: the body ------------------------------------------------ */

struct ax_create {
	struct export_camera cams[256];
	size_t ncams;
	int64_t from_us, to_us;
	const char *case_ref, *reason;
};

static int ax_cameras(const struct export_config *lim, json_t *arr, struct ax_create *c,
                      struct web_reply *rep)
{
	char msg[96];
	size_t n = json_array_size(arr);
	if (!json_is_array(arr) || n == 0 || n > lim->max_cameras || n > 256) {
		snprintf(msg, sizeof msg, "a list of 1 to %u camera ids", lim->max_cameras);
		api_error(rep, 400, "cameras", msg);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		json_int_t id = json_integer_value(v);
		if (!json_is_integer(v) || id < 1 || id > INT32_MAX) {
			api_error(rep, 400, "cameras", "camera ids are whole numbers from 1 to 2147483647");
			return 1;
		}
		for (size_t k = 0; k < i; k++)
			if (c->cams[k].id == (uint32_t)id) {
				api_error(rep, 400, "cameras", "a camera is listed twice");
				return 1;
			}
		c->cams[i].id = (uint32_t)id;
	}
	c->ncams = n;
	return 0;
}

/* Case reference and reason; 0 or 1 after a 400. */
static int ax_texts(json_t *b, struct ax_create *c, struct web_reply *rep)
{
	json_t *cr = json_object_get(b, "case"), *rs = json_object_get(b, "reason");
	c->case_ref = json_string_value(cr);
	if (!c->case_ref || !c->case_ref[0] || json_string_length(cr) >= EXPORT_MAX_CASE ||
	    strlen(c->case_ref) != json_string_length(cr)) {
		api_error(rep, 400, "case", "a case reference of 1 to 127 bytes is required");
		return 1;
	}
	if (rs && (!json_is_string(rs) || json_string_length(rs) >= EXPORT_MAX_REASON ||
	           strlen(json_string_value(rs)) != json_string_length(rs))) {
		api_error(rep, 400, "reason", "text of at most 1023 bytes");
		return 1;
	}
	c->reason = rs ? json_string_value(rs) : "";
	return 0;
}

/* Parses and checks the body; 0, or 1 after a 400 answer. */
static int ax_parse(const struct export_config *lim, json_t *b, struct ax_create *c,
                    struct web_reply *rep)
{
	if (!json_is_object(b)) {
		api_error(rep, 400, "body", "a JSON object is required");
		return 1;
	}
	if (ax_cameras(lim, json_object_get(b, "cameras"), c, rep) ||
	    api_body_time(json_object_get(b, "from"), "from", &c->from_us, rep) ||
	    api_body_time(json_object_get(b, "to"), "to", &c->to_us, rep))
		return 1;
	char msg[96];
	if (c->from_us >= c->to_us) {
		api_error(rep, 400, "to", "must be later than from");
		return 1;
	}
	if (c->to_us - c->from_us > lim->max_window_us) {
		snprintf(msg, sizeof msg, "the window may be at most %lld minutes",
		         (long long)(lim->max_window_us / 60000000));
		api_error(rep, 400, "to", msg);
		return 1;
	}
	return ax_texts(b, c, rep);
}

/* Fills each camera's description from the registry; 1 after a 404. */
static int ax_describe(struct web *w, struct ax_create *c, struct web_reply *rep)
{
	int err = api_snapshot_acquire(w);
	if (err)
		return err;
	for (size_t i = 0; i < c->ncams; i++) {
		const struct api_camera *a = api_snapshot_find(w, c->cams[i].id);
		if (!a) {
			api_snapshot_release(w);
			char msg[64];
			snprintf(msg, sizeof msg, "camera %" PRIu32 " does not exist", c->cams[i].id);
			return api_error(rep, 404, "cameras", msg) ? -ENOMEM : 1;
		}
		snprintf(c->cams[i].name, sizeof c->cams[i].name, "%s", a->name);
		snprintf(c->cams[i].district, sizeof c->cams[i].district, "%s", a->district);
		c->cams[i].latitude = a->latitude;
		c->cams[i].longitude = a->longitude;
	}
	api_snapshot_release(w);
	return 0;
}

/* ---- POST /exports: the job ----------------------------------------------- */

static int ax_refused(int err, const struct export_space *sp, struct web_reply *rep)
{
	if (err == -EBUSY)
		return api_error(rep, 503, NULL, "too many exports are waiting; try again later");
	if (err == -EINVAL)
		return api_error(rep, 400, NULL, "the request is outside the export limits");
	if (err != -EDQUOT)
		return err;
	char msg[160];
	snprintf(msg, sizeof msg, "the export needs about %" PRIu64 " bytes; exports use %" PRIu64
	         " of %" PRIu64 " bytes", sp->estimate, sp->used, sp->quota);
	int r = api_error(rep, 507, NULL, msg);
	json_t *e = json_object_get(rep->body, "error");
	if (!r && e)
		r = json_object_set_new(e, "estimated_bytes", json_integer((json_int_t)sp->estimate)) |
		    json_object_set_new(e, "used_bytes", json_integer((json_int_t)sp->used)) |
		    json_object_set_new(e, "quota_bytes", json_integer((json_int_t)sp->quota));
	return r ? -ENOMEM : 0;
}

/* Audits the held job and queues it; a job whose audit failed is dropped. */
static int ax_audit_release(struct web *w, const struct web_request *req,
                            struct export_engine *x, uint64_t id, const struct ax_create *c,
                            uint64_t *audit_id)
{
	json_t *cams = json_array();
	for (size_t i = 0; cams && i < c->ncams; i++)
		json_array_append_new(cams, json_integer(c->cams[i].id));
	json_t *d = cams ? json_pack("{s:I, s:o, s:I, s:I, s:s, s:s}", "export_id", (json_int_t)id,
	                             "cameras", cams, "from_ms", (json_int_t)(c->from_us / 1000),
	                             "to_ms", (json_int_t)(c->to_us / 1000), "case", c->case_ref,
	                             "reason", c->reason)
	                 : NULL;
	*audit_id = 0;
	int err = d ? api_audit(w, req, "export", d, audit_id) : -ENOMEM;
	json_decref(d);
	if (!err)
		err = export_release(x, id, *audit_id);
	if (err) {
		const char *was;
		export_delete(x, id, &was);    /* held -> cancelled */
		export_delete(x, id, &was);    /* and gone */
		nvr_log("error", "web", "event=export_not_started id=%" PRIu64 " error=\"%s\"", id,
		        strerror(-err));
	}
	return err;
}

int api_export_create(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep)
{
	(void)arg;
	struct export_engine *x = ax_engine(w, rep);
	if (!x)
		return 0;
	static __thread struct ax_create c;
	memset(&c, 0, sizeof c);
	json_error_t jerr;
	json_t *b = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	int err = ax_parse(export_limits(x), b, &c, rep);
	if (!err)
		err = ax_describe(w, &c, rep);
	struct export_request r = { c.cams, c.ncams, c.from_us, c.to_us, c.case_ref, c.reason,
	                            req->user };
	struct export_space sp;
	uint64_t id = 0, audit_id = 0;
	if (!err && (err = export_submit(x, &r, &id, &sp)))
		err = ax_refused(err, &sp, rep);
	else if (!err)
		err = ax_audit_release(w, req, x, id, &c, &audit_id);
	if (!err && id) {
		rep->status = 202;
		rep->body = json_pack("{s:I, s:s, s:I, s:s}", "id", (json_int_t)id, "status", "queued",
		                      "audit_id", (json_int_t)audit_id, "user", req->user);
		err = rep->body ? 0 : -ENOMEM;
	}
	json_decref(b);
	return err < 0 ? err : 0;
}

/* ---- reading ---------------------------------------------------------------- */

int api_export_list(struct web *w, const struct web_request *req, const char *arg,
                    struct web_reply *rep)
{
	(void)req;
	(void)arg;
	struct export_engine *x = ax_engine(w, rep);
	if (!x)
		return 0;
	rep->body = export_list(x);
	return rep->body ? 0 : -ENOMEM;
}

int api_export_status(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep)
{
	(void)req;
	struct export_engine *x = ax_engine(w, rep);
	uint64_t id = x ? ax_path_id(arg, rep) : 0;
	if (!id)
		return 0;
	int err;
	rep->body = export_status(x, id, &err);
	if (err == -ENOENT)
		return api_error(rep, 404, "id", "no such export");
	return err;
}

/* Serves an open file (fd is taken over) with its length. */
static int ax_file(int fd, uint64_t size, const char *type, const char *disposition,
                   struct web_reply *rep)
{
	struct MHD_Response *r = MHD_create_response_from_fd64(size, fd);
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    (disposition && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION,
	                                            disposition) != MHD_YES)) {
		MHD_destroy_response(r);
		return -ENOMEM;
	}
	rep->status = 200;
	rep->response = r;
	return 0;
}

/* Why a job's file cannot be served: 404 or 409; returns 0 or -ENOMEM. */
static int ax_not_served(struct export_engine *x, uint64_t id, int err, const char *param,
                         struct web_reply *rep)
{
	int serr;
	json_t *s = export_status(x, id, &serr);
	char msg[96];
	if (!s)
		return api_error(rep, 404, "id", "no such export");
	if (err == -EAGAIN)
		snprintf(msg, sizeof msg, "the export is %s, not done",
		         json_string_value(json_object_get(s, "status")));
	json_decref(s);
	if (err == -EAGAIN)
		return api_error(rep, 409, NULL, msg);
	return api_error(rep, 404, param, "no file for this camera in the export");
}

int api_export_manifest(struct web *w, const struct web_request *req, const char *arg,
                        struct web_reply *rep)
{
	(void)req;
	struct export_engine *x = ax_engine(w, rep);
	uint64_t id = x ? ax_path_id(arg, rep) : 0;
	if (!id)
		return 0;
	int fd;
	uint64_t size;
	int err = export_open_file(x, id, 0, &fd, &size);
	if (err == -ENOENT || err == -EAGAIN)
		return ax_not_served(x, id, err, NULL, rep);
	return err ? err : ax_file(fd, size, "application/json", NULL, rep);
}

int api_export_download(struct web *w, const struct web_request *req, const char *arg,
                        struct web_reply *rep)
{
	struct export_engine *x = ax_engine(w, rep);
	uint64_t id = x ? ax_path_id(arg, rep) : 0;
	if (!id)
		return 0;
	int64_t cam;
	const char *v = query_get(&req->query, "camera");
	if (!v || query_parse_int(v, 1, INT32_MAX, &cam))
		return api_error(rep, 400, "camera", v ? "a camera id from 1 to 2147483647"
		                                       : "is required");
	int fd;
	uint64_t size;
	int err = export_open_file(x, id, (uint32_t)cam, &fd, &size);
	if (err == -ENOENT || err == -EAGAIN)
		return ax_not_served(x, id, err, "camera", rep);
	if (err)
		return err;
	json_t *d = json_pack("{s:I, s:I, s:I}", "export_id", (json_int_t)id, "camera",
	                      (json_int_t)cam, "bytes", (json_int_t)size);
	err = d ? api_audit(w, req, "export_download", d, NULL) : -ENOMEM;
	json_decref(d);
	if (err) {
		close(fd);
		return err;
	}
	char disp[96];
	snprintf(disp, sizeof disp, "attachment; filename=\"export-%" PRIu64 "-camera-%lld.mp4\"",
	         id, (long long)cam);
	return ax_file(fd, size, "video/mp4", disp, rep);
}

/* ---- DELETE ------------------------------------------------------------------ */

int api_export_delete(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep)
{
	struct export_engine *x = ax_engine(w, rep);
	uint64_t id = x ? ax_path_id(arg, rep) : 0;
	if (!id)
		return 0;
	json_t *d = json_pack("{s:I}", "export_id", (json_int_t)id);
	int err = d ? api_audit(w, req, "export_delete", d, NULL) : -ENOMEM;
	json_decref(d);
	const char *was = NULL;
	if (!err)
		err = export_delete(x, id, &was);
	if (err == -ENOENT)
		return api_error(rep, 404, "id", "no such export");
	if (err)
		return err;
	bool running = !strcmp(was, "running");
	bool waiting = !strcmp(was, "queued");
	rep->status = running ? 202 : 200;
	rep->body = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "was", was, "status",
	                      running ? "cancelling" : waiting ? "cancelled" : "deleted");
	return rep->body ? 0 : -ENOMEM;
}
