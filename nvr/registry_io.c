/*
 * registry_io.c - CSV and JSON import and export of the camera registry
 * (registry.h).
 *
 * Import is all or nothing, in two steps: the whole file is parsed, each
 * camera checked with camera_record_validate and encoded into a batch in
 * memory; only when every row is good (and no id repeats) is the batch
 * applied, in one write transaction (registry.c, reg_apply). The first bad
 * row in file order is the one reported.
 *
 * Line numbers are physical lines of the file. CSV (libcsv, strict): the
 * parser reports every unquoted line break as a row end (CSV_REPALL_NL), so
 * the line of a row's start is the number of line breaks before it: the
 * ones ending earlier rows, blank rows, and those inside quoted fields of
 * earlier rows (counted in the field text). JSON (jansson): the top-level
 * array is walked one element at a time with JSON_DISABLE_EOF_CHECK, which
 * tells how many bytes each element took; the line breaks in between are
 * counted, so a semantic error names the line where its object starts and a
 * syntax error the line jansson found it on.
 *
 * Credentials: a CSV file without a username or password column, or a JSON
 * object without those keys, keeps the stored value of an existing camera
 * (an export without credentials can be edited and imported back). A column
 * that is present but empty clears it. Other absent columns take their
 * defaults: the file describes the whole camera.
 */
#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "registry_internal.h"

#define IO_CHUNK (64 * 1024)
#define IO_JSON_MAX ((size_t)1 << 30)   /* largest JSON file read into memory */

struct batch {
	struct reg_entry *e;
	size_t n, cap;
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->e[i].val);
	free(b->e);
}

static int batch_add(struct batch *b, const struct camera_record *c, int line, unsigned keep)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		struct reg_entry *e = realloc(b->e, cap * sizeof *e);
		if (!e)
			return -ENOMEM;
		b->e = e;
		b->cap = cap;
	}
	struct reg_entry *e = &b->e[b->n];
	int rc = reg_record_encode(c, &e->val, &e->len);
	if (rc)
		return rc;
	e->id = c->id;
	e->line = line;
	e->keep = keep;
	b->n++;
	return 0;
}

/* Records the first bad row (lowest line wins). */
static int bad_row(struct registry_import_result *res, int line, const char *msg)
{
	if (res->error_line == 0 || line < res->error_line) {
		res->error_line = line;
		snprintf(res->error, sizeof res->error, "%s", msg);
	}
	return -EINVAL;
}

static int cmp_id_line(const void *a, const void *b)
{
	const struct reg_entry *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (x->line > y->line) - (x->line < y->line);
}

/* Sorts by id and reports the earliest line whose id an earlier line had. */
static int sort_and_check_ids(struct batch *b, struct registry_import_result *res)
{
	int rc = 0;
	if (b->n < 2)
		return 0;
	qsort(b->e, b->n, sizeof *b->e, cmp_id_line);
	for (size_t i = 1; i < b->n; i++) {
		if (b->e[i].id != b->e[i - 1].id)
			continue;
		char msg[96];
		snprintf(msg, sizeof msg, "id %u is already used on line %d", b->e[i].id,
		         b->e[i - 1].line);
		rc = bad_row(res, b->e[i].line, msg);
	}
	return rc;
}

/* ---- CSV ---- */

