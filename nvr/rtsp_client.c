/*
 * rtsp_client.c - the RTSP sessions of one event loop (see rtsp_client.h):
 * the shard and its commands, each session's life cycle, connecting, the
 * TCP receive path, completions and timers. Requests and replies are in
 * rtsp_request.c, media in rtsp_media.c (shared types: rtsp_session.h).
 *
 * DESIGN
 * One session per camera, driven entirely by completions and timers of the
 * shard's loop (loop.h); nothing here blocks.
 *
 *   IDLE -> [RESOLVING] -> CONNECTING -> OPTIONS -> DESCRIBE -> SETUP -> PLAY
 *        -> STREAMING -> (failure) CLOSING -> BACKOFF -> RESOLVING/CONNECTING ...
 *        -> (remove/stop) TEARDOWN -> CLOSING -> freed
 *
 *  - Admission: a session waits in IDLE for one of the shard's
 *    max_connecting turns before it connects (when added, and after each
 *    backoff), and gives the turn back once it streams or closes; see
 *    "admission" below.
 *  - Names: numeric hosts are parsed here; names go to the resolver thread
 *    (getaddrinfo may block) and come back as a loop command with up to
 *    four addresses, tried in turn when a connect fails.
 *  - Connect: a nonblocking socket and IORING_OP_CONNECT, bounded by the
 *    session's I/O timer (timeout_ms).
 *  - Negotiation (rtsp_request.c): OPTIONS, DESCRIBE (with Basic/Digest
 *    after a 401), SETUP of the video track (TCP interleaved, or UDP when
 *    the camera's transport is "udp"), PLAY; each reply within timeout_ms.
 *  - Streaming: one IORING_OP_RECV always in flight on the TCP socket into
 *    the session's receive buffer. It starts at 4 KiB and doubles when a
 *    receive fills it, up to 16 KiB: measured with 200 cameras at 1 Mbit/s
 *    and 50 at 4 Mbit/s, 16 KiB costs the loop as little CPU as letting it
 *    grow to the 32-128 KiB key-frame bursts reach (4 KiB costs ~50% more),
 *    at a fraction of the memory. Beyond 16 KiB it grows only as far as one
 *    message or interleaved packet needs (up to recv_buffer_max), and it
 *    halves again when a 10-second period never used a quarter of it.
 *    rtsp_next_chunk splits it into RTSP messages (rtsp_request.c) and
 *    interleaved RTP/RTCP packets (rtsp_media.c); with UDP, the media
 *    arrive on their own ports (rtsp_media.c). Keep-alive every half
 *    session timeout: GET_PARAMETER, or OPTIONS when the server did not
 *    list GET_PARAMETER. No media for timeout_ms is a failure.
 *  - Failure (connect, timeout, EOF, 4xx/5xx, unparsable bytes, a stream of
 *    bad packets): depack_flush, stg_camera_flush, last_error (URLs only as
 *    rtsp_url_format writes them: no credentials), then CLOSING: every
 *    operation still in flight is cancelled and the session waits for all
 *    their completions before it closes descriptors and frees buffers, so
 *    the ring never holds memory that was freed. Then BACKOFF: the retry
 *    comes after random(0, min(backoff_max, backoff_min * 2^attempt)) ms
 *    (full jitter); attempt goes back to 0 when the failed connection had
 *    streamed for 30 s. Reconnects are counted, every failure's time is
 *    remembered (repeat failures, ingest.h), and the camera's warnings go
 *    through its log limiter (log.h: a burst, then one a minute).
 *  - Remove/stop: the camera leaves the id map at once (it can be added
 *    again right away); a removed camera's frames end now, a stopping
 *    recorder's with the TEARDOWN reply (what waits in the socket is
 *    recorded); TEARDOWN when the server gave a
 *    session (its reply or 2 s, whichever first), then CLOSING as above,
 *    then the session is freed. A session is only freed at the end of an
 *    entry point (completion handler, timer, command) by settle(), never in
 *    the middle of one.
 *
 * Memory per camera: the session (~2.8 KiB, URL strings on the heap), the
 * receive buffer (4-16 KiB), the depacketizer and its frame buffer; during
 * BACKOFF only the session. The UDP buffers exist only for UDP cameras.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "rtsp_client.h"
#include "rtsp_session.h"

#define RX_MIN 4096u
#define RX_BURST_MAX (16u << 10)       /* growth for throughput stops here */
#define RX_FLOOR_MAX (72u << 10)       /* an interleaved packet always fits */
#define RX_SHRINK_MS 10000
#define TEARDOWN_WAIT_MS 2000u
#define STREAM_RESET_MS 30000          /* streaming this long resets attempt */

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static const char *const phase_names[] = {
	"idle", "resolving", "connecting", "options", "describe", "setup", "play",
	"streaming", "teardown", "closing", "backoff",
};

static void settle(struct rtsp_session *s);
static void wait_unlink(struct rtsp_session *s);
static void close_socket(struct rtsp_session *s);
static void on_recv(struct loop *l, uint32_t id, int res, uint32_t flags);

uint64_t rtsp_rng(struct rtsp_shard *sh)
{
	/* xorshift64* */
	uint64_t x = sh->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sh->rng = x;
	return x * 2685821657736338717ull;
}

/* ---- camera id map ------------------------------------------------------------ */

static uint32_t id_hash(uint32_t id, uint32_t cap)
{
	return (id * 2654435761u) & (cap - 1);
}

static int idmap_grow(struct rtsp_idmap *m)
{
	uint32_t ncap = m->cap ? m->cap * 2 : 64;
	uint32_t *keys = calloc(ncap, sizeof *keys);
	uint32_t *vals = calloc(ncap, sizeof *vals);
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		uint32_t j = id_hash(m->keys[i], ncap);
		while (keys[j])
			j = (j + 1) & (ncap - 1);
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = ncap;
	return 0;
}

