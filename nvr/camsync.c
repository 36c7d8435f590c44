/*
 * camsync.c - registry -> ingest synchronisation (camsync.h).
 *
 * State: a table of the cameras handed to the ingest, sorted by id, each
 * with a hash of its stream settings. A poll builds the wanted table from
 * the registry (enabled cameras only), then merges the two sorted tables:
 * only-in-current -> remove, only-in-wanted -> add, in both with another
 * hash -> remove + add. Removes happen at once; adds are handed to the
 * ingest in batches (ingest_add_many). Errors adding one camera are logged
 * and do not stop the others; the camera is retried at the next registry
 * change.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "camsync.h"
#include "log.h"

struct cam_entry {
	uint32_t id;
	uint64_t hash;
};

struct cam_table {
	struct cam_entry *v;
	size_t n, cap;
};

struct camsync {
	struct registry *reg;
	struct ingest *in;
	uint64_t generation;
	bool synced;
	struct cam_table current;
};

static int table_push(struct cam_table *t, uint32_t id, uint64_t hash)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct cam_entry *v = realloc(t->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = (struct cam_entry){ id, hash };
	return 0;
}

/* What restarts a camera's session when it changes. */
static uint64_t stream_hash(const struct camera_record *c)
{
	const char *fields[] = { c->main_url, c->username, c->password, c->transport };
	uint64_t h = 0;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		h = XXH3_64bits_withSeed(fields[i], strlen(fields[i]) + 1, h);
	return h;
}

static int collect_wanted(void *user, const struct camera_record *c)
{
	if (!c->enabled)
		return 0;
	return table_push(user, c->id, stream_hash(c));
}

int camsync_init(struct registry *reg, struct ingest *in, struct camsync **out)
{
	struct camsync *cs = calloc(1, sizeof *cs);
	if (!cs)
		return -ENOMEM;
	cs->reg = reg;
	cs->in = in;
	*out = cs;
	return 0;
}

/* Cameras to start, handed to the ingest CAMSYNC_BATCH at a time: one
 * call per batch instead of one per camera (30,000 cameras at start). */
#define CAMSYNC_BATCH 256

struct start_batch {
	struct camera_record cams[CAMSYNC_BATCH];
	size_t slot[CAMSYNC_BATCH];      /* where each one is in the wanted table */
	int results[CAMSYNC_BATCH];
	size_t n;
};

static void start_failed(uint32_t id, int err)
{
	nvr_log("error", "camsync", "event=camera_add_failed camera=%" PRIu32 " error=\"%s\"", id,
	        strerror(-err));
}

/* Starts the batch's cameras; a camera that failed keeps hash 0 in the
 * wanted table, so that it is retried at the next registry change. */
static void start_flush(struct camsync *cs, struct start_batch *b, struct cam_table *next)
{
	if (!b->n)
		return;
	int err = ingest_add_many(cs->in, b->cams, b->n, b->results);
	for (size_t i = 0; i < b->n; i++) {
		int r = err ? err : b->results[i];
		if (r) {
			start_failed(b->cams[i].id, r);
			next->v[b->slot[i]].hash = 0;
		}
		memset(b->cams[i].password, 0, sizeof b->cams[i].password);
	}
	b->n = 0;
}

static void start_camera(struct camsync *cs, struct start_batch *b, struct cam_table *next,
                         size_t j)
{
	uint32_t id = next->v[j].id;
	int err = registry_get(cs->reg, id, &b->cams[b->n]);
	if (err) {
		start_failed(id, err);
		next->v[j].hash = 0;
		return;
	}
	b->slot[b->n++] = j;
	if (b->n == CAMSYNC_BATCH)
		start_flush(cs, b, next);
}

static void stop_camera(struct camsync *cs, uint32_t id)
{
	int err = ingest_remove(cs->in, id);
	if (err)
		nvr_log("error", "camsync", "event=camera_remove_failed camera=%" PRIu32
		        " error=\"%s\"", id, strerror(-err));
}

/* Merges the sorted tables; `next` becomes the current table. A camera
 * whose settings changed is stopped before it starts again (its start
 * waits in the batch, after its stop). */
static int apply(struct camsync *cs, struct cam_table *next, struct start_batch *batch)
{
	struct cam_table *cur = &cs->current;
	size_t i = 0, j = 0;
	int changes = 0;
	while (i < cur->n || j < next->n) {
		uint32_t a = i < cur->n ? cur->v[i].id : UINT32_MAX;
		uint32_t b = j < next->n ? next->v[j].id : UINT32_MAX;
		if (a < b) {
			stop_camera(cs, a);
			i++;
		} else if (b < a || cur->v[i].hash != next->v[j].hash) {
			if (a == b) {
				stop_camera(cs, a);
				i++;
			}
			start_camera(cs, batch, next, j);
			j++;
		} else {
			i++;
			j++;
			continue;
		}
		changes++;
	}
	start_flush(cs, batch, next);
	free(cur->v);
	*cur = *next;
	return changes;
}

int camsync_poll(struct camsync *cs)
{
	uint64_t gen = registry_generation(cs->reg);
	if (cs->synced && gen == cs->generation)
		return 0;
	struct cam_table next = { 0 };
	int err = registry_foreach(cs->reg, collect_wanted, &next);
	if (err < 0) {
		free(next.v);
		nvr_log("error", "camsync", "event=registry_read_failed error=\"%s\"", strerror(-err));
		return err;
	}
	struct start_batch *b = malloc(sizeof *b);
	if (!b) {
		free(next.v);
		return -ENOMEM;
	}
	b->n = 0;
	int changes = apply(cs, &next, b);
	free(b);
	cs->generation = gen;
	cs->synced = true;
	if (changes)
		nvr_log("info", "camsync", "event=cameras_synced generation=%" PRIu64
		        " changes=%d cameras=%zu", gen, changes, cs->current.n);
	return changes;
}

uint32_t camsync_count(const struct camsync *cs)
{
	return (uint32_t)cs->current.n;
}

uint32_t camsync_id(const struct camsync *cs, uint32_t i)
{
	return i < cs->current.n ? cs->current.v[i].id : 0;
}

void camsync_free(struct camsync *cs)
{
	if (!cs)
		return;
	free(cs->current.v);
	free(cs);
}
