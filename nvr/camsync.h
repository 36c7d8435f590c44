/*
 * camsync.h - keeps the ingest in step with the camera registry.
 *
 * The registry may change under a running daemon (nvrctl import, the API):
 * camsync_poll() compares the registry's generation with the one it last
 * applied and, when it moved, walks the registry once: enabled cameras not
 * being recorded are added, cameras deleted or disabled are removed, and
 * cameras whose stream settings changed (URL, credentials, transport) are
 * restarted. Cameras that did not change keep recording untouched.
 */
#ifndef NVR_CAMSYNC_H
#define NVR_CAMSYNC_H

#include "ingest.h"
#include "registry.h"

struct camsync;

int camsync_init(struct registry *reg, struct ingest *in, struct camsync **out);

/* Applies registry changes, if any. Returns the number of cameras added,
 * removed or restarted, or a negative errno. */
int camsync_poll(struct camsync *cs);

/* Cameras currently handed to the ingest. */
uint32_t camsync_count(const struct camsync *cs);
/* Id of the i-th of them (0 <= i < camsync_count), in id order. */
uint32_t camsync_id(const struct camsync *cs, uint32_t i);

void camsync_free(struct camsync *cs);

#endif
