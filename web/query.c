/*
 * query.c - query-string parsing and typed getters (query.h).
 *
 * Every byte comes from the network: the parser reads only `len` bytes,
 * writes only into the fixed table and refuses what does not fit rather
 * than truncating it, so that a handler never acts on half a value.
 */
#include "query.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_MAX_EPOCH_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

static int query_fail(struct query_error *err, const char *param, int code,
                      const char *fmt, const char *what)
{
	if (err) {
		snprintf(err->parameter, sizeof err->parameter, "%s", param ? param : "");
		snprintf(err->message, sizeof err->message, fmt, what);
	}
	return code;
}

static int query_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..len) into out (size n, NUL-terminated). -E2BIG if too long,
 * -EINVAL on a bad escape or a NUL byte. */
static int query_decode(const char *s, size_t len, char *out, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (len - i < 3 || query_hex(s[i + 1]) < 0 || query_hex(s[i + 2]) < 0)
				return -EINVAL;
			c = query_hex(s[i + 1]) * 16 + query_hex(s[i + 2]);
			i += 2;
		}
		if (c == 0)
			return -EINVAL;
		if (o + 1 >= n)
			return -E2BIG;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static int query_add(struct query *q, const char *s, size_t len, struct query_error *err)
{
	const char *eq = memchr(s, '=', len);
	size_t klen = eq ? (size_t)(eq - s) : len;
	if (q->count >= QUERY_MAX_PARAMS)
		return query_fail(err, NULL, -E2BIG, "more than %s parameters", "32");
	struct query_param *p = &q->params[q->count];
	int e = query_decode(s, klen, p->key, sizeof p->key);
	if (e || !p->key[0])
		return query_fail(err, NULL, e == -E2BIG ? -E2BIG : -EINVAL, "%s parameter name",
		                  e == -E2BIG ? "too long a" : "a bad or empty");
	e = eq ? query_decode(eq + 1, len - klen - 1, p->value, sizeof p->value) : 0;
	if (!eq)
		p->value[0] = '\0';
	if (e)
		return query_fail(err, p->key, e, "%s value", e == -E2BIG ? "too long a" :
		                  "a bad percent-escape or NUL byte in the");
	q->count++;
	return 0;
}

int query_parse(const char *s, size_t len, struct query *q, struct query_error *err)
{
	q->count = 0;
	size_t i = 0;
	while (i < len) {
		const char *amp = memchr(s + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - s) : len;
		if (end > i) {
			int e = query_add(q, s + i, end - i, err);
			if (e)
				return e;
		}
		i = end + 1;
	}
	return 0;
}

const char *query_get(const struct query *q, const char *key)
{
	for (int i = 0; i < q->count; i++)
		if (strcmp(q->params[i].key, key) == 0)
			return q->params[i].value;
	return NULL;
}

int query_all(const struct query *q, const char *key, const char **out, int max)
{
	int n = 0;
	for (int i = 0; i < q->count; i++)
		if (strcmp(q->params[i].key, key) == 0) {
			if (n < max)
				out[n] = q->params[i].value;
			n++;
		}
	return n;
}

/* ---- numbers ------------------------------------------------------------- */

