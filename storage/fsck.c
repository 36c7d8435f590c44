/*
 * fsck.c - the checker: rebuild the index from the disks alone and compare
 * it with the live one.
 *
 * Every slot whose first block holds a valid segment header is a live
 * generation (a reclaimed slot gets its new header written right after the
 * reclaim is committed, see indexer.c). Each is scanned with the recovery
 * scan (record checks and checksums), its chunks become segment records and,
 * sorted by (camera, start) and merged with the same idx_merge_chunk() the
 * engine uses, ranges. So the rebuilt index is what the engine would have
 * built from the same chunks, and any difference from the live index is a
 * real inconsistency (or, before a restart, chunks of an open segment that
 * start-up recovery will pick up).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

struct located {
	struct dir_entry e;
	uint16_t vol;
	uint32_t gen;
};

struct fsck {
	struct stg *stg;                /* a minimal engine on the new index */
	struct index *live;             /* the index being checked, or NULL */
	stg_report_fn report;
	void *user;
	struct stg_fsck_report *rep;
	struct located *all;
	size_t n, cap;
	int lines;
};

static void say(struct fsck *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct fsck *f, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (f->report)
		f->report(f->user, line);
}

static int rm_index_dir(const char *dir)
{
	char p[600];
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/lock.mdb", dir);
	unlink(p);
	return rmdir(dir) && errno != ENOENT ? -errno : 0;
}

/* Copies what only the index knows from the old index: volume records
 * (volumes keep their ids), retention classes, camera classes and holds. */
static int copy_db(struct fsck *f, MDB_dbi from, MDB_dbi to);
static int copy_volumes(struct fsck *f)
{
	if (!f->live) {
		say(f, "no readable index: retention classes, camera classes and legal holds "
		    "cannot be recovered from the disks; define them and create holds again");
		return 0;
	}
	struct index *l = f->live, *n = f->stg->ix;
	int err = copy_db(f, idx_db_volumes(l), idx_db_volumes(n));
	if (!err)
		err = copy_db(f, idx_db_classes(l), idx_db_classes(n));
	if (!err)
		err = copy_db(f, idx_db_camclass(l), idx_db_camclass(n));
	if (!err)
		err = copy_db(f, idx_db_holds(l), idx_db_holds(n));
	return err;
}

struct copy_to {
	MDB_txn *t;
	MDB_dbi db;
};

static int copy_record(void *user, const MDB_val *k, const MDB_val *d)
{
	struct copy_to *to = user;
	return mdb_put(to->t, to->db, (MDB_val *)k, (MDB_val *)d, 0);
}

static int copy_db(struct fsck *f, MDB_dbi from, MDB_dbi to)
{
	MDB_txn *rt, *wt;
	int err = idx_read_begin(f->live, &rt);
	if (err)
		return err;
	err = idx_write_begin(f->stg->ix, &wt);
	if (err) {
		idx_read_end(f->live, rt);
		return err;
	}
	struct copy_to dst = { wt, to };
	err = idx_foreach(rt, from, copy_record, &dst);
	idx_read_end(f->live, rt);
	if (err) {
		mdb_txn_abort(wt);
		return err;
	}
	return idx_write_commit(f->stg->ix, wt);
}

static int keep(struct fsck *f, const struct dir_entry *e, uint16_t vol, uint32_t gen)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4096;
		struct located *na = realloc(f->all, cap * sizeof *na);
		if (!na)
			return -ENOMEM;
		f->all = na;
		f->cap = cap;
	}
	f->all[f->n++] = (struct located){ *e, vol, gen };
	return 0;
}

/* Writes a function's worth of index changes, growing the map if needed. */
typedef int (*txn_fn)(MDB_txn *t, struct fsck *f, void *arg);
static int with_txn(struct fsck *f, txn_fn fn, void *arg)
{
	for (;;) {
		MDB_txn *t;
		int err = idx_write_begin(f->stg->ix, &t);
		if (err)
			return err;
		err = fn(t, f, arg);
		if (!err)
			err = idx_write_commit(f->stg->ix, t);
		else
			mdb_txn_abort(t);
		if (err != MDB_MAP_FULL)
			return err;
		if ((err = idx_grow(f->stg->ix)))
			return err;
	}
}