static size_t count_nl(const char *s, size_t len)
{
	size_t n = 0;
	for (const char *p = s, *end = s + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		n++;
	return n;
}

struct csv_state {
	struct batch *batch;
	struct registry_import_result *res;
	int line;                 /* line where the current row starts */
	int row_nl;               /* line breaks inside the current row's fields */
	int ncols;                /* header columns; 0 until the header is read */
	int col_field[REG_NFIELDS];
	int col;                  /* fields seen in the current row */
	unsigned keep;            /* credential bits absent from the header */
	unsigned present;         /* fields the header names */
	struct camera_record rec;
	int rc;                   /* first failure; the rest of the file is ignored */
};

static int csv_bad(struct csv_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int csv_bad(struct csv_state *st, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return st->rc = bad_row(st->res, st->line, msg);
}

static void csv_header_field(struct csv_state *st, const char *s, size_t len)
{
	int f = reg_field_find(s, len);
	if (f < 0) {
		char shown[48];
		reg_safe_name(shown, sizeof shown, s, len);
		csv_bad(st, "unknown column '%s'", shown);
		return;
	}
	if (st->present & REG_BIT(f)) {
		csv_bad(st, "column %s appears twice", reg_fields[f].name);
		return;
	}
	st->present |= REG_BIT(f);
	st->col_field[st->col] = f;
}

static void csv_on_field(void *s, size_t len, void *data)
{
	struct csv_state *st = data;
	char err[256];
	if (st->rc)
		return;
	st->row_nl += (int)count_nl(s, len);
	if (st->ncols == 0) {
		if (st->col < REG_NFIELDS)
			csv_header_field(st, s, len);
		else
			csv_bad(st, "more than %d columns", REG_NFIELDS);
	} else if (st->col >= st->ncols) {
		csv_bad(st, "row has more fields than the header's %d", st->ncols);
	} else if (reg_field_from_text(st->col_field[st->col], s, len, &st->rec, err, sizeof err)) {
		csv_bad(st, "%s", err);
	}
	st->col++;
}

static void csv_header_done(struct csv_state *st)
{
	static const int required[] = { REG_F_ID, REG_F_NAME, REG_F_MAIN_URL };
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
		if (!(st->present & REG_BIT(required[i]))) {
			csv_bad(st, "the header has no %s column", reg_fields[required[i]].name);
			return;
		}
	st->ncols = st->col;
	st->keep = REG_CREDENTIAL_BITS & ~st->present;
}

static void csv_row_done(struct csv_state *st)
{
	char err[256];
	if (st->col < st->ncols) {
		csv_bad(st, "row has %d fields, the header has %d", st->col, st->ncols);
		return;
	}
	if (camera_record_validate(&st->rec, err, sizeof err)) {
		csv_bad(st, "%s", err);
		return;
	}
	if ((st->rc = batch_add(st->batch, &st->rec, st->line, st->keep)))
		return;
	st->res->rows++;
}

static void csv_on_row(int c, void *data)
{
	struct csv_state *st = data;
	if (st->rc)
		return;
	if (st->col > 0) {                /* not a blank line */
		if (st->ncols == 0)
			csv_header_done(st);
		else
			csv_row_done(st);
		if (st->rc)
			return;
	}
	st->line += st->row_nl + (c == '\n');
	st->row_nl = 0;
	st->col = 0;
	reg_record_init(&st->rec);
}

/* Feeds the file to libcsv. A quoting error stops the parser inside the
 * row it belongs to, so st->line is where that row starts. */
static int csv_feed(struct csv_parser *p, FILE *in, struct csv_state *st)
{
	char *buf = malloc(IO_CHUNK);
	size_t n;
	bool first = true;
	int rc = 0;
	if (!buf)
		return -ENOMEM;
	while (!st->rc && (n = fread(buf, 1, IO_CHUNK, in)) > 0) {
		size_t skip = 0;
		if (first && n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
			skip = 3;                          /* UTF-8 byte order mark */
		first = false;
		size_t done = csv_parse(p, buf + skip, n - skip, csv_on_field, csv_on_row, st);
		if (!st->rc && done < n - skip) {
			rc = bad_row(st->res, st->line, "malformed quoting (a quote inside an "
			             "unquoted field, or text after a closing quote)");
			goto out;
		}
	}
	if (ferror(in)) {
		rc = -EIO;
		goto out;
	}
	if (!st->rc && csv_fini(p, csv_on_field, csv_on_row, st))
		rc = bad_row(st->res, st->line, "a quoted field is not closed");
out:
	free(buf);
	return rc ? rc : st->rc;
}

static int import_csv(FILE *in, struct batch *b, struct registry_import_result *res)
{
	struct csv_parser p;
	struct csv_state st = { .batch = b, .res = res, .line = 1 };
	reg_record_init(&st.rec);
	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL))
		return -ENOMEM;
	int rc = csv_feed(&p, in, &st);
	csv_free(&p);
	if (!rc && st.ncols == 0)
		rc = bad_row(res, 1, "no header row");
	return rc;
}

/* ---- JSON ---- */

static int read_all(FILE *in, char **out, size_t *len)
{
	size_t cap = IO_CHUNK, n = 0, got;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	while ((got = fread(buf + n, 1, cap - n, in)) > 0) {
		n += got;
		if (n < cap)
			continue;
		if (cap >= IO_JSON_MAX) {
			free(buf);
			return -EFBIG;
		}
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			return -ENOMEM;
		}
		buf = nb;
		cap *= 2;
	}
	if (ferror(in)) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	*len = n;
	return 0;
}

