/*
 * test_registry.c - the camera registry (nvr/registry.h): the store (put,
 * get, delete, foreach, generation), record checks, CSV and JSON import
 * with their line numbers and all-or-nothing behaviour, REPLACE, export
 * round trips, and what exports do and do not contain of the credentials.
 *
 * Every failure-path test also checks that the registry is exactly as it
 * was: same generation, same bytes in a full export with credentials.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry.h"

/* ---- helpers ---- */

struct env {
	char dir[64];
	struct registry *r;
};

/* Directories this test made; removed by the suite's fini even when an
 * assertion ended the test early. */
static char made_dirs[4][64];
static int n_made;

static void rm_dir(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static void env_cleanup(void)
{
	for (int i = 0; i < n_made; i++)
		rm_dir(made_dirs[i]);
	n_made = 0;
}

TestSuite(store, .fini = env_cleanup);
TestSuite(csv, .fini = env_cleanup);
TestSuite(json, .fini = env_cleanup);
TestSuite(apply, .fini = env_cleanup);
TestSuite(export, .fini = env_cleanup);
TestSuite(import, .fini = env_cleanup);

static void env_open(struct env *e)
{
	snprintf(e->dir, sizeof e->dir, "/tmp/nvrreg.XXXXXX");
	cr_assert(mkdtemp(e->dir), "mkdtemp");
	cr_assert(n_made < 4);
	snprintf(made_dirs[n_made++], sizeof made_dirs[0], "%s", e->dir);
	char path[128];
	snprintf(path, sizeof path, "%s/registry", e->dir);
	cr_assert_eq(registry_open(path, &e->r), 0);
}

static void env_close(struct env *e)
{
	registry_close(e->r);
	e->r = NULL;
}

static void rec_init(struct camera_record *c, uint32_t id)
{
	memset(c, 0, sizeof *c);
	c->id = id;
	snprintf(c->name, sizeof c->name, "camera %u", id);
	snprintf(c->main_url, sizeof c->main_url, "rtsp://10.1.%u.%u/main", id / 256, id % 256);
	c->latitude = NAN;
	c->longitude = NAN;
	c->enabled = true;
}

static void rec_full(struct camera_record *c, uint32_t id)
{
	rec_init(c, id);
	snprintf(c->sub_url, sizeof c->sub_url, "rtsp://10.1.%u.%u/sub", id / 256, id % 256);
	snprintf(c->username, sizeof c->username, "user%u", id);
	snprintf(c->password, sizeof c->password, "Pw-%u-x", id);
	/* already at the registry's 1e-7 degree precision */
	c->latitude = round((48.1 + id * 1e-4) * 1e7) / 1e7;
	c->longitude = round((11.5 - id * 1e-4) * 1e7) / 1e7;
	strcpy(c->tags[0], "street");
	strcpy(c->tags[1], "ptz");
	c->tag_count = 2;
	strcpy(c->site, "Depot A");
	strcpy(c->district, "Altstadt");
	strcpy(c->retention_class, "long");
	strcpy(c->transport, "udp");
	c->enabled = id % 2;
}

static void assert_same_coord(double a, double b, const char *what, uint32_t id)
{
	if (isnan(a) || isnan(b))
		cr_assert(isnan(a) && isnan(b), "camera %u %s: %f vs %f", id, what, a, b);
	else
		cr_assert_eq(a, b, "camera %u %s: %.10f vs %.10f", id, what, a, b);
}

static void assert_same(const struct camera_record *a, const struct camera_record *b)
{
	cr_assert_eq(a->id, b->id);
	cr_assert_str_eq(a->name, b->name, "camera %u name", a->id);
	cr_assert_str_eq(a->main_url, b->main_url, "camera %u main_url", a->id);
	cr_assert_str_eq(a->sub_url, b->sub_url, "camera %u sub_url", a->id);
	cr_assert_str_eq(a->username, b->username, "camera %u username", a->id);
	cr_assert_str_eq(a->password, b->password, "camera %u password", a->id);
	assert_same_coord(a->latitude, b->latitude, "latitude", a->id);
	assert_same_coord(a->longitude, b->longitude, "longitude", a->id);
	cr_assert_eq(a->tag_count, b->tag_count, "camera %u tag count", a->id);
	for (int i = 0; i < a->tag_count; i++)
		cr_assert_str_eq(a->tags[i], b->tags[i], "camera %u tag %d", a->id, i);
	cr_assert_str_eq(a->site, b->site, "camera %u site", a->id);
	cr_assert_str_eq(a->district, b->district, "camera %u district", a->id);
	cr_assert_str_eq(a->retention_class, b->retention_class, "camera %u retention_class", a->id);
	cr_assert_str_eq(a->transport, b->transport, "camera %u transport", a->id);
	cr_assert_eq(a->enabled, b->enabled, "camera %u enabled", a->id);
}

static int import_text(struct registry *r, const char *text, enum registry_format fmt,
                       unsigned flags, struct registry_import_result *res)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	cr_assert(f);
	int rc = registry_import(r, f, fmt, flags, res);
	fclose(f);
	return rc;
}

