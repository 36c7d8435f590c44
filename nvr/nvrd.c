/*
 * nvrd.c - the recorder daemon.
 *
 * Settings come from the configuration (config.h: the file given with
 * --config, or the embedded defaults, then the command-line overrides of
 * config_args.h). nvrd prepares the data directory (datadir.h: DIR/index,
 * DIR/registry and the volumes, DIR/volN or the [volume] sections'
 * directories, formatted on first use), opens the storage engine and the
 * camera registry, merges the file's [camera] sections into the registry
 * (config_cameras.h), starts the ingest (ingest.h) and hands it every
 * enabled camera of the registry; then, once a second, applies registry
 * changes (camsync.h) and, every 5 s, logs one status line. The HTTP API
 * (web/http.h: HTTPS when the configuration has a certificate) starts after
 * the ingest and is the first thing stopped. Its users are in DIR/users and
 * its audit trail in DIR/audit; auth.enabled = false (never the default)
 * lets anyone in. A demo on an empty user database gets an admin
 * (demo_login.h).
 *
 * The embedded demo (simulate.h): with demo.simulate N, or on a data
 * directory whose registry is empty, nvrd starts the camera simulator as a
 * child process, registers its cameras and records them like any other RTSP
 * camera. DIR/simulated-cameras remembers that choice for later starts.
 *
 * Signals are blocked in every thread and taken by the main loop with
 * sigtimedwait, between its once-a-second duties:
 *   SIGHUP  re-reads the file (reload below): live settings change, HTTP
 *           settings restart the HTTP server, cameras are merged into the
 *           registry and camsync starts or stops only those that changed;
 *           settings that need a restart keep their running value and are
 *           logged; a file with errors is logged and changes nothing.
 *   SIGINT, SIGTERM  the ingest tears its sessions down and flushes every
 *           camera's unfinished chunk, the engine writes everything out and
 *           closes, a final status line is logged and the daemon exits 0.
 * Start-up failures and configuration errors exit 1, bad options 2.
 * --check-config exits 0 after "configuration ok", or 1 after the errors.
 * Log lines are key=value on stderr (log.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "camsync.h"
#include "config.h"
#include "config_args.h"
#include "config_cameras.h"
#include "export.h"
#include "retention_cfg.h"
#include "audit.h"
#include "demo_login.h"
#include "users.h"
#include "datadir.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "registry.h"
#include "simulate.h"
#include "storage.h"

#define STATUS_EVERY_US 5000000LL
#define SYNC_EVERY_US 1000000LL
#define DEFAULT_SIMULATED 200
#define SIMULATE_AUTO (-1)
#define PEM_MAX (1 << 20)

struct daemon {
	struct cfgargs args;
	struct nvr_config cfg;
	struct datadir dir;
	struct stg *stg;
	struct registry *reg;
	struct ingest *ingest;
	struct camsync *sync;
	struct sim *sim;
	struct web *web;
	struct web_ctx web_ctx;
	struct users *users;
	struct audit *audit;
	uint64_t class_generation;          /* registry generation of the camera classes */
	struct export_engine *exports;      /* NULL: export endpoints answer 503 */
	char *tls_cert_pem, *tls_key_pem;   /* alive while web runs */
	struct ingest_totals last_totals;   /* kept for the final status line */
	int64_t start_mono_us;
	int stop_signal;
};

static sigset_t g_signals;   /* SIGHUP, SIGINT, SIGTERM: taken by run() */

