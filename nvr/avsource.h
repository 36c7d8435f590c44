/*
 * avsource.h - cameras that do not speak RTSP (file, http, rtmp, and
 * whatever Debian's libavformat opens), recorded by a bounded pool of
 * threads: each thread opens one source with libavformat, reads its video
 * packets (no transcoding), turns them into Annex B access units
 * (h264_mp4toannexb / hevc_mp4toannexb when the container stores AVCC) and
 * puts them into the storage engine with arrival wall-clock times paced by
 * the stream's own timestamps. A source that ends or fails is retried after
 * the same backoff as RTSP sessions. More sources than threads wait in
 * INGEST_WAITING_WORKER.
 *
 * Used by ingest.c only.
 */
#ifndef NVR_AVSOURCE_H
#define NVR_AVSOURCE_H

#include "ingest.h"

struct avsource_pool;

int avsource_pool_start(const struct ingest_config *cfg,
                        struct avsource_pool **out);
int avsource_add(struct avsource_pool *p, const struct camera_record *c);
int avsource_remove(struct avsource_pool *p, uint32_t id);
/* -ENOENT when the pool does not hold this camera. */
int avsource_status(struct avsource_pool *p, uint32_t id,
                    struct ingest_camera_status *out);
void avsource_totals(struct avsource_pool *p, struct ingest_totals *out);
void avsource_pool_stop(struct avsource_pool *p);

#endif