/* The whole export as a malloc'd string. */
static char *export_text(struct registry *r, enum registry_format fmt, unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert(f);
	cr_assert_eq(registry_export(r, f, fmt, flags), 0);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

/* What must not change when an import is refused. */
struct snapshot {
	uint64_t generation, count;
	char *csv;
};

static void snap(struct registry *r, struct snapshot *s)
{
	s->generation = registry_generation(r);
	cr_assert_eq(registry_count(r, &s->count), 0);
	s->csv = export_text(r, REGISTRY_CSV, REGISTRY_EXPORT_CREDENTIALS);
}

static void assert_unchanged(struct registry *r, struct snapshot *before)
{
	struct snapshot now;
	snap(r, &now);
	cr_assert_eq(now.generation, before->generation, "generation moved: %llu -> %llu",
	             (unsigned long long)before->generation, (unsigned long long)now.generation);
	cr_assert_eq(now.count, before->count, "camera count changed");
	cr_assert_str_eq(now.csv, before->csv, "registry content changed");
	free(now.csv);
	free(before->csv);
}

static void put_n(struct registry *r, uint32_t first, uint32_t n)
{
	struct camera_record c;
	for (uint32_t id = first; id < first + n; id++) {
		rec_full(&c, id);
		cr_assert_eq(registry_put(r, &c), 0, "put %u", id);
	}
}

/* ---- the store ---- */

Test(store, put_get_delete_and_generation)
{
	struct env e;
	struct camera_record c, got;
	env_open(&e);
	uint64_t g0 = registry_generation(e.r);
	rec_full(&c, 42);
	cr_assert_eq(registry_put(e.r, &c), 0);
	cr_assert_eq(registry_generation(e.r), g0 + 1);
	cr_assert_eq(registry_get(e.r, 42, &got), 0);
	assert_same(&c, &got);

	strcpy(c.name, "renamed");
	cr_assert_eq(registry_put(e.r, &c), 0);
	cr_assert_eq(registry_generation(e.r), g0 + 2);
	cr_assert_eq(registry_get(e.r, 42, &got), 0);
	cr_assert_str_eq(got.name, "renamed");

	cr_assert_eq(registry_get(e.r, 43, &got), -ENOENT);
	cr_assert_eq(registry_delete(e.r, 43), -ENOENT);
	cr_assert_eq(registry_generation(e.r), g0 + 2, "a failed delete is not a change");
	cr_assert_eq(registry_delete(e.r, 42), 0);
	cr_assert_eq(registry_generation(e.r), g0 + 3);
	cr_assert_eq(registry_get(e.r, 42, &got), -ENOENT);
	env_close(&e);
}

Test(store, positions_kept_to_1e7_degree)
{
	struct env e;
	struct camera_record c, got;
	env_open(&e);
	rec_init(&c, 8);
	c.latitude = 48.137154321987;
	c.longitude = -11.575490049;
	cr_assert_eq(registry_put(e.r, &c), 0);
	cr_assert_eq(registry_get(e.r, 8, &got), 0);
	cr_assert_eq(got.latitude, 48.1371543);
	cr_assert_eq(got.longitude, -11.5754900);
	env_close(&e);
}

Test(store, reopen_keeps_cameras_and_generation)
{
	struct env e;
	struct camera_record c, got;
	char path[128];
	env_open(&e);
	put_n(e.r, 1, 5);
	uint64_t g = registry_generation(e.r);
	registry_close(e.r);
	snprintf(path, sizeof path, "%s/registry", e.dir);
	cr_assert_eq(registry_open(path, &e.r), 0);
	cr_assert_eq(registry_generation(e.r), g);
	rec_full(&c, 3);
	cr_assert_eq(registry_get(e.r, 3, &got), 0);
	assert_same(&c, &got);
	env_close(&e);
}

struct collect {
	uint32_t ids[64];
	int n, stop_after;
};

static int collect_fn(void *user, const struct camera_record *c)
{
	struct collect *x = user;
	x->ids[x->n++] = c->id;
	return x->n == x->stop_after ? 77 : 0;
}

Test(store, foreach_in_id_order_and_stops_early)
{
	struct env e;
	struct camera_record c;
	static const uint32_t ids[] = { 300, 7, 65536, 1, 256, 2147483647 };
	env_open(&e);
	for (size_t i = 0; i < 6; i++) {
		rec_init(&c, ids[i]);
		cr_assert_eq(registry_put(e.r, &c), 0);
	}
	uint64_t n;
	cr_assert_eq(registry_count(e.r, &n), 0);
	cr_assert_eq(n, 6);
	struct collect x = { .stop_after = -1 };
	cr_assert_eq(registry_foreach(e.r, collect_fn, &x), 0);
	static const uint32_t sorted[] = { 1, 7, 256, 300, 65536, 2147483647 };
	cr_assert_eq(x.n, 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(x.ids[i], sorted[i], "position %d: %u", i, x.ids[i]);
	struct collect y = { .stop_after = 2 };
	cr_assert_eq(registry_foreach(e.r, collect_fn, &y), 77);
	cr_assert_eq(y.n, 2);
	env_close(&e);
}

Test(store, put_refuses_an_invalid_record_and_keeps_the_rest)
{
	struct env e;
	struct camera_record c, got;
	env_open(&e);
	put_n(e.r, 1, 3);
	struct snapshot before;
	snap(e.r, &before);
	rec_full(&c, 2);
	strcpy(c.main_url, "ftp://example.org/x");
	cr_assert_eq(registry_put(e.r, &c), -EINVAL);
	rec_full(&c, 9);
	c.latitude = 91;
	cr_assert_eq(registry_put(e.r, &c), -EINVAL);
	assert_unchanged(e.r, &before);
	rec_full(&c, 2);
	cr_assert_eq(registry_get(e.r, 2, &got), 0);
	assert_same(&c, &got);
	env_close(&e);
}

/* ---- camera_record_validate ---- */

Test(validate, accepts_good_records)
{
	struct camera_record c;
	char err[256];
	rec_full(&c, 1);
	cr_assert_eq(camera_record_validate(&c, err, sizeof err), 0, "%s", err);
	rec_init(&c, 2147483647);
	cr_assert_eq(camera_record_validate(&c, err, sizeof err), 0, "%s", err);
	static const char *const urls[] = { "rtsps://h/x", "http://h/x.m3u8", "HTTPS://h/x",
	                                    "rtmp://h/live", "file:clip.mp4", "/srv/clips/a b.mp4" };
	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		strcpy(c.main_url, urls[i]);
		cr_assert_eq(camera_record_validate(&c, err, sizeof err), 0, "%s: %s", urls[i], err);
	}
}

Test(validate, refuses_each_bad_field)
{
	struct camera_record c;
	char err[256];
	for (int k = 0; k < 19; k++) {
		rec_full(&c, 5);
		const char *want = NULL;
		switch (k) {
		case 0: c.id = 0; want = "id"; break;
		case 1: c.id = 2147483648u; want = "id"; break;
		case 2: c.name[0] = '\0'; want = "name"; break;
		case 3: memset(c.name, 'a', sizeof c.name); want = "name"; break;
		case 4: strcpy(c.name, "tab\there"); want = "name"; break;
		case 5: c.main_url[0] = '\0'; want = "main_url"; break;
		case 6: strcpy(c.main_url, "ftp://h/x"); want = "main_url"; break;
		case 7: strcpy(c.main_url, "relative/path.mp4"); want = "main_url"; break;
		case 8: strcpy(c.sub_url, "gopher://h"); want = "sub_url"; break;
		case 9: c.latitude = -90.5; want = "latitude"; break;
		case 10: c.longitude = 180.01; want = "longitude"; break;
		case 11: c.longitude = NAN; want = "both"; break;
		case 12: strcpy(c.tags[1], "Upper"); want = "tag 2"; break;
		case 13: c.tag_count = REGISTRY_MAX_TAGS + 1; want = "tags"; break;
		case 14: strcpy(c.transport, "http"); want = "transport"; break;
		case 15: strcpy(c.password, "a\nb"); want = "password"; break;
		case 16: strcpy(c.site, "\xff\xfe"); want = "site"; break;
		case 17: strcpy(c.tags[1], "street"); want = "repeats"; break;
		case 18: strcpy(c.retention_class, "Long Term"); want = "retention_class"; break;
		}
		err[0] = '\0';
		cr_assert_eq(camera_record_validate(&c, err, sizeof err), -EINVAL, "case %d accepted", k);
		cr_assert(strstr(err, want), "case %d: message \"%s\" does not mention %s", k, err, want);
		cr_assert_null(strstr(err, "Pw-5"), "case %d: the message quotes the password", k);
	}
}

/* ---- CSV import ---- */

static const char small_csv[] =
	"name,id,main_url,latitude,longitude,tags,district,enabled,transport\n"
	"\"Gate, north \"\"A\"\"\",1,rtsp://10.0.0.1/s,52.52,13.405,\"north;\n"
	"  entrance\",Mitte,yes,tcp\n"
	"Yard,2,rtsp://10.0.0.2/s,,,,,No,\n"
	"\n"
	"Dock,3,/srv/clips/dock.mp4,-33.8688197,151.2092955,a_b;c-d,,0,udp\n";

Test(csv, imports_quoting_tags_and_unknown_positions)
{
	struct env e;
	struct registry_import_result res;
	struct camera_record c;
	env_open(&e);
	cr_assert_eq(import_text(e.r, small_csv, REGISTRY_CSV, 0, &res), 0, "%d: %s",
	             res.error_line, res.error);
	cr_assert_eq(res.rows, 3);
	cr_assert_eq(res.added, 3);
	cr_assert_eq(res.updated + res.removed, 0);

	cr_assert_eq(registry_get(e.r, 1, &c), 0);
	cr_assert_str_eq(c.name, "Gate, north \"A\"");
	cr_assert_str_eq(c.main_url, "rtsp://10.0.0.1/s");
	cr_assert_eq(c.latitude, 52.52);
	cr_assert_eq(c.longitude, 13.405);
	cr_assert_eq(c.tag_count, 2);
	cr_assert_str_eq(c.tags[0], "north");
	cr_assert_str_eq(c.tags[1], "entrance");
	cr_assert_str_eq(c.district, "Mitte");
	cr_assert_str_eq(c.transport, "tcp");
	cr_assert(c.enabled);

	cr_assert_eq(registry_get(e.r, 2, &c), 0);
	cr_assert(isnan(c.latitude) && isnan(c.longitude), "empty position is unknown");
	cr_assert_eq(c.tag_count, 0);
	cr_assert_not(c.enabled);
	cr_assert_str_eq(c.transport, "");

	cr_assert_eq(registry_get(e.r, 3, &c), 0);
	cr_assert_str_eq(c.main_url, "/srv/clips/dock.mp4");
	cr_assert_eq(c.latitude, -33.8688197);
	cr_assert_eq(c.longitude, 151.2092955);
	cr_assert_str_eq(c.tags[1], "c-d");
	cr_assert_not(c.enabled);
	env_close(&e);
}

/* A quoted tags cell spans lines 3-5 and a blank line follows, so the bad
 * row on line 8 is the 5th row but the 8th line. */
static const char bad_line8_csv[] =
	"id,name,main_url,tags\n"                         /* 1 */
	"10,Ten,rtsp://h/10,a\n"                          /* 2 */
	"11,Eleven,rtsp://h/11,\"one;\n"                  /* 3 */
	"two;\n"                                          /* 4 */
	"three\"\n"                                       /* 5 */
	"\n"                                              /* 6 */
	"12,Twelve,rtsp://h/12,\n"                        /* 7 */
	"13,Thirteen,ftp://h/13,\n"                       /* 8: bad scheme */
	"14,Fourteen,rtsp://h/14,\n";                     /* 9 */

Test(csv, bad_row_reports_its_physical_line_and_changes_nothing)
{
	struct env e;
	struct registry_import_result res;
	struct snapshot before;
	env_open(&e);
	put_n(e.r, 1, 4);
	put_n(e.r, 10, 2);
	snap(e.r, &before);
	cr_assert_eq(import_text(e.r, bad_line8_csv, REGISTRY_CSV, REGISTRY_IMPORT_REPLACE, &res),
	             -EINVAL);
	cr_assert_eq(res.error_line, 8, "error on line %d: %s", res.error_line, res.error);
	cr_assert(strstr(res.error, "main_url"), "message: %s", res.error);
	cr_assert_eq(res.added + res.updated + res.removed, 0);
	assert_unchanged(e.r, &before);

	/* the same file with CRLF line ends: the same line */
	char crlf[1024];
	size_t n = 0;
	for (const char *p = bad_line8_csv; *p; p++) {
		if (*p == '\n')
			crlf[n++] = '\r';
		crlf[n++] = *p;
	}
	crlf[n] = '\0';
	snap(e.r, &before);
	cr_assert_eq(import_text(e.r, crlf, REGISTRY_CSV, 0, &res), -EINVAL);
	cr_assert_eq(res.error_line, 8, "CRLF: error on line %d: %s", res.error_line, res.error);
	assert_unchanged(e.r, &before);
	env_close(&e);
}

Test(csv, duplicate_id_reported_at_its_second_line)
{
	struct env e;
	struct registry_import_result res;
	struct snapshot before;
	env_open(&e);
	put_n(e.r, 1, 2);
	snap(e.r, &before);
	const char *csv = "id,name,main_url\n"
	                  "5,A,rtsp://h/a\n"
	                  "6,B,\"rtsp://h/b\"\n"
	                  "7,C,rtsp://h/c\n"
	                  "5,D,rtsp://h/d\n"           /* line 5 */
	                  "6,E,rtsp://h/e\n";          /* line 6: also a duplicate */
	cr_assert_eq(import_text(e.r, csv, REGISTRY_CSV, 0, &res), -EINVAL);
	cr_assert_eq(res.error_line, 5, "line %d: %s", res.error_line, res.error);
	cr_assert(strstr(res.error, "line 2"), "names the first use: %s", res.error);
	assert_unchanged(e.r, &before);

	/* a duplicate before a bad row wins, and the reverse */
	const char *dup_then_bad = "id,name,main_url\n5,A,rtsp://h/a\n5,B,rtsp://h/b\n6,,rtsp://h/c\n";
	cr_assert_eq(import_text(e.r, dup_then_bad, REGISTRY_CSV, 0, &res), -EINVAL);
	cr_assert_eq(res.error_line, 3, "line %d: %s", res.error_line, res.error);
	const char *bad_then_dup = "id,name,main_url\n5,A,rtsp://h/a\n6,,rtsp://h/c\n5,B,rtsp://h/b\n";
	cr_assert_eq(import_text(e.r, bad_then_dup, REGISTRY_CSV, 0, &res), -EINVAL);
	cr_assert_eq(res.error_line, 3, "line %d: %s", res.error_line, res.error);
	cr_assert(strstr(res.error, "name"), "%s", res.error);
	env_close(&e);
}

Test(csv, header_and_syntax_errors)
{
	struct env e;
	struct registry_import_result res;
	struct snapshot before;
	static const struct { const char *csv; int line; const char *msg; } cases[] = {
		{ "id,name,main_url,colour\n1,A,rtsp://h/a,red\n", 1, "unknown column" },
		{ "\n\nid,name\n1,A\n", 3, "main_url" },
		{ "id,name,main_url,\"co\nl\"\"s\"\n", 1, "unknown column 'co?l?s'" },
		{ "id,name,main_url,name\n", 1, "twice" },
		{ "", 1, "no header" },
		{ "id,name,main_url\n1,A,rtsp://h/a\n2,B\n", 3, "fields" },
		{ "id,name,main_url\n1,A,rtsp://h/a,extra\n", 2, "more fields" },
		{ "id,name,main_url\n1,A,rtsp://h/a\n2,B\"q,rtsp://h/b\n", 3, "quot" },
		{ "id,name,main_url\n1,A,rtsp://h/a\n2,\"B\nb,rtsp://h/b\n", 3, "not closed" },
		{ "id,name,main_url\n1,A,rtsp://h/a\n\n2,\"B\nb\"x,rtsp://h/b\n", 4, "quot" },
		{ "id,name,main_url\n1,A,rtsp://h/a\nx2,B,rtsp://h/b\n", 3, "id" },
		{ "id,name,main_url,latitude,longitude\n1,A,rtsp://h/a,0x10,1\n", 2, "latitude" },
		{ "id,name,main_url,enabled\n1,A,rtsp://h/a,maybe\n", 2, "enabled" },
		{ "id,name,main_url,tags\n1,A,rtsp://h/a,a;;b\n", 2, "empty tag" },
	};
	env_open(&e);
	put_n(e.r, 1, 3);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snap(e.r, &before);
		cr_assert_eq(import_text(e.r, cases[i].csv, REGISTRY_CSV, REGISTRY_IMPORT_REPLACE, &res),
		             -EINVAL, "case %zu accepted", i);
		cr_assert_eq(res.error_line, cases[i].line, "case %zu: line %d: %s", i,
		             res.error_line, res.error);
		cr_assert(strstr(res.error, cases[i].msg), "case %zu: message \"%s\"", i, res.error);
		assert_unchanged(e.r, &before);
	}
	env_close(&e);
}

