/*
 * api.h - what the HTTP server (http.c) and the endpoint handlers (api_*.c)
 * share: the request, the reply, the routing signature and the registry
 * snapshot. Private to web/.
 */
#ifndef WEB_API_H
#define WEB_API_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "http.h"
#include "query.h"
#include "ratelimit.h"

/* A camera as the API shows it: the registry record without URLs or
 * credentials. */
struct api_camera {
	uint32_t id;
	char name[128];
	double latitude, longitude;
	char tags[REGISTRY_MAX_TAGS][32];
	int tag_count;
	char site[128];
	char district[128];
	char retention_class[32];
	bool enabled;
};

/* The camera filter of /cameras and /search (api_filter.c); the strings
 * point into the request's query. */
#define API_DEFAULT_LIMIT 100
#define API_MAX_LIMIT 1000
#define API_STATUS_BLOCK 1024        /* cameras per api_statuses call in long walks */

struct api_filter {
	bool bbox, near;
	double min_lon, min_lat, max_lon, max_lat;
	double lat, lon, radius_m;
	const char *tags[REGISTRY_MAX_TAGS];
	int tag_count;
	const char *district, *text, *status;
	int64_t limit, offset;
};

/* A camera that matched, with its distance from `near` (0 without). */
struct api_hit {
	const struct api_camera *cam;
	double distance_m;
};

/* The registry in memory, rebuilt when registry_generation() changes;
 * readers hold the rwlock for reading while they use `cams`. */
struct api_snapshot {
	pthread_rwlock_t lock;
	uint64_t generation;
	bool loaded;
	struct api_camera *cams;        /* id order */
	size_t count;
};

/* HTTP answers counted by status code (100..599), for /metrics. */
#define WEB_STATUS_MIN 100
#define WEB_STATUS_MAX 599

struct api_auth_cache;

/* Samples of the dropped-frame total, for /health (api_ops.c). */
#define API_DROP_SAMPLES 16
struct api_drop_watch {
	pthread_mutex_t lock;
	int64_t mono_us[API_DROP_SAMPLES];
	uint64_t dropped[API_DROP_SAMPLES];
	uint32_t next, count;
};

struct web {
	struct web_config cfg;
	struct web_ctx ctx;
	struct api_snapshot snap;
	struct api_auth_cache *auth_cache;  /* api_auth.c */
	void *daemon;                   /* struct MHD_Daemon: port, HTTPS with TLS */
	void *plain;                    /* with TLS and plain_port: plain HTTP, else NULL */
	uint64_t answers[WEB_STATUS_MAX - WEB_STATUS_MIN + 1]; /* atomic adds */
	struct api_drop_watch drops;
	struct ratelimit *limit;        /* requests per second per address; NULL none */
	char static_root[4096];         /* the UI's directory, real path; "" none */
};

/* The status codes answered so far and how often, in code order. */
#define WEB_COUNTED_CODES 64
struct web_http_counts {
	size_t n;
	unsigned code[WEB_COUNTED_CODES];
	uint64_t count[WEB_COUNTED_CODES];
};
void web_http_counts(struct web *w, struct web_http_counts *out);

/* Roles, from least to most trusted (the numbers match nvr/users.h). Each
 * route lists the roles allowed as a set of WEB_ROLE_BIT()s; the table is in
 * http.c and documented in web/README.md. */
enum web_role {
	WEB_ROLE_VIEWER = 0,            /* cameras, ranges, live status, playback */
	WEB_ROLE_INVESTIGATOR = 1,      /* viewer + search, export, holds */
	WEB_ROLE_OPERATOR = 2,          /* viewer + operations: health details, audit */
	WEB_ROLE_ADMIN = 3,             /* everything, users and tokens included */
};
#define WEB_ROLE_BIT(r) (1u << (r))
#define WEB_ROLES_ALL (WEB_ROLE_BIT(WEB_ROLE_VIEWER) | WEB_ROLE_BIT(WEB_ROLE_INVESTIGATOR) | \
                       WEB_ROLE_BIT(WEB_ROLE_OPERATOR) | WEB_ROLE_BIT(WEB_ROLE_ADMIN))
