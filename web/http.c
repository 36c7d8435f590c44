/*
 * http.c - the HTTP server (http.h): libmicrohttpd with an epoll thread
 * pool, the routing table with the roles of each route, reading request
 * bodies, and the JSON replies.
 *
 * A request's query string is parsed once, when its URI arrives (the URI
 * log callback sees the raw URI; libmicrohttpd's own argument table is not
 * used), into a struct web_request that lives until the request completes.
 * A body (POST, DELETE) is collected up to WEB_MAX_BODY bytes (413 beyond,
 * checked against Content-Length before any byte is read); the route runs
 * once the whole request is in. Routes are a const table of {method,
 * pattern, roles, handler}; a pattern's "{id}" matches one non-empty path
 * segment, handed to the handler; HEAD runs the GET route (libmicrohttpd
 * sends the headers without the body). Before the handler: the caller is
 * authenticated (api_auth.c: 401), the route must allow its role (403),
 * and the query must have parsed (400).
 *
 * With TLS the same access handler serves an HTTPS daemon and, when asked,
 * a second plain daemon on another port; both share the snapshot.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

struct web_route {
	const char *method;
	const char *pattern;
	unsigned roles;                 /* WEB_ROLE_BIT()s allowed, or WEB_PUBLIC */
	api_handler_fn handler;
};

/* Who may call what: the one table of roles (web/README.md shows it). */
static const struct web_route web_routes[] = {
	{ "GET", "/api/v1/health", WEB_PUBLIC, api_health },
	{ "GET", "/api/v1/me", WEB_ROLES_ALL, api_me },
	{ "GET", "/api/v1/cameras", WEB_ROLES_ALL, api_cameras },
	{ "GET", "/api/v1/cameras/{id}", WEB_ROLES_ALL, api_camera },
	{ "GET", "/api/v1/cameras/{id}/ranges", WEB_ROLES_ALL, api_ranges },
	{ "GET", "/api/v1/cameras/{id}/video.mp4", WEB_ROLES_ALL, api_playback },
	{ "GET", "/api/v1/cameras/{id}/hls.m3u8", WEB_ROLES_ALL, api_hls_playlist },
	{ "GET", "/api/v1/cameras/{id}/hls/segment.ts", WEB_ROLES_ALL, api_hls_segment },
	{ "GET", "/api/v1/search", WEB_ROLES_INVESTIGATORS, api_search },
	{ "GET", "/api/v1/repeat-failures", WEB_ROLES_OPERATORS, api_repeat_failures },
	{ "POST", "/api/v1/exports", WEB_ROLES_INVESTIGATORS, api_export_create },
	{ "GET", "/api/v1/exports", WEB_ROLES_INVESTIGATORS, api_export_list },
	{ "GET", "/api/v1/exports/{id}", WEB_ROLES_INVESTIGATORS, api_export_status },
	{ "DELETE", "/api/v1/exports/{id}", WEB_ROLES_INVESTIGATORS, api_export_delete },
	{ "GET", "/api/v1/exports/{id}/manifest", WEB_ROLES_INVESTIGATORS, api_export_manifest },
	{ "GET", "/api/v1/exports/{id}/download", WEB_ROLES_INVESTIGATORS, api_export_download },
	{ "POST", "/api/v1/holds", WEB_ROLES_INVESTIGATORS, api_holds_create },
	{ "GET", "/api/v1/holds", WEB_ROLES_STAFF, api_holds_list },
	{ "GET", "/api/v1/holds/{id}", WEB_ROLES_STAFF, api_holds_get },
	{ "DELETE", "/api/v1/holds/{id}", WEB_ROLES_INVESTIGATORS, api_holds_release },
	{ "POST", "/api/v1/cameras/{id}/purge", WEB_ROLES_ADMINS, api_purge },
	{ "GET", "/api/v1/retention", WEB_ROLES_STAFF, api_retention },
	{ "GET", "/api/v1/audit", WEB_ROLES_OPERATORS, api_audit_list },
	{ "GET", "/api/v1/audit/verify", WEB_ROLES_OPERATORS, api_audit_verify },
	{ "GET", "/api/v1/tokens", WEB_ROLES_ALL, api_tokens_list },
	{ "POST", "/api/v1/tokens", WEB_ROLES_ALL, api_tokens_create },
	{ "DELETE", "/api/v1/tokens/{id}", WEB_ROLES_ALL, api_tokens_revoke },
	{ "GET", "/api/v1/users", WEB_ROLES_ADMINS, api_users_list },
	{ "POST", "/api/v1/users", WEB_ROLES_ADMINS, api_users_create },
	{ "DELETE", "/api/v1/users/{id}", WEB_ROLES_ADMINS, api_users_delete },
	{ "GET", "/metrics", WEB_ROLES_OPERATORS, api_metrics },
};

