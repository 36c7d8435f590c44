/*
 * test_rtsp_msg.c - RTSP message parsing and the TCP stream demultiplexer
 * (nvr/rtsp_msg.c): responses as GStreamer's server and cameras send them,
 * messages split across reads at every byte, bodies, '$' interleaved
 * frames between messages, malformed input, and the Session, Transport,
 * URL and control-resolution functions.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtsp_msg.h"

static const char describe_reply[] =
	"RTSP/1.0 200 OK\r\n"
	"CSeq: 1\r\n"
	"Content-Type: application/sdp\r\n"
	"Content-Base: rtsp://127.0.0.1:8654/test/\r\n"
	"Server: GStreamer RTSP server\r\n"
	"Date: Sun, 29 Nov 2026 06:04:22 GMT\r\n"
	"Content-Length: 25\r\n"
	"\r\n"
	"v=0\r\n"
	"s=x\r\n"
	"m=video 0 RTP\r\n";   /* 25 bytes */

static bool str_is(const struct rtsp_str *s, const char *lit)
{
	return s && s->len == strlen(lit) && !memcmp(s->p, lit, s->len);
}

static int parse(const char *s, struct rtsp_msg *m)
{
	return rtsp_msg_parse((const uint8_t *)s, strlen(s), m);
}

Test(rtsp_msg, response_with_body)
{
	struct rtsp_msg m;
	int n = parse(describe_reply, &m);
	cr_assert_eq(n, (int)strlen(describe_reply));
	cr_assert(m.is_response);
	cr_assert_eq(m.status, 200);
	cr_assert(str_is(&m.reason, "OK"));
	cr_assert_eq(m.cseq, 1);
	cr_assert_eq(m.header_count, 6);
	cr_assert(str_is(rtsp_msg_header(&m, "content-base"), "rtsp://127.0.0.1:8654/test/"));
	cr_assert(str_is(rtsp_msg_header(&m, "SERVER"), "GStreamer RTSP server"));
	cr_assert_null(rtsp_msg_header(&m, "Session"));
	cr_assert_eq(m.body_len, 25);
	cr_assert(!memcmp(m.body, "v=0\r\ns=x\r\nm=video 0 RTP\r\n", 25));
}

Test(rtsp_msg, split_at_every_byte_needs_more)
{
	struct rtsp_msg m;
	size_t len = strlen(describe_reply);
	uint8_t *copy = malloc(len);   /* exact size: ASan sees any overread */
	for (size_t cut = 0; cut < len; cut++) {
		memcpy(copy, describe_reply, cut);
		cr_assert_eq(rtsp_msg_parse(copy, cut, &m), 0, "cut at %zu", cut);
	}
	memcpy(copy, describe_reply, len);
	cr_assert_eq(rtsp_msg_parse(copy, len, &m), (int)len);
	free(copy);
}

Test(rtsp_msg, bare_lf_and_no_reason_and_folding)
{
	struct rtsp_msg m;
	const char *s = "RTSP/1.0 454\nCSeq: 12\nX-Long: one\n  two\nSession:\n\n";
	cr_assert_eq(parse(s, &m), (int)strlen(s));
	cr_assert_eq(m.status, 454);
	cr_assert_eq(m.reason.len, 0);
	cr_assert_eq(m.cseq, 12);
	const struct rtsp_str *v = rtsp_msg_header(&m, "x-long");
	cr_assert(v);
	cr_assert_eq(v->len, strlen("one\n  two"));
	cr_assert(!memcmp(v->p, "one\n  two", v->len));
	cr_assert(str_is(rtsp_msg_header(&m, "Session"), ""));
	cr_assert_eq(m.body_len, 0);
	cr_assert_null(m.body);
}

