/*
 * api_cameras.c - GET /api/v1/cameras and /api/v1/cameras/{id}.
 *
 * The listing filters the registry snapshot (api_snapshot.c) with the
 * filter of api_filter.c (bbox, near + radius, tag, district, q, status;
 * sorted by distance when near), then pages with limit and offset; with
 * live=1 each listed camera carries its `live` status too. Cameras
 * are shown without URLs or credentials: the snapshot never holds them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

static json_t *api_coord(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

json_t *api_camera_json(const struct api_camera *c, const struct ingest_camera_status *st,
                        bool known)
{
	json_t *tags = json_array();
	for (int i = 0; tags && i < c->tag_count && i < REGISTRY_MAX_TAGS; i++)
		json_array_append_new(tags, json_string(c->tags[i]));
	return json_pack("{s:I, s:s, s:o, s:o, s:o*, s:s, s:s, s:s, s:b, s:s}",
	                 "id", (json_int_t)c->id, "name", c->name,
	                 "latitude", api_coord(c->latitude), "longitude", api_coord(c->longitude),
	                 "tags", tags, "site", c->site, "district", c->district,
	                 "retention_class", c->retention_class, "enabled", c->enabled,
	                 "status", api_status_label(st, known));
}

static json_t *api_live_json(const struct ingest_camera_status *st, bool known)
{
	if (!known)
		return json_null();
	int64_t up = st->streaming_since_us ? (nvr_now_us() - st->streaming_since_us) / 1000000 : 0;
	return json_pack("{s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, s:b, s:I, s:o, s:b}",
	                 "state", ingest_state_name(st->state), "last_error", st->last_error,
	                 "bitrate_kbps", st->bitrate_kbps, "fps", st->fps,
	                 "frames", (json_int_t)st->frames, "frames_lost", (json_int_t)st->frames_lost,
	                 "reconnects", (json_int_t)st->reconnects,
	                 "uptime_s", (json_int_t)(up > 0 ? up : 0), "rtcp_clock", st->rtcp_clock,
	                 "failures_24h", (json_int_t)st->failures_24h,
	                 "last_failure", st->last_failure_us ? api_time(st->last_failure_us) : json_null(),
	                 "repeat_failure", ingest_is_repeat_failure(st));
}

static int api_list(struct web *w, const struct api_filter *f, bool live,
                    struct web_reply *rep)
{
	struct api_hit *hits = NULL;
	json_t *list = json_array();
	size_t n = 0, page = 0;
	struct api_status_block *b = malloc(sizeof *b);   /* the page's statuses, one call */
	int err = -ENOMEM;
	if (!list || !b || api_filter_hits(w, f, &hits, &n))
		goto fail;
	size_t first = (size_t)f->offset < n ? (size_t)f->offset : n;
	for (size_t i = first; i < n && page < (size_t)f->limit; i++)
		b->ids[page++] = hits[i].cam->id;
	api_statuses(w, b->ids, page, b->st, b->known);
	for (size_t k = 0; k < page; k++) {
		const struct api_hit *h = &hits[first + k];
		json_t *c = api_camera_json(h->cam, &b->st[k], b->known[k]);
		if (c && f->near)
			json_object_set_new(c, "distance_m", json_real(round(h->distance_m * 10) / 10));
		if (c && live)
			json_object_set_new(c, "live", api_live_json(&b->st[k], b->known[k]));
		if (!c || json_array_append_new(list, c))
			goto fail;
	}
	rep->body = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)n,
	                      "offset", (json_int_t)f->offset, "limit", (json_int_t)f->limit,
	                      "cameras", list);
	list = NULL;
	err = rep->body ? 0 : -ENOMEM;
fail:
	json_decref(list);
	free(hits);
	free(b);
	return err;
}

int api_cameras(struct web *w, const struct web_request *req, const char *arg,
                struct web_reply *rep)
{
	(void)arg;
	struct api_filter f;
	int r = api_parse_filter(&req->query, &f, rep);
	if (r)
		return r < 0 ? r : 0;
	const char *live = query_get(&req->query, "live");
	bool with_live = live && (!strcmp(live, "1") || !strcmp(live, "true"));
	if (live && !with_live && strcmp(live, "0") && strcmp(live, "false"))
		return api_error(rep, 400, "live", "must be 1, true, 0 or false");
	int err = api_snapshot_acquire(w);
	if (err)
		return err;
	err = api_list(w, &f, with_live, rep);
	api_snapshot_release(w);
	return err;
}

int64_t api_path_id(const char *arg, struct web_reply *rep)
{
	int64_t id;
	if (query_parse_int(arg, 1, INT32_MAX, &id)) {
		api_error(rep, 400, "id", "camera id must be a whole number from 1 to 2147483647");
		return -1;
	}
	return id;
}

int api_camera(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep)
{
	(void)req;
	int64_t id = api_path_id(arg, rep);
	if (id < 0)
		return 0;
	int err = api_snapshot_acquire(w);
	if (err)
		return err;
	const struct api_camera *c = api_snapshot_find(w, (uint32_t)id);
	struct ingest_camera_status st;
	bool known = false;
	uint32_t cid = (uint32_t)id;
	if (c)
		api_statuses(w, &cid, 1, &st, &known);
	json_t *j = c ? api_camera_json(c, &st, known) : NULL;
	api_snapshot_release(w);
	if (!c)
		return api_error(rep, 404, "id", "no camera with this id");
	if (!j)
		return -ENOMEM;
	json_object_set_new(j, "live", api_live_json(&st, known));
	rep->body = j;
	return 0;
}
