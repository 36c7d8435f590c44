/*
 * simulate.h - the recorder's embedded demo: it starts the camera
 * simulator (nvr-camsim, a separate process serving RTSP from fixture
 * files) and registers its cameras in the registry, so that a fresh
 * install records real RTSP streams with no camera on the network.
 *
 * The simulated cameras get ids 1..N, URLs rtsp://127.0.0.1:PORT/cam/k,
 * and places around Wuhai (Inner Mongolia): camera k in district k mod 3
 * (Haibowan, Hainan, Wuda, around their real centres), a site of a kind
 * chosen by k mod 10 (street crossing, school, bank, checkpoint, village,
 * residential compound; the layout is described in simulate.c), a name
 * such as "Haibowan - Renmin Rd & Binhe St" or "Wuda No.2 Middle School
 * gate", the site and district fields set, and tags by kind: street;
 * school;street; bank;street; checkpoint; village; residential. The video
 * is the demo fixture (640x360, 384 kbit/s; H.264 for odd ids, H.265 for
 * even ones), or any fixture of the directory when it is missing.
 * They are imported in one registry transaction (all or nothing); an
 * existing registry entry with the same id is updated (URL), so restarting
 * the demo on another port keeps its footage under the same cameras.
 */
#ifndef NVR_SIMULATE_H
#define NVR_SIMULATE_H

#include <stdint.h>

#include "registry.h"

struct sim_config {
	const char *camsim_path;   /* the nvr-camsim binary */
	const char *fixture_dir;   /* holds h264-*.264 / h265-*.265 (make-fixtures.sh) */
	uint32_t cameras;
	uint16_t port;             /* RTSP port on 127.0.0.1 */
	struct registry *registry;
};

struct sim;

/* Spawns the simulator, waits (10 s at most) for its "ready" line, and
 * registers its cameras. Returns 0 or a negative errno (logged). */
int sim_start(const struct sim_config *cfg, struct sim **out);

/* Stops the simulator (SIGTERM, then waits) and frees it. */
void sim_stop(struct sim *s);

#endif
