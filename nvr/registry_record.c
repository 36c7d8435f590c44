/*
 * registry_record.c - one camera of the registry: the table of its fields
 * (CSV column = JSON key), the checks of camera_record_validate, and the two
 * text forms of a record: JSON (stored value, JSON import and export) and
 * the CSV text of each field.
 *
 * Every conversion goes through reg_fields, so a field is named, typed and
 * bounded in one place. Error messages name the field and what is wrong with
 * it, never its value: a value may be a password, and URLs often carry
 * credentials too.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_parse.h"
#include "registry_internal.h"

#define REG_ID_MAX 2147483647u

#define TEXT(n, k, member, secret) \
	{ n, k, offsetof(struct camera_record, member), \
	  sizeof(((struct camera_record *)0)->member), secret }

const struct reg_field reg_fields[REG_NFIELDS] = {
	[REG_F_ID]              = { "id", REG_ID, offsetof(struct camera_record, id), 0, false },
	[REG_F_NAME]            = TEXT("name", REG_TEXT, name, false),
	[REG_F_MAIN_URL]        = TEXT("main_url", REG_URL, main_url, false),
	[REG_F_SUB_URL]         = TEXT("sub_url", REG_URL, sub_url, false),
	[REG_F_USERNAME]        = TEXT("username", REG_TEXT, username, true),
	[REG_F_PASSWORD]        = TEXT("password", REG_TEXT, password, true),
	[REG_F_LATITUDE]        = { "latitude", REG_COORD, offsetof(struct camera_record, latitude), 0, false },
	[REG_F_LONGITUDE]       = { "longitude", REG_COORD, offsetof(struct camera_record, longitude), 0, false },
	[REG_F_TAGS]            = { "tags", REG_TAGS, offsetof(struct camera_record, tags), 0, false },
	[REG_F_SITE]            = TEXT("site", REG_TEXT, site, false),
	[REG_F_DISTRICT]        = TEXT("district", REG_TEXT, district, false),
	[REG_F_RETENTION_CLASS] = TEXT("retention_class", REG_TEXT, retention_class, false),
	[REG_F_TRANSPORT]       = TEXT("transport", REG_TEXT, transport, false),
	[REG_F_ENABLED]         = { "enabled", REG_BOOL, offsetof(struct camera_record, enabled), 0, false },
};

const char *const registry_csv_columns[REG_NFIELDS + 1] = {
	"id", "name", "main_url", "sub_url", "username", "password", "latitude",
	"longitude", "tags", "site", "district", "retention_class", "transport",
	"enabled", NULL,
};

/* URL prefixes libavformat or the RTSP client opens (compared without case);
 * an absolute path is accepted too. */
static const char *const url_schemes[] = {
	"rtsp://", "rtsps://", "http://", "https://", "rtmp://", "file:",
};

static int fail_msg(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_msg(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errsz)
		vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static char *text_of(struct camera_record *c, int f)
{
	return (char *)c + reg_fields[f].off;
}

static const char *ctext_of(const struct camera_record *c, int f)
{
	return (const char *)c + reg_fields[f].off;
}

static double *coord_of(struct camera_record *c, int f)
{
	return (double *)((char *)c + reg_fields[f].off);
}

static double ccoord_of(const struct camera_record *c, int f)
{
	return *(const double *)((const char *)c + reg_fields[f].off);
}

void reg_safe_name(char *dst, size_t dstsz, const char *s, size_t len)
{
	size_t n = len < 40 ? len : 40;
	if (!dstsz)
		return;
	if (n > dstsz - 1)
		n = dstsz - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		dst[i] = (ch < 0x20 || ch == 0x7f || ch == '"') ? '?' : (char)ch;
	}
	dst[n] = '\0';
}

int reg_field_find(const char *name, size_t len)
{
	for (int f = 0; f < REG_NFIELDS; f++)
		if (strlen(reg_fields[f].name) == len && !memcmp(reg_fields[f].name, name, len))
			return f;
	return -1;
}

void reg_record_init(struct camera_record *c)
{
	memset(c, 0, sizeof *c);
	c->latitude = NAN;
	c->longitude = NAN;
	c->enabled = true;
}

