/*
 * camsim_stream.c - pacing and sending of the RTP streams.
 *
 * Frame k of a session is due at PLAY + k/fps (monotonic clock) and is
 * fixture access unit k mod frames, so the file loops with RTP timestamps
 * (base + k * 90000/fps) and sequence numbers that simply go on. Sessions
 * wait in one min-heap ordered by the due time of their next frame.
 *
 * One access unit goes out in one call: sendmsg over the RTSP connection
 * for TCP ('$' channel length framing, then per packet the 12-byte RTP
 * header built in a scratch array and the payload pointing into the shared
 * fixture), sendmmsg from the listener's RTP socket for UDP. When a socket
 * is full the session remembers how far it got (bytes for TCP, packets for
 * UDP) and waits for EPOLLOUT; the unit is rebuilt from the fixture when it
 * goes on, so nothing is copied per session. A session whose next frame is
 * more than CS_BEHIND_US late jumps to the next key frame and counts the
 * frames it skipped.
 *
 * Every CS_SR_EVERY_US a session's unit is preceded by an RTCP sender
 * report (with an SDES CNAME) tying the frame's RTP timestamp to the wall
 * clock of its due time: on the RTCP channel for TCP, to the client's RTCP
 * port from the listener's RTCP socket for UDP.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "camsim.h"
#include "../../nvr/log.h"

#define SALT_REORDER 1
#define SALT_CORRUPT 2
#define SALT_CORRUPT_POS 3
#define NTP_UNIX_OFFSET 2208988800ull

/* What one build of a unit holds, for the accounting at completion. */
struct unit_info {
	uint32_t packets;
	uint32_t payload_bytes;
	size_t wire_bytes;        /* TCP: bytes on the connection */
	uint32_t corrupted, swapped;
};

static inline void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ---- the heap of next-send times ------------------------------------------ */

static void heap_set(struct cs_server *s, uint32_t i, struct cs_heap_entry e)
{
	s->heap[i] = e;
	e.c->heap_idx = (int32_t)i;
}

static void heap_up(struct cs_server *s, uint32_t i)
{
	struct cs_heap_entry e = s->heap[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (s->heap[parent].due_us <= e.due_us)
			break;
		heap_set(s, i, s->heap[parent]);
		i = parent;
	}
	heap_set(s, i, e);
}

static void heap_down(struct cs_server *s, uint32_t i)
{
	struct cs_heap_entry e = s->heap[i];
	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		int64_t best = e.due_us;
		if (l < s->heap_len && s->heap[l].due_us < best)
			m = l, best = s->heap[l].due_us;
		if (l + 1 < s->heap_len && s->heap[l + 1].due_us < best)
			m = l + 1;
		if (m == i)
			break;
		heap_set(s, i, s->heap[m]);
		i = m;
	}
	heap_set(s, i, e);
}

static int heap_push(struct cs_server *s, struct cs_conn *c, int64_t due)
{
	if (c->heap_idx >= 0) {
		uint32_t i = (uint32_t)c->heap_idx;
		s->heap[i].due_us = due;
		heap_up(s, i);
		heap_down(s, (uint32_t)c->heap_idx);
		return 0;
	}
	if (s->heap_len == s->heap_cap) {
		uint32_t n = s->heap_cap ? s->heap_cap * 2 : 1024;
		struct cs_heap_entry *h = realloc(s->heap, n * sizeof *h);
		if (!h)
			return -ENOMEM;
		s->heap = h;
		s->heap_cap = n;
	}
	s->heap[s->heap_len] = (struct cs_heap_entry){ due, c };
	c->heap_idx = (int32_t)s->heap_len++;
	heap_up(s, s->heap_len - 1);
	return 0;
}

void cs_heap_remove(struct cs_server *s, struct cs_conn *c)
{
	if (c->heap_idx < 0)
		return;
	uint32_t i = (uint32_t)c->heap_idx;
	c->heap_idx = -1;
	if (--s->heap_len == i)
		return;
	struct cs_heap_entry last = s->heap[s->heap_len];
	heap_set(s, i, last);
	heap_up(s, i);
	heap_down(s, (uint32_t)last.c->heap_idx);
}

/* Schedules the session; out of memory for the heap ends the session
 * rather than leaving it silently unscheduled. */
static void schedule(struct cs_server *s, struct cs_conn *c, int64_t due)
{
	if (heap_push(s, c, due))
		cs_conn_close(s, c, "out_of_memory");
}

