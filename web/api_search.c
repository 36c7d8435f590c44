/*
 * api_search.c - GET /api/v1/search: which cameras near a place have
 * footage between `from` and `to`?
 *
 * The place (near + radius, or bbox) is required, the other filters of
 * /cameras (tag, district, q, status) are optional; they are applied to the
 * registry snapshot first (api_filter.c), and only the cameras that match
 * are asked for their recorded ranges (stg_ranges), so that a search over a
 * few dozen cameras costs a few dozen index lookups however many cameras the
 * registry holds. Cameras without footage in the window are left out; the
 * rest come sorted by distance (near) or by id (bbox), each with its ranges
 * and the footage it covers in the window (covered_ms). The window is
 * checked as for /ranges (api_window: at most web_config.max_window_ms).
 * Every search that passed these checks is audited ("search", with its
 * parameters) before it runs; without its audit entry it does not run.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define API_SEARCH_MAX_RANGES 10000

struct api_search {
	int64_t t0, t1;
	struct stg_range *ranges;       /* API_SEARCH_MAX_RANGES */
	json_t *list;
	size_t total;
	struct api_status_block *page;  /* the listed cameras' ids, then statuses */
	size_t listed;
};

/* One camera's answer from its n ranges (at most API_SEARCH_MAX_RANGES
 * listed; covered_ms counts the listed ones); its status is filled in
 * with the page's (api_search_statuses). */
static json_t *api_search_camera(const struct api_filter *f, const struct api_hit *h,
                                 const struct api_search *s, int n)
{
	struct ingest_camera_status st = { 0 };
	json_t *c = api_camera_json(h->cam, &st, false), *jr = json_array();
	int listed = n < API_SEARCH_MAX_RANGES ? n : API_SEARCH_MAX_RANGES;
	int64_t covered_us = 0;
	if (!c || !jr)
		goto fail;
	for (int i = 0; i < listed; i++) {
		covered_us += s->ranges[i].end_us - s->ranges[i].start_us;
		if (json_array_append_new(jr, api_span(s->ranges[i].start_us, s->ranges[i].end_us)))
			goto fail;
	}
	if (f->near &&
	    json_object_set_new(c, "distance_m", json_real(round(h->distance_m * 10) / 10)))
		goto fail;
	if (json_object_set_new(c, "ranges", jr))
		goto fail_ranges_owned;
	if (json_object_set_new(c, "covered_ms", json_integer(covered_us / 1000)) ||
	    json_object_set_new(c, "truncated", json_boolean(n > API_SEARCH_MAX_RANGES)))
		goto fail_ranges_owned;
	return c;
fail:
	json_decref(jr);
fail_ranges_owned:
	json_decref(c);
	return NULL;
}

/* Asks the storage about each place match in order, keeping those with
 * footage; lists the page [offset, offset + limit) of them. */
static int api_search_scan(struct web *w, const struct api_filter *f, const struct api_hit *hits,
                           size_t count, struct api_search *s)
{
	for (size_t i = 0; i < count; i++) {
		int n = stg_ranges(w->ctx.stg, hits[i].cam->id, s->t0, s->t1, s->ranges,
		                   API_SEARCH_MAX_RANGES);
		if (n < 0)
			return n;
		if (n == 0)
			continue;
		size_t at = s->total++;
		if (at < (size_t)f->offset || at >= (size_t)(f->offset + f->limit))
			continue;
		json_t *c = api_search_camera(f, &hits[i], s, n);
		if (!c || json_array_append_new(s->list, c))
			return -ENOMEM;
		s->page->ids[s->listed++] = hits[i].cam->id;
	}
	return 0;
}

/* The listed cameras' statuses, asked for all at once. */
static int api_search_statuses(struct web *w, struct api_search *s)
{
	struct api_status_block *b = s->page;
	api_statuses(w, b->ids, s->listed, b->st, b->known);
	for (size_t i = 0; i < s->listed; i++)
		if (json_object_set_new(json_array_get(s->list, i), "status",
		                        json_string(api_status_label(&b->st[i], b->known[i]))))
			return -ENOMEM;
	return 0;
}

/* The audit entry: the window and every query parameter as given. */
static int api_search_audit(struct web *w, const struct web_request *req,
                            const struct api_search *s)
{
	json_t *params = json_object();
	for (int i = 0; params && i < req->query.count; i++)
		if (json_object_set_new(params, req->query.params[i].key,
		                        json_string(req->query.params[i].value)))
			break;
	json_t *d = params ? json_pack("{s:I, s:I, s:o}", "from_ms", (json_int_t)(s->t0 / 1000),
	                               "to_ms", (json_int_t)(s->t1 / 1000), "query", params)
	                   : NULL;
	int err = d ? api_audit_read(w, req, "search", d) : -ENOMEM;
	json_decref(d);
	return err;
}

static int api_search_run(struct web *w, const struct api_filter *f, struct api_search *s)
{
	struct api_hit *hits = NULL;
	size_t count = 0;
	int err = api_snapshot_acquire(w);
	if (err)
		return err;
	err = api_filter_hits(w, f, &hits, &count);
	if (!err)
		err = api_search_scan(w, f, hits, count, s);
	if (!err)
		err = api_search_statuses(w, s);
	api_snapshot_release(w);
	free(hits);
	return err;
}

int api_search(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep)
{
	(void)arg;
	struct api_filter f;
	struct api_search s = { 0 };
	int r = api_window(w, &req->query, &s.t0, &s.t1, rep);
	if (!r)
		r = api_parse_filter(&req->query, &f, rep);
	if (!r && !f.near && !f.bbox)
		r = api_error(rep, 400, "near", "a place is required: near=lat,lon&radius=metres"
		              " or bbox=minLon,minLat,maxLon,maxLat") ? -ENOMEM : 1;
	if (r)
		return r < 0 ? r : 0;
	int err = api_search_audit(w, req, &s);
	if (err)
		return err;
	err = -ENOMEM;
	s.ranges = malloc(API_SEARCH_MAX_RANGES * sizeof *s.ranges);
	s.page = malloc(sizeof *s.page);
	s.list = json_array();
	if (!s.ranges || !s.page || !s.list)
		goto fail;
	err = api_search_run(w, &f, &s);
	if (err)
		goto fail;
	rep->body = json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:o}",
	                      "from", api_time(s.t0), "to", api_time(s.t1),
	                      "from_ms", (json_int_t)(s.t0 / 1000), "to_ms", (json_int_t)(s.t1 / 1000),
	                      "total", (json_int_t)s.total, "offset", (json_int_t)f.offset,
	                      "limit", (json_int_t)f.limit, "cameras", s.list);
	s.list = NULL;
	err = rep->body ? 0 : -ENOMEM;
fail:
	json_decref(s.list);
	free(s.ranges);
	free(s.page);
	return err;
}