static bool has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

static bool is_tag_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

static bool is_tag_word(const char *s, size_t min, size_t max)
{
	size_t len = strnlen(s, max + 1);
	if (len < min || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_tag_char(s[i]))
			return false;
	return true;
}

/* ---- validation ---- */

static bool url_scheme_ok(const char *u)
{
	if (u[0] == '/')
		return u[1] != '\0';
	for (size_t i = 0; i < sizeof url_schemes / sizeof url_schemes[0]; i++) {
		size_t n = strlen(url_schemes[i]);
		if (!strncasecmp(u, url_schemes[i], n))
			return u[n] != '\0';
	}
	return false;
}

/* Bounded, free of control characters, valid UTF-8 (jansson refuses to
 * make a string of anything else). */
static int check_text(const struct camera_record *c, int f, char *err, size_t errsz)
{
	const char *s = ctext_of(c, f);
	size_t size = reg_fields[f].size;
	size_t len = strnlen(s, size);
	if (len == size)
		return fail_msg(err, errsz, "%s is longer than %zu bytes", reg_fields[f].name, size - 1);
	if (has_control(s, len))
		return fail_msg(err, errsz, "%s has a control character", reg_fields[f].name);
	bool ascii = true;
	for (size_t i = 0; i < len && ascii; i++)
		ascii = (unsigned char)s[i] < 0x80;
	if (ascii)
		return 0;
	json_t *j = json_stringn(s, len);
	if (!j)
		return fail_msg(err, errsz, "%s is not valid UTF-8", reg_fields[f].name);
	json_decref(j);
	return 0;
}

static int check_url(const struct camera_record *c, int f, char *err, size_t errsz)
{
	const char *u = ctext_of(c, f);
	if (!u[0]) {
		if (f == REG_F_MAIN_URL)
			return fail_msg(err, errsz, "main_url is empty");
		return 0;
	}
	if (!url_scheme_ok(u))
		return fail_msg(err, errsz, "%s is not an rtsp://, rtsps://, http://, https://, "
		                "rtmp:// or file: URL or an absolute path", reg_fields[f].name);
	if (u[0] != '/' && strncasecmp(u, "file:", 5) && strchr(u, ' '))
		return fail_msg(err, errsz, "%s has a space", reg_fields[f].name);
	return 0;
}

static int check_position(const struct camera_record *c, char *err, size_t errsz)
{
	bool lat_known = !isnan(c->latitude), lon_known = !isnan(c->longitude);
	if (lat_known != lon_known)
		return fail_msg(err, errsz, "latitude and longitude must both be set or both be empty");
	if (lat_known && !(c->latitude >= -90.0 && c->latitude <= 90.0))
		return fail_msg(err, errsz, "latitude is outside [-90, 90]");
	if (lon_known && !(c->longitude >= -180.0 && c->longitude <= 180.0))
		return fail_msg(err, errsz, "longitude is outside [-180, 180]");
	return 0;
}

static int check_tags(const struct camera_record *c, char *err, size_t errsz)
{
	if (c->tag_count < 0 || c->tag_count > REGISTRY_MAX_TAGS)
		return fail_msg(err, errsz, "more than %d tags", REGISTRY_MAX_TAGS);
	for (int i = 0; i < c->tag_count; i++) {
		if (!is_tag_word(c->tags[i], 1, sizeof c->tags[i] - 1))
			return fail_msg(err, errsz, "tag %d is not 1 to 31 of [a-z0-9_-]", i + 1);
		for (int k = 0; k < i; k++)
			if (!strcmp(c->tags[k], c->tags[i]))
				return fail_msg(err, errsz, "tag %d repeats tag %d", i + 1, k + 1);
	}
	return 0;
}