#define WEB_ROLES_INVESTIGATORS (WEB_ROLE_BIT(WEB_ROLE_INVESTIGATOR) | WEB_ROLE_BIT(WEB_ROLE_ADMIN))
#define WEB_ROLES_OPERATORS (WEB_ROLE_BIT(WEB_ROLE_OPERATOR) | WEB_ROLE_BIT(WEB_ROLE_ADMIN))
#define WEB_ROLES_ADMINS WEB_ROLE_BIT(WEB_ROLE_ADMIN)
/* Everyone but viewers: reading holds and the retention forecast. */
#define WEB_ROLES_STAFF (WEB_ROLES_INVESTIGATORS | WEB_ROLE_BIT(WEB_ROLE_OPERATOR))
/* Not a role: the route answers without credentials (only /health). */
#define WEB_PUBLIC (1u << 8)

/* Longest request body read; a longer one is answered 413. */
#define WEB_MAX_BODY (64u << 10)
#define WEB_MAX_USER 64

/* One request: its query string, parsed when the URI arrived; who sent it,
 * known before the handler runs; the body of a POST or DELETE; the headers
 * the playback handlers read (NULL when absent; valid for the request). */
struct web_request {
	struct query query;
	int query_status;               /* 0, or the query_parse error */
	struct query_error query_error;
	char user[WEB_MAX_USER];        /* the authenticated user, or "anonymous"
	                                 * (authentication off, or a public route
	                                 * called without credentials) */
	unsigned role;                  /* enum web_role; with authentication off
	                                 * WEB_ROLE_ADMIN */
	bool authenticated;             /* credentials given and accepted, or
	                                 * authentication off */
	char remote[64];                /* client address, "" when unknown */
	const char *body;               /* NUL-terminated; "" when none */
	size_t body_len;                /* <= WEB_MAX_BODY */
	const char *range;              /* Range */
	const char *if_range;           /* If-Range */
	bool head;                      /* HEAD: the body is not sent */
	/* http.c's own: the body being read */
	char *body_buf;
	size_t body_cap;
	bool started, too_large;
};

struct web_reply {
	unsigned status;
	bool challenge;                 /* a 401: add WWW-Authenticate */
	json_t *body;                   /* owned; sent as application/json */
	void *response;                 /* struct MHD_Response *, owned; when set,
	                                 * queued with `status` instead of body */
};

/* path_arg: the {id} part of the route, NULL when the route has none.
 * Returns 0 with rep filled, or a negative errno (500). */
typedef int (*api_handler_fn)(struct web *w, const struct web_request *req,
                              const char *path_arg, struct web_reply *rep);

int api_health(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep);
int api_cameras(struct web *w, const struct web_request *req, const char *arg,
                struct web_reply *rep);
int api_camera(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep);
int api_ranges(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep);
int api_search(struct web *w, const struct web_request *req, const char *arg,
               struct web_reply *rep);
int api_metrics(struct web *w, const struct web_request *req, const char *arg,
                struct web_reply *rep);
int api_playback(struct web *w, const struct web_request *req, const char *arg,
                 struct web_reply *rep);
int api_hls_playlist(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep);
int api_hls_segment(struct web *w, const struct web_request *req, const char *arg,
                    struct web_reply *rep);
int api_repeat_failures(struct web *w, const struct web_request *req, const char *arg,
                        struct web_reply *rep);

/* Health (api_ops.c): "ready", "degraded" or "failed" and the reasons
 * (a new JSON array of {"code", "detail"}). 0 or -ENOMEM. init/free set
 * up and drop the dropped-frame samples (web_start, web_stop). */
int api_health_assess(struct web *w, const struct ingest_totals *t, const char **status,
                      json_t **reasons);
int api_ops_init(struct web *w);
void api_ops_free(struct web *w);

/* Evidence exports (api_export.c): POST /exports, GET /exports,
 * /exports/{id}, /exports/{id}/manifest, /exports/{id}/download?camera=N,
 * DELETE /exports/{id}. */
int api_export_create(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep);
int api_export_list(struct web *w, const struct web_request *req, const char *arg,
                    struct web_reply *rep);
