/*
 * relocate.c - choosing the segment the ring reuses next, and copying
 * forward the chunks in it that must outlive it.
 *
 * The ring reuses a volume's oldest sealed segment. Segments mix cameras
 * of every class, so a segment about to be reused may hold chunks that
 * must not go yet: held ones (legal holds), and ones younger than their
 * class's promised minimum. Those are relocated: read back (checked),
 * flagged REC_RELOCATED and queued at the front of the volume's queue, so
 * the writer packs them into the open segment before anything else. Their
 * ranges are made (idx_merge_chunk) once the original segment is reclaimed;
 * until then a copy is on disk but not indexed (format.h).
 *
 * Which chunks, and the order of reclaim:
 *  - held chunks always;
 *  - chunks within their class's promise, youngest first, while all copies
 *    of the segment stay under half a segment, so that every reuse frees at
 *    least half a segment and the ring keeps moving; what does not fit is
 *    reclaimed, and its class is then in alarm (retention.c); not while
 *    the class is held to its share (the share wins, retention.c);
 *  - everything else is reclaimed: classes past their promise lose their
 *    oldest footage first.
 * A segment is reclaimed once its held copies are on disk and indexed;
 * until then it is skipped and the next oldest is reused (a range that
 * spans the skipped segment is cut around what goes: idx_cut). Copies of
 * promised chunks do not hold their segment back: if it goes first, they
 * are indexed when they land (their original is no longer indexed).
 * Planning looks one segment ahead of the victim, so that copies are
 * written a segment's worth of recording before they are needed.
 *
 * Deadlock freedom: the writer never waits on this; a volume with no
 * segment to reuse (all skipped) retries every 50 ms while held copies
 * land, and holds are capped (hold_max_pct) so that unheld segments exist.
 *
 * State (index thread only): the segments being evacuated and their
 * copies. A restart forgets it: copies already written stay unindexed
 * until their own segment is reused (fsck reports them as chunks on the
 * disks that the index lacks), and the next reclaim copies again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

#define LOOK_AHEAD 2               /* segments planned beyond the victim */
#define MAX_CANDIDATES 16          /* sealed segments looked at per reclaim */

struct evac_copy {
	struct dir_entry orig;
	bool held, landed, purged;
	uint32_t gen;                  /* where the copy landed */
	struct dir_entry e;
};

struct evac {
	uint16_t vol;
	uint32_t gen;
	struct evac_copy *c;
	uint32_t n, cap;
	uint32_t held_pending;
	uint64_t bytes;
	bool reclaimed;
};

struct evac_state {
	struct evac *v;
	int n, cap;
	_Atomic uint64_t chunks, bytes;   /* relocated, ever (statistics) */
};

int evac_init(struct stg *stg)
{
	stg->evac = calloc(1, sizeof *stg->evac);
	return stg->evac ? 0 : -ENOMEM;
}

/* Allocated by ret_open (evac_init) before the index thread starts. */
static struct evac_state *state(struct stg *stg)
{
	return stg->evac;
}

void evac_free(struct stg *stg)
{
	struct evac_state *s = stg->evac;
	if (!s)
		return;
	for (int i = 0; i < s->n; i++)
		free(s->v[i].c);
	free(s->v);
	free(s);
	stg->evac = NULL;
}

void evac_counts(struct stg *stg, uint64_t *chunks, uint64_t *bytes)
{
	struct evac_state *s = stg->evac;
	*chunks = s ? s->chunks : 0;
	*bytes = s ? s->bytes : 0;
}

static struct evac *evac_find(struct evac_state *s, uint16_t vol, uint32_t gen)
{
	for (int i = 0; i < s->n; i++)
		if (s->v[i].vol == vol && s->v[i].gen == gen)
			return &s->v[i];
	return NULL;
}

static struct evac *evac_new(struct evac_state *s, uint16_t vol, uint32_t gen)
{
	if (s->n == s->cap) {
		int cap = s->cap ? s->cap * 2 : 8;
		struct evac *n = realloc(s->v, (size_t)cap * sizeof *n);
		if (!n)
			return NULL;
		s->v = n;
		s->cap = cap;
	}
	s->v[s->n] = (struct evac){ .vol = vol, .gen = gen };
	return &s->v[s->n++];
}

