/*
 * rtsp_client.c - the RTSP sessions of one event loop (see rtsp_client.h).
 *
 * DESIGN
 * One session per camera, driven entirely by completions and timers of the
 * shard's loop (loop.h); nothing here blocks.
 *
 *   IDLE -> [RESOLVING] -> CONNECTING -> OPTIONS -> DESCRIBE -> SETUP -> PLAY
 *        -> STREAMING -> (failure) CLOSING -> BACKOFF -> RESOLVING/CONNECTING ...
 *        -> (remove/stop) TEARDOWN -> CLOSING -> freed
 *
 *  - Names: numeric hosts are parsed here; names go to the resolver thread
 *    (getaddrinfo may block) and come back as a loop command.
 *  - Connect: a nonblocking socket and IORING_OP_CONNECT, bounded by the
 *    session's I/O timer (timeout_ms).
 *  - Requests one at a time: OPTIONS (its Public header says whether the
 *    server knows GET_PARAMETER), DESCRIBE (the SDP's first H.264/H.265
 *    video track), SETUP of that track (TCP interleaved by default; UDP
 *    with an even/odd RTP/RTCP port pair bound from the configured range
 *    when the camera's transport is "udp"), PLAY. A 401 is answered once
 *    (again only if the server says the nonce was stale) with an
 *    Authorization header, Digest preferred over Basic; every later request
 *    carries it. Each request waits at most timeout_ms for its reply.
 *  - Streaming: one IORING_OP_RECV always in flight on the TCP socket into
 *    the session's receive buffer. It starts at 4 KiB and doubles when a
 *    receive fills it, up to 16 KiB: measured with 200 cameras at 1 Mbit/s
 *    and 50 at 4 Mbit/s, 16 KiB costs the loop as little CPU as letting it
 *    grow to the 32-128 KiB key-frame bursts reach (4 KiB costs ~50% more),
 *    at a fraction of the memory. Beyond 16 KiB it grows only as far as one
 *    message or interleaved packet needs (up to recv_buffer_max), and it
 *    halves again when a 10-second period never used a quarter of it. rtsp_next_chunk splits it
 *    into RTSP messages and interleaved packets: RTP -> rtp_parse ->
 *    depack_push -> frames; RTCP -> sender reports -> frame clock. With UDP,
 *    one IORING_OP_RECVMSG per socket (packets from other hosts than the
 *    camera are dropped); nothing is ever sent on the UDP ports.
 *    Keep-alive every half session timeout: GET_PARAMETER, or OPTIONS when
 *    the server did not list GET_PARAMETER. No media for timeout_ms is a
 *    failure.
 *  - Frames go to stg_put_frame() from this thread (the storage engine's
 *    one-thread-per-camera rule) with codec and key flag; their times come
 *    from frame_clock.h (RTCP sender reports checked against arrival, else
 *    arrival-anchored RTP time; strictly increasing per camera).
 *  - Failure (connect, timeout, EOF, 4xx/5xx, unparsable bytes, a stream of
 *    bad packets): depack_flush, stg_camera_flush, last_error (URLs only as
 *    rtsp_url_format writes them: no credentials), then CLOSING: every
 *    operation still in flight is cancelled and the session waits for all
 *    their completions before it closes descriptors and frees buffers, so
 *    the ring never holds memory that was freed. Then BACKOFF: the retry
 *    comes after random(0, min(backoff_max, backoff_min * 2^attempt)) ms
 *    (full jitter); attempt goes back to 0 when the failed connection had
 *    streamed for 30 s. Reconnects are counted.
 *  - Remove/stop: TEARDOWN when the server gave a session (its reply or
 *    2 s, whichever first), then CLOSING as above, then the session is
 *    freed. A session is only freed at the end of an entry point
 *    (completion handler, timer, command) by settle(), never in the middle
 *    of one.
 *
 * Memory per camera: the session (~2.5 KiB, URL strings on the heap), the
 * receive buffer (4 KiB while the camera streams at an ordinary rate), the
 * depacketizer and its frame buffer; during BACKOFF only the session. The
 * UDP buffers exist only for UDP cameras.
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

#include "depack.h"
#include "frame_clock.h"
#include "log.h"
#include "loop.h"
#include "rtp.h"
#include "rtsp_auth.h"
#include "rtsp_client.h"
#include "rtsp_msg.h"
#include "sdp.h"

#define RX_MIN 4096u
#define RX_BURST_MAX (16u << 10)       /* growth for throughput stops here */
#define RX_FLOOR_MAX (72u << 10)       /* an interleaved packet always fits */
#define RX_SHRINK_MS 10000
#define UDP_RTP_MIN 2048u
#define UDP_RTP_MAX 65536u
#define UDP_RTCP_BUF 1500u
#define TEARDOWN_WAIT_MS 2000u
#define STREAM_RESET_MS 30000          /* streaming this long resets attempt */
#define BAD_PACKETS_MAX 64             /* in a row, without a frame: bad stream */
#define RATE_SECONDS 5
#define RATE_BUCKETS 8
#define USER_AGENT "nvrd"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

enum kind {
	K_CONNECT = LOOP_KIND_USER,
	K_RECV,
	K_SEND,
	K_RTP,
	K_RTCP,
};

enum phase {
	PH_IDLE,
	PH_RESOLVING,
	PH_CONNECTING,
	PH_OPTIONS,
	PH_DESCRIBE,
	PH_SETUP,
	PH_PLAY,
	PH_STREAMING,
	PH_TEARDOWN,
	PH_CLOSING,
	PH_BACKOFF,
};

