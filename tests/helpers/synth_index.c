/*
 * synth_index.c - writes a storage index of a given shape without
 * recording anything, to measure `nvrctl backup` on an index the size of a
 * city appliance's (docs/BENCHMARKS.md):
 *
 *   synth_index DIR CAMERAS RANGES_PER_CAMERA VOLUMES SEGMENTS_PER_VOLUME
 *
 * DIR/index gets the engine's databases (storage/format.h): CAMERAS x
 * RANGES_PER_CAMERA range rows (a day's worth of gaps per row, times and
 * generations that vary like real ones) and VOLUMES x SEGMENTS_PER_VOLUME
 * segment rows, in sorted order (MDB_APPEND), one transaction per 100,000
 * rows. It has no volumes behind it: good for backing up, not for opening.
 */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../storage/format.h"

#define BATCH 100000

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static int check(int rc, const char *what)
{
	if (rc)
		fprintf(stderr, "synth_index: %s: %s\n", what, mdb_strerror(rc));
	return rc;
}

struct gen {
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi ranges, segments, meta;
	uint64_t rows;
};

/* Commits every BATCH rows so that no transaction grows without bound. */
static int row_done(struct gen *g)
{
	if (++g->rows % BATCH)
		return 0;
	int rc = check(mdb_txn_commit(g->t), "commit");
	return rc ? rc : check(mdb_txn_begin(g->env, NULL, 0, &g->t), "begin");
}

static int put_ranges(struct gen *g, uint32_t cams, uint32_t per_cam, uint32_t vols)
{
	const int64_t t0 = 1767225600000000LL, day = 86400000000LL;
	for (uint32_t c = 1; c <= cams; c++)
		for (uint32_t r = 0; r < per_cam; r++) {
			uint8_t k[12];
			int64_t start = t0 + r * day + (int64_t)((c * 7919u + r * 104729u) % 3600u) * 1000000;
			put_be(k, c, 4);
			put_be(k + 4, (uint64_t)start ^ (1ull << 63), 8);
			struct idx_range v = {
				.end_us = start + day - 60000000LL * (1 + (c + r) % 50),
				.first_gen = r * 40 + c % 40, .last_gen = r * 40 + c % 40 + 39,
				.vol = (uint16_t)(c % vols + 1),
			};
			MDB_val kv = { sizeof k, k }, dv = { sizeof v, &v };
			int rc = check(mdb_put(g->t, g->ranges, &kv, &dv, MDB_APPEND), "put range");
			if (rc || (rc = row_done(g)))
				return rc;
		}
	return 0;
}

static int put_segments(struct gen *g, uint32_t vols, uint32_t per_vol)
{
	for (uint32_t v = 1; v <= vols; v++)
		for (uint32_t s = 0; s < per_vol; s++) {
			struct seg_key k;
			put_be(k.vol_be, v, 2);
			put_be(k.gen_be, s + 1, 4);
			struct idx_segment d = {
				.slot = s, .state = 2, .t_min = 1767225600000000LL + s * 300000000LL,
				.t_max = 1767225600000000LL + (s + 1) * 300000000LL,
				.chunks = 20000 + s % 977, .dir_len = 600000 + s % 4096,
				.dir_off = (256ull << 20) - 600000 - s % 4096,
			};
			MDB_val kv = { sizeof k, &k }, dv = { sizeof d, &d };
			int rc = check(mdb_put(g->t, g->segments, &kv, &dv, MDB_APPEND), "put segment");
			if (rc || (rc = row_done(g)))
				return rc;
		}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: synth_index DIR CAMERAS RANGES_PER_CAMERA VOLUMES "
		        "SEGMENTS_PER_VOLUME\n");
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/index", argv[1]);
	mkdir(argv[1], 0755);
	mkdir(path, 0755);
	uint32_t cams = (uint32_t)atol(argv[2]), per_cam = (uint32_t)atol(argv[3]);
	uint32_t vols = (uint32_t)atol(argv[4]), per_vol = (uint32_t)atol(argv[5]);
	struct gen g = { 0 };
	uint32_t version = STG_INDEX_VERSION;
	MDB_val fk = { 6, "format" }, fv = { sizeof version, &version };
	int rc = check(mdb_env_create(&g.env), "create");
	if (!rc) rc = mdb_env_set_maxdbs(g.env, 8);
	if (!rc) rc = mdb_env_set_mapsize(g.env, 64ull << 30);
	if (!rc) rc = check(mdb_env_open(g.env, path, MDB_NOTLS | MDB_NOSYNC, 0644), path);
	if (!rc) rc = check(mdb_txn_begin(g.env, NULL, 0, &g.t), "begin");
	if (!rc) rc = check(mdb_dbi_open(g.t, "ranges", MDB_CREATE, &g.ranges), "ranges");
	if (!rc) rc = check(mdb_dbi_open(g.t, "segments", MDB_CREATE, &g.segments), "segments");
	if (!rc) rc = check(mdb_dbi_open(g.t, "meta", MDB_CREATE, &g.meta), "meta");
	if (!rc) rc = check(mdb_put(g.t, g.meta, &fk, &fv, 0), "meta");
	if (!rc) rc = put_ranges(&g, cams, per_cam, vols ? vols : 1);
	if (!rc) rc = put_segments(&g, vols, per_vol);
	if (!rc) rc = check(mdb_txn_commit(g.t), "commit");
	if (!rc) rc = check(mdb_env_sync(g.env, 1), "sync");
	if (g.env)
		mdb_env_close(g.env);
	if (!rc)
		printf("%s: %llu rows\n", path, (unsigned long long)g.rows);
	return rc ? 1 : 0;
}
