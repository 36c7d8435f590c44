/*
 * rtsp_media.c - a session's media (rtsp_session.h): RTP packets through
 * the depacketizer into frames for the storage engine, RTCP sender reports
 * into the frame clock, per-second rates, and the UDP ports.
 *
 * Frames: stg_put_frame() from the loop thread (the engine's rule: one
 * thread per camera), with the SDP's codec and the key flag. A frame's
 * time comes from frame_clock.h with the arrival time of its first packet;
 * the first time the camera's clock disagrees with arrival by more than
 * max_clock_skew_ms is logged once per connection.
 *
 * Bad input: unparsable RTP or malformed payloads are counted by the
 * depacketizer and skipped; BAD_PACKETS_MAX of them in a row without a
 * frame in between make the stream "bad" and the session fails.
 *
 * UDP: an even/odd port pair bound from the configured range (each shard
 * starts searching in its own part of the range), one IORING_OP_RECVMSG in
 * flight per port. Datagrams from other hosts than the camera are dropped;
 * nothing is ever sent from these ports. The RTP buffer starts at 2 KiB
 * and becomes 64 KiB after the first datagram that did not fit (that one is
 * lost, and the depacketizer sees the gap).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "rtp.h"
#include "rtsp_session.h"

#define BAD_PACKETS_MAX 64             /* in a row, without a frame: bad stream */
#define UDP_RTP_MIN 2048u
#define UDP_RTP_MAX 65536u
#define UDP_RTCP_BUF 1500u

/* ---- rates ----------------------------------------------------------------- */

static void rate_add(struct rtsp_session *s, uint32_t bytes)
{
	int64_t sec = rtsp_now_ms(s) / 1000;
	struct rtsp_rate_bucket *b = &s->rate[sec % RATE_BUCKETS];
	if (b->sec != sec) {
		b->sec = sec;
		b->frames = 0;
		b->bytes = 0;
	}
	b->frames++;
	b->bytes += bytes;
}

/* Frames and bytes per second over the last RATE_SECONDS whole seconds
 * (fewer right after the stream started: the second it started in is
 * partial and left out; 0 until one whole second has passed). */
void rtsp_rate_get(const struct rtsp_session *s, int64_t now, double *fps, double *kbps)
{
	*fps = *kbps = 0;
	if (!s->streaming_since_ms || s->phase != PH_STREAMING)
		return;
	int64_t sec = now / 1000, span = sec - (s->streaming_since_ms / 1000 + 1);
	if (span > RATE_SECONDS)
		span = RATE_SECONDS;
	if (span <= 0)
		return;
	uint64_t frames = 0, bytes = 0;
	for (int i = 0; i < RATE_BUCKETS; i++) {
		if (s->rate[i].sec >= sec - span && s->rate[i].sec < sec) {
			frames += s->rate[i].frames;
			bytes += s->rate[i].bytes;
		}
	}
	*fps = (double)frames / (double)span;
	*kbps = (double)bytes * 8.0 / 1000.0 / (double)span;
}

/* ---- frames ---------------------------------------------------------------- */

/* The arrival time of the first packet of the frame with timestamp ts. */
static int64_t frame_arrival(const struct rtsp_session *s, uint32_t ts)
{
	if (s->have_pkt && ts == s->pkt_ts)
		return s->pkt_first_us;
	if (s->have_pkt && ts == s->prev_pkt_ts)
		return s->prev_first_us;
	return nvr_now_us();
}

