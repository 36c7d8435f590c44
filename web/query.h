/*
 * query.h - the query string of an HTTP request, parsed into a fixed table,
 * and typed getters that name the parameter when a value is wrong.
 *
 * query_parse() splits "a=1&b=x%20y&a=2" at '&' and '=', percent-decodes
 * keys and values ('+' is a space) and keeps them in order; a key may repeat
 * (query_all). Nothing is allocated: at most QUERY_MAX_PARAMS parameters,
 * keys up to QUERY_MAX_KEY-1 bytes and values up to QUERY_MAX_VALUE-1 bytes;
 * more, longer, bad escapes or NUL bytes are refused with a query_error.
 *
 * Times (query_time) are RFC 3339 with a zone, with or without fractional
 * seconds ("2026-01-01T12:00:00Z", "2026-01-01T12:00:00.5+08:00"), or epoch
 * milliseconds as a plain integer; they come back as epoch microseconds.
 */
#ifndef WEB_QUERY_H
#define WEB_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUERY_MAX_PARAMS 32
#define QUERY_MAX_KEY 32
#define QUERY_MAX_VALUE 512

struct query_param {
	char key[QUERY_MAX_KEY];
	char value[QUERY_MAX_VALUE];
};

struct query {
	struct query_param params[QUERY_MAX_PARAMS];
	int count;
};

/* What was wrong, for an HTTP 400 answer. */
struct query_error {
	char parameter[QUERY_MAX_KEY];   /* "" when not about one parameter */
	char message[192];
};

/* Parses `len` bytes of a query string (without the '?'). Returns 0, or
 * -EINVAL / -E2BIG with err filled. */
int query_parse(const char *s, size_t len, struct query *q, struct query_error *err);

/* The first value of `key`, or NULL. */
const char *query_get(const struct query *q, const char *key);

/* Every value of `key` in order, up to max; returns how many there are. */
int query_all(const struct query *q, const char *key, const char **out, int max);

/* Typed getters: 0 when absent (out = def), 1 when present and valid,
 * -EINVAL with err naming the parameter when present and invalid. */
int query_int(const struct query *q, const char *key, int64_t min, int64_t max,
              int64_t def, int64_t *out, struct query_error *err);
int query_double(const struct query *q, const char *key, double min, double max,
                 double def, double *out, struct query_error *err);
int query_time(const struct query *q, const char *key, int64_t *out_us,
               struct query_error *err);

/* The same conversions on one string: 0 or -EINVAL. */
int query_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
int query_parse_double(const char *s, double min, double max, double *out);
int query_parse_time(const char *s, int64_t *out_us);

/* "2026-01-01T12:00:00.500Z" (UTC, milliseconds); returns 0 or -ERANGE. */
int query_format_time(int64_t us, char *buf, size_t n);

#endif
