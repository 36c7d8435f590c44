/*
 * reader.c - reading footage back: the recorded ranges of a camera, and an
 * iterator over its frames from a key frame at or before t0 to t1.
 *
 * How a time is found: the ranges table gives the range holding t0 and the
 * volume generations it spans; a binary search over those generations'
 * segment records (by their earliest time) picks the generation; that
 * segment's directory (cache or one read) gives the chunk; the chunk's
 * frame table gives the key frame. Every chunk read is checked (magic,
 * camera, generation, checksum) before a byte of it is returned: a chunk
 * whose slot was reused since the lookup reads as STG_EGONE, a damaged one
 * as STG_ECORRUPT and is skipped.
 *
 * Read-ahead: footage is written with O_DIRECT, so the page cache never
 * holds it and every chunk read waits for the disk; a camera's chunks lie
 * between other cameras' in the segment, so the kernel's own read-ahead
 * (of the bytes after a read) fetches the wrong footage. While iterating,
 * the iterator tells the kernel which chunks of its range come next, up to
 * ITER_READAHEAD bytes ahead (posix_fadvise WILLNEED: asynchronous reads
 * into the page cache), so that the disk works while the caller muxes,
 * hashes or sends the chunk before. (An export of 16 cameras had spent
 * most of its time waiting for one chunk read after another.)
 *
 * stg_key_frames walks the same ranges and directories without reading
 * chunks: a chunk flagged REC_KEY_START begins a GOP, the chunks after it
 * without the flag extend it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

/* ---- ranges ------------------------------------------------------------------ */

struct range_rec {
	int64_t start;
	struct idx_range r;
};

/* Positions on the camera's last range starting at or before t (or its
 * first range if none); returns 0 and fills *rr or MDB_NOTFOUND. */
static int range_seek(MDB_cursor *c, uint32_t cam, int64_t t, struct range_rec *rr)
{
	struct range_key rk;
	range_key_make(&rk, cam, t);
	MDB_val k = { sizeof rk, &rk }, d;
	int err = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	uint32_t kc;
	if (err == MDB_NOTFOUND)
		err = mdb_cursor_get(c, &k, &d, MDB_LAST);
	else if (!err) {
		range_key_parse(k.mv_data, &kc, &rr->start);
		if (kc != cam || rr->start > t) {
			MDB_val k2, d2;
			if (mdb_cursor_get(c, &k2, &d2, MDB_PREV) == 0) {
				range_key_parse(k2.mv_data, &kc, &rr->start);
				if (kc == cam) {
					k = k2;
					d = d2;
				} else {
					mdb_cursor_get(c, &k, &d, MDB_NEXT);
				}
			}
		}
	}
	if (err)
		return err;
	range_key_parse(k.mv_data, &kc, &rr->start);
	if (kc != cam)
		return MDB_NOTFOUND;
	memcpy(&rr->r, d.mv_data, sizeof rr->r);
	return 0;
}

static int range_next(MDB_cursor *c, uint32_t cam, struct range_rec *rr)
{
	MDB_val k, d;
	int err = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	if (err)
		return err;
	uint32_t kc;
	range_key_parse(k.mv_data, &kc, &rr->start);
	if (kc != cam)
		return MDB_NOTFOUND;
	memcpy(&rr->r, d.mv_data, sizeof rr->r);
	return 0;
}

