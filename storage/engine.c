/*
 * engine.c - the engine's life cycle and its write entry points: opening
 * (index, volumes, recovery, threads), cameras, frames into chunks, and
 * closing.
 *
 * A camera's frames are appended to its open chunk (one buffer: frame bytes,
 * then the frame table added when the chunk closes). A chunk closes at the
 * next key frame (so a chunk is normally one GOP, and every chunk a reader
 * starts from begins with a key frame), or when it reaches max_chunk_bytes
 * or max_chunk_ms. The closed chunk gets its header and checksum here, on
 * the producer's thread, and is queued to the camera's volume; the writer
 * thread takes it from there. Nothing here ever waits for a disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define MIB (1024u * 1024u)

static void apply_defaults(struct stg_config *c)
{
	if (!c->write_block_bytes) c->write_block_bytes = 4 * MIB;
	if (c->write_block_bytes < MIB) c->write_block_bytes = MIB;
	if (c->write_block_bytes > 4 * MIB) c->write_block_bytes = 4 * MIB;
	c->write_block_bytes = (uint32_t)align_up(c->write_block_bytes, STG_BLOCK);
	if (!c->blocks_per_volume) c->blocks_per_volume = 4;
	if (c->blocks_per_volume > 64) c->blocks_per_volume = 64;
	if (!c->flush_interval_ms) c->flush_interval_ms = 1000;
	if (!c->writer_threads) c->writer_threads = 1;
	if (!c->queue_bytes_per_volume) c->queue_bytes_per_volume = 64ull * MIB;
	if (!c->dir_cache_bytes) c->dir_cache_bytes = 64ull * MIB;
	if (!c->max_chunk_ms) c->max_chunk_ms = 4000;
	if (c->max_chunk_ms > 60000) c->max_chunk_ms = 60000;
	if (!c->max_chunk_bytes) c->max_chunk_bytes = 2 * MIB;
	if (!c->gap_us) c->gap_us = 1000000;
	if (!c->map_size) c->map_size = 64ull * MIB;
	if (!c->retention_interval_ms) c->retention_interval_ms = 60000;
	if (!c->rate_window_s) c->rate_window_s = 3600;
	if (!c->hold_max_pct || c->hold_max_pct > 90) c->hold_max_pct = 50;
}

static int start_writers(struct stg *stg)
{
	int nw = (int)stg->cfg.writer_threads;
	if (nw > stg->nvols)
		nw = stg->nvols;
	stg->writers = calloc((size_t)nw, sizeof *stg->writers);
	if (!stg->writers)
		return -ENOMEM;
	for (int w = 0; w < nw; w++) {
		struct vol *mine[STG_MAX_VOLUMES];
		int n = 0;
		for (int i = w; i < stg->nvols; i += nw)
			mine[n++] = &stg->vols[i];
		int err = writer_start(stg, &stg->writers[w], mine, n);
		if (err)
			return err;
		stg->nwriters++;
	}
	return 0;
}

int stg_open(const struct stg_config *cfg, struct stg **out)
{
	if (!cfg->index_dir || cfg->volume_count <= 0 || cfg->volume_count > STG_MAX_VOLUMES)
		return -EINVAL;
	struct stg *stg = calloc(1, sizeof *stg);
	if (!stg)
		return -ENOMEM;
	stg->cfg = *cfg;
	apply_defaults(&stg->cfg);
	pthread_mutex_init(&stg->cam_lock, NULL);
	pthread_mutex_init(&stg->ix_lock, NULL);
	pthread_cond_init(&stg->ix_cond, NULL);
	int err = idx_open(cfg->index_dir, stg->cfg.map_size, &stg->ix);
	if (!err)
		err = dc_create(stg->cfg.dir_cache_bytes, &stg->dc);
	if (!err)
		err = ret_open(stg);
	if (err)
		goto fail;
	int usable = 0;
	for (int i = 0; i < cfg->volume_count; i++) {
		stg->vols[i].index = i;
		stg->nvols++;
		usable += vol_attach(stg, &stg->vols[i], cfg->volumes[i]) == 0;
	}
	if (!usable) {
		err = STG_ENOVOLUME;
		goto fail;
	}
	/* Writers first: the index thread reaches them through v->writer. They
	 * ask for their first segments themselves; the requests wait in the
	 * index thread's queue until it starts. */
	if ((err = recover_open_segments(stg)) || (err = start_writers(stg)) ||
	    (err = indexer_start(stg)))
		goto fail;
	*out = stg;
	return 0;
