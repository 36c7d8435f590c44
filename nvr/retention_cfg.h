/*
 * retention_cfg.h - the daemon's side of retention: each camera's class
 * from the registry's retention_class field (the classes themselves are the
 * configuration's [class NAME] sections, handed to the engine by nvrd).
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

/* Gives every camera of the registry its class, if the registry changed
 * since *generation (updated). Returns the number of cameras whose class
 * was set, or a negative errno. */
int retention_sync_cameras(struct stg *stg, struct registry *reg, uint64_t *generation);

#endif