/* ---- JSON import ---- */

static const char small_json[] =
	"[\n"
	"  {\"id\": 1, \"name\": \"Gate, \\\"A\\\"\", \"main_url\": \"rtsp://10.0.0.1/s\",\n"
	"   \"latitude\": 52.52, \"longitude\": 13.405, \"tags\": [\"north\", \"entrance\"],\n"
	"   \"password\": \"p\\u00e4ss\", \"enabled\": false},\n"
	"  {\"id\": 2, \"name\": \"Yard\", \"main_url\": \"http://h/y.m3u8\",\n"
	"   \"latitude\": null, \"longitude\": null}\n"
	"]\n";

Test(json, imports_objects)
{
	struct env e;
	struct registry_import_result res;
	struct camera_record c;
	env_open(&e);
	cr_assert_eq(import_text(e.r, small_json, REGISTRY_JSON, 0, &res), 0, "%d: %s",
	             res.error_line, res.error);
	cr_assert_eq(res.rows, 2);
	cr_assert_eq(res.added, 2);
	cr_assert_eq(registry_get(e.r, 1, &c), 0);
	cr_assert_str_eq(c.name, "Gate, \"A\"");
	cr_assert_str_eq(c.password, "p\xc3\xa4ss");
	cr_assert_eq(c.latitude, 52.52);
	cr_assert_eq(c.tag_count, 2);
	cr_assert_str_eq(c.tags[1], "entrance");
	cr_assert_not(c.enabled);
	cr_assert_eq(registry_get(e.r, 2, &c), 0);
	cr_assert(isnan(c.latitude) && isnan(c.longitude));
	cr_assert(c.enabled, "enabled by default");
	env_close(&e);
}

