/*
 * recover.c - reading a segment back from the disk alone: the start-up
 * recovery of the segments that were open at a crash, and the scan that
 * fsck and the index rebuild use.
 *
 * Scan rule (format.h): walk records from offset 4096; a record is taken
 * only if its header, generation and checksum match, so torn or stale
 * records are never indexed. At an invalid header the scan resynchronises:
 * it looks for the next record of this generation at every 8-byte offset,
 * and gives up after RESYNC_LIMIT bytes without one. That finds the records
 * after a damaged chunk, after the zero padding of a partial flush, and
 * after a torn write whose successors reached the disk (at most
 * blocks_per_volume writes are in flight, far less than the limit). The
 * directory record ends the log.
 *
 * Recovery at start-up touches only segments recorded OPEN in the index (at
 * most two per volume: the one being written and the one prepared next), so
 * start-up time does not grow with the size of the disks. Each recovered
 * segment is sealed: its directory is written at the end of what was found,
 * and every chunk is merged into the ranges (merging is idempotent, so
 * chunks that were already indexed before the crash change nothing).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include "internal.h"

#define SCAN_BUF (4u << 20)
#define RESYNC_LIMIT (64u << 20)

int seg_read_header(struct vol *v, uint32_t slot, struct seg_header *out)
{
	ssize_t n = pread(v->seg_fd[slot], out, sizeof *out, 0);
	if (n != (ssize_t)sizeof *out)
		return n < 0 ? -errno : STG_ECORRUPT;
	if (out->magic != STG_SEG_MAGIC || out->version != STG_FORMAT_VERSION ||
	    out->slot != slot || memcmp(out->volume_uuid, v->hdr.uuid, 16) ||
	    out->checksum != XXH3_64bits(out, offsetof(struct seg_header, checksum)))
		return STG_ECORRUPT;
	return 0;
}

void scan_result_free(struct scan_result *r)
{
	free(r->e);
	memset(r, 0, sizeof *r);
}

static int push_entry(struct scan_result *r, const struct dir_entry *e)
{
	if (r->n == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 256;
		struct dir_entry *ne = realloc(r->e, cap * sizeof *ne);
		if (!ne)
			return -ENOMEM;
		r->e = ne;
		r->cap = cap;
	}
	r->e[r->n++] = *e;
	return 0;
}

/* A window of the segment file kept in memory while scanning. */
struct window {
	int fd;
	uint8_t *buf;
	uint64_t off;     /* file offset of buf[0] */
	uint32_t len;     /* valid bytes */
	uint64_t size;    /* segment size */
};

/* Makes [off, off+len) available in the window; returns a pointer or NULL. */
static const uint8_t *window_get(struct window *w, uint64_t off, uint32_t len,
                                 uint8_t **big)
{
	if (off >= w->off && off + len <= w->off + w->len)
		return w->buf + (off - w->off);
	if (len > SCAN_BUF) {      /* a record larger than the window */
		free(*big);
		*big = malloc(len);
		if (!*big || pread(w->fd, *big, len, (off_t)off) != (ssize_t)len)
			return NULL;
		return *big;
	}
	uint64_t want = w->size - off < SCAN_BUF ? w->size - off : SCAN_BUF;
	ssize_t n = pread(w->fd, w->buf, want, (off_t)off);
	if (n < (ssize_t)len)
		return NULL;
	w->off = off;
	w->len = (uint32_t)n;
	return w->buf;
}

/* Looks for the next offset >= from holding a valid record header of
 * generation gen; 1 and *at if found, 0 if none within RESYNC_LIMIT. */
static int resync(struct window *w, uint64_t from, uint32_t gen, uint64_t *at)
{
	uint64_t limit = from + RESYNC_LIMIT;
	if (limit > w->size)
		limit = w->size;
	for (uint64_t off = from; off + sizeof(struct rec_header) <= limit; ) {
		uint8_t *big = NULL;
		uint32_t span = (uint32_t)(limit - off < SCAN_BUF ? limit - off : SCAN_BUF);
		const uint8_t *p = window_get(w, off, span, &big);
		free(big);
		if (!p)
			return -EIO;
		for (uint32_t i = 0; i + sizeof(struct rec_header) <= span; i += 8) {
			uint32_t magic;
			memcpy(&magic, p + i, sizeof magic);
			if (magic != STG_REC_MAGIC)
				continue;
			struct rec_header h;
			memcpy(&h, p + i, sizeof h);
			if (rec_header_check(&h, gen, off + i, w->size) == 0) {
				*at = off + i;
				return 1;
			}
		}
		off += span - sizeof(struct rec_header) + 8;
	}
	return 0;
}

