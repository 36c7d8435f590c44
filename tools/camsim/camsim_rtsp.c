/*
 * camsim_rtsp.c - the RTSP side of a connection (RFC 2326): reading
 * requests, answering them, and the RTSP bytes' place in the outgoing
 * stream.
 *
 * Bytes are read into one shared buffer; rtsp_next_chunk (nvr/rtsp_msg.h)
 * splits them into requests and interleaved frames (the client's RTCP on
 * TCP). Only an incomplete request is kept per connection, in a buffer
 * allocated for as long as it is incomplete.
 *
 * Methods: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN; the
 * rest get 501. URLs are rtsp://host:port/cam/K for the camera and
 * .../cam/K/track1 for its one video track. With --user/--password every
 * request but OPTIONS needs a Digest answer (realm "nvr-camsim", one nonce
 * per connection) checked by rtsp_auth_check (nvr/rtsp_auth.h).
 *
 * Responses are written at once when the connection is idle; while a TCP
 * session's access unit is partly sent they wait behind it, so RTSP and
 * interleaved RTP bytes never mix.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "camsim.h"
#include "../../nvr/log.h"
#include "../../nvr/rtsp_auth.h"

#define URI_MAX 2048
#define REPLY_MAX 16384

struct reply {
	int status;
	int cseq;
	size_t hlen;
	char headers[4096];
	const char *body;
	size_t body_len;
};

/* What a request URL names. */
struct target {
	uint32_t camera;          /* 0: not a camera of ours */
	bool track;               /* .../track1 */
	char base[URI_MAX];       /* rtsp://host:port/cam/K/ */
};

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 454: return "Session Not Found";
	case 455: return "Method Not Valid in This State";
	case 459: return "Aggregate Operation Not Allowed";
	case 461: return "Unsupported Transport";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static void add_header(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_header(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->headers + r->hlen, sizeof r->headers - r->hlen, fmt, ap);
	va_end(ap);
	if (n > 0 && r->hlen + (size_t)n + 2 < sizeof r->headers) {
		r->hlen += (size_t)n;
		memcpy(r->headers + r->hlen, "\r\n", 3);
		r->hlen += 2;
	} else {
		r->headers[r->hlen] = '\0';          /* a header that does not fit is left out */
	}
}

/* ---- connection output -------------------------------------------------------- */