Test(rtsp_msg, request)
{
	struct rtsp_msg m;
	const char *s = "OPTIONS rtsp://10.1.1.1/cam RTSP/1.0\r\nCSeq: 7\r\nUser-Agent: nvrd\r\n\r\n";
	cr_assert_eq(parse(s, &m), (int)strlen(s));
	cr_assert(!m.is_response);
	cr_assert(str_is(&m.method, "OPTIONS"));
	cr_assert(str_is(&m.uri, "rtsp://10.1.1.1/cam"));
	cr_assert_eq(m.cseq, 7);
	const char *star = "GET_PARAMETER * RTSP/1.0\r\nCSeq: 8\r\n\r\n";
	cr_assert_eq(parse(star, &m), (int)strlen(star));
	cr_assert(str_is(&m.uri, "*"));
}

Test(rtsp_msg, malformed_messages)
{
	static char many[4096];
	size_t n = (size_t)snprintf(many, sizeof many, "RTSP/1.0 200 OK\r\n");
	for (int i = 0; i <= RTSP_MAX_HEADERS; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "X-H%d: v\r\n", i);
	snprintf(many + n, sizeof many - n, "\r\n");
	const char *bad[] = {
		"HTTP/1.1 200 OK\r\n\r\n",
		"RTSP/1.0 2000 OK\r\n\r\n",
		"RTSP/1.0 99 Low\r\n\r\n",
		"RTSP/1.0 600 High\r\n\r\n",
		"RTSP/1.0 20 OK\r\n\r\n",
		"RTSP/2.0 200 OK\r\n\r\n",
		"RTSP/1.0 200OK\r\n\r\n",
		"RTSP/1.0 200 OK\r\nNo colon here\r\n\r\n",
		"RTSP/1.0 200 OK\r\n: empty name\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: 12x\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: 65537\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
		"RTSP/1.0 200 OK\r\nX: a\rb\r\n\r\n",
		"RTSP/1.0 200 OK\r\nX: a\0b\r\n\r\n",
		"DESCRIBE rtsp://x\r\n\r\n",
		"DESCRIBE rtsp://x HTTP/1.0\r\n\r\n",
		"DESCRIBE  RTSP/1.0\r\n\r\n",
		" RTSP/1.0 200 OK\r\n\r\n",
		"\x01\x02garbage\r\n\r\n",
		many,
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rtsp_msg m;
		size_t len = strlen(bad[i]);
		if (i == 15)
			len = strlen("RTSP/1.0 200 OK\r\nX: a") + 1 + strlen("b\r\n\r\n");
		cr_assert_eq(rtsp_msg_parse((const uint8_t *)bad[i], len, &m), -EBADMSG,
		             "accepted #%zu: %s", i, bad[i]);
	}
	/* exactly RTSP_MAX_HEADERS headers is fine */
	n = (size_t)snprintf(many, sizeof many, "RTSP/1.0 200 OK\r\n");
	for (int i = 0; i < RTSP_MAX_HEADERS; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "X-H%d: v\r\n", i);
	n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
	struct rtsp_msg m;
	cr_assert_eq(rtsp_msg_parse((const uint8_t *)many, n, &m), (int)n);
	cr_assert_eq(m.header_count, RTSP_MAX_HEADERS);
}

Test(rtsp_msg, garbage_is_refused_before_a_line_ends)
{
	struct rtsp_msg m;
	cr_assert_eq(rtsp_msg_parse((const uint8_t *)"\x16\x03\x01", 3, &m), -EBADMSG,
	             "a TLS hello is not RTSP");
	cr_assert_eq(rtsp_msg_parse((const uint8_t *)"RTSP/1", 6, &m), 0);
	cr_assert_eq(rtsp_msg_parse((const uint8_t *)"PLA", 3, &m), 0);
	cr_assert_eq(rtsp_msg_parse((const uint8_t *)"PLAY rtsp://", 12, &m), 0);
}

Test(rtsp_msg, head_longer_than_the_limit)
{
	size_t len = RTSP_MAX_HEAD_BYTES + 100;
	char *s = malloc(len);
	size_t n = (size_t)sprintf(s, "RTSP/1.0 200 OK\r\nX-Pad: ");
	memset(s + n, 'a', len - n);
	cr_assert_eq(rtsp_msg_parse((const uint8_t *)s, RTSP_MAX_HEAD_BYTES - 1, (struct rtsp_msg[1]){ 0 }), 0);
	cr_assert_eq(rtsp_msg_parse((const uint8_t *)s, len, (struct rtsp_msg[1]){ 0 }), -EBADMSG);
	free(s);
}

