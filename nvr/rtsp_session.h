/*
 * rtsp_session.h - what the three files of the RTSP client share (not
 * included anywhere else): the session of one camera and the shard (the
 * sessions of one event loop), and the functions each file offers the
 * others.
 *
 *   rtsp_client.c   shard, commands, session life cycle (connect, close,
 *                   backoff, free), TCP receive, completions, timers
 *   rtsp_request.c  RTSP requests and their replies: the send queue,
 *                   OPTIONS .. PLAY, keep-alive, TEARDOWN, authentication
 *   rtsp_media.c    RTP and RTCP to frames and storage, frame times,
 *                   rates, the UDP ports
 *
 * Everything runs on the shard's loop thread. The rules of the session's
 * life (who may free what, when) are at the top of rtsp_client.c.
 */
#ifndef NVR_RTSP_SESSION_H
#define NVR_RTSP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "depack.h"
#include "frame_clock.h"
#include "ingest.h"
#include "log.h"
#include "loop.h"
#include "resolver.h"
#include "rtsp_auth.h"
#include "rtsp_msg.h"

#define RATE_SECONDS 5
#define RATE_BUCKETS 8

enum rtsp_op_kind {
	K_CONNECT = LOOP_KIND_USER,
	K_RECV,
	K_SEND,
	K_RTP,
	K_RTCP,
};

enum rtsp_phase {
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

enum rtsp_req { REQ_OPTIONS, REQ_DESCRIBE, REQ_SETUP, REQ_PLAY, REQ_KEEPALIVE, REQ_TEARDOWN };

struct rtsp_outmsg {
	struct rtsp_outmsg *next;
	size_t len, off;
	char data[];
};

/* One UDP socket (RTP or RTCP) and its receive state. */
struct rtsp_udp_port {
	int fd;
	uint16_t port;
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_storage from;
	uint8_t *buf;
	size_t cap;
};

/* A name being resolved; after success, the session's address list. */
struct rtsp_resolve_job {
	struct resolver_req req;
	struct rtsp_session *s;
};

struct rtsp_rate_bucket {
	int64_t sec;
	uint32_t frames;
	uint64_t bytes;
};

struct rtsp_session {
	struct rtsp_shard *sh;
	uint32_t slot;
	uint32_t cam_id;
	enum rtsp_phase phase;
	bool udp;
	bool removing;                 /* freed once closed */
	bool in_map;                   /* the shard's id map points here */
	bool media_stopped;            /* no more frames to storage (removed) */
	bool resolving;                /* a resolver request is out */
	bool admitted;                 /* holds one of the shard's max_connecting
	                                * turns (from start to STREAMING or close) */
	struct rtsp_session *wait_prev, *wait_next;   /* in the shard's waiting
	                                * list (phase IDLE) */
	struct stg_camera *cam;

	/* camera */
	struct rtsp_url url;           /* host, port, path; URL credentials */
	const char *user, *pass;       /* point into url or the copies below */
	char rec_user[128], rec_pass[128];
	char *req_url;                 /* rtsp://host:port/path, no credentials */

	/* connection */
	int fd;                        /* a slot of the loop's file table when
	                                * fd_fixed, else a descriptor; -1 none */
	bool fd_fixed;
	unsigned ops;                  /* 1 << kind for each op in flight */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct rtsp_resolve_job *names;     /* a name's addresses, tried in order */
	int name_next;
	uint8_t *rx;
	uint32_t rx_len, rx_cap, rx_peak;
	uint32_t rx_cap_max;           /* largest the buffer has been (logged) */
	int64_t rx_period_ms;
	struct rtsp_outmsg *out_head, *out_tail;
	struct rtsp_udp_port *up[2];        /* UDP: RTP, RTCP */

	/* RTSP */
	int cseq;
	int wait_cseq;                 /* reply awaited, -1 none */
	enum rtsp_req wait_req;
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
	struct loop_timer t_rx;        /* next receive of a streaming session */