void rtsp_on_frame(void *user, const struct depack_frame *f)
{
	struct rtsp_session *s = user;
	if (s->media_stopped)
		return;
	enum fclock_source src;
	int64_t t = fclock_frame(&s->clk, f->rtp_timestamp, frame_arrival(s, f->rtp_timestamp), &src);
	if (s->clk.skewed_frames && !s->skew_logged) {
		s->skew_logged = true;
		nvr_log_limited(&s->log_limit, "warn", "ingest", "event=clock_skew camera=%" PRIu32
		                " max_skew_ms=%" PRIu32 " note=\"camera clock (RTCP) disagrees with"
		                " arrival; arrival time used\"", s->cam_id, s->sh->cfg.max_clock_skew_ms);
	}
	s->rtcp_clock = src == FCLOCK_RTCP;
	s->bad_in_row = 0;
	struct stg_frame fr = {
		.time_us = t, .data = f->data, .size = (uint32_t)f->size, .key = f->key,
		.codec = s->codec,
	};
	int err = stg_put_frame(s->cam, &fr);
	if (err) {
		if (!s->refused++)
			nvr_log_limited(&s->log_limit, "warn", "ingest", "event=frame_refused camera=%"
			                PRIu32 " error=\"%s\"", s->cam_id, stg_strerror(err));
		return;
	}
	s->frames++;
	s->bytes += f->size;
	rate_add(s, (uint32_t)f->size);
}

static int bad_packet(struct rtsp_session *s, const char *what)
{
	if (++s->bad_in_row < BAD_PACKETS_MAX)
		return 0;
	return rtsp_fail(s, "bad stream: %u %s in a row", s->bad_in_row, what);
}

int rtsp_on_rtp(struct rtsp_session *s, const uint8_t *p, size_t len, int64_t arrival_us)
{
	struct rtp_packet pkt;
	if (!s->dp)
		return 0;
	if (rtp_parse(p, len, &pkt))
		return bad_packet(s, "unparsable RTP packets");
	if (pkt.payload_type != s->pt)
		return 0;
	if (!s->have_ssrc) {
		s->have_ssrc = true;
		s->ssrc = pkt.ssrc;
	}
	s->last_media_ms = rtsp_now_ms(s);
	if (!s->have_pkt || pkt.timestamp != s->pkt_ts) {
		s->prev_pkt_ts = s->pkt_ts;
		s->prev_first_us = s->pkt_first_us;
		s->pkt_ts = pkt.timestamp;
		s->pkt_first_us = arrival_us;
		s->have_pkt = true;
	}
	if (depack_push(s->dp, &pkt))
		return bad_packet(s, "malformed RTP payloads");
	return 0;
}

int rtsp_on_rtcp(struct rtsp_session *s, const uint8_t *p, size_t len)
{
	struct rtcp_sender_report sr;
	if (!s->dp || rtcp_find_sender_report(p, len, &sr) != 1)
		return 0;
	if (s->have_ssrc && sr.ssrc != s->ssrc)
		return 0;
	fclock_sender_report(&s->clk, rtp_ntp_to_unix_us(sr.ntp), sr.rtp_timestamp);
	if (!s->sr_logged) {
		s->sr_logged = true;
		nvr_log("info", "ingest", "event=rtcp_sender_report camera=%" PRIu32
		        " offset_ms=%" PRId64, s->cam_id,
		        (rtp_ntp_to_unix_us(sr.ntp) - nvr_now_us()) / 1000);
	}
	return 0;
}

/* ---- UDP ------------------------------------------------------------------- */

void rtsp_udp_free(struct rtsp_udp_port *u)
{
	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	free(u->buf);
	free(u);
}

static int udp_bind(struct rtsp_session *s, uint16_t port, struct rtsp_udp_port **out)
{
	struct rtsp_udp_port *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->port = port;
	int family = s->peer.ss_family;
	u->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		int err = -errno;
		free(u);
		return err;
	}
	struct sockaddr_storage a = { .ss_family = (sa_family_t)family };
	socklen_t alen;
	if (family == AF_INET6) {
		((struct sockaddr_in6 *)&a)->sin6_port = htons(port);
		alen = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)&a)->sin_port = htons(port);
		alen = sizeof(struct sockaddr_in);
	}
	if (bind(u->fd, (struct sockaddr *)&a, alen)) {
		int err = -errno;
		rtsp_udp_free(u);
		return err;
	}
	*out = u;
	return 0;
}

/* Binds an even/odd pair from the configured range, starting after the
 * pair this shard handed out last. */
