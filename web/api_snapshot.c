/*
 * api_snapshot.c - the registry in memory for the HTTP API (api.h).
 *
 * Listing and filtering 30,000 cameras must not mean 30,000 LMDB reads per
 * request: the records are copied once, without URLs or credentials, into
 * an array in id order, and copied again only when registry_generation()
 * says another process (nvrctl) or the daemon changed the registry.
 * Readers share the rwlock; a refresh builds the new array outside it and
 * swaps it in under the write lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

struct api_load {
	struct api_camera *cams;
	size_t count, cap;
};

static int api_load_one(void *user, const struct camera_record *c)
{
	struct api_load *l = user;
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct api_camera *n = realloc(l->cams, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		l->cams = n;
		l->cap = cap;
	}
	struct api_camera *a = &l->cams[l->count++];
	a->id = c->id;
	memcpy(a->name, c->name, sizeof a->name);
	a->latitude = c->latitude;
	a->longitude = c->longitude;
	memcpy(a->tags, c->tags, sizeof a->tags);
	a->tag_count = c->tag_count;
	memcpy(a->site, c->site, sizeof a->site);
	memcpy(a->district, c->district, sizeof a->district);
	memcpy(a->retention_class, c->retention_class, sizeof a->retention_class);
	a->enabled = c->enabled;
	return 0;
}

/* Rebuilds the snapshot if the registry changed since it was taken. */
static int api_snapshot_refresh(struct web *w)
{
	struct api_snapshot *s = &w->snap;
	uint64_t gen = registry_generation(w->ctx.reg);
	pthread_rwlock_rdlock(&s->lock);
	bool fresh = s->loaded && s->generation == gen;
	pthread_rwlock_unlock(&s->lock);
	if (fresh)
		return 0;
	struct api_load l = { NULL, 0, 0 };
	int err = registry_foreach(w->ctx.reg, api_load_one, &l);
	if (err) {
		free(l.cams);
		nvr_log("error", "web", "event=snapshot_failed error=\"%s\"", strerror(-err));
		return err < 0 ? err : -EIO;
	}
	pthread_rwlock_wrlock(&s->lock);
	free(s->cams);
	s->cams = l.cams;
	s->count = l.count;
	s->generation = gen;
	s->loaded = true;
	pthread_rwlock_unlock(&s->lock);
	nvr_log("debug", "web", "event=snapshot_loaded cameras=%zu", l.count);
	return 0;
}

int api_snapshot_acquire(struct web *w)
{
	int err = api_snapshot_refresh(w);
	if (err)
		return err;
	pthread_rwlock_rdlock(&w->snap.lock);
	return 0;
}

void api_snapshot_release(struct web *w)
{
	pthread_rwlock_unlock(&w->snap.lock);
}

static int api_cmp_id(const void *key, const void *elem)
{
	uint32_t id = *(const uint32_t *)key;
	const struct api_camera *c = elem;
	return id < c->id ? -1 : id > c->id;
}

const struct api_camera *api_snapshot_find(struct web *w, uint32_t id)
{
	if (!w->snap.count)
		return NULL;
	return bsearch(&id, w->snap.cams, w->snap.count, sizeof *w->snap.cams, api_cmp_id);
}

void api_snapshot_free(struct api_snapshot *s)
{
	free(s->cams);
	s->cams = NULL;
	s->count = 0;
	s->loaded = false;
}
