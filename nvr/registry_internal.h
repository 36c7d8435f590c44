/*
 * registry_internal.h - what the registry's three files share; not a public
 * header (nothing outside nvr/registry*.c includes it).
 *
 *   registry.c         the LMDB store: open, get, put, delete, foreach, and
 *                      applying an import batch in one write transaction
 *   registry_record.c  one camera: the field table, validation, the stored
 *                      JSON form and the CSV text form of each field
 *   registry_io.c      CSV and JSON import (parse + check into a batch) and
 *                      export
 *
 * Stored value: the camera as a compact JSON object with every field of
 * reg_fields in table order (credentials included). Latitude and longitude
 * are kept to 1e-7 degree (about 1 cm): the encoder rounds them, so what a
 * CSV or JSON export prints reads back as exactly the same double.
 */
#ifndef NVR_REGISTRY_INTERNAL_H
#define NVR_REGISTRY_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

enum reg_kind {
	REG_ID,        /* uint32_t, 1 .. 2^31-1 */
	REG_TEXT,      /* char[size], no control characters */
	REG_URL,       /* char[size], a scheme we can open (or "" for sub_url) */
	REG_COORD,     /* double, NAN = unknown */
	REG_TAGS,      /* tags[] + tag_count; CSV: separated by ';' */
	REG_BOOL,      /* bool; CSV: true/false/1/0/yes/no */
};

struct reg_field {
	const char *name;      /* CSV column and JSON key */
	enum reg_kind kind;
	size_t off;            /* offset in struct camera_record */
	size_t size;           /* REG_TEXT, REG_URL: size of the char array */
	bool secret;           /* exported only with REGISTRY_EXPORT_CREDENTIALS */
};

/* Every field, in CSV column order (registry_csv_columns holds the names). */
enum {
	REG_F_ID, REG_F_NAME, REG_F_MAIN_URL, REG_F_SUB_URL, REG_F_USERNAME,
	REG_F_PASSWORD, REG_F_LATITUDE, REG_F_LONGITUDE, REG_F_TAGS, REG_F_SITE,
	REG_F_DISTRICT, REG_F_RETENTION_CLASS, REG_F_TRANSPORT, REG_F_ENABLED,
	REG_NFIELDS
};
extern const struct reg_field reg_fields[REG_NFIELDS];

/* Bits of reg_fields indexes: which fields an input row or object carried. */
#define REG_BIT(f) (1u << (f))
#define REG_CREDENTIAL_BITS (REG_BIT(REG_F_USERNAME) | REG_BIT(REG_F_PASSWORD))

/* How stored values and JSON exports are printed (see the top comment). */
#define REG_JSON_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

/* Copies at most 40 bytes of an unknown column or key name into dst for an
 * error message, with control characters and '"' shown as '?'. */
void reg_safe_name(char *dst, size_t dstsz, const char *s, size_t len);

/* Index of the field called name[0..len), or -1. */
int reg_field_find(const char *name, size_t len);

/* A record with the defaults: enabled, position unknown, everything else
 * empty (id 0, which is not valid until set). */
void reg_record_init(struct camera_record *c);

/* Sets field f of c from CSV text s[0..len) (not NUL-terminated). Returns 0
 * or -EINVAL with a message naming the field, never quoting its value. */
int reg_field_from_text(int f, const char *s, size_t len,
                        struct camera_record *c, char *err, size_t errsz);

/* Writes field f of c as CSV text into buf (NUL-terminated). Returns the
 * length, or -ENOSPC if buf is too small. */
int reg_field_to_text(int f, const struct camera_record *c, char *buf,
                      size_t bufsz);

/* The camera as a JSON object with the fields in table order; the
 * credentials only when `credentials`. NULL when out of memory. */
json_t *reg_record_to_json(const struct camera_record *c, bool credentials);

/* Reads a JSON object into c (starting from the defaults). Unknown keys and
 * wrong types are errors. *present gets the REG_BIT of every key found.
 * Returns 0 or -EINVAL with a message; does not validate the values. */
int reg_record_from_json(const json_t *obj, struct camera_record *c,
                         unsigned *present, char *err, size_t errsz);

/* The stored form of a camera: malloc'd compact JSON text in *out, length
 * in *len. Returns 0 or -ENOMEM. */
int reg_record_encode(const struct camera_record *c, char **out, size_t *len);

/* Reads a stored value back. Returns 0 or -EINVAL (message in err). */
int reg_record_decode(const void *val, size_t len, struct camera_record *c,
                      char *err, size_t errsz);

/* One camera of an import, checked and encoded, waiting to be applied. */
struct reg_entry {
	uint32_t id;
	int line;            /* where its row or object starts */
	unsigned keep;       /* REG_CREDENTIAL_BITS absent from the input: keep
	                        the stored value of these fields */
	char *val;           /* stored form (reg_record_encode) */
	size_t len;
};

/* Applies entries (sorted by id, ids unique) in one write transaction:
 * inserts, replaces, with REGISTRY_IMPORT_REPLACE deletes the cameras not
 * among them; fills res->added, updated (stored value changed), removed. */
int reg_apply(struct registry *r, struct reg_entry *e, size_t n,
              unsigned flags, struct registry_import_result *res);

#endif
