/*
 * api_cameras.c - GET /api/v1/cameras and /api/v1/cameras/{id}.
 *
 * The listing filters the registry snapshot (api_snapshot.c): bbox, near +
 * radius (great-circle distance, haversine; results then sorted by
 * distance and carrying distance_m), tag (repeatable, all must match),
 * district, q (case-insensitive substring of name, site or district) and
 * status (the ingest state), then pages with limit and offset. Cameras are
 * shown without URLs or credentials: the snapshot never holds them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

#define API_EARTH_RADIUS_M 6371008.8
#define API_DEFAULT_LIMIT 100
#define API_MAX_LIMIT 1000

struct api_filter {
	bool bbox, near;
	double min_lon, min_lat, max_lon, max_lat;
	double lat, lon, radius_m;
	const char *tags[REGISTRY_MAX_TAGS];
	int tag_count;
	const char *district, *text, *status;
	int64_t limit, offset;
};

struct api_hit {
	const struct api_camera *cam;
	double distance_m;
};

static double api_rad(double deg)
{
	return deg * M_PI / 180.0;
}

static double api_haversine_m(double lat1, double lon1, double lat2, double lon2)
{
	double dlat = api_rad(lat2 - lat1), dlon = api_rad(lon2 - lon1);
	double a = sin(dlat / 2) * sin(dlat / 2) +
	           cos(api_rad(lat1)) * cos(api_rad(lat2)) * sin(dlon / 2) * sin(dlon / 2);
	return 2 * API_EARTH_RADIUS_M * asin(sqrt(a < 1 ? a : 1));
}

/* Splits "a,b[,c,d]" into exactly n numbers. */
static int api_numbers(const char *s, double *out, int n)
{
	char buf[QUERY_MAX_VALUE];
	snprintf(buf, sizeof buf, "%s", s);
	char *save = NULL, *tok = strtok_r(buf, ",", &save);
	int i = 0;
	for (; tok && i < n; i++, tok = strtok_r(NULL, ",", &save))
		if (query_parse_double(tok, -1e9, 1e9, &out[i]))
			return -EINVAL;
	return i == n && !tok ? 0 : -EINVAL;
}

static int api_parse_bbox(const struct query *q, struct api_filter *f, struct web_reply *rep)
{
	const char *v = query_get(q, "bbox");
	double b[4];
	if (!v)
		return 0;
	if (api_numbers(v, b, 4) || b[0] < -180 || b[0] > 180 || b[2] < -180 || b[2] > 180 ||
	    b[1] < -90 || b[1] > 90 || b[3] < -90 || b[3] > 90 || b[1] > b[3])
		return api_error(rep, 400, "bbox", "must be minLon,minLat,maxLon,maxLat in degrees"
		                 " (minLat <= maxLat)") ? -ENOMEM : 1;
	f->bbox = true;
	f->min_lon = b[0], f->min_lat = b[1], f->max_lon = b[2], f->max_lat = b[3];
	return 0;
}

static int api_parse_near(const struct query *q, struct api_filter *f, struct web_reply *rep)
{
	const char *v = query_get(q, "near");
	double p[2];
	struct query_error qe;
	if (!v)
		return query_get(q, "radius") ? (api_error(rep, 400, "radius",
		                                 "needs near=lat,lon") ? -ENOMEM : 1) : 0;
	if (api_numbers(v, p, 2) || p[0] < -90 || p[0] > 90 || p[1] < -180 || p[1] > 180)
		return api_error(rep, 400, "near", "must be lat,lon in degrees") ? -ENOMEM : 1;
	int r = query_double(q, "radius", 0, 20037509, 0, &f->radius_m, &qe);
	if (r == 0)
		return api_error(rep, 400, "radius", "is required with near (metres)") ? -ENOMEM : 1;
	if (r < 0)
		return api_query_error(rep, &qe) ? -ENOMEM : 1;
	f->near = true;
	f->lat = p[0], f->lon = p[1];
	return 0;
}

/* Returns 0, 1 after filling a 400 reply, or a negative errno. */
static int api_parse_filter(const struct query *q, struct api_filter *f, struct web_reply *rep)
{
	struct query_error qe;
	memset(f, 0, sizeof *f);
	int r = api_parse_bbox(q, f, rep);
	if (!r)
		r = api_parse_near(q, f, rep);
	if (r)
		return r;
	f->tag_count = query_all(q, "tag", f->tags, REGISTRY_MAX_TAGS);
	if (f->tag_count > REGISTRY_MAX_TAGS)
		return api_error(rep, 400, "tag", "at most 16 tags") ? -ENOMEM : 1;
	f->district = query_get(q, "district");
	f->text = query_get(q, "q");
	f->status = query_get(q, "status");
	if (query_int(q, "limit", 1, API_MAX_LIMIT, API_DEFAULT_LIMIT, &f->limit, &qe) < 0 ||
	    query_int(q, "offset", 0, INT32_MAX, 0, &f->offset, &qe) < 0)
		return api_query_error(rep, &qe) ? -ENOMEM : 1;
	return 0;
}

static bool api_has_tag(const struct api_camera *c, const char *tag)
{
	for (int i = 0; i < c->tag_count && i < REGISTRY_MAX_TAGS; i++)
		if (strcmp(c->tags[i], tag) == 0)
			return true;
	return false;
}

