/*
 * test_backup.c - the backup file (nvr/backup_file.c) and restoring a data
 * directory (nvr/backup.c): sections come back byte for byte; a flipped
 * byte in a section or in the header, a truncated file and a failing
 * source are refused, and the refusal loses nothing else (the other
 * sections still extract, an earlier backup at the same path survives, the
 * data directory is left exactly as it was).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "datadir.h"
#include "log.h"
#include "testutil.h"

static char *dir;
static char path[600];

static void setup(void)
{
	nvr_log_set_level("error");
	dir = tu_tmpdir();
	snprintf(path, sizeof path, "%s/b.nvrbk", dir);
}

static void teardown(void)
{
	tu_rmrf(dir);
	free(dir);
}

TestSuite(backup, .init = setup, .fini = teardown);

/* ---- sources -------------------------------------------------------------- */

struct pattern {
	size_t size;
	uint32_t seed;
	size_t fail_after;    /* return -EIO after this many bytes; 0 never */
};

static uint8_t pattern_byte(const struct pattern *p, size_t i)
{
	uint32_t x = (uint32_t)(i / 7) * 2654435761u ^ p->seed;
	return (uint8_t)(i % 7 < 3 ? x >> 11 : 'a' + i % 5);   /* compressible, not trivially */
}

static int write_full(int fd, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0)
			return -errno;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int pattern_source(void *user, int fd)
{
	const struct pattern *p = user;
	uint8_t buf[4096];
	for (size_t at = 0; at < p->size; at += sizeof buf) {
		if (p->fail_after && at >= p->fail_after)
			return -EIO;
		size_t n = p->size - at < sizeof buf ? p->size - at : sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern_byte(p, at + i);
		int err = write_full(fd, buf, n);
		if (err)
			return err;
	}
	return 0;
}

static const struct pattern big = { 3 * 1024 * 1024 + 123, 7, 0 };
static const struct pattern small = { 1000, 99, 0 };

static void write_two(const char *to)
{
	struct bkp_writer *w;
	struct bkp_info info;
	cr_assert_eq(bkp_writer_open(to, 3, &w), 0);
	cr_assert_eq(bkp_writer_add(w, "index", pattern_source, (void *)&big), 0);
	cr_assert_eq(bkp_writer_add(w, "users", pattern_source, (void *)&small), 0);
	cr_assert_eq(bkp_writer_count(w), 2);
	cr_assert_eq(bkp_writer_finish(w, &info), 0);
	cr_assert_eq(info.count, 2);
}

/* Extracts entry i of `file` into memory; returns the error. */
static int extract(const char *file, uint32_t i, uint8_t **out, size_t *len)
{
	int fd = open(file, O_RDONLY);
	cr_assert(fd >= 0);
	struct bkp_info info;
	int err = bkp_read_header(fd, &info);
	FILE *mem = open_memstream((char **)out, len);
	if (!err) {
		char tmp[640];
		snprintf(tmp, sizeof tmp, "%s/extract", dir);
		int o = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
		err = bkp_extract(fd, &info.e[i], o);
		off_t n = lseek(o, 0, SEEK_END);
		uint8_t *b = malloc((size_t)n + 1);
		cr_assert_eq(pread(o, b, (size_t)n, 0), n);
		fwrite(b, 1, (size_t)n, mem);
		free(b);
		close(o);
	}
	fclose(mem);
	close(fd);
	return err;
}

static void assert_pattern(const uint8_t *b, size_t len, const struct pattern *p)
{
	cr_assert_eq(len, p->size);
	for (size_t i = 0; i < len; i++)
		if (b[i] != pattern_byte(p, i))
			cr_assert_fail("byte %zu differs", i);
}