int stg_ranges(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
               struct stg_range *out, int max)
{
	MDB_txn *t;
	int err = idx_read_begin(stg->ix, &t);
	if (err)
		return err;
	MDB_cursor *c;
	mdb_cursor_open(t, idx_db_ranges(stg->ix), &c);
	struct range_rec rr;
	int n = 0;
	int64_t prev_end = INT64_MIN;
	uint16_t prev_flags = 0;
	for (err = range_seek(c, camera_id, t0, &rr); !err && rr.start < t1;
	     err = range_next(c, camera_id, &rr)) {
		if (rr.r.end_us <= t0)
			continue;
		struct stg_range x = { rr.start > t0 ? rr.start : t0,
		                       rr.r.end_us < t1 ? rr.r.end_us : t1 };
		/* relocated footage touching footage that stayed in place is one
		 * stretch to the caller (ranges that touch otherwise are an
		 * interruption: stg_camera_flush) */
		bool reloc = (rr.r.flags | prev_flags) & RANGE_RELOCATED;
		prev_flags = rr.r.flags;
		if (n > 0 && reloc && x.start_us <= prev_end) {
			if (x.end_us > prev_end)
				prev_end = x.end_us;
			if (n <= max)
				out[n - 1].end_us = prev_end;
			continue;
		}
		if (n < max)
			out[n] = x;
		prev_end = x.end_us;
		n++;
	}
	mdb_cursor_close(c);
	idx_read_end(stg->ix, t);
	return err && err != MDB_NOTFOUND ? err : n;
}

/* Sums the chunks of one range that overlap [t0, t1); the window is first
 * clipped to the range so that a generation shared with a neighbouring
 * range is not counted twice. */
static int estimate_range(struct stg *stg, uint32_t cam, const struct range_rec *rr,
                          int64_t t0, int64_t t1, struct stg_estimate *acc)
{
	int64_t a = rr->start > t0 ? rr->start : t0;
	int64_t b = rr->r.end_us < t1 ? rr->r.end_us : t1;
	for (uint32_t g = rr->r.first_gen; a < b && g <= rr->r.last_gen; g++) {
		struct segdir *d;
		int err = dc_get(stg, rr->r.vol, g, &d);
		if (err == STG_EGONE || err == MDB_NOTFOUND)
			continue;      /* reclaimed since the range was read */
		if (err)
			return err;
		segdir_sum(d, cam, a, b, acc);
		dc_put(stg->dc, d);
	}
	return 0;
}

#define EST_BATCH 64

/* Reads up to EST_BATCH ranges overlapping [from, t1) in one short read
 * transaction (directory reads come after it, without the snapshot). */
static int estimate_batch(struct stg *stg, uint32_t cam, int64_t from, int64_t t1,
                          struct range_rec *rr, int *n)
{
	*n = 0;
	MDB_txn *t;
	MDB_cursor *c;
	int err = idx_read_begin(stg->ix, &t);
	if (err)
		return err;
	err = mdb_cursor_open(t, idx_db_ranges(stg->ix), &c);
	if (!err) {
		for (err = range_seek(c, cam, from, &rr[0]); !err && rr[*n].start < t1;
		     err = range_next(c, cam, &rr[*n])) {
			if (rr[*n].r.end_us > from && ++*n == EST_BATCH)
				break;
		}
		mdb_cursor_close(c);
	}
	idx_read_end(stg->ix, t);
	return err == MDB_NOTFOUND ? 0 : err;
}

int stg_estimate(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
                 struct stg_estimate *out)
{
	struct stg_estimate acc = { 0 };
	struct range_rec rr[EST_BATCH];
	int64_t from = t0;
	int n, err;
	do {
		err = estimate_batch(stg, camera_id, from, t1, rr, &n);
		for (int i = 0; !err && i < n; i++)
			err = estimate_range(stg, camera_id, &rr[i], t0, t1, &acc);
		if (n > 0)
			from = rr[n - 1].r.end_us;
	} while (!err && n == EST_BATCH);
	*out = err ? (struct stg_estimate){ 0 } : acc;
	return err;
}

/* ---- iterator ---------------------------------------------------------------- */

#define ITER_READAHEAD (8u << 20)   /* bytes of the next chunks asked for ahead */

/* Where the last generation looked up lives (slot_of). */
struct slot_cache {
	bool valid;
	uint16_t vol;
	uint32_t gen, slot;
};

