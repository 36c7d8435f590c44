/*
 * usage.c - bytes of footage on disk per camera, counted as they change,
 * so that the retention sweep can hold each class to its share of the
 * capacity without walking the disks' directories.
 *
 * Why counted and not measured: a class's bytes are the lengths of the
 * indexed chunks of its cameras. Measuring them means reading the
 * directory of every live segment of every volume (thousands per disk,
 * each thousands of entries) at every sweep, once a minute, on the index
 * thread that recording waits for. Counting costs a few additions per
 * chunk; a sweep then sums an array (30,000 cameras: well under a
 * millisecond). Counts are per camera, not per class, so a camera that
 * changes class takes its bytes with it.
 *
 * What changes a count (all on the index thread, inside a write
 * transaction):
 *  - a chunk enters the index (indexer.c after its write, relocate.c when
 *    a copy is indexed at its original's reclaim): + its record length;
 *  - a chunk leaves it (index.c idx_cut_chunks, the one path of reclaims,
 *    maximum retention, shares and purges): - its record length.
 * Only indexed chunks count: a relocated copy waiting for its original's
 * reclaim does not, so no footage counts twice.
 *
 * Census. After a start (and after use_recount) the counts are unknown and
 * are rebuilt by a census of the live segments, a slice of at most
 * CENSUS_SLICE_US at a time on the index thread between commits
 * (indexer.c), while the changes above go on. One predicate keeps the two
 * consistent: a chunk of generation g on volume v is counted if g is at or
 * above boundary[v] (the volume's next generation when the census began:
 * every chunk of it entered the index since) or below cursor[v] (the census
 * added the indexed chunks of g when it passed). Changes to a generation
 * not counted yet are left out; the census sees the index as they left it.
 * Cost: one directory per live segment (from the cache or one read) and an
 * LMDB lookup per range met in it. Shares wait until the census is done
 * (use_ready).
 *
 * Transactions. A write transaction may abort (a purge refused under a
 * hold; a full map, grown and the batch redone), so changes wait in a
 * pending list: use_commit applies them after the commit, use_abort drops
 * them. If the list cannot grow (no memory) the counts are rebuilt by a
 * new census after the commit rather than silently wrong.
 *
 * State: index thread only, no lock. Readers get per-class sums that the
 * sweep publishes (retention.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "idarray.h"
#include "internal.h"

#define CENSUS_SLICE_US 20000      /* index thread time per census step */
#define CENSUS_RETRY_MS 1000       /* pause after a failed step */

struct use_cam {
	uint32_t id;
	uint64_t bytes;
};

struct use_delta {
	uint32_t cam;
	int64_t bytes;
};

enum use_state {
	USE_IDLE,                  /* not started: nothing is counted */
	USE_COUNTING,              /* census under way */
	USE_READY,
};

struct usage {
	struct use_cam *cams;      /* sorted by id */
	uint32_t ncams, cams_cap;
	struct use_delta *pend;    /* changes of the open write transaction */
	size_t npend, pend_cap;
	bool pend_lost;            /* a change could not be kept */
	bool recount_asked;        /* in the open transaction */
	enum use_state state;
	bool restart;              /* the census starts (again) at its next step */
	uint32_t boundary[STG_MAX_VOLUMES];
	uint32_t cursor[STG_MAX_VOLUMES];
	bool vol_done[STG_MAX_VOLUMES];
	uint64_t segments;         /* counted by this census */
	int64_t started_us;        /* wall clock */
	uint64_t underflows;       /* counts that would have gone below zero */
};

int use_init(struct stg *stg)
{
	stg->use = calloc(1, sizeof *stg->use);
	return stg->use ? 0 : -ENOMEM;
}

void use_free(struct stg *stg)
{
	struct usage *u = stg->use;
	if (!u)
		return;
	free(u->cams);
	free(u->pend);
	free(u);
	stg->use = NULL;
}

void use_start(struct stg *stg)
{
	struct usage *u = stg->use;
	if (!u)
		return;
	u->state = USE_COUNTING;
	u->restart = true;
}

bool use_ready(struct stg *stg)
{
	return stg->use && stg->use->state == USE_READY && !stg->use->restart;
}

/* The slot of volume `id` in stg->vols, -1 if none. */
static int vol_slot(struct stg *stg, uint16_t id)
{
	for (int i = 0; i < stg->nvols; i++)
		if (stg->vols[i].id == id)
			return i;
	return -1;
}