/* ---- demultiplexing ---------------------------------------------------- */

/* A PLAY reply, two interleaved RTP/RTCP frames, a stray CRLF, a
 * GET_PARAMETER reply with a body, one more interleaved frame. */
static size_t make_stream(uint8_t *b)
{
	size_t n = 0;
	const char *play = "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678\r\n\r\n";
	memcpy(b + n, play, strlen(play));
	n += strlen(play);
	const uint8_t f0[] = { '$', 0, 0, 5, 0x80, 0x60, 0x00, 0x01, 0xaa };
	memcpy(b + n, f0, sizeof f0);
	n += sizeof f0;
	const uint8_t f1[] = { '$', 1, 0, 0 };   /* empty payload */
	memcpy(b + n, f1, sizeof f1);
	n += sizeof f1;
	const char *gp = "\r\nRTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 3\r\n\r\n$\r\n";
	memcpy(b + n, gp, strlen(gp));
	n += strlen(gp);
	b[n++] = '$';
	b[n++] = 2;
	b[n++] = 0x01;
	b[n++] = 0x00;
	for (int i = 0; i < 256; i++)
		b[n++] = (uint8_t)i;
	return n;
}

struct seen {
	int messages, frames;
	int cseq[4];
	uint8_t channel[4];
	size_t payload_len[4];
	uint8_t last_payload[256];
};

/* Feeds the stream in reads of `step` bytes, like a socket would. */
static void demux(const uint8_t *stream, size_t total, size_t step, struct seen *s)
{
	uint8_t *buf = malloc(total);
	size_t have = 0, fed = 0;
	memset(s, 0, sizeof *s);
	while (fed < total || have) {
		size_t take = total - fed < step ? total - fed : step;
		memcpy(buf + have, stream + fed, take);
		have += take;
		fed += take;
		for (;;) {
			struct rtsp_chunk c;
			rtsp_next_chunk(buf, have, &c);
			cr_assert_neq(c.kind, RTSP_CHUNK_ERROR, "step %zu", step);
			if (c.kind == RTSP_CHUNK_NEED_MORE)
				break;
			cr_assert(c.size > 0 && c.size <= have);
			if (c.kind == RTSP_CHUNK_MESSAGE) {
				cr_assert_lt(s->messages, 4);
				s->cseq[s->messages++] = c.msg.cseq;
			} else {
				cr_assert_lt(s->frames, 4);
				s->channel[s->frames] = c.channel;
				s->payload_len[s->frames++] = c.payload_len;
				if (c.payload_len == 256)
					memcpy(s->last_payload, c.payload, 256);
			}
			memmove(buf, buf + c.size, have - c.size);
			have -= c.size;
		}
		if (fed == total)
			break;
	}
	cr_assert_eq(have, 0, "step %zu: %zu bytes left", step, have);
	free(buf);
}

Test(rtsp_msg, interleaved_demux_at_every_read_size)
{
	uint8_t stream[1024];
	size_t total = make_stream(stream);
	for (size_t step = 1; step <= total; step++) {
		struct seen s;
		demux(stream, total, step, &s);
		cr_assert_eq(s.messages, 2);
		cr_assert_eq(s.cseq[0], 4);
		cr_assert_eq(s.cseq[1], 5);
		cr_assert_eq(s.frames, 3);
		cr_assert_eq(s.channel[0], 0);
		cr_assert_eq(s.payload_len[0], 5);
		cr_assert_eq(s.channel[1], 1);
		cr_assert_eq(s.payload_len[1], 0);
		cr_assert_eq(s.channel[2], 2);
		cr_assert_eq(s.payload_len[2], 256);
		for (int i = 0; i < 256; i++)
			cr_assert_eq(s.last_payload[i], i);
	}
}