int camera_record_validate(const struct camera_record *c, char *err, size_t errsz)
{
	int rc;
	if (c->id < 1 || c->id > REG_ID_MAX)
		return fail_msg(err, errsz, "id is outside 1..%u", REG_ID_MAX);
	for (int f = 0; f < REG_NFIELDS; f++) {
		enum reg_kind k = reg_fields[f].kind;
		if (k != REG_TEXT && k != REG_URL)
			continue;
		if ((rc = check_text(c, f, err, errsz)))
			return rc;
		if (k == REG_URL && (rc = check_url(c, f, err, errsz)))
			return rc;
	}
	if (!c->name[0])
		return fail_msg(err, errsz, "name is empty");
	if ((rc = check_position(c, err, errsz)) || (rc = check_tags(c, err, errsz)))
		return rc;
	if (c->retention_class[0] && !is_tag_word(c->retention_class, 1, sizeof c->retention_class - 1))
		return fail_msg(err, errsz, "retention_class is not [a-z0-9_-]");
	if (c->transport[0] && strcmp(c->transport, "tcp") && strcmp(c->transport, "udp"))
		return fail_msg(err, errsz, "transport is not tcp, udp or empty");
	return 0;
}

/* ---- the public record helpers ---- */

void camera_record_init(struct camera_record *c)
{
	reg_record_init(c);
}

int camera_record_set(struct camera_record *c, const char *name, const char *text,
                      char *err, size_t errsz)
{
	int f = reg_field_find(name, strlen(name));
	if (f < 0)
		return -ENOENT;
	return reg_field_from_text(f, text, strlen(text), c, err, errsz);
}

/* ---- CSV text of one field ---- */

static int text_from(int f, const char *s, size_t len, struct camera_record *c,
                     char *err, size_t errsz)
{
	if (len >= reg_fields[f].size)
		return fail_msg(err, errsz, "%s is longer than %zu bytes", reg_fields[f].name,
		                reg_fields[f].size - 1);
	if (has_control(s, len))
		return fail_msg(err, errsz, "%s has a control character", reg_fields[f].name);
	memcpy(text_of(c, f), s, len);
	text_of(c, f)[len] = '\0';
	return 0;
}

static int id_from(const char *s, size_t len, struct camera_record *c, char *err, size_t errsz)
{
	char buf[16];
	uint32_t v;
	if (len == 0)
		return fail_msg(err, errsz, "id is empty");
	if (len >= sizeof buf)
		return fail_msg(err, errsz, "id is outside 1..%u", REG_ID_MAX);
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (cli_parse_u32(buf, 1, REG_ID_MAX, &v))
		return fail_msg(err, errsz, "id is not a number in 1..%u", REG_ID_MAX);
	c->id = v;
	return 0;
}

