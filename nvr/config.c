/*
 * config.c - the settings table and the configuration file (config.h).
 *
 * libinih reads the file and calls config_entry once per `key = value`
 * with the section it is in. inih as Debian builds it does not pass line
 * numbers to that callback, so the file is fed to it through a reader of
 * our own (config_read_line) that counts lines and remembers where the
 * last [section] header was: an entry's line is the reader's count when
 * the callback runs. The callback always returns success and records its
 * own errors, so one pass reports every bad entry; what inih itself
 * rejects (a line that is neither a header nor key = value) comes back as
 * its return value and is reported as a syntax error.
 *
 * Defaults are text parsed by the same code as file values, so a default
 * can never be outside its own bounds.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_parse.h"
#include "volume_plan.h"

#define CFG_MAX_LINE 4096
#define CFG_MAX_KEYS 64

/* The offset of member m of T, refused at compile time unless it has type
 * `type`, so that a row can never read a field as the wrong type. */
#define CFG_OFF(T, m, type) _Generic(((T *)0)->m, type: offsetof(T, m))

#define ROW(sec, key, type, ctype, m, def, min, max, choices, cli, reload, doc) \
	{ sec, key, type, CFG_OFF(struct nvr_config, m, ctype), def, min, max, choices, \
	  cli, reload, doc }
#define UINT(sec, key, m, def, min, max, cli, reload, doc) \
	ROW(sec, key, CONFIG_UINT, uint64_t, m, def, min, max, NULL, cli, reload, doc)
#define SIZE(sec, key, m, def, min, max, cli, reload, doc) \
	ROW(sec, key, CONFIG_SIZE, uint64_t, m, def, min, max, NULL, cli, reload, doc)
#define DURATION(sec, key, m, def, min, max, cli, reload, doc) \
	ROW(sec, key, CONFIG_DURATION, uint64_t, m, def, min, max, NULL, cli, reload, doc)
#define STRING(sec, key, m, def, choices, cli, reload, doc) \
	ROW(sec, key, CONFIG_STRING, char *, m, def, 0, 0, choices, cli, reload, doc)
#define PATH(sec, key, m, def, cli, reload, doc) \
	ROW(sec, key, CONFIG_PATH, char *, m, def, 0, 0, NULL, cli, reload, doc)
#define ADDRESS(sec, key, m, def, cli, reload, doc) \
	ROW(sec, key, CONFIG_ADDRESS, char *, m, def, 0, 0, NULL, cli, reload, doc)
#define BOOL(sec, key, m, def, cli, reload, doc) \
	ROW(sec, key, CONFIG_BOOL, bool, m, def, 0, 1, NULL, cli, reload, doc)
#define INT64(sec, key, m, def, min, max, cli, reload, doc) \
	ROW(sec, key, CONFIG_INT64, int64_t, m, def, min, max, NULL, cli, reload, doc)
#define ELEM(T, sec, key, type, ctype, m, def, min, max, doc) \
	{ sec, key, type, CFG_OFF(T, m, ctype), def, min, max, NULL, NULL, CONFIG_RESTART, doc }

#define KIB (1LL << 10)
#define MIB (1LL << 20)
#define GIB (1LL << 30)
#define TIB (1LL << 40)
#define SEC 1000LL
#define DAY (86400 * SEC)