int query_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s[0] || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int query_parse_double(const char *s, double min, double max, double *out)
{
	if (!s[0] || !(s[0] == '-' || s[0] == '+' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')))
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int query_int(const struct query *q, const char *key, int64_t min, int64_t max,
              int64_t def, int64_t *out, struct query_error *err)
{
	const char *v = query_get(q, key);
	*out = def;
	if (!v)
		return 0;
	if (query_parse_int(v, min, max, out)) {
		char range[64];
		snprintf(range, sizeof range, "%" PRId64 " to %" PRId64, min, max);
		return query_fail(err, key, -EINVAL, "must be a whole number from %s", range);
	}
	return 1;
}

int query_double(const struct query *q, const char *key, double min, double max,
                 double def, double *out, struct query_error *err)
{
	const char *v = query_get(q, key);
	*out = def;
	if (!v)
		return 0;
	if (query_parse_double(v, min, max, out)) {
		char range[64];
		snprintf(range, sizeof range, "%g to %g", min, max);
		return query_fail(err, key, -EINVAL, "must be a number from %s", range);
	}
	return 1;
}

/* ---- times --------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t query_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void query_civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int query_days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p into *out; advances *p. */
static int query_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -EINVAL;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int query_expect(const char **p, const char *one_of)
{
	if (!**p || !strchr(one_of, **p))
		return -EINVAL;
	(*p)++;
	return 0;
}

/* ".5" -> 500000 microseconds (digits past the sixth are dropped). */
static int query_fraction(const char **p, int64_t *us)
{
	*us = 0;
	if (**p != '.')
		return 0;
	(*p)++;
	int n = 0;
	int64_t scale = 100000;
	while (**p >= '0' && **p <= '9') {
		if (n < 6)
			*us += (**p - '0') * scale;
		scale /= 10;
		(*p)++;
		n++;
	}
	return n > 0 && n <= 9 ? 0 : -EINVAL;
}

/* "Z", or "+HH:MM" / "-HH:MM" -> offset east of UTC in seconds. */
static int query_zone(const char **p, int64_t *offset_s)
{
	*offset_s = 0;
	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		return 0;
	}
	int sign = **p == '+' ? 1 : **p == '-' ? -1 : 0;
	int hh, mm;
	if (!sign)
		return -EINVAL;
	(*p)++;
	if (query_digits(p, 2, &hh) || query_expect(p, ":") || query_digits(p, 2, &mm) ||
	    hh > 23 || mm > 59)
		return -EINVAL;
	*offset_s = sign * (hh * 3600 + mm * 60);
	return 0;
}

static int query_parse_rfc3339(const char *s, int64_t *out_us)
{
	const char *p = s;
	int y, mo, d, h, mi, se;
	int64_t frac, off;
	if (query_digits(&p, 4, &y) || query_expect(&p, "-") || query_digits(&p, 2, &mo) ||
	    query_expect(&p, "-") || query_digits(&p, 2, &d) || query_expect(&p, "Tt ") ||
	    query_digits(&p, 2, &h) || query_expect(&p, ":") || query_digits(&p, 2, &mi) ||
	    query_expect(&p, ":") || query_digits(&p, 2, &se) || query_fraction(&p, &frac) ||
	    query_zone(&p, &off) || *p)
		return -EINVAL;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > query_days_in_month(y, mo) || h > 23 ||
	    mi > 59 || se > 59)
		return -EINVAL;
	int64_t secs = query_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
	*out_us = secs * 1000000 + frac;
	return 0;
}

int query_parse_time(const char *s, int64_t *out_us)
{
	size_t n = strnlen(s, 40);
	if (n == 0 || n >= 40)
		return -EINVAL;
	if (strspn(s, "0123456789") == n) {
		int64_t ms;
		if (n > 15 || query_parse_int(s, 0, QUERY_MAX_EPOCH_MS, &ms))
			return -EINVAL;
		*out_us = ms * 1000;
		return 0;
	}
	return query_parse_rfc3339(s, out_us);
}

int query_time(const struct query *q, const char *key, int64_t *out_us,
               struct query_error *err)
{
	const char *v = query_get(q, key);
	*out_us = 0;
	if (!v)
		return 0;
	if (query_parse_time(v, out_us))
		return query_fail(err, key, -EINVAL, "%s", "must be an RFC 3339 time with a zone "
		                  "(2026-01-01T12:00:00Z) or epoch milliseconds");
	return 1;
}

int query_format_time(int64_t us, char *buf, size_t n)
{
	int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	int64_t sod = secs - days * 86400;
	int y, m, d;
	query_civil_from_days(days, &y, &m, &d);
	if (y < 1 || y > 9999)
		return -ERANGE;
	int w = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, (int)(sod / 3600),
	                 (int)(sod / 60 % 60), (int)(sod % 60), (int)(ms - secs * 1000));
	return w > 0 && (size_t)w < n ? 0 : -ERANGE;
}