Test(json, bad_object_in_the_middle_reports_its_line_and_changes_nothing)
{
	struct env e;
	struct registry_import_result res;
	struct snapshot before;
	env_open(&e);
	put_n(e.r, 1, 3);
	snap(e.r, &before);
	const char *json =
		"[\n"                                                         /* 1 */
		"{\"id\": 10, \"name\": \"A\", \"main_url\": \"rtsp://h/a\"},\n" /* 2 */
		"{\"id\": 11,\n"                                              /* 3 */
		" \"name\": \"B\\nstill B\",\n"                               /* 4 */
		" \"main_url\": \"rtsp://h/b\"},\n"                           /* 5 */
		"\n"                                                          /* 6 */
		"  {\"id\": 12, \"name\": \"C\",\n"                           /* 7: bad object */
		"   \"main_url\": \"rtsp://h/c\", \"latitude\": 95, \"longitude\": 0},\n"
		"{\"id\": 13, \"name\": \"D\", \"main_url\": \"rtsp://h/d\"}\n"
		"]\n";
	cr_assert_eq(import_text(e.r, json, REGISTRY_JSON, REGISTRY_IMPORT_REPLACE, &res), -EINVAL);
	/* object 11 is refused first: its name holds a line break */
	cr_assert_eq(res.error_line, 3, "line %d: %s", res.error_line, res.error);
	assert_unchanged(e.r, &before);

	const char *json2 =
		"[\n"
		"{\"id\": 10, \"name\": \"A\", \"main_url\": \"rtsp://h/a\"},\n"
		"{\"id\": 11,\n"
		" \"name\": \"B\",\n"
		" \"main_url\": \"rtsp://h/b\"},\n"
		"\n"
		"  {\"id\": 12, \"name\": \"C\",\n"                           /* 7 */
		"   \"main_url\": \"rtsp://h/c\", \"latitude\": 95, \"longitude\": 0},\n"
		"{\"id\": 13, \"name\": \"D\", \"main_url\": \"rtsp://h/d\"}\n"
		"]\n";
	snap(e.r, &before);
	cr_assert_eq(import_text(e.r, json2, REGISTRY_JSON, REGISTRY_IMPORT_REPLACE, &res), -EINVAL);
	cr_assert_eq(res.error_line, 7, "line %d: %s", res.error_line, res.error);
	cr_assert(strstr(res.error, "latitude"), "%s", res.error);
	assert_unchanged(e.r, &before);
	env_close(&e);
}

