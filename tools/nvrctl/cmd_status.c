/*
 * cmd_status.c - `nvrctl status`: what a running nvrd is doing, as tables
 * for the operator on duty: the health verdict and its reasons, the
 * cameras (repeat failures first, then other cameras in trouble; --all
 * lists every one), the volumes, and the retention classes when the
 * daemon's health answer has them.
 *
 * It reads the daemon's HTTP API (GET /api/v1/health and the paged
 * /api/v1/cameras?live=1) with libcurl and parses the answers with
 * jansson, so it works from any machine that can reach the API, with
 * authentication off, Basic (--user with --password-file) or a bearer
 * token (--token-file). Secrets are read from files, never from the
 * command line, are never printed, and are wiped after use.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvrctl.h"

#define ST_PAGE 1000
#define ST_SECRET_MAX 512

struct st_opts {
	const char *url;
	const char *user;
	char password[ST_SECRET_MAX];
	char token[ST_SECRET_MAX];
	bool all;
};

struct st_buf {
	char *data;
	size_t len;
};

/* ---- HTTP ---------------------------------------------------------------- */

static size_t st_write(char *p, size_t size, size_t n, void *user)
{
	struct st_buf *b = user;
	size_t add = size * n;
	char *d = realloc(b->data, b->len + add + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, p, add);
	b->len += add;
	d[b->len] = '\0';
	b->data = d;
	return add;
}

static void st_auth(CURL *c, const struct st_opts *o)
{
	if (o->token[0]) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, o->token);
	} else if (o->user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, o->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, o->password);
	}
}

/* The error message of an API error answer, or "". */
static const char *st_api_message(json_t *j)
{
	const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	return m ? m : "";
}

/* GETs url+path and parses the JSON answer into *out; `ok2` is a second
 * status accepted besides 200 (503 for health). 0 or -1 after a message. */
static int st_get(CURL *c, const struct st_opts *o, const char *path, long ok2, json_t **out)
{
	char url[2048];
	struct st_buf b = { NULL, 0 };
	snprintf(url, sizeof url, "%s%s", o->url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, st_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	json_error_t je;
	json_t *j = rc == CURLE_OK && b.data ? json_loads(b.data, 0, &je) : NULL;
	free(b.data);
	if (rc != CURLE_OK) {
		fprintf(stderr, "nvrctl status: GET %s: %s\n", url, curl_easy_strerror(rc));
		return -1;
	}
	if ((code != 200 && code != ok2) || !j) {
		fprintf(stderr, "nvrctl status: GET %s: HTTP %ld%s%s\n", url, code,
		        j ? ": " : " (not JSON)", j ? st_api_message(j) : "");
		json_decref(j);
		return -1;
	}
	*out = j;
	return 0;
}

/* ---- options ------------------------------------------------------------- */

static void st_usage(FILE *f)
{
	fprintf(f,
	        "usage: nvrctl status [--url URL] [--user U --password-file F | --token-file F] [--all]\n"
	        "\n"
	        "Prints the health, the cameras in trouble (repeat failures first), the\n"
	        "volumes and the retention classes of a running nvrd, read from its HTTP API.\n"
	        "\n"
	        "  --url URL             the API [http://127.0.0.1:8080]\n"
	        "  --user U              Basic authentication as U, password from --password-file\n"
	        "  --password-file F     the password: first line of F\n"
	        "  --token-file F        bearer token: first line of F\n"
	        "  --all                 every camera, not only those in trouble\n");
}

/* The first line of a file (without its line end) into out. */
static int st_read_secret(const char *path, char *out, size_t outsz)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "nvrctl status: %s: %s\n", path, strerror(errno));
		return -1;
	}
	bool ok = fgets(out, (int)outsz, f) != NULL;
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	if (!ok || !out[0]) {
		fprintf(stderr, "nvrctl status: %s: empty\n", path);
		return -1;
	}
	return 0;
}

