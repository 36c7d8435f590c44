/*
 * fuzz_rtsp.c - libFuzzer target for the RTSP text parsers (nvr/rtsp_msg.c,
 * nvr/rtsp_auth.c). Cameras send these bytes, so none may crash a parser or
 * make it read past the length it was given.
 *
 * The input is read as a TCP stream (rtsp_next_chunk chunk by chunk), and
 * every header of every message goes through the Session, Transport and
 * WWW-Authenticate / Authorization parsers. The whole input is also tried
 * as one message, a URL, an a=control value and an auth header. Invariants
 * that would otherwise fail quietly abort():
 *  - a message parsed with n bytes parses the same with exactly n bytes,
 *    and asks for more with n - 1;
 *  - a chunk never claims more bytes than there are;
 *  - a URL that parses formats and parses again to the same place;
 *  - a challenge that parses yields an Authorization header that the
 *    server-side check accepts.
 * Static names carry the rtspf_ prefix: tests/unit/test_fuzz_regressions.c
 * includes every target into one program.
 */
#include <stdlib.h>
#include <string.h>

#include "rtsp_auth.h"
#include "rtsp_msg.h"

static void rtspf_auth_round_trip(const char *v, size_t len)
{
	struct rtsp_auth_challenge ch;
	char out[2048];
	if (rtsp_auth_parse_challenge(v, len, &ch) < 0)
		return;
	int n = rtsp_auth_header(&ch, "user", "pa\"ss", "DESCRIBE", "rtsp://h/x",
	                         1, "0a4f113b", out, sizeof out);
	if (n <= 0 || (size_t)n != strlen(out))
		abort();
	if (!rtsp_auth_check(out, (size_t)n, ch.realm, ch.nonce, "user", "pa\"ss",
	                     "DESCRIBE", true))
		abort();
}

static void rtspf_value(const struct rtsp_str *v)
{
	char id[64];
	int timeout;
	struct rtsp_transport tr;
	if (rtsp_parse_session(v, id, sizeof id, &timeout) == 0 &&
	    (strlen(id) >= sizeof id || timeout <= 0))
		abort();
	if (rtsp_parse_transport(v, &tr) == 0 &&
	    (tr.interleaved[0] > 255 || tr.server_port[1] > 65535))
		abort();
	rtspf_auth_round_trip(v->p, v->len);
	(void)rtsp_auth_check(v->p, v->len, "realm", "nonce", "user", "pass",
	                      "DESCRIBE", true);
}

static void rtspf_message(const struct rtsp_msg *m)
{
	if (m->header_count < 0 || m->header_count > RTSP_MAX_HEADERS)
		abort();
	for (int i = 0; i < m->header_count; i++)
		rtspf_value(&m->headers[i].value);
	(void)rtsp_msg_header(m, "WWW-Authenticate");
}

static void rtspf_stream(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		struct rtsp_chunk c;
		rtsp_next_chunk(data + off, size - off, &c);
		if (c.kind == RTSP_CHUNK_NEED_MORE || c.kind == RTSP_CHUNK_ERROR)
			break;
		if (c.size == 0 || c.size > size - off)
			abort();
		if (c.kind == RTSP_CHUNK_MESSAGE)
			rtspf_message(&c.msg);
		else if (c.payload + c.payload_len > data + off + c.size)
			abort();
		off += c.size;
	}
}

static void rtspf_whole_message(const uint8_t *data, size_t size)
{
	struct rtsp_msg m, m2;
	int n = rtsp_msg_parse(data, size, &m);
	if (n <= 0)
		return;
	if ((size_t)n > size || rtsp_msg_parse(data, (size_t)n, &m2) != n)
		abort();
	if (rtsp_msg_parse(data, (size_t)n - 1, &m2) != 0)
		abort();
}

static void rtspf_strings(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char out[4096];
	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	struct rtsp_url u, u2;
	if (rtsp_url_parse(s, &u) == 0) {
		if (rtsp_url_format(&u, out, sizeof out) < 0 || rtsp_url_parse(out, &u2) < 0)
			abort();
		if (strcmp(u.host, u2.host) || u.port != u2.port || strcmp(u.path, u2.path) ||
		    u2.user[0] || u2.pass[0])
			abort();
	}
	if (rtsp_resolve_control("rtsp://10.0.0.1:554/base/", s, out, sizeof out) == 0 &&
	    strlen(out) >= sizeof out)
		abort();
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rtsp_str whole = { (const char *)data, size };
	rtspf_stream(data, size);
	rtspf_whole_message(data, size);
	rtspf_value(&whole);
	rtspf_strings(data, size);
	return 0;
}
