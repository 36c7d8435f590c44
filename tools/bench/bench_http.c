/*
 * bench_http.c - `nvr-bench http`: what the investigator API costs and
 * whether serving it ever costs the recorder a frame, in one run.
 *
 * Steps, all with the real programs and over real HTTP (libcurl):
 *   1. nvr-camsim serves --cameras cameras; the registry holds --registry
 *      cameras around Wuhai (those beyond --cameras are disabled, so that
 *      search filters the size of a city); nvrd records the first ones with
 *      its API on a local port, authenticated with a bearer token made by
 *      `nvrctl tokens create`;
 *   2. after --record seconds of recording:
 *      - search: --searches sequential requests on one keep-alive
 *        connection for the cameras within 3 km of the centre that have
 *        footage in the last minute; latency per request, p50 and p99;
 *        then one scrape of /metrics (a line per registered camera and
 *        family) and its time (metrics_ms);
 *      - playback: --playbacks concurrent clients, each fetching MP4s of
 *        10 s of a recorded camera one after the other for --play-seconds;
 *        the time to first byte of each answer (p50, p99), and the frames
 *        the recorder lost or dropped meanwhile (from /metrics, before and
 *        after);
 *      - export: one export job of (up to 16 of) the recorded cameras over the last
 *        --export-seconds; its bytes / elapsed time against an O_DIRECT
 *        sequential read of as many bytes from the same volume's segment
 *        files, read right after it (export_ratio). Beside it, the ceiling
 *        that this disk sets: an O_DIRECT write of as many bytes to a new
 *        file next to the exports, made durable with fdatasync as an export
 *        must be (raw_write_mbps; write_ceiling = raw write / raw read, the
 *        best export_ratio any exporter that keeps its files could reach).
 *   3. SIGTERM; nvrd's final status line gives the frames lost over the
 *      whole run.
 * The last line holds every figure as key=value pairs.
 */
#include "bench.h"
#include "bench_proc.h"
#include "bench_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HB_SIM_PORT 19554
#define HB_CENTER_LAT 39.6736
#define HB_CENTER_LON 106.8253
#define HB_PLAY_WINDOW_MS 10000
#define HB_RAW_BLOCK (4u << 20)
#define HB_EXPORT_CAMERAS 16

struct hb_opts {
	uint64_t cameras, registry, searches, playbacks, record_s, play_s, export_s;
	uint64_t bitrate_kbps, port, volume_size;
	const char *dir;
};

struct hb_ctx {
	const struct hb_opts *o;
	char base[64];                  /* http://127.0.0.1:PORT */
	char auth[160];                 /* Authorization: Bearer ... */
	char data[PATH_MAX];
	pid_t nvrd, sim;
};

struct hb_result {
	double search_p50_ms, search_p99_ms;
	double ttfb_p50_ms, ttfb_p99_ms;
	uint64_t playbacks_done, playback_errors, playback_bytes;
	double lost_during_playback, lost_total;
	double export_mbps, raw_mbps, export_ratio;
	double raw_write_mbps, write_ceiling;  /* durable raw write; its ratio to the read */
	double export_vs_write;                /* export against that write */
	uint64_t export_bytes;
	uint64_t search_errors;
	double metrics_ms;
	uint64_t metrics_bytes;
};

/* ---- HTTP helpers ---------------------------------------------------------- */

struct hb_body {
	char *buf;
	size_t len, cap;
	bool keep;                      /* false: count the bytes only */
	uint64_t total;
};