/* 0, 1 for --help, or 2 after a message. */
static int st_parse(int argc, char **argv, struct st_opts *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "user", required_argument, NULL, 'U' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "token-file", required_argument, NULL, 't' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pwfile = NULL, *tokfile = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 'U': o->user = optarg; break;
		case 'p': pwfile = optarg; break;
		case 't': tokfile = optarg; break;
		case 'a': o->all = true; break;
		case 'h': return 1;
		default:
			fprintf(stderr, "nvrctl status: unknown or incomplete option '%s'\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc || (!o->user != !pwfile) || (tokfile && o->user)) {
		fprintf(stderr, "nvrctl status: --user needs --password-file (and excludes"
		        " --token-file); no other arguments\n");
		return 2;
	}
	if ((pwfile && st_read_secret(pwfile, o->password, sizeof o->password)) ||
	    (tokfile && st_read_secret(tokfile, o->token, sizeof o->token)))
		return 2;
	return 0;
}

/* ---- printing ------------------------------------------------------------ */

static json_int_t st_int(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static double st_num(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *st_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static void st_print_health(json_t *h, const char *url)
{
	printf("nvrd at %s: %s\n", url, st_str(h, "status"));
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(h, "reasons"), i, r)
		printf("  %-16s %s\n", st_str(r, "code"), st_str(r, "detail"));
}

/* Order: repeat failures (most failures first), then cameras in trouble,
 * then the others; by id within each. */
static int st_rank(json_t *c)
{
	json_t *live = json_object_get(c, "live");
	if (json_is_true(json_object_get(live, "repeat_failure")))
		return 0;
	if (strcmp(st_str(c, "status"), "streaming") || st_int(live, "failures_24h") > 0)
		return 1;
	return 2;
}

static int st_cmp_cameras(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int rx = st_rank(x), ry = st_rank(y);
	if (rx != ry)
		return rx - ry;
	json_int_t fx = st_int(json_object_get(x, "live"), "failures_24h");
	json_int_t fy = st_int(json_object_get(y, "live"), "failures_24h");
	if (fx != fy)
		return fx > fy ? -1 : 1;
	return st_int(x, "id") < st_int(y, "id") ? -1 : 1;
}

static void st_print_camera(json_t *c)
{
	json_t *live = json_object_get(c, "live");
	printf("%7" JSON_INTEGER_FORMAT "  %-34.34s %-14s %8.1f %5.1f %7" JSON_INTEGER_FORMAT
	       " %7" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT "%s\n",
	       st_int(c, "id"), st_str(c, "name"), st_str(c, "status"), st_num(live, "bitrate_kbps"),
	       st_num(live, "fps"), st_int(live, "frames_lost"), st_int(live, "reconnects"),
	       st_int(live, "failures_24h"), st_rank(c) == 0 ? "  REPEAT FAILURE" : "");
}

static void st_print_cameras(json_t *h, json_t *cams, bool all)
{
	size_t n = json_array_size(cams), shown = 0;
	json_t **v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(cams, i);
	qsort(v, n, sizeof *v, st_cmp_cameras);
	printf("\nCAMERAS: %" JSON_INTEGER_FORMAT " recorded, %" JSON_INTEGER_FORMAT " streaming, %"
	       JSON_INTEGER_FORMAT " in backoff, %" JSON_INTEGER_FORMAT " repeat failures; %zu in the"
	       " registry\n", st_int(h, "cameras"), st_int(h, "streaming"), st_int(h, "backoff"),
	       st_int(h, "repeat_failures"), n);
	printf("%7s  %-34s %-14s %8s %5s %7s %7s %8s\n", "ID", "NAME", "STATE", "KBPS", "FPS",
	       "LOST", "RECONN", "FAIL24H");
	for (size_t i = 0; i < n; i++) {
		if (!all && st_rank(v[i]) == 2)
			continue;
		st_print_camera(v[i]);
		shown++;
	}
	if (!all)
		printf("  (%zu cameras in trouble shown, %zu fine; --all lists every camera)\n", shown,
		       n - shown);
	free(v);
}

/* Seconds since an RFC 3339 UTC time ("...Z"), or -1. */
static long long st_age_s(const char *t)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = t ? strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!end)
		return -1;
	return (long long)(time(NULL) - timegm(&tm));
}

