/*
 * writer.c - the io_uring writer: packs closed chunks of many cameras into
 * large aligned O_DIRECT writes, one log head per volume.
 *
 * DESIGN
 * Each writer thread owns a set of volumes and one io_uring. Per volume it
 * keeps `blocks_per_volume` aligned buffers of `write_block_bytes` (default
 * 4 x 4 MiB): chunks are copied into the current buffer back to back; a full
 * buffer is submitted as one write at the segment's log head, so every write
 * continues exactly where the previous one ended (a spinning disk sees one
 * sequential stream per volume). At most blocks_per_volume writes are in
 * flight per volume, and all volumes of a thread are in flight at once.
 *
 * One open segment per volume: the design knob the brief asks about. One
 * head keeps the disk purely sequential (an HDD gives ~200 MB/s that way and
 * ~0.5 MB/s at 4 KiB random); more heads would only help if one stream could
 * not fill the disk, which a 4 MiB write at queue depth 4 always can.
 *
 * Durability and ordering (the crash-safety contract):
 *  1. A segment generation is recorded OPEN in the index (committed) before
 *     its first byte is written (indexer.c).
 *  2. Writes complete in any order, but are retired in submission order.
 *  3. Every flush tick (flush_interval/4) a buffer holding data older than
 *     half the flush interval is padded to 4 KiB and written, and retired
 *     writes are fdatasync'ed; only after that sync are their chunks made
 *     visible in the segment directory and sent to the index thread. So the
 *     index never names a chunk that a power cut could lose, and a chunk
 *     reaches the disk within the flush interval of being handed over.
 *  4. A sealed segment's directory record is its last record; the SEAL
 *     message follows all of its chunks.
 *
 * Back-pressure: producers never wait. If a volume's queue is over its byte
 * limit, the producer drops the chunk and counts its frames (engine.c).
 *
 * Newer io_uring features: buffers are registered (write_fixed) when the
 * kernel allows it, detected at start; otherwise plain writes are used.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <liburing.h>
#include "internal.h"

enum { OP_WRITE = 1, OP_FSYNC = 2, OP_WAKE = 3 };
enum { B_FREE = 0, B_FILLING, B_INFLIGHT };
enum { EV_CHUNK = 1, EV_SEAL };

struct wevent {
	int type;
	uint32_t gen;
	struct segdir *dir;
	struct stg_camera *cam;
	struct dir_entry e;
	int fd;                        /* segment fd the data went to */
	bool last_of_gen;              /* close fd after delivery */
	uint64_t dir_off;
	uint32_t dir_len;
};

struct wblock {
	uint8_t *buf;
	uint32_t fill;
	uint64_t file_off;
	uint32_t slot;
	int fd;
	int state;
	bool inject_fail;
	int64_t first_byte_us;
	int64_t submit_us;
	uint64_t seq;
	struct wevent *ev;
	uint32_t nev, cap;
};

struct evvec {
	struct wevent *v;
	uint32_t n, cap;
};

/* A submitted write, by sequence number: its buffer is reused as soon as
 * the write completes, but its chunks are retired (made durable and
 * visible) strictly in submission order, from here. */
struct wseq {
	bool done;
	int res;
	uint32_t len;
	struct wevent *ev;
	uint32_t nev, cap;
};
#define SEQ_WINDOW(nblocks) (4 * (nblocks))

struct wvol {
	struct vol *v;
	int idx;                       /* position in the writer's array */
	struct wblock *blocks;
	int cur;                       /* filling block or -1 */
	/* the open generation */
	bool open;
	uint32_t gen, slot;
	int fd;
	uint64_t pos;                  /* next byte offset in the segment */
	struct segdir *dir;
	struct dir_entry *gen_e;
	uint32_t gen_n, gen_cap;
	/* chunks taken from the queue, in order */
	struct chunk_buf *p_head, *p_tail;
	uint32_t p_copied;             /* bytes of p_head already copied */
	uint64_t rec_off;              /* offset of p_head's first byte */
	uint64_t next_seq, retire_seq;
	struct wseq *seqs;             /* SEQ_WINDOW slots, by seq % window */
	uint32_t window;
	struct evvec unsynced;         /* retired, waiting for fdatasync */
	uint32_t syncing;              /* events covered by the fsyncs in flight */
	int fsyncs_inflight;
	int inflight;                  /* writes in flight */
	bool sync_soon;                /* sync at the next chance, not the next tick */
	/* counters, logged when the writer stops */
	uint64_t waits_block, waits_segment, writes, fsyncs;
	int64_t seg_wait_since;        /* no prepared segment since, 0 = not waiting */
	uint64_t seg_wait_us;          /* total time spent so */
	uint64_t lat_sum_us, inflight_sum, idle_us;
	int64_t idle_since;
	bool idle_had_data;
	uint64_t idle_data_us;
};