/* ---- time ------------------------------------------------------------------ */

static const struct cs_camera *cam_of(const struct cs_server *s, const struct cs_conn *c)
{
	return &s->cameras[c->camera - 1];
}

static const struct cs_fixture *fixture_of(const struct cs_server *s, const struct cs_conn *c)
{
	return &s->fixtures[cam_of(s, c)->fixture];
}

static const struct cs_fault *fault_of(const struct cs_server *s, const struct cs_conn *c)
{
	if (!s->faults || !s->faults[c->camera - 1].any)
		return NULL;
	return &s->faults[c->camera - 1];
}

int64_t cs_frame_due(const struct cs_server *s, const struct cs_conn *c, uint64_t frame)
{
	const struct cs_camera *cam = cam_of(s, c);
	unsigned __int128 us = (unsigned __int128)frame * 1000000u * cam->fps_den / cam->fps_num;
	return c->play_mono_us + (int64_t)us;
}

uint32_t cs_rtp_timestamp(const struct cs_server *s, const struct cs_conn *c, uint64_t frame)
{
	const struct cs_camera *cam = cam_of(s, c);
	unsigned __int128 t = (unsigned __int128)frame * 90000u * cam->fps_den / cam->fps_num;
	return c->ts_base + (uint32_t)t;
}

/* The frame whose slot `now` falls in. */
static uint64_t frame_at(const struct cs_server *s, const struct cs_conn *c, int64_t now)
{
	const struct cs_camera *cam = cam_of(s, c);
	if (now <= c->play_mono_us)
		return 0;
	unsigned __int128 us = (unsigned __int128)(now - c->play_mono_us);
	return (uint64_t)(us * cam->fps_num / (1000000u * (uint64_t)cam->fps_den));
}

/* ---- building a unit --------------------------------------------------------- */

/* RTCP SR + SDES CNAME for the frame about to be sent. */
static void build_sr(const struct cs_server *s, const struct cs_conn *c, uint8_t *p)
{
	int64_t wall = c->play_real_us + (cs_frame_due(s, c, c->frame) - c->play_mono_us);
	uint64_t sec = (uint64_t)(wall / 1000000) + NTP_UNIX_OFFSET;
	uint64_t frac = ((uint64_t)(wall % 1000000) << 32) / 1000000;

	memset(p, 0, CS_RTCP_BYTES);
	p[0] = 0x80;
	p[1] = 200;
	put16(p + 2, 6);
	put32(p + 4, c->ssrc);
	put32(p + 8, (uint32_t)sec);
	put32(p + 12, (uint32_t)frac);
	put32(p + 16, cs_rtp_timestamp(s, c, c->frame));
	put32(p + 20, c->sr_packets);
	put32(p + 24, c->sr_octets);
	p[28] = 0x81;                      /* SDES, one chunk */
	p[29] = 202;
	put16(p + 30, 5);
	put32(p + 32, c->ssrc);
	p[36] = 1;                         /* CNAME */
	p[37] = 10;
	memcpy(p + 38, "nvr-camsim", 10);  /* then END and padding (zeros) */
}

static void rtp_header(uint8_t *h, const struct cs_conn *c, bool marker, uint16_t seq,
                       uint32_t ts)
{
	h[0] = 0x80;
	h[1] = (uint8_t)((marker ? 0x80 : 0) | CS_PAYLOAD_TYPE);
	put16(h + 2, seq);
	put32(h + 4, ts);
	put32(h + 8, c->ssrc);
}

/* Send order of the unit's packets: adjacent pairs swapped by the reorder
 * fault. Returns the number of swapped pairs. */
static uint32_t build_order(struct cs_server *s, const struct cs_conn *c,
                            const struct cs_fault *f, uint32_t count)
{
	uint32_t swapped = 0;
	for (uint32_t i = 0; i < count; i++)
		s->order[i] = i;
	if (!f || f->reorder_p <= 0)
		return 0;
	for (uint32_t i = 0; i + 1 < count; i += 2)
		if (cs_fault_draw(c->ssrc, (uint16_t)(c->unit_seq + i), SALT_REORDER) < f->reorder_p) {
			s->order[i] = i + 1;
			s->order[i + 1] = i;
			swapped++;
		}
	return swapped;
}

/* The payload of packet p as 1 iovec, or 3 when the corrupt fault flips a
 * byte in it (the flipped byte lives in s->flips[slot]). */
