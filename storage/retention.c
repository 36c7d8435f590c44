/*
 * retention.c - retention classes, legal holds, maximum retention, shares
 * of capacity, purges, alarms and the capacity forecast.
 *
 * DESIGN
 * Segments mix the chunks of every camera, so retention works at two
 * granularities:
 *  - Chunks, for removal before the ring gets there: maximum retention
 *    (class max_us), shares and purges take a camera's chunks out of its
 *    ranges (idx_cut) and overwrite their records with zeros on disk, so
 *    the bytes are gone, not only unindexed. A sealed segment's directory
 *    is written again without them; the open segment's directory loses
 *    them in memory (its record on disk, written at seal, may still list
 *    them: offsets and times of zeroed bytes, never video).
 *  - Segments, for space: the ring still reuses whole segments, but
 *    relocate.c first copies forward the chunks of the victim that must
 *    outlive it (held ones; and ones younger than their class's promised
 *    minimum, youngest first, while the copies stay under half a segment),
 *    and skips a victim whose held chunks are not copied yet.
 *
 * Shares. A class with share_pct keeps at most share_pct% of C (see the
 * forecast below) in unheld footage. Each sweep (every
 * retention_interval_ms, after maximum retention, in a transaction of its
 * own) sums the class's bytes from usage.c's per-camera counts (kept as
 * chunks enter and leave the index, so that a sweep walks an array, not
 * the disks), leaves out what holds keep (held footage counts toward the
 * holds, which C leaves out already, and is never removed), and removes
 * the oldest unheld chunks of a class above its share until it is at or
 * under it: whole chunks, oldest first across its cameras, found by
 * walking segments oldest first across volumes (at most TRIM_SEGMENTS a
 * sweep, from where the last walk left the class's footage), removed as
 * maximum retention removes them. A chunk copied forward (a hold's or a
 * promise's copy) lies in a younger segment than its time says: it goes
 * when the walk gets there.
 *  - The share wins over the class's own promise: it is the operator's
 *    explicit cap. Promised footage it removes puts the class in alarm
 *    (the alarm of the ring's losses), and while a class is held to its
 *    share (above it at a sweep, until it is under 90% of it) relocation
 *    does not copy its promised chunks: a copy would only make younger
 *    footage of the class go, and copying every time round speeds the
 *    ring up for every class.
 *  - Space removed for a share (or a maximum) is zeroed but stays in its
 *    segment until the ring reuses the segment: other classes do not gain
 *    it. Giving it to them means copying their chunks forward every time
 *    round; tried, that doubled the disk writes and left holes in their
 *    footage where the half-segment copy budget ran out.
 *  - Shares may add up to more than 100 (logged; the configuration file
 *    refuses it): each is held on its own.
 *
 * Ordering of a purge or an expiry (index thread, one transaction):
 *  1. check holds (a purge that touches held footage changes nothing);
 *  2. find the chunks through the camera's ranges and segment directories;
 *  3. overwrite them with zeros and fdatasync;
 *  4. cut them out of the ranges, update the segment records (and rewrite
 *     sealed directories), commit.
 * A crash between 3 and 4 leaves index entries that point at zeros: readers
 * skip them as damaged and fsck reports them; footage never comes back.
 *
 * Invariants kept here: a held chunk is never zeroed nor cut (by expiry,
 * shares or purges); a purge under a hold changes nothing; every decision
 * reads stg_now().
 *
 * State: classes, camera classes and holds are in the index (format.h,
 * index version 2) and in memory (struct retention, guarded by its mutex:
 * the index thread changes it, stats readers read it). Ingest rates are
 * kept in memory only, per camera, over two windows of rate_window_s of
 * footage time (a sliding-window estimate). The shares' work space
 * (struct shares) is the index thread's; readers see the class bytes it
 * publishes after each sweep.
 *
 * Forecast: capacity C = per volume (segments - reserve - 1/2 open) x
 * segment size, less what holds keep. Each class k with ingest rate R_k
 * gets a retention d_k(L) = clamp(L, min_k, max'_k) (max'_k is max_k,
 * lowered to share_k x C / R_k) for the level L where the ring is full:
 * sum R_k max(L, min(min_k, max'_k)) = C. A class cut below the level by
 * its maximum or share still fills the ring up to the level (what is
 * removed early is zeroed space until the ring reuses its segment), so L
 * is the ring's age and the other classes do not gain from the cut. If
 * even the promises do not fit, d_k = min(min_k, L) with sum R_k d_k = C:
 * the oldest footage goes first. That is the steady state of the reclaim
 * order above.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "idarray.h"
#include "internal.h"

#define MAX_CLASSES 64
#define FOREVER_US (100LL * 365 * 86400 * 1000000)

struct ret_class {
	char name[STG_CLASS_NAME_MAX];
	struct idx_class c;
	bool alarm;
	int64_t alarm_since;
	uint64_t bytes;            /* unheld footage at the last sweep */
	uint64_t share_bytes;      /* what its share allowed then, 0 none */
	bool at_share;             /* held to its share (sweep, index thread) */
};

struct ret_cam {
	uint32_t id;
	int cls;                   /* index in classes, -1 default */
	int64_t bucket;            /* footage time / window of bytes[1] */
	uint64_t bytes[2];         /* previous and current window */
};

struct ret_hold {
	uint64_t id;
	struct idx_hold h;
	uint32_t cams[STG_HOLD_MAX_CAMERAS];
	uint64_t bytes;
};

struct retention {
	pthread_mutex_t lock;
	struct ret_class cls[MAX_CLASSES];
	int ncls;
	struct ret_class dflt;     /* used while STG_DEFAULT_CLASS is undefined */
	struct ret_cam *cams;      /* sorted by id */
	uint32_t ncams, cams_cap;
	struct ret_hold *holds;
	int nholds;
	uint64_t next_hold;
	uint64_t expired, purged, trimmed;
	bool trim_reset;           /* classes or holds changed: shares measure
	                              holds again and walk from the start */
	struct shares *shares;     /* the sweep's work space (index thread) */
};

/* ---- lookups ----------------------------------------------------------------- */

static int class_find(struct retention *r, const char *name)
{
	for (int i = 0; i < r->ncls; i++)
		if (!strcmp(r->cls[i].name, name))
			return i;
	return -1;
}

static struct ret_cam *cam_find(struct retention *r, uint32_t id, bool create)
{
	void *items = r->cams;
	bool created;
	struct ret_cam *c = idarray_get(&items, &r->ncams, &r->cams_cap, sizeof *c, id, create,
	                                &created);
	r->cams = items;
	if (created)
		c->cls = class_find(r, STG_DEFAULT_CLASS);
	return c;
}

const struct ret_class *ret_class_of(struct retention *r, uint32_t cam)
{
	struct ret_cam *c = cam_find(r, cam, false);
	int i = c ? c->cls : class_find(r, STG_DEFAULT_CLASS);
	return i >= 0 ? &r->cls[i] : &r->dflt;
}

int64_t ret_class_min(const struct ret_class *c)
{
	/* the share wins: copies would only make its oldest footage go */
	return c->at_share ? 0 : c->c.min_us;
}


static bool hold_active(const struct ret_hold *h, int64_t now)
{
	return !h->h.expires_us || h->h.expires_us > now;
}

static bool hold_covers_cam(const struct ret_hold *h, uint32_t cam)
{
	for (uint32_t i = 0; i < h->h.camera_count; i++)
		if (h->cams[i] == cam)
			return true;
	return false;
}

bool ret_held(struct retention *r, uint32_t cam, int64_t start, int64_t end, int64_t now)
{
	for (int i = 0; i < r->nholds; i++) {
		const struct ret_hold *h = &r->holds[i];
		if (hold_active(h, now) && start < h->h.end_us && end > h->h.start_us &&
		    hold_covers_cam(h, cam))
			return true;
	}
	return false;
}

bool ret_relocation_needed(struct retention *r)
{
	if (r->nholds)
		return true;
	for (int i = 0; i < r->ncls; i++)
		if (r->cls[i].c.min_us)
			return true;
	return false;
}

struct vol *vol_by_index_id(struct stg *stg, uint16_t id)
{
	for (int i = 0; i < stg->nvols; i++)
		if (stg->vols[i].id == id && stg->vols[i].seg_fd)
			return &stg->vols[i];
	return NULL;
}

/* ---- loading ----------------------------------------------------------------- */

/* Loaders: one record of the index each (idx_foreach); malformed records
 * are skipped. */
static int load_class(void *user, const MDB_val *k, const MDB_val *d)
{
	struct retention *r = user;
	if (r->ncls >= MAX_CLASSES)
		return MDB_NOTFOUND;   /* no room for more: stop, as at the end */
	struct ret_class *rc = &r->cls[r->ncls];
	if (k->mv_size >= STG_CLASS_NAME_MAX || d->mv_size != sizeof rc->c)
		return 0;
	memset(rc, 0, sizeof *rc);
	memcpy(rc->name, k->mv_data, k->mv_size);
	memcpy(&rc->c, d->mv_data, sizeof rc->c);
	r->ncls++;
	return 0;
}

static int load_camclass(void *user, const MDB_val *k, const MDB_val *d)
{
	struct retention *r = user;
	char name[STG_CLASS_NAME_MAX] = { 0 };
	const uint8_t *kb = k->mv_data;
	if (k->mv_size != 4 || d->mv_size >= sizeof name)
		return 0;
	memcpy(name, d->mv_data, d->mv_size);
	struct ret_cam *rc = cam_find(r, (uint32_t)kb[0] << 24 | kb[1] << 16 | kb[2] << 8 | kb[3], true);
	if (!rc)
		return -ENOMEM;
	rc->cls = class_find(r, name);
	return 0;
}

static void hold_key(uint8_t kb[8], uint64_t id)
{
	for (int i = 7; i >= 0; i--, id >>= 8)
		kb[i] = (uint8_t)id;
}