#define WEB_MAX_ARG 64

/* Matches url against pattern; copies the {id} segment into arg. */
static bool web_match(const char *pattern, const char *url, char *arg, size_t argsz)
{
	arg[0] = '\0';
	while (*pattern) {
		if (strncmp(pattern, "{id}", 4) == 0) {
			size_t n = strcspn(url, "/");
			if (n == 0 || n >= argsz)
				return false;
			memcpy(arg, url, n);
			arg[n] = '\0';
			url += n;
			pattern += 4;
		} else if (*pattern++ != *url++) {
			return false;
		}
	}
	return *url == '\0';
}

int api_error(struct web_reply *rep, unsigned status, const char *parameter,
              const char *message)
{
	json_t *e = json_pack("{s:i, s:s}", "code", (int)status, "message", message);
	if (e && parameter && parameter[0])
		json_object_set_new(e, "parameter", json_string(parameter));
	json_decref(rep->body);
	rep->status = status;
	rep->body = e ? json_pack("{s:o}", "error", e) : NULL;
	return rep->body ? 0 : -ENOMEM;
}

int api_query_error(struct web_reply *rep, const struct query_error *err)
{
	return api_error(rep, 400, err->parameter, err->message);
}

static void web_count(struct web *w, unsigned status)
{
	if (status >= WEB_STATUS_MIN && status <= WEB_STATUS_MAX)
		__atomic_fetch_add(&w->answers[status - WEB_STATUS_MIN], 1, __ATOMIC_RELAXED);
}

void web_http_counts(struct web *w, struct web_http_counts *out)
{
	out->n = 0;
	for (unsigned c = WEB_STATUS_MIN; c <= WEB_STATUS_MAX && out->n < WEB_COUNTED_CODES; c++) {
		uint64_t v = __atomic_load_n(&w->answers[c - WEB_STATUS_MIN], __ATOMIC_RELAXED);
		if (!v)
			continue;
		out->code[out->n] = c;
		out->count[out->n++] = v;
	}
}

static enum MHD_Result web_send(struct MHD_Connection *con, const struct web_reply *rep)
{
	char *text = rep->body ? json_dumps(rep->body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
	unsigned status = text ? rep->status : 500;
	if (!text)
		text = strdup("{\"error\":{\"code\":500,\"message\":\"out of memory\"}}");
	if (!text)
		return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text,
	                                                         MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == 429)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (rep->challenge && status == 401) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                        "Basic realm=\"nvr\", charset=\"UTF-8\"");
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"nvr\"");
	}
	enum MHD_Result ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Finds the route: NULL with a 404 or 405 in rep when none fits. */
static const struct web_route *web_route_find(const char *method, const char *url, char *arg,
                                              struct web_reply *rep)
{
	bool path_known = false;
	for (size_t i = 0; i < sizeof web_routes / sizeof web_routes[0]; i++) {
		const struct web_route *rt = &web_routes[i];
		if (!web_match(rt->pattern, url, arg, WEB_MAX_ARG))
			continue;
		path_known = true;
		if (!strcmp(rt->method, method) ||
		    (!strcmp(method, MHD_HTTP_METHOD_HEAD) && !strcmp(rt->method, "GET")))
			return rt;
	}
	if (path_known)
		api_error(rep, 405, NULL, "method not allowed on this path");
	else
		api_error(rep, 404, NULL, "no such endpoint");
	return NULL;
}