struct stg_iter {
	struct stg *stg;
	uint32_t cam;
	int64_t t1;
	struct range_rec range;      /* current range */
	bool have_range;
	uint32_t gen;                /* current generation */
	struct dir_entry chunk;      /* current chunk */
	uint8_t *buf;
	uint32_t cap;
	struct rec_header hdr;
	const struct frame_entry *table;
	const uint8_t *frames;
	uint32_t frame;              /* next frame index */
	uint32_t frame_off;          /* byte offset of that frame */
	bool discontinuity;
	bool done;
	/* read-ahead: the last chunk asked for (of the current range) and the
	 * bytes asked for and not read yet */
	bool ra_valid;
	struct dir_entry ra_chunk;
	uint32_t ra_gen;
	uint64_t ra_pending;
	struct slot_cache read_slot, ra_slot;   /* of the last chunk read, read ahead */
};

static struct vol *vol_by_id(struct stg *stg, uint16_t id)
{
	for (int i = 0; i < stg->nvols; i++)
		if (stg->vols[i].id == id && stg->vols[i].seg_fd)
			return &stg->vols[i];
	return NULL;
}

/* Finds the slot of generation gen, asking the index only when the
 * generation is not the one in the cache (chunks of one camera come many
 * to a segment). A slot reused since is caught by the generation in the
 * chunk header: the read then answers STG_EGONE, as a fresh lookup would. */
static int slot_of(struct stg *stg, struct slot_cache *c, uint16_t volid, uint32_t gen,
                   uint32_t *slot)
{
	if (!(c->valid && c->vol == volid && c->gen == gen)) {
		struct idx_segment s;
		int err = idx_lookup_segment(stg->ix, volid, gen, &s);
		if (err)
			return err == MDB_NOTFOUND ? STG_EGONE : err;
		*c = (struct slot_cache){ true, volid, gen, s.slot };
	}
	*slot = c->slot;
	return 0;
}

/* Reads and checks a chunk into it->buf. */
static int load_chunk(struct stg_iter *it, uint16_t volid, uint32_t gen,
                      const struct dir_entry *e)
{
	struct vol *v = vol_by_id(it->stg, volid);
	if (!v)
		return -ENODEV;
	uint32_t slot;
	int err = slot_of(it->stg, &it->read_slot, volid, gen, &slot);
	if (err)
		return err;
	it->chunk = *e;
	it->gen = gen;
	it->hdr.frame_count = 0;
	if (e->length > it->cap) {
		uint8_t *nb = realloc(it->buf, e->length);
		if (!nb)
			return -ENOMEM;
		it->buf = nb;
		it->cap = e->length;
	}
	ssize_t got = pread(v->seg_fd[slot], it->buf, e->length, (off_t)e->offset8 * 8);
	if (got != (ssize_t)e->length)
		return got < 0 ? -errno : STG_ECORRUPT;
	err = chunk_parse(it->buf, e->length, gen, it->cam, &it->hdr, &it->table,
	                  &it->frames);
	if (err) {
		it->hdr.frame_count = 0;
		return err;
	}
	it->frame = 0;
	it->frame_off = 0;
	return 0;
}

static int seg_tmin(struct stg *stg, uint16_t vol, uint32_t gen, int64_t *tmin)
{
	struct idx_segment s;
	int err = idx_lookup_segment(stg->ix, vol, gen, &s);
	if (!err)
		*tmin = seg_has_times(&s) ? s.t_min : INT64_MAX;
	return err;
}

/* The kind of chunk a range is made of (format.h). */
static uint16_t range_kind(const struct range_rec *rr)
{
	return rr->r.flags & RANGE_RELOCATED ? REC_RELOCATED : 0;
}

/* The generation of the range most likely to hold time t: the last one
 * whose earliest chunk starts at or before t. */