fail:
	stg_close(stg);
	return err;
}

/* ---- cameras ------------------------------------------------------------- */

static struct stg_camera **cam_slot(struct stg *stg, uint32_t id)
{
	uint32_t mask = stg->cam_cap - 1;
	for (uint32_t i = (id * 2654435761u) & mask;; i = (i + 1) & mask)
		if (!stg->cams[i] || stg->cams[i]->id == id)
			return &stg->cams[i];
}

static int cam_table_grow(struct stg *stg)
{
	uint32_t old_cap = stg->cam_cap;
	struct stg_camera **old = stg->cams;
	stg->cam_cap = old_cap ? old_cap * 2 : 1024;
	stg->cams = calloc(stg->cam_cap, sizeof *stg->cams);
	if (!stg->cams) {
		stg->cams = old;
		stg->cam_cap = old_cap;
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i])
			*cam_slot(stg, old[i]->id) = old[i];
	free(old);
	return 0;
}

static struct stg_camera *cam_find(struct stg *stg, uint32_t id)
{
	pthread_mutex_lock(&stg->cam_lock);
	struct stg_camera *c = stg->cam_cap ? *cam_slot(stg, id) : NULL;
	pthread_mutex_unlock(&stg->cam_lock);
	return c;
}

int stg_camera_get(struct stg *stg, uint32_t camera_id, struct stg_camera **out)
{
	int err = 0;
	pthread_mutex_lock(&stg->cam_lock);
	if ((stg->cam_count + 1) * 2 > stg->cam_cap)
		err = cam_table_grow(stg);
	struct stg_camera **slot = err ? NULL : cam_slot(stg, camera_id);
	if (slot && !*slot) {
		struct stg_camera *c = calloc(1, sizeof *c);
		if (c) {
			c->stg = stg;
			c->id = camera_id;
			c->vol = -1;
			c->last_time = INT64_MIN;
			/* its first chunk buffer now, so that the memory is
			 * faulted in when the camera is registered, not in the
			 * middle of recording */
			c->spare = bufpool_get(64 * 1024);
			*slot = c;
			stg->cam_count++;
		} else {
			err = -ENOMEM;
		}
	}
	if (slot && *slot)
		*out = *slot;
	pthread_mutex_unlock(&stg->cam_lock);
	return err;
}

/* ---- chunks --------------------------------------------------------------- */

static int chunk_start(struct stg_camera *c, const struct stg_frame *f)
{
	/* room for the largest recent GOP and an eighth more, so that a chunk
	 * rarely outgrows its buffer (growing copies it); a camera's first
	 * chunk starts small and grows: 30,000 cameras at one frame a second
	 * need 20-40 KiB each, and a buffer once carved stays in the pool */
	uint32_t cap = c->size_hint ? c->size_hint + c->size_hint / 8 : 16 * 1024;
	if (cap < sizeof(struct rec_header) + f->size + 4096)
		cap = (uint32_t)sizeof(struct rec_header) + f->size + 4096;
	if (c->spare && c->spare->cap >= cap) {
		c->cur = c->spare;
	} else {
		c->cur = bufpool_get(cap);
		if (c->spare)
			bufpool_put(c->spare);
	}
	c->spare = NULL;
	if (!c->cur)
		return -ENOMEM;
	c->cur->cam = c;
	c->cur->next = NULL;
	c->cur_len = sizeof(struct rec_header);
	c->cur_cap = c->cur->cap;
	c->nframes = 0;
	c->first_us = f->time_us;
	c->codec = f->codec;
	c->key_start = f->key;
	return 0;
}