int api_export_status(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep);
int api_export_manifest(struct web *w, const struct web_request *req, const char *arg,
                        struct web_reply *rep);
int api_export_download(struct web *w, const struct web_request *req, const char *arg,
                        struct web_reply *rep);
int api_export_delete(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep);

/* The web UI's files (static.c): "/" and "/ui/..." from one directory,
 * without credentials. init resolves the directory (NULL or "": no UI;
 * a missing one is logged, -errno, and the UI answers 404). serve answers
 * GET and HEAD (304 on a matching If-None-Match), refuses any path that
 * would leave the directory (404); 0 or a negative errno. */
int web_static_init(struct web *w, const char *dir);
bool web_static_path(const char *url);
struct MHD_Connection;
int web_static_serve(struct web *w, struct MHD_Connection *con, const char *method,
                     const char *url, struct web_reply *rep);

/* Legal holds (api_holds.c): POST /holds, GET /holds, /holds/{id},
 * DELETE /holds/{id}; a purge on request (api_purge.c): POST
 * /cameras/{id}/purge; the forecast (api_retention.c): GET /retention. */
int api_holds_create(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep);
int api_holds_list(struct web *w, const struct web_request *req, const char *arg,
                   struct web_reply *rep);
int api_holds_get(struct web *w, const struct web_request *req, const char *arg,
                  struct web_reply *rep);
int api_holds_release(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep);
int api_purge(struct web *w, const struct web_request *req, const char *arg,
              struct web_reply *rep);
int api_retention(struct web *w, const struct web_request *req, const char *arg,
                  struct web_reply *rep);

/* A hold as the API shows it (api_holds.c). */
json_t *api_hold_json(const struct stg_hold *h);
/* Every hold (stg_hold_list) into a malloc'd array; 0 or a negative errno. */
int api_holds_all(struct web *w, struct stg_hold **out, int *n);
/* Whether a camera may be named by a hold or purge: in the registry, or
 * with footage in [t0, t1) (a camera taken out of the registry). 1 yes,
 * 0 no, or a negative errno. */
int api_camera_known(struct web *w, uint32_t id, int64_t t0, int64_t t1);

/* Who am I: GET /me (api_users.c). */
int api_me(struct web *w, const struct web_request *req, const char *arg,
           struct web_reply *rep);
/* Tokens: the caller's own (an admin's: everyone's); POST makes one for
 * the caller, DELETE revokes by id. Users (admins only). api_users.c. */
int api_tokens_list(struct web *w, const struct web_request *req, const char *arg,
                    struct web_reply *rep);
int api_tokens_create(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep);
int api_tokens_revoke(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep);
int api_users_list(struct web *w, const struct web_request *req, const char *arg,
                   struct web_reply *rep);
int api_users_create(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep);
int api_users_delete(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep);
/* GET /audit and /audit/verify (api_audit.c). */
int api_audit_list(struct web *w, const struct web_request *req, const char *arg,
                   struct web_reply *rep);
int api_audit_verify(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep);

/* Checks the Authorization header (NULL when absent): Basic (Argon2id,
 * through a short-lived cache) or Bearer (token). Returns 0 with req->user,
 * req->role and req->authenticated set; 1 with a 401 (or 503 when too many
 * password checks are in flight) in rep, the failure audited as
 * login_failed when credentials were given; or a negative errno. */
int api_authenticate(struct web *w, const char *authorization, struct web_request *req,
                     struct web_reply *rep);
int api_auth_init(struct web *w);
void api_auth_free(struct web *w);

/* Appends an audit entry (nvr/audit.h) for the request's user and remote
 * address: action such as "search", "playback", "export", "hold",
 * "login_failed"; detail a JSON object (borrowed, not stolen; NULL for {}).
 * The entry's id goes to *id (may be NULL). 0 or a negative errno (logged);
 * a handler whose audit entry failed answers 500 rather than serve
 * unaudited. Without an audit log (web_ctx.audit NULL) it does nothing. */
