/*
 * test_config.c - the configuration file (nvr/config.h): the defaults are
 * the table's, a file setting every section reads back value by value,
 * every file of tests/config/good loads, every file of tests/config/bad is
 * refused with the "FILE:LINE: message" its first line announces, command
 * line values go through the same checks, and the file's cameras are
 * merged into the registry as config_cameras.h says (cameras that did not
 * come from the file are never touched).
 *
 * Run from the top of the tree (tests/run-tests.sh does).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_cameras.h"
#include "registry.h"

#define GOOD_DIR "tests/config/good"
#define BAD_DIR "tests/config/bad"

static const struct config_option *row(const char *section, const char *key)
{
	for (size_t i = 0; i < config_option_count; i++)
		if (!strcmp(config_options[i].section, section) && !strcmp(config_options[i].key, key))
			return &config_options[i];
	cr_assert_fail("no row %s.%s", section, key);
	return NULL;
}

static void load_ok(const char *path, struct nvr_config *c)
{
	struct config_errors errs;
	int rc = config_load(path, c, &errs);
	cr_assert_eq(rc, 0, "%s: %s", path, errs.count ? errs.msg[0] : strerror(-rc));
	cr_assert_eq(errs.count, 0);
}

Test(config, defaults_are_the_table_defaults)
{
	struct nvr_config d, t;
	cr_assert_eq(config_defaults(&d), 0);
	cr_assert_str_eq(d.data_dir, "./nvr-data");
	cr_assert_eq(d.volumes, 2);
	cr_assert_eq(d.volume_size, 2ull << 30);
	cr_assert_eq(d.queue_bytes, 256ull << 20);
	cr_assert_eq(d.flush_interval_ms, 1000);
	cr_assert_eq(d.chunk_bytes, 112u << 10);
	cr_assert_eq(d.http_port, 8080);
	cr_assert_str_eq(d.http_listen, "127.0.0.1");
	cr_assert_str_eq(d.tls_cert, "");
	cr_assert_eq(d.simulate, -1);
	cr_assert_eq(d.sim_port, 8554);
	cr_assert_eq(d.max_window_ms, 7ull * 86400 * 1000);
	cr_assert_eq(d.auth_enabled, true);
	cr_assert_str_eq(d.log_level, "info");
	cr_assert_eq(d.volume_count + d.class_count + (int)d.camera_count, 0);
	/* A file that sets nothing gives the same values for every row. */
	load_ok(GOOD_DIR "/minimal.conf", &t);
	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *o = &config_options[i];
		if (strcmp(o->section, "volume") && strcmp(o->section, "class"))
			cr_expect(config_equal(&d, &t, o), "%s.%s differs", o->section, o->key);
	}
	config_free(&t);
	config_free(&d);
}

static void expect_full_storage(const struct nvr_config *c)
{
	cr_expect_str_eq(c->data_dir, "/srv/nvr");
	cr_expect_eq(c->volume_size, 8ull << 30);
	cr_expect_eq(c->queue_bytes, 512ull << 20);
	cr_expect_eq(c->flush_interval_ms, 500);
	cr_expect_eq(c->chunk_bytes, 256u << 10);
	cr_expect_eq(c->writer_threads, 2);
	cr_assert_eq(c->volume_count, 2);
	cr_expect_str_eq(c->volume[0].name, "disk1");
	cr_expect_str_eq(c->volume[0].path, "/srv/disk1/nvr");
	cr_expect_eq(c->volume[0].size, 4ull << 40);
	cr_expect_str_eq(c->volume[1].path, "/srv/disk2/nvr");
	cr_expect_eq(c->volume[1].size, 0);
	cr_assert_eq(c->class_count, 2);
	cr_expect_str_eq(c->cls[0].name, "standard");
	cr_expect_eq(c->cls[0].min_days, 7);
	cr_expect_eq(c->cls[0].max_days, 30);
	cr_expect_eq(c->cls[0].share, 70);
	cr_expect_eq(c->cls[1].max_days, 0);
	cr_expect_eq(c->cls[1].share, 30);
}

