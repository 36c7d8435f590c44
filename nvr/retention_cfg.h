/*
 * retention_cfg.h - the daemon's side of retention: classes from the
 * command line (`--retention-class NAME:MIN_DAYS:MAX_DAYS[:SHARE_PCT]`) and
 * each camera's class from the registry's retention_class field.
 *
 * The storage engine keeps classes, camera classes, holds and alarms
 * (storage.h); this module only feeds it. A camera whose registry class is
 * empty belongs to the default class; one whose class is not configured is
 * put in the default class too, with a log line naming both.
 */
#ifndef NVR_RETENTION_CFG_H
#define NVR_RETENTION_CFG_H

#include <stdint.h>

#include "registry.h"
#include "storage.h"

/* Parses "NAME:MIN_DAYS:MAX_DAYS[:SHARE_PCT]" (days may have a fraction;
 * MAX_DAYS 0 means no maximum). Returns 0 or -EINVAL. */
int retention_parse_class(const char *arg, struct stg_class *out);

/* Gives every camera of the registry its class, if the registry changed
 * since *generation (updated). Returns the number of cameras whose class
 * was set, or a negative errno. */
int retention_sync_cameras(struct stg *stg, struct registry *reg, uint64_t *generation);

#endif