const struct config_option config_options[] = {
	PATH("storage", "data_dir", data_dir, "./nvr-data", "data", CONFIG_RESTART,
	     "data directory: index, camera registry, lock and the volumes vol0..volN-1"),
	UINT("storage", "volumes", volumes, "2", 1, CONFIG_MAX_VOLUMES, "volumes", CONFIG_RESTART,
	     "volumes DIR/vol0.. to use when no [volume] section is given"),
	SIZE("storage", "volume_size", volume_size, "2G", 4 * MIB, 1024 * TIB, "volume-size",
	     CONFIG_RESTART, "size of a volume nvrd formats on first use"),
	SIZE("storage", "queue_bytes", queue_bytes, "256M", MIB, 64 * GIB, NULL, CONFIG_RESTART,
	     "chunk bytes queued per volume before chunks are dropped"),
	DURATION("storage", "flush_interval", flush_interval_ms, "1s", 10, 60 * SEC, NULL,
	         CONFIG_RESTART, "longest time a frame waits before it is written"),
	SIZE("storage", "chunk_bytes", chunk_bytes, "112K", 16 * KIB, 16 * MIB, NULL,
	     CONFIG_RESTART, "a camera's chunk is closed above this size"),
	UINT("storage", "writer_threads", writer_threads, "1", 1, 64, NULL, CONFIG_RESTART,
	     "io_uring writer threads (volumes are shared out among them)"),

	ELEM(struct config_volume, "volume", "path", CONFIG_PATH, char *, path, "", 0, 0,
	     "directory of the volume (required)"),
	ELEM(struct config_volume, "volume", "size", CONFIG_SIZE, uint64_t, size, "0", 0,
	     1024 * TIB, "size when formatted on first use; 0 takes storage.volume_size"),

	ELEM(struct config_class, "class", "min_days", CONFIG_UINT, uint64_t, min_days, "0", 0,
	     36500, "footage is kept at least this many days"),
	ELEM(struct config_class, "class", "max_days", CONFIG_UINT, uint64_t, max_days, "0", 0,
	     36500, "footage is deleted after this many days; 0 keeps it while space allows"),
	ELEM(struct config_class, "class", "share", CONFIG_UINT, uint64_t, share, "0", 0, 100,
	     "at most this percent of the disk space (less what legal holds keep) holds "
	     "this class's footage; beyond it the oldest is deleted, even within min_days "
	     "(the class is then in alarm); the space freed serves other classes only "
	     "when the ring reuses it; shares add up to at most 100; 0: no limit"),

	UINT("ingest", "loops", loops, "1", 1, 64, "loops", CONFIG_RESTART,
	     "RTSP event-loop threads (a camera belongs to loop id mod loops)"),
	UINT("ingest", "av_threads", av_threads, "4", 1, 256, NULL, CONFIG_RESTART,
	     "libavformat threads for cameras that are not rtsp://"),
	STRING("ingest", "transport", transport, "tcp", "tcp|udp", NULL, CONFIG_RESTART,
	       "RTP transport of RTSP cameras whose record names none"),
	UINT("ingest", "udp_port_min", udp_port_min, "50000", 1024, 65535, NULL, CONFIG_RESTART,
	     "lowest local port of RTP/RTCP over UDP"),
	UINT("ingest", "udp_port_max", udp_port_max, "59999", 1024, 65535, NULL, CONFIG_RESTART,
	     "highest local port of RTP/RTCP over UDP"),
	DURATION("ingest", "backoff_min", backoff_min_ms, "1s", 10, 3600 * SEC, NULL,
	         CONFIG_RESTART, "first retry delay after a camera failed"),
	DURATION("ingest", "backoff_max", backoff_max_ms, "60s", 10, 3600 * SEC, NULL,
	         CONFIG_RESTART, "longest retry delay"),
	DURATION("ingest", "timeout", timeout_ms, "10s", 100, 600 * SEC, NULL, CONFIG_RESTART,
	         "connect, reply and no-data timeout of a camera"),
	DURATION("ingest", "max_clock_skew", max_clock_skew_ms, "5s", 1, 3600 * SEC, NULL,
	         CONFIG_RESTART, "RTCP time further than this from arrival time is ignored"),
	SIZE("ingest", "recv_buffer_max", recv_buffer_max, "256K", 16 * KIB, 16 * MIB, NULL,
	     CONFIG_RESTART, "largest receive buffer of one RTSP session"),
	UINT("ingest", "recv_batch_ms", recv_batch_ms, "100", 0, 1000, NULL, CONFIG_RESTART,
	     "a streaming session that emptied its socket reads again after this many ms, "
	     "so each receive takes many packets (less CPU); 0 reads at once"),
	UINT("ingest", "max_connecting", max_connecting, "256", 1, 65535, NULL, CONFIG_RESTART,
	     "cameras one RTSP loop connects and negotiates at once; the others wait their "
	     "turn, so that thousands of cameras starting together (after a restart or a "
	     "network cut) do not flood the network and the cameras"),

	ADDRESS("http", "listen", http_listen, "127.0.0.1", "http-listen", CONFIG_HTTP,
	        "address the HTTP API listens on (IPv4 or IPv6 literal)"),
	UINT("http", "port", http_port, "8080", 0, 65535, "http-port", CONFIG_HTTP,
	     "port of the API and UI (HTTPS when tls_cert is set); 0 turns them off"),
	PATH("http", "tls_cert", tls_cert, "", NULL, CONFIG_HTTP,
	     "PEM certificate (chain): serve HTTPS on port; needs tls_key"),
	PATH("http", "tls_key", tls_key, "", NULL, CONFIG_HTTP, "PEM private key of tls_cert"),
	UINT("http", "plain_http_port", plain_http_port, "0", 0, 65535, NULL, CONFIG_HTTP,
	     "with TLS: also serve plain HTTP on this port; 0 does not"),
	UINT("http", "threads", http_threads, "2", 1, 64, NULL, CONFIG_HTTP,
	     "HTTP server threads"),
	PATH("http", "static_dir", static_dir, "", "static-dir", CONFIG_HTTP,
	     "directory of the web UI's files, served at / and /ui/; empty: BINDIR/../share/nvr/web, "
	     "or the source tree's web/static when nvrd runs from build/bin"),

	BOOL("auth", "enabled", auth_enabled, "true", "auth", CONFIG_RESTART,
	     "require users to log in (nvrctl users); false lets anyone in as admin (logged, audited)"),

	DURATION("limits", "max_window", max_window_ms, "7d", 60 * SEC, 3650 * DAY, NULL,
	         CONFIG_HTTP, "longest time window one API request may ask for"),
	UINT("limits", "max_connections", max_connections, "256", 1, 100000, NULL, CONFIG_HTTP,
	     "open HTTP connections at most"),
	DURATION("limits", "connection_timeout", connection_timeout_ms, "30s", SEC, 3600 * SEC,
	         NULL, CONFIG_HTTP, "idle HTTP connections are closed after this long"),
	SIZE("limits", "connection_memory", connection_memory, "64K", 16 * KIB, 16 * MIB, NULL,
	     CONFIG_HTTP, "buffer memory of one HTTP connection (request line and headers "
	     "beyond it are refused with 431)"),
	UINT("limits", "request_rate", request_rate, "100", 0, 1000000, NULL, CONFIG_HTTP,
	     "requests a second one client address may make on average; beyond, 429; 0 for "
	     "no limit"),
	UINT("limits", "request_burst", request_burst, "400", 1, 10000000, NULL, CONFIG_HTTP,
	     "requests one client address may make at once before request_rate applies"),

	PATH("exports", "dir", exports_dir, "", "exports-dir", CONFIG_RESTART,
	     "directory of evidence exports, outside the ring; empty: DATA_DIR/exports"),
	SIZE("exports", "quota", exports_quota, "10G", 0, 1024 * TIB, "exports-quota",
	     CONFIG_RESTART, "bytes the exports may take; a job that would not fit is refused "
	     "before it starts; 0 for no limit"),
	UINT("exports", "workers", export_workers, "1", 1, 8, "export-workers", CONFIG_RESTART,
	     "export jobs run at once"),
	UINT("exports", "threads", export_threads, "2", 1, 8, "export-threads", CONFIG_RESTART,
	     "threads writing export files (at least `workers`): an idle one writes the next "
	     "camera of a running job, so one job's cameras are written side by side"),

	INT64("demo", "simulate", simulate, "-1", -1, 100000, "simulate", CONFIG_RESTART,
	      "cameras of the built-in simulator; 0 none; -1: 16 when the registry is empty"),
	UINT("demo", "sim_port", sim_port, "8554", 1, 65535, "sim-port", CONFIG_RESTART,
	     "the simulator's RTSP port on 127.0.0.1"),
	PATH("demo", "camsim", camsim, "", "camsim", CONFIG_RESTART,
	     "simulator binary; empty: nvr-camsim next to nvrd"),
	PATH("demo", "fixtures", fixtures, "", "fixtures", CONFIG_RESTART,
	     "simulator video files; empty: BINDIR/../fixtures"),

	STRING("daemon", "log_level", log_level, "info", "debug|info|warn|error", "log-level",
	       CONFIG_LIVE, "lowest level of the log lines written"),
	DURATION("daemon", "stop_after", stop_after_ms, "0", 0, 3650 * DAY, "seconds",
	         CONFIG_RESTART, "stop after this long (tests, demos); 0 runs until a signal"),
};
const size_t config_option_count = sizeof config_options / sizeof config_options[0];

