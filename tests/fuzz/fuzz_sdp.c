/*
 * fuzz_sdp.c - libFuzzer target for the SDP parser (nvr/sdp.c): a camera's
 * DESCRIBE answer must never crash it or make it read past its length.
 * What it returns must hold together: every string NUL-terminated inside
 * its field, parameter sets within bounds and starting with a start code,
 * and accepted by the depacketizer as its initial parameter sets.
 * Static names carry the sdpf_ prefix (see fuzz_rtsp.c).
 */
#include <stdlib.h>
#include <string.h>

#include "depack.h"
#include "rtsp_msg.h"
#include "sdp.h"

static void sdpf_no_frame(void *user, const struct depack_frame *f)
{
	(void)user;
	(void)f;
	abort();   /* nothing is pushed: no frame can come out */
}

static void sdpf_check_media(const struct sdp_media *m)
{
	char url[1024];
	if (strnlen(m->type, sizeof m->type) >= sizeof m->type ||
	    strnlen(m->control, sizeof m->control) >= sizeof m->control ||
	    m->param_sets_len > sizeof m->param_sets ||
	    m->payload_type < -1 || m->payload_type > 127)
		abort();
	if (m->param_sets_len && (m->param_sets_len < 5 || memcmp(m->param_sets, "\0\0\0\1", 4)))
		abort();
	(void)rtsp_resolve_control("rtsp://10.0.0.1:554/s", m->control, url, sizeof url);
	if (m->codec == STG_CODEC_H264 || m->codec == STG_CODEC_H265) {
		struct depack d;
		if (depack_init(&d, m->codec, m->param_sets, m->param_sets_len,
		                sdpf_no_frame, NULL) < 0)
			abort();
		depack_free(&d);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sdp_session s;
	if (sdp_parse((const char *)data, size, &s) < 0)
		return 0;
	if (s.media_count < 0 || s.media_count > SDP_MAX_MEDIA ||
	    strnlen(s.control, sizeof s.control) >= sizeof s.control)
		abort();
	for (int i = 0; i < s.media_count; i++)
		sdpf_check_media(&s.media[i]);
	(void)sdp_find_video(&s);
	return 0;
}