static int idmap_find(const struct rtsp_idmap *m, uint32_t id)
{
	if (!m->cap)
		return -1;
	for (uint32_t j = id_hash(id, m->cap);; j = (j + 1) & (m->cap - 1)) {
		if (!m->keys[j])
			return -1;
		if (m->keys[j] == id)
			return (int)j;
	}
}

static int idmap_put(struct rtsp_idmap *m, uint32_t id, uint32_t val)
{
	if ((m->count + 1) * 2 > m->cap) {
		int err = idmap_grow(m);
		if (err)
			return err;
	}
	uint32_t j = id_hash(id, m->cap);
	while (m->keys[j])
		j = (j + 1) & (m->cap - 1);
	m->keys[j] = id;
	m->vals[j] = val;
	m->count++;
	return 0;
}

/* Backward-shift deletion keeps every probe chain unbroken. */
static void idmap_del(struct rtsp_idmap *m, uint32_t id)
{
	int at = idmap_find(m, id);
	if (at < 0)
		return;
	uint32_t hole = (uint32_t)at, mask = m->cap - 1;
	for (uint32_t j = (hole + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
		uint32_t home = id_hash(m->keys[j], m->cap);
		/* move j into the hole unless its home lies cyclically in (hole, j] */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			m->keys[hole] = m->keys[j];
			m->vals[hole] = m->vals[j];
			hole = j;
		}
	}
	m->keys[hole] = 0;
	m->count--;
}

/* ---- failure, close, backoff --------------------------------------------------- */

/* Every failure is remembered (repeat failures, ingest.h); its log line
 * goes through the camera's limiter (log.h), so that a flapping camera
 * logs a few lines and then one a minute, saying how many it held back. */
static void log_failure(struct rtsp_session *s)
{
	uint32_t n = ++s->fails_in_row;
	ingest_failures_note(&s->failures, nvr_now_us());
	nvr_log_limited(&s->log_limit, "warn", "ingest", "event=session_failed camera=%" PRIu32
	                " url=%s phase=%s failures_in_row=%" PRIu32 " error=\"%s\"", s->cam_id,
	                s->req_url, phase_names[s->phase], n, s->last_error);
}

int rtsp_fail(struct rtsp_session *s, const char *fmt, ...)
{
	if (s->phase == PH_TEARDOWN)
		rtsp_begin_close(s, true);       /* leaving anyway: not a failure */
	if (s->phase >= PH_TEARDOWN)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
	va_end(ap);
	log_failure(s);
	rtsp_begin_close(s, false);
	return -1;
}

static void cancel_ops(struct rtsp_session *s)
{
	for (unsigned k = K_CONNECT; k <= K_RTCP; k++) {
		if (!(s->ops & (1u << k)))
			continue;
		if (loop_cancel(rtsp_loop(s), k, s->slot)) {
			/* no SQE: make the operation end on its own (a socket in
			 * the file table has no descriptor to shut down: its
			 * operations end with the session's timeouts) */
			int fd = k == K_RTP ? s->up[0]->fd : k == K_RTCP ? s->up[1]->fd : s->fd;
			if (k == K_RTP || k == K_RTCP || !s->fd_fixed)
				shutdown(fd, SHUT_RDWR);
			else
				nvr_log("warn", "ingest", "event=cancel_deferred camera=%" PRIu32, s->cam_id);
		}
	}
}

/* The camera's frames end here: the last whole frame still counts, and
 * its unfinished chunk goes to disk. */
static void stop_media(struct rtsp_session *s)
{
	if (s->media_stopped)
		return;
	if (s->dp)
		depack_flush(s->dp);
	s->media_stopped = true;
	int err = stg_camera_flush(s->cam);
	if (err)
		nvr_log("error", "ingest", "event=flush_failed camera=%" PRIu32 " error=\"%s\"",
		        s->cam_id, stg_strerror(err));
}

void rtsp_begin_close(struct rtsp_session *s, bool remove)
{
	s->removing |= remove;
	if (s->phase == PH_CLOSING)
		return;
	loop_timer_cancel(rtsp_loop(s), &s->t_io);
	loop_timer_cancel(rtsp_loop(s), &s->t_keep);
	loop_timer_cancel(rtsp_loop(s), &s->t_rx);
	stop_media(s);
	rtsp_admit_release(s);
	s->phase = PH_CLOSING;
	cancel_ops(s);
}

/* Everything of one connection; the ring holds none of it any more. */
static void release_connection(struct rtsp_session *s)
{
	close_socket(s);
	for (int i = 0; i < 2; i++) {
		rtsp_udp_free(s->up[i]);
		s->up[i] = NULL;
	}
	free(s->rx);
	s->rx = NULL;
	s->rx_len = s->rx_cap = s->rx_peak = 0;
	while (s->out_head) {
		struct rtsp_outmsg *m = s->out_head;
		s->out_head = m->next;
		free(m);
	}
	s->out_tail = NULL;
	if (s->dp) {
		s->lost_before += s->dp->stats.frames_lost;
		depack_free(s->dp);
		free(s->dp);
		s->dp = NULL;
	}
	free(s->auth);
	s->auth = NULL;
	free(s->names);
	s->names = NULL;
	free(s->session_id);
	free(s->setup_url);
	free(s->play_url);
	s->session_id = s->setup_url = s->play_url = NULL;
	s->wait_cseq = -1;
	s->have_pkt = false;
	s->have_ssrc = false;
	s->bad_in_row = 0;
	s->media_stopped = false;
}

