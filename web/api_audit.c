/*
 * api_audit.c - the audit trail over HTTP: api_audit() appends an entry
 * for a request (nvr/audit.h), GET /api/v1/audit lists entries and GET
 * /api/v1/audit/verify walks the hash chain.
 *
 *   /audit?from=T&to=T&after=ID&limit=N   entries with id > after and time
 *                                         in [from, to), oldest first, at
 *                                         most limit (1..1000, default 100);
 *                                         "next_after" pages on
 *   /audit/verify                         {"ok", "entries", "last_id",
 *                                          "head", "broken_id", "reason"}
 */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "log.h"

int api_audit(struct web *w, const struct web_request *req, const char *action,
              json_t *detail, uint64_t *id)
{
	if (!w->ctx.audit) {
		if (id)
			*id = 0;
		return 0;
	}
	return audit_append(w->ctx.audit, req->user[0] ? req->user : "anonymous", action,
	                    req->remote, detail, id);
}

int api_audit_read(struct web *w, const struct web_request *req, const char *action,
                   json_t *detail)
{
	if (!w->ctx.audit)
		return 0;
	return audit_append_queued(w->ctx.audit, req->user[0] ? req->user : "anonymous", action,
	                           req->remote, detail);
}

static json_t *api_audit_entry_json(const struct audit_entry *e)
{
	char prev[2 * AUDIT_HASH_BYTES + 1], hash[2 * AUDIT_HASH_BYTES + 1];
	audit_hex(e->prev, prev);
	audit_hex(e->hash, hash);
	return json_pack("{s:I, s:o, s:I, s:s, s:s, s:s, s:O, s:s, s:s}", "id", (json_int_t)e->id,
	                 "time", api_time(e->time_us), "time_ms", (json_int_t)(e->time_us / 1000),
	                 "user", e->user, "action", e->action, "remote", e->remote, "detail",
	                 e->detail, "prev", prev, "hash", hash);
}

static int api_audit_add(void *user, const struct audit_entry *e)
{
	json_t *list = user, *o = api_audit_entry_json(e);
	return o && json_array_append_new(list, o) == 0 ? 0 : -ENOMEM;
}

/* The optional time bounds; 1 after a 400 in rep. */
static int api_audit_query(const struct web_request *req, struct audit_query *q,
                           struct web_reply *rep)
{
	struct query_error qe;
	int64_t limit, after;
	int r = query_time(&req->query, "from", &q->from_us, &qe);
	if (r >= 0)
		r = query_time(&req->query, "to", &q->to_us, &qe);
	if (r >= 0)
		r = query_int(&req->query, "limit", 1, API_MAX_LIMIT, API_DEFAULT_LIMIT, &limit, &qe);
	if (r >= 0)
		r = query_int(&req->query, "after", 0, INT64_MAX, 0, &after, &qe);
	if (r < 0)
		return api_query_error(rep, &qe) ? -ENOMEM : 1;
	if (q->to_us && q->to_us <= q->from_us)
		return api_error(rep, 400, "to", "must be later than from") ? -ENOMEM : 1;
	q->limit = (uint64_t)limit;
	q->after_id = (uint64_t)after;
	return 0;
}

int api_audit_list(struct web *w, const struct web_request *req, const char *arg,
                   struct web_reply *rep)
{
	(void)arg;
	struct audit_query q = { 0 };
	bool more = false;
	int r = api_audit_query(req, &q, rep);
	if (r)
		return r < 0 ? r : 0;
	if (!w->ctx.audit)
		return api_error(rep, 404, NULL, "no audit trail on this server");
	json_t *list = json_array();
	if (!list)
		return -ENOMEM;
	int err = audit_list(w->ctx.audit, &q, api_audit_add, list, &more);
	if (err) {
		json_decref(list);
		return err;
	}
	size_t n = json_array_size(list);
	json_t *last = n ? json_object_get(json_array_get(list, n - 1), "id") : NULL;
	rep->body = json_pack("{s:o, s:b, s:O?}", "entries", list, "more", more, "next_after",
	                      more ? last : NULL);
	return rep->body ? 0 : -ENOMEM;
}

int api_audit_verify(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep)
{
	(void)req;
	(void)arg;
	struct audit_report r;
	char head[2 * AUDIT_HASH_BYTES + 1];
	if (!w->ctx.audit)
		return api_error(rep, 404, NULL, "no audit trail on this server");
	int err = audit_verify(w->ctx.audit, &r);
	if (err)
		return err;
	audit_hex(r.head, head);
	rep->body = json_pack("{s:b, s:I, s:I, s:s}", "ok", r.ok, "entries", (json_int_t)r.entries,
	                      "last_id", (json_int_t)r.last_id, "head", head);
	if (rep->body && !r.ok &&
	    (json_object_set_new(rep->body, "broken_id", json_integer((json_int_t)r.broken_id)) ||
	     json_object_set_new(rep->body, "reason", json_string(r.reason))))
		return -ENOMEM;
	return rep->body ? 0 : -ENOMEM;
}