static bool counted(struct stg *stg, uint16_t vol, uint32_t gen)
{
	struct usage *u = stg->use;
	if (!u || u->state == USE_IDLE || u->restart)
		return false;
	int i = vol_slot(stg, vol);
	return i >= 0 && (gen >= u->boundary[i] || gen < u->cursor[i]);
}

static struct use_cam *cam_get(struct usage *u, uint32_t id)
{
	void *items = u->cams;
	struct use_cam *c = idarray_get(&items, &u->ncams, &u->cams_cap, sizeof *c, id, true, NULL);
	u->cams = items;
	return c;
}

/* Adds `delta` to camera id's count now (census, commit). */
static int cam_add(struct usage *u, uint32_t id, int64_t delta)
{
	struct use_cam *c = cam_get(u, id);
	if (!c)
		return -ENOMEM;
	if (delta < 0 && (uint64_t)-delta > c->bytes) {
		if (!u->underflows++)
			LOG_WARN("event=footage_count_below_zero camera=%u bytes=%llu change=%lld",
			         id, (unsigned long long)c->bytes, (long long)delta);
		c->bytes = 0;
	} else {
		c->bytes = (uint64_t)((int64_t)c->bytes + delta);
	}
	return 0;
}

static void pend(struct stg *stg, uint16_t vol, uint32_t gen, const struct dir_entry *e,
                 int64_t sign)
{
	struct usage *u = stg->use;
	if (!counted(stg, vol, gen))
		return;
	if (u->npend == u->pend_cap) {
		size_t cap = u->pend_cap ? u->pend_cap * 2 : 256;
		struct use_delta *n = realloc(u->pend, cap * sizeof *n);
		if (!n) {
			u->pend_lost = true;
			return;
		}
		u->pend = n;
		u->pend_cap = cap;
	}
	u->pend[u->npend++] = (struct use_delta){ e->camera_id, sign * (int64_t)e->length };
}

void use_chunk_in(struct stg *stg, uint16_t vol, uint32_t gen, const struct dir_entry *e)
{
	pend(stg, vol, gen, e, 1);
}

void use_chunk_out(struct stg *stg, uint16_t vol, uint32_t gen, const struct dir_entry *e)
{
	pend(stg, vol, gen, e, -1);
}

void use_recount(struct stg *stg)
{
	if (stg->use)
		stg->use->recount_asked = true;
}

void use_commit(struct stg *stg)
{
	struct usage *u = stg->use;
	if (!u)
		return;
	for (size_t i = 0; i < u->npend && !u->pend_lost; i++)
		if (cam_add(u, u->pend[i].cam, u->pend[i].bytes))
			u->pend_lost = true;
	if (u->pend_lost || u->recount_asked) {
		LOG_WARN("event=footage_recount reason=%s",
		         u->pend_lost ? "out_of_memory" : "reclaim_without_directory");
		u->state = USE_COUNTING;
		u->restart = true;
	}
	use_abort(stg);
}

void use_abort(struct stg *stg)
{
	struct usage *u = stg->use;
	if (!u)
		return;
	u->npend = 0;
	u->pend_lost = false;
	u->recount_asked = false;
}

void use_each(struct stg *stg, use_fn fn, void *user)
{
	struct usage *u = stg->use;
	if (!u)
		return;
	for (uint32_t i = 0; i < u->ncams; i++)
		fn(user, u->cams[i].id, (int64_t)u->cams[i].bytes);
	for (size_t i = 0; i < u->npend; i++)
		fn(user, u->pend[i].cam, u->pend[i].bytes);
}

/* ---- the census ---------------------------------------------------------- */

/* Sets the boundaries to each volume's next generation and forgets every
 * count: the census starts from nothing. */
