/*
 * test_rtp.c - RTP header and RTCP sender report parsing (nvr/rtp.c): the
 * optional parts of the header (CSRCs, extension, padding) and their
 * bounds, a compound RTCP packet as GStreamer sends it, NTP time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "rtp.h"

Test(rtp, plain_header)
{
	const uint8_t p[] = { 0x80, 0xe0, 0x79, 0x8f, 0x41, 0x06, 0x7b, 0x1f,
	                      0x53, 0x3f, 0xda, 0xc6, 0x40, 0x01, 0x0c };
	struct rtp_packet r;
	cr_assert_eq(rtp_parse(p, sizeof p, &r), 0);
	cr_assert_eq(r.payload_type, 96);
	cr_assert(r.marker);
	cr_assert_eq(r.seq, 0x798f);
	cr_assert_eq(r.timestamp, 0x41067b1fu);
	cr_assert_eq(r.ssrc, 0x533fdac6u);
	cr_assert_eq(r.payload, p + 12);
	cr_assert_eq(r.payload_len, 3);
}

Test(rtp, csrc_extension_padding)
{
	uint8_t p[64];
	size_t n = 0;
	p[n++] = 0x80 | 0x20 | 0x10 | 2;   /* padding, extension, 2 CSRCs */
	p[n++] = 97;
	memset(p + n, 0x11, 10);
	n += 10;
	memset(p + n, 0x22, 8);            /* CSRCs */
	n += 8;
	p[n++] = 0xbe; p[n++] = 0xde; p[n++] = 0; p[n++] = 2;   /* 2 words */
	memset(p + n, 0x33, 8);
	n += 8;
	const size_t payload_at = n;
	memcpy(p + n, "\x65\x88\x84", 3);
	n += 3;
	p[n++] = 0; p[n++] = 0; p[n++] = 3;   /* 3 bytes of padding */
	struct rtp_packet r;
	cr_assert_eq(rtp_parse(p, n, &r), 0);
	cr_assert_eq(r.payload_type, 97);
	cr_assert(!r.marker);
	cr_assert_eq(r.payload, p + payload_at);
	cr_assert_eq(r.payload_len, 3);
	cr_assert_eq(r.payload[0], 0x65);

	/* every length pointing past the end is refused */
	cr_assert_eq(rtp_parse(p, 11, &r), -EBADMSG);
	cr_assert_eq(rtp_parse(p, 12 + 7, &r), -EBADMSG, "CSRCs cut");
	cr_assert_eq(rtp_parse(p, 12 + 8 + 3, &r), -EBADMSG, "extension header cut");
	cr_assert_eq(rtp_parse(p, 12 + 8 + 4 + 7, &r), -EBADMSG, "extension cut");
	uint8_t q[64];
	memcpy(q, p, n);
	q[n - 1] = 7;   /* more padding than payload */
	cr_assert_eq(rtp_parse(q, n, &r), -EBADMSG);
	q[n - 1] = 0;   /* a padding count of zero */
	cr_assert_eq(rtp_parse(q, n, &r), -EBADMSG);
	q[n - 1] = 6;   /* all of the payload is padding: empty, but valid */
	cr_assert_eq(rtp_parse(q, n, &r), 0);
	cr_assert_eq(r.payload_len, 0);
	q[0] = 0x40;    /* version 1 */
	cr_assert_eq(rtp_parse(q, n, &r), -EBADMSG);
}

/* SR + SDES exactly as gst-rtsp-server sent them in a capture. */
static const uint8_t gst_rtcp[] = {
	0x80, 0xc8, 0x00, 0x06, 0x02, 0xed, 0x15, 0xbb, 0xee, 0xb6, 0x3f, 0x04,
	0x23, 0x2c, 0xd7, 0xcf, 0x58, 0x79, 0xb9, 0xa6, 0x00, 0x00, 0x01, 0x55,
	0x00, 0x04, 0xd1, 0xd4, 0x81, 0xca, 0x00, 0x0c, 0x02, 0xed, 0x15, 0xbb,
	0x01, 0x1b, 0x75, 0x73, 0x65, 0x72, 0x33, 0x39, 0x33, 0x39, 0x39, 0x35,
	0x38, 0x38, 0x38, 0x35, 0x40, 0x68, 0x6f, 0x73, 0x74, 0x2d, 0x37, 0x33,
	0x38, 0x36, 0x63, 0x35, 0x66, 0x06, 0x09, 0x47, 0x53, 0x74, 0x72, 0x65,
	0x61, 0x6d, 0x65, 0x72, 0x00, 0x00, 0x00, 0x00,
};