static int payload_iov(struct cs_server *s, const struct cs_fault *f, const struct cs_conn *c,
                       const struct cs_pkt *pkt, uint16_t seq, uint32_t slot,
                       struct iovec *iov, uint32_t *corrupted)
{
	uint8_t *data = s->fixtures[cam_of(s, c)->fixture].payload + pkt->off;
	if (!f || f->corrupt_p <= 0 || pkt->len <= pkt->keep ||
	    cs_fault_draw(c->ssrc, seq, SALT_CORRUPT) >= f->corrupt_p) {
		iov[0] = (struct iovec){ data, pkt->len };
		return 1;
	}
	uint32_t span = pkt->len - pkt->keep;
	uint32_t pos = pkt->keep + (uint32_t)(cs_fault_draw(c->ssrc, seq, SALT_CORRUPT_POS) * span);
	s->flips[slot] = data[pos] ^ 0xFF;
	(*corrupted)++;
	int n = 0;
	iov[n++] = (struct iovec){ data, pos };
	iov[n++] = (struct iovec){ &s->flips[slot], 1 };
	if (pos + 1u < pkt->len)
		iov[n++] = (struct iovec){ data + pos + 1, pkt->len - pos - 1u };
	return n;
}

/* Builds the TCP byte stream of the current unit into s->iov. */
static int build_tcp(struct cs_server *s, const struct cs_conn *c, struct unit_info *ui)
{
	const struct cs_fixture *fx = fixture_of(s, c);
	const struct cs_au *au = &fx->aus[c->frame % fx->naus];
	const struct cs_fault *f = fault_of(s, c);
	uint32_t ts = cs_rtp_timestamp(s, c, c->frame);
	int n = 0;

	memset(ui, 0, sizeof *ui);
	if (c->flags & CS_F_UNIT_SR) {
		uint8_t *h = s->hdrs;          /* slot 0 is kept for the report */
		h[0] = '$';
		h[1] = c->ch_rtcp;
		put16(h + 2, CS_RTCP_BYTES);
		build_sr(s, c, h + CS_TCP_FRAMING);
		s->iov[n++] = (struct iovec){ h, CS_TCP_FRAMING + CS_RTCP_BYTES };
		ui->wire_bytes += CS_TCP_FRAMING + CS_RTCP_BYTES;
	}
	ui->swapped = build_order(s, c, f, au->count);
	for (uint32_t i = 0; i < au->count; i++) {
		uint32_t p = s->order[i];
		const struct cs_pkt *pkt = &fx->pkts[au->first + p];
		uint16_t seq = (uint16_t)(c->unit_seq + p);
		uint8_t *h = s->hdrs + 64 + (size_t)i * 16;
		h[0] = '$';
		h[1] = c->ch_rtp;
		put16(h + 2, CS_RTP_HEADER + pkt->len);
		rtp_header(h + 4, c, p + 1 == au->count, seq, ts);
		s->iov[n++] = (struct iovec){ h, 16 };
		n += payload_iov(s, f, c, pkt, seq, i, &s->iov[n], &ui->corrupted);
		ui->wire_bytes += 16u + pkt->len;
	}
	ui->packets = au->count;
	ui->payload_bytes = au->bytes;
	return n;
}

/* Builds the current unit as one message per packet into s->msgs. */
static void build_udp(struct cs_server *s, const struct cs_conn *c, struct unit_info *ui)
{
	const struct cs_fixture *fx = fixture_of(s, c);
	const struct cs_au *au = &fx->aus[c->frame % fx->naus];
	const struct cs_fault *f = fault_of(s, c);
	uint32_t ts = cs_rtp_timestamp(s, c, c->frame);
	size_t n = 0;

	memset(ui, 0, sizeof *ui);
	ui->swapped = build_order(s, c, f, au->count);
	for (uint32_t i = 0; i < au->count; i++) {
		uint32_t p = s->order[i];
		const struct cs_pkt *pkt = &fx->pkts[au->first + p];
		uint16_t seq = (uint16_t)(c->unit_seq + p);
		uint8_t *h = s->hdrs + 64 + (size_t)i * 16;
		rtp_header(h, c, p + 1 == au->count, seq, ts);
		struct iovec *iov = &s->iov[n];
		iov[0] = (struct iovec){ h, CS_RTP_HEADER };
		int k = 1 + payload_iov(s, f, c, pkt, seq, i, iov + 1, &ui->corrupted);
		s->msgs[i] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = (void *)&c->peer,
			.msg_namelen = sizeof c->peer,
			.msg_iov = iov,
			.msg_iovlen = (size_t)k,
		} };
		n += (size_t)k;
		ui->wire_bytes += CS_RTP_HEADER + pkt->len;
	}
	ui->packets = au->count;
	ui->payload_bytes = au->bytes;
}