static size_t hb_write(char *p, size_t sz, size_t n, void *user)
{
	struct hb_body *b = user;
	size_t len = sz * n;
	b->total += len;
	if (!b->keep)
		return len;
	if (b->len + len + 1 > b->cap) {
		size_t cap = (b->len + len + 1) * 2;
		char *nb = realloc(b->buf, cap);
		if (!nb)
			return 0;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return len;
}

static CURL *hb_easy(struct hb_ctx *c, struct curl_slist **hdrs, struct hb_body *body)
{
	CURL *e = curl_easy_init();
	if (!e)
		return NULL;
	if (!*hdrs)
		*hdrs = curl_slist_append(NULL, c->auth);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hb_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
	return e;
}

/* One request; the body is kept in `body`. Returns the HTTP status or a
 * negative errno. `post` non-NULL sends it as a JSON POST. */
static long hb_request(struct hb_ctx *c, const char *path, const char *post, struct hb_body *body)
{
	struct curl_slist *hdrs = NULL;
	body->len = 0;
	body->keep = true;
	CURL *e = hb_easy(c, &hdrs, body);
	if (!e || !hdrs) {
		curl_easy_cleanup(e);
		curl_slist_free_all(hdrs);
		return -ENOMEM;
	}
	char url[512];
	snprintf(url, sizeof url, "%s%s", c->base, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	if (post) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
	}
	long status = -EIO;
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	curl_slist_free_all(hdrs);
	return status;
}

/* Sum of every sample of the given metric names in /metrics, or -1. */
static double hb_metric_sum(struct hb_ctx *c, const char *const *names, int n)
{
	struct hb_body b = { 0 };
	double sum = -1;
	if (hb_request(c, "/metrics", NULL, &b) == 200 && b.buf) {
		sum = 0;
		for (char *line = strtok(b.buf, "\n"); line; line = strtok(NULL, "\n"))
			for (int i = 0; i < n; i++) {
				size_t l = strlen(names[i]);
				if (!strncmp(line, names[i], l) && (line[l] == '{' || line[l] == ' ')) {
					char *v = strrchr(line, ' ');
					sum += v ? strtod(v + 1, NULL) : 0;
				}
			}
	}
	free(b.buf);
	return sum;
}

static double hb_lost_frames(struct hb_ctx *c)
{
	static const char *const names[] = { "nvr_camera_lost_frames_total",
	                                     "nvr_camera_dropped_frames_total" };
	return hb_metric_sum(c, names, 2);
}

/* ---- setting up ------------------------------------------------------------ */

static int hb_write_csv(const struct hb_opts *o, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "id,name,main_url,latitude,longitude,tags,district,enabled\n");
	for (uint64_t k = 1; k <= o->registry; k++) {
		bool rec = k <= o->cameras;
		/* Recording cameras within ~1 km of the centre, the others over
		 * 40 x 40 km: a deterministic spread. */
		double span = rec ? 0.01 : 0.2;
		uint64_t h = bench_mix64(k);
		double lat = HB_CENTER_LAT + span * ((double)(h & 0xffff) / 65535.0 - 0.5) * 2;
		double lon = HB_CENTER_LON + span * ((double)((h >> 16) & 0xffff) / 65535.0 - 0.5) * 2;
		fprintf(f, "%" PRIu64 ",bench camera %" PRIu64 ",rtsp://127.0.0.1:%u/cam/%" PRIu64
		        ",%.6f,%.6f,street,Haibowan,%s\n", k, k, HB_SIM_PORT,
		        rec ? k : 1, lat, lon, rec ? "true" : "false");
	}
	return fclose(f) ? -errno : 0;
}

/* Formats the volume, imports the cameras, makes the user and its token. */
static int hb_prepare(struct hb_ctx *c)
{
	const struct hb_opts *o = c->o;
	char ctl[PATH_MAX + 16], fmt[PATH_MAX + 16], csv[PATH_MAX], vol[PATH_MAX + 8];
	char log[PATH_MAX], vsize[24];
	bench_bin_path(ctl, sizeof ctl, "nvrctl");
	bench_bin_path(fmt, sizeof fmt, "nvr-format");
	snprintf(csv, sizeof csv, "%s/cameras.csv", o->dir);
	snprintf(vol, sizeof vol, "%s/vol0", c->data);
	snprintf(log, sizeof log, "%s/prepare.log", o->dir);
	snprintf(vsize, sizeof vsize, "%" PRIu64, o->volume_size);
	bench_remove_tree(c->data);
	int err = bench_mkdir(c->data);
	if (!err)
		err = hb_write_csv(o, csv);
	char *format[] = { fmt, "--zero", "--size", vsize, vol, NULL };
	char *imp[] = { ctl, "cameras", "import", csv, "--data", c->data, NULL };
	if (!err)
		err = bench_run_cmd(format, log);
	if (!err)
		err = bench_run_cmd(imp, log);
	if (err)
		return err;
	/* The password goes through a pipe, never the command line. */
	char cmd[6 * PATH_MAX + 256];
	snprintf(cmd, sizeof cmd, "head -c 24 /dev/urandom | base64 | '%s' users add bench --role admin"
	         " --data '%s' >>'%s' 2>&1 && '%s' tokens create --user bench --label bench --data '%s'"
	         " 2>>'%s'", ctl, c->data, log, ctl, c->data, log);
	FILE *p = popen(cmd, "r");
	char token[128] = "";
	if (!p || !fgets(token, sizeof token, p)) {
		if (p)
			pclose(p);
		fprintf(stderr, "http: cannot make the bench user and token (see %s)\n", log);
		return -EIO;
	}
	pclose(p);
	token[strcspn(token, "\r\n")] = '\0';
	snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", token);
	return 0;
}