static void backoff(struct rtsp_session *s)
{
	struct rtsp_shard *sh = s->sh;
	if (s->streaming_since_ms && rtsp_now_ms(s) - s->streaming_since_ms >= STREAM_RESET_MS)
		s->attempt = 0;
	s->streaming_since_ms = 0;
	s->streaming_since_us = 0;
	uint64_t cap = sh->cfg.backoff_min_ms;
	for (uint32_t i = 0; i < s->attempt && cap < sh->cfg.backoff_max_ms; i++)
		cap *= 2;
	if (cap > sh->cfg.backoff_max_ms)
		cap = sh->cfg.backoff_max_ms;
	uint32_t delay = (uint32_t)(rtsp_rng(sh) % (cap + 1));
	if (s->attempt < 31)
		s->attempt++;
	s->phase = PH_BACKOFF;
	loop_timer_arm(rtsp_loop(s), &s->t_keep, delay);
	nvr_log_limited(&s->log_limit, "debug", "ingest", "event=session_backoff camera=%" PRIu32
	                " retry_ms=%" PRIu32 " attempt=%" PRIu32, s->cam_id, delay, s->attempt);
}

static void session_free(struct rtsp_session *s)
{
	struct rtsp_shard *sh = s->sh;
	loop_timer_cancel(sh->loop, &s->t_io);
	loop_timer_cancel(sh->loop, &s->t_keep);
	loop_timer_cancel(sh->loop, &s->t_rx);
	wait_unlink(s);
	rtsp_admit_release(s);
	release_connection(s);
	if (s->in_map)
		idmap_del(&sh->map, s->cam_id);
	sh->slots[s->slot] = NULL;
	sh->free_slots[sh->nfree++] = s->slot;
	sh->count--;
	if (s->in_final) {
		sh->final.frames += s->frames - s->final_frames;
		sh->final.bytes += s->bytes - s->final_bytes;
	}
	nvr_log("info", "ingest", "event=session_removed camera=%" PRIu32 " frames=%" PRIu64
	        " recv_buffer_max_used=%" PRIu32 " log_suppressed=%" PRIu64, s->cam_id, s->frames,
	        s->rx_cap_max > RX_MIN ? s->rx_cap_max : RX_MIN, s->log_limit.suppressed);
	free(s->req_url);
	free(s);
	if (sh->stopping && sh->count == 0)
		loop_quit(sh->loop);
}

/* End of every entry point: finishes a close whose operations are all
 * done, then retries later or frees. */
static void settle(struct rtsp_session *s)
{
	if (s->phase != PH_CLOSING || s->ops || s->resolving)
		return;
	release_connection(s);
	if (s->removing)
		session_free(s);
	else
		backoff(s);
}

/* ---- sending ------------------------------------------------------------------------ */

/* ---- requests ----------------------------------------------------------------------- */

/* ---- replies ------------------------------------------------------------------------ */

/* ---- media --------------------------------------------------------------------------- */

/* ---- TCP receive ------------------------------------------------------------------------ */

static int arm_recv(struct rtsp_session *s)
{
	struct io_uring_sqe *sqe = loop_sqe(rtsp_loop(s));
	if (!sqe)
		return rtsp_fail(s, "no submission queue entry");
	io_uring_prep_recv(sqe, s->fd, s->rx + s->rx_len, s->rx_cap - s->rx_len, 0);
	rtsp_sqe_socket(s, sqe);
	loop_commit(rtsp_loop(s), sqe, K_RECV, s->slot);
	s->ops |= 1u << K_RECV;
	return 0;
}

static int on_chunk(struct rtsp_session *s, const struct rtsp_chunk *c, int64_t arrival_us)
{
	if (c->kind == RTSP_CHUNK_MESSAGE) {
		if (!c->msg.is_response)
			return 0;               /* requests from the server are not served */
		return rtsp_on_response(s, &c->msg);
	}
	if (s->media_stopped)
		return 0;
	if (c->channel == s->ch_rtp)
		return rtsp_on_rtp(s, c->payload, c->payload_len, arrival_us);
	if (c->channel == s->ch_rtcp)
		return rtsp_on_rtcp(s, c->payload, c->payload_len);
	return 0;
}

/* Handles every whole chunk in the buffer; returns the bytes consumed or
 * -1 when the session failed. */
static int consume(struct rtsp_session *s, int64_t arrival_us)
{
	size_t off = 0;
	while (off < s->rx_len) {
		struct rtsp_chunk c;
		rtsp_next_chunk(s->rx + off, s->rx_len - off, &c);
		if (c.kind == RTSP_CHUNK_NEED_MORE)
			break;
		if (c.kind == RTSP_CHUNK_ERROR)
			return rtsp_fail(s, "unparsable data from the camera");
		if (on_chunk(s, &c, arrival_us) < 0 || s->phase >= PH_CLOSING)
			return -1;
		off += c.size;
	}
	return (int)off;
}

static int rx_resize(struct rtsp_session *s, uint32_t cap)
{
	uint8_t *p = realloc(s->rx, cap);
	if (!p)
		return -ENOMEM;
	s->rx = p;
	s->rx_cap = cap;
	if (cap > s->rx_cap_max)
		s->rx_cap_max = cap;
	return 0;
}

/* Doubles the buffer when a receive filled it, up to RX_BURST_MAX, and
 * beyond that only as far as one message or packet needs (up to
 * recv_buffer_max); halves it when a whole period never needed a quarter
 * of it. */
static int rx_adapt(struct rtsp_session *s, bool filled)
{
	uint32_t max = s->sh->cfg.recv_buffer_max;
	bool grow = (filled && s->rx_cap < RX_BURST_MAX) || s->rx_len == s->rx_cap;
	if (grow && s->rx_cap < max)
		return rx_resize(s, s->rx_cap * 2 < max ? s->rx_cap * 2 : max) ? rtsp_fail(s, "out of memory") : 0;
	if (s->rx_len == s->rx_cap)
		return rtsp_fail(s, "a message from the camera exceeds the %" PRIu32 "-byte receive buffer", max);
	if (rtsp_now_ms(s) - s->rx_period_ms >= RX_SHRINK_MS) {
		if (s->rx_peak < s->rx_cap / 4 && s->rx_cap > RX_MIN && s->rx_len <= s->rx_cap / 2)
			rx_resize(s, s->rx_cap / 2);    /* failure keeps the bigger buffer */
		s->rx_peak = 0;
		s->rx_period_ms = rtsp_now_ms(s);
	}
	return 0;
}