/* Who is asking: 0 with req->user and req->role set, 1 with a 401 in rep,
 * or a negative errno. */
static int web_identify(struct web *w, struct MHD_Connection *con, const struct web_route *rt,
                        struct web_request *req, struct web_reply *rep)
{
	const char *authz = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	                                                MHD_HTTP_HEADER_AUTHORIZATION);
	snprintf(req->user, sizeof req->user, "anonymous");
	req->role = WEB_ROLE_VIEWER;
	req->authenticated = false;
	if (w->cfg.auth_off) {
		req->role = WEB_ROLE_ADMIN;
		req->authenticated = true;
		return 0;
	}
	if (!authz && (rt->roles & WEB_PUBLIC))
		return 0;
	return api_authenticate(w, authz, req, rep);
}

/* Runs the route for a complete request; the reply is in rep. */
static void web_dispatch(struct web *w, struct MHD_Connection *con, struct web_request *req,
                         const char *method, const char *url, struct web_reply *rep)
{
	char arg[WEB_MAX_ARG];
	const struct web_route *rt = web_route_find(method, url, arg, rep);
	if (!rt)
		return;
	if (req->too_large) {
		api_error(rep, 413, NULL, "request body larger than 64 KiB");
		return;
	}
	if (!rl_allow(w->limit, req->remote, nvr_mono_us())) {
		api_error(rep, 429, NULL, "too many requests from your address: retry in a second");
		return;
	}
	int err = web_identify(w, con, rt, req, rep);
	if (err == 1)
		return;
	if (!err && !(rt->roles & WEB_PUBLIC) && !(rt->roles & WEB_ROLE_BIT(req->role))) {
		nvr_log("info", "web", "event=forbidden user=%s path=%s", req->user, rt->pattern);
		api_error(rep, 403, NULL, "your role may not use this endpoint");
		return;
	}
	if (!err && req->query_status) {
		api_query_error(rep, &req->query_error);
		return;
	}
	if (!err)
		err = rt->handler(w, req, strchr(rt->pattern, '{') ? arg : NULL, rep);
	if (err) {
		nvr_log("error", "web", "event=handler_failed path=%s error=\"%s\"",
		        rt->pattern, strerror(-err));
		api_error(rep, 500, NULL, "internal error");
	}
}

/* Appends a piece of the body; beyond WEB_MAX_BODY only too_large is set. */
static int web_body_append(struct web_request *req, const char *data, size_t n)
{
	if (req->too_large || n > WEB_MAX_BODY - req->body_len) {
		req->too_large = true;
		return 0;
	}
	if (req->body_len + n + 1 > req->body_cap) {
		size_t cap = req->body_cap ? req->body_cap : 1024;
		while (cap < req->body_len + n + 1)
			cap *= 2;
		char *b = realloc(req->body_buf, cap);
		if (!b)
			return -ENOMEM;
		req->body_buf = b;
		req->body_cap = cap;
	}
	memcpy(req->body_buf + req->body_len, data, n);
	req->body_len += n;
	req->body_buf[req->body_len] = '\0';
	req->body = req->body_buf;
	return 0;
}

/* A Content-Length above the limit is refused before the body is read. */
static bool web_length_too_large(struct MHD_Connection *con)
{
	const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!cl)
		return false;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(cl, &end, 10);
	return errno || end == cl || n > WEB_MAX_BODY;
}