static int hb_start_nvrd(struct hb_ctx *c)
{
	const struct hb_opts *o = c->o;
	char bin[PATH_MAX + 16], port[16], log[PATH_MAX], conf[PATH_MAX];
	bench_bin_path(bin, sizeof bin, "nvrd");
	snprintf(port, sizeof port, "%" PRIu64, o->port);
	snprintf(log, sizeof log, "%s/nvrd.log", o->dir);
	snprintf(conf, sizeof conf, "%s/bench.conf", o->dir);
	/* Every client runs on this machine, so from one address: no rate limit. */
	FILE *f = fopen(conf, "w");
	if (!f || fputs("[limits]\nrequest_rate = 0\n", f) < 0 || fclose(f)) {
		fprintf(stderr, "http: cannot write %s\n", conf);
		return -EIO;
	}
	char *argv[] = { bin, "--config", conf, "--data", c->data, "--volumes", "1",
	                 "--simulate", "0", "--http-port", port, NULL };
	c->nvrd = bench_spawn(argv, NULL, log);
	if (c->nvrd < 0)
		return (int)c->nvrd;
	snprintf(c->base, sizeof c->base, "http://127.0.0.1:%" PRIu64, o->port);
	for (int i = 0; i < 600; i++) {
		struct hb_body b = { 0 };
		long st = hb_request(c, "/api/v1/health", NULL, &b);
		json_t *j = st == 200 && b.buf ? json_loads(b.buf, 0, NULL) : NULL;
		json_int_t streaming = json_integer_value(json_object_get(j, "streaming"));
		json_decref(j);
		free(b.buf);
		if (streaming >= (json_int_t)o->cameras)
			return 0;
		if (waitpid(c->nvrd, NULL, WNOHANG) == c->nvrd) {
			fprintf(stderr, "http: nvrd exited (see %s)\n", log);
			c->nvrd = -1;
			return -EIO;
		}
		bench_sleep_ns(100000000);
	}
	fprintf(stderr, "http: the cameras are not all streaming after 60 s (see %s)\n", log);
	return -ETIMEDOUT;
}

/* ---- the measurements ------------------------------------------------------- */

static int64_t hb_now_ms(void)
{
	return bench_wall_us() / 1000;
}

static int hb_search(struct hb_ctx *c, struct hb_result *r)
{
	const struct hb_opts *o = c->o;
	double *lat = calloc(o->searches ? o->searches : 1, sizeof *lat);
	struct curl_slist *hdrs = NULL;
	struct hb_body body = { 0 };
	CURL *e = lat ? hb_easy(c, &hdrs, &body) : NULL;
	if (!e || !hdrs) {
		free(lat);
		curl_easy_cleanup(e);
		curl_slist_free_all(hdrs);
		return -ENOMEM;
	}
	size_t n = 0;
	for (uint64_t i = 0; i < o->searches; i++) {
		int64_t now = hb_now_ms();
		char url[512];
		snprintf(url, sizeof url, "%s/api/v1/search?near=%.4f,%.4f&radius=3000&from=%" PRId64
		         "&to=%" PRId64, c->base, HB_CENTER_LAT, HB_CENTER_LON, now - 60000, now);
		curl_easy_setopt(e, CURLOPT_URL, url);
		int64_t t0 = bench_now_ns();
		long st = 0;
		if (curl_easy_perform(e) == CURLE_OK)
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
		if (st != 200) {
			r->search_errors++;
			continue;
		}
		lat[n++] = (double)(bench_now_ns() - t0) / 1e6;
	}
	r->search_p50_ms = bench_percentile(lat, n, 50);
	r->search_p99_ms = bench_percentile(lat, n, 99);
	curl_easy_cleanup(e);
	curl_slist_free_all(hdrs);
	free(lat);
	return n ? 0 : -EIO;
}

struct hb_player {
	CURL *e;
	struct hb_body body;
	uint64_t camera;
};

