/*
 * static.c - the web UI's files: GET (and HEAD) of "/" and "/ui/..." served
 * from one directory, without credentials (the page logs in through the
 * API itself).
 *
 * The directory is resolved once with realpath() when the server starts
 * (web_static_init). A request path is refused (404) unless it is made of
 * plain segments (no "..", no ".", no empty segment, no backslash, no NUL
 * after percent-decoding, which libmicrohttpd has done already); the file it
 * names is resolved with realpath() again and must still lie under the root
 * (a symbolic link pointing out of it is refused too) and be a regular
 * file. "/" and "/ui/" answer index.html.
 *
 * Answers carry the Content-Type of the file's extension, an ETag made of
 * the file's size and modification time, and "Cache-Control: no-cache": a
 * browser keeps the files and asks again with If-None-Match, which is
 * answered 304 without a body. The file is sent from its descriptor
 * (libmicrohttpd's sendfile path).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "log.h"

#define STATIC_PREFIX "/ui/"
#define STATIC_INDEX "index.html"

struct static_type {
	const char *ext;
	const char *type;
};

static const struct static_type static_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".map", "application/json" },
	{ ".woff2", "font/woff2" },
};

int web_static_init(struct web *w, const char *dir)
{
	w->static_root[0] = '\0';
	if (!dir || !dir[0])
		return 0;
	if (!realpath(dir, w->static_root)) {
		int err = -errno;
		w->static_root[0] = '\0';
		nvr_log("warn", "web", "event=static_dir_missing dir=\"%s\" error=\"%s\"", dir,
		        strerror(-err));
		return err;
	}
	nvr_log("info", "web", "event=static_dir dir=\"%s\"", w->static_root);
	return 0;
}

bool web_static_path(const char *url)
{
	return !strcmp(url, "/") || !strncmp(url, STATIC_PREFIX, strlen(STATIC_PREFIX));
}

/* The Content-Type of a file name, by its extension. */
static const char *static_type_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof static_types / sizeof static_types[0]; i++)
		if (!strcasecmp(dot, static_types[i].ext))
			return static_types[i].type;
	return "application/octet-stream";
}

/* True when every segment of rel is a plain name. */
static bool static_rel_ok(const char *rel)
{
	if (strchr(rel, '\\') || strlen(rel) >= PATH_MAX / 2)
		return false;
	while (*rel) {
		size_t n = strcspn(rel, "/");
		if (n == 0 || (n == 1 && rel[0] == '.') || (n == 2 && !strncmp(rel, "..", 2)))
			return false;
		rel += n;
		if (*rel == '/' && *++rel == '\0')
			return false;
	}
	return true;
}

/* The file's real path under the root into out: 0, or -ENOENT. */
static int static_resolve(const struct web *w, const char *url, char *out)
{
	const char *rel = STATIC_INDEX;
	if (strcmp(url, "/") && strcmp(url, STATIC_PREFIX))
		rel = url + strlen(STATIC_PREFIX);
	if (!static_rel_ok(rel))
		return -ENOENT;
	char joined[PATH_MAX];
	if (snprintf(joined, sizeof joined, "%s/%s", w->static_root, rel) >= (int)sizeof joined)
		return -ENOENT;
	if (!realpath(joined, out))
		return -ENOENT;
	size_t rl = strlen(w->static_root);
	if (strncmp(out, w->static_root, rl) || out[rl] != '/')
		return -ENOENT;
	return 0;
}

/* The reply for an open file: 304 when the ETag matches, else the file. */
static int static_respond(struct MHD_Connection *con, int fd, const struct stat *st,
                          const char *path, struct web_reply *rep)
{
	char etag[64];
	snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "-%lx\"", (uint64_t)st->st_size,
	         (uint64_t)st->st_mtim.tv_sec, (unsigned long)st->st_mtim.tv_nsec);
	const char *inm = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	                                              MHD_HTTP_HEADER_IF_NONE_MATCH);
	struct MHD_Response *r;
	rep->status = 200;
	if (inm && !strcmp(inm, etag)) {
		close(fd);
		rep->status = 304;
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {                        /* HEAD too: libmicrohttpd sends no body */
		r = MHD_create_response_from_fd((uint64_t)st->st_size, fd);
		if (!r)
			close(fd);
	}
	if (!r)
		return -ENOMEM;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, static_type_of(path));
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	rep->response = r;
	return 0;
}

int web_static_serve(struct web *w, struct MHD_Connection *con, const char *method,
                     const char *url, struct web_reply *rep)
{
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return api_error(rep, 405, NULL, "method not allowed on this path");
	if (!w->static_root[0])
		return api_error(rep, 404, NULL, "the web UI is not installed (http.static_dir)");
	char path[PATH_MAX];
	struct stat st;
	int fd = -1;
	if (static_resolve(w, url, path) || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		nvr_log("info", "web", "event=static_refused path=\"%.200s\"", url);
		return api_error(rep, 404, NULL, "no such file");
	}
	int err = static_respond(con, fd, &st, path, rep);
	if (err)
		nvr_log("error", "web", "event=static_failed path=\"%.200s\" error=\"%s\"", url,
		        strerror(-err));
	return err;
}