/* Makes room for `extra` more bytes in the open chunk, moving it to a
 * bigger buffer if needed. The fill level lives in the camera (cur_len,
 * cur_cap), not in the buffer: the camera is hot in the producer's cache,
 * the header of a buffer written 40 ms ago is not (measured: that one load
 * was most of the cost of a frame at 30,000 cameras). */
static int chunk_reserve(struct stg_camera *c, uint32_t extra)
{
	if (c->cur_len + extra <= c->cur_cap)
		return 0;
	uint32_t cap = c->cur_cap * 2;
	while (cap < c->cur_len + extra)
		cap *= 2;
	struct chunk_buf *nb = bufpool_get(cap);
	if (!nb)
		return -ENOMEM;
	nb->cam = c;
	nb->next = NULL;
	memcpy(nb->data, c->cur->data, c->cur_len);
	bufpool_put(c->cur);
	c->cur = nb;
	c->cur_cap = nb->cap;
	return 0;
}

static int table_push(struct stg_camera *c, uint32_t size, int64_t dt, bool key)
{
	if (c->nframes == c->table_cap) {
		uint32_t cap = c->table_cap ? c->table_cap * 2 : 64;
		struct frame_entry *t = realloc(c->table, cap * sizeof *t);
		if (!t)
			return -ENOMEM;
		c->table = t;
		c->table_cap = cap;
	}
	c->table[c->nframes++] = (struct frame_entry){ size, (uint32_t)dt << 1 | key };
	return 0;
}

/* Hands a closed chunk to its volume's writer. Live chunks (`flushed`
 * false) are dropped and counted when the queue is over its limit: the
 * producer goes on with a new chunk, so admitting them would let memory grow
 * without bound behind a slow disk. A flushed chunk (camera stopped or
 * disconnected) is admitted past the limit: no new chunk follows it, so the
 * memory it holds is bounded by the open chunks the engine already allowed,
 * and dropping it would lose footage at every shutdown of many cameras. */
static void queue_chunk(struct stg *stg, struct stg_camera *c, struct chunk_buf *b,
                        uint32_t frames, bool flushed)
{
	if (c->vol < 0 || stg->vols[c->vol].state != STG_VOL_ACTIVE) {
		if (c->vol >= 0)
			stg->vols[c->vol].assigned_cameras--;
		c->vol = vol_pick_for_camera(stg, c->id);
		if (c->vol >= 0)
			stg->vols[c->vol].assigned_cameras++;
	}
	if (c->vol < 0) {
		c->dropped_frames += frames;
		bufpool_put(b);
		return;
	}
	struct vol *v = &stg->vols[c->vol];
	pthread_mutex_lock(&v->lock);
	bool accept = (flushed || v->q_bytes + b->len <= v->q_limit) &&
	              v->state == STG_VOL_ACTIVE;
	if (accept) {
		if (v->q_tail)
			v->q_tail->next = b;
		else
			v->q_head = b;
		v->q_tail = b;
		v->q_bytes += b->len;
		v->q_pushes++;
	}
	pthread_mutex_unlock(&v->lock);
	if (!accept) {
		c->dropped_frames += frames;
		bufpool_put(b);
	} else if (v->writer) {
		writer_nudge(v->writer, v->q_bytes);
	}
}