struct json_walk {
	const char *buf;
	size_t len, pos;
	int line;
};

static void skip_ws(struct json_walk *w)
{
	while (w->pos < w->len) {
		char ch = w->buf[w->pos];
		if (ch == '\n')
			w->line++;
		else if (ch != ' ' && ch != '\t' && ch != '\r')
			return;
		w->pos++;
	}
}

/* jansson's message without the "near '...'" part, which may quote a
 * fragment of a password. */
static void syntax_msg(const json_error_t *je, char *msg, size_t sz)
{
	const char *near = strstr(je->text, " near ");
	int n = near ? (int)(near - je->text) : (int)strlen(je->text);
	snprintf(msg, sz, "JSON syntax: %.*s", n, je->text);
}

/* One element of the array: an object describing one camera. */
static int json_element(struct json_walk *w, struct batch *b, struct registry_import_result *res)
{
	json_error_t je;
	char msg[256], err[256];
	int start = w->line;
	json_t *o = json_loadb(w->buf + w->pos, w->len - w->pos,
	                       JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		syntax_msg(&je, msg, sizeof msg);
		return bad_row(res, start + (je.line > 0 ? je.line - 1 : 0), msg);
	}
	size_t used = (size_t)je.position;
	w->line += (int)count_nl(w->buf + w->pos, used);
	w->pos += used;
	struct camera_record c;
	unsigned present;
	int rc = reg_record_from_json(o, &c, &present, err, sizeof err);
	json_decref(o);
	if (rc)
		return bad_row(res, start, err);
	if (!(present & REG_BIT(REG_F_ID)))
		return bad_row(res, start, "id is missing");
	if (camera_record_validate(&c, err, sizeof err))
		return bad_row(res, start, err);
	if ((rc = batch_add(b, &c, start, REG_CREDENTIAL_BITS & ~present)))
		return rc;
	res->rows++;
	return 0;
}

static int json_walk_array(struct json_walk *w, struct batch *b, struct registry_import_result *res)
{
	int rc;
	skip_ws(w);
	if (w->pos == w->len || w->buf[w->pos] != '[')
		return bad_row(res, w->line, "expected a JSON array of cameras");
	w->pos++;
	skip_ws(w);
	if (w->pos < w->len && w->buf[w->pos] == ']') {
		w->pos++;
		return 0;
	}
	for (;;) {
		if ((rc = json_element(w, b, res)))
			return rc;
		skip_ws(w);
		if (w->pos < w->len && w->buf[w->pos] == ',') {
			w->pos++;
			skip_ws(w);
			continue;
		}
		if (w->pos < w->len && w->buf[w->pos] == ']') {
			w->pos++;
			return 0;
		}
		return bad_row(res, w->line, "JSON syntax: expected ',' or ']' after a camera");
	}
}

static int import_json(FILE *in, struct batch *b, struct registry_import_result *res)
{
	struct json_walk w = { .line = 1 };
	char *buf;
	int rc = read_all(in, &buf, &w.len);
	if (rc)
		return rc;
	w.buf = buf;
	if (!(rc = json_walk_array(&w, b, res))) {
		skip_ws(&w);
		if (w.pos != w.len)
			rc = bad_row(res, w.line, "JSON syntax: text after the array");
	}
	free(buf);
	return rc;
}