static int coord_from(int f, const char *s, size_t len, struct camera_record *c,
                      char *err, size_t errsz)
{
	char buf[40];
	if (len == 0) {
		*coord_of(c, f) = NAN;
		return 0;
	}
	if (len >= sizeof buf)
		return fail_msg(err, errsz, "%s is not a number", reg_fields[f].name);
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *end;
	double v = strtod(buf, &end);
	if (strspn(buf, "0123456789+-.eE") != len || *end || !isfinite(v))
		return fail_msg(err, errsz, "%s is not a number", reg_fields[f].name);
	*coord_of(c, f) = v;
	return 0;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* "a;b;c": blanks and line breaks around each tag are dropped, so a
 * spreadsheet cell with one tag per line reads as expected. */
static int tags_from(const char *s, size_t len, struct camera_record *c, char *err, size_t errsz)
{
	c->tag_count = 0;
	size_t i = 0;
	while (i < len && is_blank(s[i]))
		i++;
	if (i == len)
		return 0;
	for (;;) {
		size_t start = i;
		while (i < len && s[i] != ';')
			i++;
		size_t a = start, b = i;
		while (a < b && is_blank(s[a]))
			a++;
		while (b > a && is_blank(s[b - 1]))
			b--;
		if (a == b)
			return fail_msg(err, errsz, "tags has an empty tag");
		if (c->tag_count == REGISTRY_MAX_TAGS)
			return fail_msg(err, errsz, "more than %d tags", REGISTRY_MAX_TAGS);
		if (b - a >= sizeof c->tags[0] || has_control(s + a, b - a))
			return fail_msg(err, errsz, "tag %d is not 1 to 31 of [a-z0-9_-]", c->tag_count + 1);
		memcpy(c->tags[c->tag_count], s + a, b - a);
		c->tags[c->tag_count][b - a] = '\0';
		c->tag_count++;
		if (i == len)
			return 0;
		i++;                       /* the ';' */
	}
}

static int bool_from(const char *s, size_t len, struct camera_record *c, char *err, size_t errsz)
{
	static const char *const yes[] = { "true", "1", "yes" }, *const no[] = { "false", "0", "no" };
	if (len == 0) {
		c->enabled = true;
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		if (strlen(yes[i]) == len && !strncasecmp(s, yes[i], len)) {
			c->enabled = true;
			return 0;
		}
		if (strlen(no[i]) == len && !strncasecmp(s, no[i], len)) {
			c->enabled = false;
			return 0;
		}
	}
	return fail_msg(err, errsz, "enabled is not true, false, 1, 0, yes or no");
}

int reg_field_from_text(int f, const char *s, size_t len, struct camera_record *c,
                        char *err, size_t errsz)
{
	switch (reg_fields[f].kind) {
	case REG_ID:    return id_from(s, len, c, err, errsz);
	case REG_TEXT:
	case REG_URL:   return text_from(f, s, len, c, err, errsz);
	case REG_COORD: return coord_from(f, s, len, c, err, errsz);
	case REG_TAGS:  return tags_from(s, len, c, err, errsz);
	case REG_BOOL:  return bool_from(s, len, c, err, errsz);
	}
	return fail_msg(err, errsz, "%s has no text form", reg_fields[f].name);
}

static double quantize(double deg)
{
	return round(deg * 1e7) / 1e7;
}

/* Degrees to 7 decimals, trailing zeros dropped: "52.52", "-0.1". */
static int coord_text(double v, char *buf, size_t bufsz)
{
	if (isnan(v)) {
		buf[0] = '\0';
		return 0;
	}
	int n = snprintf(buf, bufsz, "%.7f", quantize(v));
	if (n < 0 || (size_t)n >= bufsz)
		return -ENOSPC;
	while (n > 0 && buf[n - 1] == '0')
		n--;
	if (n > 0 && buf[n - 1] == '.')
		n--;
	buf[n] = '\0';
	return n;
}

static int tags_text(const struct camera_record *c, char *buf, size_t bufsz)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < c->tag_count; i++) {
		int w = snprintf(buf + n, bufsz - n, "%s%s", i ? ";" : "", c->tags[i]);
		if (w < 0 || (size_t)w >= bufsz - n)
			return -ENOSPC;
		n += (size_t)w;
	}
	return (int)n;
}

int reg_field_to_text(int f, const struct camera_record *c, char *buf, size_t bufsz)
{
	int n;
	if (!bufsz)
		return -ENOSPC;
	switch (reg_fields[f].kind) {
	case REG_ID:
		n = snprintf(buf, bufsz, "%u", c->id);
		break;
	case REG_TEXT:
	case REG_URL:
		n = snprintf(buf, bufsz, "%s", ctext_of(c, f));
		break;
	case REG_COORD:
		return coord_text(ccoord_of(c, f), buf, bufsz);
	case REG_TAGS:
		return tags_text(c, buf, bufsz);
	case REG_BOOL:
		n = snprintf(buf, bufsz, "%s", c->enabled ? "true" : "false");
		break;
	default:
		return -EINVAL;
	}
	return (n < 0 || (size_t)n >= bufsz) ? -ENOSPC : n;
}

/* ---- JSON form ---- */

static json_t *field_json(int f, const struct camera_record *c)
{
	switch (reg_fields[f].kind) {
	case REG_ID:
		return json_integer(c->id);
	case REG_TEXT:
	case REG_URL:
		return json_string(ctext_of(c, f));
	case REG_COORD: {
		double v = ccoord_of(c, f);
		return isnan(v) ? json_null() : json_real(quantize(v));
	}
	case REG_TAGS: {
		json_t *a = json_array();
		for (int i = 0; a && i < c->tag_count; i++)
			if (json_array_append_new(a, json_string(c->tags[i]))) {
				json_decref(a);
				return NULL;
			}
		return a;
	}
	case REG_BOOL:
		return json_boolean(c->enabled);
	}
	return NULL;
}