Test(rtsp_msg, chunk_details)
{
	uint8_t stream[1024];
	size_t total = make_stream(stream);
	struct rtsp_chunk c;
	rtsp_next_chunk(stream, total, &c);
	cr_assert_eq(c.kind, RTSP_CHUNK_MESSAGE);
	cr_assert_eq(c.size, strlen("RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678\r\n\r\n"));
	cr_assert(str_is(rtsp_msg_header(&c.msg, "Session"), "12345678"));
	rtsp_next_chunk(stream + c.size, total - c.size, &c);
	cr_assert_eq(c.kind, RTSP_CHUNK_INTERLEAVED);
	cr_assert_eq(c.size, 9);
	cr_assert_eq(c.payload[4], 0xaa);
	rtsp_next_chunk(stream, 0, &c);
	cr_assert_eq(c.kind, RTSP_CHUNK_NEED_MORE);
	rtsp_next_chunk((const uint8_t *)"$\0", 2, &c);
	cr_assert_eq(c.kind, RTSP_CHUNK_NEED_MORE);
}

Test(rtsp_msg, garbage_in_the_stream_is_an_error)
{
	const char *bad[] = { "\x80\x60\x00\x01", "HTTP/1.1 400 Bad\r\n\r\n", "{\"json\":1}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rtsp_chunk c;
		rtsp_next_chunk((const uint8_t *)bad[i], strlen(bad[i]), &c);
		cr_assert_eq(c.kind, RTSP_CHUNK_ERROR, "#%zu", i);
	}
	/* a message, then garbage: the message still comes out whole */
	const char *s = "RTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n\x80garbage";
	struct rtsp_chunk c;
	rtsp_next_chunk((const uint8_t *)s, strlen(s), &c);
	cr_assert_eq(c.kind, RTSP_CHUNK_MESSAGE);
	cr_assert_eq(c.msg.cseq, 9);
	rtsp_next_chunk((const uint8_t *)s + c.size, strlen(s) - c.size, &c);
	cr_assert_eq(c.kind, RTSP_CHUNK_ERROR);
}

/* ---- Session and Transport --------------------------------------------- */

static struct rtsp_str S(const char *s)
{
	return (struct rtsp_str){ s, strlen(s) };
}

Test(rtsp_msg, session_header)
{
	char id[32];
	int t;
	struct rtsp_str v = S("sPb6S2p.FbKyS04x");
	cr_assert_eq(rtsp_parse_session(&v, id, sizeof id, &t), 0);
	cr_assert_str_eq(id, "sPb6S2p.FbKyS04x");
	cr_assert_eq(t, 60);
	v = S("7C5A3B21;timeout=30");
	cr_assert_eq(rtsp_parse_session(&v, id, sizeof id, &t), 0);
	cr_assert_str_eq(id, "7C5A3B21");
	cr_assert_eq(t, 30);
	v = S("  abc ; Timeout = 15 ; other=1");
	cr_assert_eq(rtsp_parse_session(&v, id, sizeof id, &t), 0);
	cr_assert_str_eq(id, "abc");
	cr_assert_eq(t, 15);
	v = S("abc;timeout=0");
	cr_assert_eq(rtsp_parse_session(&v, id, sizeof id, &t), 0);
	cr_assert_eq(t, 60);
	const char *bad[] = { "", ";timeout=5", "abc;timeout=x", "abc;timeout=",
	                      "ab c", "0123456789012345678901234567890123" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = S(bad[i]);
		cr_assert_eq(rtsp_parse_session(&v, id, sizeof id, &t), -EBADMSG, "%s", bad[i]);
	}
	/* the id's length is the value's length, not up to a NUL */
	v = (struct rtsp_str){ "abcdef", 3 };
	cr_assert_eq(rtsp_parse_session(&v, id, sizeof id, &t), 0);
	cr_assert_str_eq(id, "abc");
}

Test(rtsp_msg, transport_tcp)
{
	struct rtsp_transport t;
	struct rtsp_str v = S("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=533FDAC6;mode=\"PLAY\"");
	cr_assert_eq(rtsp_parse_transport(&v, &t), 0);
	cr_assert(t.tcp);
	cr_assert_eq(t.interleaved[0], 0);
	cr_assert_eq(t.interleaved[1], 1);
	cr_assert_eq(t.server_port[0], -1);
	cr_assert_eq(t.client_port[0], -1);
	cr_assert(t.has_ssrc);
	cr_assert_eq(t.ssrc, 0x533FDAC6u);
}