int seg_scan(struct vol *v, uint32_t slot, uint32_t gen, struct scan_result *r)
{
	memset(r, 0, sizeof *r);
	struct window w = { .fd = v->seg_fd[slot], .size = v->hdr.segment_size };
	w.buf = malloc(SCAN_BUF);
	if (!w.buf)
		return -ENOMEM;
	uint8_t *big = NULL;
	uint64_t off = STG_BLOCK;
	int err = 0;
	r->end = off;
	while (off + sizeof(struct rec_header) <= w.size) {
		const uint8_t *p = window_get(&w, off, sizeof(struct rec_header), &big);
		if (!p) {
			err = -EIO;
			break;
		}
		struct rec_header h;
		memcpy(&h, p, sizeof h);
		int bad = rec_header_check(&h, gen, off, w.size);
		uint32_t len = bad ? 0 : (uint32_t)align_up(sizeof h + h.payload_len, 8);
		if (!bad) {
			p = window_get(&w, off, len, &big);
			if (!p) {
				err = -EIO;
				break;
			}
			bad = rec_verify(p, len, gen);
			if (!bad && h.type == REC_CHUNK) {
				struct dir_entry e = {
					.camera_id = h.camera_id, .offset8 = (uint32_t)(off / 8),
					.length = len, .frames = (uint16_t)h.frame_count,
					.flags = h.flags, .start_us = h.first_us, .end_us = h.end_us,
				};
				if ((err = push_entry(r, &e)))
					break;
			}
		}
		if (bad) {
			if (h.magic == STG_REC_MAGIC && h.generation == gen)
				r->bad_records++;
			int found = resync(&w, off + 8, gen, &off);
			if (found < 0) {
				err = found;
				break;
			}
			if (!found)
				break;           /* end of the log */
			continue;
		}
		off += len;
		r->end = off;
		if (h.type == REC_DIR) {
			r->sealed = true;
			r->dir_off = off - len;
			r->dir_len = len;
			break;
		}
	}
	free(big);
	free(w.buf);
	return err;
}

/* Writes a directory record for the scanned chunks at the next 4 KiB
 * boundary after the last valid record. */
static int write_directory(struct vol *v, uint32_t slot, uint32_t gen,
                           struct scan_result *r)
{
	struct dir_entry *copy = malloc((r->n ? r->n : 1) * sizeof *copy);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, r->e, r->n * sizeof *copy);
	void *rec;
	uint32_t len;
	int err = dir_record_build(copy, r->n, gen, &rec, &len);
	free(copy);
	if (err)
		return err;
	uint64_t off = align_up(r->end, STG_BLOCK);
	if (off + len > v->hdr.segment_size) {
		free(rec);
		return -ENOSPC;
	}
	int fd = vol_open_segment_direct(v, slot);
	uint32_t wlen = (uint32_t)align_up(len, STG_BLOCK);
	void *buf = NULL;
	if (fd < 0)
		err = fd;
	else if (posix_memalign(&buf, STG_BLOCK, wlen))
		err = -ENOMEM;
	if (!err) {
		memset(buf, 0, wlen);
		memcpy(buf, rec, len);
		if (pwrite(fd, buf, wlen, (off_t)off) != (ssize_t)wlen || fdatasync(fd))
			err = errno ? -errno : -EIO;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	free(rec);
	if (!err) {
		r->sealed = true;
		r->dir_off = off;
		r->dir_len = len;
	}
	return err;
}

/* Index updates for one recovered segment, in one transaction. */
static int index_recovered(struct stg *stg, struct vol *v, uint32_t gen,
                           uint32_t slot, const struct scan_result *r)
{
	struct dir_entry *sorted = malloc((r->n ? r->n : 1) * sizeof *sorted);
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, r->e, r->n * sizeof *sorted);
	qsort(sorted, r->n, sizeof *sorted, dir_entry_cmp);
	int err;
	MDB_txn *t;
	for (;;) {
		err = idx_write_begin(stg->ix, &t);
		if (err)
			break;
		struct idx_segment s = { .slot = slot, .state = SEG_SEALED,
		                         .dir_off = r->dir_off, .dir_len = r->dir_len };
		err = idx_put_segment(t, stg->ix, v->id, gen, &s);
		for (uint32_t i = 0; i < r->n && !err; i++) {
			err = idx_merge_chunk(t, stg->ix, v->id, gen, stg->cfg.gap_us, &sorted[i],
			                      NULL);
			if (!err)
				err = idx_segment_add_chunk(t, stg->ix, v->id, gen, &sorted[i]);
		}
		if (!err)
			err = idx_write_commit(stg->ix, t);
		else
			mdb_txn_abort(t);
		if (err != MDB_MAP_FULL || idx_grow(stg->ix))
			break;
	}
	free(sorted);
	return err;
}