static void recv_done(struct rtsp_session *s, int res)
{
	if (res == 0) {
		rtsp_fail(s, "connection closed by the camera");
		return;
	}
	if (res < 0) {
		rtsp_fail(s, "receive: %s", strerror(-res));
		return;
	}
	bool filled = (uint32_t)res == s->rx_cap - s->rx_len;
	s->rx_len += (uint32_t)res;
	if (s->rx_len > s->rx_peak)
		s->rx_peak = s->rx_len;
	int used = consume(s, nvr_now_us());
	if (used < 0)
		return;
	s->rx_len -= (uint32_t)used;
	if (used && s->rx_len)
		memmove(s->rx, s->rx + used, s->rx_len);
	if (rx_adapt(s, filled))
		return;
	/* Batching: a streaming camera's packets trickle in; reading them as
	 * they come costs one completion (and a kernel receive) per packet or
	 * two. When this receive emptied the socket, wait recv_batch_ms and let
	 * the kernel gather them; the frames wait no longer than that, far
	 * below the storage flush interval. */
	int32_t batch = s->sh->cfg.recv_batch_ms;
	if (s->phase == PH_STREAMING && !filled && batch > 0)
		loop_timer_arm(rtsp_loop(s), &s->t_rx, (uint32_t)batch);
	else
		arm_recv(s);
}

/* ---- UDP ------------------------------------------------------------------------------ */

/* ---- connect ---------------------------------------------------------------------------- */

static int connect_fail(struct rtsp_session *s, int err)
{
	char host[320];
	snprintf(host, sizeof host, "%s:%d", s->url.host, s->url.port);
	return rtsp_fail(s, "connect to %s: %s", host, strerror(-err));
}

/* The session's TCP socket, in the loop's file table when it has room
 * (see loop.h: it then holds no process descriptor), else a descriptor. */
static int open_socket(struct rtsp_session *s)
{
	int fd = socket(s->peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
		nvr_log("debug", "ingest", "event=nodelay_failed camera=%" PRIu32 " error=\"%s\"",
		        s->cam_id, strerror(errno));
	s->fd = fd;
	s->fd_fixed = false;
	if (loop_has_file_table(rtsp_loop(s))) {
		int slot = loop_file_install(rtsp_loop(s), fd);
		if (slot >= 0) {
			close(fd);
			s->fd = slot;
			s->fd_fixed = true;
		}
	}
	return 0;
}

static void close_socket(struct rtsp_session *s)
{
	if (s->fd >= 0 && s->fd_fixed)
		loop_file_release(rtsp_loop(s), s->fd);
	else if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->fd_fixed = false;
}

static void do_connect(struct rtsp_session *s)
{
	s->phase = PH_CONNECTING;
	int err = open_socket(s);
	if (err) {
		connect_fail(s, err);
		return;
	}
	struct io_uring_sqe *sqe = loop_sqe(rtsp_loop(s));
	if (!sqe) {
		rtsp_fail(s, "no submission queue entry");
		return;
	}
	io_uring_prep_connect(sqe, s->fd, (struct sockaddr *)&s->peer, s->peerlen);
	rtsp_sqe_socket(s, sqe);
	loop_commit(rtsp_loop(s), sqe, K_CONNECT, s->slot);
	s->ops |= 1u << K_CONNECT;
	loop_timer_arm(rtsp_loop(s), &s->t_io, s->sh->cfg.timeout_ms);
}

static bool numeric_host(struct rtsp_session *s)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&s->peer;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s->peer;
	memset(&s->peer, 0, sizeof s->peer);
	if (inet_pton(AF_INET, s->url.host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)s->url.port);
		s->peerlen = sizeof *a4;
		return true;
	}
	if (inet_pton(AF_INET6, s->url.host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)s->url.port);
		s->peerlen = sizeof *a6;
		return true;
	}
	return false;
}

/* Takes the next address of a resolved name; false when none is left. */
static bool next_address(struct rtsp_session *s)
{
	const struct resolver_req *r = s->names ? &s->names->req : NULL;
	if (!r || s->name_next >= r->count)
		return false;
	memcpy(&s->peer, &r->addr[s->name_next], r->addrlen[s->name_next]);
	s->peerlen = r->addrlen[s->name_next];
	s->name_next++;
	return true;
}

static void on_resolved(struct loop *l, struct loop_cmd *c)
{
	(void)l;
	struct rtsp_resolve_job *job = container_of(c, struct rtsp_resolve_job, req.cmd);
	struct rtsp_session *s = job->s;
	s->resolving = false;
	if (s->phase != PH_RESOLVING) {
		free(job);
	} else if (job->req.err) {
		rtsp_fail(s, "resolve %s: %s", s->url.host,
		     job->req.err == -ENOENT ? "no such host" : strerror(-job->req.err));
		free(job);
	} else {
		s->names = job;         /* freed with the connection */
		s->name_next = 0;
		next_address(s);
		do_connect(s);
	}
	settle(s);
}

static void start_connect(struct rtsp_session *s)
{
	s->cseq = 0;
	s->wait_cseq = -1;
	s->auth_tries = 0;
	s->get_parameter = false;
	s->skew_logged = s->sr_logged = false;
	s->rx_cap = RX_MIN;
	s->rx_len = s->rx_peak = 0;
	s->rx_period_ms = rtsp_now_ms(s);
	s->rx = malloc(RX_MIN);
	if (!s->rx) {
		s->phase = PH_CONNECTING;
		rtsp_fail(s, "out of memory");
		return;
	}
	if (numeric_host(s)) {
		do_connect(s);
		return;
	}
	struct rtsp_resolve_job *job = calloc(1, sizeof *job);
	if (!job) {
		s->phase = PH_CONNECTING;
		rtsp_fail(s, "out of memory");
		return;
	}
	job->s = s;
	job->req.cmd.fn = on_resolved;
	job->req.loop = rtsp_loop(s);
	snprintf(job->req.host, sizeof job->req.host, "%s", s->url.host);
	job->req.port = s->url.port;
	s->phase = PH_RESOLVING;
	s->resolving = true;
	resolver_submit(s->sh->resolver, &job->req);
}

