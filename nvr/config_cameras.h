/*
 * config_cameras.h - merges the [camera ID] sections of the configuration
 * file into the camera registry, at start and on every reload.
 *
 * The registry stays the source of truth for recording (camsync.h follows
 * it); the file is one more writer, next to `nvrctl cameras import`:
 *   - every camera of the file is written into the registry, unless the
 *     registry already holds exactly that record: an id listed in the file
 *     belongs to the file, and edits made to it with nvrctl are overwritten
 *     at the next start or reload;
 *   - the ids taken from the file are remembered in DIR/config-cameras
 *     (one per line); a camera that was in the file and no longer is gets
 *     deleted from the registry;
 *   - cameras that never were in the file (imported with nvrctl, the demo's
 *     simulated cameras) are never touched.
 * DIR/config-cameras is rewritten (temporary file, fsync, rename) with the
 * union of the old and new ids before the registry is changed, and with
 * the new ids after, so that a crash in between can only leave an id too
 * many, which the next merge deletes if the file no longer lists it.
 */
#ifndef NVR_CONFIG_CAMERAS_H
#define NVR_CONFIG_CAMERAS_H

#include "config.h"
#include "registry.h"

struct cfgcams_result {
	unsigned written;     /* added or changed */
	unsigned unchanged;
	unsigned removed;
};

/* Merges c's cameras into reg; data_dir holds config-cameras. Returns 0 or
 * a negative errno (logged); cameras written before an error stay. */
int cfgcams_apply(struct registry *reg, const char *data_dir, const struct nvr_config *c,
                  struct cfgcams_result *res);

#endif