Test(json, syntax_and_shape_errors)
{
	struct env e;
	struct registry_import_result res;
	struct snapshot before;
	static const struct { const char *json; int line; const char *msg; } cases[] = {
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\"},\n{\"id\": 2,\n\"name\" \"B\"}\n]", 4, "syntax" },
		{ "{\"id\": 1}", 1, "array" },
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\"}\n\n42\n]", 4, "," },
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\"},\n\n42\n]", 4, "object" },
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\", \"colour\": \"red\"}]", 2, "unknown key" },
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\", \"id\": 2}]", 2, "duplicate" },
		{ "[\n{\"name\": \"A\", \"main_url\": \"rtsp://h/a\"}]", 2, "id is missing" },
		{ "[\n{\"id\": \"1\", \"name\": \"A\", \"main_url\": \"rtsp://h/a\"}]", 2, "id" },
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\", \"tags\": \"a;b\"}]", 2, "tags" },
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\"},\n{\"id\": 1, \"name\": \"B\", \"main_url\": \"rtsp://h/b\"}\n]", 3, "already" },
		{ "[\n{\"id\": 1, \"name\": \"A\", \"main_url\": \"rtsp://h/a\"}\n]\n[]", 4, "after" },
	};
	env_open(&e);
	put_n(e.r, 1, 3);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snap(e.r, &before);
		cr_assert_eq(import_text(e.r, cases[i].json, REGISTRY_JSON, REGISTRY_IMPORT_REPLACE, &res),
		             -EINVAL, "case %zu accepted", i);
		cr_assert_eq(res.error_line, cases[i].line, "case %zu: line %d: %s", i,
		             res.error_line, res.error);
		cr_assert(strstr(res.error, cases[i].msg), "case %zu: message \"%s\"", i, res.error);
		assert_unchanged(e.r, &before);
	}
	env_close(&e);
}

