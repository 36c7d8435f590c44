/*
 * rtp.c - RTP header and RTCP sender report parsing (RFC 3550), see rtp.h.
 *
 * Every length inside a packet (CSRC count, extension length, padding
 * count, RTCP length words) is checked against the bytes actually there
 * before it is used: these packets come from the network.
 */
#include <errno.h>
#include <string.h>

#include "rtp.h"

#define RTP_HEADER 12
#define RTCP_SR_BYTES 28       /* header, SSRC, NTP, RTP time, counts */
#define RTCP_PT_SR 200
#define NTP_UNIX_OFFSET 2208988800u   /* seconds from 1900 to 1970 */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int rtp_parse(const uint8_t *buf, size_t len, struct rtp_packet *out)
{
	memset(out, 0, sizeof *out);
	if (len < RTP_HEADER || buf[0] >> 6 != 2)
		return -EBADMSG;
	bool padding = buf[0] & 0x20, extension = buf[0] & 0x10;
	size_t off = RTP_HEADER + 4u * (buf[0] & 0x0f);
	if (off > len)
		return -EBADMSG;
	if (extension) {
		if (len - off < 4)
			return -EBADMSG;
		size_t ext = 4u * be16(buf + off + 2);
		if (len - off - 4 < ext)
			return -EBADMSG;
		off += 4 + ext;
	}
	size_t end = len;
	if (padding) {
		uint8_t pad = buf[len - 1];
		if (pad == 0 || pad > len - off)
			return -EBADMSG;
		end -= pad;
	}
	out->payload_type = buf[1] & 0x7f;
	out->marker = buf[1] & 0x80;
	out->seq = be16(buf + 2);
	out->timestamp = be32(buf + 4);
	out->ssrc = be32(buf + 8);
	out->payload = buf + off;
	out->payload_len = end - off;
	return 0;
}

int rtcp_find_sender_report(const uint8_t *buf, size_t len,
                            struct rtcp_sender_report *out)
{
	memset(out, 0, sizeof *out);
	if (len < 4)
		return -EBADMSG;
	size_t off = 0;
	while (off < len) {
		if (len - off < 4 || buf[off] >> 6 != 2)
			return -EBADMSG;
		size_t size = 4u * ((size_t)be16(buf + off + 2) + 1);
		if (size > len - off)
			return -EBADMSG;
		if (buf[off + 1] == RTCP_PT_SR) {
			if (size < RTCP_SR_BYTES)
				return -EBADMSG;
			const uint8_t *p = buf + off;
			out->ssrc = be32(p + 4);
			out->ntp = (uint64_t)be32(p + 8) << 32 | be32(p + 12);
			out->rtp_timestamp = be32(p + 16);
			return 1;
		}
		off += size;
	}
	return 0;
}

int64_t rtp_ntp_to_unix_us(uint64_t ntp)
{
	uint64_t secs = ntp >> 32;
	uint64_t frac = ntp & 0xffffffffu;
	/* RFC 4330 section 3: with the top bit clear, the seconds count from
	 * the next NTP era (7 February 2036 onwards). */
	if (!(secs & 0x80000000u))
		secs += 1ull << 32;
	int64_t unix_s = (int64_t)secs - NTP_UNIX_OFFSET;
	int64_t us = (int64_t)((frac * 1000000u + (1u << 31)) >> 32);
	return unix_s * 1000000 + us;
}
