/*
 * rtsp_client.h - RTSP cameras recorded by one event loop (a "shard"):
 * one session per camera, from connect to TEARDOWN, with reconnects.
 *
 * ingest.c starts one shard per loop thread and gives each camera to shard
 * (id modulo shards). All functions may be called from any thread except
 * the shard's own; they run on the loop through loop_call(), so they block
 * for at most one loop iteration. The session life cycle, memory and time
 * rules are described at the top of rtsp_client.c.
 */
#ifndef NVR_RTSP_CLIENT_H
#define NVR_RTSP_CLIENT_H

#include <stdint.h>

#include "ingest.h"
#include "registry.h"
#include "resolver.h"

struct rtsp_shard;

/* `cfg` is copied (defaults filled in by the caller). */
int rtsp_shard_start(const struct ingest_config *cfg, uint32_t index,
                     uint32_t shards, struct resolver *res,
                     struct rtsp_shard **out);

/* -EEXIST if the camera is already in the shard, -EINVAL for a URL that is
 * not rtsp:// or a transport other than "", "tcp" or "udp". */
int rtsp_shard_add(struct rtsp_shard *sh, const struct camera_record *c);
/* rtsp_shard_add of n cameras in one call into the loop; results[i] is
 * cams[i]'s. */
void rtsp_shard_add_many(struct rtsp_shard *sh, const struct camera_record *const *cams, size_t n,
                         int *results);

/* TEARDOWN and forget. -ENOENT if the shard does not hold the camera. */
int rtsp_shard_remove(struct rtsp_shard *sh, uint32_t id);

/* -ENOENT if the shard does not hold the camera. */
int rtsp_shard_status(struct rtsp_shard *sh, uint32_t id,
                      struct ingest_camera_status *out);
/* The statuses of those of ids[0..n) that this shard records and that are
 * not yet found[]: out[i] filled, found[i] set. One call into the loop per
 * RTSP_STATUS_BATCH cameras instead of one per camera. */
void rtsp_shard_status_many(struct rtsp_shard *sh, const uint32_t *ids, size_t n,
                            struct ingest_camera_status *out, bool *found);

/* Adds the shard's cameras to *out. */
void rtsp_shard_totals(struct rtsp_shard *sh, struct ingest_totals *out);

/* TEARDOWN of every session (bounded wait), flushes, stops the loop.
 * With final, adds the shard's cameras as they were when it stopped, with
 * every frame recorded until the end (what waited in the sockets). */
void rtsp_shard_stop(struct rtsp_shard *sh, struct ingest_totals *final);

#endif
