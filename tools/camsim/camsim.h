/*
 * camsim.h - the camera simulator nvr-camsim: N virtual RTSP cameras served
 * from a few H.264/H.265 fixture files by one thread, cheap enough for
 * thousands of streams per core (the ingest tests and benchmark use it).
 *
 * How the pieces fit:
 *   camsim_fixture.c  reads a fixture once with libavformat and cuts it into
 *                     RTP payloads (RFC 6184 / RFC 7798) shared by every
 *                     session: per session only the 12-byte RTP header
 *                     differs, and it is built at send time.
 *   camsim_rtsp.c     the RTSP side of a connection: reading, requests,
 *                     responses, Digest authentication.
 *   camsim_stream.c   pacing (a min-heap of next-send times), sending one
 *                     access unit per sendmsg (TCP interleaved) or sendmmsg
 *                     (UDP), keeping the unsent remainder when a socket is
 *                     full, RTCP sender reports.
 *   camsim_fault.c    --fault specs and the per-packet fault decisions.
 *   camsim_net.c      listeners, the epoll loop, connection life cycle,
 *                     the once-a-second sweep (timeouts, drop faults).
 *   camsim_main.c     options, start-up, summary.
 *
 * Single thread: nothing here is locked. A session is an RTSP connection
 * (at most one session per connection); closing the connection ends it.
 */
#ifndef CAMSIM_H
#define CAMSIM_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../nvr/rtsp_msg.h"

#define CS_REALM "nvr-camsim"
#define CS_PAYLOAD_TYPE 96
#define CS_SESSION_TIMEOUT_S 60
#define CS_MAX_LISTENERS 64
#define CS_MAX_FIXTURES 64
#define CS_BEHIND_US 2000000LL      /* a client this late skips to a key frame */
#define CS_SR_EVERY_US 5000000LL    /* RTCP sender report period */
#define CS_STALL_AFTER_US 5000000LL /* stall fault starts this long after PLAY */
#define CS_FRAMES_PER_TURN 4        /* late frames sent back to back per turn */
#define CS_MAX_OUT_BYTES 65536      /* queued RTSP responses before we give up */
/* Send buffer of a TCP connection (the kernel doubles it): a client that
 * stops reading blocks its session after about this much, instead of
 * after the several MiB autotuning would allow. */
#define CS_TCP_SNDBUF (256 * 1024)
#define CS_TCP_FRAMING 4            /* '$', channel, 16-bit length */
#define CS_RTP_HEADER 12
#define CS_RTCP_BYTES 52            /* SR (28) + SDES CNAME (24) */
#define CS_RX_MAX (RTSP_MAX_HEAD_BYTES + RTSP_MAX_BODY_BYTES)

enum cs_codec { CS_H264 = 1, CS_H265 = 2 };

/* ---- fixtures ------------------------------------------------------------ */

/* One RTP payload inside cs_fixture.payload. `keep` is how many leading
 * bytes are NAL or FU headers (the corrupt fault flips bytes after them). */
struct cs_pkt {
	uint32_t off;
	uint16_t len;
	uint8_t keep;
};

/* One access unit (frame): packets [first, first + count). */
struct cs_au {
	uint32_t first;
	uint32_t count;
	uint32_t bytes;          /* payload bytes of its packets */
	bool key;                /* IDR (H.264) or IRAP (H.265) */
};

struct cs_fixture {
	const char *path;
	enum cs_codec codec;
	int width, height;
	uint32_t fps_num, fps_den;   /* the file's frame rate */
	uint8_t *payload;            /* every RTP payload, back to back */
	size_t payload_len, payload_cap;
	struct cs_pkt *pkts;
	uint32_t npkts, pkts_cap;
	struct cs_au *aus;
	uint32_t naus, aus_cap;
	uint32_t *to_key;            /* frames from AU i to the next key AU (cyclic) */
	uint32_t max_au_pkts;
	uint64_t bytes_per_loop;
	char *fmtp;                  /* a=fmtp parameters for the SDP */
	/* First parameter sets seen (without start codes), for the SDP. */
	uint8_t *ps[3];              /* VPS (H.265 only), SPS, PPS */
	size_t ps_len[3];
};