static int load_hold(void *user, const MDB_val *k, const MDB_val *d)
{
	struct retention *r = user;
	struct ret_hold h = { 0 };
	if (k->mv_size != 8 || d->mv_size < sizeof h.h)
		return 0;
	for (int i = 0; i < 8; i++)
		h.id = h.id << 8 | ((const uint8_t *)k->mv_data)[i];
	memcpy(&h.h, d->mv_data, sizeof h.h);
	if (h.h.camera_count > STG_HOLD_MAX_CAMERAS ||
	    d->mv_size != sizeof h.h + h.h.camera_count * sizeof(uint32_t))
		return 0;
	memcpy(h.cams, (const uint8_t *)d->mv_data + sizeof h.h, h.h.camera_count * sizeof(uint32_t));
	struct ret_hold *n = realloc(r->holds, (size_t)(r->nholds + 1) * sizeof *n);
	if (!n)
		return -ENOMEM;
	r->holds = n;
	r->holds[r->nholds++] = h;
	if (h.id >= r->next_hold)
		r->next_hold = h.id + 1;
	return 0;
}

/* with the shares, below */
static struct shares *shares_new(void);
static void shares_free(struct shares *sh);

int ret_open(struct stg *stg)
{
	struct retention *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	snprintf(r->dflt.name, sizeof r->dflt.name, "%s", STG_DEFAULT_CLASS);
	stg->ret = r;
	if (evac_init(stg) || use_init(stg) || !(r->shares = shares_new()))
		return -ENOMEM;
	MDB_txn *t;
	int err = idx_read_begin(stg->ix, &t);
	if (err)
		return err;
	r->next_hold = 1;
	if (!(err = idx_foreach(t, idx_db_classes(stg->ix), load_class, r)) &&
	    !(err = idx_foreach(t, idx_db_camclass(stg->ix), load_camclass, r)))
		err = idx_foreach(t, idx_db_holds(stg->ix), load_hold, r);
	idx_read_end(stg->ix, t);
	if (!err)
		LOG_INFO("event=retention_loaded classes=%d cameras=%u holds=%d", r->ncls,
		         r->ncams, r->nholds);
	return err;
}

void ret_close(struct stg *stg)
{
	struct retention *r = stg->ret;
	if (!r)
		return;
	evac_free(stg);
	use_free(stg);
	shares_free(r->shares);
	pthread_mutex_destroy(&r->lock);
	free(r->cams);
	free(r->holds);
	free(r);
	stg->ret = NULL;
}

/* ---- classes ----------------------------------------------------------------- */

static bool class_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len >= STG_CLASS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') ||
		      n[i] == '_' || n[i] == '-'))
			return false;
	return true;
}

struct class_arg {
	struct stg_class c;
	struct idx_class rec;
};

static int class_set_fn(MDB_txn *t, struct stg *stg, void *arg)
{
	struct class_arg *a = arg;
	MDB_val k = { strlen(a->c.name), a->c.name }, d;
	memset(&a->rec, 0, sizeof a->rec);
	if (mdb_get(t, idx_db_classes(stg->ix), &k, &d) == 0 && d.mv_size == sizeof a->rec)
		memcpy(&a->rec, d.mv_data, sizeof a->rec);
	a->rec.min_us = a->c.min_us;
	a->rec.max_us = a->c.max_us;
	a->rec.share_pct = a->c.share_pct;
	d = (MDB_val){ sizeof a->rec, &a->rec };
	return mdb_put(t, idx_db_classes(stg->ix), &k, &d, 0);
}

static void class_set_after(struct stg *stg, void *arg)
{
	struct class_arg *a = arg;
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	int i = class_find(r, a->c.name);
	if (i < 0 && r->ncls < MAX_CLASSES) {
		i = r->ncls++;
		memset(&r->cls[i], 0, sizeof r->cls[i]);
		memcpy(r->cls[i].name, a->c.name, sizeof r->cls[i].name);
		if (!strcmp(a->c.name, STG_DEFAULT_CLASS))   /* cameras without a class */
			for (uint32_t j = 0; j < r->ncams; j++)
				if (r->cams[j].cls < 0)
					r->cams[j].cls = i;
	}
	if (i >= 0)
		r->cls[i].c = a->rec;
	uint32_t shares = 0;
	for (int j = 0; j < r->ncls; j++)
		shares += r->cls[j].c.share_pct;
	r->trim_reset = true;
	pthread_mutex_unlock(&r->lock);
	/* each share is held on its own; together they cannot all be full */
	if (shares > 100)
		LOG_WARN("event=class_shares_over_100 class=%s total_pct=%u", a->c.name, shares);
}

int stg_class_set(struct stg *stg, const struct stg_class *c)
{
	if (!class_name_ok(c->name) || c->min_us < 0 || c->max_us < 0 ||
	    (c->max_us && c->min_us > c->max_us) || c->share_pct > 100)
		return -EINVAL;
	struct class_arg a = { .c = *c };
	pthread_mutex_lock(&stg->ret->lock);
	bool full = class_find(stg->ret, c->name) < 0 && stg->ret->ncls >= MAX_CLASSES;
	pthread_mutex_unlock(&stg->ret->lock);
	if (full)
		return -ENOSPC;
	return indexer_call(stg, class_set_fn, class_set_after, &a);
}