struct seg_arg {
	struct vol *v;
	uint32_t gen, slot;
	struct scan_result *r;
};

static int put_segment_fn(MDB_txn *t, struct fsck *f, void *arg)
{
	struct seg_arg *a = arg;
	struct idx_segment s = {
		.slot = a->slot, .state = a->r->sealed ? SEG_SEALED : SEG_OPEN,
		.dir_off = a->r->sealed ? a->r->dir_off : 0,
		.dir_len = a->r->sealed ? a->r->dir_len : 0,
	};
	int err = idx_put_segment(t, f->stg->ix, a->v->id, a->gen, &s);
	for (uint32_t i = 0; i < a->r->n && !err; i++)
		err = idx_segment_add_chunk(t, f->stg->ix, a->v->id, a->gen, &a->r->e[i]);
	return err;
}

static int set_next_gen_fn(MDB_txn *t, struct fsck *f, void *arg)
{
	struct vol *v = arg;
	uint32_t max = 0;
	for (uint32_t i = 0; i < v->hdr.segment_count; i++)
		if (v->slot_gen[i] > max)
			max = v->slot_gen[i];
	uint8_t kb[2] = { v->id >> 8, v->id & 0xff };
	MDB_val k = { 2, kb }, d;
	int err = mdb_get(t, idx_db_volumes(f->stg->ix), &k, &d);
	if (err)
		return err;
	struct idx_volume rec;
	memcpy(&rec, d.mv_data, sizeof rec);
	if (rec.next_gen <= max)
		rec.next_gen = max + 1;
	d = (MDB_val){ sizeof rec, &rec };
	return mdb_put(t, idx_db_volumes(f->stg->ix), &k, &d, 0);
}

static int scan_volume(struct fsck *f, struct vol *v)
{
	for (uint32_t slot = 0; slot < v->hdr.segment_count; slot++) {
		struct seg_header sh;
		if (seg_read_header(v, slot, &sh))
			continue;
		struct scan_result r;
		int err = seg_scan(v, slot, sh.generation, &r);
		if (err) {
			say(f, "volume %s slot %u: read error: %s", v->path, slot, stg_strerror(err));
			return err;
		}
		v->slot_gen[slot] = sh.generation;
		f->rep->segments++;
		f->rep->chunks += r.n;
		f->rep->bad_records += r.bad_records;
		if (r.bad_records)
			say(f, "volume %s slot %u gen %u: %llu damaged record(s) skipped",
			    v->path, slot, sh.generation, (unsigned long long)r.bad_records);
		struct seg_arg a = { v, sh.generation, slot, &r };
		err = with_txn(f, put_segment_fn, &a);
		for (uint32_t i = 0; i < r.n && !err; i++)
			err = keep(f, &r.e[i], v->id, sh.generation);
		scan_result_free(&r);
		if (err)
			return err;
	}
	return with_txn(f, set_next_gen_fn, v);
}

/* By camera and start; of a chunk and its relocated copies the original
 * first, then the oldest copy: the one the live index holds (the others
 * are copies made ahead of a reuse, not indexed yet; idx_merge_chunk skips
 * them). */
static int located_cmp(const void *a, const void *b)
{
	const struct located *x = a, *y = b;
	int c = dir_entry_cmp(&x->e, &y->e);
	if (c)
		return c;
	if (x->vol != y->vol)
		return x->vol < y->vol ? -1 : 1;
	return x->gen < y->gen ? -1 : x->gen > y->gen;
}

struct merge_arg { size_t from, to; };

static int merge_fn(MDB_txn *t, struct fsck *f, void *arg)
{
	struct merge_arg *a = arg;
	int err = 0;
	for (size_t i = a->from; i < a->to && !err; i++)
		err = idx_merge_chunk(t, f->stg->ix, f->all[i].vol, f->all[i].gen,
		                      f->stg->cfg.gap_us, &f->all[i].e, NULL);
	return err;
}

