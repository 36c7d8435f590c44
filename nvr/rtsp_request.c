/*
 * rtsp_request.c - the RTSP conversation of a session (rtsp_session.h):
 * requests built from the session's state, the send queue, and what each
 * reply does.
 *
 * Requests go one at a time while negotiating (OPTIONS, DESCRIBE, SETUP,
 * PLAY), each waiting at most timeout_ms for its reply (the session's I/O
 * timer). The send queue holds whole requests as separate allocations, one
 * IORING_OP_SEND in flight for its head: a keep-alive and a TEARDOWN may
 * queue behind each other, and no buffer the kernel reads is ever moved.
 *
 * Authentication: a 401 is answered once with an Authorization header
 * (Digest preferred over Basic when the server offers both), again only
 * when the server says the nonce was stale; every later request carries it
 * with a fresh nonce count. Credentials come from the camera record (or
 * the URL) and never reach a log line or last_error.
 *
 * DESCRIBE: the SDP's first H.264/H.265 video track; its control URL,
 * resolved against Content-Base (then Content-Location, then the request
 * URL), is where SETUP goes; the session-level control is the aggregate
 * URL of PLAY, keep-alives and TEARDOWN. URLs the server hands out are
 * re-written without any credentials they may carry.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "rtsp_session.h"
#include "sdp.h"

#define USER_AGENT "nvrd"

/* ---- helpers --------------------------------------------------------------- */

/* Copies a header value into a NUL-terminated buffer; false if too long. */
static bool str_copy(const struct rtsp_str *v, char *out, size_t outsz)
{
	if (v->len >= outsz)
		return false;
	memcpy(out, v->p, v->len);
	out[v->len] = '\0';
	return true;
}

/* Printable, quote-free copy of server text for error messages and logs. */
static void clean_copy(const char *p, size_t len, char *out, size_t outsz)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < outsz && n < 64; i++) {
		char c = p[i];
		out[n++] = (c >= 32 && c < 127 && c != '"' && c != '\\') ? c : '?';
	}
	out[n] = '\0';
}

static bool str_contains_token(const struct rtsp_str *v, const char *tok)
{
	size_t tl = strlen(tok);
	for (size_t i = 0; i + tl <= v->len; i++)
		if (!strncasecmp(v->p + i, tok, tl))
			return true;
	return false;
}

/* A URL from the server without any credentials it may carry. */
static char *clean_url(const char *url)
{
	struct rtsp_url u;
	char out[1400];
	if (rtsp_url_parse(url, &u) == 0 && rtsp_url_format(&u, out, sizeof out) == 0)
		return strdup(out);
	return strdup(url);
}

static int fail_status(struct rtsp_session *s, const char *what, const struct rtsp_msg *m)
{
	char reason[80];
	clean_copy(m->reason.p, m->reason.len, reason, sizeof reason);
	return rtsp_fail(s, "%s: %d %s", what, m->status, reason);
}

/* ---- send queue ------------------------------------------------------------ */

int rtsp_send_next(struct rtsp_session *s)
{
	struct rtsp_outmsg *m = s->out_head;
	struct io_uring_sqe *sqe = loop_sqe(rtsp_loop(s));
	if (!sqe)
		return rtsp_fail(s, "no submission queue entry");
	io_uring_prep_send(sqe, s->fd, m->data + m->off, m->len - m->off, MSG_NOSIGNAL);
	rtsp_sqe_socket(s, sqe);
	loop_commit(rtsp_loop(s), sqe, K_SEND, s->slot);
	s->ops |= 1u << K_SEND;
	return 0;
}

static int out_push(struct rtsp_session *s, struct rtsp_outmsg *m)
{
	m->next = NULL;
	if (s->out_tail)
		s->out_tail->next = m;
	else
		s->out_head = m;
	s->out_tail = m;
	if (s->ops & (1u << K_SEND))
		return 0;
	return rtsp_send_next(s);
}

/* ---- requests -------------------------------------------------------------- */

const char *rtsp_req_method(const struct rtsp_session *s, enum rtsp_req r)
{
	static const char *const names[] = {
		"OPTIONS", "DESCRIBE", "SETUP", "PLAY", NULL, "TEARDOWN",
	};
	if (r == REQ_KEEPALIVE)
		return s->get_parameter ? "GET_PARAMETER" : "OPTIONS";
	return names[r];
}