static void hb_player_url(struct hb_ctx *c, struct hb_player *p, uint64_t round)
{
	const struct hb_opts *o = c->o;
	/* A 10 s window ending 2 to 12 s ago (recorded, flushed), moving. */
	int64_t end = hb_now_ms() - 2000 - (int64_t)(round % 10) * 1000;
	char url[512];
	snprintf(url, sizeof url, "%s/api/v1/cameras/%" PRIu64 "/video.mp4?from=%" PRId64 "&to=%" PRId64,
	         c->base, p->camera, end - HB_PLAY_WINDOW_MS, end);
	curl_easy_setopt(p->e, CURLOPT_URL, url);
	p->body.total = 0;
	(void)o;
}

/* Collects the finished transfers; restarts each until the deadline. */
static void hb_play_done(struct hb_ctx *c, CURLM *m, struct hb_player *pl, double *ttfb,
                         size_t *n, size_t cap, int64_t deadline, struct hb_result *r,
                         uint64_t *round)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct hb_player *p = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
		long st = 0;
		curl_off_t t = 0;
		curl_easy_getinfo(p->e, CURLINFO_RESPONSE_CODE, &st);
		curl_easy_getinfo(p->e, CURLINFO_STARTTRANSFER_TIME_T, &t);
		if (msg->data.result == CURLE_OK && st == 200 && p->body.total > 0) {
			if (*n < cap)
				ttfb[(*n)++] = (double)t / 1000.0;
			r->playbacks_done++;
			r->playback_bytes += p->body.total;
		} else {
			r->playback_errors++;
		}
		curl_multi_remove_handle(m, p->e);
		if (bench_now_ns() < deadline) {
			hb_player_url(c, p, (*round)++);
			curl_multi_add_handle(m, p->e);
		}
	}
	(void)pl;
}

static int hb_playback(struct hb_ctx *c, struct hb_result *r)
{
	const struct hb_opts *o = c->o;
	size_t cap = 1u << 20;
	double *ttfb = malloc(cap * sizeof *ttfb);
	struct hb_player *pl = calloc(o->playbacks, sizeof *pl);
	struct curl_slist *hdrs = NULL;
	CURLM *m = curl_multi_init();
	int err = -ENOMEM;
	if (!ttfb || !pl || !m)
		goto out;
	uint64_t round = 0;
	for (uint64_t i = 0; i < o->playbacks; i++) {
		pl[i].camera = 1 + i % o->cameras;
		pl[i].e = hb_easy(c, &hdrs, &pl[i].body);
		if (!pl[i].e || !hdrs)
			goto out;
		curl_easy_setopt(pl[i].e, CURLOPT_PRIVATE, &pl[i]);
		hb_player_url(c, &pl[i], round++);
		curl_multi_add_handle(m, pl[i].e);
	}
	double lost0 = hb_lost_frames(c);
	int64_t deadline = bench_now_ns() + (int64_t)o->play_s * 1000000000LL;
	size_t n = 0;
	int running = 1;
	while (running) {
		curl_multi_perform(m, &running);
		hb_play_done(c, m, pl, ttfb, &n, cap, deadline, r, &round);
		curl_multi_perform(m, &running);
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	double lost1 = hb_lost_frames(c);
	r->lost_during_playback = lost0 < 0 || lost1 < 0 ? -1 : lost1 - lost0;
	r->ttfb_p50_ms = bench_percentile(ttfb, n, 50);
	r->ttfb_p99_ms = bench_percentile(ttfb, n, 99);
	err = n ? 0 : -EIO;
out:
	for (uint64_t i = 0; pl && i < o->playbacks; i++) {
		if (pl[i].e) {
			curl_multi_remove_handle(m, pl[i].e);
			curl_easy_cleanup(pl[i].e);
		}
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	free(pl);
	free(ttfb);
	return err;
}

/* Reads `bytes` from the volume's segment files with O_DIRECT, 4 MiB at a
 * time, from the first segment on; returns MB/s or a negative errno. */
static double hb_raw_read(struct hb_ctx *c, uint64_t bytes)
{
	void *buf;
	if (posix_memalign(&buf, 4096, HB_RAW_BLOCK))
		return -ENOMEM;
	uint64_t done = 0;
	int64_t t0 = bench_now_ns();
	for (int seg = 0; done < bytes; seg++) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof path, "%s/vol0/seg-%06d", c->data, seg);
		int fd = open(path, O_RDONLY | O_DIRECT);
		if (fd < 0)
			break;
		ssize_t got;
		uint64_t off = 0;
		while (done < bytes && (got = pread(fd, buf, HB_RAW_BLOCK, (off_t)off)) > 0) {
			off += (uint64_t)got;
			done += (uint64_t)got;
		}
		close(fd);
	}
	double s = (double)(bench_now_ns() - t0) / 1e9;
	free(buf);
	return done >= bytes && s > 0 ? (double)done / 1e6 / s : -EIO;
}