/* ---- sending ------------------------------------------------------------------ */

static void unit_done(struct cs_server *s, struct cs_conn *c, const struct unit_info *ui,
                      int64_t now)
{
	if (c->flags & CS_F_UNIT_SR)
		c->next_sr_us = now + CS_SR_EVERY_US;
	c->flags &= (uint8_t)~(CS_F_UNIT | CS_F_UNIT_SR);
	c->seq = (uint16_t)(c->unit_seq + ui->packets);
	c->sr_packets += ui->packets;
	c->sr_octets += ui->payload_bytes;
	c->frame++;
	c->frames_sent++;
	s->cameras[c->camera - 1].frames_sent++;
	s->t.frames_sent++;
	s->t.packets_sent += ui->packets;
	s->t.bytes_sent += ui->wire_bytes;
	s->t.packets_corrupted += ui->corrupted;
	s->t.pairs_reordered += ui->swapped;
}

static void unit_start(struct cs_conn *c, int64_t now)
{
	if (c->flags & CS_F_UNIT)
		return;
	c->flags |= CS_F_UNIT;
	c->unit_seq = c->seq;
	c->unit_done = 0;
	if (now >= c->next_sr_us)
		c->flags |= CS_F_UNIT_SR;
}

/* Sends (the rest of) the current unit on the TCP connection: 0 when it is
 * all out, -EAGAIN when the socket is full (state kept), else an error. */
static int send_tcp(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	struct unit_info ui;
	unit_start(c, now);
	int n = build_tcp(s, c, &ui);
	struct iovec *iov = s->iov;
	size_t skip = c->unit_done;

	while (n > 0 && skip >= iov->iov_len) {
		skip -= iov->iov_len;
		iov++, n--;
	}
	while (n > 0) {
		iov->iov_base = (uint8_t *)iov->iov_base + skip;
		iov->iov_len -= skip;
		skip = 0;
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)(n < IOV_MAX ? n : IOV_MAX) };
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->flags |= CS_F_BLOCKED;
			return -EAGAIN;
		}
		if (w < 0)
			return -errno;
		c->unit_done += (uint32_t)w;
		skip = (size_t)w;
		while (n > 0 && skip >= iov->iov_len) {
			skip -= iov->iov_len;
			iov++, n--;
		}
	}
	unit_done(s, c, &ui, now);
	return 0;
}

static void udp_wait(struct cs_server *s, struct cs_conn *c)
{
	if (c->flags & CS_F_UDP_WAIT)
		return;
	struct cs_listener *l = &s->listeners[c->listener];
	c->flags |= CS_F_UDP_WAIT;
	c->udp_wait_next = NULL;
	if (l->wait_tail) {
		l->wait_tail->udp_wait_next = c;
	} else {
		l->wait_head = c;
		if (cs_udp_want_writable(s, l, true))
			nvr_log("error", "camsim", "event=epoll_error socket=udp_rtp");
	}
	l->wait_tail = c;
}

void cs_udp_wait_remove(struct cs_server *s, struct cs_conn *c)
{
	if (!(c->flags & CS_F_UDP_WAIT))
		return;
	struct cs_listener *l = &s->listeners[c->listener];
	struct cs_conn *prev = NULL;
	for (struct cs_conn *x = l->wait_head; x; prev = x, x = x->udp_wait_next) {
		if (x != c)
			continue;
		if (prev)
			prev->udp_wait_next = c->udp_wait_next;
		else
			l->wait_head = c->udp_wait_next;
		if (l->wait_tail == c)
			l->wait_tail = prev;
		if (!l->wait_head && cs_udp_want_writable(s, l, false))
			nvr_log("error", "camsim", "event=epoll_error socket=udp_rtp");
		break;
	}
	c->flags &= (uint8_t)~CS_F_UDP_WAIT;
	c->udp_wait_next = NULL;
}

/* A sender report to the client's RTCP port; a full socket only delays it
 * to the next frame. */