/* ---- applying: counts, REPLACE ---- */

Test(apply, counts_and_replace)
{
	struct env e;
	struct registry_import_result res;
	struct camera_record c;
	env_open(&e);
	for (uint32_t id = 1; id <= 6; id++) {
		rec_init(&c, id);
		cr_assert_eq(registry_put(e.r, &c), 0);
	}
	/* 2 and 3 unchanged, 4 renamed, 8 new; 1, 5, 6 absent */
	const char *csv = "id,name,main_url\n"
	                  "2,camera 2,rtsp://10.1.0.2/main\n"
	                  "3,camera 3,rtsp://10.1.0.3/main\n"
	                  "4,four,rtsp://10.1.0.4/main\n"
	                  "8,eight,rtsp://10.1.0.8/main\n";
	uint64_t g = registry_generation(e.r);
	cr_assert_eq(import_text(e.r, csv, REGISTRY_CSV, 0, &res), 0, "%s", res.error);
	cr_assert_eq(res.rows, 4);
	cr_assert_eq(res.added, 1);
	cr_assert_eq(res.updated, 1, "only camera 4 changed, got %llu", (unsigned long long)res.updated);
	cr_assert_eq(res.removed, 0);
	cr_assert_eq(registry_generation(e.r), g + 1, "one write transaction");
	uint64_t n;
	cr_assert_eq(registry_count(e.r, &n), 0);
	cr_assert_eq(n, 7, "without REPLACE nothing is removed");

	cr_assert_eq(import_text(e.r, csv, REGISTRY_CSV, REGISTRY_IMPORT_REPLACE, &res), 0);
	cr_assert_eq(res.added + res.updated, 0);
	cr_assert_eq(res.removed, 3, "1, 5 and 6 removed, got %llu", (unsigned long long)res.removed);
	struct collect x = { .stop_after = -1 };
	cr_assert_eq(registry_foreach(e.r, collect_fn, &x), 0);
	cr_assert_eq(x.n, 4);
	static const uint32_t left[] = { 2, 3, 4, 8 };
	for (int i = 0; i < 4; i++)
		cr_assert_eq(x.ids[i], left[i]);
	cr_assert_eq(registry_get(e.r, 4, &c), 0);
	cr_assert_str_eq(c.name, "four");

	cr_assert_eq(import_text(e.r, "id,name,main_url\n", REGISTRY_CSV, REGISTRY_IMPORT_REPLACE, &res), 0);
	cr_assert_eq(res.removed, 4);
	cr_assert_eq(registry_count(e.r, &n), 0);
	cr_assert_eq(n, 0, "an empty file with REPLACE empties the registry");
	env_close(&e);
}