static enum MHD_Result web_reply_send(struct web *w, struct MHD_Connection *con,
                                       struct web_reply *rep)
{
	enum MHD_Result ret;
	if (rep->response) {
		ret = MHD_queue_response(con, rep->status, rep->response);
		MHD_destroy_response(rep->response);
	} else {
		ret = web_send(con, rep);
		if (!rep->body)
			rep->status = 500;
	}
	web_count(w, rep->status);
	json_decref(rep->body);
	return ret;
}

static enum MHD_Result web_access(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size,
                                  void **req_cls)
{
	(void)version;
	struct web *w = cls;
	struct web_request *req = *req_cls;
	struct web_reply rep = { .status = 200, .body = NULL, .response = NULL };
	if (!req) {
		api_error(&rep, 500, NULL, "out of memory");
		return web_reply_send(w, con, &rep);
	}
	if (!req->started) {           /* headers are in; the body may follow */
		req->started = true;
		if (!web_length_too_large(con))
			return MHD_YES;
		req->too_large = true;
	} else if (*upload_size) {
		int err = web_body_append(req, upload_data, *upload_size);
		*upload_size = 0;
		if (!err)
			return MHD_YES;
		api_error(&rep, 500, NULL, "out of memory");
		return web_reply_send(w, con, &rep);
	}
	req->range = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
	req->if_range = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
	req->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	web_dispatch(w, con, req, method, url, &rep);
	return web_reply_send(w, con, &rep);
}

/* The client's address as text, "" when unknown. */
static void web_remote(struct MHD_Connection *con, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	out[0] = '\0';
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

/* Called with the raw URI before the access handler: parses the query. */
static void *web_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
	(void)cls;
	struct web_request *req = calloc(1, sizeof *req);
	if (!req)
		return NULL;
	const char *qs = strchr(uri, '?');
	req->body = "";
	web_remote(con, req->remote, sizeof req->remote);
	if (qs)
		req->query_status = query_parse(qs + 1, strlen(qs + 1), &req->query,
		                                &req->query_error);
	return req;
}

static void web_completed(void *cls, struct MHD_Connection *con, void **req_cls,
                          enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)con;
	(void)toe;
	struct web_request *req = *req_cls;
	if (req)
		free(req->body_buf);
	free(req);
	*req_cls = NULL;
}

static void web_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[256];
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\r\n\"")] = '\0';
	nvr_log("warn", "web", "event=mhd_error message=\"%s\"", msg);
}

static void web_defaults(struct web_config *c)
{
	if (!c->listen_addr)
		c->listen_addr = "127.0.0.1";
	if (!c->threads)
		c->threads = 2;
	if (!c->max_connections)
		c->max_connections = 256;
	if (!c->connection_timeout_s)
		c->connection_timeout_s = 30;
	if (!c->connection_memory)
		c->connection_memory = 64u << 10;
	if (!c->max_window_ms)
		c->max_window_ms = 7LL * 24 * 3600 * 1000;
}

/* Starts one libmicrohttpd daemon on `port` of sa; with TLS when the
 * configuration has a certificate and `tls`. libmicrohttpd logs why it
 * could not start; errno usually says it too. */
static int web_listen(struct web *w, unsigned flags, struct sockaddr *sa, uint16_t port,
                      bool tls, void **out)
{
	struct MHD_OptionItem opts[16];
	size_t n = 0;
#define WEB_OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){ o, (intptr_t)(v), p })
	WEB_OPT(MHD_OPTION_EXTERNAL_LOGGER, web_mhd_log, w);
	WEB_OPT(MHD_OPTION_SOCK_ADDR, 0, sa);
	WEB_OPT(MHD_OPTION_THREAD_POOL_SIZE, w->cfg.threads, NULL);
	WEB_OPT(MHD_OPTION_CONNECTION_LIMIT, w->cfg.max_connections, NULL);
	WEB_OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, w->cfg.connection_memory, NULL);
	WEB_OPT(MHD_OPTION_CONNECTION_TIMEOUT, w->cfg.connection_timeout_s, NULL);
	WEB_OPT(MHD_OPTION_URI_LOG_CALLBACK, web_uri, w);
	WEB_OPT(MHD_OPTION_NOTIFY_COMPLETED, web_completed, w);
	if (tls) {
		flags |= MHD_USE_TLS;
		WEB_OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)w->cfg.tls_cert_pem);
		WEB_OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)w->cfg.tls_key_pem);
	}
	WEB_OPT(MHD_OPTION_END, 0, NULL);