static const char *const phase_names[] = {
	"idle", "resolving", "connecting", "options", "describe", "setup", "play",
	"streaming", "teardown", "closing", "backoff",
};

enum req { REQ_OPTIONS, REQ_DESCRIBE, REQ_SETUP, REQ_PLAY, REQ_KEEPALIVE, REQ_TEARDOWN };

struct outmsg {
	struct outmsg *next;
	size_t len, off;
	char data[];
};

/* One UDP socket (RTP or RTCP) and its receive state. */
struct udp_port {
	int fd;
	uint16_t port;
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_storage from;
	uint8_t *buf;
	size_t cap;
};

/* A name being resolved; after success, the session's address list. */
struct resolve_job {
	struct resolver_req req;
	struct session *s;
};

struct rate_bucket {
	int64_t sec;
	uint32_t frames;
	uint64_t bytes;
};

struct session {
	struct rtsp_shard *sh;
	uint32_t slot;
	uint32_t cam_id;
	enum phase phase;
	bool udp;
	bool removing;                 /* freed once closed */
	bool in_map;                   /* the shard's id map points here */
	bool media_stopped;            /* no more frames to storage (removed) */
	bool resolving;                /* a resolver request is out */
	struct stg_camera *cam;

	/* camera */
	struct rtsp_url url;           /* host, port, path; URL credentials */
	const char *user, *pass;       /* point into url or the copies below */
	char rec_user[128], rec_pass[128];
	char *req_url;                 /* rtsp://host:port/path, no credentials */

	/* connection */
	int fd;
	unsigned ops;                  /* 1 << kind for each op in flight */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct resolve_job *names;     /* a name's addresses, tried in order */
	int name_next;
	uint8_t *rx;
	uint32_t rx_len, rx_cap, rx_peak;
	uint32_t rx_cap_max;           /* largest the buffer has been (logged) */
	int64_t rx_period_ms;
	struct outmsg *out_head, *out_tail;
	struct udp_port *up[2];        /* UDP: RTP, RTCP */

	/* RTSP */
	int cseq;
	int wait_cseq;                 /* reply awaited, -1 none */
	enum req wait_req;
	struct rtsp_auth_challenge *auth;
	uint32_t nc;
	char cnonce[17];
	int auth_tries;
	bool get_parameter;
	char *session_id;
	int session_timeout_s;
	char *setup_url, *play_url;

	/* media */
	enum stg_codec codec;
	int pt;
	uint32_t clock_rate;
	int ch_rtp, ch_rtcp;
	bool have_ssrc;
	uint32_t ssrc;
	struct depack *dp;
	struct fclock clk;
	bool have_pkt;
	uint32_t pkt_ts, prev_pkt_ts;
	int64_t pkt_first_us, prev_first_us;
	uint32_t bad_in_row;
	bool skew_logged, sr_logged;
	int64_t last_media_ms;

	/* timers */
	struct loop_timer t_io;        /* connect/reply deadline, media watchdog, teardown */
	struct loop_timer t_keep;      /* keep-alive, backoff */

	/* status */
	char last_error[160];
	uint32_t attempt;
	int64_t streaming_since_us;
	int64_t streaming_since_ms;
	bool rtcp_clock;
	uint64_t frames, bytes, lost_before, refused, reconnects;
	struct rate_bucket rate[RATE_BUCKETS];
};

/* camera id -> slot, open addressing with linear probing (key 0 = empty) */
struct idmap {
	uint32_t *keys;
	uint32_t *vals;
	uint32_t cap, count;
};

struct rtsp_shard {
	struct ingest_config cfg;
	uint32_t index;
	struct loop *loop;
	struct resolver *resolver;
	struct session **slots;
	uint32_t nslots;
	uint32_t *free_slots;
	uint32_t nfree;
	struct idmap map;
	uint32_t count;
	bool stopping;
	uint64_t rng;
	uint16_t udp_next;
};

static void settle(struct session *s);
static void begin_close(struct session *s, bool remove);
static int send_request(struct session *s, enum req r);
static void on_frame(void *user, const struct depack_frame *f);

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t rng_next(struct rtsp_shard *sh)
{
	/* xorshift64* */
	uint64_t x = sh->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sh->rng = x;
	return x * 2685821657736338717ull;
}

static struct loop *L(struct session *s)
{
	return s->sh->loop;
}

static int64_t now_ms(struct session *s)
{
	return loop_now_ms(L(s));
}

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

/* ---- camera id map ------------------------------------------------------------ */

static uint32_t id_hash(uint32_t id, uint32_t cap)
{
	return (id * 2654435761u) & (cap - 1);
}

static int idmap_grow(struct idmap *m)
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

static int idmap_find(const struct idmap *m, uint32_t id)
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

static int idmap_put(struct idmap *m, uint32_t id, uint32_t val)
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
static void idmap_del(struct idmap *m, uint32_t id)
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

static void log_failure(struct session *s)
{
	nvr_log("warn", "ingest", "event=session_failed camera=%" PRIu32 " url=%s phase=%s error=\"%s\"",
	        s->cam_id, s->req_url, phase_names[s->phase], s->last_error);
}

/* Records why the session failed and starts closing it; it retries after
 * the backoff. Returns -1 so that callers can `return fail(...)`. */
__attribute__((format(printf, 2, 3)))
static int fail(struct session *s, const char *fmt, ...)
{
	if (s->phase == PH_TEARDOWN)
		begin_close(s, true);       /* leaving anyway: not a failure */
	if (s->phase >= PH_TEARDOWN)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
	va_end(ap);
	log_failure(s);
	begin_close(s, false);
	return -1;
}