static void send_udp_sr(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	uint8_t sr[CS_RTCP_BYTES];
	struct sockaddr_in to = c->peer;
	to.sin_port = c->peer_rtcp_port;
	build_sr(s, c, sr);
	ssize_t w = sendto(s->listeners[c->listener].rtcp.fd, sr, sizeof sr, MSG_DONTWAIT,
	                   (struct sockaddr *)&to, sizeof to);
	if (w == (ssize_t)sizeof sr)
		c->next_sr_us = now + CS_SR_EVERY_US;
}

/* Sends (the rest of) the current unit over UDP, like send_tcp. */
static int send_udp(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	struct unit_info ui;
	if (!(c->flags & CS_F_UNIT)) {
		unit_start(c, now);
		if (c->flags & CS_F_UNIT_SR) {
			send_udp_sr(s, c, now);
			c->flags &= (uint8_t)~CS_F_UNIT_SR;
		}
	}
	build_udp(s, c, &ui);
	int fd = s->listeners[c->listener].rtp.fd;
	while (c->unit_done < ui.packets) {
		unsigned left = ui.packets - c->unit_done;
		int r = sendmmsg(fd, s->msgs + c->unit_done, left < UIO_MAXIOV ? left : UIO_MAXIOV,
		                 MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			udp_wait(s, c);
			return -EAGAIN;
		}
		if (r < 0)
			return -errno;
		c->unit_done += (uint32_t)r;
	}
	unit_done(s, c, &ui, now);
	return 0;
}

static int send_unit(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	return (c->flags & CS_F_TCP) ? send_tcp(s, c, now) : send_udp(s, c, now);
}

/* ---- one session's turn ------------------------------------------------------- */

/* Jumps a late session to the next key frame at or after the current slot. */
static void skip_to_key(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	const struct cs_fixture *fx = fixture_of(s, c);
	uint64_t slot = frame_at(s, c, now);
	uint64_t next = slot + fx->to_key[slot % fx->naus];
	uint64_t skipped = next - c->frame;
	s->t.frames_skipped += skipped;
	nvr_log("info", "camsim", "event=client_behind camera=%" PRIu32 " session=%016" PRIx64
	        " late_ms=%" PRId64 " frames_skipped=%" PRIu64, c->camera, c->session_id,
	        (now - cs_frame_due(s, c, c->frame)) / 1000, skipped);
	c->frame = next;
}

/* The stall fault: false when the session must wait (it is rescheduled). */
static bool stall_check(struct cs_server *s, struct cs_conn *c, const struct cs_fault *f,
                        int64_t now)
{
	int64_t start = c->play_mono_us + CS_STALL_AFTER_US;
	int64_t end = start + (int64_t)(f->stall_s * 1e6);
	if (!(c->flags & CS_F_STALLING)) {
		if (cs_frame_due(s, c, c->frame) < start)
			return true;
		c->flags |= CS_F_STALLING;
		nvr_log("info", "camsim", "event=fault_stall camera=%" PRIu32 " session=%016" PRIx64
		        " seconds=%g", c->camera, c->session_id, f->stall_s);
	}
	if (now < end) {
		schedule(s, c, end);
		return false;
	}
	uint64_t resume = frame_at(s, c, now);
	if (resume > c->frame)
		s->t.frames_skipped += resume - c->frame;
	nvr_log("info", "camsim", "event=fault_stall_end camera=%" PRIu32 " session=%016" PRIx64
	        " frames_skipped=%" PRIu64, c->camera, c->session_id,
	        resume > c->frame ? resume - c->frame : 0);
	if (resume > c->frame)
		c->frame = resume;
	c->flags = (uint8_t)((c->flags & ~CS_F_STALLING) | CS_F_STALL_DONE);
	return true;
}

/* Sends what is due for one session, up to CS_FRAMES_PER_TURN frames, and
 * schedules its next turn. */
static void session_turn(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	const struct cs_fault *f = fault_of(s, c);
	for (int i = 0; i < CS_FRAMES_PER_TURN; i++) {
		if (c->state != CS_ST_PLAYING)
			return;
		if (c->flags & ((c->flags & CS_F_TCP) ? CS_F_BLOCKED : CS_F_UDP_WAIT))
			return;             /* the writable event resumes it */
		if (f && f->drop_s > 0 && now >= c->play_mono_us + (int64_t)(f->drop_s * 1e6)) {
			cs_conn_close(s, c, "fault_drop");
			return;
		}
		if (f && f->stall_s > 0 && !(c->flags & CS_F_STALL_DONE) && !stall_check(s, c, f, now))
			return;
		int64_t due = cs_frame_due(s, c, c->frame);
		if (due > now) {
			schedule(s, c, due);
			return;
		}
		if (now - due > CS_BEHIND_US) {
			skip_to_key(s, c, now);
			continue;
		}
		int err = send_unit(s, c, now);
		if (err == -EAGAIN)
			return;
		if (err) {
			cs_conn_close(s, c, "send_error");
			return;
		}
	}
	schedule(s, c, now + 1);
}

