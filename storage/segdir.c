/*
 * segdir.c - segment directories and their cache.
 *
 * A segment's directory lists its chunks (camera, time range, offset). For
 * the generation being written it lives only in memory: the writer appends
 * an entry for each chunk it packs and makes it visible to readers once the
 * chunk is synced to disk. When the segment is sealed the writer stores the
 * directory as its last record, and from then on it can be dropped from
 * memory and read back (one read, zstd) when a reader or a reclaim needs it.
 *
 * The cache holds directories by (volume, generation) with a reference count;
 * open generations are pinned, sealed ones are evicted least recently used
 * once the cache is over its byte budget.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

#define DC_BUCKETS 4096

struct dircache {
	pthread_mutex_t lock;
	struct segdir *bucket[DC_BUCKETS];
	struct segdir lru;            /* sentinel: lru.next is the oldest */
	uint64_t bytes, max_bytes;
};

static unsigned dc_hash(uint16_t vol, uint32_t gen)
{
	return (unsigned)((vol * 2654435761u) ^ (gen * 40503u)) % DC_BUCKETS;
}

int dc_create(uint64_t max_bytes, struct dircache **out)
{
	struct dircache *dc = calloc(1, sizeof *dc);
	if (!dc)
		return -ENOMEM;
	pthread_mutex_init(&dc->lock, NULL);
	dc->lru.lru_next = dc->lru.lru_prev = &dc->lru;
	dc->max_bytes = max_bytes;
	*out = dc;
	return 0;
}

static void segdir_free(struct segdir *d)
{
	pthread_mutex_destroy(&d->lock);
	free(d->e);
	free(d);
}

void dc_destroy(struct dircache *dc)
{
	if (!dc)
		return;
	for (int i = 0; i < DC_BUCKETS; i++)
		for (struct segdir *d = dc->bucket[i], *next; d; d = next) {
			next = d->hnext;
			segdir_free(d);
		}
	pthread_mutex_destroy(&dc->lock);
	free(dc);
}

static struct segdir *find_locked(struct dircache *dc, uint16_t vol, uint32_t gen)
{
	for (struct segdir *d = dc->bucket[dc_hash(vol, gen)]; d; d = d->hnext)
		if (d->vol == vol && d->gen == gen)
			return d;
	return NULL;
}

static void lru_unlink(struct segdir *d)
{
	if (d->lru_next) {
		d->lru_prev->lru_next = d->lru_next;
		d->lru_next->lru_prev = d->lru_prev;
		d->lru_next = d->lru_prev = NULL;
	}
}

static void lru_push(struct dircache *dc, struct segdir *d)
{
	d->lru_prev = dc->lru.lru_prev;
	d->lru_next = &dc->lru;
	dc->lru.lru_prev->lru_next = d;
	dc->lru.lru_prev = d;
}

static void unhash_locked(struct dircache *dc, struct segdir *d)
{
	struct segdir **pp = &dc->bucket[dc_hash(d->vol, d->gen)];
	while (*pp && *pp != d)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = d->hnext;
	lru_unlink(d);
	dc->bytes -= d->bytes;
}

/* Evicts unreferenced, unpinned directories until under budget. */
static void evict_locked(struct dircache *dc)
{
	struct segdir *d = dc->lru.lru_next;
	while (dc->bytes > dc->max_bytes && d != &dc->lru) {
		struct segdir *next = d->lru_next;
		if (d->refs == 0 && !d->pinned) {
			unhash_locked(dc, d);
			segdir_free(d);
		}
		d = next;
	}
}

