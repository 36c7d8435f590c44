/*
 * sdp.h - the part of SDP (RFC 4566) an RTSP camera's DESCRIBE answer
 * needs: the session and media control URLs, and for each video media its
 * payload type, codec (H.264 per RFC 6184, H.265 per RFC 7798), clock rate
 * and the parameter sets carried in a=fmtp (sprop-parameter-sets;
 * sprop-vps/sprop-sps/sprop-pps), decoded from base64.
 *
 * Pure parsing over caller bytes, bounded by len (tests/fuzz/fuzz_sdp.c).
 */
#ifndef NVR_SDP_H
#define NVR_SDP_H

#include <stddef.h>
#include <stdint.h>

#include "storage.h"   /* enum stg_codec */

#define SDP_MAX_MEDIA 8
#define SDP_MAX_PARAM_BYTES 2048

struct sdp_media {
	char type[16];            /* "video", "audio", ... */
	int payload_type;         /* first format of the m= line, -1 none */
	enum stg_codec codec;     /* from a=rtpmap; STG_CODEC_UNKNOWN otherwise */
	int clock_rate;           /* from a=rtpmap, 90000 typical */
	char control[512];        /* a=control value, "" when absent */
	int packetization_mode;   /* H.264 fmtp, 0 when absent */
	/* Parameter sets from fmtp, each preceded by a 4-byte Annex B start
	 * code (00 00 00 01), in the order VPS, SPS, PPS. */
	uint8_t param_sets[SDP_MAX_PARAM_BYTES];
	size_t param_sets_len;
};

struct sdp_session {
	char control[512];        /* session-level a=control, "" when absent */
	int media_count;
	struct sdp_media media[SDP_MAX_MEDIA];
};

/* Parses SDP text (lines ending in CRLF or LF). Returns 0, or -EBADMSG if
 * it is not SDP (no v=0 line first). Unknown lines are ignored; media past
 * SDP_MAX_MEDIA are ignored; bad base64 in sprop values leaves
 * param_sets_len at what decoded cleanly before it. */
int sdp_parse(const char *text, size_t len, struct sdp_session *out);

/* First media of type "video" with a known codec, or NULL. */
const struct sdp_media *sdp_find_video(const struct sdp_session *s);

#endif