/* Closes the open chunk; `end_us` is where its last frame ends. */
static int chunk_close(struct stg_camera *c, int64_t end_us, bool flushed)
{
	uint32_t raw = c->cur_len - (uint32_t)sizeof(struct rec_header);
	uint32_t table_at = (uint32_t)align_up(c->cur_len, 8);
	uint32_t table = c->nframes * (uint32_t)sizeof(struct frame_entry);
	uint32_t total = table_at + table;          /* a multiple of 8 */
	int err = chunk_reserve(c, total - c->cur_len);
	if (err)
		return err;
	struct chunk_buf *b = c->cur;
	memset(b->data + c->cur_len, 0, table_at - c->cur_len);
	memcpy(b->data + table_at, c->table, table);
	struct rec_header h = {
		.magic = STG_REC_MAGIC, .version = STG_FORMAT_VERSION, .type = REC_CHUNK,
		.codec = (uint8_t)c->codec,
		.flags = (c->key_start ? REC_KEY_START : 0) | (c->range_break ? REC_RANGE_START : 0),
		.camera_id = c->id, .first_us = c->first_us, .last_us = c->last_us,
		.end_us = end_us, .frame_count = c->nframes,
		.payload_len = total - (uint32_t)sizeof h, .raw_len = raw,
	};
	b->payload_hash = rec_payload_hash(b->data + sizeof h, h.payload_len);
	memcpy(b->data, &h, sizeof h);   /* generation and checksum: writer.c */
	b->len = total;
	c->range_break = false;
	/* largest recent chunk, forgetting slowly */
	uint32_t decayed = c->size_hint - c->size_hint / 16;
	c->size_hint = total > decayed ? total : decayed;
	c->cur = NULL;
	queue_chunk(c->stg, c, b, c->nframes, flushed);
	return 0;
}

/* How long a camera may go without a frame before that is a gap in its
 * footage: gap_us, or 2.5 frame intervals of a slow camera (at one frame a
 * second, a frame 1.05 s after the last one is not a gap). Before the
 * camera's second frame its interval is unknown: twice gap_us, so that a
 * slow camera's first interval is not a gap either. Invariant: a
 * chunk ends where the next one starts unless the time between them is a
 * gap by this measure, so the index (which compares chunk ends and starts
 * with gap_us) sees a slow camera's footage as one range. */
#define STG_MAX_FRAME_DT 10000000    /* intervals learned: up to 10 s */

static int64_t cam_gap_us(const struct stg_camera *c)
{
	int64_t gap = c->stg->cfg.gap_us;
	int64_t slow = c->frame_dt8 ? c->frame_dt8 / 8 * 5 / 2 : 2 * gap;
	return slow > gap ? slow : gap;
}

/* Learns the camera's frame interval from the time since its last frame,
 * unless that time was a gap: an average over about eight frames, kept in
 * eighths so that a steady interval is learned exactly; the first interval
 * sets it. */
static void learn_frame_dt(struct stg_camera *c, int64_t dt)
{
	if (dt <= 0 || dt > STG_MAX_FRAME_DT || dt > cam_gap_us(c))
		return;
	c->frame_dt8 = c->frame_dt8 ? c->frame_dt8 + dt - c->frame_dt8 / 8 : 8 * dt;
}

static bool must_close(const struct stg_camera *c, const struct stg_frame *f)
{
	const struct stg_config *cfg = &c->stg->cfg;
	uint32_t raw = c->cur_len - (uint32_t)sizeof(struct rec_header);
	return (f->key && c->nframes > 0) ||
	       (uint64_t)raw + f->size > cfg->max_chunk_bytes ||
	       f->time_us - c->first_us >= (int64_t)cfg->max_chunk_ms * 1000 ||
	       c->nframes >= UINT16_MAX || f->codec != c->codec ||
	       f->time_us - c->last_us > cam_gap_us(c);
}

/* Where the last frame of the open chunk ends, given the next frame's time
 * (or INT64_MIN when unknown): at the next frame unless a gap lies between,
 * else one frame interval (the chunk's last one) after its last frame. */