static int fail_status(struct session *s, const char *what, const struct rtsp_msg *m)
{
	char reason[80];
	clean_copy(m->reason.p, m->reason.len, reason, sizeof reason);
	return fail(s, "%s: %d %s", what, m->status, reason);
}

static void cancel_ops(struct session *s)
{
	for (unsigned k = K_CONNECT; k <= K_RTCP; k++) {
		if (!(s->ops & (1u << k)))
			continue;
		if (loop_cancel(L(s), k, s->slot)) {
			/* no SQE: make the operation end on its own */
			int fd = k == K_RTP ? s->up[0]->fd : k == K_RTCP ? s->up[1]->fd : s->fd;
			shutdown(fd, SHUT_RDWR);
		}
	}
}

/* The camera's frames end here: the last whole frame still counts, and
 * its unfinished chunk goes to disk. */
static void stop_media(struct session *s)
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

static void begin_close(struct session *s, bool remove)
{
	s->removing |= remove;
	if (s->phase == PH_CLOSING)
		return;
	loop_timer_cancel(L(s), &s->t_io);
	loop_timer_cancel(L(s), &s->t_keep);
	stop_media(s);
	s->phase = PH_CLOSING;
	cancel_ops(s);
}

static void udp_free(struct udp_port *u)
{
	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	free(u->buf);
	free(u);
}