static void expect_full_ingest_http(const struct nvr_config *c)
{
	cr_expect_eq(c->loops, 4);
	cr_expect_eq(c->av_threads, 8);
	cr_expect_str_eq(c->transport, "udp");
	cr_expect_eq(c->udp_port_min, 40000);
	cr_expect_eq(c->udp_port_max, 40999);
	cr_expect_eq(c->backoff_min_ms, 2000);
	cr_expect_eq(c->backoff_max_ms, 120000);
	cr_expect_eq(c->timeout_ms, 15000);
	cr_expect_eq(c->max_clock_skew_ms, 3000);
	cr_expect_eq(c->recv_buffer_max, 1u << 20);
	cr_expect_str_eq(c->http_listen, "::1");
	cr_expect_eq(c->http_port, 8443);
	cr_expect_str_eq(c->tls_cert, "/etc/nvr/tls/cert.pem");
	cr_expect_str_eq(c->tls_key, "/etc/nvr/tls/key.pem");
	cr_expect_eq(c->plain_http_port, 8080);
	cr_expect_eq(c->http_threads, 4);
	cr_expect_eq(c->auth_enabled, false);
	cr_expect_eq(c->max_window_ms, 30ull * 86400 * 1000);
	cr_expect_eq(c->max_connections, 1024);
	cr_expect_eq(c->connection_timeout_ms, 60000);
	cr_expect_eq(c->connection_memory, 128u << 10);
	cr_expect_str_eq(c->exports_dir, "/srv/exports");
	cr_expect_eq(c->exports_quota, 100ull << 30);
	cr_expect_eq(c->simulate, 0);
	cr_expect_eq(c->sim_port, 9554);
	cr_expect_str_eq(c->log_level, "warn");
	cr_expect_eq(c->stop_after_ms, 3600000);
}

static void expect_full_cameras(const struct nvr_config *c)
{
	cr_assert_eq(c->camera_count, 2);
	const struct camera_record *a = &c->camera[0].rec, *b = &c->camera[1].rec;
	cr_expect_eq(a->id, 12);
	cr_expect_str_eq(a->name, "Gate 12");
	cr_expect_str_eq(a->main_url, "rtsp://10.0.0.12:554/stream1");
	cr_expect_str_eq(a->username, "viewer");
	cr_expect_str_eq(a->password, "s3cret");
	cr_expect_float_eq(a->latitude, 39.6636, 1e-9);
	cr_expect_float_eq(a->longitude, 106.8234, 1e-9);
	cr_assert_eq(a->tag_count, 2);
	cr_expect_str_eq(a->tags[0], "gate");
	cr_expect_str_eq(a->tags[1], "street");
	cr_expect_str_eq(a->district, "Haibowan");
	cr_expect_str_eq(a->retention_class, "evidence");
	cr_expect_str_eq(a->transport, "tcp");
	cr_expect(a->enabled);
	cr_expect_eq(b->id, 7);
	cr_expect_str_eq(b->name, "Yard");
	cr_expect(!b->enabled);
	cr_expect(isnan(b->latitude));
}

Test(config, full_file_reads_back_every_value)
{
	struct nvr_config c;
	load_ok(GOOD_DIR "/full.conf", &c);
	expect_full_storage(&c);
	expect_full_ingest_http(&c);
	expect_full_cameras(&c);
	/* Where each setting came from: the line in the file, 0 for defaults. */
	cr_expect_eq(c.line[row("storage", "data_dir") - config_options], 3);
	cr_expect_eq(c.line[row("storage", "volumes") - config_options], 0);
	cr_expect_eq(c.camera[0].line, 67);
	config_free(&c);
}

static int for_each_file(const char *pattern, void (*fn)(const char *path))
{
	glob_t g;
	cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no files match %s", pattern);
	for (size_t i = 0; i < g.gl_pathc; i++)
		fn(g.gl_pathv[i]);
	int n = (int)g.gl_pathc;
	globfree(&g);
	return n;
}

static void good_file(const char *path)
{
	struct nvr_config c;
	load_ok(path, &c);
	config_free(&c);
}

Test(config, every_good_file_loads)
{
	cr_expect_geq(for_each_file(GOOD_DIR "/*.conf", good_file), 4);
	good_file("packaging/nvr.conf");
}

/* The first line of a bad file is "# LINE: message fragment"; the first
 * error must be "PATH:LINE: message..." with that fragment. */