/* ---- admission ----------------------------------------------------------------------- */

/* At most cfg.max_connecting sessions of a shard connect or negotiate at
 * once. Without this, 15,000 cameras added at once (a restart) or coming
 * back together (a network cut, whatever the backoff jitter) open their
 * connections in the same few milliseconds: listen queues overflow, SYNs
 * are retransmitted a second or more later, replies miss timeout_ms, and
 * the failures feed the next wave. A session takes a turn when it starts
 * (admit_request) and gives it back when it streams or closes
 * (rtsp_admit_release); the others wait in arrival order in phase IDLE and
 * are started by t_admit, one tick later, from a fresh entry point. */

static void wait_unlink(struct rtsp_session *s)
{
	struct rtsp_shard *sh = s->sh;
	if (!s->wait_prev && sh->wait_head != s)
		return;                         /* not waiting */
	if (s->wait_prev)
		s->wait_prev->wait_next = s->wait_next;
	else
		sh->wait_head = s->wait_next;
	if (s->wait_next)
		s->wait_next->wait_prev = s->wait_prev;
	else
		sh->wait_tail = s->wait_prev;
	s->wait_prev = s->wait_next = NULL;
}

static void admit_start(struct rtsp_session *s)
{
	s->admitted = true;
	s->sh->connecting++;
	start_connect(s);
}

/* Starts the session now if a turn is free, else queues it. */
static void admit_request(struct rtsp_session *s)
{
	struct rtsp_shard *sh = s->sh;
	if (sh->connecting < sh->cfg.max_connecting && !sh->wait_head) {
		admit_start(s);
		return;
	}
	s->phase = PH_IDLE;
	s->wait_prev = sh->wait_tail;
	s->wait_next = NULL;
	if (sh->wait_tail)
		sh->wait_tail->wait_next = s;
	else
		sh->wait_head = s;
	sh->wait_tail = s;
}

void rtsp_admit_release(struct rtsp_session *s)
{
	struct rtsp_shard *sh = s->sh;
	if (!s->admitted)
		return;
	s->admitted = false;
	sh->connecting--;
	if (sh->wait_head && !sh->stopping && !loop_timer_armed(&sh->t_admit))
		loop_timer_arm(sh->loop, &sh->t_admit, 0);
}

static void admit_timer(struct loop_timer *t)
{
	struct rtsp_shard *sh = container_of(t, struct rtsp_shard, t_admit);
	while (!sh->stopping && sh->wait_head && sh->connecting < sh->cfg.max_connecting) {
		struct rtsp_session *s = sh->wait_head;
		wait_unlink(s);
		admit_start(s);
		settle(s);
	}
}

/* ---- completions ---------------------------------------------------------------------- */

static struct rtsp_session *op_done(struct loop *l, uint32_t id, unsigned kind)
{
	struct rtsp_shard *sh = loop_owner(l);
	struct rtsp_session *s = id < sh->nslots ? sh->slots[id] : NULL;
	if (!s || !(s->ops & (1u << kind))) {
		nvr_log("error", "ingest", "event=stray_completion kind=%u slot=%" PRIu32, kind, id);
		return NULL;
	}
	s->ops &= ~(1u << kind);
	return s;
}

static void on_connect(struct loop *l, uint32_t id, int res, uint32_t flags)
{
	(void)flags;
	struct rtsp_session *s = op_done(l, id, K_CONNECT);
	if (!s)
		return;
	if (s->phase == PH_CONNECTING) {
		loop_timer_cancel(l, &s->t_io);
		if (res < 0 && res != -ECANCELED && next_address(s)) {
			close_socket(s);        /* a name's next address */
			do_connect(s);
		} else if (res < 0) {
			connect_fail(s, res);
		} else if (arm_recv(s) == 0) {
			s->phase = PH_OPTIONS;
			rtsp_send_request(s, REQ_OPTIONS);
		}
	}
	settle(s);
}

static void on_recv(struct loop *l, uint32_t id, int res, uint32_t flags)
{
	(void)flags;
	struct rtsp_session *s = op_done(l, id, K_RECV);
	if (!s)
		return;
	if (s->phase < PH_CLOSING)
		recv_done(s, res);
	settle(s);
}

static void on_send(struct loop *l, uint32_t id, int res, uint32_t flags)
{
	(void)flags;
	struct rtsp_session *s = op_done(l, id, K_SEND);
	if (!s)
		return;
	if (s->phase < PH_CLOSING) {
		if (res < 0) {
			rtsp_fail(s, "send: %s", strerror(-res));
		} else {
			struct rtsp_outmsg *m = s->out_head;
			m->off += (size_t)res;
			if (m->off >= m->len) {
				s->out_head = m->next;
				if (!s->out_head)
					s->out_tail = NULL;
				free(m);
			}
			if (s->out_head)
				rtsp_send_next(s);
		}
	}
	settle(s);
}

static void on_udp(struct loop *l, uint32_t id, int res, int i)
{
	struct rtsp_session *s = op_done(l, id, i ? K_RTCP : K_RTP);
	if (!s)
		return;
	if (s->phase < PH_CLOSING)
		rtsp_udp_done(s, i, res);
	settle(s);
}

static void on_udp_rtp(struct loop *l, uint32_t id, int res, uint32_t flags)
{
	(void)flags;
	on_udp(l, id, res, 0);
}

static void on_udp_rtcp(struct loop *l, uint32_t id, int res, uint32_t flags)
{
	(void)flags;
	on_udp(l, id, res, 1);
}

