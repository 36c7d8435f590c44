/*
 * http.c - the HTTP server (http.h): libmicrohttpd with an epoll thread
 * pool, the routing table and the JSON replies.
 *
 * A request's query string is parsed once, when its URI arrives (the URI
 * log callback sees the raw URI; libmicrohttpd's own argument table is not
 * used), into a struct web_request that lives until the request completes.
 * Routes are a const table of {method, pattern, handler}; a pattern's
 * "{id}" matches one non-empty path segment, handed to the handler. HEAD
 * runs the GET handler; libmicrohttpd sends its headers without the body.
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
	api_handler_fn handler;
};

static const struct web_route web_routes[] = {
	{ "GET", "/api/v1/health", api_health },
	{ "GET", "/api/v1/cameras", api_cameras },
	{ "GET", "/api/v1/cameras/{id}", api_camera },
	{ "GET", "/api/v1/cameras/{id}/ranges", api_ranges },
	{ "GET", "/api/v1/cameras/{id}/video.mp4", api_playback },
	{ "GET", "/api/v1/cameras/{id}/hls.m3u8", api_hls_playlist },
	{ "GET", "/api/v1/cameras/{id}/hls/segment.ts", api_hls_segment },
	{ "GET", "/api/v1/search", api_search },
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
	enum MHD_Result ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Finds the route and runs it; unknown paths 404, other methods 405. */
static void web_dispatch(struct web *w, const struct web_request *req, const char *method,
                         const char *url, struct web_reply *rep)
{
	char arg[WEB_MAX_ARG];
	bool path_known = false;
	for (size_t i = 0; i < sizeof web_routes / sizeof web_routes[0]; i++) {
		const struct web_route *rt = &web_routes[i];
		if (!web_match(rt->pattern, url, arg, sizeof arg))
			continue;
		path_known = true;
		if (strcmp(rt->method, method) &&
		    !(strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0))
			continue;
		if (req->query_status) {
			api_query_error(rep, &req->query_error);
			return;
		}
		int err = rt->handler(w, req, strchr(rt->pattern, '{') ? arg : NULL, rep);
		if (err) {
			nvr_log("error", "web", "event=handler_failed path=%s error=\"%s\"",
			        rt->pattern, strerror(-err));
			api_error(rep, 500, NULL, "internal error");
		}
		return;
	}
	if (path_known)
		api_error(rep, 405, NULL, "method not allowed: use GET");
	else
		api_error(rep, 404, NULL, "no such endpoint");
}

static enum MHD_Result web_access(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size,
                                  void **req_cls)
{
	(void)version;
	(void)upload_data;
	struct web *w = cls;
	struct web_request *req = *req_cls;
	if (*upload_size) {
		*upload_size = 0;     /* bodies are not read by any endpoint */
		return MHD_YES;
	}
	struct web_reply rep = { .status = 200, .body = NULL, .response = NULL };
	if (!req) {
		api_error(&rep, 500, NULL, "out of memory");
	} else {
		req->range = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
		req->if_range = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
		                                            MHD_HTTP_HEADER_IF_RANGE);
		req->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
		web_dispatch(w, req, method, url, &rep);
	}
	enum MHD_Result ret;
	if (rep.response) {
		ret = MHD_queue_response(con, rep.status, rep.response);
		MHD_destroy_response(rep.response);
	} else {
		ret = web_send(con, &rep);
	}
	json_decref(rep.body);
	return ret;
}

/* Called with the raw URI before the access handler: parses the query. */
static void *web_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
	(void)cls;
	(void)con;
	struct web_request *req = malloc(sizeof *req);
	if (!req)
		return NULL;
	const char *qs = strchr(uri, '?');
	req->query.count = 0;
	req->query_status = 0;
	req->range = req->if_range = NULL;
	req->head = false;
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
	free(*req_cls);
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

/* libmicrohttpd logs why it could not start; errno usually says it too. */
static int web_listen(struct web *w, unsigned flags, const struct sockaddr *sa)
{
	errno = 0;
	w->daemon = MHD_start_daemon(
	        flags, w->cfg.port, NULL, NULL, web_access, w,
	        MHD_OPTION_EXTERNAL_LOGGER, web_mhd_log, w,
	        MHD_OPTION_SOCK_ADDR, sa,
	        MHD_OPTION_THREAD_POOL_SIZE, w->cfg.threads,
	        MHD_OPTION_CONNECTION_LIMIT, w->cfg.max_connections,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, w->cfg.connection_memory,
	        MHD_OPTION_CONNECTION_TIMEOUT, w->cfg.connection_timeout_s,
	        MHD_OPTION_URI_LOG_CALLBACK, web_uri, w,
	        MHD_OPTION_NOTIFY_COMPLETED, web_completed, w,
	        MHD_OPTION_END);
	int err = errno;
	return w->daemon ? 0 : err > 0 ? -err : -EIO;
}

int web_start(const struct web_config *cfg, struct web_ctx *ctx, struct web **out)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(cfg->port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(cfg->port) };
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
	const struct sockaddr *sa = (const struct sockaddr *)&a4;
	if (inet_pton(AF_INET6, w->cfg.listen_addr, &a6.sin6_addr) == 1) {
		sa = (const struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else if (inet_pton(AF_INET, w->cfg.listen_addr, &a4.sin_addr) != 1) {
		goto fail;
	}
	err = -pthread_rwlock_init(&w->snap.lock, NULL);
	if (err)
		goto fail;
	/* Load the snapshot now, so that the first listing is not the slow one. */
	err = api_snapshot_acquire(w);
	if (!err) {
		api_snapshot_release(w);
		err = web_listen(w, flags, sa);
	}
	if (err) {
		api_snapshot_free(&w->snap);
		pthread_rwlock_destroy(&w->snap.lock);
		goto fail;
	}
	*out = w;
	return 0;
fail:
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
	MHD_stop_daemon(w->daemon);
	api_snapshot_free(&w->snap);
	pthread_rwlock_destroy(&w->snap.lock);
	free(w);
}