static void bad_file(const char *path)
{
	char first[512], want[600];
	FILE *f = fopen(path, "r");
	cr_assert(f, "%s", path);
	cr_assert(fgets(first, sizeof first, f), "%s is empty", path);
	fclose(f);
	first[strcspn(first, "\n")] = '\0';
	cr_assert(!strncmp(first, "# ", 2), "%s: no expectation on line 1", path);
	snprintf(want, sizeof want, "%s:%s", path, first + 2);
	struct nvr_config c;
	struct config_errors errs;
	int rc = config_load(path, &c, &errs);
	cr_expect_eq(rc, -EINVAL, "%s was accepted (rc %d)", path, rc);
	cr_expect_geq(errs.count, 1, "%s: no error message", path);
	if (errs.count)
		cr_expect(strstr(errs.msg[0], want) == errs.msg[0], "%s:\n  want %s\n  got  %s", path,
		          want, errs.msg[0]);
	config_free(&c);
}

Test(config, every_bad_file_is_refused_with_file_and_line)
{
	cr_expect_geq(for_each_file(BAD_DIR "/*.conf", bad_file), 40);
}

Test(config, several_errors_are_all_reported_in_line_order)
{
	char path[] = "/tmp/nvrconf.XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs("[http]\nport = 99999\nbogus line\n[nope]\nx = 1\n[storage]\nvolumes = 0\n", f);
	fclose(f);
	struct nvr_config c;
	struct config_errors errs;
	cr_expect_eq(config_load(path, &c, &errs), -EINVAL);
	cr_assert_eq(errs.count, 4);
	const int lines[] = { 2, 3, 4, 7 };
	for (int i = 0; i < 4; i++) {
		char prefix[64];
		snprintf(prefix, sizeof prefix, "%s:%d: ", path, lines[i]);
		cr_expect(!strncmp(errs.msg[i], prefix, strlen(prefix)), "error %d: %s", i,
		          errs.msg[i]);
	}
	config_free(&c);
	unlink(path);
}

Test(config, missing_file_names_the_file)
{
	struct nvr_config c;
	struct config_errors errs;
	cr_expect_eq(config_load("/nonexistent/nvr.conf", &c, &errs), -ENOENT);
	cr_assert_eq(errs.count, 1);
	cr_expect_str_eq(errs.msg[0], "/nonexistent/nvr.conf: cannot open: No such file or directory");
	config_free(&c);
}

Test(config, command_line_values_use_the_same_checks)
{
	struct nvr_config c;
	char err[160];
	cr_assert_eq(config_defaults(&c), 0);
	const struct config_option *size = row("storage", "volume_size");
	cr_expect_eq(config_set(&c, size, "64M", err, sizeof err), 0);
	cr_expect_eq(c.volume_size, 64ull << 20);
	cr_expect_eq(c.line[size - config_options], -1);
	cr_expect_eq(config_set(&c, size, "3M", err, sizeof err), -EINVAL);
	cr_expect_str_eq(err, "out of range (4M to 1024T)");
	cr_expect_eq(c.volume_size, 64ull << 20, "a refused value changed the setting");
	const struct config_option *stop = row("daemon", "stop_after");
	cr_expect_eq(config_set(&c, stop, "14", err, sizeof err), 0);
	cr_expect_eq(c.stop_after_ms, 14000);
	cr_expect_eq(config_set(&c, stop, "1500ms", err, sizeof err), 0);
	cr_expect_eq(c.stop_after_ms, 1500);
	cr_expect_eq(config_set(&c, stop, "2h", err, sizeof err), 0);
	cr_expect_eq(c.stop_after_ms, 7200000);
	cr_expect_eq(config_set(&c, stop, "99999999999999999999", err, sizeof err), -EINVAL);
	const struct config_option *level = row("daemon", "log_level");
	cr_expect_eq(config_set(&c, level, "verbose", err, sizeof err), -EINVAL);
	cr_expect_str_eq(c.log_level, "info");
	config_free(&c);
}