/* ---- export ---- */

static void roundtrip(enum registry_format fmt)
{
	struct env a, b;
	struct registry_import_result res;
	struct camera_record ca, cb;
	env_open(&a);
	env_open(&b);
	put_n(a.r, 1, 40);
	rec_init(&ca, 1000);                        /* unknown position, no tags */
	strcpy(ca.name, "Quote \" comma , semicolon ; done");
	ca.enabled = false;
	cr_assert_eq(registry_put(a.r, &ca), 0);
	rec_full(&ca, 1001);
	ca.latitude = -0.0000001;
	ca.longitude = 179.9999999;
	cr_assert_eq(registry_put(a.r, &ca), 0);

	char *text = export_text(a.r, fmt, REGISTRY_EXPORT_CREDENTIALS);
	cr_assert_eq(import_text(b.r, text, fmt, 0, &res), 0, "line %d: %s", res.error_line, res.error);
	cr_assert_eq(res.added, 42);
	for (uint32_t id = 1; id <= 1001; id = id == 40 ? 1000 : id + 1) {
		cr_assert_eq(registry_get(a.r, id, &ca), 0);
		cr_assert_eq(registry_get(b.r, id, &cb), 0, "camera %u missing after import", id);
		assert_same(&ca, &cb);
	}
	char *again = export_text(b.r, fmt, REGISTRY_EXPORT_CREDENTIALS);
	cr_assert_str_eq(again, text, "a second export is byte for byte the first");
	free(text);
	free(again);
	env_close(&a);
	env_close(&b);
}