static void flip_byte(const char *file, off_t at)
{
	int fd = open(file, O_RDWR);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x20;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static int header_of(const char *file, struct bkp_info *info)
{
	int fd = open(file, O_RDONLY);
	cr_assert(fd >= 0);
	int err = bkp_read_header(fd, info);
	close(fd);
	return err;
}

/* ---- the file ------------------------------------------------------------------ */

Test(backup, round_trip)
{
	write_two(path);
	struct bkp_info info;
	cr_assert_eq(header_of(path, &info), 0);
	cr_assert_str_eq(info.e[0].name, "index");
	cr_assert_str_eq(info.e[1].name, "users");
	cr_assert_eq(info.e[0].size, big.size);
	cr_assert_eq(info.e[1].offset, info.e[0].offset + info.e[0].zsize);
	cr_assert_lt(info.e[0].zsize, big.size / 2, "the pattern should compress");
	cr_assert_gt(info.created_us, 0);
	uint8_t *b;
	size_t len;
	cr_assert_eq(extract(path, 0, &b, &len), 0);
	assert_pattern(b, len, &big);
	free(b);
	cr_assert_eq(extract(path, 1, &b, &len), 0);
	assert_pattern(b, len, &small);
	free(b);
	char tmp[640];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	cr_assert(access(tmp, F_OK) != 0, "the temporary file is left behind");
}

Test(backup, flipped_section_byte_is_refused_other_section_intact)
{
	write_two(path);
	struct bkp_info info;
	cr_assert_eq(header_of(path, &info), 0);
	flip_byte(path, (off_t)(info.e[0].offset + info.e[0].zsize / 2));
	cr_assert_eq(header_of(path, &info), 0, "the header is not what changed");
	uint8_t *b;
	size_t len;
	cr_assert_eq(extract(path, 0, &b, &len), -EBADMSG);
	free(b);
	cr_assert_eq(extract(path, 1, &b, &len), 0);
	assert_pattern(b, len, &small);
	free(b);
}

Test(backup, flipped_header_byte_is_refused)
{
	write_two(path);
	struct bkp_info info;
	flip_byte(path, 40);   /* inside entry 0's offset */
	cr_assert_eq(header_of(path, &info), -EBADMSG);
	flip_byte(path, 40);
	cr_assert_eq(header_of(path, &info), 0);
	flip_byte(path, 3);    /* the magic */
	cr_assert_eq(header_of(path, &info), -EBADMSG);
}

Test(backup, truncated_file_is_refused)
{
	write_two(path);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	struct bkp_info info;
	cr_assert_eq(truncate(path, st.st_size - 1), 0);
	cr_assert_eq(header_of(path, &info), -EBADMSG);
	cr_assert_eq(truncate(path, 500), 0);
	cr_assert_eq(header_of(path, &info), -EBADMSG);
	cr_assert_eq(truncate(path, 0), 0);
	cr_assert_eq(header_of(path, &info), -EBADMSG);
}

Test(backup, failing_source_keeps_the_earlier_backup)
{
	write_two(path);
	struct stat before, after;
	cr_assert_eq(stat(path, &before), 0);
	struct pattern failing = { 1 << 20, 5, 64 * 1024 };
	struct bkp_writer *w;
	cr_assert_eq(bkp_writer_open(path, 3, &w), 0);
	cr_assert_eq(bkp_writer_add(w, "registry", pattern_source, &failing), -EIO);
	cr_assert_eq(bkp_writer_count(w), 0);
	bkp_writer_abort(w);
	cr_assert_eq(stat(path, &after), 0);
	cr_assert_eq(after.st_ino, before.st_ino, "the earlier backup was replaced");
	uint8_t *b;
	size_t len;
	cr_assert_eq(extract(path, 1, &b, &len), 0);
	assert_pattern(b, len, &small);
	free(b);
	char tmp[640];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	cr_assert(access(tmp, F_OK) != 0, "the temporary file is left behind");
}

Test(backup, bad_names_are_refused)
{
	struct bkp_writer *w;
	cr_assert_eq(bkp_writer_open(path, 3, &w), 0);
	cr_assert_eq(bkp_writer_add(w, "Index", pattern_source, (void *)&small), -EINVAL);
	cr_assert_eq(bkp_writer_add(w, "", pattern_source, (void *)&small), -EINVAL);
	cr_assert_eq(bkp_writer_add(w, "a-name-too-long-x", pattern_source, (void *)&small), -EINVAL);
	cr_assert_eq(bkp_writer_finish(w, NULL), -EINVAL, "an empty backup was written");
	cr_assert(access(path, F_OK) != 0);
}

/* ---- a data directory ---------------------------------------------------------- */

/* Puts key=value into the LMDB environment in `env_dir` (created). */
static void env_put(const char *env_dir, const char *key, const char *value)
{
	mkdir(env_dir, 0700);
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi dbi;
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_open(env, env_dir, MDB_NOTLS, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, NULL, 0, &dbi), 0);
	MDB_val k = { strlen(key), (void *)key }, v = { strlen(value), (void *)value };
	cr_assert_eq(mdb_put(t, dbi, &k, &v, 0), 0);
	cr_assert_eq(mdb_txn_commit(t), 0);
	mdb_env_close(env);
}