/* Everything of one connection; the ring holds none of it any more. */
static void release_connection(struct session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	for (int i = 0; i < 2; i++) {
		udp_free(s->up[i]);
		s->up[i] = NULL;
	}
	free(s->rx);
	s->rx = NULL;
	s->rx_len = s->rx_cap = s->rx_peak = 0;
	while (s->out_head) {
		struct outmsg *m = s->out_head;
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

static void backoff(struct session *s)
{
	struct rtsp_shard *sh = s->sh;
	if (s->streaming_since_ms && now_ms(s) - s->streaming_since_ms >= STREAM_RESET_MS)
		s->attempt = 0;
	s->streaming_since_ms = 0;
	s->streaming_since_us = 0;
	uint64_t cap = sh->cfg.backoff_min_ms;
	for (uint32_t i = 0; i < s->attempt && cap < sh->cfg.backoff_max_ms; i++)
		cap *= 2;
	if (cap > sh->cfg.backoff_max_ms)
		cap = sh->cfg.backoff_max_ms;
	uint32_t delay = (uint32_t)(rng_next(sh) % (cap + 1));
	if (s->attempt < 31)
		s->attempt++;
	s->phase = PH_BACKOFF;
	loop_timer_arm(L(s), &s->t_keep, delay);
	nvr_log("info", "ingest", "event=session_backoff camera=%" PRIu32 " retry_ms=%" PRIu32
	        " attempt=%" PRIu32, s->cam_id, delay, s->attempt);
}

static void session_free(struct session *s)
{
	struct rtsp_shard *sh = s->sh;
	loop_timer_cancel(sh->loop, &s->t_io);
	loop_timer_cancel(sh->loop, &s->t_keep);
	release_connection(s);
	if (s->in_map)
		idmap_del(&sh->map, s->cam_id);
	sh->slots[s->slot] = NULL;
	sh->free_slots[sh->nfree++] = s->slot;
	sh->count--;
	nvr_log("info", "ingest", "event=session_removed camera=%" PRIu32 " frames=%" PRIu64
	        " recv_buffer_max_used=%" PRIu32, s->cam_id, s->frames,
	        s->rx_cap_max > RX_MIN ? s->rx_cap_max : RX_MIN);
	free(s->req_url);
	free(s);
	if (sh->stopping && sh->count == 0)
		loop_quit(sh->loop);
}

/* End of every entry point: finishes a close whose operations are all
 * done, then retries later or frees. */
static void settle(struct session *s)
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

static int send_next(struct session *s)
{
	struct outmsg *m = s->out_head;
	struct io_uring_sqe *sqe = loop_sqe(L(s));
	if (!sqe)
		return fail(s, "no submission queue entry");
	io_uring_prep_send(sqe, s->fd, m->data + m->off, m->len - m->off, MSG_NOSIGNAL);
	loop_commit(L(s), sqe, K_SEND, s->slot);
	s->ops |= 1u << K_SEND;
	return 0;
}

static int out_push(struct session *s, struct outmsg *m)
{
	m->next = NULL;
	if (s->out_tail)
		s->out_tail->next = m;
	else
		s->out_head = m;
	s->out_tail = m;
	if (s->ops & (1u << K_SEND))
		return 0;
	return send_next(s);
}

static void on_send(struct loop *l, uint32_t id, int res, uint32_t flags);

/* ---- requests ----------------------------------------------------------------------- */

static const char *req_method(const struct session *s, enum req r)
{
	static const char *const names[] = {
		"OPTIONS", "DESCRIBE", "SETUP", "PLAY", NULL, "TEARDOWN",
	};
	if (r == REQ_KEEPALIVE)
		return s->get_parameter ? "GET_PARAMETER" : "OPTIONS";
	return names[r];
}

static const char *req_uri(const struct session *s, enum req r)
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

static void req_extra(const struct session *s, enum req r, char *out, size_t outsz)
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

static int auth_line(struct session *s, const char *method, const char *uri, char *out,
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

static int send_request(struct session *s, enum req r)
{
	const char *method = req_method(s, r), *uri = req_uri(s, r);
	char extra[128], auth[1600], sess[160] = "";
	req_extra(s, r, extra, sizeof extra);
	if (auth_line(s, method, uri, auth, sizeof auth))
		return fail(s, "%s: authorization header too long", method);
	if (s->session_id)
		snprintf(sess, sizeof sess, "Session: %s\r\n", s->session_id);
	int cseq = ++s->cseq;
	const char *fmt = "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: " USER_AGENT "\r\n%s%s%s\r\n";
	int len = snprintf(NULL, 0, fmt, method, uri, cseq, sess, extra, auth);
	struct outmsg *m = len > 0 ? malloc(sizeof *m + (size_t)len + 1) : NULL;
	if (!m)
		return fail(s, "%s: out of memory", method);
	snprintf(m->data, (size_t)len + 1, fmt, method, uri, cseq, sess, extra, auth);
	m->len = (size_t)len;
	m->off = 0;
	s->wait_cseq = cseq;
	s->wait_req = r;
	if (r != REQ_KEEPALIVE && r != REQ_TEARDOWN)
		loop_timer_arm(L(s), &s->t_io, s->sh->cfg.timeout_ms);
	return out_push(s, m);
}

/* ---- replies ------------------------------------------------------------------------ */

static bool header_is(const struct rtsp_header *h, const char *name)
{
	return h->name.len == strlen(name) && !strncasecmp(h->name.p, name, h->name.len);
}

static void new_cnonce(struct session *s)
{
	uint64_t v = rng_next(s->sh);
	snprintf(s->cnonce, sizeof s->cnonce, "%016" PRIx64, v);
}

/* 401: take the best challenge (Digest over Basic) and send the request
 * again, once per request unless the server says the nonce went stale. */
static int on_unauthorized(struct session *s, const struct rtsp_msg *m, enum req r)
{
	const char *method = req_method(s, r);
	if (!s->user[0])
		return fail(s, "%s: 401 Unauthorized and the camera has no credentials", method);
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
		return fail(s, "%s: 401 Unauthorized without a usable challenge", method);
	if (s->auth_tries >= 1 && !best.stale)
		return fail(s, "%s: 401 Unauthorized: credentials refused", method);
	if (!s->auth && !(s->auth = malloc(sizeof *s->auth)))
		return fail(s, "%s: out of memory", method);
	*s->auth = best;
	s->auth_tries++;
	s->nc = 0;
	new_cnonce(s);
	return send_request(s, r);
}

static int on_options(struct session *s, const struct rtsp_msg *m)
{
	/* Some cameras refuse OPTIONS; DESCRIBE decides. */
	const struct rtsp_str *pub = m->status == 200 ? rtsp_msg_header(m, "Public") : NULL;
	s->get_parameter = pub && str_contains_token(pub, "GET_PARAMETER");
	s->phase = PH_DESCRIBE;
	return send_request(s, REQ_DESCRIBE);
}

static void base_url(struct session *s, const struct rtsp_msg *m, char *out, size_t outsz)
{
	static const char *const names[] = { "Content-Base", "Content-Location" };
	for (int i = 0; i < 2; i++) {
		const struct rtsp_str *v = rtsp_msg_header(m, names[i]);
		if (v && v->len && str_copy(v, out, outsz))
			return;
	}
	snprintf(out, outsz, "%s", s->req_url);
}

static int udp_open(struct session *s);

/* Takes the SDP's video track: codec, payload type, clock, parameter sets
 * (into a fresh depacketizer) and the control URLs. */
static int take_track(struct session *s, const struct rtsp_msg *m, const struct sdp_session *sdp)
{
	const struct sdp_media *v = sdp_find_video(sdp);
	if (!v)
		return fail(s, "DESCRIBE: no H.264 or H.265 video track in the SDP");
	char base[1024], url[1400];
	base_url(s, m, base, sizeof base);
	if (rtsp_resolve_control(base, v->control, url, sizeof url))
		return fail(s, "DESCRIBE: track control URL too long");
	s->setup_url = clean_url(url);
	if (rtsp_resolve_control(base, sdp->control, url, sizeof url))
		return fail(s, "DESCRIBE: session control URL too long");
	s->play_url = clean_url(url);
	s->dp = calloc(1, sizeof *s->dp);
	if (!s->setup_url || !s->play_url || !s->dp)
		return fail(s, "DESCRIBE: out of memory");
	s->codec = v->codec;
	s->pt = v->payload_type;
	s->clock_rate = v->clock_rate > 0 ? (uint32_t)v->clock_rate : 90000;
	if (depack_init(s->dp, v->codec, v->param_sets, v->param_sets_len, on_frame, s)) {
		free(s->dp);
		s->dp = NULL;
		return fail(s, "DESCRIBE: unsupported codec");
	}
	fclock_reset(&s->clk, s->clock_rate);
	return 0;
}

static int on_describe(struct session *s, const struct rtsp_msg *m)
{
	if (m->status != 200)
		return fail_status(s, "DESCRIBE", m);
	if (!m->body_len)
		return fail(s, "DESCRIBE: reply without SDP");
	struct sdp_session *sdp = malloc(sizeof *sdp);
	if (!sdp)
		return fail(s, "DESCRIBE: out of memory");
	int err = sdp_parse((const char *)m->body, m->body_len, sdp);
	if (err)
		fail(s, "DESCRIBE: the SDP could not be parsed");
	else
		err = take_track(s, m, sdp);
	free(sdp);
	if (err)
		return -1;
	s->phase = PH_SETUP;
	if (s->udp && udp_open(s))
		return -1;
	return send_request(s, REQ_SETUP);
}

static int on_setup(struct session *s, const struct rtsp_msg *m)
{
	if (m->status != 200)
		return fail_status(s, "SETUP", m);
	const struct rtsp_str *v = rtsp_msg_header(m, "Session");
	char id[128];
	int timeout = 60;
	if (!v || rtsp_parse_session(v, id, sizeof id, &timeout))
		return fail(s, "SETUP: reply without a usable Session header");
	s->session_id = strdup(id);
	if (!s->session_id)
		return fail(s, "SETUP: out of memory");
	s->session_timeout_s = timeout > 0 ? timeout : 60;
	struct rtsp_transport t = { .interleaved = { -1, -1 } };
	v = rtsp_msg_header(m, "Transport");
	if (v && rtsp_parse_transport(v, &t))
		return fail(s, "SETUP: unparsable Transport header");
	if (v && t.tcp == s->udp)
		return fail(s, "SETUP: the camera answered with %s transport", t.tcp ? "TCP" : "UDP");
	s->ch_rtp = t.interleaved[0] >= 0 ? t.interleaved[0] : 0;
	s->ch_rtcp = t.interleaved[1] >= 0 ? t.interleaved[1] : s->ch_rtp + 1;
	if (t.has_ssrc) {
		s->have_ssrc = true;
		s->ssrc = t.ssrc;
	}
	s->phase = PH_PLAY;
	return send_request(s, REQ_PLAY);
}

static uint32_t keepalive_ms(const struct session *s)
{
	return (uint32_t)s->session_timeout_s * 1000u / 2u;
}

static int on_play(struct session *s, const struct rtsp_msg *m)
{
	if (m->status != 200)
		return fail_status(s, "PLAY", m);
	s->phase = PH_STREAMING;
	s->streaming_since_us = nvr_now_us();
	s->streaming_since_ms = now_ms(s);
	s->last_media_ms = now_ms(s);
	s->last_error[0] = '\0';
	loop_timer_arm(L(s), &s->t_io, s->sh->cfg.timeout_ms);
	loop_timer_arm(L(s), &s->t_keep, keepalive_ms(s));
	nvr_log("info", "ingest", "event=session_up camera=%" PRIu32 " url=%s transport=%s codec=%s"
	        " clock_rate=%" PRIu32 " keepalive=%s session_timeout_s=%d", s->cam_id, s->req_url,
	        s->udp ? "udp" : "tcp", s->codec == STG_CODEC_H265 ? "h265" : "h264", s->clock_rate,
	        s->get_parameter ? "GET_PARAMETER" : "OPTIONS", s->session_timeout_s);
	return 0;
}

static int on_keepalive(struct session *s, const struct rtsp_msg *m)
{
	if (m->status == 454)
		return fail_status(s, "keep-alive", m);
	if ((m->status == 405 || m->status == 501) && s->get_parameter) {
		s->get_parameter = false;     /* listed but refused: OPTIONS from now on */
		return 0;
	}
	if (m->status != 200)
		nvr_log("warn", "ingest", "event=keepalive_refused camera=%" PRIu32 " status=%d",
		        s->cam_id, m->status);
	return 0;
}

static int on_response(struct session *s, const struct rtsp_msg *m)
{
	/* A reply without CSeq (some cameras) answers the request awaited; one
	 * with another CSeq is a late reply to an earlier keep-alive. */
	if (s->wait_cseq < 0 || (m->cseq >= 0 && m->cseq != s->wait_cseq))
		return 0;
	enum req r = s->wait_req;
	s->wait_cseq = -1;
	if (r != REQ_KEEPALIVE && r != REQ_TEARDOWN)
		loop_timer_cancel(L(s), &s->t_io);
	if (r == REQ_TEARDOWN) {
		begin_close(s, true);
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

/* ---- media --------------------------------------------------------------------------- */

static void rate_add(struct session *s, uint32_t bytes)
{
	int64_t sec = now_ms(s) / 1000;
	struct rate_bucket *b = &s->rate[sec % RATE_BUCKETS];
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
static void rate_get(const struct session *s, int64_t now, double *fps, double *kbps)
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

/* The arrival time of the first packet of the frame with timestamp ts. */
static int64_t frame_arrival(const struct session *s, uint32_t ts)
{
	if (s->have_pkt && ts == s->pkt_ts)
		return s->pkt_first_us;
	if (s->have_pkt && ts == s->prev_pkt_ts)
		return s->prev_first_us;
	return nvr_now_us();
}

static void on_frame(void *user, const struct depack_frame *f)
{
	struct session *s = user;
	if (s->media_stopped)
		return;
	enum fclock_source src;
	int64_t t = fclock_frame(&s->clk, f->rtp_timestamp, frame_arrival(s, f->rtp_timestamp), &src);
	if (s->clk.skewed_frames && !s->skew_logged) {
		s->skew_logged = true;
		nvr_log("warn", "ingest", "event=clock_skew camera=%" PRIu32 " max_skew_ms=%" PRIu32
		        " note=\"camera clock (RTCP) disagrees with arrival; arrival time used\"",
		        s->cam_id, s->sh->cfg.max_clock_skew_ms);
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
			nvr_log("warn", "ingest", "event=frame_refused camera=%" PRIu32 " error=\"%s\"",
			        s->cam_id, stg_strerror(err));
		return;
	}
	s->frames++;
	s->bytes += f->size;
	rate_add(s, (uint32_t)f->size);
}

static int bad_packet(struct session *s, const char *what)
{
	if (++s->bad_in_row < BAD_PACKETS_MAX)
		return 0;
	return fail(s, "bad stream: %u %s in a row", s->bad_in_row, what);
}

static int on_rtp(struct session *s, const uint8_t *p, size_t len, int64_t arrival_us)
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
	s->last_media_ms = now_ms(s);
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

static int on_rtcp(struct session *s, const uint8_t *p, size_t len)
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

/* ---- TCP receive ------------------------------------------------------------------------ */

static int arm_recv(struct session *s)
{
	struct io_uring_sqe *sqe = loop_sqe(L(s));
	if (!sqe)
		return fail(s, "no submission queue entry");
	io_uring_prep_recv(sqe, s->fd, s->rx + s->rx_len, s->rx_cap - s->rx_len, 0);
	loop_commit(L(s), sqe, K_RECV, s->slot);
	s->ops |= 1u << K_RECV;
	return 0;
}

static int on_chunk(struct session *s, const struct rtsp_chunk *c, int64_t arrival_us)
{
	if (c->kind == RTSP_CHUNK_MESSAGE) {
		if (!c->msg.is_response)
			return 0;               /* requests from the server are not served */
		return on_response(s, &c->msg);
	}
	if (s->phase == PH_TEARDOWN)
		return 0;
	if (c->channel == s->ch_rtp)
		return on_rtp(s, c->payload, c->payload_len, arrival_us);
	if (c->channel == s->ch_rtcp)
		return on_rtcp(s, c->payload, c->payload_len);
	return 0;
}

/* Handles every whole chunk in the buffer; returns the bytes consumed or
 * -1 when the session failed. */
static int consume(struct session *s, int64_t arrival_us)
{
	size_t off = 0;
	while (off < s->rx_len) {
		struct rtsp_chunk c;
		rtsp_next_chunk(s->rx + off, s->rx_len - off, &c);
		if (c.kind == RTSP_CHUNK_NEED_MORE)
			break;
		if (c.kind == RTSP_CHUNK_ERROR)
			return fail(s, "unparsable data from the camera");
		if (on_chunk(s, &c, arrival_us) < 0 || s->phase >= PH_CLOSING)
			return -1;
		off += c.size;
	}
	return (int)off;
}

static int rx_resize(struct session *s, uint32_t cap)
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
static int rx_adapt(struct session *s, bool filled)
{
	uint32_t max = s->sh->cfg.recv_buffer_max;
	bool grow = (filled && s->rx_cap < RX_BURST_MAX) || s->rx_len == s->rx_cap;
	if (grow && s->rx_cap < max)
		return rx_resize(s, s->rx_cap * 2 < max ? s->rx_cap * 2 : max) ? fail(s, "out of memory") : 0;
	if (s->rx_len == s->rx_cap)
		return fail(s, "a message from the camera exceeds the %" PRIu32 "-byte receive buffer", max);
	if (now_ms(s) - s->rx_period_ms >= RX_SHRINK_MS) {
		if (s->rx_peak < s->rx_cap / 4 && s->rx_cap > RX_MIN && s->rx_len <= s->rx_cap / 2)
			rx_resize(s, s->rx_cap / 2);    /* failure keeps the bigger buffer */
		s->rx_peak = 0;
		s->rx_period_ms = now_ms(s);
	}
	return 0;
}

static void on_recv(struct loop *l, uint32_t id, int res, uint32_t flags);

static void recv_done(struct session *s, int res)
{
	if (res == 0) {
		fail(s, "connection closed by the camera");
		return;
	}
	if (res < 0) {
		fail(s, "receive: %s", strerror(-res));
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
	if (rx_adapt(s, filled) == 0)
		arm_recv(s);
}

/* ---- UDP ------------------------------------------------------------------------------ */

static int udp_bind(struct session *s, uint16_t port, struct udp_port **out)
{
	struct udp_port *u = calloc(1, sizeof *u);
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
		udp_free(u);
		return err;
	}
	*out = u;
	return 0;
}

/* Binds an even/odd pair from the configured range, starting after the
 * pair this shard handed out last. */
static int udp_pair(struct session *s)
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
				udp_free(s->up[0]);
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

static int arm_udp(struct session *s, int i)
{
	struct udp_port *u = s->up[i];
	unsigned kind = i ? K_RTCP : K_RTP;
	struct io_uring_sqe *sqe = loop_sqe(L(s));
	if (!sqe)
		return fail(s, "no submission queue entry");
	u->iov.iov_base = u->buf;
	u->iov.iov_len = u->cap;
	memset(&u->msg, 0, sizeof u->msg);
	u->msg.msg_name = &u->from;
	u->msg.msg_namelen = sizeof u->from;
	u->msg.msg_iov = &u->iov;
	u->msg.msg_iovlen = 1;
	io_uring_prep_recvmsg(sqe, u->fd, &u->msg, 0);
	loop_commit(L(s), sqe, kind, s->slot);
	s->ops |= 1u << kind;
	return 0;
}

static int udp_open(struct session *s)
{
	int err = udp_pair(s);
	if (err)
		return fail(s, "UDP ports %u-%u: %s", s->sh->cfg.udp_port_min,
		            s->sh->cfg.udp_port_max, strerror(-err));
	s->up[0]->cap = UDP_RTP_MIN;
	s->up[1]->cap = UDP_RTCP_BUF;
	for (int i = 0; i < 2; i++) {
		s->up[i]->buf = malloc(s->up[i]->cap);
		if (!s->up[i]->buf)
			return fail(s, "out of memory");
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

static void udp_done(struct session *s, int i, int res)
{
	struct udp_port *u = s->up[i];
	if (res < 0) {
		fail(s, "UDP receive: %s", strerror(-res));
		return;
	}
	bool truncated = (u->msg.msg_flags & MSG_TRUNC) || (size_t)res >= u->cap;
	if (i == 0 && truncated && u->cap < UDP_RTP_MAX) {
		/* this datagram is lost (the depacketizer sees the gap); later
		 * ones of that size fit */
		uint8_t *p = realloc(u->buf, UDP_RTP_MAX);
		if (!p) {
			fail(s, "out of memory");
			return;
		}
		u->buf = p;
		u->cap = UDP_RTP_MAX;
		nvr_log("info", "ingest", "event=udp_buffer_grown camera=%" PRIu32 " bytes=%u",
		        s->cam_id, UDP_RTP_MAX);
	} else if (u->msg.msg_namelen && !same_host(&u->from, &s->peer)) {
		/* not from the camera: ignored */
	} else if (s->phase != PH_TEARDOWN) {
		if (i == 0 && !truncated && on_rtp(s, u->buf, (size_t)res, nvr_now_us()) < 0)
			return;
		if (i == 1 && on_rtcp(s, u->buf, (size_t)res) < 0)
			return;
	}
	arm_udp(s, i);
}

/* ---- connect ---------------------------------------------------------------------------- */

static int connect_fail(struct session *s, int err)
{
	char host[320];
	snprintf(host, sizeof host, "%s:%d", s->url.host, s->url.port);
	return fail(s, "connect to %s: %s", host, strerror(-err));
}

static void do_connect(struct session *s)
{
	s->phase = PH_CONNECTING;
	s->fd = socket(s->peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (s->fd < 0) {
		connect_fail(s, -errno);
		return;
	}
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct io_uring_sqe *sqe = loop_sqe(L(s));
	if (!sqe) {
		fail(s, "no submission queue entry");
		return;
	}
	io_uring_prep_connect(sqe, s->fd, (struct sockaddr *)&s->peer, s->peerlen);
	loop_commit(L(s), sqe, K_CONNECT, s->slot);
	s->ops |= 1u << K_CONNECT;
	loop_timer_arm(L(s), &s->t_io, s->sh->cfg.timeout_ms);
}

static bool numeric_host(struct session *s)
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
static bool next_address(struct session *s)
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
	struct resolve_job *job = container_of(c, struct resolve_job, req.cmd);
	struct session *s = job->s;
	s->resolving = false;
	if (s->phase != PH_RESOLVING) {
		free(job);
	} else if (job->req.err) {
		fail(s, "resolve %s: %s", s->url.host,
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

static void start_connect(struct session *s)
{
	s->cseq = 0;
	s->wait_cseq = -1;
	s->auth_tries = 0;
	s->get_parameter = false;
	s->skew_logged = s->sr_logged = false;
	s->rx_cap = RX_MIN;
	s->rx_len = s->rx_peak = 0;
	s->rx_period_ms = now_ms(s);
	s->rx = malloc(RX_MIN);
	if (!s->rx) {
		s->phase = PH_CONNECTING;
		fail(s, "out of memory");
		return;
	}
	if (numeric_host(s)) {
		do_connect(s);
		return;
	}
	struct resolve_job *job = calloc(1, sizeof *job);
	if (!job) {
		s->phase = PH_CONNECTING;
		fail(s, "out of memory");
		return;
	}
	job->s = s;
	job->req.cmd.fn = on_resolved;
	job->req.loop = L(s);
	snprintf(job->req.host, sizeof job->req.host, "%s", s->url.host);
	job->req.port = s->url.port;
	s->phase = PH_RESOLVING;
	s->resolving = true;
	resolver_submit(s->sh->resolver, &job->req);
}

/* ---- completions ---------------------------------------------------------------------- */

static struct session *op_done(struct loop *l, uint32_t id, unsigned kind)
{
	struct rtsp_shard *sh = loop_owner(l);
	struct session *s = id < sh->nslots ? sh->slots[id] : NULL;
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
	struct session *s = op_done(l, id, K_CONNECT);
	if (!s)
		return;
	if (s->phase == PH_CONNECTING) {
		loop_timer_cancel(l, &s->t_io);
		if (res < 0 && res != -ECANCELED && next_address(s)) {
			close(s->fd);           /* a name's next address */
			s->fd = -1;
			do_connect(s);
		} else if (res < 0) {
			connect_fail(s, res);
		} else if (arm_recv(s) == 0) {
			s->phase = PH_OPTIONS;
			send_request(s, REQ_OPTIONS);
		}
	}
	settle(s);
}

static void on_recv(struct loop *l, uint32_t id, int res, uint32_t flags)
{
	(void)flags;
	struct session *s = op_done(l, id, K_RECV);
	if (!s)
		return;
	if (s->phase < PH_CLOSING)
		recv_done(s, res);
	settle(s);
}

static void on_send(struct loop *l, uint32_t id, int res, uint32_t flags)
{
	(void)flags;
	struct session *s = op_done(l, id, K_SEND);
	if (!s)
		return;
	if (s->phase < PH_CLOSING) {
		if (res < 0) {
			fail(s, "send: %s", strerror(-res));
		} else {
			struct outmsg *m = s->out_head;
			m->off += (size_t)res;
			if (m->off >= m->len) {
				s->out_head = m->next;
				if (!s->out_head)
					s->out_tail = NULL;
				free(m);
			}
			if (s->out_head)
				send_next(s);
		}
	}
	settle(s);
}

static void on_udp(struct loop *l, uint32_t id, int res, int i)
{
	struct session *s = op_done(l, id, i ? K_RTCP : K_RTP);
	if (!s)
		return;
	if (s->phase < PH_CLOSING)
		udp_done(s, i, res);
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
	struct session *s = container_of(t, struct session, t_io);
	uint32_t timeout = s->sh->cfg.timeout_ms;
	switch (s->phase) {
	case PH_CONNECTING:
		fail(s, "connect to %s:%d: no answer within %" PRIu32 " ms", s->url.host, s->url.port,
		     timeout);
		break;
	case PH_OPTIONS:
	case PH_DESCRIBE:
	case PH_SETUP:
	case PH_PLAY:
		fail(s, "%s: no reply within %" PRIu32 " ms", req_method(s, s->wait_req), timeout);
		break;
	case PH_STREAMING: {
		int64_t idle = now_ms(s) - s->last_media_ms;
		if (idle >= timeout)
			fail(s, "no media for %" PRId64 " ms", idle);
		else
			loop_timer_arm(L(s), t, (uint32_t)(timeout - idle));
		break;
	}
	case PH_TEARDOWN:
		begin_close(s, true);
		break;
	default:
		break;
	}
	settle(s);
}

static void keep_timer(struct loop_timer *t)
{
	struct session *s = container_of(t, struct session, t_keep);
	if (s->phase == PH_STREAMING) {
		if (send_request(s, REQ_KEEPALIVE) == 0)
			loop_timer_arm(L(s), t, keepalive_ms(s));
	} else if (s->phase == PH_BACKOFF) {
		s->reconnects++;
		start_connect(s);
	}
	settle(s);
}

/* ---- commands ------------------------------------------------------------------------------ */

/* Remove or stop: the camera leaves the id map at once (it may be added
 * again while this session still says goodbye), its frames end now, and
 * the session goes after TEARDOWN (when the server gave a session) and
 * the completion of everything in flight. */
static void teardown(struct session *s)
{
	struct rtsp_shard *sh = s->sh;
	if (s->in_map) {
		idmap_del(&sh->map, s->cam_id);
		s->in_map = false;
	}
	s->removing = true;
	if (s->phase < PH_CLOSING)
		stop_media(s);
	switch (s->phase) {
	case PH_IDLE:
	case PH_BACKOFF:
		loop_timer_cancel(L(s), &s->t_keep);
		s->phase = PH_CLOSING;
		break;
	case PH_RESOLVING:
	case PH_CONNECTING:
	case PH_OPTIONS:
	case PH_DESCRIBE:
	case PH_SETUP:
		begin_close(s, true);
		break;
	case PH_PLAY:
	case PH_STREAMING:
		if (!s->session_id) {
			begin_close(s, true);
			break;
		}
		loop_timer_cancel(L(s), &s->t_keep);
		s->phase = PH_TEARDOWN;
		if (send_request(s, REQ_TEARDOWN) == 0) {
			uint32_t wait = s->sh->cfg.timeout_ms < TEARDOWN_WAIT_MS ? s->sh->cfg.timeout_ms
			                                                          : TEARDOWN_WAIT_MS;
			loop_timer_arm(L(s), &s->t_io, wait);
		} else {
			begin_close(s, true);
		}
		break;
	default:
		break;
	}
}

static int check_record(const struct camera_record *c, bool *udp)
{
	if (!c->id || strncasecmp(c->main_url, "rtsp://", 7))
		return -EINVAL;
	if (!c->transport[0] || !strcasecmp(c->transport, "tcp"))
		*udp = false;
	else if (!strcasecmp(c->transport, "udp"))
		*udp = true;
	else
		return -EINVAL;
	return 0;
}

static int session_new(struct rtsp_shard *sh, const struct camera_record *c, bool udp,
                       struct session **out)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->sh = sh;
	s->cam_id = c->id;
	s->udp = udp;
	s->fd = -1;
	s->wait_cseq = -1;
	loop_timer_init(&s->t_io, io_timer);
	loop_timer_init(&s->t_keep, keep_timer);
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
	struct session **slots = realloc(sh->slots, n * sizeof *slots);
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
	if (check_record(c, &udp))
		return -EINVAL;
	if (idmap_find(&sh->map, c->id) >= 0)
		return -EEXIST;
	struct session *s;
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
	start_connect(s);
	settle(s);
	return 0;
}

static struct session *find(struct rtsp_shard *sh, uint32_t id)
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
	struct session *s = find(sh, a->id);
	if (!s || s->removing)
		return -ENOENT;
	teardown(s);
	settle(s);
	return 0;
}

static enum ingest_state state_of(const struct session *s)
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

static void fill_status(struct rtsp_shard *sh, const struct session *s,
                        struct ingest_camera_status *st)
{
	memset(st, 0, sizeof *st);
	st->id = s->cam_id;
	st->state = state_of(s);
	snprintf(st->last_error, sizeof st->last_error, "%s", s->last_error);
	rate_get(s, loop_now_ms(sh->loop), &st->fps, &st->bitrate_kbps);
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
}

static int cmd_status(struct loop *l, void *arg)
{
	struct rtsp_shard *sh = loop_owner(l);
	struct id_arg *a = arg;
	struct session *s = find(sh, a->id);
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
		struct session *s = sh->slots[i];
		if (!s || s->removing)
			continue;
		struct ingest_camera_status st;
		fill_status(sh, s, &st);
		t->cameras++;
		t->streaming += st.state == INGEST_STREAMING;
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
	if (sh->count == 0) {
		loop_quit(l);
		return;
	}
	for (uint32_t i = 0; i < sh->nslots; i++) {
		struct session *s = sh->slots[i];
		if (!s)
			continue;
		teardown(s);
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

void rtsp_shard_totals(struct rtsp_shard *sh, struct ingest_totals *out)
{
	loop_call(sh->loop, cmd_totals, out);
}

void rtsp_shard_stop(struct rtsp_shard *sh)
{
	if (!sh)
		return;
	loop_stop(sh->loop);
	free(sh->slots);
	free(sh->free_slots);
	free(sh->map.keys);
	free(sh->map.vals);
	free(sh);
}