void cs_stream_run_due(struct cs_server *s, int64_t now)
{
	while (s->heap_len && s->heap[0].due_us <= now) {
		struct cs_conn *c = s->heap[0].c;
		cs_heap_remove(s, c);
		session_turn(s, c, now);
	}
}

void cs_stream_play(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	c->state = CS_ST_PLAYING;
	c->play_mono_us = now;
	c->play_real_us = nvr_now_us();
	c->frame = 0;
	c->next_sr_us = now;
	c->flags &= (uint8_t)~(CS_F_STALLING | CS_F_STALL_DONE);
	schedule(s, c, now);
}

void cs_stream_stop(struct cs_server *s, struct cs_conn *c)
{
	cs_heap_remove(s, c);
	if (!(c->flags & CS_F_TCP)) {
		/* UDP units can be abandoned; a TCP unit must finish to keep the
		 * connection's framing intact, and is not followed by another. */
		cs_udp_wait_remove(s, c);
		c->flags &= (uint8_t)~(CS_F_UNIT | CS_F_UNIT_SR);
	}
	if (c->state == CS_ST_PLAYING)
		c->state = CS_ST_READY;
}

/* After the unit and queued responses are out, the next frame's turn. */
static void resume(struct cs_server *s, struct cs_conn *c)
{
	if (c->state == CS_ST_PLAYING && c->heap_idx < 0)
		schedule(s, c, cs_frame_due(s, c, c->frame));
}

void cs_stream_writable(struct cs_server *s, struct cs_conn *c, int64_t now)
{
	if (!(c->flags & CS_F_BLOCKED))
		return;
	c->flags &= (uint8_t)~CS_F_BLOCKED;
	if ((c->flags & CS_F_TCP) && (c->flags & CS_F_UNIT)) {
		int err = send_tcp(s, c, now);
		if (err == -EAGAIN)
			return;
		if (err) {
			cs_conn_close(s, c, "send_error");
			return;
		}
	}
	int err = cs_conn_flush_out(c);
	if (err == -EAGAIN) {
		c->flags |= CS_F_BLOCKED;
		return;
	}
	if (err) {
		cs_conn_close(s, c, "send_error");
		return;
	}
	resume(s, c);
}

void cs_stream_udp_writable(struct cs_server *s, struct cs_listener *l, int64_t now)
{
	while (l->wait_head) {
		struct cs_conn *c = l->wait_head;
		int err = send_udp(s, c, now);
		if (err == -EAGAIN)
			return;                /* still first in the queue */
		cs_udp_wait_remove(s, c);
		if (err) {
			cs_conn_close(s, c, "send_error");
			continue;
		}
		resume(s, c);
	}
}

/* ---- scratch ------------------------------------------------------------------- */

int cs_scratch_init(struct cs_server *s)
{
	size_t n = 1;
	for (unsigned i = 0; i < s->nfixtures; i++)
		if (s->fixtures[i].max_au_pkts > n)
			n = s->fixtures[i].max_au_pkts;
	s->scratch_pkts = n;
	s->iov = calloc(4 * n + 2, sizeof *s->iov);
	s->msgs = calloc(n, sizeof *s->msgs);
	s->hdrs = calloc(64 + 16 * n, 1);
	s->flips = calloc(n, 1);
	s->order = calloc(n, sizeof *s->order);
	s->rxbuf_cap = 2 * (CS_RX_MAX + 4096);
	s->rxbuf = malloc(s->rxbuf_cap);
	if (!s->iov || !s->msgs || !s->hdrs || !s->flips || !s->order || !s->rxbuf) {
		cs_scratch_free(s);
		return -ENOMEM;
	}
	return 0;
}

void cs_scratch_free(struct cs_server *s)
{
	free(s->iov);
	free(s->msgs);
	free(s->hdrs);
	free(s->flips);
	free(s->order);
	free(s->rxbuf);
	s->iov = NULL;
	s->msgs = NULL;
	s->hdrs = NULL;
	s->flips = NULL;
	s->order = NULL;
	s->rxbuf = NULL;
}