Test(config, equal_copy_and_format_follow_the_rows)
{
	struct nvr_config a, b;
	char err[160], text[64];
	cr_assert_eq(config_defaults(&a), 0);
	cr_assert_eq(config_defaults(&b), 0);
	const struct config_option *listen = row("http", "listen");
	const struct config_option *window = row("limits", "max_window");
	cr_assert_eq(config_set(&b, listen, "::", err, sizeof err), 0);
	cr_assert_eq(config_set(&b, window, "36h", err, sizeof err), 0);
	cr_expect(!config_equal(&a, &b, listen));
	cr_expect(!config_equal(&a, &b, window));
	cr_expect(config_equal(&a, &b, row("http", "port")));
	config_format(&b, window, text, sizeof text);
	cr_expect_str_eq(text, "36h");
	config_format(&a, row("storage", "volume_size"), text, sizeof text);
	cr_expect_str_eq(text, "2G");
	cr_assert_eq(config_copy(&b, &a, listen), 0);
	cr_expect(config_equal(&a, &b, listen));
	cr_expect_str_eq(b.http_listen, "127.0.0.1");
	config_free(&a);
	config_free(&b);
}

/* ---- the file's cameras and the registry ---- */

static struct camera_record cam(uint32_t id, const char *name)
{
	struct camera_record c;
	camera_record_init(&c);
	c.id = id;
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.main_url, sizeof c.main_url, "rtsp://10.0.0.%u/main", id);
	return c;
}

static void add_cam(struct nvr_config *c, uint32_t id, const char *name)
{
	if (c->camera_count == c->camera_cap) {
		c->camera_cap = c->camera_cap ? c->camera_cap * 2 : 4;
		c->camera = realloc(c->camera, c->camera_cap * sizeof *c->camera);
		cr_assert(c->camera);
	}
	c->camera[c->camera_count++] = (struct config_camera){ .rec = cam(id, name), .line = 1 };
}

static int collect(void *user, const struct camera_record *c)
{
	char *out = user;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%u:%s ", c->id, c->name);
	return 0;
}

static void registry_text(struct registry *r, char out[256])
{
	out[0] = '\0';
	cr_assert_eq(registry_foreach(r, collect, out), 0);
}

Test(config, file_cameras_merge_into_the_registry)
{
	char dir[] = "/tmp/nvrconfcams.XXXXXX", text[256], cmd[128];
	cr_assert(mkdtemp(dir));
	struct registry *reg;
	cr_assert_eq(registry_open(dir, &reg), 0);
	struct camera_record imported = cam(100, "imported");
	cr_assert_eq(registry_put(reg, &imported), 0);
	struct nvr_config c;
	struct cfgcams_result res;
	cr_assert_eq(config_defaults(&c), 0);
	add_cam(&c, 1, "one");
	add_cam(&c, 2, "two");
	cr_assert_eq(cfgcams_apply(reg, dir, &c, &res), 0);
	cr_expect(res.written == 2 && res.unchanged == 0 && res.removed == 0);
	registry_text(reg, text);
	cr_expect_str_eq(text, "1:one 2:two 100:imported ");

	/* The same file again writes nothing: the generation stays. */
	uint64_t gen = registry_generation(reg);
	cr_assert_eq(cfgcams_apply(reg, dir, &c, &res), 0);
	cr_expect(res.written == 0 && res.unchanged == 2 && res.removed == 0);
	cr_expect_eq(registry_generation(reg), gen);

	/* An nvrctl edit of a file camera is overwritten; a camera dropped
	 * from the file is deleted; the imported one stays as it was. */
	struct camera_record edited = cam(2, "edited by nvrctl");
	cr_assert_eq(registry_put(reg, &edited), 0);
	c.camera_count = 0;
	add_cam(&c, 2, "two");
	add_cam(&c, 3, "three");
	cr_assert_eq(cfgcams_apply(reg, dir, &c, &res), 0);
	cr_expect(res.written == 2 && res.unchanged == 0 && res.removed == 1, "%u %u %u",
	          res.written, res.unchanged, res.removed);
	registry_text(reg, text);
	cr_expect_str_eq(text, "2:two 3:three 100:imported ");

	/* A file without cameras removes the file's, nothing else. */
	c.camera_count = 0;
	cr_assert_eq(cfgcams_apply(reg, dir, &c, &res), 0);
	cr_expect_eq(res.removed, 2);
	registry_text(reg, text);
	cr_expect_str_eq(text, "100:imported ");
	config_free(&c);
	registry_close(reg);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}