static int build_ranges(struct fsck *f)
{
	qsort(f->all, f->n, sizeof *f->all, located_cmp);
	for (size_t i = 0; i < f->n; i += 100000) {
		struct merge_arg a = { i, i + 100000 < f->n ? i + 100000 : f->n };
		int err = with_txn(f, merge_fn, &a);
		if (err)
			return err;
	}
	return 0;
}

/* ---- comparison ------------------------------------------------------------- */

static void describe(char *out, size_t n, MDB_dbi which_is_ranges, MDB_dbi dbi,
                     const MDB_val *k)
{
	if (dbi == which_is_ranges) {
		uint32_t cam;
		int64_t start;
		range_key_parse(k->mv_data, &cam, &start);
		snprintf(out, n, "range camera=%u start_us=%lld", cam, (long long)start);
	} else {
		uint16_t vol;
		uint32_t gen;
		seg_key_parse(k->mv_data, &vol, &gen);
		snprintf(out, n, "segment volume_id=%u gen=%u", vol, gen);
	}
}

static uint64_t compare_db(struct fsck *f, MDB_txn *lt, MDB_dbi ldbi, MDB_txn *nt,
                           MDB_dbi ndbi, bool ranges)
{
	MDB_cursor *lc, *nc;
	mdb_cursor_open(lt, ldbi, &lc);
	mdb_cursor_open(nt, ndbi, &nc);
	MDB_val lk, ld, nk, nd;
	int lr = mdb_cursor_get(lc, &lk, &ld, MDB_FIRST);
	int nr = mdb_cursor_get(nc, &nk, &nd, MDB_FIRST);
	uint64_t diffs = 0;
	char what[128];
	while (lr == 0 || nr == 0) {
		int cmp = lr ? 1 : nr ? -1 : mdb_cmp(nt, ndbi, &lk, &nk);
		const char *msg = NULL;
		MDB_val *key = cmp <= 0 ? &lk : &nk;
		if (cmp < 0)
			msg = "in the index but not on the disks";
		else if (cmp > 0)
			msg = "on the disks but not in the index";
		else if (ld.mv_size != nd.mv_size || memcmp(ld.mv_data, nd.mv_data, ld.mv_size))
			msg = "differs between index and disks";
		if (msg) {
			diffs++;
			describe(what, sizeof what, ranges ? ndbi : (MDB_dbi)-1, ndbi, key);
			if (f->lines++ < 50)
				say(f, "%s: %s", what, msg);
		}
		if (cmp <= 0)
			lr = mdb_cursor_get(lc, &lk, &ld, MDB_NEXT);
		if (cmp >= 0)
			nr = mdb_cursor_get(nc, &nk, &nd, MDB_NEXT);
	}
	mdb_cursor_close(lc);
	mdb_cursor_close(nc);
	return diffs;
}

static int compare(struct fsck *f)
{
	MDB_txn *nt, *lt;
	int err = idx_read_begin(f->stg->ix, &nt);
	if (err)
		return err;
	MDB_stat st;
	mdb_stat(nt, idx_db_ranges(f->stg->ix), &st);
	f->rep->ranges = st.ms_entries;
	if (!f->live) {
		idx_read_end(f->stg->ix, nt);
		say(f, "no index at the configured path: every entry is missing");
		f->rep->differences = f->rep->ranges + f->rep->segments;
		return 0;
	}
	err = idx_read_begin(f->live, &lt);
	if (err) {
		idx_read_end(f->stg->ix, nt);
		return err;
	}
	f->rep->differences =
		compare_db(f, lt, idx_db_segments(f->live), nt, idx_db_segments(f->stg->ix), false) +
		compare_db(f, lt, idx_db_ranges(f->live), nt, idx_db_ranges(f->stg->ix), true);
	idx_read_end(f->live, lt);
	idx_read_end(f->stg->ix, nt);
	return 0;
}

/* A rebuild from some of the disks would make the index forget the others
 * and the engine would then reuse their segments: refuse it when a volume
 * the index knows is refused or was not given. */