/* Reads `path` with libavformat and packetizes its first video stream
 * into RTP payloads of at most packet_size - 12 bytes. Returns 0 or a
 * negative errno / AVERROR (logged). */
int cs_fixture_load(const char *path, unsigned packet_size,
                    struct cs_fixture *fx);
void cs_fixture_free(struct cs_fixture *fx);

/* ---- faults -------------------------------------------------------------- */

struct cs_fault {
	double drop_s;           /* close the session this long after PLAY */
	double stall_s;          /* stop sending this long, once */
	double corrupt_p;        /* fraction of payloads with a flipped byte */
	double reorder_p;        /* fraction of adjacent packet pairs swapped */
	bool refuse;             /* DESCRIBE answers 503 */
	bool any;
};

/* Parses "KIND:ARG@CAMERAS" and applies it to faults[0..cameras).
 * Returns 0 or -EINVAL (message on stderr). */
int cs_fault_parse(const char *spec, struct cs_fault *faults, uint32_t cameras);

/* A uniform number in [0, 1) from a packet's identity: the same packet
 * gets the same answer when its access unit is rebuilt after a partial
 * send. */
double cs_fault_draw(uint32_t ssrc, uint32_t seq, uint32_t salt);

/* ---- connections and sessions -------------------------------------------- */

enum cs_kind { CS_OBJ_CONN = 1, CS_OBJ_LISTEN, CS_OBJ_UDP_RTP, CS_OBJ_UDP_RTCP, CS_OBJ_SIGNAL };

enum cs_state {
	CS_ST_INIT = 0,          /* connected; no session */
	CS_ST_READY,             /* SETUP done */
	CS_ST_PLAYING,
	CS_ST_CLOSED,            /* waiting to be freed at the end of the batch */
};

/* Per-connection flags. */
#define CS_F_TCP        0x01  /* RTP interleaved on the RTSP connection */
#define CS_F_UNIT       0x02  /* an access unit is partly sent */
#define CS_F_UNIT_SR    0x04  /* ... and it starts with a sender report */
#define CS_F_BLOCKED    0x08  /* waiting for EPOLLOUT (TCP) */
#define CS_F_UDP_WAIT   0x10  /* queued on its listener's UDP socket */
#define CS_F_STALLING   0x20
#define CS_F_STALL_DONE 0x40
#define CS_F_HASHED     0x80  /* in the UDP RTCP demultiplexing table */

/* One RTSP connection and its session. Kept small: 30,000 of these must
 * fit easily; nothing here copies fixture bytes. */
struct cs_conn {
	uint8_t kind;            /* CS_OBJ_CONN; first, like every epoll object */
	uint8_t state;
	uint8_t flags;
	uint8_t ch_rtp, ch_rtcp; /* interleaved channels */
	uint16_t listener;
	uint16_t seq;            /* next RTP sequence number */
	uint16_t unit_seq;       /* sequence number of the partly sent unit */
	int fd;
	uint32_t camera;         /* 1..N once DESCRIBE/SETUP named one */
	uint32_t slot;           /* index in cs_server.conns */
	int32_t heap_idx;        /* -1 when not scheduled */
	uint32_t ssrc, ts_base;
	uint32_t unit_done;      /* bytes (TCP) or packets (UDP) of the unit sent */
	uint32_t sr_packets, sr_octets;
	uint32_t rx_len, out_len, out_off;
	uint64_t session_id, nonce;
	uint64_t frame;          /* next frame index since PLAY */
	uint64_t frames_sent;
	int64_t play_mono_us, play_real_us;
	int64_t last_seen_us;
	int64_t next_sr_us;
	struct sockaddr_in peer;     /* TCP peer; UDP: its RTP port */
	uint16_t peer_rtcp_port;     /* network order */
	struct cs_conn *udp_wait_next;
	struct cs_conn *hash_next;
	struct cs_conn *dead_next;
	uint8_t *rx;             /* a partial request, kept between reads */
	uint8_t *out;            /* RTSP bytes not yet written */
};

/* A socket of a listener (TCP accept, UDP RTP, UDP RTCP) or the signalfd. */
struct cs_sock {
	uint8_t kind;
	uint16_t listener;
	int fd;
};