/* ---- timers ------------------------------------------------------------------------------ */

static void io_timer(struct loop_timer *t)
{
	struct rtsp_session *s = container_of(t, struct rtsp_session, t_io);
	uint32_t timeout = s->sh->cfg.timeout_ms;
	switch (s->phase) {
	case PH_CONNECTING:
		rtsp_fail(s, "connect to %s:%d: no answer within %" PRIu32 " ms", s->url.host, s->url.port,
		     timeout);
		break;
	case PH_OPTIONS:
	case PH_DESCRIBE:
	case PH_SETUP:
	case PH_PLAY:
		rtsp_fail(s, "%s: no reply within %" PRIu32 " ms", rtsp_req_method(s, s->wait_req), timeout);
		break;
	case PH_STREAMING: {
		int64_t idle = rtsp_now_ms(s) - s->last_media_ms;
		if (idle >= timeout)
			rtsp_fail(s, "no media for %" PRId64 " ms", idle);
		else
			loop_timer_arm(rtsp_loop(s), t, (uint32_t)(timeout - idle));
		break;
	}
	case PH_TEARDOWN:
		rtsp_begin_close(s, true);
		break;
	default:
		break;
	}
	settle(s);
}

static void rx_timer(struct loop_timer *t)
{
	struct rtsp_session *s = container_of(t, struct rtsp_session, t_rx);
	if (s->phase != PH_CLOSING && s->fd >= 0 && !(s->ops & (1u << K_RECV)))
		arm_recv(s);
	settle(s);
}

static void keep_timer(struct loop_timer *t)
{
	struct rtsp_session *s = container_of(t, struct rtsp_session, t_keep);
	if (s->phase == PH_STREAMING) {
		if (rtsp_send_request(s, REQ_KEEPALIVE) == 0)
			loop_timer_arm(rtsp_loop(s), t, rtsp_keepalive_ms(s));
	} else if (s->phase == PH_BACKOFF) {
		s->reconnects++;
		admit_request(s);
	}
	settle(s);
}

/* ---- commands ------------------------------------------------------------------------------ */

/* Remove or stop: the camera leaves the id map at once (it may be added
 * again while this session still says goodbye) and the session goes after
 * TEARDOWN (when the server gave a session) and the completion of
 * everything in flight. A removed camera's frames end now (a new session
 * of the same camera may start while this one says goodbye); when the
 * recorder stops (drain), a streaming camera's frames end with the
 * TEARDOWN reply: what the camera sent before it, still in the socket
 * (up to recv_batch_ms of it), is read and recorded. */
static void teardown(struct rtsp_session *s, bool drain)
{
	struct rtsp_shard *sh = s->sh;
	if (s->in_map) {
		idmap_del(&sh->map, s->cam_id);
		s->in_map = false;
	}
	s->removing = true;
	drain = drain && (s->phase == PH_PLAY || s->phase == PH_STREAMING) && s->session_id;
	if (s->phase < PH_CLOSING && !drain)
		stop_media(s);
	switch (s->phase) {
	case PH_IDLE:
	case PH_BACKOFF:
		wait_unlink(s);
		loop_timer_cancel(rtsp_loop(s), &s->t_keep);
		s->phase = PH_CLOSING;
		break;
	case PH_RESOLVING:
	case PH_CONNECTING:
	case PH_OPTIONS:
	case PH_DESCRIBE:
	case PH_SETUP:
		rtsp_begin_close(s, true);
		break;
	case PH_PLAY:
	case PH_STREAMING:
		if (!s->session_id) {
			rtsp_begin_close(s, true);
			break;
		}
		loop_timer_cancel(rtsp_loop(s), &s->t_keep);
		s->phase = PH_TEARDOWN;
		loop_timer_cancel(rtsp_loop(s), &s->t_rx);
		if (s->fd >= 0 && !(s->ops & (1u << K_RECV)))
			arm_recv(s);          /* read what waits now, not after the batch */
		if (rtsp_send_request(s, REQ_TEARDOWN) == 0) {
			uint32_t wait = s->sh->cfg.timeout_ms < TEARDOWN_WAIT_MS ? s->sh->cfg.timeout_ms
			                                                          : TEARDOWN_WAIT_MS;
			loop_timer_arm(rtsp_loop(s), &s->t_io, wait);
		} else {
			rtsp_begin_close(s, true);
		}
		break;
	default:
		break;
	}
}

/* A record this shard can take; *udp: its transport (the configured
 * default when it names none). */
static int check_record(const struct rtsp_shard *sh, const struct camera_record *c, bool *udp)
{
	if (!c->id || strncasecmp(c->main_url, "rtsp://", 7))
		return -EINVAL;
	if (!c->transport[0])
		*udp = sh->cfg.default_udp;
	else if (!strcasecmp(c->transport, "tcp"))
		*udp = false;
	else if (!strcasecmp(c->transport, "udp"))
		*udp = true;
	else
		return -EINVAL;
	return 0;
}

static int session_new(struct rtsp_shard *sh, const struct camera_record *c, bool udp,
                       struct rtsp_session **out)
{
	struct rtsp_session *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->sh = sh;
	s->cam_id = c->id;
	s->udp = udp;
	s->fd = -1;
	s->wait_cseq = -1;
	loop_timer_init(&s->t_io, io_timer);
	loop_timer_init(&s->t_keep, keep_timer);
	loop_timer_init(&s->t_rx, rx_timer);
	char url[1400];
	int err = rtsp_url_parse(c->main_url, &s->url);
	if (!err)
		err = rtsp_url_format(&s->url, url, sizeof url) ? -EINVAL : 0;
	if (!err && !(s->req_url = strdup(url)))
		err = -ENOMEM;
	if (!err)
		err = stg_camera_get(sh->cfg.stg, c->id, &s->cam);
	if (err) {
		free(s->req_url);
		free(s);
		return err;
	}
	if (c->username[0]) {
		snprintf(s->rec_user, sizeof s->rec_user, "%s", c->username);
		snprintf(s->rec_pass, sizeof s->rec_pass, "%s", c->password);
		s->user = s->rec_user;
		s->pass = s->rec_pass;
	} else {
		s->user = s->url.user;
		s->pass = s->url.pass;
	}
	fclock_init(&s->clk, 90000, sh->cfg.max_clock_skew_ms, 0);
	*out = s;
	return 0;
}