static int64_t chunk_end(const struct stg_camera *c, int64_t next_us)
{
	int64_t gap = cam_gap_us(c);
	if (next_us != INT64_MIN && next_us - c->last_us <= gap)
		return next_us;
	int64_t dur = c->prev_dt > 0 && c->prev_dt <= gap ? c->prev_dt
	              : c->frame_dt8 ? c->frame_dt8 / 8 : 40000;
	return c->last_us + dur;
}

int stg_put_frame(struct stg_camera *c, const struct stg_frame *f)
{
	if (!f->data || f->size == 0 || f->size > c->stg->cfg.max_chunk_bytes)
		return -EINVAL;
	if (f->time_us < c->last_time)
		return -EINVAL;
	int err = 0;
	if (c->cur && must_close(c, f))
		err = chunk_close(c, chunk_end(c, f->time_us), false);
	if (!err && !c->cur)
		err = chunk_start(c, f);
	if (!err)
		err = chunk_reserve(c, f->size);
	if (!err)
		err = table_push(c, f->size, f->time_us - c->first_us, f->key);
	if (err)
		return err;
	memcpy(c->cur->data + c->cur_len, f->data, f->size);
	c->cur_len += f->size;
	if (c->nframes > 1)
		c->prev_dt = f->time_us - c->last_us;
	if (c->last_time != INT64_MIN && !(c->range_break && c->nframes == 1))
		learn_frame_dt(c, f->time_us - c->last_time);   /* not across a flush */
	c->last_us = f->time_us;
	c->last_time = f->time_us;
	return 0;
}

int stg_camera_flush(struct stg_camera *c)
{
	int err = c->cur ? chunk_close(c, chunk_end(c, INT64_MIN), true) : 0;
	c->range_break = true;   /* what comes next is another stretch of footage */
	return err;
}

bool stg_camera_backlogged(struct stg_camera *c)
{
	int vi = c->vol >= 0 ? c->vol : vol_pick_for_camera(c->stg, c->id);
	if (vi < 0)
		return false;
	struct vol *v = &c->stg->vols[vi];
	return v->q_bytes + c->stg->cfg.max_chunk_bytes > v->q_limit;
}

int stg_sync(struct stg *stg)
{
	for (int i = 0; i < stg->nwriters; i++)
		writer_drain(stg->writers[i]);
	sem_t done;
	sem_init(&done, 0, 0);
	struct imsg *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->type = IMSG_BARRIER;
	m->done = &done;
	indexer_send(stg, m);
	sem_wait(&done);
	sem_destroy(&done);
	return 0;
}

void stg_close(struct stg *stg)
{
	if (!stg)
		return;
	if (stg->nwriters) {
		pthread_mutex_lock(&stg->cam_lock);
		for (uint32_t i = 0; i < stg->cam_cap; i++)
			if (stg->cams[i])
				stg_camera_flush(stg->cams[i]);
		pthread_mutex_unlock(&stg->cam_lock);
	}
	/* a full reserve of prepared segments at a clean stop means the next
	 * start reclaims nothing before it has something to write */
	for (int i = 0; i < stg->nwriters; i++)
		writer_drain(stg->writers[i]);
	for (int i = 0; i < stg->nwriters; i++)
		writer_stop(stg->writers[i]);
	free(stg->writers);
	indexer_stop(stg);
	ret_close(stg);
	for (struct imsg *m = stg->ix_head, *n; m; m = n) {
		n = m->next;
		free(m->e);
		free(m);
	}
	for (uint32_t i = 0; i < stg->cam_cap; i++)
		if (stg->cams[i]) {
			if (stg->cams[i]->cur)
				bufpool_put(stg->cams[i]->cur);
			if (stg->cams[i]->spare)
				bufpool_put(stg->cams[i]->spare);
			free(stg->cams[i]->table);
			free(stg->cams[i]);
		}
	free(stg->cams);
	for (int i = 0; i < stg->nvols; i++)
		vol_detach(&stg->vols[i]);
	dc_destroy(stg->dc);
	idx_close(stg->ix);
	pthread_mutex_destroy(&stg->cam_lock);
	pthread_mutex_destroy(&stg->ix_lock);
	pthread_cond_destroy(&stg->ix_cond);
	free(stg);
}