static struct segdir *segdir_new(uint16_t vol, uint32_t gen)
{
	struct segdir *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->vol = vol;
	d->gen = gen;
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

static void insert_locked(struct dircache *dc, struct segdir *d)
{
	unsigned h = dc_hash(d->vol, d->gen);
	d->hnext = dc->bucket[h];
	dc->bucket[h] = d;
	dc->bytes += d->bytes;
	lru_push(dc, d);
}

struct segdir *dc_open_gen(struct dircache *dc, uint16_t vol, uint32_t gen)
{
	struct segdir *d = segdir_new(vol, gen);
	if (!d)
		return NULL;
	d->pinned = true;
	d->refs = 1;                 /* the writer's reference */
	pthread_mutex_lock(&dc->lock);
	struct segdir *old = find_locked(dc, vol, gen);
	if (old) {                   /* stale entry of a reclaimed generation */
		unhash_locked(dc, old);
		if (old->refs == 0)
			segdir_free(old);
	}
	insert_locked(dc, d);
	pthread_mutex_unlock(&dc->lock);
	return d;
}

void segdir_append(struct segdir *d, const struct dir_entry *e)
{
	pthread_mutex_lock(&d->lock);
	if (d->n == d->cap) {
		uint32_t cap = d->cap ? d->cap * 2 : 256;
		struct dir_entry *ne = realloc(d->e, cap * sizeof *ne);
		if (!ne) {
			pthread_mutex_unlock(&d->lock);
			abort();     /* cannot index a chunk already on disk */
		}
		d->e = ne;
		d->cap = cap;
	}
	d->e[d->n++] = *e;
	pthread_mutex_unlock(&d->lock);
}

/* Reads a sealed generation's directory record from its segment. */
static int load_from_disk(struct stg *stg, uint16_t vol, uint32_t gen,
                          struct segdir **out)
{
	struct vol *v = NULL;
	for (int i = 0; i < stg->nvols; i++)
		if (stg->vols[i].id == vol && stg->vols[i].seg_fd)
			v = &stg->vols[i];
	if (!v)
		return -ENODEV;
	struct idx_segment s;
	int err = idx_lookup_segment(stg->ix, vol, gen, &s);
	if (err == MDB_NOTFOUND)
		return STG_EGONE;
	if (err)
		return err;
	if (s.state != SEG_SEALED || s.dir_len < sizeof(struct rec_header) ||
	    s.slot >= v->hdr.segment_count)
		return STG_EGONE;   /* open generation no longer in memory: retry */
	void *buf = malloc(s.dir_len);
	if (!buf)
		return -ENOMEM;
	ssize_t got = pread(v->seg_fd[s.slot], buf, s.dir_len, (off_t)s.dir_off);
	struct segdir *d = NULL;
	if (got != (ssize_t)s.dir_len) {
		err = got < 0 ? -errno : STG_ECORRUPT;
	} else if (!(d = segdir_new(vol, gen))) {
		err = -ENOMEM;
	} else {
		err = dir_record_decode(buf, s.dir_len, gen, &d->e, &d->n);
	}
	free(buf);
	if (err) {
		if (d)
			segdir_free(d);
		return err;
	}
	d->cap = d->visible = d->n;
	d->sorted = true;
	d->bytes = sizeof *d + (size_t)d->n * sizeof *d->e;
	*out = d;
	return 0;
}

int dc_get(struct stg *stg, uint16_t vol, uint32_t gen, struct segdir **out)
{
	struct dircache *dc = stg->dc;
	pthread_mutex_lock(&dc->lock);
	struct segdir *d = find_locked(dc, vol, gen);
	if (d) {
		d->refs++;
		lru_unlink(d);
		lru_push(dc, d);
		pthread_mutex_unlock(&dc->lock);
		*out = d;
		return 0;
	}
	pthread_mutex_unlock(&dc->lock);

	int err = load_from_disk(stg, vol, gen, &d);
	if (err)
		return err;
	pthread_mutex_lock(&dc->lock);
	struct segdir *raced = find_locked(dc, vol, gen);
	if (raced) {
		segdir_free(d);
		d = raced;
	} else {
		insert_locked(dc, d);
	}
	d->refs++;
	evict_locked(dc);
	pthread_mutex_unlock(&dc->lock);
	*out = d;
	return 0;
}

void dc_put(struct dircache *dc, struct segdir *d)
{
	pthread_mutex_lock(&dc->lock);
	d->refs--;
	bool orphan = d->refs == 0 && !d->lru_next;   /* dropped while in use */
	pthread_mutex_unlock(&dc->lock);
	if (orphan)
		segdir_free(d);
}

/* Called by the index thread once the SEAL is committed: the directory is
 * complete, so sort it for binary search and let the cache evict it. */
void dc_seal(struct dircache *dc, struct segdir *d)
{
	pthread_mutex_lock(&d->lock);
	qsort(d->e, d->visible, sizeof *d->e, dir_entry_cmp);
	d->sorted = true;
	size_t bytes = sizeof *d + (size_t)d->cap * sizeof *d->e;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&dc->lock);
	if (d->lru_next) {
		dc->bytes += bytes - d->bytes;
		d->bytes = bytes;
	}
	d->pinned = false;
	evict_locked(dc);
	pthread_mutex_unlock(&dc->lock);
}

void dc_drop(struct dircache *dc, uint16_t vol, uint32_t gen)
{
	pthread_mutex_lock(&dc->lock);
	struct segdir *d = find_locked(dc, vol, gen);
	bool free_it = false;
	if (d) {
		unhash_locked(dc, d);
		free_it = d->refs == 0;
	}
	pthread_mutex_unlock(&dc->lock);
	if (free_it)
		segdir_free(d);
}