static void block_signals(void)
{
	sigemptyset(&g_signals);
	sigaddset(&g_signals, SIGHUP);
	sigaddset(&g_signals, SIGINT);
	sigaddset(&g_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &g_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- start-up ------------------------------------------------------------ */

/* Sessions need one descriptor each (two more for UDP): take the hard limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			nvr_log("warn", "nvrd", "event=fd_limit_not_raised error=\"%s\"", strerror(errno));
	}
}

/* DIR/volN, or the directories of the [volume] sections; formatted when new. */
static int prepare_volumes(struct daemon *d)
{
	const struct nvr_config *c = &d->cfg;
	int err = datadir_init(&d->dir, c->data_dir, c->volume_count ? 0 : (int)c->volumes, true);
	if (!err && c->volume_count) {
		const char *paths[CONFIG_MAX_VOLUMES];
		for (int i = 0; i < c->volume_count; i++)
			paths[i] = c->volume[i].path;
		err = datadir_set_volumes(&d->dir, paths, c->volume_count);
	}
	if (!err)
		err = datadir_lock(&d->dir);
	for (int i = 0; !err && i < d->dir.volume_count; i++) {
		uint64_t size = c->volume_count && c->volume[i].size ? c->volume[i].size :
		                c->volume_size;
		err = datadir_prepare_volume(&d->dir, i, size);
	}
	return err;
}

/* The [class NAME] sections into the engine, which keeps them in its index. */
static int apply_classes(struct daemon *d)
{
	const int64_t day_us = 86400LL * 1000000;
	for (int i = 0; i < d->cfg.class_count; i++) {
		const struct config_class *k = &d->cfg.cls[i];
		struct stg_class sc = { .min_us = (int64_t)k->min_days * day_us,
		                        .max_us = (int64_t)k->max_days * day_us,
		                        .share_pct = (uint32_t)k->share };
		snprintf(sc.name, sizeof sc.name, "%s", k->name);
		int err = stg_class_set(d->stg, &sc);
		if (err) {
			nvr_log("error", "nvrd", "event=retention_class_refused class=%s error=\"%s\"",
			        k->name, stg_strerror(err));
			return err;
		}
	}
	return 0;
}

static int open_storage_and_registry(struct daemon *d)
{
	const struct nvr_config *c = &d->cfg;
	int err = prepare_volumes(d);
	/* Chunks waiting for a volume's writer: at 2,000 cameras x 2 Mbit/s a
	 * volume takes 500 MB/s, and cameras that (re)started together close
	 * their GOPs together; 256 MiB (storage.queue_bytes) rides out such
	 * bursts. A camera's open chunk is its biggest memory cost: chunks close
	 * at 112 KiB (storage.chunk_bytes), so that with header and frame table
	 * each fits a 128 KiB buffer (a GOP then spans several chunks; chunks
	 * need not start at a key frame). */
	struct stg_config sc = { .queue_bytes_per_volume = c->queue_bytes,
	                         .max_chunk_bytes = (uint32_t)c->chunk_bytes,
	                         .flush_interval_ms = (uint32_t)c->flush_interval_ms,
	                         .writer_threads = (uint32_t)c->writer_threads };
	if (!err)
		err = datadir_open_storage(&d->dir, &sc, &d->stg);
	if (!err)
		err = apply_classes(d);
	if (err)
		return err;
	err = registry_open(d->dir.registry, &d->reg);
	if (err)
		nvr_log("error", "nvrd", "event=registry_open_failed path=%s error=\"%s\"",
		        d->dir.registry, strerror(-err));
	if (!err)
		err = users_open(d->dir.users, &d->users);
	if (!err)
		err = audit_open(d->dir.audit, &d->audit);
	return err;
}

/* The file's [camera] sections into the registry (config_cameras.h). */
static int merge_cameras(struct daemon *d, const struct nvr_config *c)
{
	struct cfgcams_result r;
	int err = cfgcams_apply(d->reg, d->dir.path, c, &r);
	if (!err && (c->camera_count || r.removed))
		nvr_log("info", "nvrd", "event=config_cameras listed=%zu written=%u unchanged=%u"
		        " removed=%u", c->camera_count, r.written, r.unchanged, r.removed);
	return err;
}

/* How many cameras to simulate: the setting, else what DIR/simulated-cameras
 * says, else DEFAULT_SIMULATED if the registry is empty (remembered). */
static long simulated_cameras(struct daemon *d)
{
	if (d->cfg.simulate != SIMULATE_AUTO)
		return (long)d->cfg.simulate;
	char marker[PATH_MAX + 32];
	snprintf(marker, sizeof marker, "%s/simulated-cameras", d->dir.path);
	long n = 0;
	FILE *f = fopen(marker, "r");
	if (f) {
		if (fscanf(f, "%ld", &n) != 1 || n < 0 || n > 100000)
			n = 0;
		fclose(f);
		return n;
	}
	uint64_t count = 0;
	if (registry_count(d->reg, &count) || count)
		return 0;
	if ((f = fopen(marker, "w")) != NULL) {
		fprintf(f, "%d\n", DEFAULT_SIMULATED);
		fclose(f);
	}
	nvr_log("info", "nvrd", "event=demo_mode reason=\"empty camera registry\" cameras=%d"
	        " hint=\"import cameras with nvrctl, or set demo.simulate = 0\"", DEFAULT_SIMULATED);
	return DEFAULT_SIMULATED;
}

/* Directory of this executable, for the simulator and its fixtures. */
static void bin_dir(char *out, size_t n)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len <= 0) {
		snprintf(out, n, ".");
		return;
	}
	exe[len] = '\0';
	snprintf(out, n, "%s", dirname(exe));
}