int registry_import(struct registry *r, FILE *in, enum registry_format fmt, unsigned flags,
                    struct registry_import_result *res)
{
	struct batch b = { 0 };
	int rc, dup;
	memset(res, 0, sizeof *res);
	if (fmt == REGISTRY_CSV)
		rc = import_csv(in, &b, res);
	else if (fmt == REGISTRY_JSON)
		rc = import_json(in, &b, res);
	else
		rc = -EINVAL;
	if (rc == 0 || rc == -EINVAL) {
		dup = sort_and_check_ids(&b, res);
		rc = rc ? rc : dup;
	}
	if (rc == 0)
		rc = reg_apply(r, b.e, b.n, flags, res);
	batch_free(&b);
	if (rc) {
		uint64_t rows = res->rows;
		res->added = res->updated = res->removed = 0;
		if (rc == -EINVAL && res->error_line)
			nvr_log("warn", "registry", "event=import_rejected rows=%llu line=%d error=\"%s\"",
			        (unsigned long long)rows, res->error_line, res->error);
		else
			nvr_log("error", "registry", "event=import_failed error=\"%s\"", strerror(-rc));
		return rc;
	}
	nvr_log("info", "registry", "event=import rows=%llu added=%llu updated=%llu removed=%llu "
	        "generation=%llu", (unsigned long long)res->rows, (unsigned long long)res->added,
	        (unsigned long long)res->updated, (unsigned long long)res->removed,
	        (unsigned long long)registry_generation(r));
	return 0;
}

/* ---- export ---- */

struct export_ctx {
	FILE *out;
	bool credentials;
	enum registry_format fmt;
	uint64_t n;
};

static bool exported(int f, bool credentials)
{
	return credentials || !reg_fields[f].secret;
}

static int csv_row(FILE *out, const struct camera_record *c, bool credentials)
{
	char text[1024];
	bool first = true;
	for (int f = 0; f < REG_NFIELDS; f++) {
		if (!exported(f, credentials))
			continue;
		const char *s = reg_fields[f].name;
		if (c) {
			int n = reg_field_to_text(f, c, text, sizeof text);
			if (n < 0)
				return n;
			s = text;
		}
		if ((!first && fputc(',', out) == EOF) || csv_fwrite(out, s, strlen(s)))
			return -EIO;
		first = false;
	}
	return fputc('\n', out) == EOF ? -EIO : 0;
}

static int json_row(FILE *out, const struct camera_record *c, bool credentials, bool first)
{
	json_t *o = reg_record_to_json(c, credentials);
	if (!o)
		return -ENOMEM;
	char *s = json_dumps(o, REG_JSON_DUMP_FLAGS);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	int rc = fprintf(out, "%s%s", first ? "" : ",\n", s) < 0 ? -EIO : 0;
	free(s);
	return rc;
}

static int export_one(void *user, const struct camera_record *c)
{
	struct export_ctx *x = user;
	int rc = x->fmt == REGISTRY_CSV ? csv_row(x->out, c, x->credentials)
	                                : json_row(x->out, c, x->credentials, x->n == 0);
	x->n++;
	return rc;
}

int registry_export(struct registry *r, FILE *out, enum registry_format fmt, unsigned flags)
{
	struct export_ctx x = { out, (flags & REGISTRY_EXPORT_CREDENTIALS) != 0, fmt, 0 };
	int rc;
	if (fmt != REGISTRY_CSV && fmt != REGISTRY_JSON)
		return -EINVAL;
	if (fmt == REGISTRY_CSV)
		rc = csv_row(out, NULL, x.credentials);
	else
		rc = fputs("[\n", out) == EOF ? -EIO : 0;
	if (!rc)
		rc = registry_foreach(r, export_one, &x);
	if (!rc && fmt == REGISTRY_JSON)
		rc = fputs(x.n ? "\n]\n" : "]\n", out) == EOF ? -EIO : 0;
	if (!rc && (fflush(out) || ferror(out)))
		rc = -EIO;
	if (rc)
		nvr_log("error", "registry", "event=export_failed error=\"%s\"", strerror(-rc));
	else
		nvr_log("info", "registry", "event=export cameras=%llu format=%s credentials=%s",
		        (unsigned long long)x.n, fmt == REGISTRY_CSV ? "csv" : "json",
		        x.credentials ? "yes" : "no");
	return rc;
}