/* Sections: the singletons hold rows of config_options, "volume" and
 * "class" are named and repeated, "camera" takes the registry's fields. */
enum section_kind { SEC_SINGLE, SEC_VOLUME, SEC_CLASS, SEC_CAMERA };

struct section {
	const char *name;
	enum section_kind kind;
	const char *doc;
};

static const struct section config_sections[] = {
	{ "storage", SEC_SINGLE, "The data directory, the volumes and the storage engine." },
	{ "volume", SEC_VOLUME, "`[volume NAME]`, repeated: one volume (a disk) each. When "
	  "any is given, storage.volumes must not be." },
	{ "class", SEC_CLASS, "`[class NAME]`, repeated: retention classes that cameras name "
	  "in retention_class (applied by the retention module)." },
	{ "ingest", SEC_SINGLE, "Camera sessions: threads, transport, retries." },
	{ "http", SEC_SINGLE, "The HTTP API and UI. With tls_cert and tls_key the port serves "
	  "HTTPS only; plain_http_port adds a plain HTTP port." },
	{ "auth", SEC_SINGLE, "Authentication of API users." },
	{ "limits", SEC_SINGLE, "Bounds on what HTTP clients may ask and hold." },
	{ "exports", SEC_SINGLE, "Evidence exports: an MP4 per camera and a manifest, outside the ring." },
	{ "demo", SEC_SINGLE, "The built-in camera simulator." },
	{ "daemon", SEC_SINGLE, "The daemon itself." },
	{ "camera", SEC_CAMERA, "`[camera ID]`, repeated: static cameras, merged into the "
	  "camera registry at start and on SIGHUP (see below)." },
};
#define SECTION_COUNT (sizeof config_sections / sizeof config_sections[0])

/* ---- errors -------------------------------------------------------------- */

static void add_error(struct config_errors *e, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_error(struct config_errors *e, const char *file, int line, const char *fmt, ...)
{
	if (!e || e->count >= CONFIG_MAX_ERRORS)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char *out = e->msg[e->count];
	size_t n = sizeof e->msg[0];
	if (line > 0)
		snprintf(out, n, "%s:%d: %s", file, line, msg);
	else if (line < 0)
		snprintf(out, n, "command line: %s", msg);
	else
		snprintf(out, n, "%s: %s", file ? file : "defaults", msg);
	e->line[e->count++] = line;
}

/* Lines in order (stable): syntax errors are found after the others. */
static void sort_errors(struct config_errors *e)
{
	for (int i = 1; i < e->count; i++)
		for (int k = i; k > 0 && e->line[k] < e->line[k - 1]; k--) {
			char tmp[sizeof e->msg[0]];
			int l = e->line[k];
			memcpy(tmp, e->msg[k], sizeof tmp);
			memcpy(e->msg[k], e->msg[k - 1], sizeof tmp);
			memcpy(e->msg[k - 1], tmp, sizeof tmp);
			e->line[k] = e->line[k - 1];
			e->line[k - 1] = l;
		}
}

/* ---- values -------------------------------------------------------------- */

static void *field(void *base, const struct config_option *o)
{
	return (char *)base + o->offset;
}

static const void *cfield(const void *base, const struct config_option *o)
{
	return (const char *)base + o->offset;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
			*out = !strcasecmp(s, yes[i]);
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_int64(const char *s, int64_t *out)
{
	uint64_t v;
	bool neg = *s == '-';
	if (cli_parse_uint(s + neg, 0, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &v))
		return -EINVAL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	if (!strcmp(s, "0")) {
		*out = 0;
		return 0;
	}
	return vp_parse_size(s, out);
}

/* "500ms", "30s", "5m", "12h", "7d"; a bare number is seconds. */
static int parse_duration(const char *s, uint64_t *out)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 },
	};
	size_t digits = strspn(s, "0123456789");
	char num[24];
	uint64_t v;
	if (digits == 0 || digits >= sizeof num)
		return -EINVAL;
	memcpy(num, s, digits);
	num[digits] = '\0';
	if (cli_parse_uint(num, 0, UINT64_MAX, &v))
		return -EINVAL;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(s + digits, units[i].unit))
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -EINVAL;
		*out = v * units[i].ms;
		return 0;
	}
	return -EINVAL;
}