json_t *reg_record_to_json(const struct camera_record *c, bool credentials)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	for (int f = 0; f < REG_NFIELDS; f++) {
		if (reg_fields[f].secret && !credentials)
			continue;
		if (json_object_set_new(o, reg_fields[f].name, field_json(f, c))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static int text_from_json(int f, const json_t *v, struct camera_record *c, char *err, size_t errsz)
{
	if (!json_is_string(v))
		return fail_msg(err, errsz, "%s is not a string", reg_fields[f].name);
	return text_from(f, json_string_value(v), json_string_length(v), c, err, errsz);
}

static int tags_from_json(const json_t *v, struct camera_record *c, char *err, size_t errsz)
{
	if (!json_is_array(v))
		return fail_msg(err, errsz, "tags is not an array of strings");
	if (json_array_size(v) > REGISTRY_MAX_TAGS)
		return fail_msg(err, errsz, "more than %d tags", REGISTRY_MAX_TAGS);
	c->tag_count = 0;
	size_t i;
	json_t *t;
	json_array_foreach(v, i, t) {
		if (!json_is_string(t))
			return fail_msg(err, errsz, "tags is not an array of strings");
		size_t len = json_string_length(t);
		if (len >= sizeof c->tags[0] || has_control(json_string_value(t), len))
			return fail_msg(err, errsz, "tag %zu is not 1 to 31 of [a-z0-9_-]", i + 1);
		memcpy(c->tags[i], json_string_value(t), len + 1);
		c->tag_count++;
	}
	return 0;
}

static int field_from_json(int f, const json_t *v, struct camera_record *c, char *err, size_t errsz)
{
	switch (reg_fields[f].kind) {
	case REG_ID:
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > (json_int_t)REG_ID_MAX)
			return fail_msg(err, errsz, "id is not an integer in 1..%u", REG_ID_MAX);
		c->id = (uint32_t)json_integer_value(v);
		return 0;
	case REG_TEXT:
	case REG_URL:
		return text_from_json(f, v, c, err, errsz);
	case REG_COORD:
		if (json_is_null(v))
			*coord_of(c, f) = NAN;
		else if (json_is_number(v))
			*coord_of(c, f) = json_number_value(v);
		else
			return fail_msg(err, errsz, "%s is not a number or null", reg_fields[f].name);
		return 0;
	case REG_TAGS:
		return tags_from_json(v, c, err, errsz);
	case REG_BOOL:
		if (!json_is_boolean(v))
			return fail_msg(err, errsz, "enabled is not true or false");
		c->enabled = json_is_true(v);
		return 0;
	}
	return -EINVAL;
}

int reg_record_from_json(const json_t *obj, struct camera_record *c, unsigned *present,
                         char *err, size_t errsz)
{
	reg_record_init(c);
	*present = 0;
	if (!json_is_object(obj))
		return fail_msg(err, errsz, "not an object");
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		int f = reg_field_find(key, strlen(key));
		if (f < 0) {
			char shown[48];
			reg_safe_name(shown, sizeof shown, key, strlen(key));
			return fail_msg(err, errsz, "unknown key '%s'", shown);
		}
		int rc = field_from_json(f, v, c, err, errsz);
		if (rc)
			return rc;
		*present |= REG_BIT(f);
	}
	return 0;
}

int reg_record_encode(const struct camera_record *c, char **out, size_t *len)
{
	json_t *o = reg_record_to_json(c, true);
	if (!o)
		return -ENOMEM;
	*out = json_dumps(o, REG_JSON_DUMP_FLAGS);
	json_decref(o);
	if (!*out)
		return -ENOMEM;
	*len = strlen(*out);
	return 0;
}

int reg_record_decode(const void *val, size_t len, struct camera_record *c, char *err, size_t errsz)
{
	json_error_t je;
	json_t *o = json_loadb(val, len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return fail_msg(err, errsz, "stored value is not JSON: %s", je.text);
	unsigned present;
	int rc = reg_record_from_json(o, c, &present, err, errsz);
	json_decref(o);
	return rc;
}