/* ---- statistics ------------------------------------------------------------ */

int stg_camera_stats(struct stg *stg, uint32_t camera_id, struct stg_camera_stats *out)
{
	struct stg_camera *c = cam_find(stg, camera_id);
	if (!c)
		return -ENOENT;
	*out = (struct stg_camera_stats){
		.frames_written = c->frames_written, .bytes_written = c->bytes_written,
		.dropped_frames = c->dropped_frames, .volume_index = c->vol,
	};
	return 0;
}

static int note_oldest(void *user, uint32_t gen, const struct idx_segment *s)
{
	int64_t *oldest = user;
	(void)gen;
	if (seg_has_times(s) && (!*oldest || s->t_min < *oldest))
		*oldest = s->t_min;
	return 0;
}

int stg_volume_stats(struct stg *stg, struct stg_volume_stats *out, int max)
{
	int n = 0;
	for (int i = 0; i < stg->nvols && n < max; i++, n++) {
		struct vol *v = &stg->vols[i];
		struct stg_volume_stats *s = &out[n];
		memset(s, 0, sizeof *s);
		snprintf(s->path, sizeof s->path, "%s", v->path);
		s->state = v->state;
		snprintf(s->last_error, sizeof s->last_error, "%s", v->last_error);
		s->bytes_written = v->bytes_written;
		s->write_errors = v->write_errors;
		s->segments_total = v->hdr.segment_count;
		s->reclaims = v->reclaims;
		if (!v->slot_gen)
			continue;
		pthread_mutex_lock(&v->lock);
		for (uint32_t j = 0; j < v->hdr.segment_count; j++)
			s->segments_free += v->slot_gen[j] == 0;
		pthread_mutex_unlock(&v->lock);
		MDB_txn *t;
		if (idx_read_begin(stg->ix, &t))
			continue;
		idx_foreach_segment(t, stg->ix, v->id, note_oldest, &s->oldest_us);
		idx_read_end(stg->ix, t);
	}
	return n;
}

static uint64_t db_bytes(MDB_txn *t, MDB_dbi dbi, unsigned psize, uint64_t *entries)
{
	MDB_stat st;
	if (mdb_stat(t, dbi, &st))
		return 0;
	if (entries)
		*entries = st.ms_entries;
	return (uint64_t)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * psize;
}

int stg_index_stats(struct stg *stg, struct stg_index_stats *out)
{
	MDB_txn *t;
	int err = idx_read_begin(stg->ix, &t);
	if (err)
		return err;
	MDB_stat env;
	mdb_env_stat(idx_env(stg->ix), &env);
	MDB_envinfo info;
	mdb_env_info(idx_env(stg->ix), &info);
	memset(out, 0, sizeof *out);
	out->map_size = info.me_mapsize;
	out->range_bytes = db_bytes(t, idx_db_ranges(stg->ix), env.ms_psize, &out->ranges);
	out->segment_bytes = db_bytes(t, idx_db_segments(stg->ix), env.ms_psize, &out->segments);
	out->bytes = out->range_bytes + out->segment_bytes +
	             db_bytes(t, idx_db_volumes(stg->ix), env.ms_psize, NULL) +
	             (uint64_t)(env.ms_branch_pages + env.ms_leaf_pages) * env.ms_psize;
	idx_read_end(stg->ix, t);
	return 0;
}

int stg_inject_write_error(struct stg *stg, int volume_index, uint64_t after_bytes)
{
	if (volume_index < 0 || volume_index >= stg->nvols)
		return -EINVAL;
	struct vol *v = &stg->vols[volume_index];
	v->inject_after = v->bytes_written + after_bytes;
	v->inject_armed = 1;
	return 0;
}
