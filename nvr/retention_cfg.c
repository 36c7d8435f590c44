/*
 * retention_cfg.c - each camera's retention class from the registry
 * (retention_cfg.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "retention_cfg.h"

struct sync_ctx {
	struct stg *stg;
	int set;
	int err;
};

static int sync_one(void *user, const struct camera_record *c)
{
	struct sync_ctx *s = user;
	const char *cls = c->retention_class[0] ? c->retention_class : STG_DEFAULT_CLASS;
	int err = stg_camera_set_class(s->stg, c->id, cls);
	if (err == -ENOENT) {
		nvr_log("warn", "retention", "event=unknown_retention_class camera=%" PRIu32
		        " class=%s action=default_class", c->id, cls);
		err = stg_camera_set_class(s->stg, c->id, NULL);
	}
	if (err) {
		nvr_log("error", "retention", "event=camera_class_failed camera=%" PRIu32
		        " error=\"%s\"", c->id, stg_strerror(err));
		s->err = err;
		return 0;
	}
	s->set++;
	return 0;
}

int retention_sync_cameras(struct stg *stg, struct registry *reg, uint64_t *generation)
{
	uint64_t gen = registry_generation(reg);
	if (*generation && gen == *generation)
		return 0;
	struct sync_ctx s = { .stg = stg };
	int err = registry_foreach(reg, sync_one, &s);
	if (err < 0)
		return err;
	*generation = gen;
	return s.err ? s.err : s.set;
}
