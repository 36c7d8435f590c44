/*
 * fuzz_rtp.c - libFuzzer target for RTP, RTCP and the depacketizers
 * (nvr/rtp.c, nvr/depack.c). The input is a sequence of packets, each
 * preceded by its length as 2 bytes big-endian (the last one takes what is
 * left). Every packet is parsed as RTP and pushed into an H.264 and an
 * H.265 depacketizer (both primed with parameter sets so that insertion
 * runs too), and parsed as RTCP. Delivered frames are read whole (so
 * AddressSanitizer checks every byte) and must be Annex B; the counters
 * must add up: no more frames delivered or lost than packets pushed.
 * Static names carry the rtpf_ prefix (see fuzz_rtsp.c).
 */
#include <stdlib.h>
#include <string.h>

#include "depack.h"
#include "rtp.h"

static const uint8_t rtpf_h264_sets[] = {
	0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x15, 0xd9, 0x01, 0x41,
	0, 0, 0, 1, 0x68, 0xcb, 0x8c, 0xb2,
};
static const uint8_t rtpf_h265_sets[] = {
	0, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01, 0xff,
	0, 0, 0, 1, 0x42, 0x01, 0x01, 0x04, 0x08,
	0, 0, 0, 1, 0x44, 0x01, 0xc1, 0x72,
};

static void rtpf_on_frame(void *user, const struct depack_frame *f)
{
	unsigned *sum = user;
	if (f->size < 5 || f->size > DEPACK_MAX_FRAME + 4096 ||
	    memcmp(f->data, "\0\0\0\1", 4))
		abort();
	for (size_t i = 0; i < f->size; i++)
		*sum += f->data[i];
}

static void rtpf_check(const struct depack *d)
{
	const struct depack_stats *s = &d->stats;
	if (s->frames + s->frames_lost > s->packets || s->gaps > s->packets)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct depack h264, h265;
	unsigned sum = 0;
	if (depack_init(&h264, STG_CODEC_H264, rtpf_h264_sets, sizeof rtpf_h264_sets,
	                rtpf_on_frame, &sum) < 0 ||
	    depack_init(&h265, STG_CODEC_H265, rtpf_h265_sets, sizeof rtpf_h265_sets,
	                rtpf_on_frame, &sum) < 0)
		abort();
	size_t off = 0;
	while (size - off >= 2) {
		size_t n = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (n > size - off)
			n = size - off;
		/* an exact copy, so that reading past the packet is caught */
		uint8_t *pkt = malloc(n ? n : 1);
		if (!pkt)
			break;
		memcpy(pkt, data + off, n);
		off += n;
		struct rtp_packet p;
		if (rtp_parse(pkt, n, &p) == 0) {
			if (p.payload < pkt || p.payload + p.payload_len > pkt + n)
				abort();
			(void)depack_push(&h264, &p);
			(void)depack_push(&h265, &p);
		}
		struct rtcp_sender_report sr;
		if (rtcp_find_sender_report(pkt, n, &sr) == 1)
			(void)rtp_ntp_to_unix_us(sr.ntp);
		free(pkt);
	}
	depack_flush(&h264);
	depack_flush(&h265);
	rtpf_check(&h264);
	rtpf_check(&h265);
	depack_free(&h264);
	depack_free(&h265);
	return 0;
}