static bool one_of(const char *s, const char *choices)
{
	size_t len = strlen(s);
	for (const char *p = choices; *p;) {
		size_t n = strcspn(p, "|");
		if (n == len && !strncmp(p, s, n))
			return true;
		p += n + (p[n] == '|');
	}
	return false;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A bound or value in the row's own unit: "4M", "7d", "500ms", "-1". */
static void format_number(enum config_type t, int64_t v, char *buf, size_t bufsz)
{
	struct unit {
		const char *unit;
		int64_t mult;
	};
	static const struct unit sizes[] = {
		{ "T", TIB }, { "G", GIB }, { "M", MIB }, { "K", KIB },
	}, durations[] = {
		{ "d", DAY }, { "h", 3600 * SEC }, { "m", 60 * SEC }, { "s", SEC },
	};
	const struct unit *u = t == CONFIG_SIZE ? sizes : t == CONFIG_DURATION ? durations : NULL;
	for (int i = 0; u && v != 0 && i < 4; i++) {
		if (v % u[i].mult == 0) {
			snprintf(buf, bufsz, "%" PRId64 "%s", v / u[i].mult, u[i].unit);
			return;
		}
	}
	snprintf(buf, bufsz, "%" PRId64 "%s", v, t == CONFIG_DURATION ? "ms" : "");
}

static int range_error(const struct config_option *o, char *err, size_t errsz)
{
	char lo[32], hi[32];
	format_number(o->type, o->min, lo, sizeof lo);
	format_number(o->type, o->max, hi, sizeof hi);
	snprintf(err, errsz, "out of range (%s to %s)", lo, hi);
	return -EINVAL;
}

static int set_text(void *base, const struct config_option *o, const char *s, char *err,
                    size_t errsz)
{
	if (has_control(s)) {
		snprintf(err, errsz, "has a control character");
		return -EINVAL;
	}
	if (o->choices && !one_of(s, o->choices)) {
		snprintf(err, errsz, "must be one of %s", o->choices);
		return -EINVAL;
	}
	struct in6_addr a;
	if (o->type == CONFIG_ADDRESS && inet_pton(AF_INET, s, &a) != 1 &&
	    inet_pton(AF_INET6, s, &a) != 1) {
		snprintf(err, errsz, "not an IPv4 or IPv6 address");
		return -EINVAL;
	}
	char *copy = strdup(s);
	if (!copy) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	char **slot = field(base, o);
	free(*slot);
	*slot = copy;
	return 0;
}

static const char *type_want(enum config_type t)
{
	switch (t) {
	case CONFIG_BOOL: return "not true or false";
	case CONFIG_UINT: return "not a whole number";
	case CONFIG_INT64: return "not a whole number";
	case CONFIG_SIZE: return "not a size (bytes, or a number with K, M, G or T)";
	case CONFIG_DURATION: return "not a duration (a number with ms, s, m, h or d)";
	default: return "not valid";
	}
}

/* Parses s into row o of base (a struct nvr_config or a section element). */
static int set_value(void *base, const struct config_option *o, const char *s, char *err,
                     size_t errsz)
{
	uint64_t u = 0;
	int64_t i = 0;
	int rc = 0;
	switch (o->type) {
	case CONFIG_STRING:
	case CONFIG_ADDRESS:
	case CONFIG_PATH:
		return set_text(base, o, s, err, errsz);
	case CONFIG_BOOL:
		rc = parse_bool(s, field(base, o));
		break;
	case CONFIG_UINT: rc = cli_parse_uint(s, 0, UINT64_MAX, &u); break;
	case CONFIG_SIZE: rc = parse_size(s, &u); break;
	case CONFIG_DURATION: rc = parse_duration(s, &u); break;
	case CONFIG_INT64: rc = parse_int64(s, &i); break;
	}
	if (rc) {
		snprintf(err, errsz, "%s", type_want(o->type));
		return -EINVAL;
	}
	if (o->type == CONFIG_BOOL)
		return 0;
	if (o->type == CONFIG_INT64) {
		if (i < o->min || i > o->max)
			return range_error(o, err, errsz);
		*(int64_t *)field(base, o) = i;
		return 0;
	}
	if (u < (uint64_t)o->min || u > (uint64_t)o->max)
		return range_error(o, err, errsz);
	*(uint64_t *)field(base, o) = u;
	return 0;
}

static size_t row_index(const struct config_option *o)
{
	return (size_t)(o - config_options);
}

int config_set(struct nvr_config *c, const struct config_option *o, const char *text,
               char *err, size_t errsz)
{
	int rc = set_value(c, o, text, err, errsz);
	if (!rc)
		c->line[row_index(o)] = -1;
	return rc;
}

/* Sets every row of `section` in base to its default. */
static int set_defaults(void *base, const char *section)
{
	char err[128];
	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *o = &config_options[i];
		if (strcmp(o->section, section))
			continue;
		int rc = set_value(base, o, o->def, err, sizeof err);
		if (rc)
			return rc;
	}
	return 0;
}

int config_defaults(struct nvr_config *c)
{
	memset(c, 0, sizeof *c);
	c->line = calloc(config_option_count, sizeof *c->line);
	if (!c->line)
		return -ENOMEM;
	for (size_t s = 0; s < SECTION_COUNT; s++) {
		if (config_sections[s].kind != SEC_SINGLE)
			continue;
		int rc = set_defaults(c, config_sections[s].name);
		if (rc) {
			config_free(c);
			return rc;
		}
	}
	return 0;
}

static bool is_text(enum config_type t)
{
	return t == CONFIG_STRING || t == CONFIG_ADDRESS || t == CONFIG_PATH;
}

static void free_texts(void *base, const char *section)
{
	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *o = &config_options[i];
		if (!strcmp(o->section, section) && is_text(o->type)) {
			char **slot = field(base, o);
			free(*slot);
			*slot = NULL;
		}
	}
}

void config_free(struct nvr_config *c)
{
	for (size_t s = 0; s < SECTION_COUNT; s++)
		if (config_sections[s].kind == SEC_SINGLE)
			free_texts(c, config_sections[s].name);
	for (int i = 0; i < c->volume_count; i++) {
		free_texts(&c->volume[i], "volume");
		free(c->volume[i].name);
	}
	for (int i = 0; i < c->class_count; i++)
		free(c->cls[i].name);
	free(c->camera);
	free(c->line);
	free(c->file);
	memset(c, 0, sizeof *c);
}