/* Writes `bytes` (not zeros: a virtual disk may skip those) to a new file in
 * the data directory with O_DIRECT, 4 MiB at a time, then fdatasync, as an
 * export's files are written; removes it; returns MB/s or a negative errno. */
static double hb_raw_write(struct hb_ctx *c, uint64_t bytes)
{
	uint8_t *buf;
	if (posix_memalign((void **)&buf, 4096, HB_RAW_BLOCK))
		return -ENOMEM;
	for (size_t i = 0; i < HB_RAW_BLOCK; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/raw-write.bench", c->data);
	int64_t t0 = bench_now_ns();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
	double err = fd < 0 ? -errno : 0;
	uint64_t done = 0;
	while (!err && done < bytes) {
		ssize_t n = pwrite(fd, buf, HB_RAW_BLOCK, (off_t)done);
		err = n <= 0 ? (n < 0 ? -errno : -EIO) : 0;
		done += n > 0 ? (uint64_t)n : 0;
	}
	if (!err && fdatasync(fd))
		err = -errno;
	double s = (double)(bench_now_ns() - t0) / 1e9;
	if (fd >= 0)
		close(fd);
	unlink(path);
	free(buf);
	return err ? err : s > 0 ? (double)done / 1e6 / s : -EIO;
}

static int hb_export(struct hb_ctx *c, struct hb_result *r)
{
	const struct hb_opts *o = c->o;
	int64_t to = hb_now_ms() - 2000, from = to - (int64_t)o->export_s * 1000;
	json_t *cams = json_array();
	/* One job takes at most HB_EXPORT_CAMERAS cameras (the API's limit). */
	for (uint64_t k = 1; cams && k <= o->cameras && k <= HB_EXPORT_CAMERAS; k++)
		json_array_append_new(cams, json_integer((json_int_t)k));
	json_t *req = json_pack("{s:o, s:I, s:I, s:s, s:s}", "cameras", cams, "from", (json_int_t)from,
	                        "to", (json_int_t)to, "case", "BENCH-HTTP", "reason", "benchmark");
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	struct hb_body b = { 0 };
	long st = body ? hb_request(c, "/api/v1/exports", body, &b) : -ENOMEM;
	free(body);
	json_t *j = st == 202 && b.buf ? json_loads(b.buf, 0, NULL) : NULL;
	json_int_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	if (!id) {
		fprintf(stderr, "http: export not accepted (%ld): %s\n", st, b.buf ? b.buf : "");
		free(b.buf);
		return -EIO;
	}
	char path[64];
	snprintf(path, sizeof path, "/api/v1/exports/%lld", (long long)id);
	int err = -ETIMEDOUT;
	for (int i = 0; i < 6000; i++) {
		st = hb_request(c, path, NULL, &b);
		j = st == 200 && b.buf ? json_loads(b.buf, 0, NULL) : NULL;
		const char *state = json_string_value(json_object_get(j, "status"));
		if (state && !strcmp(state, "done")) {
			r->export_bytes = (uint64_t)json_integer_value(json_object_get(j, "bytes"));
			double ms = (double)json_integer_value(json_object_get(j, "elapsed_ms"));
			r->export_mbps = ms > 0 ? (double)r->export_bytes / 1e3 / ms : 0;
			err = 0;
		} else if (state && strcmp(state, "queued") && strcmp(state, "running")) {
			fprintf(stderr, "http: export ended %s: %s\n", state, b.buf);
			err = -EIO;
		}
		json_decref(j);
		if (err != -ETIMEDOUT)
			break;
		bench_sleep_ns(50000000);
	}
	free(b.buf);
	if (err)
		return err;
	r->raw_mbps = hb_raw_read(c, r->export_bytes);
	r->export_ratio = r->raw_mbps > 0 ? r->export_mbps / r->raw_mbps : 0;
	r->raw_write_mbps = hb_raw_write(c, r->export_bytes);
	r->write_ceiling = r->raw_mbps > 0 && r->raw_write_mbps > 0 ? r->raw_write_mbps / r->raw_mbps
	                                                            : 0;
	r->export_vs_write = r->raw_write_mbps > 0 ? r->export_mbps / r->raw_write_mbps : 0;
	return r->raw_mbps > 0 && r->raw_write_mbps > 0 ? 0 : -EIO;
}

/* ---- the run ------------------------------------------------------------------- */

static void hb_usage(void)
{
	fprintf(stderr,
	        "usage: nvr-bench http [--cameras N] [--registry R] [--searches S] [--playbacks P]\n"
	        "                      [--record S] [--play-seconds S] [--export-seconds S]\n"
	        "                      [--bitrate-kbps B] [--port P] [--volume-size BYTES] [--dir DIR]\n"
	        "Records N (20) simulated cameras with nvrd among R (30000) registered ones,\n"
	        "then measures search latency, playback time to first byte with P (100)\n"
	        "concurrent clients and the frames lost meanwhile, and export throughput\n"
	        "against a raw O_DIRECT read of as many bytes. DIR: /var/tmp/nvr-bench-http.\n");
}

static int hb_parse(int argc, char **argv, struct hb_opts *o)
{
	*o = (struct hb_opts){ .cameras = 20, .registry = 30000, .searches = 2000, .playbacks = 100,
	                       .record_s = 30, .play_s = 20, .export_s = 20, .bitrate_kbps = 2000,
	                       .port = 18480, .volume_size = 8ull << 30,
	                       .dir = "/var/tmp/nvr-bench-http" };
	struct bench_opt opts[] = {
		{ "cameras", BENCH_OPT_U64, &o->cameras, false, false },
		{ "registry", BENCH_OPT_U64, &o->registry, false, false },
		{ "searches", BENCH_OPT_U64, &o->searches, false, false },
		{ "playbacks", BENCH_OPT_U64, &o->playbacks, false, false },
		{ "record", BENCH_OPT_U64, &o->record_s, false, false },
		{ "play-seconds", BENCH_OPT_U64, &o->play_s, false, false },
		{ "export-seconds", BENCH_OPT_U64, &o->export_s, false, false },
		{ "bitrate-kbps", BENCH_OPT_U64, &o->bitrate_kbps, false, false },
		{ "port", BENCH_OPT_U64, &o->port, false, false },
		{ "volume-size", BENCH_OPT_U64, &o->volume_size, false, false },
		{ "dir", BENCH_OPT_STR, &o->dir, false, false },
	};
	int err = bench_parse_opts("http", argc - 1, argv + 1, opts, sizeof opts / sizeof opts[0]);
	if (err) {
		hb_usage();
		return err;
	}
	if (!o->cameras || o->registry < o->cameras || !o->playbacks || !o->port || o->port > 65535 ||
	    o->export_s + 2 > o->record_s) {
		fprintf(stderr, "http: need 0 < cameras <= registry, playbacks > 0, a port, and"
		        " export-seconds + 2 <= record\n");
		return -EINVAL;
	}
	return 0;
}

static void hb_print(const struct hb_opts *o, const struct hb_result *r)
{
	printf("search over %" PRIu64 " cameras: p50 %.2f ms, p99 %.2f ms (%" PRIu64 " errors)\n",
	       o->registry, r->search_p50_ms, r->search_p99_ms, r->search_errors);
	printf("/metrics over %" PRIu64 " cameras: %.1f ms, %" PRIu64 " bytes\n", o->registry,
	       r->metrics_ms, r->metrics_bytes);
	printf("playback, %" PRIu64 " concurrent clients: %" PRIu64 " answers (%" PRIu64 " failed),"
	       " %.1f MB, first byte p50 %.1f ms, p99 %.1f ms\n", o->playbacks, r->playbacks_done,
	       r->playback_errors, (double)r->playback_bytes / 1e6, r->ttfb_p50_ms, r->ttfb_p99_ms);
	printf("frames lost by the recorder: %.0f during playback, %.0f over the run\n",
	       r->lost_during_playback, r->lost_total);
	printf("export: %" PRIu64 " bytes at %.1f MB/s; raw O_DIRECT read %.1f MB/s; ratio %.2f\n",
	       r->export_bytes, r->export_mbps, r->raw_mbps, r->export_ratio);
	printf("durable raw O_DIRECT write of as many bytes: %.1f MB/s, %.2f of the raw read"
	       " (the ceiling of export_ratio on this disk); export at %.2f of it\n",
	       r->raw_write_mbps, r->write_ceiling, r->export_vs_write);
	printf("cameras=%" PRIu64 " registry=%" PRIu64 " playbacks=%" PRIu64 " search_p50_ms=%.2f"
	       " search_p99_ms=%.2f metrics_ms=%.1f ttfb_p50_ms=%.1f ttfb_p99_ms=%.1f playback_answers=%" PRIu64
	       " playback_errors=%" PRIu64 " lost_frames_during_playback=%.0f lost_frames_total=%.0f"
	       " export_bytes=%" PRIu64 " export_mbps=%.1f raw_read_mbps=%.1f export_ratio=%.2f"
	       " raw_write_mbps=%.1f write_ceiling=%.2f export_vs_write=%.2f\n",
	       o->cameras, o->registry, o->playbacks, r->search_p50_ms, r->search_p99_ms,
	       r->metrics_ms, r->ttfb_p50_ms, r->ttfb_p99_ms, r->playbacks_done, r->playback_errors,
	       r->lost_during_playback, r->lost_total, r->export_bytes, r->export_mbps, r->raw_mbps,
	       r->export_ratio, r->raw_write_mbps, r->write_ceiling, r->export_vs_write);
}

/* One full /metrics scrape: its time, or -EIO. */
static int hb_metrics(struct hb_ctx *c, struct hb_result *r)
{
	struct hb_body b = { 0 };
	int64_t t0 = bench_now_ns();
	long st = hb_request(c, "/metrics", NULL, &b);
	r->metrics_ms = (double)(bench_now_ns() - t0) / 1e6;
	r->metrics_bytes = b.len;
	free(b.buf);
	if (st != 200)
		fprintf(stderr, "http: /metrics answered %ld\n", st);
	return st == 200 ? 0 : -EIO;
}

static int hb_measure(struct hb_ctx *c, struct hb_result *r)
{
	fprintf(stderr, "http: recording %" PRIu64 " s\n", c->o->record_s);
	bench_sleep_ns((int64_t)c->o->record_s * 1000000000LL);
	fprintf(stderr, "http: search\n");
	int err = hb_search(c, r);
	if (!err)
		err = hb_metrics(c, r);
	if (!err) {
		fprintf(stderr, "http: playback\n");
		err = hb_playback(c, r);
	}
	if (!err) {
		fprintf(stderr, "http: export\n");
		err = hb_export(c, r);
	}
	return err;
}

static int hb_stop(struct hb_ctx *c, struct hb_result *r)
{
	int rc = 0;
	if (c->nvrd > 0) {
		kill(c->nvrd, SIGTERM);
		rc = bench_wait_exit(c->nvrd);
		char log[PATH_MAX];
		snprintf(log, sizeof log, "%s/nvrd.log", c->o->dir);
		r->lost_total = bench_log_value(log, "phase=final", "frames_lost") +
		                bench_log_value(log, "phase=final", "dropped_frames");
	}
	if (c->sim > 0) {
		kill(c->sim, SIGTERM);
		bench_wait_exit(c->sim);
	}
	return rc ? -EIO : 0;
}

int bench_http_main(int argc, char **argv)
{
	struct hb_opts o;
	int err = hb_parse(argc, argv, &o);
	if (err)
		return err;
	struct hb_ctx c = { .o = &o, .nvrd = -1, .sim = -1 };
	struct hb_result r = { 0 };
	char fixture[PATH_MAX];
	snprintf(c.data, sizeof c.data, "%s/data", o.dir);
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return -EIO;
	err = bench_mkdir(o.dir);
	if (!err)
		err = bench_make_fixture(o.dir, o.bitrate_kbps, 25, fixture, sizeof fixture);
	if (!err)
		err = hb_prepare(&c);
	if (!err) {
		c.sim = bench_start_camsim(o.dir, o.cameras, 25, fixture, 1, HB_SIM_PORT);
		err = c.sim < 0 ? (int)c.sim : 0;
	}
	if (!err)
		err = hb_start_nvrd(&c);
	if (!err)
		err = hb_measure(&c, &r);
	int stop = hb_stop(&c, &r);
	curl_global_cleanup();
	if (!err && stop)
		fprintf(stderr, "http: nvrd did not stop cleanly (see %s/nvrd.log)\n", o.dir);
	if (!err)
		hb_print(&o, &r);
	return err ? err : stop;
}