static void evac_remove(struct evac_state *s, struct evac *ev)
{
	free(ev->c);
	*ev = s->v[--s->n];
}

static bool copied(const struct evac *ev, const struct dir_entry *e)
{
	for (uint32_t i = 0; i < ev->n; i++)
		if (ev->c[i].orig.camera_id == e->camera_id && ev->c[i].orig.start_us == e->start_us &&
		    (ev->c[i].orig.flags & REC_RELOCATED) == (e->flags & REC_RELOCATED))
			return true;
	return false;
}

/* Is chunk e of generation gen on volume v still indexed? */
static bool live(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t gen,
                 const struct dir_entry *e)
{
	int64_t rstart;
	struct idx_range r;
	return idx_chunk_indexed(t, stg->ix, v->id, gen, e, &rstart, &r);
}

/* Reads chunk e of (v, slot, gen), checks it and queues its copy at the
 * front of the volume's queue. */
static int copy_chunk(struct stg *stg, struct vol *v, uint32_t slot, uint32_t gen,
                      const struct dir_entry *e)
{
	struct stg_camera *cam;
	int err = stg_camera_get(stg, e->camera_id, &cam);
	if (err)
		return err;
	struct chunk_buf *b = bufpool_get(e->length);
	if (!b)
		return -ENOMEM;
	ssize_t got = pread(v->seg_fd[slot], b->data, e->length, (off_t)e->offset8 * 8);
	err = got == (ssize_t)e->length ? rec_verify(b->data, e->length, gen) :
	      got < 0 ? -errno : STG_ECORRUPT;
	if (err) {
		bufpool_put(b);
		return err;
	}
	struct rec_header h;
	memcpy(&h, b->data, sizeof h);
	h.flags |= REC_RELOCATED;
	memcpy(b->data, &h, sizeof h);
	b->payload_hash = rec_payload_hash(b->data + sizeof h, h.payload_len);
	b->len = e->length;
	b->cam = cam;
	pthread_mutex_lock(&v->lock);
	b->next = v->q_head;
	v->q_head = b;
	if (!v->q_tail)
		v->q_tail = b;
	v->q_bytes += b->len;
	v->q_pushes++;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

static int add_copy(struct stg *stg, struct evac *ev, struct vol *v, uint32_t slot,
                    const struct dir_entry *e, bool held)
{
	if (ev->n == ev->cap) {
		uint32_t cap = ev->cap ? ev->cap * 2 : 64;
		struct evac_copy *n = realloc(ev->c, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		ev->c = n;
		ev->cap = cap;
	}
	int err = copy_chunk(stg, v, slot, ev->gen, e);
	if (err) {
		LOG_WARN("event=relocation_failed camera=%u vol=%u gen=%u err=\"%s\"%s",
		         e->camera_id, v->id, ev->gen, stg_strerror(err),
		         held ? " held=1" : "");
		return err == STG_ECORRUPT || err == STG_EGONE ? 0 : err;
	}
	ev->c[ev->n++] = (struct evac_copy){ .orig = *e, .held = held };
	ev->held_pending += held;
	ev->bytes += e->length;
	stg->evac->chunks++;
	stg->evac->bytes += e->length;
	return 0;
}

static int by_start_desc(const void *a, const void *b)
{
	const struct dir_entry *x = a, *y = b;
	return x->start_us < y->start_us ? 1 : x->start_us > y->start_us ? -1 : 0;
}

/* Plans (or tops up, when holds changed) the evacuation of (v, gen). */
static int plan(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t gen,
                const struct idx_segment *s, struct evac **out)
{
	struct evac_state *st = state(stg);
	if (!st)
		return -ENOMEM;
	struct evac *ev = evac_find(st, v->id, gen);
	bool fresh = !ev;
	if (!ev && !(ev = evac_new(st, v->id, gen)))
		return -ENOMEM;
	*out = ev;
	struct segdir *d;
	int err = dc_get(stg, v->id, gen, &d);
	if (err)
		return err == STG_EGONE || err == MDB_NOTFOUND ? 0 : err;
	struct dir_entry *e, *cand = NULL;
	uint32_t n;
	err = segdir_copy(d, &e, &n);
	dc_put(stg->dc, d);
	if (err || !(cand = malloc((n ? n : 1) * sizeof *cand))) {
		free(e);
		return -ENOMEM;
	}
	int64_t now = stg_now(stg);
	uint32_t nc = 0;
	for (uint32_t i = 0; i < n && !err; i++) {
		if (copied(ev, &e[i]) || !live(t, stg, v, gen, &e[i]))
			continue;
		if (ret_held(stg->ret, e[i].camera_id, e[i].start_us, e[i].end_us, now)) {
			err = add_copy(stg, ev, v, s->slot, &e[i], true);
			continue;
		}
		int64_t min = ret_class_min(ret_class_of(stg->ret, e[i].camera_id));
		if (fresh && min && now - e[i].start_us < min)
			cand[nc++] = e[i];
	}
	/* promised chunks, youngest first, within half a segment */
	if (nc)
		qsort(cand, nc, sizeof *cand, by_start_desc);
	uint64_t budget = v->hdr.segment_size / 2;
	for (uint32_t i = 0; i < nc && !err; i++)
		if (ev->bytes + cand[i].length <= budget)
			err = add_copy(stg, ev, v, s->slot, &cand[i], false);
	free(cand);
	free(e);
	if (ev->n && v->writer)
		writer_wake(v->writer);
	return err;
}

struct sealed {
	uint32_t gen[MAX_CANDIDATES];
	struct idx_segment seg[MAX_CANDIDATES];
	int n;
};

static int take_sealed(void *user, uint32_t gen, const struct idx_segment *s)
{
	struct sealed *o = user;
	if (s->state != SEG_SEALED)
		return 0;
	o->gen[o->n] = gen;
	o->seg[o->n] = *s;
	return ++o->n == MAX_CANDIDATES;
}

/* Alarms for the promised chunks of gen that go with it. */
static void note_losses(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t gen,
                        const struct evac *ev)
{
	struct segdir *d;
	if (dc_get(stg, v->id, gen, &d))
		return;
	int64_t now = stg_now(stg);
	struct dir_entry *e;
	uint32_t n;
	if (segdir_copy(d, &e, &n))
		LOG_WARN("event=losses_not_checked vol=%u gen=%u err=\"out of memory\"", v->id, gen);
	dc_put(stg->dc, d);
	for (uint32_t i = 0; e && i < n; i++)
		if (!(ev && copied(ev, &e[i])) && live(t, stg, v, gen, &e[i]))
			ret_short(stg, t, e[i].camera_id, &e[i], now);
	free(e);
}

static int copy_cmp(const void *a, const void *b)
{
	return dir_entry_cmp(&((const struct evac_copy *)a)->e, &((const struct evac_copy *)b)->e);
}

/* Reclaims gen and indexes the copies of it that landed. */
static int reclaim(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t gen, struct evac *ev)
{
	note_losses(t, stg, v, gen, ev);
	int err = idx_reclaim_gen(t, stg, v->id, gen);
	if (err || !ev)
		return err;
	if (ev->n)
		qsort(ev->c, ev->n, sizeof *ev->c, copy_cmp);
	for (uint32_t i = 0; i < ev->n && !err; i++) {
		struct evac_copy *c = &ev->c[i];
		bool indexed;
		if (!c->landed || c->purged)
			continue;
		err = idx_merge_chunk(t, stg->ix, v->id, c->gen, stg->cfg.gap_us, &c->e, &indexed);
		if (!err && indexed)
			use_chunk_in(stg, v->id, c->gen, &c->e);
	}
	return err;
}

/* Does gen hold held copies that wait for their original's reclaim? It
 * must not go first: the copies are not indexed yet, so they would not be
 * copied again. Promised copies there are given up (not indexed later). */
static bool holds_copies(struct evac_state *s, uint16_t vol, uint32_t gen)
{
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < s->n; i++) {
			struct evac *ev = &s->v[i];
			if (ev->vol != vol || ev->reclaimed)
				continue;
			for (uint32_t j = 0; j < ev->n; j++) {
				struct evac_copy *c = &ev->c[j];
				if (!c->landed || c->gen != gen)
					continue;
				if (pass == 0 && c->held)
					return true;
				if (pass == 1)
					c->purged = true;   /* goes with gen */
			}
		}
	return false;
}

int evac_pick(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t *gen, struct idx_segment *s)
{
	struct sealed c = { .n = 0 };
	int err = idx_foreach_segment(t, stg->ix, v->id, take_sealed, &c);
	if (err < 0 || (err > 1))
		return err;
	if (c.n == 0)
		return MDB_NOTFOUND;
	if (!ret_relocation_needed(stg->ret)) {
		struct evac_state *st = state(stg);
		struct evac *ev = st ? evac_find(st, v->id, c.gen[0]) : NULL;
		*gen = c.gen[0];
		*s = c.seg[0];
		return reclaim(t, stg, v, c.gen[0], ev);
	}
	int pick = -1, ahead = 0;
	for (int i = 0; i < c.n && ahead <= LOOK_AHEAD; i++) {
		struct evac *ev;
		if (pick < 0 && holds_copies(stg->evac, v->id, c.gen[i]))
			continue;
		if ((err = plan(t, stg, v, c.gen[i], &c.seg[i], &ev)))
			return err;
		if (pick >= 0)
			ahead++;
		else if (ev->held_pending == 0)
			pick = i;
	}
	if (pick < 0)
		return MDB_NOTFOUND;      /* held copies still on their way */
	*gen = c.gen[pick];
	*s = c.seg[pick];
	return reclaim(t, stg, v, c.gen[pick], evac_find(stg->evac, v->id, c.gen[pick]));
}

static bool all_landed(const struct evac *ev)
{
	for (uint32_t i = 0; i < ev->n; i++)
		if (!ev->c[i].landed)
			return false;
	return true;
}

void evac_committed(struct stg *stg, struct vol *v, uint32_t gen)
{
	struct evac *ev = stg->evac ? evac_find(stg->evac, v->id, gen) : NULL;
	if (!ev)
		return;
	ev->reclaimed = true;
	if (all_landed(ev))
		evac_remove(stg->evac, ev);
}

bool evac_landed(struct stg *stg, struct vol *v, uint32_t gen, const struct dir_entry *e)
{
	struct evac_state *s = stg->evac;
	for (int i = 0; s && i < s->n; i++) {
		struct evac *ev = &s->v[i];
		if (ev->vol != v->id)
			continue;
		for (uint32_t j = 0; j < ev->n; j++) {
			struct evac_copy *c = &ev->c[j];
			if (c->orig.camera_id != e->camera_id || c->orig.start_us != e->start_us ||
			    (c->landed && c->gen != gen))
				continue;
			if (!c->landed) {
				c->landed = true;
				c->gen = gen;
				c->e = *e;
				if (c->held)
					ev->held_pending--;
			}
			bool keep = !c->purged;
			if (ev->reclaimed && all_landed(ev))
				evac_remove(s, ev);
			return keep;
		}
	}
	return true;
}

void evac_purged(struct stg *stg, uint32_t cam, int64_t t0, int64_t t1)
{
	struct evac_state *s = stg->evac;
	for (int i = 0; s && i < s->n; i++) {
		struct evac *ev = &s->v[i];
		struct vol *v = vol_by_index_id(stg, ev->vol);
		for (uint32_t j = 0; j < ev->n; j++) {
			struct evac_copy *c = &ev->c[j];
			if (c->orig.camera_id != cam || c->orig.start_us >= t1 || c->orig.end_us <= t0 ||
			    c->purged)
				continue;
			c->purged = true;
			if (c->landed && v) {   /* written, not indexed: zero it now */
				struct loc_entry le = { c->e, c->gen };
				int err = ret_zero_chunks(stg, v, &le, 1);
				if (err)
					LOG_ERR("event=purge_copy_failed camera=%u err=\"%s\"", cam,
					        stg_strerror(err));
			}
		}
	}
}
