/*
 * rtp.h - RTP and RTCP packets (RFC 3550): the fixed header, CSRCs,
 * header extension and padding of RTP; the sender report of RTCP, which
 * maps a stream's RTP timestamps to the camera's NTP wall clock.
 *
 * Pure parsing over caller bytes (tests/fuzz/fuzz_rtp.c).
 */
#ifndef NVR_RTP_H
#define NVR_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rtp_packet {
	uint8_t payload_type;
	bool marker;
	uint16_t seq;
	uint32_t timestamp;
	uint32_t ssrc;
	const uint8_t *payload;   /* after CSRCs and extension, before padding */
	size_t payload_len;
};

/* Returns 0, or -EBADMSG (version not 2, too short, CSRC/extension/padding
 * past the end). */
int rtp_parse(const uint8_t *buf, size_t len, struct rtp_packet *out);

struct rtcp_sender_report {
	uint32_t ssrc;
	uint64_t ntp;             /* 32.32 fixed point seconds since 1900 */
	uint32_t rtp_timestamp;   /* the RTP time matching ntp */
};

/* Walks a compound RTCP packet and fills the first sender report (PT 200).
 * Returns 1 when one was found, 0 when the packet is valid but holds none,
 * -EBADMSG when malformed. */
int rtcp_find_sender_report(const uint8_t *buf, size_t len,
                            struct rtcp_sender_report *out);

/* NTP 32.32 to Unix microseconds. */
int64_t rtp_ntp_to_unix_us(uint64_t ntp);

#endif
