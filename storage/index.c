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
	MDB_dbi volumes, segments, ranges, meta, classes, camclass, holds;
	uint64_t map_size;
	pthread_rwlock_t map_lock;
};

MDB_env *idx_env(struct index *ix) { return ix->env; }
MDB_dbi idx_db_volumes(struct index *ix) { return ix->volumes; }
MDB_dbi idx_db_segments(struct index *ix) { return ix->segments; }
MDB_dbi idx_db_ranges(struct index *ix) { return ix->ranges; }
MDB_dbi idx_db_classes(struct index *ix) { return ix->classes; }
MDB_dbi idx_db_camclass(struct index *ix) { return ix->camclass; }
MDB_dbi idx_db_holds(struct index *ix) { return ix->holds; }

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
	    (err = mdb_dbi_open(t, "meta", MDB_CREATE, &ix->meta)) ||
	    (err = mdb_dbi_open(t, "classes", MDB_CREATE, &ix->classes)) ||
	    (err = mdb_dbi_open(t, "camclass", MDB_CREATE, &ix->camclass)) ||
	    (err = mdb_dbi_open(t, "holds", MDB_CREATE, &ix->holds))) {
		mdb_txn_abort(t);
		return err;
	}
	/* Version 1 (no retention) is upgraded in place: its databases are
	 * unchanged, the new ones start empty. Anything else is refused. */
	uint32_t version = STG_INDEX_VERSION, old = 0;
	MDB_val k = { 6, "format" }, d;
	err = mdb_get(t, ix->meta, &k, &d);
	if (!err && d.mv_size == sizeof old)
		memcpy(&old, d.mv_data, sizeof old);
	if (err == MDB_NOTFOUND || (!err && old == 1)) {
		if (old == 1)
			LOG_INFO("event=index_upgraded from=1 to=%u", version);
		d = (MDB_val){ sizeof version, &version };
		err = mdb_put(t, ix->meta, &k, &d, 0);
	} else if (!err && old != version) {
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

int idx_lookup_segment(struct index *ix, uint16_t vol, uint32_t gen, struct idx_segment *out)
{
	MDB_txn *t;
	int err = idx_read_begin(ix, &t);
	if (err)
		return err;
	err = idx_get_segment(t, ix, vol, gen, out);
	idx_read_end(ix, t);
	return err;
}

int idx_put_segment(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    const struct idx_segment *s)
{
	struct seg_key sk;
	seg_key_make(&sk, vol, gen);
	MDB_val k = { sizeof sk, &sk }, d = { sizeof *s, (void *)s };
	return mdb_put(t, ix->segments, &k, &d, 0);
}

int idx_foreach(MDB_txn *t, MDB_dbi db, idx_record_fn fn, void *user)
{
	MDB_cursor *c;
	int err = mdb_cursor_open(t, db, &c);
	if (err)
		return err;
	MDB_val k, d;
	for (err = mdb_cursor_get(c, &k, &d, MDB_FIRST); !err;
	     err = mdb_cursor_get(c, &k, &d, MDB_NEXT))
		if ((err = fn(user, &k, &d)))
			break;
	mdb_cursor_close(c);
	return err == MDB_NOTFOUND ? 0 : err;
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

int idx_next_segment(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t from,
                     uint32_t *gen, struct idx_segment *out)
{
	MDB_cursor *c;
	int err = mdb_cursor_open(t, ix->segments, &c);
	if (err)
		return err;
	struct seg_key sk;
	seg_key_make(&sk, vol, from);
	MDB_val k = { sizeof sk, &sk }, d;
	err = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	if (!err) {
		uint16_t vid;
		seg_key_parse(k.mv_data, &vid, gen);
		if (vid != vol || d.mv_size != sizeof *out)
			err = MDB_NOTFOUND;
		else
			memcpy(out, d.mv_data, sizeof *out);
	}
	mdb_cursor_close(c);
	return err;
}

int idx_segment_add_chunk(MDB_txn *t, struct index *ix, uint16_t vol,
                          uint32_t gen, const struct dir_entry *e)
{
	struct idx_segment s;
	int err = idx_get_segment(t, ix, vol, gen, &s);
	if (err)
		return err;
	/* Relocated copies hold old footage in a new generation: their times
	 * stay out of t_min/t_max, which readers search as if generations
	 * followed time (they do for everything else). */
	bool unset = !seg_has_times(&s);
	s.chunks++;
	if (e->flags & REC_RELOCATED)
		return idx_put_segment(t, ix, vol, gen, &s);
	if (unset || e->start_us < s.t_min)
		s.t_min = e->start_us;
	if (unset || e->end_us > s.t_max)
		s.t_max = e->end_us;
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

/* Is chunk `e` of generation `gen` a continuation of range r? A range's
 * generations follow its time, so a chunk in an older generation than the
 * range's last never extends it (a relocated copy would otherwise join a
 * range of later footage in an index rebuilt from the disks). */
static bool continues(const struct idx_range *r, int64_t rstart, uint16_t vol,
                      uint32_t gen, uint32_t gap_us, const struct dir_entry *e)
{
	bool reloc = e->flags & REC_RELOCATED;
	if (r->vol != vol || reloc != !!(r->flags & RANGE_RELOCATED) ||
	    (e->flags & REC_RANGE_START) || e->start_us > r->end_us + (int64_t)gap_us)
		return false;
	return e->end_us <= r->end_us ? e->start_us >= rstart : gen >= r->last_gen;
}

int idx_merge_chunk(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                    uint32_t gap_us, const struct dir_entry *e, bool *indexed)
{
	if (indexed)
		*indexed = false;
	MDB_cursor *c;
	int err = mdb_cursor_open(t, ix->ranges, &c);
	if (err)
		return err;
	int64_t rstart;
	struct idx_range r;
	err = range_at_or_before(c, e->camera_id, e->start_us, &rstart, &r);
	if (err == 0 && (e->flags & REC_RELOCATED) && e->start_us < r.end_us) {
		/* a copy whose time is indexed already: merged before (recovery
		 * merges again), or its original is still indexed and the copy
		 * waits for the original's reclaim (retention.c) */
		err = 0;
	} else if (err == 0 && continues(&r, rstart, vol, gen, gap_us, e)) {
		/* continues (or is already inside) this range */
		if (indexed)
			*indexed = e->end_us > r.end_us;
		if (e->end_us > r.end_us)
			r.end_us = e->end_us;
		if (gen > r.last_gen)
			r.last_gen = gen;
		MDB_val d = { sizeof r, &r };
		MDB_val k;
		mdb_cursor_get(c, &k, NULL, MDB_GET_CURRENT);
		err = mdb_cursor_put(c, &k, &d, MDB_CURRENT);
	} else if (err == 0 && rstart == e->start_us) {
		/* another range already starts at this time (a copy and a live
		 * chunk of the same instant): one key, one range */
		LOG_WARN("event=range_key_taken camera=%u start_us=%lld vol=%u gen=%u",
		         e->camera_id, (long long)e->start_us, vol, gen);
		err = 0;
	} else if (err == 0 || err == MDB_NOTFOUND) {
		struct idx_range nr = {
			.end_us = e->end_us, .first_gen = gen, .last_gen = gen, .vol = vol,
			.flags = e->flags & REC_RELOCATED ? RANGE_RELOCATED : 0,
		};
		struct range_key rk;
		range_key_make(&rk, e->camera_id, e->start_us);
		MDB_val k = { sizeof rk, &rk }, d = { sizeof nr, &nr };
		err = mdb_cursor_put(c, &k, &d, 0);
		if (indexed)
			*indexed = err == 0;
	}
	mdb_cursor_close(c);
	return err;
}

int idx_range_containing(MDB_txn *t, struct index *ix, uint32_t cam, int64_t at,
                         int64_t *rstart, struct idx_range *r)
{
	MDB_cursor *c;
	int err = mdb_cursor_open(t, ix->ranges, &c);
	if (err)
		return err;
	err = range_at_or_before(c, cam, at, rstart, r);
	mdb_cursor_close(c);
	if (!err && r->end_us <= at)
		err = MDB_NOTFOUND;
	return err;
}

bool idx_chunk_indexed(MDB_txn *t, struct index *ix, uint16_t vol, uint32_t gen,
                       const struct dir_entry *e, int64_t *rstart, struct idx_range *r)
{
	if (idx_range_containing(t, ix, e->camera_id, e->start_us, rstart, r))
		return false;
	return idx_range_holds(*rstart, r, vol, gen, e);
}

bool idx_range_holds(int64_t rstart, const struct idx_range *r, uint16_t vol, uint32_t gen,
                     const struct dir_entry *e)
{
	return r->vol == vol && gen >= r->first_gen && gen <= r->last_gen &&
	       !!(r->flags & RANGE_RELOCATED) == !!(e->flags & REC_RELOCATED) &&
	       e->start_us >= rstart && e->start_us < r->end_us;
}

/* The kind of chunk a range is made of (REC_RELOCATED or 0). */
static uint16_t range_kind(const struct idx_range *r)
{
	return r->flags & RANGE_RELOCATED ? REC_RELOCATED : 0;
}

/* The last chunk of range (rstart, r) of `cam` starting before `t`,
 * searching generations `from` down to r's first. */
static int last_chunk_before(struct stg *stg, const struct idx_range *r, int64_t rstart,
                             uint32_t cam, uint32_t from, int64_t t,
                             struct dir_entry *out, uint32_t *out_gen)
{
	for (uint32_t g = from; g >= r->first_gen && g != 0; g--) {
		struct segdir *d;
		int err = dc_get(stg, r->vol, g, &d);
		if (err == MDB_NOTFOUND || err == STG_EGONE)
			continue;
		if (err)
			return err;
		int found = segdir_last_before(d, cam, t - 1, range_kind(r), out);
		dc_put(stg->dc, d);
		if (found && out->start_us >= rstart) {
			*out_gen = g;
			return 0;
		}
		if (found)
			break;
	}
	return MDB_NOTFOUND;
}

/* The first chunk of range r of `cam` starting after `t`, searching
 * generations `from` up to r's last. */
static int first_chunk_after(struct stg *stg, const struct idx_range *r, uint32_t cam,
                             uint32_t from, int64_t t, struct dir_entry *out,
                             uint32_t *out_gen)
{
	for (uint32_t g = from; g <= r->last_gen; g++) {
		struct segdir *d;
		int err = dc_get(stg, r->vol, g, &d);
		if (err == MDB_NOTFOUND || err == STG_EGONE)
			continue;
		if (err)
			return err;
		int found = segdir_first_after(d, cam, t, range_kind(r), out);
		dc_put(stg->dc, d);
		if (found && out->start_us < r->end_us) {
			*out_gen = g;
			return 0;
		}
		if (found)
			break;
	}
	return MDB_NOTFOUND;
}

int idx_cut(MDB_txn *t, struct stg *stg, uint32_t cam, int64_t rstart,
            const struct idx_range *r, const struct dir_entry *first, uint32_t first_gen,
            const struct dir_entry *last, uint32_t last_gen)
{
	struct range_key rk;
	range_key_make(&rk, cam, rstart);
	MDB_val k = { sizeof rk, &rk }, d;
	int err = mdb_del(t, stg->ix->ranges, &k, NULL);
	if (err)
		return err;
	struct dir_entry e;
	uint32_t g;
	if (first->start_us > rstart) {
		err = last_chunk_before(stg, r, rstart, cam, first_gen, first->start_us, &e, &g);
		if (!err) {
			struct idx_range before = *r;
			before.end_us = e.end_us;
			before.last_gen = g;
			d = (MDB_val){ sizeof before, &before };
			err = mdb_put(t, stg->ix->ranges, &k, &d, 0);
		} else if (err == MDB_NOTFOUND) {
			LOG_WARN("event=range_without_chunks camera=%u vol=%u gen=%u",
			         cam, r->vol, first_gen);
			err = 0;
		}
		if (err)
			return err;
	}
	err = first_chunk_after(stg, r, cam, last_gen, last->start_us, &e, &g);
	if (err == MDB_NOTFOUND)
		return 0;
	if (err)
		return err;
	struct idx_range after = *r;
	after.first_gen = g;
	range_key_make(&rk, cam, e.start_us);
	d = (MDB_val){ sizeof after, &after };
	return mdb_put(t, stg->ix->ranges, &k, &d, 0);
}

int idx_cut_chunks(MDB_txn *t, struct stg *stg, uint16_t vol, const struct loc_entry *c,
                   size_t n, uint64_t *cut)
{
	for (size_t i = 0; i < n;) {
		int64_t rstart;
		struct idx_range r;
		int err = idx_range_containing(t, stg->ix, c[i].e.camera_id, c[i].e.start_us,
		                               &rstart, &r);
		if (err == MDB_NOTFOUND || (!err && (r.vol != vol ||
		    range_kind(&r) != (c[i].e.flags & REC_RELOCATED) ||
		    c[i].gen < r.first_gen || c[i].gen > r.last_gen))) {
			i++;                 /* not indexed (any more): nothing to cut */
			continue;
		}
		if (err)
			return err;
		/* the run of chunks of this range: same camera and kind, sorted */
		size_t j = i;
		while (j + 1 < n && c[j + 1].e.camera_id == c[i].e.camera_id &&
		       (c[j + 1].e.flags & REC_RELOCATED) == (c[i].e.flags & REC_RELOCATED) &&
		       c[j + 1].e.start_us < r.end_us)
			j++;
		err = idx_cut(t, stg, c[i].e.camera_id, rstart, &r, &c[i].e, c[i].gen,
		              &c[j].e, c[j].gen);
		if (err)
			return err;
		if (cut)
			*cut += j - i + 1;
		for (size_t k = i; k <= j; k++)
			use_chunk_out(stg, vol, c[k].gen, &c[k].e);
		i = j + 1;
	}
	return 0;
}

int loc_entry_cmp(const void *a, const void *b)
{
	const struct loc_entry *x = a, *y = b;
	int c = dir_entry_cmp(&x->e, &y->e);
	if (c)
		return c;
	return x->gen < y->gen ? -1 : x->gen > y->gen;
}

int idx_reclaim_gen(MDB_txn *t, struct stg *stg, uint16_t vol, uint32_t gen)
{
	struct segdir *d;
	int err = dc_get(stg, vol, gen, &d);
	if (err == 0) {
		pthread_mutex_lock(&d->lock);
		uint32_t n = d->visible;
		struct loc_entry *copy = malloc((n ? n : 1) * sizeof *copy);
		for (uint32_t i = 0; copy && i < n; i++)
			copy[i] = (struct loc_entry){ d->e[i], gen };
		pthread_mutex_unlock(&d->lock);
		dc_put(stg->dc, d);
		if (!copy)
			return -ENOMEM;
		if (n)
			qsort(copy, n, sizeof *copy, loc_entry_cmp);
		err = idx_cut_chunks(t, stg, vol, copy, n, NULL);
		free(copy);
	} else {
		/* Directory unreadable: drop every range whose first gen this is.
		 * Which chunks went is unknown: the bytes per camera are counted
		 * again (usage.c). */
		LOG_WARN("event=reclaim_without_directory vol=%u gen=%u err=\"%s\"",
		         vol, gen, stg_strerror(err));
		use_recount(stg);
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