#undef WEB_OPT
	if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	errno = 0;
	*out = MHD_start_daemon(flags, port, NULL, NULL, web_access, w, MHD_OPTION_ARRAY, opts,
	                        MHD_OPTION_END);
	int err = errno;
	return *out ? 0 : err > 0 ? -err : -EIO;
}

/* The TLS listener, and the plain one if asked for; or one plain listener. */
static int web_listen_all(struct web *w, unsigned flags, struct sockaddr *sa)
{
	bool tls = w->cfg.tls_cert_pem != NULL;
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		nvr_log("error", "web", "event=tls_unsupported hint=\"this libmicrohttpd was built "
		        "without TLS (GnuTLS); remove tls_cert and tls_key or install one with it\"");
		return -ENOTSUP;
	}
	if (tls && !w->cfg.tls_key_pem)
		return -EINVAL;
	int err = web_listen(w, flags, sa, w->cfg.port, tls, &w->daemon);
	if (!err && tls && w->cfg.plain_port) {
		err = web_listen(w, flags, sa, w->cfg.plain_port, false, &w->plain);
		if (err) {
			MHD_stop_daemon(w->daemon);
			w->daemon = NULL;
		}
	}
	return err;
}

int web_start(const struct web_config *cfg, struct web_ctx *ctx, struct web **out)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	struct web *w = calloc(1, sizeof *w);
	int err = -ENOMEM;
	if (!w)
		goto fail;
	w->cfg = *cfg;
	w->ctx = *ctx;
	web_defaults(&w->cfg);
	err = -EINVAL;
	if (!cfg->port)
		goto fail;
	struct sockaddr *sa = (struct sockaddr *)&a4;
	if (inet_pton(AF_INET6, w->cfg.listen_addr, &a6.sin6_addr) == 1) {
		sa = (struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else if (inet_pton(AF_INET, w->cfg.listen_addr, &a4.sin_addr) != 1) {
		goto fail;
	}
	if ((err = api_auth_init(w)))
		goto fail;
	if ((err = rl_create(w->cfg.request_rate, w->cfg.request_burst ? w->cfg.request_burst :
	                     4 * w->cfg.request_rate, &w->limit)))
		goto fail;
	err = api_ops_init(w);
	if (err)
		goto fail;
	err = -pthread_rwlock_init(&w->snap.lock, NULL);
	if (err) {
		api_ops_free(w);
		goto fail;
	}
	/* Load the snapshot now, so that the first listing is not the slow one. */
	err = api_snapshot_acquire(w);
	if (!err) {
		api_snapshot_release(w);
		err = web_listen_all(w, flags, sa);
	}
	if (err) {
		api_snapshot_free(&w->snap);
		pthread_rwlock_destroy(&w->snap.lock);
		api_ops_free(w);
		goto fail;
	}
	*out = w;
	return 0;
fail:
	if (w) {
		api_auth_free(w);
		rl_free(w->limit);
	}
	nvr_log("error", "web", "event=http_start_failed listen=%s port=%u error=\"%s\"",
	        cfg->listen_addr ? cfg->listen_addr : "127.0.0.1", (unsigned)cfg->port,
	        strerror(-err));
	free(w);
	return err;
}

void web_stop(struct web *w)
{
	if (!w)
		return;
	if (w->plain)
		MHD_stop_daemon(w->plain);
	MHD_stop_daemon(w->daemon);
	api_snapshot_free(&w->snap);
	pthread_rwlock_destroy(&w->snap.lock);
	api_ops_free(w);
	api_auth_free(w);
	rl_free(w->limit);
	free(w);
}
