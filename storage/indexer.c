/*
 * indexer.c - the index thread: the only writer of the LMDB index.
 *
 * Writer threads send it messages (chunks synced, segment sealed, segment
 * wanted); it applies everything that has queued up in one write
 * transaction and commits, so under load a commit covers many chunks and
 * the index costs one fdatasync per batch, not per chunk.
 *
 * Preparing a segment (ORDERING, see also writer.c):
 *  1. If the volume has no free slot, reclaim its oldest generation: delete
 *     or trim every range that starts in it and delete its segment record.
 *  2. Record the new generation OPEN in the chosen slot and bump the
 *     volume's next_gen.
 *  3. Commit. Only now is the slot handed to the writer; until then nothing
 *     overwrites the old data, so no committed index entry ever points at
 *     overwritten bytes. A reader that looked up the old generation before
 *     the commit reads a different generation number in the record headers
 *     and gets STG_EGONE, never wrong bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

void indexer_send(struct stg *stg, struct imsg *m)
{
	m->next = NULL;
	pthread_mutex_lock(&stg->ix_lock);
	if (stg->ix_tail)
		stg->ix_tail->next = m;
	else
		stg->ix_head = m;
	stg->ix_tail = m;
	pthread_cond_signal(&stg->ix_cond);
	pthread_mutex_unlock(&stg->ix_lock);
}

static int read_volume(MDB_txn *t, struct stg *stg, struct vol *v, struct idx_volume *rec)
{
	uint8_t kb[2] = { v->id >> 8, v->id & 0xff };
	MDB_val k = { 2, kb }, d;
	int err = mdb_get(t, idx_db_volumes(stg->ix), &k, &d);
	if (!err)
		memcpy(rec, d.mv_data, sizeof *rec);
	return err;
}

static int write_volume(MDB_txn *t, struct stg *stg, struct vol *v, struct idx_volume *rec)
{
	uint8_t kb[2] = { v->id >> 8, v->id & 0xff };
	MDB_val k = { 2, kb }, d = { sizeof *rec, rec };
	return mdb_put(t, idx_db_volumes(stg->ix), &k, &d, 0);
}

/* Post-commit effects of a prepared segment. */
struct prepared {
	struct imsg *msg;             /* the request it answers */
	struct vol *v;
	uint32_t gen, slot;
	uint32_t reclaimed_gen;       /* 0 if a free slot was used */
	uint32_t reclaimed_slot;
	int64_t started_us;           /* wall clock, for reclaim_trace */
};

/* Was this free slot already given out earlier in the same batch? */
static bool slot_taken(const struct prepared *done, int ndone, struct vol *v, uint32_t slot)
{
	for (int i = 0; i < ndone; i++)
		if (done[i].v == v && done[i].slot == slot)
			return true;
	return false;
}

static int prepare_segment(MDB_txn *t, struct stg *stg, struct vol *v,
                           struct prepared *p, const struct prepared *done, int ndone)
{
	uint32_t slot = UINT32_MAX;
	memset(p, 0, sizeof *p);
	p->v = v;
	p->started_us = stg_realtime_us();
	for (uint32_t i = 0; i < v->hdr.segment_count && slot == UINT32_MAX; i++)
		if (v->slot_gen[i] == 0 && !slot_taken(done, ndone, v, i))
			slot = i;
	if (slot == UINT32_MAX) {
		uint32_t g;
		struct idx_segment s;
		/* the oldest sealed generation, or the oldest whose held chunks
		 * are copied (relocate.c); reclaimed in this transaction */
		int err = ret_reclaim_one(t, stg, v, &g, &s);
		if (err == MDB_NOTFOUND)
			return STG_ENOVOLUME;   /* nothing to reuse yet: retried */
		if (err)
			return err;
		slot = s.slot;
		p->reclaimed_gen = g;
		p->reclaimed_slot = slot;
	}
	struct idx_volume rec;
	int err = read_volume(t, stg, v, &rec);
	if (err)
		return err;
	p->gen = rec.next_gen++;
	p->slot = slot;
	err = write_volume(t, stg, v, &rec);
	if (err)
		return err;
	struct idx_segment s = { .slot = slot, .state = SEG_OPEN };
	return idx_put_segment(t, stg->ix, v->id, p->gen, &s);
}

/* Writes the new generation's header over the slot's first block, so that
 * the disk alone shows the old generation is gone (fsck and the rebuild
 * trust only the disk). Done after the commit, before the writer gets the
 * slot; if it fails, the volume is failing. The write goes through the page
 * cache without a sync: it only has to beat the rebuild, and the writer's
 * own first O_DIRECT write of the block (which makes the kernel flush this
 * one first) carries the same header. If power fails before it reaches the
 * disk, recovery finds the old header, forgets the new generation and the
 * old data stays unreferenced: consistent either way. */