static const char *req_uri(const struct rtsp_session *s, enum rtsp_req r)
{
	switch (r) {
	case REQ_SETUP:
		return s->setup_url;
	case REQ_PLAY:
	case REQ_KEEPALIVE:
	case REQ_TEARDOWN:
		return s->play_url ? s->play_url : s->req_url;
	default:
		return s->req_url;
	}
}

static void req_extra(const struct rtsp_session *s, enum rtsp_req r, char *out, size_t outsz)
{
	out[0] = '\0';
	if (r == REQ_DESCRIBE) {
		snprintf(out, outsz, "Accept: application/sdp\r\n");
	} else if (r == REQ_SETUP && s->udp) {
		snprintf(out, outsz, "Transport: RTP/AVP;unicast;client_port=%u-%u\r\n",
		         s->up[0]->port, s->up[1]->port);
	} else if (r == REQ_SETUP) {
		snprintf(out, outsz, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n");
	} else if (r == REQ_PLAY) {
		snprintf(out, outsz, "Range: npt=0.000-\r\n");
	}
}

static int auth_line(struct rtsp_session *s, const char *method, const char *uri, char *out,
                     size_t outsz)
{
	out[0] = '\0';
	if (!s->auth)
		return 0;
	char value[1536];
	int n = rtsp_auth_header(s->auth, s->user, s->pass, method, uri, ++s->nc, s->cnonce,
	                         value, sizeof value);
	if (n < 0)
		return n;
	snprintf(out, outsz, "Authorization: %s\r\n", value);
	return 0;
}

int rtsp_send_request(struct rtsp_session *s, enum rtsp_req r)
{
	const char *method = rtsp_req_method(s, r), *uri = req_uri(s, r);
	char extra[128], auth[1600], sess[160] = "";
	req_extra(s, r, extra, sizeof extra);
	if (auth_line(s, method, uri, auth, sizeof auth))
		return rtsp_fail(s, "%s: authorization header too long", method);
	if (s->session_id)
		snprintf(sess, sizeof sess, "Session: %s\r\n", s->session_id);
	int cseq = ++s->cseq;
	const char *fmt = "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: " USER_AGENT "\r\n%s%s%s\r\n";
	int len = snprintf(NULL, 0, fmt, method, uri, cseq, sess, extra, auth);
	struct rtsp_outmsg *m = len > 0 ? malloc(sizeof *m + (size_t)len + 1) : NULL;
	if (!m)
		return rtsp_fail(s, "%s: out of memory", method);
	snprintf(m->data, (size_t)len + 1, fmt, method, uri, cseq, sess, extra, auth);
	m->len = (size_t)len;
	m->off = 0;
	s->wait_cseq = cseq;
	s->wait_req = r;
	if (r != REQ_KEEPALIVE && r != REQ_TEARDOWN)
		loop_timer_arm(rtsp_loop(s), &s->t_io, s->sh->cfg.timeout_ms);
	return out_push(s, m);
}

/* ---- replies --------------------------------------------------------------- */

static bool header_is(const struct rtsp_header *h, const char *name)
{
	return h->name.len == strlen(name) && !strncasecmp(h->name.p, name, h->name.len);
}

static void new_cnonce(struct rtsp_session *s)
{
	uint64_t v = rtsp_rng(s->sh);
	snprintf(s->cnonce, sizeof s->cnonce, "%016" PRIx64, v);
}

/* 401: take the best challenge (Digest over Basic) and send the request
 * again, once per request unless the server says the nonce went stale. */
static int on_unauthorized(struct rtsp_session *s, const struct rtsp_msg *m, enum rtsp_req r)
{
	const char *method = rtsp_req_method(s, r);
	if (!s->user[0])
		return rtsp_fail(s, "%s: 401 Unauthorized and the camera has no credentials", method);
	struct rtsp_auth_challenge best = { .scheme = RTSP_AUTH_NONE }, ch;
	for (int i = 0; i < m->header_count; i++) {
		const struct rtsp_header *h = &m->headers[i];
		if (!header_is(h, "WWW-Authenticate"))
			continue;
		if (rtsp_auth_parse_challenge(h->value.p, h->value.len, &ch))
			continue;
		if (ch.scheme == RTSP_AUTH_DIGEST || best.scheme == RTSP_AUTH_NONE)
			best = ch;
		if (best.scheme == RTSP_AUTH_DIGEST)
			break;
	}
	if (best.scheme == RTSP_AUTH_NONE)
		return rtsp_fail(s, "%s: 401 Unauthorized without a usable challenge", method);
	if (s->auth_tries >= 1 && !best.stale)
		return rtsp_fail(s, "%s: 401 Unauthorized: credentials refused", method);
	if (!s->auth && !(s->auth = malloc(sizeof *s->auth)))
		return rtsp_fail(s, "%s: out of memory", method);
	*s->auth = best;
	s->auth_tries++;
	s->nc = 0;
	new_cnonce(s);
	return rtsp_send_request(s, r);
}

static int on_options(struct rtsp_session *s, const struct rtsp_msg *m)
{
	/* Some cameras refuse OPTIONS; DESCRIBE decides. */
	const struct rtsp_str *pub = m->status == 200 ? rtsp_msg_header(m, "Public") : NULL;
	s->get_parameter = pub && str_contains_token(pub, "GET_PARAMETER");
	s->phase = PH_DESCRIBE;
	return rtsp_send_request(s, REQ_DESCRIBE);
}

static void base_url(struct rtsp_session *s, const struct rtsp_msg *m, char *out, size_t outsz)
{
	static const char *const names[] = { "Content-Base", "Content-Location" };
	for (int i = 0; i < 2; i++) {
		const struct rtsp_str *v = rtsp_msg_header(m, names[i]);
		if (v && v->len && str_copy(v, out, outsz))
			return;
	}
	snprintf(out, outsz, "%s", s->req_url);
}

/* Takes the SDP's video track: codec, payload type, clock, parameter sets
 * (into a fresh depacketizer) and the control URLs. */
static int take_track(struct rtsp_session *s, const struct rtsp_msg *m, const struct sdp_session *sdp)
{
	const struct sdp_media *v = sdp_find_video(sdp);
	if (!v)
		return rtsp_fail(s, "DESCRIBE: no H.264 or H.265 video track in the SDP");
	char base[1024], url[1400];
	base_url(s, m, base, sizeof base);
	if (rtsp_resolve_control(base, v->control, url, sizeof url))
		return rtsp_fail(s, "DESCRIBE: track control URL too long");
	s->setup_url = clean_url(url);
	if (rtsp_resolve_control(base, sdp->control, url, sizeof url))
		return rtsp_fail(s, "DESCRIBE: session control URL too long");
	s->play_url = clean_url(url);
	s->dp = calloc(1, sizeof *s->dp);
	if (!s->setup_url || !s->play_url || !s->dp)
		return rtsp_fail(s, "DESCRIBE: out of memory");
	s->codec = v->codec;
	s->pt = v->payload_type;
	s->clock_rate = v->clock_rate > 0 ? (uint32_t)v->clock_rate : 90000;
	if (depack_init(s->dp, v->codec, v->param_sets, v->param_sets_len, rtsp_on_frame, s)) {
		free(s->dp);
		s->dp = NULL;
		return rtsp_fail(s, "DESCRIBE: unsupported codec");
	}
	fclock_reset(&s->clk, s->clock_rate);
	return 0;
}

static int on_describe(struct rtsp_session *s, const struct rtsp_msg *m)
{
	if (m->status != 200)
		return fail_status(s, "DESCRIBE", m);
	if (!m->body_len)
		return rtsp_fail(s, "DESCRIBE: reply without SDP");
	struct sdp_session *sdp = malloc(sizeof *sdp);
	if (!sdp)
		return rtsp_fail(s, "DESCRIBE: out of memory");
	int err = sdp_parse((const char *)m->body, m->body_len, sdp);
	if (err)
		rtsp_fail(s, "DESCRIBE: the SDP could not be parsed");
	else
		err = take_track(s, m, sdp);
	free(sdp);
	if (err)
		return -1;
	s->phase = PH_SETUP;
	if (s->udp && rtsp_udp_open(s))
		return -1;
	return rtsp_send_request(s, REQ_SETUP);
}

static int on_setup(struct rtsp_session *s, const struct rtsp_msg *m)
{
	if (m->status != 200)
		return fail_status(s, "SETUP", m);
	const struct rtsp_str *v = rtsp_msg_header(m, "Session");
	char id[128];
	int timeout = 60;
	if (!v || rtsp_parse_session(v, id, sizeof id, &timeout))
		return rtsp_fail(s, "SETUP: reply without a usable Session header");
	s->session_id = strdup(id);
	if (!s->session_id)
		return rtsp_fail(s, "SETUP: out of memory");
	s->session_timeout_s = timeout > 0 ? timeout : 60;
	struct rtsp_transport t = { .interleaved = { -1, -1 } };
	v = rtsp_msg_header(m, "Transport");
	if (v && rtsp_parse_transport(v, &t))
		return rtsp_fail(s, "SETUP: unparsable Transport header");
	if (v && t.tcp == s->udp)
		return rtsp_fail(s, "SETUP: the camera answered with %s transport", t.tcp ? "TCP" : "UDP");
	s->ch_rtp = t.interleaved[0] >= 0 ? t.interleaved[0] : 0;
	s->ch_rtcp = t.interleaved[1] >= 0 ? t.interleaved[1] : s->ch_rtp + 1;
	if (t.has_ssrc) {
		s->have_ssrc = true;
		s->ssrc = t.ssrc;
	}
	s->phase = PH_PLAY;
	return rtsp_send_request(s, REQ_PLAY);
}

uint32_t rtsp_keepalive_ms(const struct rtsp_session *s)
{
	return (uint32_t)s->session_timeout_s * 1000u / 2u;
}

static int on_play(struct rtsp_session *s, const struct rtsp_msg *m)
{
	if (m->status != 200)
		return fail_status(s, "PLAY", m);
	s->phase = PH_STREAMING;
	rtsp_admit_release(s);
	s->streaming_since_us = nvr_now_us();
	s->streaming_since_ms = rtsp_now_ms(s);
	s->last_media_ms = rtsp_now_ms(s);
	s->fails_in_row = 0;
	loop_timer_arm(rtsp_loop(s), &s->t_io, s->sh->cfg.timeout_ms);
	loop_timer_arm(rtsp_loop(s), &s->t_keep, rtsp_keepalive_ms(s));
	nvr_log("info", "ingest", "event=session_up camera=%" PRIu32 " url=%s transport=%s codec=%s"
	        " clock_rate=%" PRIu32 " keepalive=%s session_timeout_s=%d", s->cam_id, s->req_url,
	        s->udp ? "udp" : "tcp", s->codec == STG_CODEC_H265 ? "h265" : "h264", s->clock_rate,
	        s->get_parameter ? "GET_PARAMETER" : "OPTIONS", s->session_timeout_s);
	return 0;
}

static int on_keepalive(struct rtsp_session *s, const struct rtsp_msg *m)
{
	if (m->status == 454)
		return fail_status(s, "keep-alive", m);
	if ((m->status == 405 || m->status == 501) && s->get_parameter) {
		s->get_parameter = false;     /* listed but refused: OPTIONS from now on */
		return 0;
	}
	if (m->status != 200)
		nvr_log_limited(&s->log_limit, "warn", "ingest", "event=keepalive_refused camera=%"
		                PRIu32 " status=%d", s->cam_id, m->status);
	return 0;
}

int rtsp_on_response(struct rtsp_session *s, const struct rtsp_msg *m)
{
	/* A reply without CSeq (some cameras) answers the request awaited; one
	 * with another CSeq is a late reply to an earlier keep-alive. */
	if (s->wait_cseq < 0 || (m->cseq >= 0 && m->cseq != s->wait_cseq))
		return 0;
	enum rtsp_req r = s->wait_req;
	s->wait_cseq = -1;
	if (r != REQ_KEEPALIVE && r != REQ_TEARDOWN)
		loop_timer_cancel(rtsp_loop(s), &s->t_io);
	if (r == REQ_TEARDOWN) {
		rtsp_begin_close(s, true);
		return -1;
	}
	if (m->status == 401)
		return on_unauthorized(s, m, r);
	if (m->status >= 200 && m->status < 300)
		s->auth_tries = 0;
	switch (r) {
	case REQ_OPTIONS: return on_options(s, m);
	case REQ_DESCRIBE: return on_describe(s, m);
	case REQ_SETUP: return on_setup(s, m);
	case REQ_PLAY: return on_play(s, m);
	default: return on_keepalive(s, m);
	}
}