bool config_equal(const struct nvr_config *a, const struct nvr_config *b,
                  const struct config_option *o)
{
	const void *x = cfield(a, o), *y = cfield(b, o);
	switch (o->type) {
	case CONFIG_BOOL:
		return *(const bool *)x == *(const bool *)y;
	case CONFIG_INT64:
		return *(const int64_t *)x == *(const int64_t *)y;
	case CONFIG_STRING:
	case CONFIG_ADDRESS:
	case CONFIG_PATH:
		return !strcmp(*(char *const *)x, *(char *const *)y);
	default:
		return *(const uint64_t *)x == *(const uint64_t *)y;
	}
}

int config_copy(struct nvr_config *to, const struct nvr_config *from,
                const struct config_option *o)
{
	char err[128];
	int rc = 0;
	if (is_text(o->type))
		rc = set_text(to, o, *(char *const *)cfield(from, o), err, sizeof err);
	else
		memcpy(field(to, o), cfield(from, o), o->type == CONFIG_BOOL ? sizeof(bool) :
		       sizeof(uint64_t));
	if (!rc)
		to->line[row_index(o)] = from->line[row_index(o)];
	return rc;
}

static int format_row(const void *base, const struct config_option *o, char *buf, size_t bufsz)
{
	const void *v = cfield(base, o);
	switch (o->type) {
	case CONFIG_BOOL:
		return snprintf(buf, bufsz, "%s", *(const bool *)v ? "true" : "false");
	case CONFIG_INT64:
		return snprintf(buf, bufsz, "%" PRId64, *(const int64_t *)v);
	case CONFIG_STRING:
	case CONFIG_ADDRESS:
	case CONFIG_PATH:
		return snprintf(buf, bufsz, "%s", *(char *const *)v);
	default:
		format_number(o->type, (int64_t)*(const uint64_t *)v, buf, bufsz);
		return (int)strlen(buf);
	}
}

int config_format(const struct nvr_config *c, const struct config_option *o, char *buf,
                  size_t bufsz)
{
	return format_row(c, o, buf, bufsz);
}

void config_name(const struct config_option *o, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s.%s", o->section, o->key);
}

/* ---- reading a file ------------------------------------------------------ */

struct key_seen {
	char key[64];
	int line;
};

struct section_seen {
	char *text;
	int line;
};

struct parse {
	struct nvr_config *c;
	struct config_errors *errs;
	const char *file;
	FILE *f;
	char *buf;
	size_t bufcap;
	int line;                    /* lines handed to inih so far */
	int header_line;             /* the last [section] header read */
	char cur[128];               /* the section of the previous entry */
	int cur_header;              /* and the line of its header */
	bool started;
	const struct section *sec;   /* NULL: unknown, errors already given */
	void *elem;                  /* element of a named section */
	struct key_seen keys[CFG_MAX_KEYS];
	int nkeys;
	struct section_seen *seen;
	size_t nseen, capseen;
	int err;                     /* out of memory and the like */
};

/* inih's reader: one line per call, counted; longer lines are errors. */
static char *config_read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	ssize_t len = getline(&p->buf, &p->bufcap, p->f);
	if (len < 0)
		return NULL;
	p->line++;
	if (len >= num - 1) {
		add_error(p->errs, p->file, p->line, "line longer than %d bytes", num - 2);
		p->buf[0] = '\0';
		len = 0;
	}
	memcpy(str, p->buf, (size_t)len + 1);
	const char *t = p->buf + strspn(p->buf, " \t");
	if (*t == '[')
		p->header_line = p->line;
	return str;
}

static void trim(char *s)
{
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	size_t lead = strspn(s, " \t");
	memmove(s, s + lead, len - lead + 1);
}

static bool is_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 31)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

static int remember_section(struct parse *p, const char *text)
{
	for (size_t i = 0; i < p->nseen; i++) {
		if (!strcmp(p->seen[i].text, text)) {
			add_error(p->errs, p->file, p->header_line,
			          "section [%s] repeated (first on line %d)", text, p->seen[i].line);
			return -EEXIST;
		}
	}
	if (p->nseen == p->capseen) {
		size_t cap = p->capseen ? p->capseen * 2 : 32;
		struct section_seen *s = realloc(p->seen, cap * sizeof *s);
		if (!s)
			return p->err = -ENOMEM;
		p->seen = s;
		p->capseen = cap;
	}
	p->seen[p->nseen].text = strdup(text);
	if (!p->seen[p->nseen].text)
		return p->err = -ENOMEM;
	p->seen[p->nseen++].line = p->header_line;
	return 0;
}

static void *new_volume(struct parse *p, const char *name)
{
	struct nvr_config *c = p->c;
	if (c->volume_count == CONFIG_MAX_VOLUMES) {
		add_error(p->errs, p->file, p->header_line, "more than %d volumes", CONFIG_MAX_VOLUMES);
		return NULL;
	}
	struct config_volume *v = &c->volume[c->volume_count];
	memset(v, 0, sizeof *v);
	v->name = strdup(name);
	if (!v->name || set_defaults(v, "volume")) {
		p->err = -ENOMEM;
		free_texts(v, "volume");
		free(v->name);
		return NULL;
	}
	v->line = p->header_line;
	c->volume_count++;
	return v;
}

static void *new_class(struct parse *p, const char *name)
{
	struct nvr_config *c = p->c;
	if (c->class_count == CONFIG_MAX_CLASSES) {
		add_error(p->errs, p->file, p->header_line, "more than %d classes", CONFIG_MAX_CLASSES);
		return NULL;
	}
	struct config_class *k = &c->cls[c->class_count];
	memset(k, 0, sizeof *k);
	k->name = strdup(name);
	if (!k->name || set_defaults(k, "class")) {
		p->err = -ENOMEM;
		free(k->name);
		return NULL;
	}
	k->line = p->header_line;
	c->class_count++;
	return k;
}