static int slot_take(struct rtsp_shard *sh, uint32_t *out)
{
	if (sh->nfree) {
		*out = sh->free_slots[--sh->nfree];
		return 0;
	}
	uint32_t n = sh->nslots ? sh->nslots * 2 : 64;
	struct rtsp_session **slots = realloc(sh->slots, n * sizeof *slots);
	if (!slots)
		return -ENOMEM;
	sh->slots = slots;
	uint32_t *fr = realloc(sh->free_slots, n * sizeof *fr);
	if (!fr)
		return -ENOMEM;
	sh->free_slots = fr;
	for (uint32_t i = n; i > sh->nslots + 1; i--) {
		slots[i - 1] = NULL;
		fr[sh->nfree++] = i - 1;
	}
	*out = sh->nslots;
	slots[sh->nslots] = NULL;
	sh->nslots = n;
	return 0;
}

static int cmd_add(struct loop *l, void *arg)
{
	struct rtsp_shard *sh = loop_owner(l);
	const struct camera_record *c = arg;
	bool udp;
	if (sh->stopping)
		return -ESHUTDOWN;
	if (check_record(sh, c, &udp))
		return -EINVAL;
	if (idmap_find(&sh->map, c->id) >= 0)
		return -EEXIST;
	struct rtsp_session *s;
	int err = session_new(sh, c, udp, &s);
	if (err)
		return err;
	err = slot_take(sh, &s->slot);
	if (!err) {
		err = idmap_put(&sh->map, c->id, s->slot);
		if (err)
			sh->free_slots[sh->nfree++] = s->slot;
	}
	if (err) {
		free(s->req_url);
		free(s);
		return err;
	}
	sh->slots[s->slot] = s;
	s->in_map = true;
	sh->count++;
	nvr_log("debug", "ingest", "event=camera_added camera=%" PRIu32 " url=%s transport=%s loop=%" PRIu32,
	        c->id, s->req_url, udp ? "udp" : "tcp", sh->index);
	admit_request(s);
	settle(s);
	return 0;
}

static struct rtsp_session *find(struct rtsp_shard *sh, uint32_t id)
{
	int at = idmap_find(&sh->map, id);
	return at < 0 ? NULL : sh->slots[sh->map.vals[at]];
}

struct id_arg {
	uint32_t id;
	struct ingest_camera_status *st;
};

static int cmd_remove(struct loop *l, void *arg)
{
	struct rtsp_shard *sh = loop_owner(l);
	struct id_arg *a = arg;
	struct rtsp_session *s = find(sh, a->id);
	if (!s || s->removing)
		return -ENOENT;
	teardown(s, false);
	settle(s);
	return 0;
}

static enum ingest_state state_of(const struct rtsp_session *s)
{
	switch (s->phase) {
	case PH_IDLE: return INGEST_IDLE;
	case PH_RESOLVING:
	case PH_CONNECTING: return INGEST_CONNECTING;
	case PH_OPTIONS:
	case PH_DESCRIBE:
	case PH_SETUP:
	case PH_PLAY: return INGEST_NEGOTIATING;
	case PH_STREAMING:
	case PH_TEARDOWN: return INGEST_STREAMING;
	default: return INGEST_BACKOFF;
	}
}

static void fill_status(struct rtsp_shard *sh, const struct rtsp_session *s,
                        struct ingest_camera_status *st)
{
	memset(st, 0, sizeof *st);
	st->id = s->cam_id;
	st->state = state_of(s);
	snprintf(st->last_error, sizeof st->last_error, "%s", s->last_error);
	rtsp_rate_get(s, loop_now_ms(sh->loop), &st->fps, &st->bitrate_kbps);
	st->frames = s->frames;
	st->bytes = s->bytes;
	st->frames_lost = s->lost_before + (s->dp ? s->dp->stats.frames_lost : 0);
	st->frames_dropped = s->refused;
	struct stg_camera_stats cs;
	if (stg_camera_stats(sh->cfg.stg, s->cam_id, &cs) == 0)
		st->frames_dropped += cs.dropped_frames;
	st->reconnects = s->reconnects;
	st->streaming_since_us = s->phase == PH_STREAMING ? s->streaming_since_us : 0;
	st->rtcp_clock = s->rtcp_clock;
	st->failures_24h = ingest_failures_within(&s->failures, nvr_now_us(),
	                                          INGEST_REPEAT_WINDOW_US, &st->last_failure_us);
}

static int cmd_status(struct loop *l, void *arg)
{
	struct rtsp_shard *sh = loop_owner(l);
	struct id_arg *a = arg;
	struct rtsp_session *s = find(sh, a->id);
	if (!s || s->removing)
		return -ENOENT;
	fill_status(sh, s, a->st);
	return 0;
}

static int cmd_totals(struct loop *l, void *arg)
{
	struct rtsp_shard *sh = loop_owner(l);
	struct ingest_totals *t = arg;
	for (uint32_t i = 0; i < sh->nslots; i++) {
		struct rtsp_session *s = sh->slots[i];
		if (!s || s->removing)
			continue;
		struct ingest_camera_status st;
		fill_status(sh, s, &st);
		t->cameras++;
		t->streaming += st.state == INGEST_STREAMING;
		t->backoff += st.state == INGEST_BACKOFF;
		t->repeat_failures += ingest_is_repeat_failure(&st);
		t->frames += st.frames;
		t->bytes += st.bytes;
		t->frames_lost += st.frames_lost;
		t->frames_dropped += st.frames_dropped;
		t->reconnects += st.reconnects;
	}
	return 0;
}