static int start_simulator(struct daemon *d)
{
	long n = simulated_cameras(d);
	if (n <= 0)
		return 0;
	if (d->cfg.auth_enabled && demo_login_ensure(d->users, d->audit, d->dir.path))
		return -EIO;
	char dir[PATH_MAX], camsim[PATH_MAX + 16], fixtures[PATH_MAX + 16];
	bin_dir(dir, sizeof dir);
	snprintf(camsim, sizeof camsim, "%s/nvr-camsim", dir);
	snprintf(fixtures, sizeof fixtures, "%s/../fixtures", dir);
	struct sim_config sc = {
		.camsim_path = d->cfg.camsim[0] ? d->cfg.camsim : camsim,
		.fixture_dir = d->cfg.fixtures[0] ? d->cfg.fixtures : fixtures,
		.cameras = (uint32_t)n, .port = (uint16_t)d->cfg.sim_port, .registry = d->reg,
	};
	return sim_start(&sc, &d->sim);
}

static int start_ingest(struct daemon *d)
{
	const struct nvr_config *c = &d->cfg;
	struct ingest_config ic = {
		.stg = d->stg, .loops = (uint32_t)c->loops, .av_threads = (uint32_t)c->av_threads,
		.udp_port_min = (uint16_t)c->udp_port_min, .udp_port_max = (uint16_t)c->udp_port_max,
		.backoff_min_ms = (uint32_t)c->backoff_min_ms,
		.backoff_max_ms = (uint32_t)c->backoff_max_ms, .timeout_ms = (uint32_t)c->timeout_ms,
		.max_clock_skew_ms = (uint32_t)c->max_clock_skew_ms,
		.recv_buffer_max = (uint32_t)c->recv_buffer_max,
		.recv_batch_ms = c->recv_batch_ms ? (int32_t)c->recv_batch_ms : -1,
		.max_connecting = (uint32_t)c->max_connecting,
		.default_udp = !strcmp(c->transport, "udp"),
	};
	int err = ingest_start(&ic, &d->ingest);
	if (err) {
		nvr_log("error", "nvrd", "event=ingest_start_failed error=\"%s\"", strerror(-err));
		return err;
	}
	if (retention_sync_cameras(d->stg, d->reg, &d->class_generation) < 0)
		nvr_log("warn", "nvrd", "event=camera_classes_not_set");
	err = camsync_init(d->reg, d->ingest, &d->sync);
	if (!err)
		err = camsync_poll(d->sync) < 0 ? -EIO : 0;
	return err;
}

/* ---- HTTP ---------------------------------------------------------------- */