int api_audit(struct web *w, const struct web_request *req, const char *action,
              json_t *detail, uint64_t *id);
/* For reads (search, playback, failed logins): the entry is queued and
 * committed in a batch (audit_append_queued), so the answer does not wait
 * for a disk sync. 0 or negative errno. */
int api_audit_read(struct web *w, const struct web_request *req, const char *action,
                   json_t *detail);

/* Checks the required window `from` < `to` (at most max_window_ms); returns
 * 0, 1 after filling a 400 reply naming the parameter, or -ENOMEM. */
int api_window(struct web *w, const struct query *q, int64_t *t0, int64_t *t1,
               struct web_reply *rep);
/* "2026-01-01T12:00:00.500Z" (null when out of range), and
 * {"start", "end", "start_ms", "end_ms"} of a span. */
json_t *api_time(int64_t us);
json_t *api_span(int64_t start_us, int64_t end_us);
/* A time in a JSON body: RFC 3339 text with a zone, or epoch ms. Returns
 * 0, or 1 after a 400 naming `name` ("is required" when v is NULL). */
int api_body_time(json_t *v, const char *name, int64_t *us, struct web_reply *rep);
/* The wall clock in microseconds. */
int64_t api_now_us(void);
/* Whether camera `id` is in the registry; *err is set when it cannot say. */
bool api_camera_exists(struct web *w, uint32_t id, int *err);

/* The common start of /cameras/{id}/...?from&to handlers: the id from the
 * path, the window from the query, and the camera must exist. Returns 0
 * with *id, *t0, *t1 set; 1 when `rep` already holds the 400/404 answer;
 * or a negative errno. */
int api_camera_window(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep, uint32_t *id, int64_t *t0, int64_t *t1);

/* {"error": {"code": status, "message": ..., "parameter": ...}} */
int api_error(struct web_reply *rep, unsigned status, const char *parameter,
              const char *message);
int api_query_error(struct web_reply *rep, const struct query_error *err);

/* Snapshot: brings it up to date and takes the read lock (0), or fails
 * without the lock held. api_snapshot_release drops the read lock. */
int api_snapshot_acquire(struct web *w);
void api_snapshot_release(struct web *w);
const struct api_camera *api_snapshot_find(struct web *w, uint32_t id);
void api_snapshot_free(struct api_snapshot *s);

/* Parses the filter parameters; returns 0, 1 after filling a 400 reply
 * naming the parameter, or -ENOMEM. */
int api_parse_filter(const struct query *q, struct api_filter *f, struct web_reply *rep);
/* The snapshot's cameras that match f (caller holds the snapshot), sorted
 * by distance with near, else in id order; *out is malloc'd. 0 or -ENOMEM. */
int api_filter_hits(struct web *w, const struct api_filter *f, struct api_hit **out, size_t *n);
/* Room for the statuses of up to API_STATUS_BLOCK cameras (api_statuses),
 * one allocation. A page of answers fits one block. */
struct api_status_block {
	uint32_t ids[API_STATUS_BLOCK];
	struct ingest_camera_status st[API_STATUS_BLOCK];
	bool known[API_STATUS_BLOCK];
};
_Static_assert(API_MAX_LIMIT <= API_STATUS_BLOCK, "a page's statuses fit one block");

/* The ingest statuses of n cameras at once: one round trip to each
 * recorder thread per block of cameras, not one per camera (which made
 * /metrics take 9.7 s at 30,000 cameras). known[i] is false, and st[i]
 * zeroed, for a camera that is not recording. */
void api_statuses(struct web *w, const uint32_t *ids, size_t n,
                  struct ingest_camera_status *st, bool *known);
/* The ingest state's name, or "not_recording". */
const char *api_status_label(const struct ingest_camera_status *st, bool known);
/* The fields every camera answer has (id, name, latitude, longitude, tags,
 * site, district, retention_class, enabled, status), the status from
 * api_statuses. */
json_t *api_camera_json(const struct api_camera *c, const struct ingest_camera_status *st,
                        bool known);

/* The path's camera id, or -1 after filling a 400 reply. */
int64_t api_path_id(const char *arg, struct web_reply *rep);

#endif