/* Binary search for the first entry >= (cam, t) in a sorted directory. */
static uint32_t lower_bound(const struct dir_entry *e, uint32_t n, uint32_t cam, int64_t t)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (e[mid].camera_id < cam || (e[mid].camera_id == cam && e[mid].start_us < t))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool kind_is(const struct dir_entry *e, uint16_t kind)
{
	return (e->flags & REC_RELOCATED) == kind;
}

int segdir_last_before(struct segdir *d, uint32_t cam, int64_t t, uint16_t kind,
                       struct dir_entry *out)
{
	int found = 0;
	pthread_mutex_lock(&d->lock);
	if (d->sorted) {
		/* entries of cam with start <= t end just before lower_bound(t+1) */
		uint32_t i = lower_bound(d->e, d->visible, cam, t == INT64_MAX ? t : t + 1);
		if (t == INT64_MAX)
			while (i < d->visible && d->e[i].camera_id == cam)
				i++;
		while (i > 0 && d->e[i - 1].camera_id == cam && !found) {
			if (kind_is(&d->e[i - 1], kind))
				*out = d->e[i - 1], found = 1;
			i--;
		}
	} else {
		for (uint32_t i = 0; i < d->visible; i++) {
			const struct dir_entry *e = &d->e[i];
			if (e->camera_id == cam && e->start_us <= t && kind_is(e, kind) &&
			    (!found || e->start_us > out->start_us))
				*out = *e, found = 1;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return found;
}

int segdir_first_after(struct segdir *d, uint32_t cam, int64_t t, uint16_t kind,
                       struct dir_entry *out)
{
	int found = 0;
	pthread_mutex_lock(&d->lock);
	if (d->sorted) {
		uint32_t i = lower_bound(d->e, d->visible, cam,
		                         t == INT64_MAX ? t : t + 1);
		for (; i < d->visible && d->e[i].camera_id == cam && !found; i++)
			if ((t == INT64_MIN || d->e[i].start_us > t) && kind_is(&d->e[i], kind))
				*out = d->e[i], found = 1;
	} else {
		for (uint32_t i = 0; i < d->visible; i++) {
			const struct dir_entry *e = &d->e[i];
			if (e->camera_id == cam && (t == INT64_MIN || e->start_us > t) &&
			    kind_is(e, kind) && (!found || e->start_us < out->start_us))
				*out = *e, found = 1;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return found;
}

/* Is (cam, start) in `rm` (sorted by camera, then start)? */
static bool listed(const struct dir_entry *rm, uint32_t n, uint32_t cam, int64_t start)
{
	uint32_t lo = lower_bound(rm, n, cam, start);
	return lo < n && rm[lo].camera_id == cam && rm[lo].start_us == start;
}

uint32_t segdir_remove(struct segdir *d, const struct dir_entry *rm, uint32_t n)
{
	uint32_t removed = 0;
	pthread_mutex_lock(&d->lock);
	uint32_t w = 0;
	for (uint32_t i = 0; i < d->n; i++) {
		if (i < d->visible && listed(rm, n, d->e[i].camera_id, d->e[i].start_us)) {
			removed++;
			continue;
		}
		d->e[w++] = d->e[i];
	}
	d->n = w;
	d->visible -= removed;
	pthread_mutex_unlock(&d->lock);
	return removed;
}

void segdir_sum(struct segdir *d, uint32_t cam, int64_t t0, int64_t t1,
                struct stg_estimate *acc)
{
	pthread_mutex_lock(&d->lock);
	uint32_t i = 0;
	if (d->sorted) {
		/* the chunk starting before t0 may still overlap it */
		i = lower_bound(d->e, d->visible, cam, t0);
		if (i > 0 && d->e[i - 1].camera_id == cam)
			i--;
	}
	for (; i < d->visible; i++) {
		const struct dir_entry *e = &d->e[i];
		if (d->sorted && (e->camera_id != cam || e->start_us >= t1))
			break;
		if (e->camera_id != cam || e->start_us >= t1 || e->end_us <= t0)
			continue;
		uint64_t overhead = sizeof(struct rec_header) +
		                    (uint64_t)e->frames * sizeof(struct frame_entry);
		acc->bytes += e->length > overhead ? e->length - overhead : 0;
		acc->frames += e->frames;
		acc->chunks++;
	}
	pthread_mutex_unlock(&d->lock);
}

int segdir_copy(struct segdir *d, struct dir_entry **out, uint32_t *n)
{
	pthread_mutex_lock(&d->lock);
	*n = d->visible;
	*out = malloc((*n ? *n : 1) * sizeof **out);
	if (*out && *n)
		memcpy(*out, d->e, *n * sizeof **out);
	pthread_mutex_unlock(&d->lock);
	if (!*out)
		*n = 0;
	return *out ? 0 : -ENOMEM;
}