static int census_begin(MDB_txn *t, struct stg *stg)
{
	struct usage *u = stg->use;
	for (int i = 0; i < stg->nvols; i++) {
		struct vol *v = &stg->vols[i];
		u->cursor[i] = 0;
		u->boundary[i] = 0;
		u->vol_done[i] = !v->seg_fd;
		if (u->vol_done[i])
			continue;
		uint8_t kb[2] = { v->id >> 8, v->id & 0xff };
		MDB_val k = { 2, kb }, d;
		int err = mdb_get(t, idx_db_volumes(stg->ix), &k, &d);
		if (err == MDB_NOTFOUND) {
			u->vol_done[i] = true;
			continue;
		}
		if (err)
			return err;
		struct idx_volume rec;
		if (d.mv_size != sizeof rec)
			return STG_ECORRUPT;
		memcpy(&rec, d.mv_data, sizeof rec);
		u->boundary[i] = rec.next_gen;
	}
	for (uint32_t i = 0; i < u->ncams; i++)
		u->cams[i].bytes = 0;
	u->segments = 0;
	u->underflows = 0;
	u->started_us = stg_realtime_us();
	u->restart = false;
	return 0;
}

/* Adds the indexed chunks of (v, gen). The entries are copied out first
 * (readers take the directory's lock); a sealed directory is sorted by
 * camera and time, so one range lookup usually serves a camera's run. */
static int census_segment(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t gen)
{
	struct segdir *d;
	int err = dc_get(stg, v->id, gen, &d);
	if (err == STG_EGONE || err == MDB_NOTFOUND)
		return 0;
	if (err) {
		/* its chunks stay uncounted: shares see less than there is */
		LOG_WARN("event=footage_not_counted vol=%u gen=%u err=\"%s\"", v->id, gen,
		         stg_strerror(err));
		return 0;
	}
	struct dir_entry *e;
	uint32_t n;
	err = segdir_copy(d, &e, &n);
	dc_put(stg->dc, d);
	if (err)
		return err;
	int64_t rstart = 0;
	struct idx_range r = { 0 };
	bool have = false;
	uint32_t rcam = 0;
	for (uint32_t i = 0; i < n && !err; i++) {
		if (!have || rcam != e[i].camera_id || !idx_range_holds(rstart, &r, v->id, gen, &e[i])) {
			have = !idx_range_containing(t, stg->ix, e[i].camera_id, e[i].start_us,
			                             &rstart, &r);
			rcam = e[i].camera_id;
		}
		if (have && idx_range_holds(rstart, &r, v->id, gen, &e[i]))
			err = cam_add(stg->use, e[i].camera_id, e[i].length);
	}
	free(e);
	return err;
}

/* Counts the next segment of volume slot i, or marks the volume done. */
static int census_next(MDB_txn *t, struct stg *stg, int i)
{
	struct usage *u = stg->use;
	struct vol *v = &stg->vols[i];
	uint32_t gen;
	struct idx_segment s;
	int err = idx_next_segment(t, stg->ix, v->id, u->cursor[i], &gen, &s);
	if (err == MDB_NOTFOUND || (!err && gen >= u->boundary[i])) {
		u->vol_done[i] = true;
		u->cursor[i] = u->boundary[i];
		return 0;
	}
	if (!err)
		err = census_segment(t, stg, v, gen);
	if (!err) {
		u->cursor[i] = gen + 1;
		u->segments++;
	}
	return err;
}

static bool all_done(const struct stg *stg)
{
	for (int i = 0; i < stg->nvols; i++)
		if (!stg->use->vol_done[i])
			return false;
	return true;
}

int use_census_step(struct stg *stg)
{
	struct usage *u = stg->use;
	if (!u || u->state != USE_COUNTING)
		return -1;
	MDB_txn *t;
	int err = idx_read_begin(stg->ix, &t);
	if (!err) {
		if (u->restart)
			err = census_begin(t, stg);
		int64_t until = stg_realtime_us() + CENSUS_SLICE_US;
		/* volumes in turn, a segment each, so that all advance together */
		while (!err && !all_done(stg) && stg_realtime_us() < until)
			for (int i = 0; i < stg->nvols && !err; i++)
				if (!u->vol_done[i])
					err = census_next(t, stg, i);
		idx_read_end(stg->ix, t);
	}
	if (err) {
		/* from the start again, after a pause */
		LOG_ERR("event=footage_count_failed err=\"%s\"", stg_strerror(err));
		u->restart = true;
		return CENSUS_RETRY_MS;
	}
	if (!all_done(stg))
		return 0;
	u->state = USE_READY;
	LOG_INFO("event=footage_counted cameras=%u segments=%llu ms=%.0f", u->ncams,
	         (unsigned long long)u->segments, (stg_realtime_us() - u->started_us) / 1e3);
	return -1;
}