struct cs_listener {
	struct sockaddr_in addr;
	struct cs_sock tcp, rtp, rtcp;
	uint16_t rtp_port, rtcp_port;    /* host order */
	bool paused;                     /* out of descriptors: accept later */
	struct cs_conn *wait_head, *wait_tail;   /* sessions waiting on UDP */
};

struct cs_heap_entry {
	int64_t due_us;
	struct cs_conn *c;
};

struct cs_camera {
	uint16_t fixture;
	uint32_t fps_num, fps_den;
	uint64_t frames_sent;
};

struct cs_totals {
	uint64_t sessions, frames_sent, packets_sent, bytes_sent, frames_skipped;
	uint64_t packets_corrupted, pairs_reordered;
};

struct cs_server {
	/* options */
	uint32_t ncameras;
	unsigned packet_size;
	const char *user, *password;     /* NULL: no authentication */
	bool verbose;
	int64_t end_mono_us;             /* 0: run until a signal */

	struct cs_fixture fixtures[CS_MAX_FIXTURES];
	unsigned nfixtures;
	struct cs_camera *cameras;       /* [ncameras] */
	struct cs_fault *faults;         /* [ncameras] or NULL */
	struct cs_listener listeners[CS_MAX_LISTENERS];
	unsigned nlisteners;

	int epfd;
	struct cs_sock sig;
	volatile int stop;

	struct cs_conn **conns;          /* every open connection */
	uint32_t nconns, conns_cap;
	struct cs_conn *dead;            /* closed, freed after the batch */

	struct cs_heap_entry *heap;
	uint32_t heap_len, heap_cap;

	struct cs_conn **hash;           /* UDP RTCP source -> session */
	uint32_t hash_cap, hash_len;

	/* Scratch shared by every send (single thread), sized for the largest
	 * access unit of any fixture. */
	struct iovec *iov;
	struct mmsghdr *msgs;
	uint8_t *hdrs;                   /* per packet: framing + RTP header */
	uint8_t *flips;                  /* per packet: the corrupted byte */
	uint32_t *order;                 /* packet send order */
	size_t scratch_pkts;
	uint8_t *rxbuf;                  /* reads */
	size_t rxbuf_cap;

	uint64_t rng;
	int64_t next_sweep_us;
	struct cs_totals t;
};

/* camsim_net.c */
int cs_listen(struct cs_server *s, const char *addr_port);
int cs_server_run(struct cs_server *s);
void cs_conn_close(struct cs_server *s, struct cs_conn *c, const char *reason);
void cs_server_close(struct cs_server *s);
int cs_hash_add(struct cs_server *s, struct cs_conn *c);
void cs_hash_remove(struct cs_server *s, struct cs_conn *c);
int cs_udp_want_writable(struct cs_server *s, struct cs_listener *l, bool on);
uint64_t cs_random(struct cs_server *s);

/* camsim_rtsp.c */
void cs_rtsp_readable(struct cs_server *s, struct cs_conn *c, int64_t now);
/* Writes RTSP bytes now or queues them behind a partly sent unit. */
int cs_conn_write(struct cs_conn *c, const char *buf, size_t len);
/* Writes queued RTSP bytes; 0 when all are out, -EAGAIN, or an error. */
int cs_conn_flush_out(struct cs_conn *c);

/* camsim_stream.c */
int cs_scratch_init(struct cs_server *s);
void cs_scratch_free(struct cs_server *s);
void cs_stream_play(struct cs_server *s, struct cs_conn *c, int64_t now);
void cs_stream_stop(struct cs_server *s, struct cs_conn *c);
void cs_stream_run_due(struct cs_server *s, int64_t now);
void cs_stream_writable(struct cs_server *s, struct cs_conn *c, int64_t now);
void cs_stream_udp_writable(struct cs_server *s, struct cs_listener *l, int64_t now);
void cs_heap_remove(struct cs_server *s, struct cs_conn *c);
void cs_udp_wait_remove(struct cs_server *s, struct cs_conn *c);
uint32_t cs_rtp_timestamp(const struct cs_server *s, const struct cs_conn *c, uint64_t frame);
int64_t cs_frame_due(const struct cs_server *s, const struct cs_conn *c, uint64_t frame);

#endif