static int check_all_volumes_present(struct fsck *f, const struct stg_fsck_report *rep)
{
	if (rep->volumes_refused) {
		say(f, "not rebuilding: %u volume(s) could not be used", rep->volumes_refused);
		return -EINVAL;
	}
	if (!f->live)
		return 0;
	MDB_txn *t;
	int err = idx_read_begin(f->live, &t);
	if (err)
		return err;
	MDB_cursor *c;
	mdb_cursor_open(t, idx_db_volumes(f->live), &c);
	MDB_val k, d;
	for (int rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0 && !err;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct idx_volume rec;
		memcpy(&rec, d.mv_data, sizeof rec);
		bool given = false;
		for (int i = 0; i < f->stg->nvols; i++)
			given |= !memcmp(f->stg->vols[i].hdr.uuid, rec.uuid, 16);
		if (!given) {
			say(f, "not rebuilding: the index knows volume %.*s, which was not given",
			    (int)sizeof rec.path, rec.path);
			err = -EINVAL;
		}
	}
	mdb_cursor_close(c);
	idx_read_end(f->live, t);
	return err;
}

static void fsck_free(struct fsck *f)
{
	if (f->stg) {
		for (int i = 0; i < f->stg->nvols; i++)
			vol_detach(&f->stg->vols[i]);
		dc_destroy(f->stg->dc);
		idx_close(f->stg->ix);
		free(f->stg);
	}
	idx_close(f->live);
	free(f->all);
}

static int replace_index(struct fsck *f, const char *live_dir, const char *new_dir)
{
	char old[600];
	snprintf(old, sizeof old, "%s.old", live_dir);
	rm_index_dir(old);
	if (access(live_dir, F_OK) == 0 && rename(live_dir, old))
		return -errno;
	if (rename(new_dir, live_dir))
		return -errno;
	say(f, "index rebuilt from the disks; previous index kept in %s", old);
	return 0;
}

int stg_fsck(const struct stg_config *cfg, bool rebuild, stg_report_fn report,
             void *user, struct stg_fsck_report *out)
{
	struct fsck f = { .report = report, .user = user, .rep = out };
	memset(out, 0, sizeof *out);
	if (cfg->volume_count <= 0 || cfg->volume_count > STG_MAX_VOLUMES)
		return -EINVAL;
	char new_dir[600];
	snprintf(new_dir, sizeof new_dir, "%s.rebuild", cfg->index_dir);
	int err = rm_index_dir(new_dir);
	if (err)
		return err;
	if (access(cfg->index_dir, F_OK) == 0 &&
	    (err = idx_open(cfg->index_dir, 64u << 20, &f.live))) {
		say(&f, "index %s cannot be opened: %s", cfg->index_dir, stg_strerror(err));
		f.live = NULL;
	}
	f.stg = calloc(1, sizeof *f.stg);
	if (!f.stg)
		return -ENOMEM;
	f.stg->cfg.gap_us = cfg->gap_us ? cfg->gap_us : 1000000;
	if ((err = idx_open(new_dir, 64u << 20, &f.stg->ix)) ||
	    (err = dc_create(1u << 20, &f.stg->dc)) || (err = copy_volumes(&f)))
		goto done;
	for (int i = 0; i < cfg->volume_count; i++) {
		struct vol *v = &f.stg->vols[i];
		v->index = i;
		f.stg->nvols++;
		out->volumes++;
		if (vol_attach(f.stg, v, cfg->volumes[i])) {
			out->volumes_refused++;
			say(&f, "volume %s refused: %s", cfg->volumes[i], v->last_error);
			continue;
		}
		if ((err = scan_volume(&f, v)))
			goto done;
	}
	if ((err = build_ranges(&f)) || (err = compare(&f)))
		goto done;
	if (rebuild && (err = check_all_volumes_present(&f, out)))
		goto done;
	say(&f, "volumes=%u refused=%u segments=%llu chunks=%llu bad_records=%llu ranges=%llu differences=%llu",
	    out->volumes, out->volumes_refused, (unsigned long long)out->segments,
	    (unsigned long long)out->chunks, (unsigned long long)out->bad_records,
	    (unsigned long long)out->ranges, (unsigned long long)out->differences);
done:
	fsck_free(&f);
	if (!err && rebuild)
		return replace_index(&f, cfg->index_dir, new_dir);
	rm_index_dir(new_dir);
	return err;
}
