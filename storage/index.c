/*
 * index.c - the LMDB index: volumes, live segments, and per camera the
 * ranges of time it has footage for.
 *
 * Why ranges and not one row per chunk: a chunk is one GOP (about 2 s), so a
 * row per chunk would cost ~1,800 rows (~90 KiB) per camera-hour. A range row
 * covers a camera's footage without a gap on one volume, however long, and
 * points at the generations (segment uses) it spans; where exactly a chunk
 * lies inside a generation is in that segment's own directory (on disk,
 * zstd, cached). So the index grows with gaps and segments, not with time,
 * and "ranges and gaps of camera C in a window" is one range scan.
 *
 * Only the index thread writes (one writer, batched transactions); readers
 * use short read-only transactions from any thread (MDB_NOTLS). When the map
 * fills, the writer aborts, grows the map (readers are held off by
 * map_lock for that moment) and redoes the batch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "internal.h"

struct index {
	MDB_env *env;
	MDB_dbi volumes, segments, ranges, meta;
	uint64_t map_size;
	pthread_rwlock_t map_lock;
};

MDB_env *idx_env(struct index *ix) { return ix->env; }
MDB_dbi idx_db_volumes(struct index *ix) { return ix->volumes; }
MDB_dbi idx_db_segments(struct index *ix) { return ix->segments; }
MDB_dbi idx_db_ranges(struct index *ix) { return ix->ranges; }

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

void seg_key_make(struct seg_key *k, uint16_t vol, uint32_t gen)
{
	put_be(k->vol_be, vol, 2);
	put_be(k->gen_be, gen, 4);
}

void seg_key_parse(const struct seg_key *k, uint16_t *vol, uint32_t *gen)
{
	*vol = (uint16_t)get_be(k->vol_be, 2);
	*gen = (uint32_t)get_be(k->gen_be, 4);
}

/* Times are signed; flipping the sign bit makes their big-endian bytes sort
 * in numeric order. */
void range_key_make(struct range_key *k, uint32_t cam, int64_t start)
{
	put_be(k->cam_be, cam, 4);
	put_be(k->start_be, (uint64_t)start ^ (1ull << 63), 8);
}

void range_key_parse(const struct range_key *k, uint32_t *cam, int64_t *start)
{
	*cam = (uint32_t)get_be(k->cam_be, 4);
	*start = (int64_t)(get_be(k->start_be, 8) ^ (1ull << 63));
}

static int open_dbs(struct index *ix)
{
	MDB_txn *t;
	int err = mdb_txn_begin(ix->env, NULL, 0, &t);
	if (err)
		return err;
	if ((err = mdb_dbi_open(t, "volumes", MDB_CREATE, &ix->volumes)) ||
	    (err = mdb_dbi_open(t, "segments", MDB_CREATE, &ix->segments)) ||
	    (err = mdb_dbi_open(t, "ranges", MDB_CREATE, &ix->ranges)) ||
	    (err = mdb_dbi_open(t, "meta", MDB_CREATE, &ix->meta))) {
		mdb_txn_abort(t);
		return err;
	}
	uint32_t version = STG_FORMAT_VERSION;
	MDB_val k = { 6, "format" }, d;
	err = mdb_get(t, ix->meta, &k, &d);
	if (err == MDB_NOTFOUND) {
		d = (MDB_val){ sizeof version, &version };
		err = mdb_put(t, ix->meta, &k, &d, 0);
	} else if (!err && (d.mv_size != sizeof version ||
	                    memcmp(d.mv_data, &version, sizeof version))) {
		err = STG_EFORMAT;
	}
	if (err) {
		mdb_txn_abort(t);
		return err;
	}
	return mdb_txn_commit(t);
}

int idx_open(const char *dir, uint64_t map_size, struct index **out)
{
	struct index *ix = calloc(1, sizeof *ix);
	if (!ix)
		return -ENOMEM;
	pthread_rwlock_init(&ix->map_lock, NULL);
	ix->map_size = map_size;
	if (mkdir(dir, 0755) && errno != EEXIST) {
		free(ix);
		return -errno;
	}
	int err = mdb_env_create(&ix->env);
	if (!err) err = mdb_env_set_maxdbs(ix->env, 8);
	if (!err) err = mdb_env_set_maxreaders(ix->env, 1022);
	if (!err) err = mdb_env_set_mapsize(ix->env, map_size);
	/* NOMETASYNC: each commit syncs its data pages; the meta page of the last
	 * commit may be lost on power failure, which leaves the previous commit,
	 * a consistent state that recovery then brings forward from the disks. */
	if (!err) err = mdb_env_open(ix->env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0644);
	if (!err) {
		MDB_envinfo info;
		mdb_env_info(ix->env, &info);
		ix->map_size = info.me_mapsize;
		err = open_dbs(ix);
	}
	if (err) {
		if (ix->env)
			mdb_env_close(ix->env);
		free(ix);
		return err;
	}
	*out = ix;
	return 0;
}

void idx_close(struct index *ix)
{
	if (!ix)
		return;
	mdb_env_close(ix->env);
	pthread_rwlock_destroy(&ix->map_lock);
	free(ix);
}