/* Drops a generation that holds nothing: its header block is zeroed first
 * so that the disks alone agree the slot is free. */
static int forget_segment(struct stg *stg, struct vol *v, uint32_t gen, uint32_t slot)
{
	void *zero = NULL;
	int fd = vol_open_segment_direct(v, slot);
	int err = fd < 0 ? fd : 0;
	if (!err && posix_memalign(&zero, STG_BLOCK, STG_BLOCK))
		err = -ENOMEM;
	if (!err) {
		memset(zero, 0, STG_BLOCK);
		if (pwrite(fd, zero, STG_BLOCK, 0) != STG_BLOCK || fdatasync(fd))
			err = errno ? -errno : -EIO;
	}
	free(zero);
	if (fd >= 0)
		close(fd);
	if (err)
		return err;
	MDB_txn *t;
	err = idx_write_begin(stg->ix, &t);
	if (err)
		return err;
	struct seg_key sk;
	seg_key_make(&sk, v->id, gen);
	MDB_val k = { sizeof sk, &sk };
	err = mdb_del(t, idx_db_segments(stg->ix), &k, NULL);
	if (err && err != MDB_NOTFOUND) {
		mdb_txn_abort(t);
		return err;
	}
	v->slot_gen[slot] = 0;
	v->free_slots++;
	return idx_write_commit(stg->ix, t);
}

static int recover_segment(struct stg *stg, struct vol *v, uint32_t gen, uint32_t slot)
{
	struct seg_header sh;
	if (seg_read_header(v, slot, &sh) || sh.generation != gen) {
		/* prepared but never written: the slot is free again */
		return forget_segment(stg, v, gen, slot);
	}
	struct scan_result r;
	int err = seg_scan(v, slot, gen, &r);
	if (!err && !r.sealed && r.n == 0) {
		/* prepared, nothing written: becomes the writer's next segment */
		scan_result_free(&r);
		if (v->nready == STG_RESERVE)
			return forget_segment(stg, v, gen, slot);
		v->ready_gen[v->nready] = gen;
		v->ready_slot[v->nready] = slot;
		v->nready++;
		return 0;
	}
	if (!err && !r.sealed)
		err = write_directory(v, slot, gen, &r);
	if (!err)
		err = index_recovered(stg, v, gen, slot, &r);
	LOG_INFO("event=segment_recovered path=%s slot=%u gen=%u chunks=%u bad_records=%llu err=\"%s\"",
	         v->path, slot, gen, r.n, (unsigned long long)r.bad_records,
	         err ? stg_strerror(err) : "none");
	scan_result_free(&r);
	return err;
}

/* Prepared segments must be opened in generation order: ranges and
 * reclaim rely on a volume's generations following time. */
static void sort_ready(struct vol *v)
{
	for (int i = 1; i < v->nready; i++)
		for (int j = i; j > 0 && v->ready_gen[j - 1] > v->ready_gen[j]; j--) {
			uint32_t g = v->ready_gen[j], s = v->ready_slot[j];
			v->ready_gen[j] = v->ready_gen[j - 1];
			v->ready_slot[j] = v->ready_slot[j - 1];
			v->ready_gen[j - 1] = g;
			v->ready_slot[j - 1] = s;
		}
}

int recover_open_segments(struct stg *stg)
{
	for (int i = 0; i < stg->nvols; i++) {
		struct vol *v = &stg->vols[i];
		if (v->state != STG_VOL_ACTIVE)
			continue;
		for (uint32_t slot = 0; slot < v->hdr.segment_count; slot++) {
			uint32_t gen = v->slot_gen[slot];
			if (!gen)
				continue;
			MDB_txn *t;
			struct idx_segment s;
			int err = idx_read_begin(stg->ix, &t);
			if (err)
				return err;
			err = idx_get_segment(t, stg->ix, v->id, gen, &s);
			idx_read_end(stg->ix, t);
			if (err || s.state != SEG_OPEN)
				continue;
			err = recover_segment(stg, v, gen, slot);
			if (err)
				vol_fail(stg, v, "recovery of an open segment failed", err);
		}
		sort_ready(v);
	}
	return 0;
}