static void on_stop(struct loop *l)
{
	struct rtsp_shard *sh = loop_owner(l);
	sh->stopping = true;
	cmd_totals(l, &sh->final);
	for (uint32_t i = 0; i < sh->nslots; i++) {
		struct rtsp_session *s = sh->slots[i];
		if (s && !s->removing) {
			s->in_final = true;
			s->final_frames = s->frames;
			s->final_bytes = s->bytes;
		}
	}
	if (sh->count == 0) {
		loop_quit(l);
		return;
	}
	for (uint32_t i = 0; i < sh->nslots; i++) {
		struct rtsp_session *s = sh->slots[i];
		if (!s)
			continue;
		teardown(s, true);
		settle(s);                    /* may free s and quit the loop */
	}
}

/* ---- shard ------------------------------------------------------------------------------- */

static const struct loop_ops shard_ops = {
	.name = "nvr-rtsp",
	.cqe = {
		[K_CONNECT] = on_connect,
		[K_RECV] = on_recv,
		[K_SEND] = on_send,
		[K_RTP] = on_udp_rtp,
		[K_RTCP] = on_udp_rtcp,
	},
	.on_stop = on_stop,
};

int rtsp_shard_start(const struct ingest_config *cfg, uint32_t index, uint32_t shards,
                     struct resolver *res, struct rtsp_shard **out)
{
	struct rtsp_shard *sh = calloc(1, sizeof *sh);
	if (!sh)
		return -ENOMEM;
	sh->cfg = *cfg;
	if (!sh->cfg.max_connecting)
		sh->cfg.max_connecting = 1;
	loop_timer_init(&sh->t_admit, admit_timer);
	if (sh->cfg.recv_buffer_max < RX_FLOOR_MAX)
		sh->cfg.recv_buffer_max = RX_FLOOR_MAX;
	sh->index = index;
	sh->resolver = res;
	if (getrandom(&sh->rng, sizeof sh->rng, 0) != sizeof sh->rng)
		sh->rng = (uint64_t)nvr_now_us();
	sh->rng |= 1;
	/* shards start their UDP port search in different parts of the range */
	uint32_t span = (uint32_t)(cfg->udp_port_max - cfg->udp_port_min + 1u);
	sh->udp_next = (uint16_t)((cfg->udp_port_min + span / (shards ? shards : 1) * index) & ~1u);
	int err = loop_start(&shard_ops, sh, 0, &sh->loop);
	if (err) {
		free(sh);
		return err;
	}
	*out = sh;
	return 0;
}

int rtsp_shard_add(struct rtsp_shard *sh, const struct camera_record *c)
{
	return loop_call(sh->loop, cmd_add, (void *)c);
}

struct add_many_arg {
	const struct camera_record *const *cams;
	size_t n;
	int *results;
};

static int cmd_add_many(struct loop *l, void *arg)
{
	struct add_many_arg *a = arg;
	for (size_t i = 0; i < a->n; i++)
		a->results[i] = cmd_add(l, (void *)a->cams[i]);
	return 0;
}

void rtsp_shard_add_many(struct rtsp_shard *sh, const struct camera_record *const *cams, size_t n,
                         int *results)
{
	struct add_many_arg a = { cams, n, results };
	loop_call(sh->loop, cmd_add_many, &a);
}

int rtsp_shard_remove(struct rtsp_shard *sh, uint32_t id)
{
	struct id_arg a = { .id = id };
	return loop_call(sh->loop, cmd_remove, &a);
}

int rtsp_shard_status(struct rtsp_shard *sh, uint32_t id, struct ingest_camera_status *out)
{
	struct id_arg a = { .id = id, .st = out };
	return loop_call(sh->loop, cmd_status, &a);
}

/* Cameras per call into the loop: a call holds the loop for its cameras'
 * lookups (about a microsecond each), so that it never pauses for long. */
#define RTSP_STATUS_BATCH 512

struct status_many_arg {
	const uint32_t *ids;
	size_t n;
	struct ingest_camera_status *out;
	bool *found;
};

static int cmd_status_many(struct loop *l, void *arg)
{
	struct rtsp_shard *sh = loop_owner(l);
	struct status_many_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		struct rtsp_session *s = a->found[i] ? NULL : find(sh, a->ids[i]);
		if (s && !s->removing) {
			fill_status(sh, s, &a->out[i]);
			a->found[i] = true;
		}
	}
	return 0;
}

void rtsp_shard_status_many(struct rtsp_shard *sh, const uint32_t *ids, size_t n,
                            struct ingest_camera_status *out, bool *found)
{
	for (size_t at = 0; at < n; at += RTSP_STATUS_BATCH) {
		struct status_many_arg a = { ids + at, n - at < RTSP_STATUS_BATCH ? n - at
		                                                                  : RTSP_STATUS_BATCH,
		                             out + at, found + at };
		loop_call(sh->loop, cmd_status_many, &a);
	}
}

void rtsp_shard_totals(struct rtsp_shard *sh, struct ingest_totals *out)
{
	loop_call(sh->loop, cmd_totals, out);
}

void rtsp_shard_stop(struct rtsp_shard *sh, struct ingest_totals *final)
{
	if (!sh)
		return;
	loop_stop(sh->loop);
	if (final) {
		final->cameras += sh->final.cameras;
		final->streaming += sh->final.streaming;
		final->backoff += sh->final.backoff;
		final->repeat_failures += sh->final.repeat_failures;
		final->frames += sh->final.frames;
		final->bytes += sh->final.bytes;
		final->frames_lost += sh->final.frames_lost;
		final->frames_dropped += sh->final.frames_dropped;
		final->reconnects += sh->final.reconnects;
	}
	free(sh->slots);
	free(sh->free_slots);
	free(sh->map.keys);
	free(sh->map.vals);
	free(sh);
}