static const char *api_status_name(struct web *w, uint32_t id, struct ingest_camera_status *st)
{
	if (!w->ctx.ingest || ingest_status(w->ctx.ingest, id, st))
		return "not_recording";
	return ingest_state_name(st->state);
}

static bool api_match_place(const struct api_filter *f, const struct api_camera *c, double *dist)
{
	bool known = !isnan(c->latitude) && !isnan(c->longitude);
	if (f->bbox) {
		bool lon_in = f->min_lon <= f->max_lon
		              ? c->longitude >= f->min_lon && c->longitude <= f->max_lon
		              : c->longitude >= f->min_lon || c->longitude <= f->max_lon;
		if (!known || !lon_in || c->latitude < f->min_lat || c->latitude > f->max_lat)
			return false;
	}
	if (f->near) {
		if (!known)
			return false;
		*dist = api_haversine_m(f->lat, f->lon, c->latitude, c->longitude);
		if (*dist > f->radius_m)
			return false;
	}
	return true;
}

static bool api_match(struct web *w, const struct api_filter *f, const struct api_camera *c,
                      double *dist)
{
	if (!api_match_place(f, c, dist))
		return false;
	for (int i = 0; i < f->tag_count; i++)
		if (!api_has_tag(c, f->tags[i]))
			return false;
	if (f->district && strcasecmp(f->district, c->district))
		return false;
	if (f->text && !strcasestr(c->name, f->text) && !strcasestr(c->site, f->text) &&
	    !strcasestr(c->district, f->text))
		return false;
	if (f->status) {
		struct ingest_camera_status st;
		if (strcmp(f->status, api_status_name(w, c->id, &st)))
			return false;
	}
	return true;
}

static int api_cmp_distance(const void *a, const void *b)
{
	double x = ((const struct api_hit *)a)->distance_m, y = ((const struct api_hit *)b)->distance_m;
	return x < y ? -1 : x > y;
}

static json_t *api_coord(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

/* The fields every camera answer has. */
static json_t *api_camera_json(struct web *w, const struct api_camera *c,
                               struct ingest_camera_status *st)
{
	json_t *tags = json_array();
	for (int i = 0; tags && i < c->tag_count && i < REGISTRY_MAX_TAGS; i++)
		json_array_append_new(tags, json_string(c->tags[i]));
	return json_pack("{s:I, s:s, s:o, s:o, s:o*, s:s, s:s, s:s, s:b, s:s}",
	                 "id", (json_int_t)c->id, "name", c->name,
	                 "latitude", api_coord(c->latitude), "longitude", api_coord(c->longitude),
	                 "tags", tags, "site", c->site, "district", c->district,
	                 "retention_class", c->retention_class, "enabled", c->enabled,
	                 "status", api_status_name(w, c->id, st));
}

static int api_list(struct web *w, const struct api_filter *f, struct web_reply *rep)
{
	struct api_hit *hits = malloc((w->snap.count ? w->snap.count : 1) * sizeof *hits);
	json_t *list = json_array();
	size_t n = 0;
	int err = -ENOMEM;
	if (!hits || !list)
		goto fail;
	for (size_t i = 0; i < w->snap.count; i++) {
		double d = 0;
		if (api_match(w, f, &w->snap.cams[i], &d))
			hits[n++] = (struct api_hit){ &w->snap.cams[i], d };
	}
	if (f->near)
		qsort(hits, n, sizeof *hits, api_cmp_distance);
	for (size_t i = (size_t)f->offset; i < n && i < (size_t)(f->offset + f->limit); i++) {
		struct ingest_camera_status st;
		json_t *c = api_camera_json(w, hits[i].cam, &st);
		if (c && f->near)
			json_object_set_new(c, "distance_m", json_real(round(hits[i].distance_m * 10) / 10));
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
	int err = api_snapshot_acquire(w);
	if (err)
		return err;
	err = api_list(w, &f, rep);
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

static json_t *api_live_json(const struct ingest_camera_status *st, bool known)
{
	if (!known)
		return json_null();
	int64_t up = st->streaming_since_us ? (nvr_now_us() - st->streaming_since_us) / 1000000 : 0;
	return json_pack("{s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, s:b}",
	                 "state", ingest_state_name(st->state), "last_error", st->last_error,
	                 "bitrate_kbps", st->bitrate_kbps, "fps", st->fps,
	                 "frames", (json_int_t)st->frames, "frames_lost", (json_int_t)st->frames_lost,
	                 "reconnects", (json_int_t)st->reconnects,
	                 "uptime_s", (json_int_t)(up > 0 ? up : 0), "rtcp_clock", st->rtcp_clock);
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
	memset(&st, 0, sizeof st);
	json_t *j = c ? api_camera_json(w, c, &st) : NULL;
	api_snapshot_release(w);
	if (!c)
		return api_error(rep, 404, "id", "no camera with this id");
	if (!j)
		return -ENOMEM;
	bool known = strcmp(json_string_value(json_object_get(j, "status")), "not_recording") != 0;
	json_object_set_new(j, "live", api_live_json(&st, known));
	rep->body = j;
	return 0;
}