static int stamp_slot(struct stg *stg, struct vol *v, uint32_t gen, uint32_t slot)
{
	void *buf;
	if (posix_memalign(&buf, STG_BLOCK, STG_BLOCK))
		return -ENOMEM;
	seg_header_block(v, slot, gen, stg_now(stg), buf);
	int fd = vol_open_segment_buffered(v, slot);
	int err = fd < 0 ? fd : 0;
	if (!err && pwrite(fd, buf, STG_BLOCK, 0) != STG_BLOCK)
		err = errno ? -errno : -EIO;
	if (!err && stg->cfg.write_trace)    /* the disk sees this write too */
		stg->cfg.write_trace(stg->cfg.write_trace_user, v->index, slot, 0, STG_BLOCK);
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

static void apply_prepared(struct stg *stg, struct prepared *p)
{
	struct vol *v = p->v;
	int err = stamp_slot(stg, v, p->gen, p->slot);
	if (err)
		vol_fail(stg, v, "cannot write segment header", err);
	if (p->reclaimed_gen) {
		dc_drop(stg->dc, v->id, p->reclaimed_gen);
		v->reclaims++;
		ret_reclaim_committed(stg, v, p->reclaimed_gen);
		if (stg->cfg.reclaim_trace)
			stg->cfg.reclaim_trace(stg->cfg.reclaim_trace_user, v->index,
			                       (uint64_t)(stg_realtime_us() - p->started_us));
	}
	pthread_mutex_lock(&v->lock);
	if (p->reclaimed_gen)
		v->slot_gen[p->reclaimed_slot] = 0;
	else
		v->free_slots--;
	v->slot_gen[p->slot] = p->gen;
	if (v->nready < STG_RESERVE) {
		v->ready_gen[v->nready] = p->gen;
		v->ready_slot[v->nready] = p->slot;
		v->nready++;
	}
	if (v->slots_requested)
		v->slots_requested--;
	pthread_mutex_unlock(&v->lock);
	if (v->writer)
		writer_wake(v->writer);
}

static int apply_chunks(MDB_txn *t, struct stg *stg, struct imsg *m)
{
	for (uint32_t i = 0; i < m->n; i++) {
		const struct dir_entry *e = &m->e[i];
		int err = 0;
		if (!(e->flags & REC_RELOCATED)) {
			ret_note_chunk(stg, e);
		} else if (!ret_copy_landed(stg, m->vol, m->gen, e)) {
			/* a copy of footage purged meanwhile: it goes too */
			struct loc_entry le = { *e, m->gen };
			err = ret_zero_chunks(stg, m->vol, &le, 1);
			if (err)
				return err;
			continue;
		}
		bool indexed;
		err = idx_merge_chunk(t, stg->ix, m->vol->id, m->gen, stg->cfg.gap_us, e, &indexed);
		if (!err && indexed)
			use_chunk_in(stg, m->vol->id, m->gen, e);
		if (!err)
			err = idx_segment_add_chunk(t, stg->ix, m->vol->id, m->gen, e);
		if (err)
			return err;
	}
	return 0;
}

static int apply_seal(MDB_txn *t, struct stg *stg, struct imsg *m)
{
	struct idx_segment s;
	int err = idx_get_segment(t, stg->ix, m->vol->id, m->gen, &s);
	if (err)
		return err;
	s.state = SEG_SEALED;
	s.dir_off = m->dir_off;
	s.dir_len = m->dir_len;
	return idx_put_segment(t, stg->ix, m->vol->id, m->gen, &s);
}

/* Ends write transaction t: commits it unless err, and applies or drops
 * the footage counts it changed (usage.c) accordingly. */
static int commit_or_abort(struct stg *stg, MDB_txn *t, int err)
{
	if (err)
		mdb_txn_abort(t);
	else
		err = idx_write_commit(stg->ix, t);
	if (err)
		use_abort(stg);
	else
		use_commit(stg);
	return err;
}

/* Applies a batch of messages in one transaction. Returns MDB_MAP_FULL if
 * the caller must grow the map and call again. */
static int apply_batch(struct stg *stg, struct imsg *head, struct prepared *prep,
                       int *nprep)
{
	MDB_txn *t;
	int err = idx_write_begin(stg->ix, &t);
	if (err)
		return err;
	*nprep = 0;
	for (struct imsg *m = head; m && !err; m = m->next) {
		if (m->type == IMSG_CHUNKS)
			err = apply_chunks(t, stg, m);
		else if (m->type == IMSG_SEAL)
			err = apply_seal(t, stg, m);
		else if (m->type == IMSG_NEED_SEGMENT && m->vol->state == STG_VOL_ACTIVE) {
			m->retry = false;
			for (uint32_t k = 0; k < m->n && !err; k++) {
				err = prepare_segment(t, stg, m->vol, &prep[*nprep], prep, *nprep);
				if (err == STG_ENOVOLUME) {
					/* every older segment is still being sealed: the
					 * rest waits for their SEAL messages (indexer_main) */
					m->retry = true;
					err = 0;
					break;
				}
				if (!err)
					prep[(*nprep)++].msg = m;
			}
		}
	}
	return commit_or_abort(stg, t, err);
}

/* Applies post-commit effects and frees the messages, except those to
 * retry, which are appended to *retry. */
static void finish_batch(struct stg *stg, struct imsg *head, struct prepared *prep,
                         int nprep, struct imsg **retry)
{
	struct imsg **retry_tail = retry;
	while (*retry_tail)
		retry_tail = &(*retry_tail)->next;
	for (int i = 0; i < nprep; i++)
		apply_prepared(stg, &prep[i]);
	for (struct imsg *m = head, *next; m; m = next) {
		next = m->next;
		if (m->retry) {
			uint32_t got = 0;
			for (int i = 0; i < nprep; i++)
				got += prep[i].msg == m;
			m->n -= got;
			m->retry = false;
			m->next = NULL;
			*retry_tail = m;
			retry_tail = &m->next;
			continue;
		}
		if (m->type == IMSG_SEAL)
			dc_seal(stg->dc, m->dir), dc_put(stg->dc, m->dir);
		if (m->type == IMSG_BARRIER)
			sem_post(m->done);
		free(m->e);
		free(m);
	}
}

static void process(struct stg *stg, struct imsg *head, struct imsg **retry)
{
	int count = 0, slots = 0;
	for (struct imsg *m = head; m; m = m->next) {
		count++;
		if (m->type == IMSG_NEED_SEGMENT)
			slots += (int)m->n;
	}
	struct prepared *prep = calloc((size_t)slots + 1, sizeof *prep);
	if (!prep)
		abort();
	int nprep = 0, err;
	int64_t t0 = stg_realtime_us();
	while ((err = apply_batch(stg, head, prep, &nprep)) == MDB_MAP_FULL)
		if (idx_grow(stg->ix))
			break;
	int64_t t1 = stg_realtime_us();
	if (err) {
		LOG_ERR("event=index_commit_failed err=\"%s\" messages=%d", stg_strerror(err), count);
		nprep = 0;
		/* requests for segments are asked for again by the writer */
		for (struct imsg *m = head; m; m = m->next)
			if (m->type == IMSG_NEED_SEGMENT) {
				pthread_mutex_lock(&m->vol->lock);
				m->vol->slots_requested -= m->n < m->vol->slots_requested ?
				                           m->n : m->vol->slots_requested;
				pthread_mutex_unlock(&m->vol->lock);
				m->retry = false;
			}
	}
	finish_batch(stg, head, prep, nprep, retry);
	if (t1 - t0 > 1000000)
		LOG_WARN("event=slow_index_commit messages=%d prepared=%d ms=%.0f", count, nprep, (t1 - t0) / 1e3);
	free(prep);
}

/* Runs one IMSG_CALL in a transaction of its own, so that its failure
 * (a purge refused under a hold) aborts nothing else. */
static void run_call(struct stg *stg, struct imsg *m)
{
	int err;
	for (;;) {
		MDB_txn *t;
		err = idx_write_begin(stg->ix, &t);
		if (err)
			break;
		err = commit_or_abort(stg, t, m->call(t, stg, m->arg));
		if (err != MDB_MAP_FULL || idx_grow(stg->ix))
			break;
	}
	if (!err && m->after)
		m->after(stg, m->arg);
	if (m->result)
		*m->result = err;
	if (m->done)
		sem_post(m->done);
	free(m);
}

int indexer_call(struct stg *stg, idx_call_fn fn, idx_after_fn after, void *arg)
{
	struct imsg *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	sem_t done;
	sem_init(&done, 0, 0);
	int result = 0;
	m->type = IMSG_CALL;
	m->call = fn;
	m->after = after;
	m->arg = arg;
	m->result = &result;
	m->done = &done;
	indexer_send(stg, m);
	sem_wait(&done);
	sem_destroy(&done);
	return result;
}

/* One step of the periodic retention work, in a transaction of its own. */
static void sweep_step(struct stg *stg, idx_call_fn fn, idx_after_fn after, const char *what)
{
	struct imsg *m = calloc(1, sizeof *m);
	void *arg = calloc(1, 512);
	if (!m || !arg) {
		free(m);
		free(arg);
		LOG_ERR("event=retention_sweep_skipped step=%s err=\"%s\"", what,
		        stg_strerror(-ENOMEM));
		return;
	}
	int result = 0;
	m->call = fn;
	m->after = after;
	m->arg = arg;
	m->result = &result;
	run_call(stg, m);
	if (result)
		LOG_ERR("event=retention_sweep_failed step=%s err=\"%s\"", what, stg_strerror(result));
	free(arg);
}

/* The periodic retention work, every retention_interval_ms. */
static void maybe_sweep(struct stg *stg, int64_t *next_us)
{
	int64_t now = stg_realtime_us();
	if (now < *next_us)
		return;
	*next_us = now + (int64_t)stg->cfg.retention_interval_ms * 1000;
	sweep_step(stg, ret_sweep, ret_sweep_after, "maximum");
	sweep_step(stg, ret_shares, ret_shares_after, "shares");
}

/* A slice of the footage census (usage.c) when one is due; *at is when
 * the next is (INT64_MAX: none pending, look again next time round). */
static void maybe_census(struct stg *stg, int64_t *at)
{
	int64_t now = stg_realtime_us();
	if (*at != INT64_MAX && now < *at)
		return;
	int ms = use_census_step(stg);
	*at = ms < 0 ? INT64_MAX : now + (int64_t)ms * 1000;
}

/* Moves the messages of `type` out of the list *head, keeping both orders. */
static struct imsg *take_type(struct imsg **head, enum imsg_type type)
{
	struct imsg *needs = NULL, **ntail = &needs, **pp = head;
	while (*pp) {
		struct imsg *m = *pp;
		if (m->type == type) {
			*pp = m->next;
			m->next = NULL;
			*ntail = m;
			ntail = &m->next;
		} else {
			pp = &m->next;
		}
	}
	return needs;
}

static void *indexer_main(void *arg)
{
	struct stg *stg = arg;
	struct imsg *retry = NULL;     /* segment requests waiting for a seal */
	int64_t next_sweep = stg_realtime_us() + (int64_t)stg->cfg.retention_interval_ms * 1000;
	int64_t census_at = 0;         /* due at once: use_start */
	use_start(stg);
	pthread_mutex_lock(&stg->ix_lock);
	for (;;) {
		while (!stg->ix_head && !stg->ix_stop) {
			/* wake for retries (50 ms), the retention sweep and the census */
			int64_t now = stg_realtime_us();
			int64_t wait_ms = retry ? 50 : (next_sweep - now) / 1000 + 1;
			if (census_at != INT64_MAX && (census_at - now) / 1000 < wait_ms)
				wait_ms = (census_at - now) / 1000;
			if (wait_ms <= 0)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait_ms / 1000;
			ts.tv_nsec += (wait_ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_cond_timedwait(&stg->ix_cond, &stg->ix_lock, &ts))
				break;
		}
		if (!stg->ix_head && !retry && stg->ix_stop)
			break;
		struct imsg *head = stg->ix_head;
		stg->ix_head = stg->ix_tail = NULL;
		pthread_mutex_unlock(&stg->ix_lock);
		/* Segment requests first, in a commit of their own: under a heavy
		 * write load a commit takes 100-400 ms, and a writer waiting for a
		 * segment must not also wait for the chunk merges queued before
		 * its request. Everything else keeps its order. */
		struct imsg *needs = take_type(&head, IMSG_NEED_SEGMENT);
		if (needs)
			process(stg, needs, &retry);
		/* calls after the chunks queued before them (a purge sees what
		 * was recorded before it was asked) */
		struct imsg *calls = take_type(&head, IMSG_CALL);
		if (retry) {            /* retried requests go after the new seals */
			struct imsg **tail = &head;
			while (*tail)
				tail = &(*tail)->next;
			*tail = retry;
			retry = NULL;
		}
		if (head)
			process(stg, head, &retry);
		for (struct imsg *m = calls, *n; m; m = n) {
			n = m->next;
			run_call(stg, m);
		}
		maybe_sweep(stg, &next_sweep);
		maybe_census(stg, &census_at);
		pthread_mutex_lock(&stg->ix_lock);
		if (stg->ix_stop && retry && !stg->ix_head) {
			for (struct imsg *m = retry, *n; m; m = n) {
				n = m->next;
				free(m);
			}
			retry = NULL;
		}
	}
	pthread_mutex_unlock(&stg->ix_lock);
	return NULL;
}

int indexer_start(struct stg *stg)
{
	stg->ix_stop = false;
	int err = -pthread_create(&stg->ix_thread, NULL, indexer_main, stg);
	stg->ix_running = err == 0;
	return err;
}

void indexer_stop(struct stg *stg)
{
	if (!stg->ix_running)
		return;
	pthread_mutex_lock(&stg->ix_lock);
	stg->ix_stop = true;
	pthread_cond_signal(&stg->ix_cond);
	pthread_mutex_unlock(&stg->ix_lock);
	pthread_join(stg->ix_thread, NULL);
	stg->ix_running = false;
}