Test(export, csv_round_trip_field_by_field)
{
	roundtrip(REGISTRY_CSV);
}

Test(export, json_round_trip_field_by_field)
{
	roundtrip(REGISTRY_JSON);
}

Test(export, credentials_only_when_asked)
{
	struct env e;
	env_open(&e);
	put_n(e.r, 1, 10);
	for (int fmt = REGISTRY_CSV; fmt <= REGISTRY_JSON; fmt++) {
		char *plain = export_text(e.r, fmt, 0);
		char *full = export_text(e.r, fmt, REGISTRY_EXPORT_CREDENTIALS);
		cr_assert_null(strstr(plain, "Pw-"), "format %d: a password in a plain export", fmt);
		cr_assert_null(strstr(plain, "password"), "format %d: a password column", fmt);
		cr_assert_null(strstr(plain, "user"), "format %d: user names in a plain export", fmt);
		cr_assert(strstr(plain, "rtsp://10.1.0.7/main"), "format %d: plain export lacks data", fmt);
		for (uint32_t id = 1; id <= 10; id++) {
			char pw[32];
			snprintf(pw, sizeof pw, "Pw-%u-x", id);
			cr_assert(strstr(full, pw), "format %d: %s missing from a full export", fmt, pw);
		}
		free(plain);
		free(full);
	}
	env_close(&e);
}

Test(import, keeps_credentials_when_the_file_has_none)
{
	struct env e;
	struct registry_import_result res;
	struct camera_record c;
	env_open(&e);
	put_n(e.r, 1, 5);
	for (int fmt = REGISTRY_CSV; fmt <= REGISTRY_JSON; fmt++) {
		/* export without credentials, edit a name, import back */
		char *plain = export_text(e.r, fmt, 0);
		char *pos = strstr(plain, "camera 3");
		cr_assert(pos);
		memcpy(pos, "kamera", 6);
		cr_assert_eq(import_text(e.r, plain, fmt, REGISTRY_IMPORT_REPLACE, &res), 0, "%s", res.error);
		cr_assert_eq(res.updated, 1, "format %d: one rename", fmt);
		cr_assert_eq(res.removed, 0);
		for (uint32_t id = 1; id <= 5; id++) {
			struct camera_record want;
			rec_full(&want, id);
			if (id == 3)
				memcpy(want.name, "kamera", 6);
			cr_assert_eq(registry_get(e.r, id, &c), 0);
			assert_same(&want, &c);
		}
		cr_assert_eq(registry_get(e.r, 3, &c), 0);
		strcpy(c.name, "camera 3");
		cr_assert_eq(registry_put(e.r, &c), 0);
		free(plain);
	}
	/* a present but empty column clears; a new camera gets none */
	const char *csv = "id,name,main_url,password\n2,camera 2,rtsp://h/2,\n9,nine,rtsp://h/9,\n";
	cr_assert_eq(import_text(e.r, csv, REGISTRY_CSV, 0, &res), 0, "%s", res.error);
	cr_assert_eq(registry_get(e.r, 2, &c), 0);
	cr_assert_str_eq(c.password, "");
	cr_assert_str_eq(c.username, "user2", "the absent username column keeps it");
	cr_assert_eq(registry_get(e.r, 9, &c), 0);
	cr_assert_str_eq(c.password, "");
	cr_assert_str_eq(c.username, "");
	env_close(&e);
}
