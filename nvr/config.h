/*
 * config.h - nvrd's configuration: the settings, their defaults and the
 * INI file that sets them (/etc/nvr/nvr.conf when installed).
 *
 * Every setting is one row of a const table (config.c, config_options):
 * section, key, type, where it lives in struct nvr_config, default (as the
 * text a file would hold), bounds, the nvrd long option that overrides it,
 * whether a reload can change it, and a one-line description. The parser,
 * the command-line options, the reload and docs/CONFIG.md
 * (`nvrd --print-config-doc`) all read that table: adding a setting is
 * adding a member below and a row there.
 *
 * File format: INI, parsed by libinih. `[section]` or, for repeated
 * sections, `[volume NAME]`, `[class NAME]`, `[camera ID]`; `key = value`;
 * lines starting with '#' or ';' are comments, and so is " ;" after a
 * value. Every mistake is reported as "FILE:LINE: message": unknown
 * section or key, bad or out-of-range value, a key given twice, a section
 * repeated, and the checks across settings (config_load runs them all).
 *
 * Values: bool true/false/yes/no/on/off/1/0; uint and int64 decimal; size
 * bytes with an optional K, M, G, T suffix (powers of 1024); duration a
 * number with ms, s, m, h or d (a bare number is seconds); address an IPv4
 * or IPv6 literal; path and string any text (relative paths are relative
 * to nvrd's working directory).
 *
 * Static cameras: each [camera ID] is a camera record (registry.h) whose
 * keys are the registry's CSV columns. The registry stays the source of
 * truth; config_cameras.h describes how the file's cameras are merged
 * into it.
 */
#ifndef NVR_CONFIG_H
#define NVR_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "registry.h"

#define CONFIG_MAX_VOLUMES 64
#define CONFIG_MAX_CLASSES 64
#define CONFIG_MAX_ERRORS 32

enum config_type {
	CONFIG_STRING,     /* char *, optionally one of `choices` */
	CONFIG_BOOL,       /* bool */
	CONFIG_UINT,       /* uint64_t */
	CONFIG_INT64,      /* int64_t */
	CONFIG_SIZE,       /* uint64_t bytes */
	CONFIG_DURATION,   /* uint64_t milliseconds */
	CONFIG_ADDRESS,    /* char *, an IPv4 or IPv6 literal */
	CONFIG_PATH,       /* char * */
};

/* What a reload (SIGHUP) does when a setting changed. */
enum config_reload {
	CONFIG_RESTART,    /* kept until nvrd restarts (logged) */
	CONFIG_LIVE,       /* applied at once */
	CONFIG_HTTP,       /* applied by restarting the HTTP server */
};

/* [volume NAME]: a volume directory of its own (else DIR/volN). */
struct config_volume {
	char *name;
	char *path;
	uint64_t size;             /* bytes when formatted; 0: storage.volume_size */
	int line;                  /* of its [volume NAME] header */
};

/* [class NAME]: a retention class. */
struct config_class {
	char *name;
	uint64_t min_days, max_days, share;
	int line;
};

/* [camera ID]: a camera listed in the file. */
struct config_camera {
	struct camera_record rec;
	int line;                  /* of its [camera ID] header */
	struct {
		char key[24];
		int line;
	} keys[16];                /* where each key was set, for errors */
	int nkeys;
};

