/*
 * api_filter.c - the camera filter shared by /cameras (api_cameras.c) and
 * /search (api_search.c): the parameters bbox, near + radius, tag, district,
 * q, status, limit and offset, parsed into struct api_filter (api.h), and
 * the cameras of the registry snapshot that match them. status is an
 * ingest state's name, not_recording, or repeat_failure (ingest.h).
 *
 * Distances are great-circle (haversine on a sphere of the Earth's mean
 * radius). A bbox with minLon > maxLon crosses the antimeridian. Cameras
 * without coordinates never match a place filter. With near, the matches
 * are sorted by distance; otherwise they stay in id order.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define API_EARTH_RADIUS_M 6371008.8

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

int api_parse_filter(const struct query *q, struct api_filter *f, struct web_reply *rep)
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

void api_statuses(struct web *w, const uint32_t *ids, size_t n,
                  struct ingest_camera_status *st, bool *known)
{
	memset(st, 0, n * sizeof *st);
	if (w->ctx.ingest)
		ingest_status_many(w->ctx.ingest, ids, n, st, known);
	else
		memset(known, 0, n * sizeof *known);
}

const char *api_status_label(const struct ingest_camera_status *st, bool known)
{
	return known ? ingest_state_name(st->state) : "not_recording";
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
		/* A great circle is never shorter than its latitude difference
		 * along a meridian: most cameras of a city are refused here,
		 * without trigonometry. */
		if (fabs(api_rad(c->latitude - f->lat)) * API_EARTH_RADIUS_M > f->radius_m)
			return false;
		*dist = api_haversine_m(f->lat, f->lon, c->latitude, c->longitude);
		if (*dist > f->radius_m)
			return false;
	}
	return true;
}

/* Everything of the filter but the status (api_keep_status). */
static bool api_match(const struct api_filter *f, const struct api_camera *c, double *dist)
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
	return true;
}

static bool api_status_matches(const struct api_filter *f, const struct ingest_camera_status *st,
                               bool known)
{
	if (!strcmp(f->status, "repeat_failure"))
		return known && ingest_is_repeat_failure(st);
	return !strcmp(f->status, api_status_label(st, known));
}

/* Keeps those of the n hits whose status is f->status, asking the
 * recorder API_STATUS_BLOCK cameras at a time. 0 or -ENOMEM. */
static int api_keep_status(struct web *w, const struct api_filter *f, struct api_hit *hits,
                           size_t *n)
{
	struct api_status_block *b = malloc(sizeof *b);
	if (!b)
		return -ENOMEM;
	size_t kept = 0;
	for (size_t at = 0; at < *n; at += API_STATUS_BLOCK) {
		size_t k = *n - at < API_STATUS_BLOCK ? *n - at : API_STATUS_BLOCK;
		for (size_t i = 0; i < k; i++)
			b->ids[i] = hits[at + i].cam->id;
		api_statuses(w, b->ids, k, b->st, b->known);
		for (size_t i = 0; i < k; i++)
			if (api_status_matches(f, &b->st[i], b->known[i]))
				hits[kept++] = hits[at + i];
	}
	*n = kept;
	free(b);
	return 0;
}

static int api_cmp_distance(const void *a, const void *b)
{
	double x = ((const struct api_hit *)a)->distance_m, y = ((const struct api_hit *)b)->distance_m;
	return x < y ? -1 : x > y;
}

int api_filter_hits(struct web *w, const struct api_filter *f, struct api_hit **out, size_t *n)
{
	struct api_hit *hits = malloc((w->snap.count ? w->snap.count : 1) * sizeof *hits);
	*out = NULL;
	*n = 0;
	if (!hits)
		return -ENOMEM;
	for (size_t i = 0; i < w->snap.count; i++) {
		double d = 0;
		if (api_match(f, &w->snap.cams[i], &d))
			hits[(*n)++] = (struct api_hit){ &w->snap.cams[i], d };
	}
	if (f->status && api_keep_status(w, f, hits, n)) {
		free(hits);
		*n = 0;
		return -ENOMEM;
	}
	if (f->near)
		qsort(hits, *n, sizeof *hits, api_cmp_distance);
	*out = hits;
	return 0;
}
