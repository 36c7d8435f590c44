/*
 * registry.h - the camera registry: every camera the recorder knows, with
 * its stream URLs, credentials, location and tags, kept in its own LMDB
 * environment (one database, key = camera id big-endian, value = the
 * camera as a JSON object).
 *
 * Import and export as CSV (header row, columns as in registry_csv_columns)
 * and JSON (an array of objects with the same field names) are all or
 * nothing: a whole file is parsed and checked first, then applied in one
 * write transaction; a bad row is reported with its line number and nothing
 * of that import is applied.
 *
 * Credentials (username, password) are stored because the ingest needs
 * them; they are never logged, and exports leave them out unless the caller
 * asks for them explicitly (REGISTRY_EXPORT_CREDENTIALS, for backups).
 *
 * Several processes may use one registry at once (LMDB): the daemon reads
 * it, nvrctl edits it; registry_generation() changes on every write so the
 * daemon can notice edits.
 */
#ifndef NVR_REGISTRY_H
#define NVR_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define REGISTRY_MAX_TAGS 16

struct camera_record {
	uint32_t id;                  /* 1 .. 2^31-1 */
	char name[128];
	char main_url[512];           /* rtsp://, or any URL libavformat opens */
	char sub_url[512];            /* "" when none */
	char username[128];           /* secret: never logged or exported by default */
	char password[128];           /* secret: never logged or exported by default */
	double latitude, longitude;   /* WGS84 degrees; NAN when unknown */
	char tags[REGISTRY_MAX_TAGS][32];
	int tag_count;
	char site[128];
	char district[128];
	char retention_class[32];     /* "" = the default class */
	char transport[8];            /* RTSP: "tcp" (interleaved, default) or "udp" */
	bool enabled;
};

/* The CSV columns and JSON keys, in export order; NULL-terminated. */
extern const char *const registry_csv_columns[];

struct registry;

/* Opens (creating) the registry environment in directory `dir`. */
int registry_open(const char *dir, struct registry **out);
void registry_close(struct registry *r);

/* Changes whenever any process commits a change to the registry. */
uint64_t registry_generation(struct registry *r);

int registry_get(struct registry *r, uint32_t id, struct camera_record *out);
int registry_put(struct registry *r, const struct camera_record *c);  /* insert or replace */
/* Stores c unless the registry already holds exactly that record; *changed
 * says whether it wrote (a write moves the generation). */
int registry_upsert(struct registry *r, const struct camera_record *c, bool *changed);
int registry_delete(struct registry *r, uint32_t id);                 /* -ENOENT if absent */

/* Calls fn for every camera in id order; stops early if fn returns non-zero
 * (and returns that value). */
typedef int (*registry_each_fn)(void *user, const struct camera_record *c);
int registry_foreach(struct registry *r, registry_each_fn fn, void *user);
int registry_count(struct registry *r, uint64_t *out);

/* A record holding the defaults: enabled, position unknown, every other
 * field empty (id 0, which is not valid until set). */
void camera_record_init(struct camera_record *c);

/* Sets the field called `name` (a CSV column: "id", "main_url", "tags", ...)
 * from its CSV text. Returns 0, -ENOENT for an unknown name, or -EINVAL
 * with a message naming the field, never quoting its value. */
int camera_record_set(struct camera_record *c, const char *name, const char *text,
                      char *err, size_t errsz);

/* Checks one record (id range, URL scheme, lat/lon range, tag syntax...).
 * Returns 0 or -EINVAL with a message in err. */
int camera_record_validate(const struct camera_record *c, char *err,
                           size_t errsz);

enum registry_format { REGISTRY_CSV, REGISTRY_JSON };

enum registry_import_flags {
	REGISTRY_IMPORT_REPLACE = 1,  /* delete cameras not in the file */
};

struct registry_import_result {
	uint64_t rows;                /* cameras in the file */
	uint64_t added, updated, removed;
	int error_line;               /* line of the first bad row (CSV: file line; JSON: line of the object) */
	char error[256];              /* what was wrong with it; no secrets */
};

/* Imports a whole file (all or nothing). Returns 0, or -EINVAL with
 * res->error_line/res->error set and nothing applied, or another negative
 * errno for I/O or index failures. */
int registry_import(struct registry *r, FILE *in, enum registry_format fmt,
                    unsigned flags, struct registry_import_result *res);

enum registry_export_flags {
	REGISTRY_EXPORT_CREDENTIALS = 1,
};
int registry_export(struct registry *r, FILE *out, enum registry_format fmt,
                    unsigned flags);

#endif