struct nvr_config {
	/* [storage] */
	char *data_dir;
	uint64_t volumes;
	uint64_t volume_size;
	uint64_t queue_bytes;
	uint64_t flush_interval_ms;
	uint64_t chunk_bytes;
	uint64_t writer_threads;
	/* [ingest] */
	uint64_t loops;
	uint64_t av_threads;
	char *transport;
	uint64_t udp_port_min, udp_port_max;
	uint64_t backoff_min_ms, backoff_max_ms;
	uint64_t timeout_ms;
	uint64_t max_clock_skew_ms;
	uint64_t recv_buffer_max;
	uint64_t recv_batch_ms;
	uint64_t max_connecting;
	/* [http] */
	char *http_listen;
	uint64_t http_port;
	char *tls_cert;
	char *tls_key;
	uint64_t plain_http_port;
	uint64_t http_threads;
	char *static_dir;
	/* [auth] */
	bool auth_enabled;
	/* [limits] */
	uint64_t max_window_ms;
	uint64_t max_connections;
	uint64_t connection_timeout_ms;
	uint64_t connection_memory;
	uint64_t request_rate, request_burst;
	/* [exports] */
	char *exports_dir;
	uint64_t exports_quota;
	uint64_t export_workers;
	uint64_t export_threads;
	/* [demo] */
	int64_t simulate;          /* -1: automatic */
	uint64_t sim_port;
	char *camsim;
	char *fixtures;
	/* [daemon] */
	char *log_level;
	uint64_t stop_after_ms;

	/* Repeated sections, in file order. */
	struct config_volume volume[CONFIG_MAX_VOLUMES];
	int volume_count;
	struct config_class cls[CONFIG_MAX_CLASSES];
	int class_count;
	struct config_camera *camera;
	size_t camera_count, camera_cap;

	/* Where each table row was set: its line in the file, -1 on the
	 * command line, 0 when it holds its default. */
	int *line;
	char *file;                /* the file read, NULL for the defaults */
};

struct config_option {
	const char *section;       /* "http"; "volume"/"class" rows: [NAME] sections */
	const char *key;
	enum config_type type;
	size_t offset;             /* in struct nvr_config, or config_volume/class */
	const char *def;           /* default, as file text ("" for empty strings) */
	int64_t min, max;          /* numbers, sizes (bytes), durations (ms) */
	const char *choices;       /* strings: "a|b|c", or NULL for any */
	const char *cli;           /* nvrd's --option, or NULL */
	enum config_reload reload;
	const char *doc;
};

extern const struct config_option config_options[];
extern const size_t config_option_count;

/* Errors as "FILE:LINE: message" lines (the first CONFIG_MAX_ERRORS). */
struct config_errors {
	int count;
	int line[CONFIG_MAX_ERRORS];          /* 0: the file, -1: the command line */
	char msg[CONFIG_MAX_ERRORS][320];
};

/* Fills c with every default (the embedded configuration). 0 or -ENOMEM. */
int config_defaults(struct nvr_config *c);

/* Reads `path` over the defaults and checks the result (config_check).
 * Returns 0, -EINVAL with errs filled (nothing of c usable but freeable),
 * or another negative errno (also described in errs). */
int config_load(const char *path, struct nvr_config *c, struct config_errors *errs);

/* Sets one row from text given on the command line (line -1). Returns 0 or
 * -EINVAL with a message ("out of range (1 to 64)") in err. */
int config_set(struct nvr_config *c, const struct config_option *o, const char *text,
               char *err, size_t errsz);

/* The checks across settings (TLS key without certificate, port ranges,
 * volumes, classes, cameras); errors name the line of the setting. */
int config_check(const struct nvr_config *c, struct config_errors *errs);

/* Frees what c holds (c itself is the caller's). */
void config_free(struct nvr_config *c);

/* Whether row o holds the same value in a and b. */
bool config_equal(const struct nvr_config *a, const struct nvr_config *b,
                  const struct config_option *o);

/* Copies row o from `from` into `to` (for a setting a reload must keep). */
int config_copy(struct nvr_config *to, const struct nvr_config *from,
                const struct config_option *o);

/* Row o's value as text ("2G", "30s", "true"); the buffer's length. */
int config_format(const struct nvr_config *c, const struct config_option *o, char *buf,
                  size_t bufsz);

/* The "section.key" name of a row ("volume.path" for named sections). */
void config_name(const struct config_option *o, char *buf, size_t bufsz);

/* Writes the Markdown reference of every setting (docs/CONFIG.md). */
int config_print_doc(FILE *out);

#endif