int idx_read_begin(struct index *ix, MDB_txn **txn)
{
	pthread_rwlock_rdlock(&ix->map_lock);
	int err = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, txn);
	if (err)
		pthread_rwlock_unlock(&ix->map_lock);
	return err;
}

void idx_read_end(struct index *ix, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&ix->map_lock);
}

int idx_write_begin(struct index *ix, MDB_txn **txn)
{
	return mdb_txn_begin(ix->env, NULL, 0, txn);
}

int idx_write_commit(struct index *ix, MDB_txn *txn)
{
	(void)ix;
	return mdb_txn_commit(txn);
}

/* Doubles the map. Must be called with no write transaction open. */
int idx_grow(struct index *ix)
{
	pthread_rwlock_wrlock(&ix->map_lock);
	uint64_t size = ix->map_size * 2;
	int err = mdb_env_set_mapsize(ix->env, size);
	if (!err)
		ix->map_size = size;
	pthread_rwlock_unlock(&ix->map_lock);
	if (!err)
		LOG_INFO("event=index_map_grown bytes=%llu", (unsigned long long)size);
	return err;
}

int idx_get_segment(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    struct idx_segment *out)
{
	struct seg_key sk;
	seg_key_make(&sk, vol, gen);
	MDB_val k = { sizeof sk, &sk }, d;
	int err = mdb_get(t, ix->segments, &k, &d);
	if (err)
		return err;
	if (d.mv_size != sizeof *out)
		return STG_ECORRUPT;
	memcpy(out, d.mv_data, sizeof *out);
	return 0;
}

int idx_put_segment(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    const struct idx_segment *s)
{
	struct seg_key sk;
	seg_key_make(&sk, vol, gen);
	MDB_val k = { sizeof sk, &sk }, d = { sizeof *s, (void *)s };
	return mdb_put(t, ix->segments, &k, &d, 0);
}

int idx_foreach_segment(MDB_txn *t, struct index *ix, uint16_t vol,
                        idx_segment_fn fn, void *user)
{
	MDB_cursor *c;
	int err = mdb_cursor_open(t, ix->segments, &c);
	if (err)
		return err;
	struct seg_key sk;
	seg_key_make(&sk, vol, 0);
	MDB_val k = { sizeof sk, &sk }, d;
	for (err = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !err;
	     err = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		uint16_t vid;
		uint32_t gen;
		seg_key_parse(k.mv_data, &vid, &gen);
		if (vid != vol || d.mv_size != sizeof(struct idx_segment))
			break;
		struct idx_segment seg;
		memcpy(&seg, d.mv_data, sizeof seg);
		if ((err = fn(user, gen, &seg)))
			break;
	}
	mdb_cursor_close(c);
	return err == MDB_NOTFOUND ? 0 : err;
}

int idx_segment_add_chunk(MDB_txn *t, struct index *ix, uint16_t vol,
                          uint32_t gen, const struct dir_entry *e)
{
	struct idx_segment s;
	int err = idx_get_segment(t, ix, vol, gen, &s);
	if (err)
		return err;
	if (s.chunks == 0 || e->start_us < s.t_min)
		s.t_min = e->start_us;
	if (s.chunks == 0 || e->end_us > s.t_max)
		s.t_max = e->end_us;
	s.chunks++;
	return idx_put_segment(t, ix, vol, gen, &s);
}

/* The camera's last range starting at or before `start`, via cursor `c`.
 * Returns 0 and leaves the cursor on it, or MDB_NOTFOUND. */
static int range_at_or_before(MDB_cursor *c, uint32_t cam, int64_t start,
                              int64_t *rstart, struct idx_range *r)
{
	struct range_key rk;
	range_key_make(&rk, cam, start);
	MDB_val k = { sizeof rk, &rk }, d;
	int err = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	if (err == 0) {
		uint32_t kc;
		int64_t ks;
		range_key_parse(k.mv_data, &kc, &ks);
		if (kc != cam || ks != start)
			err = mdb_cursor_get(c, &k, &d, MDB_PREV);
	} else if (err == MDB_NOTFOUND) {
		err = mdb_cursor_get(c, &k, &d, MDB_LAST);
	}
	if (err)
		return err;
	uint32_t kc;
	range_key_parse(k.mv_data, &kc, rstart);
	if (kc != cam || *rstart > start)
		return MDB_NOTFOUND;
	memcpy(r, d.mv_data, sizeof *r);
	return 0;
}