	/* status */
	char last_error[160];          /* kept while streaming again: why it last failed */
	uint32_t fails_in_row;         /* since the last PLAY that succeeded */
	uint32_t attempt;
	int64_t streaming_since_us;
	int64_t streaming_since_ms;
	bool rtcp_clock;
	uint64_t frames, bytes, lost_before, refused, reconnects;
	bool in_final;                 /* counted in the shard's final totals */
	uint64_t final_frames, final_bytes;  /* ... with these, when it stopped */
	struct rtsp_rate_bucket rate[RATE_BUCKETS];
	struct ingest_failures failures;    /* recent failure times (repeat failures) */
	struct nvr_log_limit log_limit;     /* the camera's warnings and errors */
};

/* camera id -> slot, open addressing with linear probing (key 0 = empty) */
struct rtsp_idmap {
	uint32_t *keys;
	uint32_t *vals;
	uint32_t cap, count;
};

struct rtsp_shard {
	struct ingest_config cfg;
	uint32_t index;
	struct loop *loop;
	struct resolver *resolver;
	struct rtsp_session **slots;
	uint32_t nslots;
	uint32_t *free_slots;
	uint32_t nfree;
	struct rtsp_idmap map;
	uint32_t count;
	bool stopping;
	/* the totals as the shard stopped, plus what sessions recorded while
	 * saying goodbye (rtsp_shard_stop gives them) */
	struct ingest_totals final;
	uint64_t rng;
	uint16_t udp_next;
	/* admission: at most cfg.max_connecting sessions connect or negotiate
	 * at once; the others wait in order, started by t_admit */
	uint32_t connecting;
	struct rtsp_session *wait_head, *wait_tail;
	struct loop_timer t_admit;
};

static inline struct loop *rtsp_loop(struct rtsp_session *s)
{
	return s->sh->loop;
}

static inline int64_t rtsp_now_ms(struct rtsp_session *s)
{
	return loop_now_ms(rtsp_loop(s));
}

/* Marks a prepared SQE on the session's TCP socket as naming a slot of
 * the loop's file table when it lives there (after io_uring_prep_*, which
 * clears the flags). */
static inline void rtsp_sqe_socket(struct rtsp_session *s, struct io_uring_sqe *sqe)
{
	if (s->fd_fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
}

/* ---- rtsp_client.c ---- */

/* Gives back the session's turn among the shard's max_connecting (when it
 * streams, or closes); the next waiting session starts one tick later. */
void rtsp_admit_release(struct rtsp_session *s);

/* Records why the session failed (last_error, log) and starts closing it;
 * it retries after the backoff. In TEARDOWN it just closes. Returns -1 so
 * that callers can `return rtsp_fail(...)`. */
int rtsp_fail(struct rtsp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends the camera's frames, cancels what is in flight; the session is
 * closed (and freed when `remove`) once every completion is in. */
void rtsp_begin_close(struct rtsp_session *s, bool remove);

uint64_t rtsp_rng(struct rtsp_shard *sh);

/* ---- rtsp_request.c ---- */

/* Sends request r (built from the session's state); for OPTIONS .. PLAY
 * arms the reply timeout. Returns 0 or -1 after rtsp_fail. */
int rtsp_send_request(struct rtsp_session *s, enum rtsp_req r);

/* Sends the head of the send queue (a send completion calls it again). */
int rtsp_send_next(struct rtsp_session *s);

/* A reply from the server; returns -1 when the session failed or closes. */
int rtsp_on_response(struct rtsp_session *s, const struct rtsp_msg *m);

const char *rtsp_req_method(const struct rtsp_session *s, enum rtsp_req r);
uint32_t rtsp_keepalive_ms(const struct rtsp_session *s);

/* ---- rtsp_media.c ---- */

/* One RTP or RTCP packet (from TCP or UDP); -1 when the session failed. */
int rtsp_on_rtp(struct rtsp_session *s, const uint8_t *p, size_t len, int64_t arrival_us);
int rtsp_on_rtcp(struct rtsp_session *s, const uint8_t *p, size_t len);

/* The depacketizer's frame callback: time, storage, statistics. */
void rtsp_on_frame(void *user, const struct depack_frame *f);

/* Frames and kbit per second over the last whole seconds. */
void rtsp_rate_get(const struct rtsp_session *s, int64_t now, double *fps, double *kbps);

/* UDP: binds an RTP/RTCP pair and starts receiving (-1 after rtsp_fail);
 * a receive completion; freeing one port. */
int rtsp_udp_open(struct rtsp_session *s);
void rtsp_udp_done(struct rtsp_session *s, int i, int res);
void rtsp_udp_free(struct rtsp_udp_port *u);

#endif