int stg_class_list(struct stg *stg, struct stg_class *out, int max)
{
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	int n = r->ncls;
	for (int i = 0; i < n && i < max; i++) {
		memset(&out[i], 0, sizeof out[i]);
		memcpy(out[i].name, r->cls[i].name, sizeof out[i].name);
		out[i].min_us = r->cls[i].c.min_us;
		out[i].max_us = r->cls[i].c.max_us;
		out[i].share_pct = r->cls[i].c.share_pct;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

struct camclass_arg {
	uint32_t cam;
	char name[STG_CLASS_NAME_MAX];
};

static int camclass_fn(MDB_txn *t, struct stg *stg, void *arg)
{
	struct camclass_arg *a = arg;
	uint8_t kb[4] = { a->cam >> 24, a->cam >> 16, a->cam >> 8, a->cam };
	MDB_val k = { 4, kb }, d = { strlen(a->name), a->name };
	if (!a->name[0]) {
		int err = mdb_del(t, idx_db_camclass(stg->ix), &k, NULL);
		return err == MDB_NOTFOUND ? 0 : err;
	}
	return mdb_put(t, idx_db_camclass(stg->ix), &k, &d, 0);
}

static void camclass_after(struct stg *stg, void *arg)
{
	struct camclass_arg *a = arg;
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	struct ret_cam *c = cam_find(r, a->cam, true);
	if (c)
		c->cls = class_find(r, a->name[0] ? a->name : STG_DEFAULT_CLASS);
	r->trim_reset = true;
	pthread_mutex_unlock(&r->lock);
	if (!c)   /* in the index: applied at the next start */
		LOG_ERR("event=camera_class_not_in_memory camera=%u", a->cam);
}

int stg_camera_set_class(struct stg *stg, uint32_t camera_id, const char *name)
{
	struct camclass_arg a = { .cam = camera_id };
	if (name && strcmp(name, STG_DEFAULT_CLASS))
		snprintf(a.name, sizeof a.name, "%s", name);
	pthread_mutex_lock(&stg->ret->lock);
	bool known = !a.name[0] || class_find(stg->ret, a.name) >= 0;
	/* unchanged (a camera never given a class is in the default one):
	 * no commit, so a daemon may set every camera's class at each start */
	struct ret_cam *c = cam_find(stg->ret, camera_id, false);
	int dflt = class_find(stg->ret, STG_DEFAULT_CLASS);
	bool same = (c ? c->cls : dflt) == (a.name[0] ? class_find(stg->ret, a.name) : dflt);
	pthread_mutex_unlock(&stg->ret->lock);
	if (!known)
		return -ENOENT;
	if (same)
		return 0;
	return indexer_call(stg, camclass_fn, camclass_after, &a);
}

/* ---- ingest rates ------------------------------------------------------------ */

static int64_t rate_window_us(const struct stg *stg)
{
	return (int64_t)stg->cfg.rate_window_s * 1000000;
}

void ret_note_chunk(struct stg *stg, const struct dir_entry *e)
{
	struct retention *r = stg->ret;
	int64_t w = rate_window_us(stg), b = e->end_us / w;
	pthread_mutex_lock(&r->lock);
	struct ret_cam *c = cam_find(r, e->camera_id, true);
	if (c) {
		if (b == c->bucket) {
			c->bytes[1] += e->length;
		} else if (b == c->bucket - 1) {
			c->bytes[0] += e->length;
		} else if (b > c->bucket) {
			c->bytes[0] = b == c->bucket + 1 ? c->bytes[1] : 0;
			c->bytes[1] = e->length;
			c->bucket = b;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* Bytes per second of camera c over the window ending now. */
static double cam_rate(const struct stg *stg, const struct ret_cam *c, int64_t now)
{
	int64_t w = rate_window_us(stg), b = now / w;
	double frac = (double)(now % w) / (double)w;
	double bytes = 0;
	if (b == c->bucket)
		bytes = (double)c->bytes[0] * (1 - frac) + (double)c->bytes[1];
	else if (b == c->bucket + 1)
		bytes = (double)c->bytes[1] * (1 - frac);
	return bytes / ((double)w / 1e6);
}

/* ---- alarms ------------------------------------------------------------------ */

static int class_put(MDB_txn *t, struct stg *stg, const struct ret_class *c)
{
	MDB_val k = { strlen(c->name), (void *)c->name }, d = { sizeof c->c, (void *)&c->c };
	return mdb_put(t, idx_db_classes(stg->ix), &k, &d, 0);
}

void ret_short(struct stg *stg, MDB_txn *t, uint32_t cam, const struct dir_entry *e, int64_t now)
{
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	struct ret_cam *rc = cam_find(r, cam, false);
	int i = rc ? rc->cls : class_find(r, STG_DEFAULT_CLASS);
	struct ret_class *c = i >= 0 ? &r->cls[i] : NULL;
	if (!c || !c->c.min_us || now - e->start_us >= c->c.min_us) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	if (e->end_us > c->c.short_until_us)
		c->c.short_until_us = e->end_us;
	bool raised = !c->alarm;
	if (raised) {
		c->alarm = true;
		c->alarm_since = now;
	}
	struct ret_class copy = *c;
	pthread_mutex_unlock(&r->lock);
	if (class_put(t, stg, &copy))
		LOG_WARN("event=retention_alarm_not_saved class=%s", copy.name);
	if (raised)
		LOG_WARN("event=retention_alarm_raised class=%s promised_days=%.2f retained_days=%.2f camera=%u",
		         copy.name, copy.c.min_us / 864e8, (now - e->start_us) / 864e8, cam);
}

/* Clears the alarms of classes that hold their promise again; raises the
 * alarm of a class whose saved shortfall is still recent (after a restart). */
static void alarms_update(struct stg *stg, int64_t now)
{
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->ncls; i++) {
		struct ret_class *c = &r->cls[i];
		bool short_now = c->c.min_us && c->c.short_until_us &&
		                 now - c->c.short_until_us < c->c.min_us;
		if (c->alarm && !short_now) {
			c->alarm = false;
			LOG_INFO("event=retention_alarm_cleared class=%s promised_days=%.2f",
			         c->name, c->c.min_us / 864e8);
		} else if (!c->alarm && short_now) {
			c->alarm = true;
			c->alarm_since = now;
			LOG_WARN("event=retention_alarm_raised class=%s promised_days=%.2f retained_days=%.2f",
			         c->name, c->c.min_us / 864e8, (now - c->c.short_until_us) / 864e8);
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* ---- finding and removing chunks ------------------------------------------- */

struct locv {
	struct loc_entry *v;
	size_t n, cap;
	uint16_t vol;
};

static int locv_push(struct locv *l, const struct dir_entry *e, uint32_t gen)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct loc_entry *n = realloc(l->v, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		l->v = n;
		l->cap = cap;
	}
	l->v[l->n++] = (struct loc_entry){ *e, gen };
	return 0;
}

/* Which chunks a walk over a camera's ranges collects. */
struct pick {
	int64_t t0, t1;            /* window */
	bool ending_by_t1;         /* expiry: only chunks that end by t1 */
	int64_t now;
	bool skip_held;
	uint16_t vol;              /* only this volume (chunks of one call share it) */
};

static bool picked(struct retention *r, const struct pick *p, const struct dir_entry *e)
{
	bool in = p->ending_by_t1 ? e->end_us <= p->t1 : e->start_us < p->t1 && e->end_us > p->t0;
	return in && !(p->skip_held && ret_held(r, e->camera_id, e->start_us, e->end_us, p->now));
}

/* Collects the chunks of range (rstart, r) of cam that `p` picks. */
static int collect_range(MDB_txn *t, struct stg *stg, uint32_t cam, int64_t rstart,
                         const struct idx_range *rg, const struct pick *p, struct locv *out)
{
	uint16_t kind = rg->flags & RANGE_RELOCATED ? REC_RELOCATED : 0;
	for (uint32_t g = rg->first_gen; g <= rg->last_gen; g++) {
		struct idx_segment s;
		int err = idx_get_segment(t, stg->ix, rg->vol, g, &s);
		if (err == MDB_NOTFOUND)
			continue;
		if (err)
			return err;
		if (!kind && seg_has_times(&s) && s.t_max <= p->t0 && !p->ending_by_t1)
			continue;
		if (!kind && seg_has_times(&s) && s.t_min >= p->t1)
			break;
		struct segdir *d;
		err = dc_get(stg, rg->vol, g, &d);
		if (err == STG_EGONE || err == MDB_NOTFOUND)
			continue;
		if (err)
			return err;
		pthread_mutex_lock(&d->lock);
		for (uint32_t i = 0; i < d->visible && !err; i++) {
			const struct dir_entry *e = &d->e[i];
			if (e->camera_id == cam && (e->flags & REC_RELOCATED) == kind &&
			    e->start_us >= rstart && e->start_us < rg->end_us &&
			    picked(stg->ret, p, e))
				err = locv_push(out, e, g);
		}
		pthread_mutex_unlock(&d->lock);
		dc_put(stg->dc, d);
		if (err)
			return err;
	}
	return 0;
}

/* Collects every chunk of cam that `p` picks, on volume p->vol. */
static int collect(MDB_txn *t, struct stg *stg, uint32_t cam, const struct pick *p,
                   struct locv *out)
{
	MDB_cursor *c;
	int err = mdb_cursor_open(t, idx_db_ranges(stg->ix), &c);
	if (err)
		return err;
	struct range_key rk;
	range_key_make(&rk, cam, INT64_MIN);
	MDB_val k = { sizeof rk, &rk }, d;
	for (err = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !err;
	     err = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		uint32_t kc;
		int64_t start;
		range_key_parse(k.mv_data, &kc, &start);
		if (kc != cam || start >= p->t1)
			break;
		struct idx_range rg;
		memcpy(&rg, d.mv_data, sizeof rg);
		if (rg.end_us <= p->t0 || rg.vol != p->vol)
			continue;
		err = collect_range(t, stg, cam, start, &rg, p, out);
		if (err)
			break;
	}
	mdb_cursor_close(c);
	if (err == MDB_NOTFOUND)
		err = 0;
	if (!err && out->n)
		qsort(out->v, out->n, sizeof *out->v, loc_entry_cmp);
	return err;
}

int ret_zero_chunks(struct stg *stg, struct vol *v, const struct loc_entry *c, size_t n)
{
	(void)stg;
	uint32_t maxlen = 0;
	for (size_t i = 0; i < n; i++)
		if (c[i].e.length > maxlen)
			maxlen = c[i].e.length;
	uint8_t *zero = calloc(1, maxlen ? maxlen : 1);
	if (!zero)
		return -ENOMEM;
	int err = 0;
	for (size_t i = 0; i < n && !err;) {
		/* one open and one sync per generation */
		uint32_t gen = c[i].gen, slot = UINT32_MAX;
		pthread_mutex_lock(&v->lock);
		for (uint32_t s = 0; s < v->hdr.segment_count; s++)
			if (v->slot_gen[s] == gen)
				slot = s;
		pthread_mutex_unlock(&v->lock);
		size_t j = i;
		if (slot == UINT32_MAX) {       /* reused since: its bytes are gone */
			while (j < n && c[j].gen == gen)
				j++;
			i = j;
			continue;
		}
		int fd = vol_open_segment_buffered(v, slot);
		if (fd < 0) {
			err = fd;
			break;
		}
		for (; j < n && c[j].gen == gen && !err; j++)
			if (pwrite(fd, zero, c[j].e.length, (off_t)c[j].e.offset8 * 8) !=
			    (ssize_t)c[j].e.length)
				err = errno ? -errno : -EIO;
		if (!err && fdatasync(fd))
			err = -errno;
		close(fd);
		i = j;
	}
	free(zero);
	return err;
}

static int gen_cmp(const void *a, const void *b)
{
	const struct loc_entry *x = a, *y = b;
	if (x->gen != y->gen)
		return x->gen < y->gen ? -1 : 1;
	return dir_entry_cmp(&x->e, &y->e);
}

/* After chunks (of any cameras) were zeroed in generation gen: the
 * directory in memory and the segment record lose them; a sealed directory
 * is written again without them (in place: it only shrinks), once for all
 * of them. `c` is sorted by gen_cmp. */
static int seg_forget(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t gen,
                      const struct loc_entry *c, size_t n)
{
	struct idx_segment s;
	int err = idx_get_segment(t, stg->ix, v->id, gen, &s);
	if (err)
		return err == MDB_NOTFOUND ? 0 : err;
	struct segdir *d;
	if ((err = dc_get(stg, v->id, gen, &d)))
		return err;
	struct dir_entry *rm = malloc(n * sizeof *rm);
	if (!rm) {
		dc_put(stg->dc, d);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		rm[i] = c[i].e;
	uint32_t removed = segdir_remove(d, rm, (uint32_t)n);
	free(rm);
	pthread_mutex_lock(&d->lock);
	/* an open segment's directory may show chunks whose merge is still
	 * queued (they count when it runs): subtract, do not recount */
	s.chunks = s.chunks > removed ? s.chunks - removed : 0;
	s.t_min = s.t_max = 0;
	for (uint32_t i = 0; i < d->visible; i++) {
		const struct dir_entry *e = &d->e[i];
		if (e->flags & REC_RELOCATED)
			continue;
		if (!seg_has_times(&s) || e->start_us < s.t_min)
			s.t_min = e->start_us;
		if (!seg_has_times(&s) || e->end_us > s.t_max)
			s.t_max = e->end_us;
	}
	struct dir_entry *copy = NULL;
	uint32_t nd = d->visible;
	if (s.state == SEG_SEALED && removed && (copy = malloc((nd ? nd : 1) * sizeof *copy)) && nd)
		memcpy(copy, d->e, nd * sizeof *copy);
	pthread_mutex_unlock(&d->lock);
	dc_put(stg->dc, d);
	if (s.state == SEG_SEALED && removed) {
		void *rec = NULL;
		uint32_t len = 0;
		err = copy ? dir_record_build(copy, nd, gen, &rec, &len) : -ENOMEM;
		free(copy);
		if (!err && len <= s.dir_len) {
			uint8_t *buf = calloc(1, s.dir_len);
			uint32_t slot = s.slot;
			int fd = buf ? vol_open_segment_buffered(v, slot) : -ENOMEM;
			if (fd >= 0) {
				memcpy(buf, rec, len);
				if (pwrite(fd, buf, s.dir_len, (off_t)s.dir_off) != (ssize_t)s.dir_len ||
				    fdatasync(fd))
					err = errno ? -errno : -EIO;
				close(fd);
			} else {
				err = fd;
			}
			free(buf);
			if (!err)
				s.dir_len = len;
		} else if (!err) {
			LOG_WARN("event=directory_not_rewritten vol=%u gen=%u reason=larger", v->id, gen);
		}
		free(rec);
		if (err)
			return err;
	}
	return idx_put_segment(t, stg->ix, v->id, gen, &s);
}

/* Zeroes the chunks in `l` (one volume, sorted by loc_entry_cmp), cuts
 * them out of the ranges and updates the segments: one sync and one
 * directory rewrite per segment, however many cameras. */
static int remove_chunks(MDB_txn *t, struct stg *stg, struct vol *v, struct locv *l,
                         uint64_t *cut)
{
	if (!l->n)
		return 0;
	struct loc_entry *by_gen = malloc(l->n * sizeof *by_gen);
	if (!by_gen)
		return -ENOMEM;
	memcpy(by_gen, l->v, l->n * sizeof *by_gen);
	qsort(by_gen, l->n, sizeof *by_gen, gen_cmp);
	int err = ret_zero_chunks(stg, v, by_gen, l->n);
	if (!err)
		err = idx_cut_chunks(t, stg, v->id, l->v, l->n, cut);
	for (size_t i = 0; i < l->n && !err;) {
		size_t j = i;
		while (j < l->n && by_gen[j].gen == by_gen[i].gen)
			j++;
		err = seg_forget(t, stg, v, by_gen[i].gen, &by_gen[i], j - i);
		i = j;
	}
	free(by_gen);
	return err;
}

/* ---- purge ------------------------------------------------------------------- */

struct purge_arg {
	uint32_t cam;
	int64_t t0, t1;
	struct stg_purge_report rep;
};

static bool held_in_window(struct retention *r, uint32_t cam, int64_t t0, int64_t t1, int64_t now)
{
	pthread_mutex_lock(&r->lock);
	bool held = ret_held(r, cam, t0, t1, now);
	pthread_mutex_unlock(&r->lock);
	return held;
}

static int purge_fn(MDB_txn *t, struct stg *stg, void *arg)
{
	struct purge_arg *a = arg;
	int64_t now = stg_now(stg);
	memset(&a->rep, 0, sizeof a->rep);
	if (held_in_window(stg->ret, a->cam, a->t0, a->t1, now))
		return STG_EHELD;
	int err = 0;
	for (int i = 0; i < stg->nvols && !err; i++) {
		struct vol *v = &stg->vols[i];
		if (!v->seg_fd)
			continue;
		struct pick p = { .t0 = a->t0, .t1 = a->t1, .now = now, .vol = v->id };
		struct locv l = { 0 };
		err = collect(t, stg, a->cam, &p, &l);
		/* whole chunks go: one reaching into the window from outside
		 * may itself be held */
		for (size_t k = 0; k < l.n && !err; k++)
			if (held_in_window(stg->ret, a->cam, l.v[k].e.start_us, l.v[k].e.end_us, now))
				err = STG_EHELD;
		if (!err)
			err = remove_chunks(t, stg, v, &l, NULL);
		for (size_t k = 0; k < l.n && !err; k++) {
			a->rep.chunks++;
			a->rep.bytes += l.v[k].e.length;
			a->rep.frames += l.v[k].e.frames;
			if (!a->rep.start_us || l.v[k].e.start_us < a->rep.start_us)
				a->rep.start_us = l.v[k].e.start_us;
			if (l.v[k].e.end_us > a->rep.end_us)
				a->rep.end_us = l.v[k].e.end_us;
		}
		free(l.v);
	}
	if (!err)
		evac_purged(stg, a->cam, a->t0, a->t1);
	return err;
}

static void purge_after(struct stg *stg, void *arg)
{
	struct purge_arg *a = arg;
	pthread_mutex_lock(&stg->ret->lock);
	stg->ret->purged += a->rep.chunks;
	pthread_mutex_unlock(&stg->ret->lock);
	LOG_INFO("event=purged camera=%u from_us=%lld to_us=%lld chunks=%llu bytes=%llu",
	         a->cam, (long long)a->rep.start_us, (long long)a->rep.end_us,
	         (unsigned long long)a->rep.chunks, (unsigned long long)a->rep.bytes);
}

int stg_purge(struct stg *stg, uint32_t camera_id, int64_t t0, int64_t t1,
              struct stg_purge_report *out)
{
	if (t1 <= t0)
		return -EINVAL;
	struct purge_arg a = { .cam = camera_id, .t0 = t0, .t1 = t1 };
	int err = indexer_call(stg, purge_fn, purge_after, &a);
	if (out)
		*out = err ? (struct stg_purge_report){ 0 } : a.rep;
	return err;
}

/* ---- holds ------------------------------------------------------------------- */

struct hold_arg {
	struct stg_hold *h;
	struct stg_missing *missing;
	int max_missing, nmissing;
	uint64_t id;
	uint64_t release;
	struct ret_hold made;
};

/* Bytes of footage of cam in [t0, t1), across volumes. */
static int window_bytes(MDB_txn *t, struct stg *stg, uint32_t cam, int64_t t0, int64_t t1,
                        int64_t now, uint64_t *bytes)
{
	int err = 0;
	for (int i = 0; i < stg->nvols && !err; i++) {
		if (!stg->vols[i].seg_fd)
			continue;
		struct pick p = { .t0 = t0, .t1 = t1, .now = now, .vol = stg->vols[i].id };
		struct locv l = { 0 };
		err = collect(t, stg, cam, &p, &l);
		for (size_t k = 0; k < l.n; k++)
			*bytes += l.v[k].e.length;
		free(l.v);
	}
	return err;
}

static void add_missing(struct hold_arg *a, uint32_t cam, int64_t s, int64_t e)
{
	if (e <= s)
		return;
	if (a->nmissing < a->max_missing)
		a->missing[a->nmissing] = (struct stg_missing){ cam, s, e };
	a->nmissing++;
}

/* The parts of [t0, t1) without footage of cam. */
static int find_missing(MDB_txn *t, struct stg *stg, struct hold_arg *a, uint32_t cam,
                        int64_t t0, int64_t t1)
{
	MDB_cursor *c;
	int err = mdb_cursor_open(t, idx_db_ranges(stg->ix), &c);
	if (err)
		return err;
	struct range_key rk;
	range_key_make(&rk, cam, INT64_MIN);
	MDB_val k = { sizeof rk, &rk }, d;
	int64_t at = t0;
	for (err = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); !err;
	     err = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		uint32_t kc;
		int64_t start;
		range_key_parse(k.mv_data, &kc, &start);
		if (kc != cam || start >= t1)
			break;
		struct idx_range rg;
		memcpy(&rg, d.mv_data, sizeof rg);
		if (rg.end_us <= at)
			continue;
		add_missing(a, cam, at, start);
		at = rg.end_us;
	}
	mdb_cursor_close(c);
	if (err && err != MDB_NOTFOUND)
		return err;
	add_missing(a, cam, at, t1);
	return 0;
}

static uint64_t capacity_bytes(struct stg *stg)
{
	uint64_t cap = 0;
	for (int i = 0; i < stg->nvols; i++) {
		struct vol *v = &stg->vols[i];
		if (v->state != STG_VOL_ACTIVE || v->hdr.segment_count <= STG_RESERVE + 1)
			continue;
		/* prepared segments hold nothing, the open one half on average */
		cap += (uint64_t)((v->hdr.segment_count - STG_RESERVE - 0.5) * (double)v->hdr.segment_size);
	}
	return cap;
}

static uint64_t held_total(struct retention *r)
{
	uint64_t b = 0;
	for (int i = 0; i < r->nholds; i++)
		b += r->holds[i].bytes;
	return b;
}

static int hold_create_fn(MDB_txn *t, struct stg *stg, void *arg)
{
	struct hold_arg *a = arg;
	struct stg_hold *h = a->h;
	int64_t now = stg_now(stg);
	a->nmissing = 0;
	uint64_t bytes = 0;
	int err = 0;
	for (uint32_t i = 0; i < h->camera_count && !err; i++) {
		int64_t past = h->end_us < now ? h->end_us : now;
		err = window_bytes(t, stg, h->cameras[i], h->start_us, h->end_us, now, &bytes);
		if (!err && past > h->start_us)
			err = find_missing(t, stg, a, h->cameras[i], h->start_us, past);
	}
	if (err)
		return err;
	pthread_mutex_lock(&stg->ret->lock);
	uint64_t held = held_total(stg->ret);
	uint64_t id = stg->ret->next_hold;
	pthread_mutex_unlock(&stg->ret->lock);
	uint64_t cap = capacity_bytes(stg) / 100 * stg->cfg.hold_max_pct;
	if (held + bytes > cap) {
		LOG_WARN("event=hold_refused reason=capacity held=%llu asked=%llu limit=%llu",
		         (unsigned long long)held, (unsigned long long)bytes,
		         (unsigned long long)cap);
		return -ENOSPC;
	}
	struct ret_hold *m = &a->made;
	memset(m, 0, sizeof *m);
	m->id = id;
	m->bytes = bytes;
	m->h = (struct idx_hold){ .start_us = h->start_us, .end_us = h->end_us,
	                          .created_us = now, .expires_us = h->expires_us,
	                          .camera_count = h->camera_count };
	memcpy(m->h.case_ref, h->case_ref, sizeof m->h.case_ref);
	memcpy(m->h.reason, h->reason, sizeof m->h.reason);
	m->h.case_ref[sizeof m->h.case_ref - 1] = 0;
	m->h.reason[sizeof m->h.reason - 1] = 0;
	memcpy(m->cams, h->cameras, h->camera_count * sizeof *m->cams);
	uint8_t buf[sizeof m->h + sizeof m->cams];
	size_t len = sizeof m->h + m->h.camera_count * sizeof(uint32_t);
	memcpy(buf, &m->h, sizeof m->h);
	memcpy(buf + sizeof m->h, m->cams, m->h.camera_count * sizeof(uint32_t));
	uint8_t kb[8];
	hold_key(kb, id);
	MDB_val k = { 8, kb }, d = { len, buf };
	return mdb_put(t, idx_db_holds(stg->ix), &k, &d, MDB_NOOVERWRITE);
}

static void hold_create_after(struct stg *stg, void *arg)
{
	struct hold_arg *a = arg;
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	struct ret_hold *n = realloc(r->holds, (size_t)(r->nholds + 1) * sizeof *n);
	if (n) {
		r->holds = n;
		r->holds[r->nholds++] = a->made;
		r->next_hold = a->made.id + 1;
	}
	r->trim_reset = true;
	pthread_mutex_unlock(&r->lock);
	if (!n)   /* in the index: loaded at the next start */
		LOG_ERR("event=hold_not_in_memory id=%llu", (unsigned long long)a->made.id);
	a->h->id = a->made.id;
	a->h->created_us = a->made.h.created_us;
	a->h->bytes = a->made.bytes;
	LOG_INFO("event=hold_created id=%llu case=\"%s\" cameras=%u from_us=%lld to_us=%lld bytes=%llu missing=%d",
	         (unsigned long long)a->made.id, a->made.h.case_ref, a->made.h.camera_count,
	         (long long)a->made.h.start_us, (long long)a->made.h.end_us,
	         (unsigned long long)a->made.bytes, a->nmissing);
}

int stg_hold_create(struct stg *stg, struct stg_hold *h, struct stg_missing *missing,
                    int max_missing, int *nmissing)
{
	if (h->camera_count == 0 || h->camera_count > STG_HOLD_MAX_CAMERAS ||
	    h->end_us <= h->start_us || (h->expires_us && h->expires_us < 0))
		return -EINVAL;
	/* A hold freezes footage that exists: its window ends at the latest
	 * now. A window open into the future would hold everything recorded
	 * from then on, until held copies filled the ring and every reuse
	 * copied them forward again. */
	int64_t now = stg_now(stg);
	if (h->end_us > now)
		h->end_us = now;
	if (h->end_us <= h->start_us)
		return -EINVAL;
	struct hold_arg a = { .h = h, .missing = missing, .max_missing = missing ? max_missing : 0 };
	int err = indexer_call(stg, hold_create_fn, hold_create_after, &a);
	if (nmissing)
		*nmissing = err ? 0 : a.nmissing;
	return err;
}

static void hold_out(const struct ret_hold *h, struct stg_hold *o)
{
	memset(o, 0, sizeof *o);
	o->id = h->id;
	o->camera_count = h->h.camera_count;
	memcpy(o->cameras, h->cams, h->h.camera_count * sizeof *o->cameras);
	o->start_us = h->h.start_us;
	o->end_us = h->h.end_us;
	o->created_us = h->h.created_us;
	o->expires_us = h->h.expires_us;
	memcpy(o->case_ref, h->h.case_ref, sizeof o->case_ref);
	memcpy(o->reason, h->h.reason, sizeof o->reason);
	o->bytes = h->bytes;
}

int stg_hold_list(struct stg *stg, struct stg_hold *out, int max)
{
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	int n = r->nholds;
	for (int i = 0; i < n && i < max; i++)
		hold_out(&r->holds[i], &out[i]);
	pthread_mutex_unlock(&r->lock);
	return n;
}

static int hold_del(MDB_txn *t, struct stg *stg, uint64_t id)
{
	uint8_t kb[8];
	hold_key(kb, id);
	MDB_val k = { 8, kb };
	int err = mdb_del(t, idx_db_holds(stg->ix), &k, NULL);
	return err == MDB_NOTFOUND ? -ENOENT : err;
}

static int hold_release_fn(MDB_txn *t, struct stg *stg, void *arg)
{
	return hold_del(t, stg, ((struct hold_arg *)arg)->release);
}

static void hold_forget(struct retention *r, uint64_t id)
{
	for (int i = 0; i < r->nholds; i++)
		if (r->holds[i].id == id) {
			memmove(&r->holds[i], &r->holds[i + 1],
			        (size_t)(r->nholds - i - 1) * sizeof *r->holds);
			r->nholds--;
			return;
		}
}

static void hold_release_after(struct stg *stg, void *arg)
{
	struct hold_arg *a = arg;
	pthread_mutex_lock(&stg->ret->lock);
	hold_forget(stg->ret, a->release);
	stg->ret->trim_reset = true;
	pthread_mutex_unlock(&stg->ret->lock);
	LOG_INFO("event=hold_released id=%llu", (unsigned long long)a->release);
}

int stg_hold_release(struct stg *stg, uint64_t id)
{
	struct hold_arg a = { .release = id };
	return indexer_call(stg, hold_release_fn, hold_release_after, &a);
}

/* ---- the forecast (the steady state of the order above) ------------------ */

struct fc_class {
	double rate, min, max;     /* bytes/s, seconds */
	bool by_share;             /* max is the share's: share x C / rate */
	double days;               /* result, seconds */
};

static void fc_setup(struct fc_class *k, int64_t min_us, int64_t max_us, uint32_t share_pct,
                     double rate, double avail)
{
	k->rate = rate;
	k->min = min_us / 1e6;
	k->max = max_us ? max_us / 1e6 : FOREVER_US / 1e6;
	k->by_share = false;
	if (share_pct && rate > 0 && avail * share_pct / 100 / rate < k->max) {
		k->max = avail * share_pct / 100 / rate;
		k->by_share = true;
	}
}

/* The bytes the ring holds at this level. A class whose maximum (or
 * share) cuts its footage below the level still fills the ring up to the
 * level: what is removed early leaves zeroed space in its segments, which
 * only the ring's reuse of the whole segment frees. */
static double fc_level(const struct fc_class *k, int n, double level, bool promises_fit)
{
	double sum = 0;
	for (int i = 0; i < n; i++) {
		/* copies forward keep a class up to its promise, at most up to
		 * its maximum */
		double kept = k[i].min < k[i].max ? k[i].min : k[i].max;
		double d = promises_fit ? (level < kept ? kept : level) :
		                          (level < k[i].min ? level : k[i].min);
		sum += k[i].rate * d;
	}
	return sum;
}

/* Water-filling over the classes (see the top of the file): fills each
 * class's days and returns the level; *fit says whether the promises fit. */
static double forecast(struct fc_class *k, int n, double cap, bool *fit)
{
	double need_min = 0;
	for (int i = 0; i < n; i++)
		need_min += k[i].rate * (k[i].min < k[i].max ? k[i].min : k[i].max);
	*fit = need_min <= cap;
	double lo = 0, hi = FOREVER_US / 1e6;
	for (int it = 0; it < 200; it++) {
		double mid = (lo + hi) / 2;
		if (fc_level(k, n, mid, *fit) <= cap)
			lo = mid;
		else
			hi = mid;
	}
	for (int i = 0; i < n; i++) {
		double d = *fit ? (lo < k[i].min ? k[i].min : lo) : (lo < k[i].min ? lo : k[i].min);
		if (*fit && d > k[i].max)
			d = k[i].max;
		k[i].days = d;
	}
	return lo;
}

/* ---- shares ------------------------------------------------------------------ */

#define NSLOTS (MAX_CLASSES + 1)   /* classes, then the default while undefined */
#define TRIM_SEGMENTS 16           /* segments one sweep looks through */

struct trim_cand {
	struct loc_entry le;
	int vslot;                 /* in stg->vols */
	int slot;                  /* class slot */
	bool take;
};

/* The sweep's work space for shares (index thread), kept between sweeps. */
struct shares {
	bool measured;             /* the figures below are this sweep's */
	bool held_valid;           /* held[] and held_all still hold */
	uint64_t bytes[NSLOTS];    /* indexed footage per class, held included */
	uint64_t held[NSLOTS];     /* of which holds keep */
	uint64_t limit[NSLOTS];    /* share x C */
	uint64_t excess[NSLOTS];   /* unheld bytes above the limit */
	uint64_t held_all;
	/* per class and volume: the first generation that may hold unheld
	 * footage of the class (the walks before found none further back) */
	uint32_t from[NSLOTS][STG_MAX_VOLUMES];
	/* the walk, oldest segment first across volumes */
	uint32_t next[STG_MAX_VOLUMES];
	bool more[STG_MAX_VOLUMES];
	uint32_t next_gen[STG_MAX_VOLUMES];
	struct idx_segment next_seg[STG_MAX_VOLUMES];
	struct trim_cand *c;
	size_t n, cap;
};

static struct shares *shares_new(void)
{
	return calloc(1, sizeof(struct shares));
}

static void shares_free(struct shares *sh)
{
	if (sh)
		free(sh->c);
	free(sh);
}

static int slot_of(const struct retention *r, int cls)
{
	return cls >= 0 ? cls : r->ncls;
}

/* The class slot of a camera (r->lock held). */
static int cam_slot(struct retention *r, uint32_t cam)
{
	struct ret_cam *c = cam_find(r, cam, false);
	return slot_of(r, c ? c->cls : class_find(r, STG_DEFAULT_CLASS));
}

struct sum_arg {
	struct retention *r;
	int64_t sum[NSLOTS];
};

static void sum_cam(void *user, uint32_t cam, int64_t bytes)
{
	struct sum_arg *a = user;
	a->sum[cam_slot(a->r, cam)] += bytes;
}

/* Indexed footage per class slot, with this transaction's changes. */
static void class_bytes(struct stg *stg, uint64_t out[NSLOTS])
{
	struct sum_arg *a = calloc(1, sizeof *a);
	memset(out, 0, NSLOTS * sizeof *out);
	if (!a) {
		LOG_ERR("event=class_bytes_not_summed err=\"%s\"", stg_strerror(-ENOMEM));
		return;
	}
	a->r = stg->ret;
	pthread_mutex_lock(&stg->ret->lock);
	use_each(stg, sum_cam, a);
	pthread_mutex_unlock(&stg->ret->lock);
	for (int k = 0; k < NSLOTS; k++)
		out[k] = a->sum[k] > 0 ? (uint64_t)a->sum[k] : 0;
	free(a);
}

struct held_win {
	uint32_t cam;
	int64_t t0, t1;
};

static int held_win_cmp(const void *a, const void *b)
{
	const struct held_win *x = a, *y = b;
	return x->cam < y->cam ? -1 : x->cam > y->cam;
}

/* Bytes of the indexed chunks of one camera in any of its held windows
 * (w, n), each chunk once however many holds cover it. */
static int cam_held_bytes(MDB_txn *t, struct stg *stg, const struct held_win *w, size_t n,
                          int64_t now, uint64_t *bytes)
{
	struct locv l = { 0 };
	int err = 0;
	for (int v = 0; v < stg->nvols && !err; v++) {
		if (!stg->vols[v].seg_fd)
			continue;
		for (size_t i = 0; i < n && !err; i++) {
			struct pick p = { .t0 = w[i].t0, .t1 = w[i].t1, .now = now,
			                  .vol = stg->vols[v].id };
			err = collect(t, stg, w[i].cam, &p, &l);
		}
	}
	if (!err && l.n)
		qsort(l.v, l.n, sizeof *l.v, loc_entry_cmp);
	for (size_t i = 0; !err && i < l.n; i++)
		if (i == 0 || loc_entry_cmp(&l.v[i - 1], &l.v[i]))
			*bytes += l.v[i].e.length;
	free(l.v);
	return err;
}

/* What the active holds keep, per class slot and in all. */
static int held_bytes(MDB_txn *t, struct stg *stg, int64_t now, struct shares *sh)
{
	struct retention *r = stg->ret;
	memset(sh->held, 0, sizeof sh->held);
	sh->held_all = 0;
	pthread_mutex_lock(&r->lock);
	size_t n = 0;
	for (int i = 0; i < r->nholds; i++)
		if (hold_active(&r->holds[i], now))
			n += r->holds[i].h.camera_count;
	struct held_win *w = malloc((n ? n : 1) * sizeof *w);
	n = 0;
	for (int i = 0; w && i < r->nholds; i++)
		for (uint32_t j = 0; hold_active(&r->holds[i], now) && j < r->holds[i].h.camera_count; j++)
			w[n++] = (struct held_win){ r->holds[i].cams[j], r->holds[i].h.start_us,
			                            r->holds[i].h.end_us };
	pthread_mutex_unlock(&r->lock);
	if (!w)
		return -ENOMEM;
	qsort(w, n, sizeof *w, held_win_cmp);
	int err = 0;
	for (size_t i = 0, j; i < n && !err; i = j) {
		for (j = i; j < n && w[j].cam == w[i].cam; j++)
			;
		uint64_t b = 0;
		err = cam_held_bytes(t, stg, &w[i], j - i, now, &b);
		pthread_mutex_lock(&r->lock);
		sh->held[cam_slot(r, w[i].cam)] += b;
		pthread_mutex_unlock(&r->lock);
		sh->held_all += b;
	}
	free(w);
	return err;
}

/* Capacity for footage now: C of the forecast, less what holds keep. */
static uint64_t share_capacity(struct stg *stg, const struct shares *sh)
{
	uint64_t cap = capacity_bytes(stg);
	return cap > sh->held_all ? cap - sh->held_all : 0;
}

static void share_limits(struct stg *stg, struct shares *sh)
{
	struct retention *r = stg->ret;
	uint64_t avail = share_capacity(stg, sh);
	pthread_mutex_lock(&r->lock);
	for (int k = 0; k < NSLOTS; k++) {
		uint32_t pct = k < r->ncls ? r->cls[k].c.share_pct : 0;
		uint64_t unheld = sh->bytes[k] > sh->held[k] ? sh->bytes[k] - sh->held[k] : 0;
		sh->limit[k] = pct ? (uint64_t)((double)avail * pct / 100) : 0;
		/* no capacity at all (every volume failed) trims nothing */
		sh->excess[k] = pct && avail && unheld > sh->limit[k] ? unheld - sh->limit[k] : 0;
	}
	pthread_mutex_unlock(&r->lock);
}

/* Marks the classes held to their share: above it at this sweep, and
 * until they fall below 90% of it (so that a sweep that finds nothing new
 * indexed does not flip it). Relocation does not copy their promised
 * chunks: the share wins, and a copy would only push out younger footage
 * of the same class (and, copying each time round, speed up the ring for
 * every class). */
static void share_held_to(struct stg *stg, const struct shares *sh)
{
	struct retention *r = stg->ret;
	pthread_mutex_lock(&r->lock);
	for (int k = 0; k < r->ncls; k++) {
		struct ret_class *c = &r->cls[k];
		uint64_t unheld = sh->bytes[k] > sh->held[k] ? sh->bytes[k] - sh->held[k] : 0;
		bool was = c->at_share;
		if (sh->excess[k])
			c->at_share = true;
		else if (!c->c.share_pct || unheld < sh->limit[k] / 10 * 9)
			c->at_share = false;
		if (was != c->at_share)
			LOG_INFO("event=class_%s_share class=%s share_pct=%u bytes=%llu",
			         c->at_share ? "at" : "below", c->name, c->c.share_pct,
			         (unsigned long long)unheld);
	}
	pthread_mutex_unlock(&r->lock);
}

static int64_t seg_start(const struct idx_segment *s)
{
	return seg_has_times(s) ? s->t_min : INT64_MIN;   /* copies only: look first */
}

/* Loads the next segment of volume slot i, at or after sh->next[i]. */
static int walk_load(MDB_txn *t, struct stg *stg, struct shares *sh, int i)
{
	int err = idx_next_segment(t, stg->ix, stg->vols[i].id, sh->next[i], &sh->next_gen[i],
	                           &sh->next_seg[i]);
	sh->more[i] = err == 0;
	return err == MDB_NOTFOUND ? 0 : err;
}

/* The volume whose next segment starts first, -1 when none is left. */
static int walk_pick(const struct stg *stg, const struct shares *sh)
{
	int best = -1;
	for (int i = 0; i < stg->nvols; i++)
		if (sh->more[i] && (best < 0 ||
		    seg_start(&sh->next_seg[i]) < seg_start(&sh->next_seg[best])))
			best = i;
	return best;
}

static int cand_push(struct shares *sh, const struct loc_entry *le, int vslot, int slot)
{
	if (sh->n == sh->cap) {
		size_t cap = sh->cap ? sh->cap * 2 : 1024;
		struct trim_cand *n = realloc(sh->c, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		sh->c = n;
		sh->cap = cap;
	}
	sh->c[sh->n++] = (struct trim_cand){ *le, vslot, slot, false };
	return 0;
}

/* Copies the visible entries of (v, gen); *n 0 when it is gone. */
static int dir_copy(struct stg *stg, struct vol *v, uint32_t gen, struct dir_entry **out,
                    uint32_t *n)
{
	struct segdir *d;
	*out = NULL;
	*n = 0;
	int err = dc_get(stg, v->id, gen, &d);
	if (err)
		return err == STG_EGONE || err == MDB_NOTFOUND ? 0 : err;
	err = segdir_copy(d, out, n);
	dc_put(stg->dc, d);
	return err;
}

/* Adds the indexed, unheld chunks of over-share classes in (vslot, gen). */
static int trim_segment(MDB_txn *t, struct stg *stg, struct shares *sh, int vslot,
                        uint32_t gen, int64_t now)
{
	struct retention *r = stg->ret;
	struct vol *v = &stg->vols[vslot];
	struct dir_entry *e;
	uint32_t n;
	int err = dir_copy(stg, v, gen, &e, &n);
	int64_t rstart = 0;
	struct idx_range rg = { 0 };
	bool have = false;
	uint32_t rcam = 0;
	for (uint32_t i = 0; i < n && !err; i++) {
		pthread_mutex_lock(&r->lock);
		int k = cam_slot(r, e[i].camera_id);
		bool skip = !sh->excess[k] ||
		            ret_held(r, e[i].camera_id, e[i].start_us, e[i].end_us, now);
		pthread_mutex_unlock(&r->lock);
		if (skip)
			continue;
		/* a sealed directory is sorted by camera: one lookup per range */
		if (!have || rcam != e[i].camera_id || !idx_range_holds(rstart, &rg, v->id, gen, &e[i])) {
			have = !idx_range_containing(t, stg->ix, e[i].camera_id, e[i].start_us,
			                             &rstart, &rg);
			rcam = e[i].camera_id;
		}
		if (have && idx_range_holds(rstart, &rg, v->id, gen, &e[i])) {
			struct loc_entry le = { e[i], gen };
			err = cand_push(sh, &le, vslot, k);
		}
	}
	free(e);
	return err;
}

static int cand_by_start(const void *a, const void *b)
{
	const struct trim_cand *x = a, *y = b;
	if (x->le.e.start_us != y->le.e.start_us)
		return x->le.e.start_us < y->le.e.start_us ? -1 : 1;
	return x->le.e.camera_id < y->le.e.camera_id ? -1 : x->le.e.camera_id > y->le.e.camera_id;
}

/* Marks each over-share class's oldest candidates until its excess is
 * covered. Returns the latest start marked (segments starting before it
 * may still hold older footage), or INT64_MAX while a class is not
 * covered. */
static int64_t trim_pick(struct shares *sh)
{
	uint64_t got[NSLOTS] = { 0 };
	int64_t last = INT64_MIN;
	if (sh->n)
		qsort(sh->c, sh->n, sizeof *sh->c, cand_by_start);
	for (size_t i = 0; i < sh->n; i++) {
		struct trim_cand *c = &sh->c[i];
		c->take = got[c->slot] < sh->excess[c->slot];
		if (c->take) {
			got[c->slot] += c->le.e.length;
			last = c->le.e.start_us;
		}
	}
	for (int k = 0; k < NSLOTS; k++)
		if (got[k] < sh->excess[k])
			return INT64_MAX;
	return last;
}

/* Walks the segments oldest first across volumes from where over-share
 * classes may have footage, collecting candidates, until what is marked
 * covers every excess and no unvisited segment starts earlier (or
 * TRIM_SEGMENTS were visited: the rest waits for the next sweep). */
static int trim_walk(MDB_txn *t, struct stg *stg, struct shares *sh, int64_t now)
{
	int err = 0;
	sh->n = 0;
	for (int i = 0; i < stg->nvols && !err; i++) {
		sh->more[i] = false;
		sh->next[i] = UINT32_MAX;
		for (int k = 0; k < NSLOTS; k++)
			if (sh->excess[k] && sh->from[k][i] < sh->next[i])
				sh->next[i] = sh->from[k][i];
		if (stg->vols[i].seg_fd && stg->vols[i].state == STG_VOL_ACTIVE)
			err = walk_load(t, stg, sh, i);
	}
	int64_t cut = INT64_MAX;
	for (int seen = 0, i; !err && seen < TRIM_SEGMENTS && (i = walk_pick(stg, sh)) >= 0 &&
	                      seg_start(&sh->next_seg[i]) < cut; seen++) {
		err = trim_segment(t, stg, sh, i, sh->next_gen[i], now);
		sh->next[i] = sh->next_gen[i] + 1;
		if (!err)
			err = walk_load(t, stg, sh, i);
		cut = trim_pick(sh);
	}
	return err;
}

/* Where the next walks start: for each over-share class and volume, the
 * first generation with footage of the class left behind. */
static void trim_resume(const struct stg *stg, struct shares *sh)
{
	for (int k = 0; k < NSLOTS; k++)
		for (int i = 0; sh->excess[k] && i < stg->nvols; i++)
			sh->from[k][i] = sh->next[i];
	for (size_t j = 0; j < sh->n; j++) {
		const struct trim_cand *c = &sh->c[j];
		if (!c->take && c->le.gen < sh->from[c->slot][c->vslot])
			sh->from[c->slot][c->vslot] = c->le.gen;
	}
}

/* Removes the marked candidates, volume by volume, as maximum retention
 * does; a class pushed below its promise is in alarm. */
static int trim_remove(MDB_txn *t, struct stg *stg, struct shares *sh, int64_t now,
                       uint64_t *chunks, uint64_t *bytes)
{
	int err = 0;
	for (int i = 0; i < stg->nvols && !err; i++) {
		struct locv l = { 0 };
		for (size_t j = 0; j < sh->n && !err; j++)
			if (sh->c[j].take && sh->c[j].vslot == i)
				err = locv_push(&l, &sh->c[j].le.e, sh->c[j].le.gen);
		if (!err && l.n) {
			qsort(l.v, l.n, sizeof *l.v, loc_entry_cmp);
			err = remove_chunks(t, stg, &stg->vols[i], &l, chunks);
		}
		for (size_t j = 0; !err && j < l.n; j++) {
			*bytes += l.v[j].e.length;
			/* a copy on its way (a promise) goes too */
			evac_purged(stg, l.v[j].e.camera_id, l.v[j].e.start_us, l.v[j].e.end_us);
		}
		free(l.v);
	}
	/* candidates are sorted by start: the last taken of a class is its
	 * youngest, the one that says how far below its promise it went */
	for (int k = 0; k < NSLOTS && !err; k++)
		for (size_t j = sh->n; j-- > 0;)
			if (sh->c[j].take && sh->c[j].slot == k) {
				ret_short(stg, t, sh->c[j].le.e.camera_id, &sh->c[j].le.e, now);
				break;
			}
	return err;
}

/* Holds every class with a share to share x C: measures, then removes
 * the oldest unheld footage of the classes above it. Waits for the
 * footage census (usage.c). */
static int share_sweep(MDB_txn *t, struct stg *stg, int64_t now, uint64_t *chunks,
                       uint64_t *bytes)
{
	struct retention *r = stg->ret;
	struct shares *sh = r->shares;
	sh->measured = false;
	pthread_mutex_lock(&r->lock);
	bool any = false, changed = r->trim_reset;
	for (int k = 0; k < r->ncls; k++)
		any |= r->cls[k].c.share_pct != 0;
	r->trim_reset = false;
	pthread_mutex_unlock(&r->lock);
	if (changed) {
		memset(sh->from, 0, sizeof sh->from);
		sh->held_valid = false;
	}
	if (!any) {                /* no share (any more): none is held to one */
		memset(sh->excess, 0, sizeof sh->excess);
		share_held_to(stg, sh);
		return 0;
	}
	if (!use_ready(stg))       /* the census after a start is not done */
		return 0;
	/* what holds keep changes only with holds and classes (held chunks
	 * are never removed, and no footage joins a window in the past) */
	if (!sh->held_valid) {
		int err = held_bytes(t, stg, now, sh);
		if (err)
			return err;
		sh->held_valid = true;
	}
	class_bytes(stg, sh->bytes);
	share_limits(stg, sh);
	sh->measured = true;
	share_held_to(stg, sh);
	bool over = false;
	for (int k = 0; k < NSLOTS; k++)
		over |= sh->excess[k] != 0;
	if (!over)
		return 0;
	int err = trim_walk(t, stg, sh, now);
	if (!err)
		err = trim_remove(t, stg, sh, now, chunks, bytes);
	if (!err)
		trim_resume(stg, sh);
	return err;
}

/* After the sweep's commit: what each class holds now, for readers. */
static void share_publish(struct stg *stg)
{
	struct retention *r = stg->ret;
	struct shares *sh = r->shares;
	if (!sh->measured)
		return;
	uint64_t bytes[NSLOTS];
	class_bytes(stg, bytes);
	pthread_mutex_lock(&r->lock);
	for (int k = 0; k <= r->ncls; k++) {
		struct ret_class *c = k < r->ncls ? &r->cls[k] : &r->dflt;
		c->bytes = bytes[k] > sh->held[k] ? bytes[k] - sh->held[k] : 0;
		c->share_bytes = sh->limit[k];
	}
	pthread_mutex_unlock(&r->lock);
}

/* ---- the periodic sweep ------------------------------------------------------ */

struct sweep_arg {
	uint64_t expired;
	uint64_t expired_holds[16];
	int nexpired_holds;
};
/* indexer.c hands ret_sweep 512 zeroed bytes (it does not know the type) */
static_assert(sizeof(struct sweep_arg) <= 512, "sweep_arg fits the indexer's buffer");

/* Expires the footage of cam older than its class's maximum. */
static int expire_camera(MDB_txn *t, struct stg *stg, uint32_t cam, int64_t cutoff,
                         int64_t now, uint64_t *expired)
{
	int err = 0;
	for (int i = 0; i < stg->nvols && !err; i++) {
		struct vol *v = &stg->vols[i];
		if (!v->seg_fd)
			continue;
		struct pick p = { .t0 = INT64_MIN, .t1 = cutoff, .ending_by_t1 = true, .now = now,
		                  .skip_held = true, .vol = v->id };
		struct locv l = { 0 };
		err = collect(t, stg, cam, &p, &l);
		if (!err)
			err = remove_chunks(t, stg, v, &l, expired);
		free(l.v);
	}
	return err;
}

int ret_sweep(MDB_txn *t, struct stg *stg, void *arg)
{
	struct sweep_arg *a = arg;
	struct retention *r = stg->ret;
	int64_t now = stg_now(stg);
	memset(a, 0, sizeof *a);
	int err = 0;
	/* holds past their expiry */
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->nholds && a->nexpired_holds < 16; i++)
		if (!hold_active(&r->holds[i], now))
			a->expired_holds[a->nexpired_holds++] = r->holds[i].id;
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < a->nexpired_holds && !err; i++)
		err = hold_del(t, stg, a->expired_holds[i]);
	/* footage past its class's maximum, camera by camera */
	MDB_cursor *c;
	if (!err)
		err = mdb_cursor_open(t, idx_db_ranges(stg->ix), &c);
	if (err)
		return err;
	uint32_t cam = 0;
	for (;;) {
		struct range_key rk;
		range_key_make(&rk, cam, INT64_MIN);
		MDB_val k = { sizeof rk, &rk }, d;
		err = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
		if (err)
			break;
		int64_t start;
		range_key_parse(k.mv_data, &cam, &start);
		pthread_mutex_lock(&r->lock);
		int64_t max = ret_class_of(r, cam)->c.max_us;
		pthread_mutex_unlock(&r->lock);
		if (max && start < now - max) {
			mdb_cursor_close(c);
			err = expire_camera(t, stg, cam, now - max, now, &a->expired);
			if (!err)
				err = mdb_cursor_open(t, idx_db_ranges(stg->ix), &c);
			if (err)
				return err;
		}
		if (cam == UINT32_MAX)
			break;
		cam++;
	}
	mdb_cursor_close(c);
	return err == MDB_NOTFOUND ? 0 : err;
}

void ret_sweep_after(struct stg *stg, void *arg)
{
	struct sweep_arg *a = arg;
	struct retention *r = stg->ret;
	int64_t now = stg_now(stg);
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < a->nexpired_holds; i++)
		hold_forget(r, a->expired_holds[i]);
	if (a->nexpired_holds)
		r->trim_reset = true;
	r->expired += a->expired;
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < a->nexpired_holds; i++)
		LOG_INFO("event=hold_expired id=%llu", (unsigned long long)a->expired_holds[i]);
	if (a->expired)
		LOG_INFO("event=footage_expired chunks=%llu", (unsigned long long)a->expired);
	alarms_update(stg, now);
}

struct share_arg {
	uint64_t chunks, bytes;    /* removed to keep the shares */
};
static_assert(sizeof(struct share_arg) <= 512, "share_arg fits the indexer's buffer");

int ret_shares(MDB_txn *t, struct stg *stg, void *arg)
{
	struct share_arg *a = arg;
	memset(a, 0, sizeof *a);
	return share_sweep(t, stg, stg_now(stg), &a->chunks, &a->bytes);
}

void ret_shares_after(struct stg *stg, void *arg)
{
	struct share_arg *a = arg;
	pthread_mutex_lock(&stg->ret->lock);
	stg->ret->trimmed += a->chunks;
	pthread_mutex_unlock(&stg->ret->lock);
	if (a->chunks)
		LOG_INFO("event=footage_over_share_removed chunks=%llu bytes=%llu",
		         (unsigned long long)a->chunks, (unsigned long long)a->bytes);
	share_publish(stg);
}

/* Recomputes the bytes each hold keeps (after the sweep, read-only). */
static int holds_measure_fn(MDB_txn *t, struct stg *stg, void *arg)
{
	(void)arg;
	struct retention *r = stg->ret;
	int64_t now = stg_now(stg);
	pthread_mutex_lock(&r->lock);
	int n = r->nholds;
	struct ret_hold *copy = malloc((size_t)(n ? n : 1) * sizeof *copy);
	if (copy && n)
		memcpy(copy, r->holds, (size_t)n * sizeof *copy);
	pthread_mutex_unlock(&r->lock);
	if (!copy)
		return -ENOMEM;
	int err = 0;
	for (int i = 0; i < n && !err; i++) {
		copy[i].bytes = 0;
		for (uint32_t j = 0; j < copy[i].h.camera_count && !err; j++)
			err = window_bytes(t, stg, copy[i].cams[j], copy[i].h.start_us,
			                   copy[i].h.end_us, now, &copy[i].bytes);
	}
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < n && !err; i++)
		for (int j = 0; j < r->nholds; j++)
			if (r->holds[j].id == copy[i].id)
				r->holds[j].bytes = copy[i].bytes;
	pthread_mutex_unlock(&r->lock);
	free(copy);
	return err;
}

int stg_retention_enforce(struct stg *stg)
{
	struct sweep_arg a;
	struct share_arg b;
	int err = indexer_call(stg, ret_sweep, ret_sweep_after, &a);
	if (!err)
		err = indexer_call(stg, ret_shares, ret_shares_after, &b);
	if (!err)
		err = indexer_call(stg, holds_measure_fn, NULL, NULL);
	return err;
}

/* ---- reclaim hooks ----------------------------------------------------------- */

int ret_reclaim_one(MDB_txn *t, struct stg *stg, struct vol *v, uint32_t *gen,
                    struct idx_segment *s)
{
	return evac_pick(t, stg, v, gen, s);
}

void ret_reclaim_committed(struct stg *stg, struct vol *v, uint32_t gen)
{
	evac_committed(stg, v, gen);
}

bool ret_copy_landed(struct stg *stg, struct vol *v, uint32_t gen, const struct dir_entry *e)
{
	return evac_landed(stg, v, gen, e);
}

/* ---- statistics and forecast --------------------------------------------- */

/* Oldest footage of cam (its first range's start), 0 if none. */
static int64_t cam_oldest(MDB_txn *t, struct stg *stg, uint32_t cam)
{
	MDB_cursor *c;
	if (mdb_cursor_open(t, idx_db_ranges(stg->ix), &c))
		return 0;
	struct range_key rk;
	range_key_make(&rk, cam, INT64_MIN);
	MDB_val k = { sizeof rk, &rk }, d;
	int64_t start = 0;
	uint32_t kc;
	if (mdb_cursor_get(c, &k, &d, MDB_SET_RANGE) == 0) {
		range_key_parse(k.mv_data, &kc, &start);
		if (kc != cam)
			start = 0;
	}
	mdb_cursor_close(c);
	return start;
}

/* The first camera >= from with footage: true and *out, or false. */
static bool next_cam_with_footage(MDB_txn *t, struct stg *stg, uint32_t from, uint32_t *out)
{
	MDB_cursor *c;
	if (mdb_cursor_open(t, idx_db_ranges(stg->ix), &c))
		return false;
	struct range_key rk;
	range_key_make(&rk, from, INT64_MIN);
	MDB_val k = { sizeof rk, &rk }, d;
	int64_t start;
	bool found = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE) == 0;
	if (found)
		range_key_parse(k.mv_data, out, &start);
	mdb_cursor_close(c);
	return found;
}

struct snapshot {
	int ncls;                  /* classes + the default when undefined (last) */
	struct stg_class_stats cls[MAX_CLASSES + 1];
	double rate[MAX_CLASSES + 1];
	int64_t oldest[MAX_CLASSES + 1];
};

static int snap_index(struct retention *r, int cls)
{
	return cls >= 0 ? cls : r->ncls;
}

/* Fills per-class figures; per camera ones through `each` if set. */
static int gather(struct stg *stg, struct snapshot *sn, struct stg_retention_stats *tot,
                  struct stg_camera_retention *out, int max)
{
	struct retention *r = stg->ret;
	int64_t now = stg_now(stg);
	MDB_txn *t;
	int err = idx_read_begin(stg->ix, &t);
	if (err)
		return err;
	memset(sn, 0, sizeof *sn);
	pthread_mutex_lock(&r->lock);
	int dflt = class_find(r, STG_DEFAULT_CLASS);
	sn->ncls = r->ncls + (dflt < 0);
	for (int i = 0; i <= r->ncls; i++) {
		const struct ret_class *c = i < r->ncls ? &r->cls[i] : &r->dflt;
		struct stg_class *o = &sn->cls[i].cls;
		memcpy(o->name, c->name, sizeof o->name);
		o->min_us = c->c.min_us;
		o->max_us = c->c.max_us;
		o->share_pct = c->c.share_pct;
		sn->cls[i].bytes = c->bytes;
		sn->cls[i].share_bytes = c->share_bytes;
		sn->cls[i].alarm = c->alarm;
		sn->cls[i].alarm_since_us = c->alarm ? c->alarm_since : 0;
	}
	int n = 0;
	/* cameras known here (a class, or chunks since the start) merged with
	 * cameras that have footage, both in id order */
	uint32_t next_footage = 0;
	bool more = next_cam_with_footage(t, stg, 0, &next_footage);
	for (uint32_t i = 0; i < r->ncams || more;) {
		struct ret_cam none = { .cls = -1 }, *c;
		if (i < r->ncams && (!more || r->cams[i].id <= next_footage)) {
			c = &r->cams[i++];
			if (more && c->id == next_footage)
				more = c->id < UINT32_MAX &&
				       next_cam_with_footage(t, stg, c->id + 1, &next_footage);
		} else {
			none.id = next_footage;
			c = &none;
			more = next_footage < UINT32_MAX &&
			       next_cam_with_footage(t, stg, next_footage + 1, &next_footage);
		}
		int k = snap_index(r, c->cls < 0 ? dflt : c->cls);
		double rate = cam_rate(stg, c, now);
		int64_t oldest = cam_oldest(t, stg, c->id);
		sn->rate[k] += rate;
		if (oldest) {
			sn->cls[k].cameras++;
			if (!sn->oldest[k] || oldest < sn->oldest[k])
				sn->oldest[k] = oldest;
		}
		if (out && n < max) {
			out[n] = (struct stg_camera_retention){ .camera_id = c->id, .oldest_us = oldest,
			                                        .retained_us = oldest ? now - oldest : 0,
			                                        .bytes_per_s = rate };
			memcpy(out[n].class_name, sn->cls[k].cls.name, STG_CLASS_NAME_MAX);
			out[n].forecast_us = k;     /* class index, replaced below */
		}
		n++;
	}
	if (tot) {
		memset(tot, 0, sizeof *tot);
		tot->holds = (uint32_t)r->nholds;
		tot->held_bytes = held_total(r);
		tot->expired_chunks = r->expired;
		tot->purged_chunks = r->purged;
		tot->share_chunks = r->trimmed;
	}
	uint64_t held = held_total(r);
	pthread_mutex_unlock(&r->lock);
	idx_read_end(stg->ix, t);
	/* the forecast */
	uint64_t cap = capacity_bytes(stg);
	double avail = cap > held ? (double)(cap - held) : 0;
	struct fc_class k[MAX_CLASSES + 1];
	for (int i = 0; i < sn->ncls; i++) {
		const struct stg_class *c = &sn->cls[i].cls;
		fc_setup(&k[i], c->min_us, c->max_us, c->share_pct, sn->rate[i], avail);
	}
	bool fit;
	forecast(k, sn->ncls, avail, &fit);
	for (int i = 0; i < sn->ncls; i++) {
		sn->cls[i].bytes_per_s = sn->rate[i];
		sn->cls[i].forecast_us = sn->rate[i] > 0 ? (int64_t)(k[i].days * 1e6) : -1;
		sn->cls[i].retained_us = sn->oldest[i] ? now - sn->oldest[i] : 0;
	}
	for (int i = 0; out && i < n && i < max; i++)
		out[i].forecast_us = sn->cls[out[i].forecast_us].forecast_us;
	if (tot) {
		tot->capacity_bytes = cap;
		for (int i = 0; i < sn->ncls; i++)
			tot->alarms += sn->cls[i].alarm;
	}
	return n;
}

int stg_retention_stats(struct stg *stg, struct stg_retention_stats *out,
                        struct stg_class_stats *classes, int max_classes, int *nclasses)
{
	struct snapshot *sn = malloc(sizeof *sn);
	if (!sn)
		return -ENOMEM;
	int n = gather(stg, sn, out, NULL, 0);
	if (n >= 0) {
		for (int i = 0; i < sn->ncls && i < max_classes; i++)
			classes[i] = sn->cls[i];
		if (nclasses)
			*nclasses = sn->ncls;
		if (out)
			evac_counts(stg, &out->relocated_chunks, &out->relocated_bytes);
	}
	free(sn);
	return n < 0 ? n : 0;
}

int stg_retention_cameras(struct stg *stg, struct stg_camera_retention *out, int max)
{
	struct snapshot *sn = malloc(sizeof *sn);
	if (!sn)
		return -ENOMEM;
	int n = gather(stg, sn, NULL, out, max);
	free(sn);
	return n;
}
