/*
 * retention_cfg.c - retention classes from nvrd's options and camera classes
 * from the registry (retention_cfg.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "retention_cfg.h"

#define DAY_US 86400e6

static int parse_days(const char *s, int64_t *out)
{
	char *end;
	double d = strtod(s, &end);
	if (end == s || *end || !isfinite(d) || d < 0 || d > 36500)
		return -EINVAL;
	*out = (int64_t)llround(d * DAY_US);
	return 0;
}

int retention_parse_class(const char *arg, struct stg_class *out)
{
	char buf[128];
	if (snprintf(buf, sizeof buf, "%s", arg) >= (int)sizeof buf)
		return -EINVAL;
	char *save = NULL, *name = strtok_r(buf, ":", &save);
	char *min = strtok_r(NULL, ":", &save), *max = strtok_r(NULL, ":", &save);
	char *share = strtok_r(NULL, ":", &save);
	memset(out, 0, sizeof *out);
	if (!name || !min || !max || strtok_r(NULL, ":", &save) ||
	    strlen(name) >= sizeof out->name)
		return -EINVAL;
	memcpy(out->name, name, strlen(name) + 1);
	if (parse_days(min, &out->min_us) || parse_days(max, &out->max_us))
		return -EINVAL;
	if (out->max_us && out->min_us > out->max_us)
		return -EINVAL;
	if (share) {
		char *end;
		long pct = strtol(share, &end, 10);
		if (end == share || *end || pct < 0 || pct > 100)
			return -EINVAL;
		out->share_pct = (uint32_t)pct;
	}
	return 0;
}

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