int cs_conn_flush_out(struct cs_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -EAGAIN;
		if (w < 0)
			return -errno;
		c->out_off += (uint32_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	return 0;
}

int cs_conn_write(struct cs_conn *c, const char *buf, size_t len)
{
	size_t off = 0;
	bool behind = c->out_off < c->out_len || ((c->flags & CS_F_TCP) && (c->flags & CS_F_UNIT));
	while (!behind && off < len) {
		ssize_t w = send(c->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	if (off == len)
		return 0;
	size_t pending = c->out_len - c->out_off, rest = len - off;
	if (pending + rest > CS_MAX_OUT_BYTES)
		return -ENOBUFS;
	uint8_t *q = malloc(pending + rest);
	if (!q)
		return -ENOMEM;
	if (pending)
		memcpy(q, c->out + c->out_off, pending);
	memcpy(q + pending, buf + off, rest);
	free(c->out);
	c->out = q;
	c->out_off = 0;
	c->out_len = (uint32_t)(pending + rest);
	c->flags |= CS_F_BLOCKED;
	return 0;
}

static void send_reply(struct cs_server *s, struct cs_conn *c, const struct reply *r)
{
	static char buf[REPLY_MAX];
	int n = snprintf(buf, sizeof buf, "RTSP/1.0 %d %s\r\n", r->status, status_text(r->status));
	if (r->cseq >= 0)
		n += snprintf(buf + n, sizeof buf - (size_t)n, "CSeq: %d\r\n", r->cseq);
	n += snprintf(buf + n, sizeof buf - (size_t)n, "Server: nvr-camsim\r\n%.*s",
	              (int)r->hlen, r->headers);
	if (r->body_len)
		n += snprintf(buf + n, sizeof buf - (size_t)n,
		              "Content-Type: application/sdp\r\nContent-Length: %zu\r\n",
		              r->body_len);
	n += snprintf(buf + n, sizeof buf - (size_t)n, "\r\n");
	if (n < 0 || (size_t)n + r->body_len >= sizeof buf) {
		nvr_log("error", "camsim", "event=reply_too_large status=%d", r->status);
		cs_conn_close(s, c, "reply_too_large");
		return;
	}
	if (r->body_len)
		memcpy(buf + n, r->body, r->body_len);
	int err = cs_conn_write(c, buf, (size_t)n + r->body_len);
	if (err)
		cs_conn_close(s, c, err == -ENOBUFS ? "client_not_reading" : "send_error");
}

/* ---- request helpers ------------------------------------------------------------ */

static bool str_is(const struct rtsp_str *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && !memcmp(s->p, lit, n);
}

/* Parses the request URL into a camera, a track flag and the base URL. */
static void parse_target(const struct cs_server *s, const struct rtsp_str *uri,
                         struct target *t)
{
	static struct rtsp_url u;
	char text[URI_MAX];

	memset(t, 0, sizeof *t);
	if (uri->len >= sizeof text)
		return;
	memcpy(text, uri->p, uri->len);
	text[uri->len] = '\0';
	if (rtsp_url_parse(text, &u) || strncmp(u.path, "/cam/", 5))
		return;
	const char *p = u.path + 5;
	char *end;
	if (*p < '1' || *p > '9')
		return;
	unsigned long k = strtoul(p, &end, 10);
	if (k < 1 || k > s->ncameras)
		return;
	if (*end == '/')
		end++;
	if (!strcmp(end, "track1") || !strcmp(end, "track1/"))
		t->track = true;
	else if (*end)
		return;
	t->camera = (uint32_t)k;
	snprintf(t->base, sizeof t->base, "rtsp://%s:%d/cam/%lu/", u.host, u.port, k);
}

static void session_text(const struct cs_conn *c, char out[17])
{
	snprintf(out, 17, "%016" PRIx64, c->session_id);
}

/* Session header present: it must name this connection's session.
 * Returns 0 (absent or matching), or the status to answer. */
static int check_session(const struct cs_conn *c, const struct rtsp_msg *m, bool required)
{
	const struct rtsp_str *v = rtsp_msg_header(m, "Session");
	if (!v)
		return required ? 454 : 0;
	char id[64], mine[17];
	int timeout;
	if (rtsp_parse_session(v, id, sizeof id, &timeout))
		return 400;
	session_text(c, mine);
	if (c->state == CS_ST_INIT || strcmp(id, mine))
		return 454;
	return 0;
}

static bool authorized(const struct cs_server *s, const struct cs_conn *c,
                       const struct rtsp_msg *m, const char *method)
{
	if (!s->user)
		return true;
	const struct rtsp_str *h = rtsp_msg_header(m, "Authorization");
	if (!h)
		return false;
	char nonce[17];
	snprintf(nonce, sizeof nonce, "%016" PRIx64, c->nonce);
	bool ok = rtsp_auth_check(h->p, h->len, CS_REALM, nonce, s->user, s->password,
	                          method, false);
	if (!ok)
		nvr_log("info", "camsim", "event=auth_failed peer=%s:%u method=%s",
		        inet_ntoa(c->peer.sin_addr), ntohs(c->peer.sin_port), method);
	return ok;
}

/* ---- methods ------------------------------------------------------------------- */

static void do_describe(struct cs_server *s, struct cs_conn *c, const struct target *t,
                        struct reply *r)
{
	static char sdp[8192];
	(void)c;
	if (!t->camera) {
		r->status = 404;
		return;
	}
	if (s->faults && s->faults[t->camera - 1].refuse) {
		nvr_log("info", "camsim", "event=fault_refuse camera=%" PRIu32, t->camera);
		r->status = 503;
		return;
	}
	const struct cs_camera *cam = &s->cameras[t->camera - 1];
	const struct cs_fixture *fx = &s->fixtures[cam->fixture];
	const struct cs_listener *l = &s->listeners[c->listener];
	int n = snprintf(sdp, sizeof sdp,
	                 "v=0\r\n"
	                 "o=- %" PRIu64 " 1 IN IP4 %s\r\n"
	                 "s=nvr-camsim camera %" PRIu32 "\r\n"
	                 "c=IN IP4 0.0.0.0\r\n"
	                 "t=0 0\r\n"
	                 "a=tool:nvr-camsim\r\n"
	                 "a=control:*\r\n"
	                 "m=video 0 RTP/AVP %d\r\n"
	                 "a=rtpmap:%d %s/90000\r\n"
	                 "a=fmtp:%d %s\r\n"
	                 "a=framerate:%.3f\r\n"
	                 "a=control:track1\r\n",
	                 cs_random(s) >> 1, inet_ntoa(l->addr.sin_addr), t->camera,
	                 CS_PAYLOAD_TYPE, CS_PAYLOAD_TYPE, fx->codec == CS_H264 ? "H264" : "H265",
	                 CS_PAYLOAD_TYPE, fx->fmtp, (double)cam->fps_num / cam->fps_den);
	if (n < 0 || (size_t)n >= sizeof sdp) {
		r->status = 500;
		return;
	}
	add_header(r, "Content-Base: %s", t->base);
	r->body = sdp;
	r->body_len = (size_t)n;
}

/* The Transport header of a SETUP: the first transport the client lists. */
static int parse_client_transport(const struct rtsp_msg *m, struct rtsp_transport *tr)
{
	const struct rtsp_str *v = rtsp_msg_header(m, "Transport");
	if (!v)
		return -EINVAL;
	struct rtsp_str first = *v;
	const char *comma = memchr(v->p, ',', v->len);
	if (comma)
		first.len = (size_t)(comma - v->p);
	if (rtsp_parse_transport(&first, tr))
		return -EINVAL;
	if (tr->tcp)
		return tr->interleaved[0] <= 254 && tr->interleaved[1] <= 255 ? 0 : -EINVAL;
	return tr->client_port[0] > 0 && tr->client_port[0] < 65535 ? 0 : -EINVAL;
}

static void new_session(struct cs_server *s, struct cs_conn *c, uint32_t camera)
{
	c->camera = camera;
	c->session_id = cs_random(s);
	c->ssrc = (uint32_t)cs_random(s);
	c->seq = (uint16_t)cs_random(s);
	c->ts_base = (uint32_t)cs_random(s);
	c->frames_sent = 0;
	c->sr_packets = c->sr_octets = 0;
	c->state = CS_ST_READY;
	s->t.sessions++;
}

static void do_setup(struct cs_server *s, struct cs_conn *c, const struct rtsp_msg *m,
                     const struct target *t, struct reply *r)
{
	struct rtsp_transport tr;
	if (!t->camera) {
		r->status = 404;
		return;
	}
	if (c->state != CS_ST_INIT && t->camera != c->camera) {
		r->status = 459;
		return;
	}
	if (c->state == CS_ST_PLAYING || (c->flags & CS_F_UNIT)) {
		r->status = 455;            /* playing, or a frame still half sent */
		return;
	}
	if ((r->status = check_session(c, m, false)))
		return;
	if (parse_client_transport(m, &tr)) {
		r->status = 461;
		return;
	}
	bool fresh = c->state == CS_ST_INIT;
	if (fresh)
		new_session(s, c, t->camera);
	if (tr.tcp) {
		c->flags |= CS_F_TCP;
		c->ch_rtp = (uint8_t)(tr.interleaved[0] >= 0 ? tr.interleaved[0] : 0);
		c->ch_rtcp = (uint8_t)(tr.interleaved[1] >= 0 ? tr.interleaved[1] : c->ch_rtp + 1);
		add_header(r, "Transport: RTP/AVP/TCP;unicast;interleaved=%u-%u;ssrc=%08" PRIX32,
		           c->ch_rtp, c->ch_rtcp, c->ssrc);
	} else {
		const struct cs_listener *l = &s->listeners[c->listener];
		int rtcp = tr.client_port[1] > 0 ? tr.client_port[1] : tr.client_port[0] + 1;
		c->flags &= (uint8_t)~CS_F_TCP;
		c->peer.sin_port = htons((uint16_t)tr.client_port[0]);
		c->peer_rtcp_port = htons((uint16_t)rtcp);
		if (cs_hash_add(s, c)) {
			r->status = 500;
			return;
		}
		add_header(r, "Transport: RTP/AVP;unicast;client_port=%d-%d;server_port=%u-%u;"
		           "ssrc=%08" PRIX32, tr.client_port[0], rtcp, l->rtp_port, l->rtcp_port,
		           c->ssrc);
	}
	char id[17];
	session_text(c, id);
	add_header(r, "Session: %s;timeout=%d", id, CS_SESSION_TIMEOUT_S);
	if (fresh)
		nvr_log("info", "camsim", "event=session_open camera=%" PRIu32 " session=%s "
		        "transport=%s peer=%s", c->camera, id, tr.tcp ? "tcp" : "udp",
		        inet_ntoa(c->peer.sin_addr));
}

static void log_faults(const struct cs_server *s, const struct cs_conn *c)
{
	const struct cs_fault *f = s->faults ? &s->faults[c->camera - 1] : NULL;
	if (!f || !f->any)
		return;
	nvr_log("info", "camsim", "event=fault_armed camera=%" PRIu32 " session=%016" PRIx64
	        " drop_s=%g stall_s=%g corrupt=%g reorder=%g", c->camera, c->session_id,
	        f->drop_s, f->stall_s, f->corrupt_p, f->reorder_p);
}

static void do_play(struct cs_server *s, struct cs_conn *c, const struct rtsp_msg *m,
                    const struct target *t, struct reply *r, int64_t now)
{
	if ((r->status = check_session(c, m, true)))
		return;
	if (t->camera != c->camera) {
		r->status = 404;
		return;
	}
	uint64_t frame = c->state == CS_ST_PLAYING ? c->frame : 0;
	uint32_t rtptime = c->state == CS_ST_PLAYING ? cs_rtp_timestamp(s, c, frame) : c->ts_base;
	char id[17];
	session_text(c, id);
	add_header(r, "Session: %s;timeout=%d", id, CS_SESSION_TIMEOUT_S);
	add_header(r, "Range: npt=0.000-");
	add_header(r, "RTP-Info: url=%strack1;seq=%u;rtptime=%" PRIu32, t->base,
	           (unsigned)c->seq, rtptime);
	if (c->state != CS_ST_PLAYING) {
		log_faults(s, c);
		cs_stream_play(s, c, now);
	}
}

static void do_teardown(struct cs_server *s, struct cs_conn *c, const struct rtsp_msg *m,
                        struct reply *r)
{
	if ((r->status = check_session(c, m, true)))
		return;
	nvr_log("info", "camsim", "event=session_close camera=%" PRIu32 " session=%016" PRIx64
	        " reason=teardown frames_sent=%" PRIu64, c->camera, c->session_id, c->frames_sent);
	cs_stream_stop(s, c);
	cs_hash_remove(s, c);
	c->state = CS_ST_INIT;
}

static void handle_request(struct cs_server *s, struct cs_conn *c, const struct rtsp_msg *m,
                           int64_t now)
{
	static struct target t;
	struct reply r = { .status = 200, .cseq = m->cseq };
	char method[32];

	if (m->is_response)
		return;                        /* nothing we asked for */
	if (m->cseq < 0 || m->method.len >= sizeof method) {
		r.status = 400;
		goto out;
	}
	memcpy(method, m->method.p, m->method.len);
	method[m->method.len] = '\0';
	if (strcmp(method, "OPTIONS") && !authorized(s, c, m, method)) {
		r.status = 401;
		add_header(&r, "WWW-Authenticate: Digest realm=\"%s\", nonce=\"%016" PRIx64 "\", "
		           "algorithm=MD5", CS_REALM, c->nonce);
		goto out;
	}
	parse_target(s, &m->uri, &t);
	if (str_is(&m->method, "OPTIONS")) {
		r.status = check_session(c, m, false);
		add_header(&r, "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN");
	} else if (str_is(&m->method, "DESCRIBE")) {
		do_describe(s, c, &t, &r);
	} else if (str_is(&m->method, "SETUP")) {
		do_setup(s, c, m, &t, &r);
	} else if (str_is(&m->method, "PLAY")) {
		do_play(s, c, m, &t, &r, now);
	} else if (str_is(&m->method, "GET_PARAMETER")) {
		r.status = check_session(c, m, false);
	} else if (str_is(&m->method, "TEARDOWN")) {
		do_teardown(s, c, m, &r);
	} else {
		r.status = 501;
	}
	if (!r.status)
		r.status = 200;
out:
	send_reply(s, c, &r);
}

/* ---- reading ------------------------------------------------------------------- */

/* Handles every complete chunk at the start of buf; returns the bytes
 * used, or -1 when the connection was closed. */
static long process(struct cs_server *s, struct cs_conn *c, const uint8_t *buf, size_t len,
                    int64_t now)
{
	static struct rtsp_chunk ch;
	size_t off = 0;
	while (off < len) {
		rtsp_next_chunk(buf + off, len - off, &ch);
		if (ch.kind == RTSP_CHUNK_NEED_MORE)
			break;
		if (ch.kind == RTSP_CHUNK_ERROR || ch.size == 0) {
			cs_conn_close(s, c, "bad_request");
			return -1;
		}
		c->last_seen_us = now;
		if (ch.kind == RTSP_CHUNK_MESSAGE)
			handle_request(s, c, &ch.msg, now);
		if (c->state == CS_ST_CLOSED)
			return -1;
		off += ch.size;
	}
	return (long)off;
}

void cs_rtsp_readable(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	uint8_t *buf = s->rxbuf;
	size_t len = c->rx_len;
	if (len) {
		memcpy(buf, c->rx, len);
		free(c->rx);
		c->rx = NULL;
		c->rx_len = 0;
	}
	for (;;) {
		ssize_t r = recv(c->fd, buf + len, s->rxbuf_cap - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			cs_conn_close(s, c, r == 0 ? "peer_closed" : "recv_error");
			return;
		}
		len += (size_t)r;
		long used = process(s, c, buf, len, now);
		if (used < 0)
			return;
		memmove(buf, buf + used, len - (size_t)used);
		len -= (size_t)used;
		if (len >= CS_RX_MAX) {
			cs_conn_close(s, c, "request_too_large");
			return;
		}
	}
	if (!len)
		return;
	c->rx = malloc(len);
	if (!c->rx) {
		cs_conn_close(s, c, "out_of_memory");
		return;
	}
	memcpy(c->rx, buf, len);
	c->rx_len = (uint32_t)len;
}