static void st_print_volumes(json_t *h)
{
	printf("\nVOLUMES\n%-32s %-8s %15s %16s %7s %10s\n", "PATH", "STATE", "USED/FREE SEGS",
	       "BYTES WRITTEN", "ERRORS", "OLDEST");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(h, "volumes"), i, v) {
		char segs[40], age[24] = "-";
		json_int_t total = st_int(v, "segments_total"), free_ = st_int(v, "segments_free");
		snprintf(segs, sizeof segs, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
		         total - free_, free_);
		long long a = st_age_s(json_string_value(json_object_get(v, "oldest")));
		if (a >= 0)
			snprintf(age, sizeof age, "%lldh%02lldm", a / 3600, a / 60 % 60);
		printf("%-32.32s %-8s %15s %16" JSON_INTEGER_FORMAT " %7" JSON_INTEGER_FORMAT " %10s\n",
		       st_str(v, "path"), st_str(v, "state"), segs, st_int(v, "bytes_written"),
		       st_int(v, "write_errors"), age);
		if (json_object_get(v, "last_error"))
			printf("    last error: %s\n", st_str(v, "last_error"));
	}
}

/* Retention classes from GET /api/v1/retention (absent when the user's role
 * may not read it): every scalar field of each, as key=value. */
static void st_print_classes(json_t *ret)
{
	json_t *classes = json_object_get(ret, "classes");
	if (!json_is_array(classes) || !json_array_size(classes))
		return;
	printf("\nRETENTION CLASSES\n");
	size_t i;
	json_t *c;
	json_array_foreach(classes, i, c) {
		const char *k;
		json_t *v;
		printf("  %s:", st_str(c, "name"));
		json_object_foreach(c, k, v) {
			if (!strcmp(k, "name") || json_is_array(v) || json_is_object(v))
				continue;
			char *txt = json_dumps(v, JSON_ENCODE_ANY);
			printf(" %s=%s", k, txt ? txt : "?");
			free(txt);
		}
		printf("\n");
	}
}

/* Every camera with its live status, page by page. */
static int st_cameras(CURL *c, const struct st_opts *o, json_t **out)
{
	json_t *all = json_array();
	for (json_int_t off = 0, total = 1; all && off < total; off += ST_PAGE) {
		char path[96];
		json_t *page;
		snprintf(path, sizeof path, "/api/v1/cameras?live=1&limit=%d&offset=%" JSON_INTEGER_FORMAT,
		         ST_PAGE, off);
		if (st_get(c, o, path, 0, &page)) {
			json_decref(all);
			return -1;
		}
		total = st_int(page, "total");
		json_array_extend(all, json_object_get(page, "cameras"));
		json_decref(page);
	}
	*out = all;
	return all ? 0 : -1;
}

int cmd_status(int argc, char **argv)
{
	struct st_opts o = { .url = "http://127.0.0.1:8080" };
	int rc = st_parse(argc, argv, &o);
	if (rc) {
		st_usage(rc == 1 ? stdout : stderr);
		return rc == 1 ? 0 : 2;
	}
	json_t *health = NULL, *cams = NULL, *ret = NULL;
	CURL *c = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? curl_easy_init() : NULL;
	rc = 1;
	if (!c) {
		fprintf(stderr, "nvrctl status: libcurl did not start\n");
		goto fail;
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	st_auth(c, &o);
	if (st_get(c, &o, "/api/v1/health", 503, &health) || st_cameras(c, &o, &cams))
		goto fail;
	st_print_health(health, o.url);
	st_print_cameras(health, cams, o.all);
	st_print_volumes(health);
	if (st_get(c, &o, "/api/v1/retention?limit=1", 0, &ret) == 0)
		st_print_classes(ret);
	rc = 0;
fail:
	explicit_bzero(o.password, sizeof o.password);
	explicit_bzero(o.token, sizeof o.token);
	json_decref(health);
	json_decref(cams);
	json_decref(ret);
	if (c)
		curl_easy_cleanup(c);
	curl_global_cleanup();
	return rc;
}