struct writer {
	struct stg *stg;
	struct io_uring ring;
	pthread_t thread;
	int efd;
	uint64_t efd_buf;
	struct wvol *wv;
	int n;
	bool fixed;                    /* registered buffers in use */
	_Atomic bool stop;
	pthread_mutex_t drain_lock;
	pthread_cond_t drain_cond;
	uint64_t drain_req, drain_done;
	bool wake_armed;
	/* 1 while the thread waits (or is about to) for completions: producers
	 * that queue a chunk then write the eventfd, the first one only. An
	 * eventfd write per queued chunk cost 4% of the recorder's CPU at
	 * 2,000 cameras. */
	_Atomic int sleeping;
};

static uint64_t ud(int op, int vi, int bi)
{
	return (uint64_t)op << 56 | (uint64_t)(uint16_t)vi << 16 | (uint16_t)bi;
}

static uint32_t block_bytes(const struct writer *w) { return w->stg->cfg.write_block_bytes; }

static void ev_push(struct wevent **v, uint32_t *n, uint32_t *cap, const struct wevent *e)
{
	if (*n == *cap) {
		uint32_t c = *cap ? *cap * 2 : 64;
		struct wevent *nv = realloc(*v, c * sizeof *nv);
		if (!nv)
			abort();
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = *e;
}

void writer_nudge(struct writer *w, uint64_t queued_bytes)
{
	/* Less than a write block waiting: the writer's own tick writes it out
	 * in time (partial blocks go at a quarter of the flush interval); waking
	 * it for every chunk cost 2-4% of the recorder's CPU at 2,000 cameras. */
	if (queued_bytes >= block_bytes(w) && atomic_exchange(&w->sleeping, 0))
		writer_wake(w);
}

/* Chunks ever queued on this writer's volumes. */
static uint64_t pushes(const struct writer *w)
{
	uint64_t n = 0;
	for (int i = 0; i < w->n; i++)
		n += w->wv[i].v->q_pushes;
	return n;
}

void writer_wake(struct writer *w)
{
	uint64_t one = 1;
	if (write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN)
		LOG_WARN("event=writer_wake_failed err=\"%s\"", strerror(errno));
}

static struct io_uring_sqe *get_sqe(struct writer *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

static void arm_wake(struct writer *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_read(sqe, w->efd, &w->efd_buf, sizeof w->efd_buf, 0);
	io_uring_sqe_set_data64(sqe, ud(OP_WAKE, 0, 0));
	w->wake_armed = true;
}

/* ---- dropping work of a failed volume ---------------------------------- */

static void drop_chunk(struct chunk_buf *c)
{
	if (c->cam) {
		struct rec_header h;
		memcpy(&h, c->data, sizeof h);
		if (!(h.flags & REC_RELOCATED))
			c->cam->dropped_frames += h.frame_count;
	}
	bufpool_put(c);
}

static void drop_pending(struct wvol *wv)
{
	struct vol *v = wv->v;
	pthread_mutex_lock(&v->lock);
	struct chunk_buf *q = v->q_head;
	v->q_head = v->q_tail = NULL;
	v->q_bytes = 0;
	pthread_mutex_unlock(&v->lock);
	for (struct chunk_buf *c = wv->p_head, *n; c; c = n) {
		n = c->next;
		drop_chunk(c);
	}
	for (struct chunk_buf *c = q, *n; c; c = n) {
		n = c->next;
		drop_chunk(c);
	}
	wv->p_head = wv->p_tail = NULL;
	wv->p_copied = 0;
}

static void drop_events(struct wevent *ev, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (ev[i].type == EV_CHUNK && ev[i].cam && !(ev[i].e.flags & REC_RELOCATED))
			ev[i].cam->dropped_frames += ev[i].e.frames;
}

/* ---- blocks --------------------------------------------------------------- */

static int free_block(struct wvol *wv, int nblocks)
{
	for (int i = 0; i < nblocks; i++)
		if (wv->blocks[i].state == B_FREE)
			return i;
	return -1;
}

static void submit_block(struct writer *w, struct wvol *wv)
{
	struct wblock *b = &wv->blocks[wv->cur];
	uint32_t len = (uint32_t)align_up(b->fill, STG_BLOCK);
	memset(b->buf + b->fill, 0, len - b->fill);
	wv->pos = b->file_off + len;
	b->state = B_INFLIGHT;
	b->seq = wv->next_seq++;
	struct wseq *q = &wv->seqs[b->seq % wv->window];
	struct wevent *spare = q->ev;          /* swap event arrays, no copy */
	uint32_t spare_cap = q->cap;
	q->ev = b->ev;
	q->nev = b->nev;
	q->cap = b->cap;
	b->ev = spare;
	b->cap = spare_cap;
	b->nev = 0;
	q->done = false;
	q->len = len;
	struct vol *v = wv->v;
	if (v->inject_armed) {
		uint64_t written = v->bytes_written;
		b->inject_fail = written + len > v->inject_after;
	}
	struct io_uring_sqe *sqe = get_sqe(w);
	int bi = wv->cur;
	if (w->fixed) {
		int buf_index = wv->idx * (int)w->stg->cfg.blocks_per_volume + bi;
		io_uring_prep_write_fixed(sqe, b->fd, b->buf, len, b->file_off, buf_index);
	} else {
		io_uring_prep_write(sqe, b->fd, b->buf, len, b->file_off);
	}
	io_uring_sqe_set_data64(sqe, ud(OP_WRITE, wv->idx, bi));
	if (wv->inflight == 0 && wv->idle_since) {
		int64_t d = stg_realtime_us() - wv->idle_since;
		wv->idle_us += d;
		if (wv->idle_had_data)
			wv->idle_data_us += d;
	}
	wv->inflight_sum += wv->inflight;
	wv->inflight++;
	wv->writes++;
	b->submit_us = stg_realtime_us();
	if (w->stg->cfg.write_trace)
		w->stg->cfg.write_trace(w->stg->cfg.write_trace_user, v->index,
		                        b->slot, b->file_off, len);
	wv->cur = -1;
}

/* Makes sure there is a filling block; returns false if all are busy. */
static bool ensure_block(struct writer *w, struct wvol *wv)
{
	if (wv->cur >= 0)
		return true;
	if (wv->next_seq - wv->retire_seq >= wv->window)
		return false;           /* an old write is slow: do not run ahead */
	int bi = free_block(wv, (int)w->stg->cfg.blocks_per_volume);
	if (bi < 0)
		return false;
	struct wblock *b = &wv->blocks[bi];
	b->state = B_FILLING;
	b->fill = 0;
	b->file_off = wv->pos;
	b->fd = wv->fd;
	b->slot = wv->slot;
	b->nev = 0;
	b->inject_fail = false;
	b->first_byte_us = stg_now(w->stg);
	wv->cur = bi;
	return true;
}

/* ---- generations ---------------------------------------------------------- */

/* Asks the index thread for as many prepared segments as the reserve
 * lacks, in one message: the index thread prepares them in one commit,
 * which under a heavy write load (slow commits) keeps up where one segment
 * per commit would not. */
static void request_segment(struct writer *w, struct vol *v)
{
	pthread_mutex_lock(&v->lock);
	uint32_t have = (uint32_t)v->nready + v->slots_requested;
	uint32_t want = have < STG_RESERVE ? STG_RESERVE - have : 0;
	if (v->state != STG_VOL_ACTIVE)
		want = 0;
	v->slots_requested += want;
	pthread_mutex_unlock(&v->lock);
	if (!want)
		return;
	struct imsg *m = calloc(1, sizeof *m);
	if (!m)
		abort();
	m->type = IMSG_NEED_SEGMENT;
	m->vol = v;
	m->n = want;
	indexer_send(w->stg, m);
}

/* Starts the prepared generation: header block at offset 0. */
static bool open_gen(struct writer *w, struct wvol *wv)
{
	struct vol *v = wv->v;
	if (free_block(wv, (int)w->stg->cfg.blocks_per_volume) < 0 ||
	    wv->next_seq - wv->retire_seq >= wv->window)
		return false;
	pthread_mutex_lock(&v->lock);
	uint32_t gen = 0, slot = 0;
	if (v->nready) {
		gen = v->ready_gen[0];
		slot = v->ready_slot[0];
		v->nready--;
		memmove(v->ready_gen, v->ready_gen + 1, v->nready * sizeof *v->ready_gen);
		memmove(v->ready_slot, v->ready_slot + 1, v->nready * sizeof *v->ready_slot);
	}
	pthread_mutex_unlock(&v->lock);
	request_segment(w, v);        /* keep the reserve full */
	if (gen == 0) {
		if (!wv->seg_wait_since)
			wv->seg_wait_since = stg_realtime_us();
		return false;
	}
	if (wv->seg_wait_since) {
		wv->seg_wait_us += stg_realtime_us() - wv->seg_wait_since;
		wv->seg_wait_since = 0;
	}
	int fd = vol_open_segment_direct(v, slot);
	if (fd < 0) {
		vol_fail(w->stg, v, "cannot open segment for writing", fd);
		return false;
	}
	wv->open = true;
	wv->gen = gen;
	wv->slot = slot;
	wv->fd = fd;
	wv->pos = 0;
	wv->gen_n = 0;
	wv->dir = dc_open_gen(w->stg->dc, v->id, gen);
	if (!wv->dir)
		abort();
	ensure_block(w, wv);
	struct wblock *b = &wv->blocks[wv->cur];
	seg_header_block(v, slot, gen, stg_now(w->stg), b->buf);
	b->fill = STG_BLOCK;
	wv->pos = STG_BLOCK;
	return true;
}

/* Queues the directory record as the generation's last record. */
static void seal_gen(struct writer *w, struct wvol *wv)
{
	void *rec;
	uint32_t len;
	struct dir_entry *copy = malloc((wv->gen_n ? wv->gen_n : 1) * sizeof *copy);
	if (!copy)
		abort();
	memcpy(copy, wv->gen_e, wv->gen_n * sizeof *copy);
	int err = dir_record_build(copy, wv->gen_n, wv->gen, &rec, &len);
	free(copy);
	if (err)
		abort();
	struct chunk_buf *c = malloc(sizeof *c + len);
	if (!c)
		abort();
	c->cam = NULL;               /* marks the directory record */
	c->carved = false;
	c->len = c->cap = len;
	memcpy(c->data, rec, len);
	free(rec);
	c->next = wv->p_head;
	wv->p_head = c;
	if (!wv->p_tail)
		wv->p_tail = c;
	wv->p_copied = 0;
	(void)w;
}

/* ---- packing ---------------------------------------------------------------- */

static void chunk_entry(const struct chunk_buf *c, uint64_t off, struct dir_entry *e)
{
	struct rec_header h;
	memcpy(&h, c->data, sizeof h);
	*e = (struct dir_entry){
		.camera_id = h.camera_id, .offset8 = (uint32_t)(off / 8),
		.length = c->len, .frames = (uint16_t)h.frame_count,
		.flags = h.flags, .start_us = h.first_us, .end_us = h.end_us,
	};
}

static void gen_entry_push(struct wvol *wv, const struct dir_entry *e)
{
	if (wv->gen_n == wv->gen_cap) {
		uint32_t c = wv->gen_cap ? wv->gen_cap * 2 : 256;
		struct dir_entry *ne = realloc(wv->gen_e, c * sizeof *ne);
		if (!ne)
			abort();
		wv->gen_e = ne;
		wv->gen_cap = c;
	}
	wv->gen_e[wv->gen_n++] = *e;
}

/* Called when the last byte of p_head is in the current block. */
static void finish_record(struct writer *w, struct wvol *wv)
{
	struct chunk_buf *c = wv->p_head;
	struct wblock *b = &wv->blocks[wv->cur];
	struct wevent ev = { .gen = wv->gen, .dir = wv->dir, .fd = wv->fd };
	if (c->cam) {
		ev.type = EV_CHUNK;
		ev.cam = c->cam;
		chunk_entry(c, wv->rec_off, &ev.e);
		segdir_append(wv->dir, &ev.e);
		gen_entry_push(wv, &ev.e);
		wv->v->q_bytes -= c->len;    /* atomic */
	} else {
		ev.type = EV_SEAL;
		ev.last_of_gen = true;
		ev.dir_off = wv->rec_off;
		ev.dir_len = c->len;
		wv->open = false;      /* next record opens a new generation */
		wv->dir = NULL;
	}
	ev_push(&b->ev, &b->nev, &b->cap, &ev);
	wv->p_head = c->next;
	if (!wv->p_head)
		wv->p_tail = NULL;
	wv->p_copied = 0;
	bufpool_put(c);
	if (ev.type == EV_SEAL) {
		submit_block(w, wv);
		wv->sync_soon = true;    /* the indexer may be waiting for this seal */
	}
}

/* Does the head record fit in the open segment, keeping room for the
 * directory that must follow it? */
static bool fits(const struct writer *w, const struct wvol *wv, const struct chunk_buf *c)
{
	uint64_t seg = wv->v->hdr.segment_size;
	(void)w;
	return wv->pos + c->len + dir_record_bound(wv->gen_n + 1) <= seg;
}

/* Chunks learn their generation when they are packed into a segment. */
static void stamp_generation(struct chunk_buf *c, uint32_t gen)
{
	struct rec_header h;
	memcpy(&h, c->data, sizeof h);
	h.generation = gen;
	h.checksum = rec_header_hash(&h, c->payload_hash);
	memcpy(c->data, &h, sizeof h);
}

static void pack(struct writer *w, struct wvol *wv)
{
	uint64_t seg = wv->v->hdr.segment_size;
	while (wv->p_head) {
		if (wv->v->state != STG_VOL_ACTIVE) {
			drop_pending(wv);
			return;
		}
		struct chunk_buf *c = wv->p_head;
		if (!wv->open) {
			if (c->cam && c->len + STG_BLOCK + dir_record_bound(1) > seg) {
				LOG_WARN("event=chunk_too_large camera=%u bytes=%u", c->cam->id, c->len);
				wv->p_head = c->next;
				if (!wv->p_head)
					wv->p_tail = NULL;
				wv->v->q_bytes -= c->len;
				drop_chunk(c);
				continue;
			}
			if (!open_gen(w, wv)) {
				wv->waits_segment++;
				return;
			}
		}
		if (wv->p_copied == 0 && c->cam && !fits(w, wv, c)) {
			seal_gen(w, wv);
			continue;
		}
		if (!ensure_block(w, wv)) {
			wv->waits_block++;
			return;
		}
		struct wblock *b = &wv->blocks[wv->cur];
		if (wv->p_copied == 0) {
			wv->rec_off = b->file_off + b->fill;
			if (c->cam)
				stamp_generation(c, wv->gen);
		}
		uint32_t n = c->len - wv->p_copied;
		if (n > block_bytes(w) - b->fill)
			n = block_bytes(w) - b->fill;
		memcpy(b->buf + b->fill, c->data + wv->p_copied, n);
		b->fill += n;
		wv->p_copied += n;
		wv->pos = b->file_off + b->fill;
		bool done = wv->p_copied == c->len;
		if (done)
			finish_record(w, wv);
		if (wv->cur >= 0 && wv->blocks[wv->cur].fill == block_bytes(w))
			submit_block(w, wv);
	}
}

/* ---- completions, sync and delivery ------------------------------------------ */

static void send_chunks(struct writer *w, struct vol *v, uint32_t gen,
                        struct dir_entry *e, uint32_t n)
{
	if (n == 0)
		return;
	struct imsg *m = calloc(1, sizeof *m);
	struct dir_entry *copy = malloc(n * sizeof *copy);
	if (!m || !copy)
		abort();
	memcpy(copy, e, n * sizeof *copy);
	m->type = IMSG_CHUNKS;
	m->vol = v;
	m->gen = gen;
	m->e = copy;
	m->n = n;
	indexer_send(w->stg, m);
}

/* Makes the first n unsynced events visible and sends them to the index. */
static void deliver(struct writer *w, struct wvol *wv, uint32_t n)
{
	struct evvec *u = &wv->unsynced;
	struct dir_entry *batch = malloc((n ? n : 1) * sizeof *batch);
	if (!batch)
		abort();
	uint32_t nb = 0, batch_gen = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct wevent *ev = &u->v[i];
		if (nb && ev->gen != batch_gen) {
			send_chunks(w, wv->v, batch_gen, batch, nb);
			nb = 0;
		}
		if (ev->type == EV_CHUNK) {
			pthread_mutex_lock(&ev->dir->lock);
			ev->dir->visible++;
			pthread_mutex_unlock(&ev->dir->lock);
			if (!(ev->e.flags & REC_RELOCATED)) {   /* copies were counted once */
				ev->cam->frames_written += ev->e.frames;
				ev->cam->bytes_written += ev->e.length;
			}
			batch[nb++] = ev->e;
			batch_gen = ev->gen;
			continue;
		}
		send_chunks(w, wv->v, batch_gen, batch, nb);
		nb = 0;
		struct imsg *m = calloc(1, sizeof *m);
		if (!m)
			abort();
		m->type = IMSG_SEAL;
		m->vol = wv->v;
		m->gen = ev->gen;
		m->dir = ev->dir;          /* the writer's reference moves along */
		m->dir_off = ev->dir_off;
		m->dir_len = ev->dir_len;
		indexer_send(w->stg, m);
		close(ev->fd);
	}
	send_chunks(w, wv->v, batch_gen, batch, nb);
	free(batch);
	memmove(u->v, u->v + n, (u->n - n) * sizeof *u->v);
	u->n -= n;
}

static void start_sync(struct writer *w, struct wvol *wv)
{
	struct evvec *u = &wv->unsynced;
	if (wv->fsyncs_inflight || u->n == 0)
		return;
	if (w->stg->cfg.no_fsync) {
		deliver(w, wv, u->n);
		return;
	}
	int fds[2], nfd = 0;
	for (uint32_t i = 0; i < u->n; i++) {
		int fd = u->v[i].fd;
		bool seen = false;
		for (int j = 0; j < nfd; j++)
			seen |= fds[j] == fd;
		if (!seen && nfd < 2)
			fds[nfd++] = fd;
		if (!seen && nfd == 2 && fds[1] != fd && fds[0] != fd) {
			wv->syncing = i;      /* a third fd: sync what we have first */
			goto submit;
		}
	}
	wv->syncing = u->n;
submit:
	for (int j = 0; j < nfd; j++) {
		struct io_uring_sqe *sqe = get_sqe(w);
		io_uring_prep_fsync(sqe, fds[j], IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, ud(OP_FSYNC, wv->idx, 0));
		wv->fsyncs_inflight++;
		wv->fsyncs++;
	}
}

static void fail_volume(struct writer *w, struct wvol *wv, const char *why, int res)
{
	vol_fail(w->stg, wv->v, why, res);
	wv->v->write_errors++;
	drop_events(wv->unsynced.v, wv->unsynced.n);
	wv->unsynced.n = 0;
	drop_pending(wv);
}

/* Retires completed writes in submission order: their chunks wait for the
 * next fdatasync; a failed write takes the volume out of service. */
static void retire(struct writer *w, struct wvol *wv)
{
	while (wv->retire_seq < wv->next_seq) {
		struct wseq *q = &wv->seqs[wv->retire_seq % wv->window];
		if (!q->done)
			break;
		if (q->res != (int)q->len || wv->v->state != STG_VOL_ACTIVE) {
			if (wv->v->state == STG_VOL_ACTIVE)
				fail_volume(w, wv, "write failed", q->res < 0 ? q->res : -EIO);
			drop_events(q->ev, q->nev);
			for (uint32_t i = 0; i < q->nev; i++)
				if (q->ev[i].last_of_gen)
					close(q->ev[i].fd);
		} else {
			wv->v->bytes_written += q->len;
			for (uint32_t i = 0; i < q->nev; i++)
				ev_push(&wv->unsynced.v, &wv->unsynced.n, &wv->unsynced.cap, &q->ev[i]);
		}
		q->nev = 0;
		wv->retire_seq++;
	}
}

static void on_write(struct writer *w, struct wvol *wv, int bi, int res)
{
	struct wblock *b = &wv->blocks[bi];
	if (b->inject_fail)
		res = -EIO;
	struct wseq *q = &wv->seqs[b->seq % wv->window];
	q->res = res;
	q->done = true;
	b->state = B_FREE;               /* the buffer is free right away */
	wv->inflight--;
	wv->lat_sum_us += stg_realtime_us() - b->submit_us;
	if (wv->inflight == 0) {
		wv->idle_since = stg_realtime_us();
		wv->idle_had_data = wv->p_head != NULL || wv->v->q_bytes != 0;  /* atomic */
	}
	retire(w, wv);
}

static void on_fsync(struct writer *w, struct wvol *wv, int res)
{
	if (--wv->fsyncs_inflight > 0)
		return;
	if (res < 0 && wv->v->state == STG_VOL_ACTIVE) {
		fail_volume(w, wv, "fdatasync failed", res);
		return;
	}
	if (wv->v->state != STG_VOL_ACTIVE)
		return;
	uint32_t n = wv->syncing;
	if (n > wv->unsynced.n)
		n = wv->unsynced.n;
	deliver(w, wv, n);
	wv->syncing = 0;
}

static void on_cqe(struct writer *w, struct io_uring_cqe *cqe)
{
	uint64_t d = io_uring_cqe_get_data64(cqe);
	int op = (int)(d >> 56), vi = (int)((d >> 16) & 0xffff), bi = (int)(d & 0xffff);
	if (op == OP_WAKE) {
		w->wake_armed = false;
		return;
	}
	struct wvol *wv = &w->wv[vi];
	if (op == OP_WRITE)
		on_write(w, wv, bi, cqe->res);
	else if (op == OP_FSYNC)
		on_fsync(w, wv, cqe->res);
}

/* ---- the loop ------------------------------------------------------------------ */

static void take_queue(struct wvol *wv)
{
	struct vol *v = wv->v;
	pthread_mutex_lock(&v->lock);
	struct chunk_buf *h = v->q_head, *t = v->q_tail;
	v->q_head = v->q_tail = NULL;
	pthread_mutex_unlock(&v->lock);
	if (!h)
		return;
	if (wv->p_tail)
		wv->p_tail->next = h;
	else
		wv->p_head = h;
	wv->p_tail = t;
}

/* Nothing queued, in flight or unsynced, and the prepared-segment reserve
 * full: a drain waits for the reserve too, so that no reclaim is still to
 * come from data handed over before the drain. */
static bool wvol_idle(struct wvol *wv, bool with_reserve)
{
	struct vol *v = wv->v;
	pthread_mutex_lock(&v->lock);
	bool reserve_done = !with_reserve || v->state != STG_VOL_ACTIVE ||
	                    (!v->slots_requested && v->nready >= STG_RESERVE);
	pthread_mutex_unlock(&v->lock);
	return !wv->p_head && wv->cur < 0 && wv->inflight == 0 &&
	       wv->unsynced.n == 0 && wv->fsyncs_inflight == 0 && reserve_done;
}

static void flush_partial(struct writer *w, struct wvol *wv, bool force)
{
	if (wv->cur < 0)
		return;
	struct wblock *b = &wv->blocks[wv->cur];
	int64_t age = stg_now(w->stg) - b->first_byte_us;
	if (b->fill > 0 && (force || age >= (int64_t)w->stg->cfg.flush_interval_ms * 250))
		submit_block(w, wv);
}

static void service(struct writer *w, struct wvol *wv, bool tick, bool draining, bool stopping)
{
	take_queue(wv);
	if (!stopping)
		request_segment(w, wv->v);
	if (stopping && wv->open && !wv->p_head && wv->v->state == STG_VOL_ACTIVE)
		seal_gen(w, wv);
	pack(w, wv);
	if (tick || draining || stopping)
		flush_partial(w, wv, draining || stopping);
	if (tick || draining || stopping || (wv->sync_soon && wv->inflight == 0)) {
		wv->sync_soon = false;
		start_sync(w, wv);
	}
}

static bool queues_empty(struct writer *w)
{
	for (int i = 0; i < w->n; i++) {
		struct vol *v = w->wv[i].v;
		pthread_mutex_lock(&v->lock);
		bool empty = v->q_head == NULL;
		pthread_mutex_unlock(&v->lock);
		if (!empty || w->wv[i].p_head)
			return false;
	}
	return true;
}

static bool all_idle(struct writer *w, bool with_reserve)
{
	for (int i = 0; i < w->n; i++)
		if (!wvol_idle(&w->wv[i], with_reserve))
			return false;
	return true;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	int64_t tick_us = (int64_t)w->stg->cfg.flush_interval_ms * 500;
	int64_t next_tick = stg_realtime_us() + tick_us;
	for (;;) {
		bool stopping = w->stop;
		uint64_t seen = pushes(w);
		pthread_mutex_lock(&w->drain_lock);
		bool draining = w->drain_req != w->drain_done;
		pthread_mutex_unlock(&w->drain_lock);
		int64_t now = stg_realtime_us();
		bool tick = now >= next_tick;
		if (tick)
			next_tick = now + tick_us;
		for (int i = 0; i < w->n; i++)
			service(w, &w->wv[i], tick, draining, stopping);
		bool open_gens = false;
		for (int i = 0; i < w->n; i++)
			open_gens |= w->wv[i].open && w->wv[i].v->state == STG_VOL_ACTIVE;
		bool quiet = queues_empty(w) && all_idle(w, !stopping);
		if (draining && quiet) {
			pthread_mutex_lock(&w->drain_lock);
			w->drain_done = w->drain_req;
			pthread_cond_broadcast(&w->drain_cond);
			pthread_mutex_unlock(&w->drain_lock);
		}
		if (stopping && quiet && !open_gens)
			break;
		if (!w->wake_armed)
			arm_wake(w);
		int64_t wait = next_tick - stg_realtime_us();
		if (draining || stopping)
			wait = wait > 2000 ? 2000 : wait;
		/* Sleep protocol (writer_nudge): announce the sleep, then look
		 * again; a chunk queued in between is either seen here or finds
		 * sleeping == 1 and writes the eventfd. */
		atomic_store(&w->sleeping, 1);
		if (pushes(w) != seen)
			wait = 0;
		/* chunks below a block do not wake us (writer_nudge): look at the
		 * queues at least every eighth of the flush interval, so a chunk
		 * waits at most that long before it is packed */
		int64_t look_wait = (int64_t)w->stg->cfg.flush_interval_ms * 125;
		if (wait > look_wait)
			wait = look_wait;
		if (wait < 0)
			wait = 0;
		struct __kernel_timespec ts = { wait / 1000000, (wait % 1000000) * 1000 };
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		atomic_store(&w->sleeping, 0);
		unsigned head, count = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			on_cqe(w, cqe);
			count++;
		}
		io_uring_cq_advance(&w->ring, count);
	}
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

static int alloc_blocks(struct writer *w, struct wvol *wv)
{
	uint32_t nb = w->stg->cfg.blocks_per_volume;
	wv->blocks = calloc(nb, sizeof *wv->blocks);
	if (!wv->blocks)
		return -ENOMEM;
	for (uint32_t i = 0; i < nb; i++)
		if (posix_memalign((void **)&wv->blocks[i].buf, STG_BLOCK, block_bytes(w)))
			return -ENOMEM;
	wv->window = SEQ_WINDOW(nb);
	wv->seqs = calloc(wv->window, sizeof *wv->seqs);
	if (!wv->seqs)
		return -ENOMEM;
	wv->cur = -1;
	wv->fd = -1;
	return 0;
}

/* Registers all block buffers if the kernel lets us (newer feature). */
static void try_register(struct writer *w)
{
	uint32_t nb = w->stg->cfg.blocks_per_volume;
	struct iovec *iov = calloc((size_t)w->n * nb, sizeof *iov);
	if (!iov)
		return;
	for (int i = 0; i < w->n; i++)
		for (uint32_t j = 0; j < nb; j++)
			iov[i * nb + j] = (struct iovec){ w->wv[i].blocks[j].buf, block_bytes(w) };
	int err = io_uring_register_buffers(&w->ring, iov, (unsigned)(w->n * nb));
	free(iov);
	w->fixed = err == 0;
	LOG_INFO("event=writer_started volumes=%d registered_buffers=%s%s%s", w->n,
	         w->fixed ? "yes" : "no", err ? " reason=" : "",
	         err ? strerror(-err) : "");
}

int writer_start(struct stg *stg, struct writer **out, struct vol **vols, int n)
{
	struct writer *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->stg = stg;
	w->n = n;
	w->wv = calloc((size_t)n, sizeof *w->wv);
	pthread_mutex_init(&w->drain_lock, NULL);
	pthread_cond_init(&w->drain_cond, NULL);
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int err = w->wv && w->efd >= 0 ? 0 : -ENOMEM;
	for (int i = 0; i < n && !err; i++) {
		w->wv[i].v = vols[i];
		w->wv[i].idx = i;
		vols[i]->writer = w;
		vols[i]->w = &w->wv[i];
		err = alloc_blocks(w, &w->wv[i]);
	}
	unsigned entries = (unsigned)(n * (int)stg->cfg.blocks_per_volume * 2 + 16);
	if (!err)
		err = io_uring_queue_init(entries < 4096 ? entries : 4096, &w->ring, 0);
	if (err) {
		free(w);   /* leaks blocks on this path only at start-up failure */
		return err;
	}
	try_register(w);
	err = -pthread_create(&w->thread, NULL, writer_main, w);
	if (err) {
		io_uring_queue_exit(&w->ring);
		free(w);
		return err;
	}
	*out = w;
	return 0;
}

int writer_drain(struct writer *w)
{
	pthread_mutex_lock(&w->drain_lock);
	uint64_t my = ++w->drain_req;
	pthread_mutex_unlock(&w->drain_lock);
	writer_wake(w);
	pthread_mutex_lock(&w->drain_lock);
	while (w->drain_done < my)
		pthread_cond_wait(&w->drain_cond, &w->drain_lock);
	pthread_mutex_unlock(&w->drain_lock);
	return 0;
}

void writer_stop(struct writer *w)
{
	w->stop = true;
	writer_wake(w);
	pthread_join(w->thread, NULL);
	io_uring_queue_exit(&w->ring);
	close(w->efd);
	for (int i = 0; i < w->n; i++) {
		struct wvol *wv = &w->wv[i];
		LOG_INFO("event=writer_stopped path=%s writes=%llu fsyncs=%llu waits_for_buffer=%llu waits_for_segment=%llu segment_wait_ms=%.0f avg_write_ms=%.2f avg_inflight=%.2f idle_ms=%.0f idle_with_data_ms=%.0f",
		         wv->v->path, (unsigned long long)wv->writes, (unsigned long long)wv->fsyncs,
		         (unsigned long long)wv->waits_block, (unsigned long long)wv->waits_segment,
		         wv->seg_wait_us / 1e3, wv->writes ? wv->lat_sum_us / 1e3 / wv->writes : 0.0,
		         wv->writes ? (double)wv->inflight_sum / wv->writes : 0.0, wv->idle_us / 1e3, wv->idle_data_us / 1e3);
		drop_pending(wv);
		for (uint32_t j = 0; j < w->stg->cfg.blocks_per_volume; j++) {
			free(wv->blocks[j].buf);
			free(wv->blocks[j].ev);
		}
		free(wv->blocks);
		for (uint32_t j = 0; j < wv->window; j++)
			free(wv->seqs[j].ev);
		free(wv->seqs);
		free(wv->gen_e);
		free(wv->unsynced.v);
		if (wv->open && wv->dir)
			dc_put(w->stg->dc, wv->dir);
		if (wv->open && wv->fd >= 0)
			close(wv->fd);
		wv->v->w = NULL;
		wv->v->writer = NULL;
	}
	free(w->wv);
	pthread_mutex_destroy(&w->drain_lock);
	pthread_cond_destroy(&w->drain_cond);
	free(w);
}