Test(rtsp_msg, transport_udp)
{
	struct rtsp_transport t;
	struct rtsp_str v = S("RTP/AVP;unicast;client_port=50000-50001;server_port=8256-8257;ssrc=6b8b4567;mode=\"play\"");
	cr_assert_eq(rtsp_parse_transport(&v, &t), 0);
	cr_assert(!t.tcp);
	cr_assert_eq(t.client_port[0], 50000);
	cr_assert_eq(t.client_port[1], 50001);
	cr_assert_eq(t.server_port[0], 8256);
	cr_assert_eq(t.server_port[1], 8257);
	cr_assert_eq(t.interleaved[0], -1);
	cr_assert_eq(t.ssrc, 0x6b8b4567u);
	v = S("RTP/AVP/UDP;unicast;server_port=6970;source=10.0.0.2");
	cr_assert_eq(rtsp_parse_transport(&v, &t), 0);
	cr_assert_eq(t.server_port[0], 6970);
	cr_assert_eq(t.server_port[1], 6971);
	cr_assert(!t.has_ssrc);
	/* a malformed SSRC is only a missing hint */
	v = S("RTP/AVP/TCP;interleaved=2-3;ssrc=XYZ");
	cr_assert_eq(rtsp_parse_transport(&v, &t), 0);
	cr_assert(!t.has_ssrc);
	cr_assert_eq(t.interleaved[0], 2);
	/* several offered: the first counts */
	v = S("RTP/AVP/TCP;interleaved=4-5,RTP/AVP;client_port=1-2");
	cr_assert_eq(rtsp_parse_transport(&v, &t), 0);
	cr_assert(t.tcp);
	cr_assert_eq(t.client_port[0], -1);
}

Test(rtsp_msg, transport_malformed)
{
	const char *bad[] = { "", "RAW/RAW/UDP;unicast", "RTP/AVP/TCP;interleaved=256-257",
	                      "RTP/AVP/TCP;interleaved=a-b", "RTP/AVP;server_port=70000-70001",
	                      "RTP/AVP;client_port=1-", "RTP/AVP;client_port=" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rtsp_transport t;
		struct rtsp_str v = S(bad[i]);
		cr_assert_eq(rtsp_parse_transport(&v, &t), -EBADMSG, "%s", bad[i]);
	}
}

/* ---- URLs -------------------------------------------------------------- */

Test(rtsp_msg, url_parse)
{
	struct rtsp_url u;
	cr_assert_eq(rtsp_url_parse("rtsp://admin:Pa%24%24w0rd%40%3A@192.168.1.64:8554/Streaming/Channels/101?x=1", &u), 0);
	cr_assert_str_eq(u.user, "admin");
	cr_assert_str_eq(u.pass, "Pa$$w0rd@:");
	cr_assert_str_eq(u.host, "192.168.1.64");
	cr_assert_eq(u.port, 8554);
	cr_assert_str_eq(u.path, "/Streaming/Channels/101?x=1");

	cr_assert_eq(rtsp_url_parse("RTSP://cam-7.site.example", &u), 0);
	cr_assert_str_eq(u.host, "cam-7.site.example");
	cr_assert_eq(u.port, 554);
	cr_assert_str_eq(u.path, "/");
	cr_assert_str_eq(u.user, "");
	cr_assert_str_eq(u.pass, "");

	cr_assert_eq(rtsp_url_parse("rtsp://user@[2001:db8::7]:10554/live", &u), 0);
	cr_assert_str_eq(u.user, "user");
	cr_assert_str_eq(u.host, "2001:db8::7");
	cr_assert_eq(u.port, 10554);
	cr_assert_str_eq(u.path, "/live");

	/* an unescaped '@' in the password: the last '@' ends the user info */
	cr_assert_eq(rtsp_url_parse("rtsp://u:p@ss@10.0.0.1/x", &u), 0);
	cr_assert_str_eq(u.pass, "p@ss");
	cr_assert_str_eq(u.host, "10.0.0.1");

	cr_assert_eq(rtsp_url_parse("rtsp://10.0.0.1:/x", &u), 0);
	cr_assert_eq(u.port, 554);
}