static uint32_t gen_for_time(struct stg *stg, const struct range_rec *rr, int64_t t)
{
	uint32_t lo = rr->r.first_gen, hi = rr->r.last_gen;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		int64_t tmin;
		if (seg_tmin(stg, rr->r.vol, mid, &tmin) == 0 && tmin <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* Finds the chunk of the current range whose start is the latest <= t,
 * scanning back from the likely generation. */
static int find_chunk_at(struct stg_iter *it, int64_t t, struct dir_entry *e, uint32_t *gen)
{
	const struct range_rec *rr = &it->range;
	uint32_t g = gen_for_time(it->stg, rr, t);
	for (uint32_t tries = 0; g >= rr->r.first_gen && tries < 4; g--, tries++) {
		struct segdir *d;
		int err = dc_get(it->stg, rr->r.vol, g, &d);
		if (err == STG_EGONE || err == MDB_NOTFOUND)
			continue;
		if (err)
			return err;
		int found = segdir_last_before(d, it->cam, t, range_kind(rr), e);
		dc_put(it->stg->dc, d);
		if (found && e->start_us >= rr->start) {
			*gen = g;
			return 0;
		}
		if (g == 0)
			break;
	}
	return MDB_NOTFOUND;
}

/* The chunk of the current range after `cur` (or the range's first chunk
 * if cur is NULL); *gone: a generation on the way was reclaimed since the
 * range was read. */
static int chunk_after(struct stg_iter *it, const struct dir_entry *cur, uint32_t cur_gen,
                       struct dir_entry *e, uint32_t *gen, bool *gone)
{
	const struct range_rec *rr = &it->range;
	uint32_t g = cur ? cur_gen : rr->r.first_gen;
	int64_t after = cur ? cur->start_us : rr->start - 1;
	for (; g <= rr->r.last_gen; g++) {
		struct segdir *d;
		int err = dc_get(it->stg, rr->r.vol, g, &d);
		if (err == STG_EGONE || err == MDB_NOTFOUND) {
			*gone = true;
			continue;
		}
		if (err)
			return err;
		int found = segdir_first_after(d, it->cam, after, range_kind(rr), e);
		dc_put(it->stg->dc, d);
		if (found && e->start_us < rr->r.end_us) {   /* end is exclusive */
			*gen = g;
			return 0;
		}
	}
	return MDB_NOTFOUND;
}

/* chunk_after for reading: what a reclaim took is skipped, and the reader
 * says so (a discontinuity). */
static int next_chunk(struct stg_iter *it, const struct dir_entry *cur, uint32_t cur_gen,
                      struct dir_entry *e, uint32_t *gen)
{
	bool gone = false;
	int err = chunk_after(it, cur, cur_gen, e, gen, &gone);
	if (gone)
		it->discontinuity = true;
	return err;
}

/* Asks the kernel for the chunks after the one just loaded, up to
 * ITER_READAHEAD bytes ahead of it (see the top of this file). Advice
 * only: a failure costs speed, never a frame. */
static void read_ahead(struct stg_iter *it)
{
	const struct dir_entry *cur = &it->chunk;
	bool behind = !it->ra_valid || it->ra_gen < it->gen ||
	              (it->ra_gen == it->gen && it->ra_chunk.start_us <= cur->start_us);
	if (behind) {
		it->ra_chunk = *cur;
		it->ra_gen = it->gen;
		it->ra_valid = true;
		it->ra_pending = 0;
	} else {
		it->ra_pending = it->ra_pending > cur->length ? it->ra_pending - cur->length : 0;
	}
	struct vol *v = vol_by_id(it->stg, it->range.r.vol);
	while (v && it->ra_pending < ITER_READAHEAD) {
		struct dir_entry e;
		uint32_t g, slot;
		bool gone = false;
		if (chunk_after(it, &it->ra_chunk, it->ra_gen, &e, &g, &gone) ||
		    slot_of(it->stg, &it->ra_slot, it->range.r.vol, g, &slot))
			break;
		posix_fadvise(v->seg_fd[slot], (off_t)e.offset8 * 8, e.length, POSIX_FADV_WILLNEED);
		it->ra_chunk = e;
		it->ra_gen = g;
		it->ra_pending += e.length;
	}
}

static int load_range(struct stg_iter *it, int64_t t, bool after)
{
	MDB_txn *t_;
	int err = idx_read_begin(it->stg->ix, &t_);
	if (err)
		return err;
	MDB_cursor *c;
	mdb_cursor_open(t_, idx_db_ranges(it->stg->ix), &c);
	err = range_seek(c, it->cam, t, &it->range);
	while (!err && (it->range.r.end_us <= t || (after && it->range.start <= t)))
		err = range_next(c, it->cam, &it->range);
	mdb_cursor_close(c);
	idx_read_end(it->stg->ix, t_);
	it->have_range = err == 0;
	return err;
}

/* Moves to the first chunk of the next range: the first range starting
 * after the chunk just served. (Not "after the current range's start": a
 * reclaim may have moved that start forward while we iterated, and the
 * moved range must not be served twice.) */
static int advance_range(struct stg_iter *it)
{
	int64_t after = it->chunk.start_us > it->range.start ? it->chunk.start_us : it->range.start;
	for (;;) {
		int err = load_range(it, after, true);
		if (err == MDB_NOTFOUND || (!err && it->range.start >= it->t1)) {
			it->done = true;
			return 0;
		}
		if (err)
			return err;
		struct dir_entry e;
		uint32_t g;
		err = next_chunk(it, NULL, 0, &e, &g);
		if (err == MDB_NOTFOUND) {
			after = it->range.start;   /* range reclaimed under us: the next */
			continue;
		}
		int64_t prev_end = it->chunk.end_us;
		if (!err)
			err = load_chunk(it, it->range.r.vol, g, &e);
		if (!err && (e.start_us > prev_end || !(it->range.r.flags & RANGE_RELOCATED)))
			it->discontinuity = true;   /* relocated footage next to the rest is no gap */
		return err;
	}
}

/* Positions on the key frame at or before t0 within the loaded chunk (or,
 * with `first`, on its first key frame); false if there is none. */
static bool seek_key_in_chunk(struct stg_iter *it, int64_t t0, bool first)
{
	int best = -1;
	uint32_t off = 0, best_off = 0;
	first = first || t0 < it->hdr.first_us;
	for (uint32_t i = 0; i < it->hdr.frame_count; i++) {
		int64_t ts = it->hdr.first_us + (it->table[i].dt_key >> 1);
		if (!first && ts > t0)
			break;
		if (it->table[i].dt_key & 1) {
			best = (int)i;
			best_off = off;
			if (first)
				break;
		}
		off += it->table[i].size;
	}
	if (best < 0)
		return false;
	it->frame = (uint32_t)best;
	it->frame_off = best_off;
	return true;
}

static void log_damaged(const struct stg_iter *it, const struct dir_entry *e, uint32_t gen)
{
	LOG_ERR("event=chunk_damaged camera=%u vol=%u gen=%u offset=%llu action=skipped",
	        it->cam, it->range.r.vol, gen, (unsigned long long)e->offset8 * 8);
}

/* From chunk e of generation g, finds where decoding can start for t0:
 * the key frame at or before t0, stepping back over chunks that do not start
 * with one, or else the first key frame after; damaged chunks are skipped. */
static int position_at(struct stg_iter *it, int64_t t0, struct dir_entry e, uint32_t g)
{
	bool forward = false;
	int back = 0;
	/* A GOP may span many chunks (a recorder closing chunks at 112 KiB
	 * splits a 4 Mbit/s GOP of 1 MB in ten): step back far enough. */
	for (int steps = 0; steps < 256; steps++) {
		int err = load_chunk(it, it->range.r.vol, g, &e);
		if (err == STG_ECORRUPT) {
			log_damaged(it, &e, g);
			forward = true;
		} else if (err) {
			return err;
		} else if (seek_key_in_chunk(it, t0, forward)) {
			return 0;
		} else if (!forward && back++ < 128) {
			struct dir_entry prev;
			uint32_t pg;
			if (find_chunk_at(it, e.start_us - 1, &prev, &pg) == 0) {
				e = prev;
				g = pg;
				continue;
			}
			forward = true;
		}
		forward = true;
		err = next_chunk(it, &e, g, &e, &g);
		if (err)
			return err;
		it->discontinuity = true;
	}
	return MDB_NOTFOUND;
}

int stg_iter_open(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
                  struct stg_iter **out)
{
	struct stg_iter *it = calloc(1, sizeof *it);
	if (!it)
		return -ENOMEM;
	it->stg = stg;
	it->cam = camera_id;
	it->t1 = t1;
	int err = load_range(it, t0, false);
	if (err == MDB_NOTFOUND || (!err && it->range.start >= t1)) {
		it->done = true;
		*out = it;
		return 0;
	}
	struct dir_entry e;
	uint32_t g;
	if (!err)
		err = t0 >= it->range.start ? find_chunk_at(it, t0, &e, &g) : MDB_NOTFOUND;
	if (err == MDB_NOTFOUND)
		err = next_chunk(it, NULL, 0, &e, &g);
	if (!err)
		err = position_at(it, t0, e, g);
	it->discontinuity = false;
	if (!err)
		read_ahead(it);
	if (err == MDB_NOTFOUND) {
		it->done = true;
		err = 0;
	}
	if (err) {
		stg_iter_close(it);
		return err;
	}
	*out = it;
	return 0;
}

int stg_iter_next(struct stg_iter *it, struct stg_read_frame *f)
{
	while (!it->done && it->frame >= it->hdr.frame_count) {
		struct dir_entry e;
		uint32_t g;
		struct dir_entry cur = it->chunk;
		int err = next_chunk(it, &cur, it->gen, &e, &g);
		if (err == MDB_NOTFOUND) {
			err = advance_range(it);
			it->ra_valid = false;              /* a new range */
		} else if (!err) {
			err = load_chunk(it, it->range.r.vol, g, &e);
		}
		if (!err && !it->done)
			read_ahead(it);
		if (err == STG_ECORRUPT) {
			log_damaged(it, &e, g);
			it->discontinuity = true;
			continue;
		}
		if (err)
			return err;
	}
	if (it->done)
		return 0;
	const struct frame_entry *fe = &it->table[it->frame];
	int64_t ts = it->hdr.first_us + (fe->dt_key >> 1);
	if (ts >= it->t1) {
		it->done = true;
		return 0;
	}
	*f = (struct stg_read_frame){
		.time_us = ts, .data = it->frames + it->frame_off, .size = fe->size,
		.key = fe->dt_key & 1, .codec = (enum stg_codec)it->hdr.codec,
		.discontinuity = it->discontinuity,
	};
	it->discontinuity = false;
	it->frame_off += fe->size;
	it->frame++;
	return 1;
}

void stg_iter_close(struct stg_iter *it)
{
	if (!it)
		return;
	free(it->buf);
	free(it);
}

/* ---- key frames -------------------------------------------------------------- */

/* The key frames of the current range from t0 on, appended to out.
 * Returns 1 at a key frame at or past t1 or when out is full (the listing
 * ends), MDB_NOTFOUND at the end of the range, or an error. */
static int keys_in_range(struct stg_iter *it, int64_t t0, struct stg_key_frame *out,
                         int max, int *n)
{
	struct dir_entry e, cur;
	uint32_t g;
	int err = t0 > it->range.start ? find_chunk_at(it, t0, &e, &g) : MDB_NOTFOUND;
	if (err == MDB_NOTFOUND)
		err = next_chunk(it, NULL, 0, &e, &g);
	bool in_gop = false;
	while (!err) {
		if (e.flags & REC_KEY_START) {
			if (e.start_us >= it->t1 || *n == max)
				return 1;
			in_gop = e.start_us >= t0;
			if (in_gop)
				out[(*n)++] = (struct stg_key_frame){ e.start_us, e.end_us,
				                                      e.start_us == it->range.start };
		} else if (in_gop) {
			out[*n - 1].end_us = e.end_us;
		}
		cur = e;
		err = next_chunk(it, &cur, g, &e, &g);
	}
	return err;
}

int stg_key_frames(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
                   struct stg_key_frame *out, int max)
{
	if (max <= 0 || t1 <= t0)
		return max < 0 ? -EINVAL : 0;
	struct stg_iter it = { .stg = stg, .cam = camera_id, .t1 = t1 };
	int n = 0;
	int err = load_range(&it, t0, false);
	while (!err && it.range.start < t1) {
		err = keys_in_range(&it, t0, out, max, &n);
		if (err == MDB_NOTFOUND)
			err = load_range(&it, it.range.start, true);
	}
	return err && err != MDB_NOTFOUND && err != 1 ? err : n;
}