static void *new_camera(struct parse *p, const char *id)
{
	struct nvr_config *c = p->c;
	char err[160];
	if (c->camera_count == c->camera_cap) {
		size_t cap = c->camera_cap ? c->camera_cap * 2 : 16;
		struct config_camera *v = realloc(c->camera, cap * sizeof *v);
		if (!v) {
			p->err = -ENOMEM;
			return NULL;
		}
		c->camera = v;
		c->camera_cap = cap;
	}
	struct config_camera *cam = &c->camera[c->camera_count];
	camera_record_init(&cam->rec);
	if (camera_record_set(&cam->rec, "id", id, err, sizeof err)) {
		add_error(p->errs, p->file, p->header_line, "[camera %s]: %s", id, err);
		return NULL;
	}
	cam->line = p->header_line;
	cam->nkeys = 0;
	c->camera_count++;
	return cam;
}

static const struct section *find_section(const char *name)
{
	for (size_t i = 0; i < SECTION_COUNT; i++)
		if (!strcmp(config_sections[i].name, name))
			return &config_sections[i];
	return NULL;
}

/* A new section starts: checks its header and makes its element. */
static void enter_section(struct parse *p, const char *section)
{
	char text[128], *name;
	p->nkeys = 0;
	p->sec = NULL;
	p->elem = NULL;
	snprintf(text, sizeof text, "%s", section);
	trim(text);
	name = text + strcspn(text, " \t");
	if (*name)
		*name++ = '\0';
	trim(name);
	const struct section *s = find_section(text);
	if (!s) {
		add_error(p->errs, p->file, p->header_line, "unknown section [%s]", text);
		return;
	}
	if (s->kind == SEC_SINGLE && *name) {
		add_error(p->errs, p->file, p->header_line, "section [%s] takes no name", text);
		return;
	}
	if (s->kind != SEC_SINGLE && !*name) {
		add_error(p->errs, p->file, p->header_line, "section [%s] needs a %s: [%s %s]", text,
		          s->kind == SEC_CAMERA ? "camera id" : "name", text,
		          s->kind == SEC_CAMERA ? "ID" : "NAME");
		return;
	}
	if ((s->kind == SEC_VOLUME || s->kind == SEC_CLASS) && !is_name(name)) {
		add_error(p->errs, p->file, p->header_line,
		          "section [%s NAME]: the name must be 1 to 31 of [a-z0-9_-]", text);
		return;
	}
	char norm[sizeof text + 2];
	snprintf(norm, sizeof norm, "%s%s%s", text, *name ? " " : "", name);
	if (remember_section(p, norm))
		return;
	if (s->kind == SEC_VOLUME)
		p->elem = new_volume(p, name);
	else if (s->kind == SEC_CLASS)
		p->elem = new_class(p, name);
	else if (s->kind == SEC_CAMERA)
		p->elem = new_camera(p, name);
	if (s->kind == SEC_SINGLE || p->elem)
		p->sec = s;
}

/* Refuses a key given twice in one section. */
static bool repeated_key(struct parse *p, const char *key)
{
	for (int i = 0; i < p->nkeys; i++) {
		if (!strcmp(p->keys[i].key, key)) {
			add_error(p->errs, p->file, p->line, "key '%s' repeated (first on line %d)", key,
			          p->keys[i].line);
			return true;
		}
	}
	if (p->nkeys < CFG_MAX_KEYS) {
		snprintf(p->keys[p->nkeys].key, sizeof p->keys[0].key, "%s", key);
		p->keys[p->nkeys++].line = p->line;
	}
	return false;
}

static const struct config_option *find_row(const char *section, const char *key)
{
	for (size_t i = 0; i < config_option_count; i++)
		if (!strcmp(config_options[i].section, section) && !strcmp(config_options[i].key, key))
			return &config_options[i];
	return NULL;
}

static void camera_entry(struct parse *p, const char *key, const char *value)
{
	struct config_camera *cam = p->elem;
	char err[160];
	if (!strcmp(key, "id")) {
		add_error(p->errs, p->file, p->line, "[camera %u]: the id is in the section name",
		          cam->rec.id);
		return;
	}
	int rc = camera_record_set(&cam->rec, key, value, err, sizeof err);
	if (rc != -ENOENT && cam->nkeys < (int)(sizeof cam->keys / sizeof cam->keys[0])) {
		snprintf(cam->keys[cam->nkeys].key, sizeof cam->keys[0].key, "%s", key);
		cam->keys[cam->nkeys++].line = p->line;
	}
	if (rc == -ENOENT)
		add_error(p->errs, p->file, p->line, "unknown key '%s' in [camera]", key);
	else if (rc)
		add_error(p->errs, p->file, p->line, "[camera %u]: %s", cam->rec.id, err);
}

static void row_entry(struct parse *p, const char *key, const char *value)
{
	const struct config_option *o = find_row(p->sec->name, key);
	char err[160];
	if (!o) {
		add_error(p->errs, p->file, p->line, "unknown key '%s' in [%s]", key, p->sec->name);
		return;
	}
	void *base = p->sec->kind == SEC_SINGLE ? (void *)p->c : p->elem;
	int rc = set_value(base, o, value, err, sizeof err);
	if (rc == -ENOMEM)
		p->err = rc;
	if (rc)
		add_error(p->errs, p->file, p->line, "%s.%s: %s", o->section, o->key, err);
	else if (p->sec->kind == SEC_SINGLE)
		p->c->line[row_index(o)] = p->line;
}

/* inih's callback: one `key = value`; always "success" (errors are ours).
 * A new header (another section text, or the same text under a header
 * read since) starts a section. */
static int config_entry(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;
	if (!p->started || strcmp(section, p->cur) || p->header_line != p->cur_header) {
		p->started = true;
		p->cur_header = p->header_line;
		snprintf(p->cur, sizeof p->cur, "%s", section);
		p->sec = NULL;
		if (section[0])
			enter_section(p, section);
	}
	if (!section[0]) {
		add_error(p->errs, p->file, p->line, "key '%s' is outside a section", key);
		return 1;
	}
	if (!p->sec || repeated_key(p, key))
		return 1;
	if (p->sec->kind == SEC_CAMERA)
		camera_entry(p, key, value);
	else
		row_entry(p, key, value);
	return 1;
}