/* Whether the environment holds `key`. */
static bool env_has(const char *env_dir, const char *key)
{
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi dbi;
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_open(env, env_dir, MDB_NOTLS | MDB_RDONLY, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, NULL, 0, &dbi), 0);
	MDB_val k = { strlen(key), (void *)key }, v;
	bool has = mdb_get(t, dbi, &k, &v) == 0;
	mdb_txn_abort(t);
	mdb_env_close(env);
	return has;
}

static void assert_no_leftovers(const struct datadir *d)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/.restore", d->path);
	cr_assert(access(p, F_OK) != 0, ".restore left behind");
	snprintf(p, sizeof p, "%s.before-restore", d->registry);
	cr_assert(access(p, F_OK) != 0, "registry.before-restore left behind");
	snprintf(p, sizeof p, "%s.before-restore", d->users);
	cr_assert(access(p, F_OK) != 0, "users.before-restore left behind");
}

Test(backup, restore_data_directory_and_refuse_a_corrupted_backup)
{
	struct datadir d;
	char data[600];
	snprintf(data, sizeof data, "%s/data", dir);
	cr_assert_eq(datadir_init(&d, data, 0, true), 0);
	env_put(d.registry, "camera-1", "before the backup");
	env_put(d.users, "alice", "admin");
	struct bkp_info info;
	cr_assert_eq(bkp_backup(&d, path, 3, &info), 0);
	cr_assert_eq(info.count, 2, "registry and users, nothing else exists");
	env_put(d.registry, "camera-2", "after the backup");
	env_put(d.users, "bob", "viewer");

	/* a corrupted copy changes nothing */
	char bad[640];
	snprintf(bad, sizeof bad, "%s/bad.nvrbk", dir);
	char cmd[1400];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, bad);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(header_of(bad, &info), 0);
	flip_byte(bad, (off_t)(info.e[1].offset + info.e[1].zsize / 2));
	cr_assert_eq(datadir_lock(&d), 0);
	struct bkp_restore_report r;
	cr_assert_eq(bkp_restore(&d, bad, NULL, NULL, &r), -EBADMSG);
	cr_assert(env_has(d.registry, "camera-2") && env_has(d.users, "bob"),
	          "a refused restore changed the data directory");
	assert_no_leftovers(&d);

	/* the sound one brings back the state of the backup */
	cr_assert_eq(bkp_restore(&d, path, NULL, NULL, &r), 0);
	cr_assert_eq(r.info.count, 2);
	cr_assert_not(r.rebuilt, "no index, nothing to rebuild");
	cr_assert(env_has(d.registry, "camera-1") && env_has(d.users, "alice"));
	cr_assert(!env_has(d.registry, "camera-2") && !env_has(d.users, "bob"));
	struct stat st;
	cr_assert_eq(stat(d.users, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700, "users directory mode %o", st.st_mode & 0777);
	assert_no_leftovers(&d);
	datadir_release(&d);
}

Test(backup, restore_refuses_an_index_without_volumes)
{
	struct datadir d;
	char data[600];
	snprintf(data, sizeof data, "%s/data", dir);
	cr_assert_eq(datadir_init(&d, data, 0, true), 0);
	env_put(d.index, "k", "v");
	env_put(d.users, "alice", "admin");
	cr_assert_eq(bkp_backup(&d, path, 3, NULL), 0);
	env_put(d.users, "bob", "viewer");
	cr_assert_eq(datadir_lock(&d), 0);
	struct bkp_restore_report r;
	cr_assert_eq(bkp_restore(&d, path, NULL, NULL, &r), -ENOENT);
	cr_assert(env_has(d.users, "bob"), "a refused restore changed the users");
	assert_no_leftovers(&d);
	datadir_release(&d);
}

Test(backup, restore_needs_the_lock)
{
	struct datadir d;
	char data[600];
	snprintf(data, sizeof data, "%s/data", dir);
	cr_assert_eq(datadir_init(&d, data, 0, true), 0);
	env_put(d.users, "alice", "admin");
	cr_assert_eq(bkp_backup(&d, path, 3, NULL), 0);
	struct bkp_restore_report r;
	cr_assert_eq(bkp_restore(&d, path, NULL, NULL, &r), -EINVAL);
}
