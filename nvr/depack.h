/*
 * depack.h - turns a stream of RTP packets back into video access units
 * (one per frame): H.264 per RFC 6184 (single NAL unit, STAP-A, FU-A) and
 * H.265 per RFC 7798 (single NAL unit, AP, FU).
 *
 * Output: each access unit in Annex B form, every NAL unit preceded by a
 * 4-byte start code (00 00 00 01), NAL units in the order received. A frame
 * ends when the marker bit is set or the RTP timestamp changes. A key frame
 * (H.264 IDR, H.265 IRAP) that arrives without parameter sets gets the last
 * known ones (in-band or from the SDP) put in front of it, so every stored
 * key frame can start decoding on its own; key frames that carry their own
 * are passed through byte for byte.
 *
 * Loss: a gap in RTP sequence numbers (or a broken fragment) discards the
 * frame being assembled and every frame after it until the next key frame,
 * counting each discarded frame in stats.frames_lost. Packets are never
 * reordered here (TCP does not reorder; UDP reordering shows as a gap).
 *
 * One struct depack per stream; not thread-safe; no I/O. Memory: one
 * assembly buffer that grows to the largest frame (bounded by
 * DEPACK_MAX_FRAME; larger frames are discarded and counted).
 */
#ifndef NVR_DEPACK_H
#define NVR_DEPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtp.h"
#include "storage.h"   /* enum stg_codec */

#define DEPACK_MAX_FRAME (8u << 20)

struct depack_frame {
	const uint8_t *data;      /* valid during the callback only */
	size_t size;
	uint32_t rtp_timestamp;
	bool key;
};

typedef void (*depack_frame_fn)(void *user, const struct depack_frame *f);

struct depack_stats {
	uint64_t packets;
	uint64_t frames;          /* frames delivered */
	uint64_t frames_lost;     /* frames discarded (gaps, bad packets, size) */
	uint64_t gaps;            /* sequence gaps seen */
	uint64_t bad_packets;     /* malformed payloads */
};

struct depack {
	enum stg_codec codec;
	depack_frame_fn on_frame;
	void *user;
	struct depack_stats stats;
	/* private */
	uint8_t *buf;              /* sizeof params bytes of room, then the frame */
	size_t len, cap;           /* frame bytes after the room; allocated bytes */
	uint8_t params[4096];      /* Annex B VPS/SPS/PPS last seen, in that order */
	size_t params_len;
	uint16_t ps_off[3], ps_len[3];   /* each kind's NAL units inside params */
	struct depack_ps_ref {
		uint8_t kind;           /* 0 VPS, 1 SPS, 2 PPS */
		uint32_t off, len;      /* NAL unit (without start code) in the frame */
	} frame_ps[8];             /* parameter sets of the frame being assembled */
	uint8_t frame_ps_count;
	uint8_t cur_ps_mask;       /* kinds of parameter set in the frame */
	bool have_seq;
	uint16_t next_seq;
	bool have_ts;              /* a frame (possibly broken) is open */
	uint32_t cur_ts;
	bool cur_key, cur_vcl, cur_broken;
	bool in_fu;
	uint8_t fu_type;
	bool waiting_for_key;      /* after loss, until the next key frame */
	uint32_t lost_ts;          /* timestamp of the last frame counted lost */
	bool lost_ts_valid;
};

/* param_sets: Annex B parameter sets from the SDP (may be NULL/0).
 * Returns 0 or -EINVAL for a codec other than H.264/H.265. */
int depack_init(struct depack *d, enum stg_codec codec,
                const uint8_t *param_sets, size_t param_len,
                depack_frame_fn on_frame, void *user);

/* Feeds one RTP packet (already parsed). Calls on_frame for each frame it
 * completes. Returns 0, or -EBADMSG for a malformed payload (counted; the
 * stream goes on from the next key frame), or -ENOMEM when the buffer could
 * not grow (the frame is counted lost, same recovery). Frames are delivered
 * from the first one received, key or not; a caller that stores only
 * decodable footage skips until the first frame with key set. */
int depack_push(struct depack *d, const struct rtp_packet *pkt);

/* Delivers the frame being assembled if it is whole (end of stream). */
void depack_flush(struct depack *d);

void depack_free(struct depack *d);

#endif