static int parse_file(struct parse *p)
{
	ini_max_line = CFG_MAX_LINE;
	ini_allow_multiline = false;
	ini_stop_on_first_error = false;
	int rc = ini_parse_stream(config_read_line, p, config_entry, p);
	if (rc > 0)
		add_error(p->errs, p->file, rc, "syntax error: expected [section] or key = value");
	else if (rc < 0)
		add_error(p->errs, p->file, 0, "out of memory");
	if (ferror(p->f)) {
		add_error(p->errs, p->file, 0, "read error");
		return -EIO;
	}
	return p->err ? p->err : rc < 0 ? -ENOMEM : 0;
}

int config_load(const char *path, struct nvr_config *c, struct config_errors *errs)
{
	struct parse p = { .c = c, .errs = errs, .file = path };
	errs->count = 0;
	int err = config_defaults(c);
	if (err) {
		add_error(errs, path, 0, "out of memory");
		return err;
	}
	c->file = strdup(path);
	p.f = fopen(path, "r");
	if (!c->file || !p.f) {
		err = c->file ? -errno : -ENOMEM;
		add_error(errs, path, 0, "cannot open: %s", strerror(-err));
		goto fail;
	}
	err = parse_file(&p);
	if (!err && errs->count == 0)
		err = config_check(c, errs);
fail:
	if (p.f)
		fclose(p.f);
	for (size_t i = 0; i < p.nseen; i++)
		free(p.seen[i].text);
	free(p.seen);
	free(p.buf);
	sort_errors(errs);
	if (!err && errs->count)
		err = -EINVAL;
	return err;
}

/* ---- checks across settings ---------------------------------------------- */

/* The line of a row, for errors about it. */
static int line_of(const struct nvr_config *c, const char *section, const char *key)
{
	const struct config_option *o = find_row(section, key);
	return o ? c->line[row_index(o)] : 0;
}

static int later(int a, int b)
{
	if (a < 0 || b < 0)
		return -1;
	return a > b ? a : b;
}

static void check_http(const struct nvr_config *c, struct config_errors *e)
{
	const char *f = c->file;
	bool cert = c->tls_cert[0], key = c->tls_key[0];
	if (cert != key)
		add_error(e, f, line_of(c, "http", cert ? "tls_cert" : "tls_key"),
		          "http.tls_cert and http.tls_key must be set together");
	if (c->plain_http_port && !cert)
		add_error(e, f, line_of(c, "http", "plain_http_port"),
		          "http.plain_http_port needs TLS (tls_cert and tls_key); without TLS "
		          "http.port is the plain HTTP port");
	if (c->plain_http_port && c->plain_http_port == c->http_port)
		add_error(e, f, later(line_of(c, "http", "plain_http_port"), line_of(c, "http", "port")),
		          "http.plain_http_port is the same as http.port");
}

static void check_ingest(const struct nvr_config *c, struct config_errors *e)
{
	const char *f = c->file;
	if (c->udp_port_min >= c->udp_port_max)
		add_error(e, f, later(line_of(c, "ingest", "udp_port_min"),
		                      line_of(c, "ingest", "udp_port_max")),
		          "ingest.udp_port_min must be below ingest.udp_port_max");
	if (c->backoff_min_ms > c->backoff_max_ms)
		add_error(e, f, later(line_of(c, "ingest", "backoff_min"),
		                      line_of(c, "ingest", "backoff_max")),
		          "ingest.backoff_min is above ingest.backoff_max");
}

static void check_volumes(const struct nvr_config *c, struct config_errors *e)
{
	const char *f = c->file;
	int vl = line_of(c, "storage", "volumes");
	if (c->volume_count && vl)
		add_error(e, f, vl, "storage.volumes and [volume] sections exclude each other");
	for (int i = 0; i < c->volume_count; i++) {
		const struct config_volume *v = &c->volume[i];
		if (!v->path[0])
			add_error(e, f, v->line, "[volume %s] has no path", v->name);
		if (v->size && v->size < VP_MIN_SEGMENTS * VP_MIB)
			add_error(e, f, v->line, "[volume %s]: size below 4M", v->name);
		for (int k = 0; k < i; k++)
			if (v->path[0] && !strcmp(v->path, c->volume[k].path))
				add_error(e, f, v->line, "[volume %s] has the path of [volume %s]", v->name,
				          c->volume[k].name);
	}
}

static bool class_known(const struct nvr_config *c, const char *name)
{
	for (int i = 0; i < c->class_count; i++)
		if (!strcmp(c->cls[i].name, name))
			return true;
	return false;
}

static void check_classes(const struct nvr_config *c, struct config_errors *e)
{
	uint64_t share = 0;
	for (int i = 0; i < c->class_count; i++) {
		const struct config_class *k = &c->cls[i];
		if (k->max_days && k->min_days > k->max_days)
			add_error(e, c->file, k->line, "[class %s]: min_days is above max_days", k->name);
		share += k->share;
		if (share > 100)
			add_error(e, c->file, k->line, "[class %s]: the shares add up to more than 100",
			          k->name);
	}
}

/* The line of the key a validation message starts with ("main_url is ..."),
 * else the camera's header line. */
static int camera_error_line(const struct config_camera *cam, const char *err)
{
	size_t n = strcspn(err, " ");
	for (int k = 0; k < cam->nkeys; k++)
		if (strlen(cam->keys[k].key) == n && !strncmp(cam->keys[k].key, err, n))
			return cam->keys[k].line;
	return cam->line;
}

/* [camera 5] and [camera 05] are different sections but one camera. */
static void check_camera_ids(const struct nvr_config *c, struct config_errors *e)
{
	for (size_t i = 1; i < c->camera_count; i++)
		for (size_t k = 0; k < i; k++)
			if (c->camera[i].rec.id == c->camera[k].rec.id) {
				add_error(e, c->file, c->camera[i].line, "[camera %u] repeated (first on line %d)",
				          c->camera[i].rec.id, c->camera[k].line);
				break;
			}
}