static int udp_pair(struct rtsp_session *s)
{
	struct rtsp_shard *sh = s->sh;
	uint16_t lo = (uint16_t)((sh->cfg.udp_port_min + 1u) & ~1u), hi = sh->cfg.udp_port_max;
	if (hi <= lo)
		return -EINVAL;
	uint32_t pairs = (uint32_t)(hi - lo + 1u) / 2u;
	for (uint32_t i = 0; i < pairs; i++) {
		if (sh->udp_next < lo || sh->udp_next + 1u > hi)
			sh->udp_next = lo;
		uint16_t p = sh->udp_next;
		sh->udp_next = (uint16_t)(p + 2u);
		int err = udp_bind(s, p, &s->up[0]);
		if (!err) {
			err = udp_bind(s, (uint16_t)(p + 1u), &s->up[1]);
			if (err) {
				rtsp_udp_free(s->up[0]);
				s->up[0] = NULL;
			}
		}
		if (!err)
			return 0;
		if (err != -EADDRINUSE && err != -EACCES)
			return err;
	}
	return -EADDRINUSE;
}

static int arm_udp(struct rtsp_session *s, int i)
{
	struct rtsp_udp_port *u = s->up[i];
	unsigned kind = i ? K_RTCP : K_RTP;
	struct io_uring_sqe *sqe = loop_sqe(rtsp_loop(s));
	if (!sqe)
		return rtsp_fail(s, "no submission queue entry");
	u->iov.iov_base = u->buf;
	u->iov.iov_len = u->cap;
	memset(&u->msg, 0, sizeof u->msg);
	u->msg.msg_name = &u->from;
	u->msg.msg_namelen = sizeof u->from;
	u->msg.msg_iov = &u->iov;
	u->msg.msg_iovlen = 1;
	io_uring_prep_recvmsg(sqe, u->fd, &u->msg, 0);
	loop_commit(rtsp_loop(s), sqe, kind, s->slot);
	s->ops |= 1u << kind;
	return 0;
}

int rtsp_udp_open(struct rtsp_session *s)
{
	int err = udp_pair(s);
	if (err)
		return rtsp_fail(s, "UDP ports %u-%u: %s", s->sh->cfg.udp_port_min,
		            s->sh->cfg.udp_port_max, strerror(-err));
	s->up[0]->cap = UDP_RTP_MIN;
	s->up[1]->cap = UDP_RTCP_BUF;
	for (int i = 0; i < 2; i++) {
		s->up[i]->buf = malloc(s->up[i]->cap);
		if (!s->up[i]->buf)
			return rtsp_fail(s, "out of memory");
	}
	if (arm_udp(s, 0) || arm_udp(s, 1))
		return -1;
	return 0;
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		               &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
	return false;
}

void rtsp_udp_done(struct rtsp_session *s, int i, int res)
{
	struct rtsp_udp_port *u = s->up[i];
	if (res < 0) {
		rtsp_fail(s, "UDP receive: %s", strerror(-res));
		return;
	}
	bool truncated = (u->msg.msg_flags & MSG_TRUNC) || (size_t)res >= u->cap;
	if (i == 0 && truncated && u->cap < UDP_RTP_MAX) {
		/* this datagram is lost (the depacketizer sees the gap); later
		 * ones of that size fit */
		uint8_t *p = realloc(u->buf, UDP_RTP_MAX);
		if (!p) {
			rtsp_fail(s, "out of memory");
			return;
		}
		u->buf = p;
		u->cap = UDP_RTP_MAX;
		nvr_log("info", "ingest", "event=udp_buffer_grown camera=%" PRIu32 " bytes=%u",
		        s->cam_id, UDP_RTP_MAX);
	} else if (u->msg.msg_namelen && !same_host(&u->from, &s->peer)) {
		/* not from the camera: ignored */
	} else if (!s->media_stopped) {
		if (i == 0 && !truncated && rtsp_on_rtp(s, u->buf, (size_t)res, nvr_now_us()) < 0)
			return;
		if (i == 1 && rtsp_on_rtcp(s, u->buf, (size_t)res) < 0)
			return;
	}
	arm_udp(s, i);
}