int idx_merge_chunk(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    uint32_t gap_us, const struct dir_entry *e)
{
	MDB_cursor *c;
	int err = mdb_cursor_open(t, ix->ranges, &c);
	if (err)
		return err;
	int64_t rstart;
	struct idx_range r;
	err = range_at_or_before(c, e->camera_id, e->start_us, &rstart, &r);
	if (err == 0 && r.vol == vol && e->start_us <= r.end_us + (int64_t)gap_us &&
	    !(e->flags & REC_RANGE_START)) {
		/* continues (or is already inside) this range */
		if (e->end_us > r.end_us)
			r.end_us = e->end_us;
		if (gen > r.last_gen)
			r.last_gen = gen;
		MDB_val d = { sizeof r, &r };
		MDB_val k;
		mdb_cursor_get(c, &k, NULL, MDB_GET_CURRENT);
		err = mdb_cursor_put(c, &k, &d, MDB_CURRENT);
	} else if (err == 0 || err == MDB_NOTFOUND) {
		struct idx_range nr = {
			.end_us = e->end_us, .first_gen = gen, .last_gen = gen, .vol = vol,
		};
		struct range_key rk;
		range_key_make(&rk, e->camera_id, e->start_us);
		MDB_val k = { sizeof rk, &rk }, d = { sizeof nr, &nr };
		err = mdb_cursor_put(c, &k, &d, 0);
	}
	mdb_cursor_close(c);
	return err;
}

/* First chunk of `cam` in generations gen+1..last of `vol`, for moving a
 * range's start off a generation being reclaimed. */
static int next_chunk_after_gen(struct stg *stg, uint16_t vol, uint32_t gen,
                                uint32_t last, uint32_t cam,
                                struct dir_entry *out, uint32_t *out_gen)
{
	for (uint32_t g = gen + 1; g <= last; g++) {
		struct segdir *d;
		int err = dc_get(stg, vol, g, &d);
		if (err == MDB_NOTFOUND || err == STG_EGONE)
			continue;
		if (err)
			return err;
		int found = segdir_first_after(d, cam, INT64_MIN, out);
		dc_put(stg->dc, d);
		if (found) {
			*out_gen = g;
			return 0;
		}
	}
	return MDB_NOTFOUND;
}

/* Removes or trims the range that starts with chunk `e` of generation gen. */
static int reclaim_range(MDB_txn *t, struct stg *stg, uint16_t vol, uint32_t gen,
                         const struct dir_entry *e)
{
	struct index *ix = stg->ix;
	struct range_key rk;
	range_key_make(&rk, e->camera_id, e->start_us);
	MDB_val k = { sizeof rk, &rk }, d;
	int err = mdb_get(t, ix->ranges, &k, &d);
	if (err == MDB_NOTFOUND)
		return 0;              /* chunk is inside a range, not its start */
	if (err)
		return err;
	struct idx_range r;
	memcpy(&r, d.mv_data, sizeof r);
	if (r.vol != vol || r.first_gen != gen)
		return 0;
	err = mdb_del(t, ix->ranges, &k, NULL);
	if (err || r.last_gen == gen)
		return err;
	struct dir_entry next;
	uint32_t next_gen;
	err = next_chunk_after_gen(stg, vol, gen, r.last_gen, e->camera_id,
	                           &next, &next_gen);
	if (err == MDB_NOTFOUND) {
		LOG_WARN("event=range_without_chunks camera=%u vol=%u gen=%u",
		         e->camera_id, vol, gen);
		return 0;
	}
	if (err)
		return err;
	if (next.start_us > r.end_us)
		return 0;             /* the range had nothing after this gen */
	r.first_gen = next_gen;
	range_key_make(&rk, e->camera_id, next.start_us);
	d = (MDB_val){ sizeof r, &r };
	return mdb_put(t, ix->ranges, &k, &d, 0);
}

int idx_reclaim_gen(MDB_txn *t, struct stg *stg, uint16_t vol, uint32_t gen)
{
	struct segdir *d;
	int err = dc_get(stg, vol, gen, &d);
	if (err == 0) {
		pthread_mutex_lock(&d->lock);
		uint32_t n = d->visible;
		struct dir_entry *copy = malloc((n ? n : 1) * sizeof *copy);
		if (copy)
			memcpy(copy, d->e, n * sizeof *copy);
		pthread_mutex_unlock(&d->lock);
		dc_put(stg->dc, d);
		if (!copy)
			return -ENOMEM;
		for (uint32_t i = 0; i < n && !err; i++)
			err = reclaim_range(t, stg, vol, gen, &copy[i]);
		free(copy);
	} else {
		/* Directory unreadable: drop every range whose first gen this is. */
		LOG_WARN("event=reclaim_without_directory vol=%u gen=%u err=\"%s\"",
		         vol, gen, stg_strerror(err));
		err = 0;
		MDB_cursor *c;
		mdb_cursor_open(t, stg->ix->ranges, &c);
		MDB_val k, dv;
		for (int rc = mdb_cursor_get(c, &k, &dv, MDB_FIRST); rc == 0;) {
			struct idx_range r;
			memcpy(&r, dv.mv_data, sizeof r);
			if (r.vol == vol && r.first_gen == gen) {
				mdb_cursor_del(c, 0);
				rc = mdb_cursor_get(c, &k, &dv, MDB_GET_CURRENT);
			} else {
				rc = mdb_cursor_get(c, &k, &dv, MDB_NEXT);
			}
		}
		mdb_cursor_close(c);
	}
	if (err)
		return err;
	struct seg_key sk;
	seg_key_make(&sk, vol, gen);
	MDB_val k = { sizeof sk, &sk };
	err = mdb_del(t, stg->ix->segments, &k, NULL);
	return err == MDB_NOTFOUND ? 0 : err;
}