static void check_cameras(const struct nvr_config *c, struct config_errors *e)
{
	char err[256];
	check_camera_ids(c, e);
	for (size_t i = 0; i < c->camera_count; i++) {
		const struct camera_record *r = &c->camera[i].rec;
		if (camera_record_validate(r, err, sizeof err))
			add_error(e, c->file, camera_error_line(&c->camera[i], err), "[camera %u]: %s",
			          r->id, err);
		else if (r->retention_class[0] && c->class_count && !class_known(c, r->retention_class))
			add_error(e, c->file, camera_error_line(&c->camera[i], "retention_class"),
			          "[camera %u]: retention_class '%s' is not a [class]", r->id,
			          r->retention_class);
	}
}

int config_check(const struct nvr_config *c, struct config_errors *errs)
{
	int before = errs->count;
	check_http(c, errs);
	check_ingest(c, errs);
	check_volumes(c, errs);
	check_classes(c, errs);
	check_cameras(c, errs);
	sort_errors(errs);
	return errs->count > before ? -EINVAL : 0;
}

/* ---- documentation ------------------------------------------------------- */

static const char *type_name(enum config_type t)
{
	static const char *const names[] = { "string", "bool", "uint", "int64", "size",
	                                     "duration", "address", "path" };
	return names[t];
}

static void print_range(FILE *out, const struct config_option *o)
{
	char lo[32], hi[32];
	if (o->choices) {
		fprintf(out, "%s", o->choices);
		return;
	}
	if (is_text(o->type) || o->type == CONFIG_BOOL)
		return;
	format_number(o->type, o->min, lo, sizeof lo);
	format_number(o->type, o->max, hi, sizeof hi);
	fprintf(out, "%s to %s", lo, hi);
}

static void print_rows(FILE *out, const char *section)
{
	static const char *const reload[] = { "restart", "live", "HTTP restart" };
	fprintf(out, "| key | type | default | range | option | on SIGHUP | meaning |\n"
	        "|-----|------|---------|-------|--------|-----------|---------|\n");
	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *o = &config_options[i];
		if (strcmp(o->section, section))
			continue;
		fprintf(out, "| `%s` | %s | %s%s%s | ", o->key, type_name(o->type),
		        o->def[0] ? "`" : "", o->def[0] ? o->def : "(empty)", o->def[0] ? "`" : "");
		print_range(out, o);
		fprintf(out, " | %s%s%s | %s | %s |\n", o->cli ? "`--" : "", o->cli ? o->cli : "",
		        o->cli ? "`" : "", reload[o->reload], o->doc);
	}
}

static void print_camera_keys(FILE *out)
{
	fprintf(out, "Keys: the camera registry's fields (`nvrctl cameras import` columns), "
	        "with the same syntax:");
	for (int i = 0; registry_csv_columns[i]; i++)
		if (strcmp(registry_csv_columns[i], "id"))
			fprintf(out, " `%s`", registry_csv_columns[i]);
	fprintf(out, ". The id is the section name; `name` and `main_url` are required.\n\n"
	        "How file cameras and the registry coexist: at start and on every SIGHUP each "
	        "camera of the file is written into the registry (inserted, or replaced if it "
	        "differs), so the file wins over edits made with nvrctl to those cameras. "
	        "The ids taken from the file are remembered in `DIR/config-cameras`; a camera "
	        "that was in the file and is no longer is deleted from the registry. Cameras "
	        "imported with `nvrctl cameras import` and never listed in the file are never "
	        "touched. Recording follows the registry: a changed URL, credentials or "
	        "transport restarts that camera's session, other cameras keep recording.\n");
}

static const char doc_intro[] =
	"# nvrd configuration reference\n\n"
	"Generated by `nvrd --print-config-doc` from the settings table in `nvr/config.c`; "
	"do not edit by hand (a test compares this file with the table).\n\n"
	"`nvrd --config FILE` reads an INI file (installed: `/etc/nvr/nvr.conf`); without "
	"`--config` every setting takes its default (the demo: data in `./nvr-data`, "
	"simulated cameras). Command-line options override the file. "
	"`nvrd --check-config --config FILE` checks a file without starting: it prints "
	"`configuration ok` and exits 0, or prints each error as `FILE:LINE: message` "
	"and exits 1.\n\n"
	"Syntax: `[section]` or `[section NAME]` headers, `key = value` lines, comments on "
	"lines starting with `#` or `;` (and after ` ;` on a value line). An unknown "
	"section or key, a bad or out-of-range value, a key given twice in a section and a "
	"repeated section are errors. Values: `bool` true/false/yes/no/on/off/1/0; "
	"`uint`, `int64` decimal; `size` bytes with an optional K, M, G or T (powers of "
	"1024); `duration` a number with ms, s, m, h or d (a bare number is seconds); "
	"`address` an IPv4 or IPv6 literal; `path` relative to nvrd's working directory.\n\n"
	"Signals: SIGHUP re-reads the file. Settings marked *live* change at once, "
	"*HTTP restart* ones restart the HTTP server (requests in flight are cut, "
	"recording goes on), cameras are merged into the registry; settings marked "
	"*restart* keep their running value and a line `event=config_needs_restart` names "
	"them. A file with errors is logged (`FILE:LINE: message`) and the running "
	"configuration kept. SIGTERM and SIGINT stop cleanly: every camera's frames are "
	"written and indexed before nvrd exits.\n";

int config_print_doc(FILE *out)
{
	fputs(doc_intro, out);
	for (size_t s = 0; s < SECTION_COUNT; s++) {
		const struct section *sec = &config_sections[s];
		fprintf(out, "\n## [%s]\n\n%s\n\n", sec->name, sec->doc);
		if (sec->kind == SEC_CAMERA)
			print_camera_keys(out);
		else
			print_rows(out, sec->name);
	}
	return fflush(out) || ferror(out) ? -EIO : 0;
}