Test(rtsp_msg, url_parse_refuses)
{
	const char *bad[] = {
		"http://10.0.0.1/", "rtsp://", "rtsp:///path", "rtsp://host:0/",
		"rtsp://host:65536/", "rtsp://host:12a/", "rtsp://ho st/",
		"rtsp://u:%zz@host/", "rtsp://u:%4@host/", "rtsp://u%00@host/",
		"rtsp://[::1/", "rtsp://[::1]x/", "rtsp://host/a b", "rtsp://h\x01/",
		"rtsps://host/",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rtsp_url u;
		cr_assert_eq(rtsp_url_parse(bad[i], &u), -EINVAL, "%s", bad[i]);
	}
	/* fields that do not fit */
	static char big[2100];
	struct rtsp_url u;
	snprintf(big, sizeof big, "rtsp://%0300d/", 1);
	cr_assert_eq(rtsp_url_parse(big, &u), -EINVAL);
	snprintf(big, sizeof big, "rtsp://%0130d@h/", 1);
	cr_assert_eq(rtsp_url_parse(big, &u), -EINVAL);
	snprintf(big, sizeof big, "rtsp://h/%01100d", 1);
	cr_assert_eq(rtsp_url_parse(big, &u), -EINVAL);
}

Test(rtsp_msg, url_format_has_no_credentials)
{
	struct rtsp_url u;
	char out[256];
	cr_assert_eq(rtsp_url_parse("rtsp://admin:secret@cam.local/stream1", &u), 0);
	cr_assert_eq(rtsp_url_format(&u, out, sizeof out), 0);
	cr_assert_str_eq(out, "rtsp://cam.local:554/stream1");
	cr_assert_null(strstr(out, "secret"));
	cr_assert_eq(rtsp_url_parse("rtsp://[fe80::1]:8554/a", &u), 0);
	cr_assert_eq(rtsp_url_format(&u, out, sizeof out), 0);
	cr_assert_str_eq(out, "rtsp://[fe80::1]:8554/a");
	cr_assert_eq(rtsp_url_format(&u, out, 10), -ENOSPC);
}

Test(rtsp_msg, resolve_control)
{
	char out[256];
	const char *base = "rtsp://127.0.0.1:8554/test/";
	cr_assert_eq(rtsp_resolve_control(base, "stream=0", out, sizeof out), 0);
	cr_assert_str_eq(out, "rtsp://127.0.0.1:8554/test/stream=0");
	cr_assert_eq(rtsp_resolve_control("rtsp://h:554/live", "trackID=1", out, sizeof out), 0);
	cr_assert_str_eq(out, "rtsp://h:554/live/trackID=1");
	cr_assert_eq(rtsp_resolve_control(base, "/track1", out, sizeof out), 0);
	cr_assert_str_eq(out, "rtsp://127.0.0.1:8554/test/track1");
	cr_assert_eq(rtsp_resolve_control("rtsp://h/live", "/track1", out, sizeof out), 0);
	cr_assert_str_eq(out, "rtsp://h/live/track1");
	cr_assert_eq(rtsp_resolve_control(base, "*", out, sizeof out), 0);
	cr_assert_str_eq(out, base);
	cr_assert_eq(rtsp_resolve_control(base, "", out, sizeof out), 0);
	cr_assert_str_eq(out, base);
	const char *abs = "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast";
	cr_assert_eq(rtsp_resolve_control(base, abs, out, sizeof out), 0);
	cr_assert_str_eq(out, abs);
	cr_assert_eq(rtsp_resolve_control(base, "RTSP://other/x", out, sizeof out), 0);
	cr_assert_str_eq(out, "RTSP://other/x");
	cr_assert_eq(rtsp_resolve_control(base, "stream=0", out, 20), -ENOSPC);
	cr_assert_eq(rtsp_resolve_control(base, abs, out, 30), -ENOSPC);
}