/* A whole PEM file into memory (libmicrohttpd takes certificates as text). */
static int read_pem(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	int err = f ? 0 : -errno;
	if (!err && !(buf = malloc(PEM_MAX + 1)))
		err = -ENOMEM;
	size_t n = err ? 0 : fread(buf, 1, PEM_MAX + 1, f);
	if (!err && ferror(f))
		err = -EIO;
	if (!err && (n == 0 || n > PEM_MAX))
		err = -EINVAL;
	if (f)
		fclose(f);
	if (err) {
		nvr_log("error", "nvrd", "event=tls_file_unreadable path=%s error=\"%s\"", path,
		        err == -EINVAL ? "empty or larger than 1 MiB" : strerror(-err));
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static void free_pems(struct daemon *d)
{
	if (d->tls_key_pem)
		explicit_bzero(d->tls_key_pem, strlen(d->tls_key_pem));
	free(d->tls_key_pem);
	free(d->tls_cert_pem);
	d->tls_key_pem = d->tls_cert_pem = NULL;
}

static void log_http_started(const struct nvr_config *c, bool tls)
{
	const char *v6 = strchr(c->http_listen, ':');
	nvr_log("info", "nvrd", "event=http_started url=%s://%s%s%s:%" PRIu64 "/", tls ? "https" :
	        "http", v6 ? "[" : "", c->http_listen, v6 ? "]" : "", c->http_port);
	if (tls && c->plain_http_port)
		nvr_log("info", "nvrd", "event=http_started url=http://%s%s%s:%" PRIu64 "/",
		        v6 ? "[" : "", c->http_listen, v6 ? "]" : "", c->plain_http_port);
}

/* Said loudly, and kept in the audit trail. */
static void log_auth_off(struct daemon *d)
{
	nvr_log("warn", "nvrd", "event=auth_off warning=\"HTTP API without authentication:"
	        " anyone reaching %s:%" PRIu64 " acts as admin\"", d->cfg.http_listen, d->cfg.http_port);
	json_t *j = json_pack("{s:s, s:s}", "setting", "auth", "value", "off");
	if (!j || audit_append(d->audit, "nvrd", "config", NULL, j, NULL))
		nvr_log("error", "nvrd", "event=audit_failed action=config");
	json_decref(j);
}

/* Evidence exports (web/export.h); without them the export endpoints
 * answer 503 and the daemon records on (export_open logged why). */
static void open_exports(struct daemon *d)
{
	char dir[PATH_MAX + 16];
	snprintf(dir, sizeof dir, "%s/exports", d->dir.path);
	struct export_config ec = { .dir = d->cfg.exports_dir[0] ? d->cfg.exports_dir : dir,
	                            .quota_bytes = d->cfg.exports_quota,
	                            .workers = (unsigned)d->cfg.export_workers,
	                            .threads = (unsigned)d->cfg.export_threads };
	if (export_open(&ec, d->stg, &d->exports))
		nvr_log("error", "nvrd", "event=exports_disabled reason=open_failed");
}

/* The web UI's directory: the configured one, else the installed
 * BINDIR/../share/nvr/web, else the source tree's web/static when nvrd
 * runs from build/bin. "" when none exists (the API runs without the UI). */
static void static_dir(const struct nvr_config *c, char *out, size_t n)
{
	char dir[PATH_MAX];
	struct stat st;
	if (c->static_dir[0]) {
		snprintf(out, n, "%s", c->static_dir);
		return;
	}
	bin_dir(dir, sizeof dir);
	snprintf(out, n, "%s/../share/nvr/web", dir);
	if (!stat(out, &st) && S_ISDIR(st.st_mode))
		return;
	snprintf(out, n, "%s/../../web/static", dir);
	if (!stat(out, &st) && S_ISDIR(st.st_mode))
		return;
	nvr_log("info", "nvrd", "event=no_web_ui hint=\"set http.static_dir\"");
	out[0] = '\0';
}

/* A port already taken or a bad certificate must not stop the recording:
 * the API is left off (logged) and the daemon records on. */
static void start_http(struct daemon *d)
{
	const struct nvr_config *c = &d->cfg;
	if (!c->http_port)
		return;
	bool tls = c->tls_cert[0];
	if (tls && (read_pem(c->tls_cert, &d->tls_cert_pem) || read_pem(c->tls_key, &d->tls_key_pem))) {
		free_pems(d);
		nvr_log("error", "nvrd", "event=http_disabled reason=tls_files");
		return;
	}
	char ui[PATH_MAX + 32];
	static_dir(c, ui, sizeof ui);
	struct web_config wc = {
		.static_dir = ui, .listen_addr = c->http_listen, .port = (uint16_t)c->http_port,
		.threads = (unsigned)c->http_threads, .max_connections = (unsigned)c->max_connections,
		.connection_timeout_s = (unsigned)((c->connection_timeout_ms + 999) / 1000),
		.connection_memory = (size_t)c->connection_memory,
		.max_window_ms = (int64_t)c->max_window_ms,
		.request_rate = (double)c->request_rate, .request_burst = (double)c->request_burst,
		.tls_cert_pem = d->tls_cert_pem, .tls_key_pem = d->tls_key_pem,
		.plain_port = (uint16_t)c->plain_http_port, .auth_off = !c->auth_enabled,
	};
	d->web_ctx = (struct web_ctx){ .stg = d->stg, .reg = d->reg, .ingest = d->ingest,
	                               .users = d->users, .audit = d->audit,
	                               .exports = d->exports };
	if (!c->auth_enabled)
		log_auth_off(d);
	if (web_start(&wc, &d->web_ctx, &d->web)) {
		free_pems(d);
		nvr_log("error", "nvrd", "event=http_disabled reason=start_failed");
		return;
	}
	log_http_started(c, tls);
}

static void stop_http(struct daemon *d)
{
	web_stop(d->web);
	d->web = NULL;
	free_pems(d);
}

/* ---- reload (SIGHUP) ----------------------------------------------------- */

/* Error lines go into a quoted log value: no double quotes inside. */
static void log_config_errors(const struct config_errors *errs, const char *level)
{
	for (int i = 0; i < errs->count; i++) {
		char msg[sizeof errs->msg[0]];
		snprintf(msg, sizeof msg, "%s", errs->msg[i]);
		for (char *p = msg; *p; p++)
			if (*p == '"')
				*p = '\'';
		nvr_log(level, "nvrd", "event=config_error error=\"%s\"", msg);
	}
}

static bool volumes_equal(const struct nvr_config *a, const struct nvr_config *b)
{
	if (a->volume_count != b->volume_count)
		return false;
	for (int i = 0; i < a->volume_count; i++)
		if (strcmp(a->volume[i].name, b->volume[i].name) ||
		    strcmp(a->volume[i].path, b->volume[i].path) || a->volume[i].size != b->volume[i].size)
			return false;
	return true;
}

static bool classes_equal(const struct nvr_config *a, const struct nvr_config *b)
{
	if (a->class_count != b->class_count)
		return false;
	for (int i = 0; i < a->class_count; i++)
		if (strcmp(a->cls[i].name, b->cls[i].name) || a->cls[i].min_days != b->cls[i].min_days ||
		    a->cls[i].max_days != b->cls[i].max_days || a->cls[i].share != b->cls[i].share)
			return false;
	return true;
}

/* The [volume] and [class] sections can only change with a restart: the
 * running ones are moved into `next` (which frees the new ones later). */
static int keep_sections(struct nvr_config *run, struct nvr_config *next)
{
	int kept = 0;
	if (!volumes_equal(run, next)) {
		struct config_volume tmp[CONFIG_MAX_VOLUMES];
		int n = run->volume_count;
		memcpy(tmp, run->volume, sizeof tmp);
		memcpy(run->volume, next->volume, sizeof tmp);
		memcpy(next->volume, tmp, sizeof tmp);
		run->volume_count = next->volume_count;
		next->volume_count = n;
		nvr_log("warn", "nvrd", "event=config_needs_restart setting=volume");
		kept++;
	}
	if (!classes_equal(run, next)) {
		struct config_class tmp[CONFIG_MAX_CLASSES];
		int n = run->class_count;
		memcpy(tmp, run->cls, sizeof tmp);
		memcpy(run->cls, next->cls, sizeof tmp);
		memcpy(next->cls, tmp, sizeof tmp);
		run->class_count = next->class_count;
		next->class_count = n;
		nvr_log("warn", "nvrd", "event=config_needs_restart setting=class");
		kept++;
	}
	return kept;
}

struct reload_count {
	int live, http, kept;
};

/* Compares every setting of the table: live ones are applied, HTTP ones
 * counted, the others get their running value back (and are logged). */
static int diff_settings(struct daemon *d, struct nvr_config *next, struct reload_count *n)
{
	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *o = &config_options[i];
		char name[64], was[PATH_MAX], now[PATH_MAX];
		if (!strcmp(o->section, "volume") || !strcmp(o->section, "class") ||
		    config_equal(&d->cfg, next, o))
			continue;
		config_name(o, name, sizeof name);
		config_format(&d->cfg, o, was, sizeof was);
		config_format(next, o, now, sizeof now);
		if (o->reload == CONFIG_LIVE) {
			n->live++;
		} else if (o->reload == CONFIG_HTTP) {
			n->http++;
		} else {
			n->kept++;
			nvr_log("warn", "nvrd", "event=config_needs_restart setting=%s running=\"%s\""
			        " file=\"%s\"", name, was, now);
			int err = config_copy(next, &d->cfg, o);
			if (err)
				return err;
			continue;
		}
		nvr_log("info", "nvrd", "event=config_changed setting=%s from=\"%s\" to=\"%s\"", name,
		        was, now);
	}
	n->kept += keep_sections(&d->cfg, next);
	return 0;
}

/* Re-reads the file; a file with errors changes nothing. */
static void reload(struct daemon *d)
{
	struct nvr_config next;
	struct config_errors errs;
	struct reload_count n = { 0, 0, 0 };
	if (!d->args.config) {
		nvr_log("info", "nvrd", "event=reload_skipped reason=\"no configuration file\"");
		return;
	}
	nvr_log("info", "nvrd", "event=reload_started config=%s", d->args.config);
	int err = cfgargs_load(&d->args, &next, &errs);
	if (!err)
		err = merge_cameras(d, &next);
	if (!err)
		err = diff_settings(d, &next, &n);
	if (err) {
		log_config_errors(&errs, "error");
		nvr_log("error", "nvrd", "event=reload_failed error=\"%s\" hint=\"the running"
		        " configuration is kept\"", strerror(-err));
		config_free(&next);
		return;
	}
	config_free(&d->cfg);
	d->cfg = next;
	nvr_log_set_level(d->cfg.log_level);
	/* With TLS the server restarts on every reload, so that a renewed
	 * certificate under the same path is read again. */
	bool http = n.http || d->cfg.tls_cert[0];
	if (http) {
		stop_http(d);
		start_http(d);
	}
	camsync_poll(d->sync);
	nvr_log("info", "nvrd", "event=config_reloaded applied=%d http_restarted=%s"
	        " needs_restart=%d cameras=%" PRIu32, n.live + n.http, http ? "yes" : "no", n.kept,
	        camsync_count(d->sync));
}

/* ---- status -------------------------------------------------------------- */

struct line {
	char buf[6144];
	size_t len;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct line *l, const char *fmt, ...)
{
	if (l->len >= sizeof l->buf)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len += (size_t)n;
}

/* Ingest counters, and what the engine has on disk and indexed. */
static void add_camera_totals(struct daemon *d, struct line *l)
{
	struct ingest_totals t = d->last_totals;
	if (d->ingest)
		ingest_totals(d->ingest, &t);
	uint64_t written = 0, bytes = 0, dropped = 0;
	uint32_t n = d->sync ? camsync_count(d->sync) : 0;
	for (uint32_t i = 0; i < n; i++) {
		struct stg_camera_stats cs;
		if (stg_camera_stats(d->stg, camsync_id(d->sync, i), &cs) == 0) {
			written += cs.frames_written;
			bytes += cs.bytes_written;
			dropped += cs.dropped_frames;
		}
	}
	add(l, " cameras=%" PRIu32 " streaming=%" PRIu32 " frames=%" PRIu64
	    " frames_lost=%" PRIu64 " reconnects=%" PRIu64 " frames_written=%" PRIu64
	    " dropped_frames=%" PRIu64 " bytes_written=%" PRIu64,
	    t.cameras, t.streaming, t.frames, t.frames_lost, t.reconnects, written, dropped, bytes);
}

static void add_volumes(struct daemon *d, struct line *l)
{
	static const char *state[] = { "active", "failed", "refused" };
	struct stg_volume_stats vs[DATADIR_MAX_VOLUMES];
	int n = stg_volume_stats(d->stg, vs, DATADIR_MAX_VOLUMES);
	for (int i = 0; i < n; i++) {
		add(l, " vol%d=%s vol%d_free_segments=%" PRIu32 "/%" PRIu32, i,
		    vs[i].state <= STG_VOL_REFUSED ? state[vs[i].state] : "unknown", i,
		    vs[i].segments_free, vs[i].segments_total);
		if (vs[i].state != STG_VOL_ACTIVE)
			add(l, " vol%d_error=\"%s\"", i, vs[i].last_error);
	}
}

static void log_status(struct daemon *d, const char *phase)
{
	struct line l = { .len = 0 };
	int64_t up = (nvr_mono_us() - d->start_mono_us) / 1000000;
	add(&l, "event=status phase=%s uptime_s=%" PRId64, phase, up);
	add_camera_totals(d, &l);
	add_volumes(d, &l);
	struct stg_index_stats is;
	if (stg_index_stats(d->stg, &is) == 0)
		add(&l, " index_ranges=%" PRIu64 " index_segments=%" PRIu64 " index_bytes=%" PRIu64,
		    is.ranges, is.segments, is.bytes);
	struct stg_retention_stats rs;
	if (stg_retention_stats(d->stg, &rs, NULL, 0, NULL) == 0)
		add(&l, " retention_alarms=%" PRIu32 " holds=%" PRIu32 " held_bytes=%" PRIu64
		    " expired_chunks=%" PRIu64 " relocated_bytes=%" PRIu64, rs.alarms, rs.holds,
		    rs.held_bytes, rs.expired_chunks, rs.relocated_bytes);
	nvr_log("info", "nvrd", "%s", l.buf);
}

/* ---- main loop and shutdown ---------------------------------------------- */

/* Waits until mono_us for one of g_signals; returns it, or 0 at the time. */
static int wait_signal(int64_t mono_us)
{
	int64_t left = mono_us - nvr_mono_us();
	if (left < 0)
		left = 0;
	struct timespec ts = { .tv_sec = left / 1000000, .tv_nsec = (left % 1000000) * 1000 };
	int sig = sigtimedwait(&g_signals, NULL, &ts);
	return sig > 0 ? sig : 0;
}

static void run(struct daemon *d)
{
	int64_t t0 = nvr_mono_us();
	int64_t end = d->cfg.stop_after_ms ? t0 + (int64_t)d->cfg.stop_after_ms * 1000 : INT64_MAX;
	int64_t next_sync = t0 + SYNC_EVERY_US, next_status = t0 + STATUS_EVERY_US;
	for (;;) {
		int64_t now = nvr_mono_us();
		if (now >= end)
			return;
		if (now >= next_sync) {
			camsync_poll(d->sync);
			retention_sync_cameras(d->stg, d->reg, &d->class_generation);
			if (now >= next_status) {
				log_status(d, "running");
				next_status = now + STATUS_EVERY_US;
			}
			/* From when they end: duties that took longer than their
			 * period (the first sync of 30,000 cameras) are not run back
			 * to back to catch up, which kept signals waiting. */
			next_sync = nvr_mono_us() + SYNC_EVERY_US;
		}
		int sig = wait_signal(next_sync < end ? next_sync : end);
		if (sig == SIGHUP) {
			reload(d);
		} else if (sig) {
			d->stop_signal = sig;
			return;
		}
	}
}

/* Stops the sessions (each camera's unfinished chunk is flushed), waits for
 * disk and index, reports the final counts and closes everything. */
static void shut_down(struct daemon *d)
{
	stop_http(d);
	export_close(d->exports);
	d->exports = NULL;
	if (d->ingest) {
		ingest_stop(d->ingest, &d->last_totals);
		d->ingest = NULL;
	}
	sim_stop(d->sim);
	d->sim = NULL;
	if (d->stg) {
		int err = stg_sync(d->stg);
		if (err)
			nvr_log("error", "nvrd", "event=sync_failed error=\"%s\"", stg_strerror(err));
		log_status(d, "final");
		stg_close(d->stg);
		d->stg = NULL;
	}
	camsync_free(d->sync);
	if (d->reg)
		registry_close(d->reg);
	users_close(d->users);
	audit_close(d->audit);
	datadir_release(&d->dir);
}

/* The configuration, or the exit status: 1 after errors, 0 for
 * --check-config and --print-config-doc. Returns -1 to go on. */
static int configure(struct daemon *d)
{
	struct config_errors errs;
	if (d->args.print_doc)
		return config_print_doc(stdout) ? 1 : 0;
	int err = cfgargs_load(&d->args, &d->cfg, &errs);
	for (int i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (err && !errs.count)
		fprintf(stderr, "nvrd: configuration: %s\n", strerror(-err));
	if (err)
		return 1;
	if (d->args.check) {
		printf("configuration ok\n");
		return 0;
	}
	return -1;
}

static int start(struct daemon *d)
{
	nvr_log_set_level(d->cfg.log_level);
	block_signals();
	raise_fd_limit();
	d->start_mono_us = nvr_mono_us();
	int err = open_storage_and_registry(d);
	if (!err)
		err = merge_cameras(d, &d->cfg);
	if (!err)
		err = start_simulator(d);
	if (!err)
		err = start_ingest(d);
	if (err)
		return err;
	open_exports(d);
	start_http(d);
	nvr_log("info", "nvrd", "event=started config=%s data=%s volumes=%d cameras=%" PRIu32
	        " loops=%" PRIu64 " seconds=%" PRIu64 " pid=%ld",
	        d->args.config ? d->args.config : "(defaults)", d->dir.path, d->dir.volume_count,
	        camsync_count(d->sync), d->cfg.loops, d->cfg.stop_after_ms / 1000, (long)getpid());
	return 0;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	if (cfgargs_parse(argc, argv, &d.args))
		return 2;
	if (d.args.help) {
		cfgargs_usage(stdout);
		cfgargs_free(&d.args);
		return 0;
	}
	int rc = configure(&d);
	if (rc >= 0) {
		config_free(&d.cfg);
		cfgargs_free(&d.args);
		return rc;
	}
	bool ok = start(&d) == 0;
	if (ok)
		run(&d);
	shut_down(&d);
	if (ok && d.stop_signal)
		nvr_log("info", "nvrd", "event=stopped reason=signal signal=%s",
		        d.stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
	else if (ok)
		nvr_log("info", "nvrd", "event=stopped reason=seconds_elapsed");
	config_free(&d.cfg);
	cfgargs_free(&d.args);
	return ok ? 0 : 1;
}