Test(rtp, rtcp_sender_report)
{
	struct rtcp_sender_report sr;
	cr_assert_eq(rtcp_find_sender_report(gst_rtcp, sizeof gst_rtcp, &sr), 1);
	cr_assert_eq(sr.ssrc, 0x02ed15bbu);
	cr_assert_eq(sr.ntp, 0xeeb63f04232cd7cfull);
	cr_assert_eq(sr.rtp_timestamp, 0x5879b9a6u);
	/* 0xeeb63f04 s after 1900 = 1795932292 s after 1970 (2026-11-29);
	 * 0x232cd7cf / 2^32 s = 137403.4 us */
	cr_assert_eq(rtp_ntp_to_unix_us(sr.ntp), 1795932292137403LL);

	/* SR after a receiver report in the compound packet */
	uint8_t c[128];
	const uint8_t rr[] = { 0x80, 0xc9, 0x00, 0x01, 1, 2, 3, 4 };
	memcpy(c, rr, sizeof rr);
	memcpy(c + sizeof rr, gst_rtcp, sizeof gst_rtcp);
	cr_assert_eq(rtcp_find_sender_report(c, sizeof rr + sizeof gst_rtcp, &sr), 1);
	cr_assert_eq(sr.ssrc, 0x02ed15bbu);

	/* only the SDES: valid, no SR */
	cr_assert_eq(rtcp_find_sender_report(gst_rtcp + 28, sizeof gst_rtcp - 28, &sr), 0);
	cr_assert_eq(rtcp_find_sender_report(rr, sizeof rr, &sr), 0);
}

Test(rtp, rtcp_malformed)
{
	struct rtcp_sender_report sr;
	cr_assert_eq(rtcp_find_sender_report(gst_rtcp, 0, &sr), -EBADMSG);
	cr_assert_eq(rtcp_find_sender_report(gst_rtcp, 3, &sr), -EBADMSG);
	cr_assert_eq(rtcp_find_sender_report(gst_rtcp, 27, &sr), -EBADMSG, "SR cut");
	uint8_t c[sizeof gst_rtcp];
	memcpy(c, gst_rtcp, sizeof c);
	c[3] = 0x40;   /* length far past the end */
	cr_assert_eq(rtcp_find_sender_report(c, sizeof c, &sr), -EBADMSG);
	memcpy(c, gst_rtcp, sizeof c);
	c[0] = 0x00;   /* version 0 */
	cr_assert_eq(rtcp_find_sender_report(c, sizeof c, &sr), -EBADMSG);
	memcpy(c, gst_rtcp, sizeof c);
	c[3] = 0x01;   /* an SR shorter than its fixed part */
	cr_assert_eq(rtcp_find_sender_report(c, 8, &sr), -EBADMSG);
	/* garbage after a valid SDES only */
	cr_assert_eq(rtcp_find_sender_report(gst_rtcp + 28, sizeof gst_rtcp - 28 - 2, &sr),
	             -EBADMSG);
}

Test(rtp, ntp_to_unix)
{
	/* the Unix epoch */
	cr_assert_eq(rtp_ntp_to_unix_us((uint64_t)2208988800u << 32), 0);
	/* half a second */
	cr_assert_eq(rtp_ntp_to_unix_us((uint64_t)2208988800u << 32 | 0x80000000u), 500000);
	/* 2036-02-07T06:28:16Z is NTP second 0 of era 1 */
	cr_assert_eq(rtp_ntp_to_unix_us(0), 2085978496LL * 1000000);
	cr_assert_eq(rtp_ntp_to_unix_us((uint64_t)10 << 32), 2085978506LL * 1000000);
}
