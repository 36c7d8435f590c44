/*
 * config_cameras.c - the file's cameras into the registry (config_cameras.h).
 */
#include "config_cameras.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_parse.h"
#include "log.h"

struct idset {
	uint32_t *v;
	size_t n, cap;
};

static int idset_add(struct idset *s, uint32_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uint32_t *v = realloc(s->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = id;
	return 0;
}

static bool idset_has(const struct idset *s, uint32_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return true;
	return false;
}

/* Reads DIR/config-cameras; a missing file is an empty set. */
static int read_ids(const char *path, struct idset *s)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char line[32];
	int err = 0;
	while (!err && fgets(line, sizeof line, f)) {
		uint32_t id;
		line[strcspn(line, "\n")] = '\0';
		if (cli_parse_u32(line, 1, INT32_MAX, &id)) {
			nvr_log("warn", "config", "event=config_cameras_bad_line path=%s", path);
			continue;
		}
		err = idset_add(s, id);
	}
	if (!err && ferror(f))
		err = -EIO;
	fclose(f);
	return err;
}

/* Replaces path with the ids of a and b, durably. */
static int write_ids(const char *path, const struct idset *a, const struct idset *b)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	for (size_t i = 0; i < a->n; i++)
		fprintf(f, "%" PRIu32 "\n", a->v[i]);
	for (size_t i = 0; b && i < b->n; i++)
		if (!idset_has(a, b->v[i]))
			fprintf(f, "%" PRIu32 "\n", b->v[i]);
	int err = fflush(f) || fsync(fileno(f)) ? -errno : 0;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

static int upsert_all(struct registry *reg, const struct nvr_config *c,
                      struct cfgcams_result *res)
{
	for (size_t i = 0; i < c->camera_count; i++) {
		bool changed;
		int err = registry_upsert(reg, &c->camera[i].rec, &changed);
		if (err) {
			nvr_log("error", "config", "event=config_camera_failed camera=%" PRIu32
			        " error=\"%s\"", c->camera[i].rec.id, strerror(-err));
			return err;
		}
		if (changed)
			res->written++;
		else
			res->unchanged++;
	}
	return 0;
}

static int remove_dropped(struct registry *reg, const struct idset *old,
                          const struct idset *now, struct cfgcams_result *res)
{
	for (size_t i = 0; i < old->n; i++) {
		if (idset_has(now, old->v[i]))
			continue;
		int err = registry_delete(reg, old->v[i]);
		if (err && err != -ENOENT) {
			nvr_log("error", "config", "event=config_camera_remove_failed camera=%" PRIu32
			        " error=\"%s\"", old->v[i], strerror(-err));
			return err;
		}
		if (!err)
			res->removed++;
	}
	return 0;
}

int cfgcams_apply(struct registry *reg, const char *data_dir, const struct nvr_config *c,
                  struct cfgcams_result *res)
{
	char path[PATH_MAX];
	struct idset old = { 0 }, now = { 0 };
	int err = 0;
	*res = (struct cfgcams_result){ 0 };
	snprintf(path, sizeof path, "%s/config-cameras", data_dir);
	for (size_t i = 0; !err && i < c->camera_count; i++)
		err = idset_add(&now, c->camera[i].rec.id);
	if (!err)
		err = read_ids(path, &old);
	if (err)
		goto fail;
	if (!old.n && !now.n)
		goto fail;
	if ((err = write_ids(path, &now, &old)) || (err = upsert_all(reg, c, res)) ||
	    (err = remove_dropped(reg, &old, &now, res)))
		goto fail;
	err = write_ids(path, &now, NULL);
fail:
	if (err)
		nvr_log("error", "config", "event=config_cameras_failed path=%s error=\"%s\"", path,
		        strerror(-err));
	free(old.v);
	free(now.v);
	return err;
}
