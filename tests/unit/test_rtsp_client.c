/*
 * test_rtsp_client.c - the RTSP client (nvr/rtsp_client.c through
 * ingest.h) against a scripted RTSP server in a thread of the test: the
 * whole exchange with Digest authentication, TCP interleaved and UDP media,
 * a frame larger than the receive buffer's first size, RTCP time, TEARDOWN
 * on remove, and the failure paths (EOF, no reply, refused credentials,
 * remove while negotiating) with their backoff, reconnect counts and
 * last_error. Frames are read back from the storage engine byte for byte.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingest.h"
#include "rtsp_auth.h"
#include "rtsp_msg.h"
#include "testutil.h"

#define USER "admin"
#define PASS "pa55word"
#define REALM "fake"
#define NONCE "0123456789abcdef"
#define SESSION "12345678"
#define TS0 1000u
#define BIG_FRAME 7             /* this frame is 60000 bytes */
#define BIG_SIZE 60000u

enum fake_mode {
	FAKE_OK,                    /* serve `frames` frames, then wait for TEARDOWN */
	FAKE_EOF_AFTER_FRAMES,      /* close the connection after the frames */
	FAKE_SILENT_DESCRIBE,       /* never answer DESCRIBE */
};

struct fake {
	enum fake_mode mode;
	bool digest;
	bool udp;
	int frames;
	int pace_ms;                 /* between frames [5] */
	int timeout_s;               /* Session timeout [60] */
	bool no_get_parameter;       /* Public does not list GET_PARAMETER */
	int lfd;
	uint16_t port;
	pthread_t th;
	atomic_bool stop;
	atomic_int connections;
	atomic_int plays;
	atomic_int teardowns;
	atomic_int eofs;             /* connections the client closed */
	atomic_int frames_sent;      /* whole frames written, all connections */
	atomic_int get_parameters;   /* GET_PARAMETER requests */
	atomic_int options_after_play;
	char setup_uri[256];
	char teardown_session[64];
};

/* ---- frames: deterministic bytes the test can recompute --------------------- */

static uint32_t frame_size(int n)
{
	return n == BIG_FRAME ? BIG_SIZE : 200u + (uint32_t)n * 37u;
}

static bool frame_key(int n)
{
	return n % 10 == 0;
}

/* NAL unit of frame n (header + pattern), without start code. */
static void frame_nal(int n, uint8_t *out, uint32_t size)
{
	out[0] = frame_key(n) ? 0x65 : 0x41;
	for (uint32_t i = 1; i < size; i++)
		out[i] = (uint8_t)(n * 31 + i * 7 + 1) | 1;   /* never 0: no start codes */
}

static const uint8_t SPS[] = { 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5 };
static const uint8_t PPS[] = { 0x68, 0xce, 0x3c, 0x80 };

/* The access unit the recorder must store for frame n. */
static size_t expected_frame(int n, uint8_t *out)
{
	static const uint8_t sc[4] = { 0, 0, 0, 1 };
	size_t len = 0;
	if (frame_key(n)) {
		memcpy(out + len, sc, 4);
		memcpy(out + len + 4, SPS, sizeof SPS);
		len += 4 + sizeof SPS;
		memcpy(out + len, sc, 4);
		memcpy(out + len + 4, PPS, sizeof PPS);
		len += 4 + sizeof PPS;
	}
	memcpy(out + len, sc, 4);
	frame_nal(n, out + len + 4, frame_size(n));
	return len + 4 + frame_size(n);
}

/* ---- the scripted server ------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int reply(int fd, int cseq, const char *status, const char *headers, const char *body)
{
	char buf[4096];
	int n = snprintf(buf, sizeof buf, "RTSP/1.0 %s\r\nCSeq: %d\r\n%sContent-Length: %zu\r\n\r\n%s",
	                 status, cseq, headers, strlen(body), body);
	return write_all(fd, buf, (size_t)n);
}

struct media_out {
	int fd;                     /* TCP connection (interleaved) */
	int udp;                    /* UDP socket, -1 for TCP */
	struct sockaddr_in rtp, rtcp;
};

static int send_packet(struct media_out *o, int channel, const uint8_t *p, size_t len)
{
	if (o->udp >= 0) {
		const struct sockaddr_in *to = channel ? &o->rtcp : &o->rtp;
		return sendto(o->udp, p, len, 0, (const struct sockaddr *)to, sizeof *to) == (ssize_t)len ? 0 : -1;
	}
	uint8_t hdr[4] = { '$', (uint8_t)channel, (uint8_t)(len >> 8), (uint8_t)len };
	return write_all(o->fd, hdr, 4) || write_all(o->fd, p, len) ? -1 : 0;
}

static int send_rtp(struct media_out *o, uint16_t *seq, uint32_t ts, const uint8_t *hdr,
                    size_t hlen, const uint8_t *body, size_t blen, bool marker)
{
	static uint8_t pkt[12 + 65536];
	pkt[0] = 0x80;
	pkt[1] = (uint8_t)((marker ? 0x80 : 0) | 96);
	pkt[2] = (uint8_t)(*seq >> 8);
	pkt[3] = (uint8_t)*seq;
	(*seq)++;
	pkt[4] = (uint8_t)(ts >> 24);
	pkt[5] = (uint8_t)(ts >> 16);
	pkt[6] = (uint8_t)(ts >> 8);
	pkt[7] = (uint8_t)ts;
	memcpy(pkt + 8, "\x11\x22\x33\x44", 4);
	memcpy(pkt + 12, hdr, hlen);
	if (blen)
		memcpy(pkt + 12 + hlen, body, blen);
	return send_packet(o, 0, pkt, 12 + hlen + blen);
}

/* Over TCP a NAL unit goes whole (up to 64 KiB: the receive buffer must
 * grow); over UDP large ones go as FU-A fragments of 1400 bytes, as
 * cameras send them. */
static int send_nal(struct media_out *o, uint16_t *seq, uint32_t ts, const uint8_t *nal,
                    size_t len, bool marker)
{
	if (o->udp < 0 || len <= 1400)
		return send_rtp(o, seq, ts, nal, len, NULL, 0, marker);
	for (size_t off = 1; off < len; off += 1400) {
		size_t n = len - off < 1400 ? len - off : 1400;
		bool last = off + n == len;
		uint8_t fu[2] = { (uint8_t)((nal[0] & 0xe0) | 28),
		                  (uint8_t)((off == 1 ? 0x80 : 0) | (last ? 0x40 : 0) | (nal[0] & 0x1f)) };
		if (send_rtp(o, seq, ts, fu, 2, nal + off, n, marker && last))
			return -1;
	}
	return 0;
}

/* RTCP sender report: now on the NTP clock <-> timestamp ts. */
static int send_sr(struct media_out *o, uint32_t ts)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t sec = (uint64_t)now.tv_sec + 2208988800ull;
	uint64_t frac = ((uint64_t)now.tv_nsec << 32) / 1000000000ull;
	uint8_t p[28] = { 0x80, 200, 0, 6, 0x11, 0x22, 0x33, 0x44 };
	for (int i = 0; i < 4; i++) {
		p[8 + i] = (uint8_t)(sec >> (24 - 8 * i));
		p[12 + i] = (uint8_t)(frac >> (24 - 8 * i));
		p[16 + i] = (uint8_t)(ts >> (24 - 8 * i));
	}
	return send_packet(o, 1, p, sizeof p);
}

static int stream_frames(struct fake *f, struct media_out *o)
{
	static uint8_t nal[BIG_SIZE];
	uint16_t seq = 500;
	for (int n = 0; n < f->frames && !atomic_load(&f->stop); n++) {
		uint32_t ts = TS0 + (uint32_t)n * 3600u;
		if (frame_key(n) && (send_nal(o, &seq, ts, SPS, sizeof SPS, false) ||
		                     send_nal(o, &seq, ts, PPS, sizeof PPS, false)))
			return -1;
		frame_nal(n, nal, frame_size(n));
		if (send_nal(o, &seq, ts, nal, frame_size(n), true))
			return -1;
		if (n == 0 && send_sr(o, ts))
			return -1;
		atomic_fetch_add(&f->frames_sent, 1);
		struct timespec d = { 0, (f->pace_ms ? f->pace_ms : 5) * 1000000L };
		nanosleep(&d, NULL);
	}
	return 0;
}

static void copy_str(const struct rtsp_str *s, char *out, size_t outsz)
{
	size_t n = s && s->len < outsz ? s->len : 0;
	if (s)
		memcpy(out, s->p, n);
	out[n] = '\0';
}

static bool authorized(struct fake *f, const struct rtsp_msg *m, const char *method)
{
	if (!f->digest)
		return true;
	const struct rtsp_str *a = rtsp_msg_header(m, "Authorization");
	return a && rtsp_auth_check(a->p, a->len, REALM, NONCE, USER, PASS, method, false);
}

static int client_ports(const struct rtsp_msg *m, struct media_out *o)
{
	struct rtsp_transport t;
	const struct rtsp_str *v = rtsp_msg_header(m, "Transport");
	if (!v || rtsp_parse_transport(v, &t) || t.client_port[0] < 0)
		return -1;
	o->udp = socket(AF_INET, SOCK_DGRAM, 0);
	o->rtp.sin_family = o->rtcp.sin_family = AF_INET;
	o->rtp.sin_addr.s_addr = o->rtcp.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	o->rtp.sin_port = htons((uint16_t)t.client_port[0]);
	o->rtcp.sin_port = htons((uint16_t)t.client_port[1]);
	return 0;
}

/* One request; returns -1 to drop the connection. */
static int serve_request(struct fake *f, struct media_out *o, const struct rtsp_msg *m)
{
	char method[32];
	copy_str(&m->method, method, sizeof method);
	if (strcmp(method, "OPTIONS") && strcmp(method, "GET_PARAMETER") && !authorized(f, m, method))
		return reply(o->fd, m->cseq, "401 Unauthorized",
		             "WWW-Authenticate: Basic realm=\"" REALM "\"\r\n"
		             "WWW-Authenticate: Digest realm=\"" REALM "\", nonce=\"" NONCE "\"\r\n", "");
	if (!strcmp(method, "GET_PARAMETER"))
		atomic_fetch_add(&f->get_parameters, 1);
	if (!strcmp(method, "OPTIONS") && atomic_load(&f->plays))
		atomic_fetch_add(&f->options_after_play, 1);
	if (!strcmp(method, "OPTIONS") || !strcmp(method, "GET_PARAMETER"))
		return reply(o->fd, m->cseq, "200 OK", f->no_get_parameter ?
		             "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n" :
		             "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n", "");
	if (!strcmp(method, "DESCRIBE")) {
		if (f->mode == FAKE_SILENT_DESCRIBE)
			return 0;
		char base[128];
		snprintf(base, sizeof base, "Content-Base: rtsp://127.0.0.1:%u/cam/\r\n"
		         "Content-Type: application/sdp\r\n", f->port);
		return reply(o->fd, m->cseq, "200 OK", base,
		             "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\na=control:*\r\n"
		             "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
		             "a=fmtp:96 packetization-mode=1\r\na=control:track1\r\n");
	}
	if (!strcmp(method, "SETUP")) {
		copy_str(&m->uri, f->setup_uri, sizeof f->setup_uri);
		char tr[200];
		int timeout = f->timeout_s ? f->timeout_s : 60;
		if (f->udp) {
			if (client_ports(m, o))
				return reply(o->fd, m->cseq, "461 Unsupported Transport", "", "");
			snprintf(tr, sizeof tr, "Transport: RTP/AVP;unicast;client_port=%u-%u;server_port=7000-7001\r\n"
			         "Session: " SESSION ";timeout=%d\r\n", ntohs(o->rtp.sin_port), ntohs(o->rtcp.sin_port),
			         timeout);
		} else {
			snprintf(tr, sizeof tr, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
			         "Session: " SESSION ";timeout=%d\r\n", timeout);
		}
		return reply(o->fd, m->cseq, "200 OK", tr, "");
	}
	if (!strcmp(method, "PLAY")) {
		atomic_fetch_add(&f->plays, 1);
		if (reply(o->fd, m->cseq, "200 OK", "Session: " SESSION "\r\n", "") || stream_frames(f, o))
			return -1;
		return f->mode == FAKE_EOF_AFTER_FRAMES ? -1 : 0;
	}
	if (!strcmp(method, "TEARDOWN")) {
		copy_str(rtsp_msg_header(m, "Session"), f->teardown_session, sizeof f->teardown_session);
		atomic_fetch_add(&f->teardowns, 1);
		reply(o->fd, m->cseq, "200 OK", "", "");
		return -1;
	}
	return reply(o->fd, m->cseq, "501 Not Implemented", "", "");
}

static void serve_connection(struct fake *f, int fd)
{
	static uint8_t buf[65536];
	size_t len = 0;
	struct media_out o = { .fd = fd, .udp = -1 };
	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
		if (n <= 0) {
			atomic_fetch_add(&f->eofs, 1);
			break;
		}
		len += (size_t)n;
		struct rtsp_msg m;
		int used;
		while ((used = rtsp_msg_parse(buf, len, &m)) > 0) {
			if (serve_request(f, &o, &m) < 0)
				goto done;
			memmove(buf, buf + used, len - (size_t)used);
			len -= (size_t)used;
		}
		if (used < 0)
			break;
	}
done:
	if (o.udp >= 0)
		close(o.udp);
	close(fd);
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = f->lfd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&f->connections, 1);
		serve_connection(f, fd);
	}
	return NULL;
}

static void fake_start(struct fake *f)
{
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t alen = sizeof a;
	getsockname(f->lfd, (struct sockaddr *)&a, &alen);
	f->port = ntohs(a.sin_port);
	cr_assert_eq(listen(f->lfd, 8), 0);
	cr_assert_eq(pthread_create(&f->th, NULL, fake_thread, f), 0);
}

static void fake_stop(struct fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->th, NULL);
	close(f->lfd);
}

/* ---- the recorder side ---------------------------------------------------------- */

struct rig {
	struct tu_env env;
	struct ingest *in;
	struct fake fake;
	int32_t recv_batch_ms;       /* 0: the default */
};

/* loops RTSP loops, each connecting at most max_connecting cameras at once
 * (0: the default). */
static void rig_start_loops(struct rig *r, uint32_t timeout_ms, uint32_t loops,
                            uint32_t max_connecting)
{
	tu_env_init(&r->env, 1, 4 << 20, 8);
	tu_env_open(&r->env);
	fake_start(&r->fake);
	struct ingest_config ic = {
		.stg = r->env.stg, .loops = loops, .av_threads = 1, .backoff_min_ms = 50,
		.backoff_max_ms = 200, .timeout_ms = timeout_ms, .max_connecting = max_connecting,
		.recv_batch_ms = r->recv_batch_ms,
	};
	cr_assert_eq(ingest_start(&ic, &r->in), 0);
}

static void rig_start(struct rig *r, uint32_t timeout_ms)
{
	rig_start_loops(r, timeout_ms, 2, 0);
}

static void rig_stop(struct rig *r)
{
	if (r->in)
		ingest_stop(r->in, NULL);
	r->in = NULL;
	fake_stop(&r->fake);
}

static void rig_fini(struct rig *r)
{
	tu_env_fini(&r->env);
}

static struct camera_record camera(const struct rig *r, uint32_t id, const char *pass)
{
	struct camera_record c = { .id = id, .enabled = true };
	snprintf(c.name, sizeof c.name, "cam%u", id);
	snprintf(c.main_url, sizeof c.main_url, "rtsp://127.0.0.1:%u/cam", r->fake.port);
	snprintf(c.transport, sizeof c.transport, "%s", r->fake.udp ? "udp" : "tcp");
	if (pass) {
		snprintf(c.username, sizeof c.username, USER);
		snprintf(c.password, sizeof c.password, "%s", pass);
	}
	return c;
}

static void sleep_ms(int ms)
{
	struct timespec d = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&d, NULL);
}

/* Polls the camera's status until `done` holds or ms pass. */
static struct ingest_camera_status wait_status(struct rig *r, uint32_t id, int ms,
                                               bool (*done)(const struct ingest_camera_status *))
{
	struct ingest_camera_status st;
	for (int t = 0; t <= ms; t += 20) {
		cr_assert_eq(ingest_status(r->in, id, &st), 0);
		if (done(&st))
			break;
		sleep_ms(20);
	}
	return st;
}

static bool all_frames(const struct ingest_camera_status *st)
{
	return st->frames >= 20;
}

/* Reads camera id back and checks frames [0, count) repeated `rounds`
 * times (one round per connection), byte for byte, with increasing times. */
static void check_storage(struct rig *r, uint32_t id, int count, int rounds)
{
	static uint8_t want[BIG_SIZE + 64];
	struct stg_iter *it;
	cr_assert_eq(stg_iter_open(r->env.stg, id, 0, INT64_MAX, &it), 0);
	struct stg_read_frame f;
	int n = 0, rc;
	int64_t prev = 0;
	while ((rc = stg_iter_next(it, &f)) == 1) {
		int k = n % count;
		size_t len = expected_frame(k, want);
		cr_assert_eq(f.size, len, "frame %d: %u bytes, want %zu", n, f.size, len);
		cr_assert(memcmp(f.data, want, len) == 0, "frame %d bytes differ", n);
		cr_assert_eq(f.key, frame_key(k), "frame %d key flag", n);
		cr_assert_eq(f.codec, STG_CODEC_H264);
		cr_assert_gt(f.time_us, prev, "frame %d time not increasing", n);
		prev = f.time_us;
		n++;
	}
	cr_assert_eq(rc, 0);
	stg_iter_close(it);
	cr_assert_eq(n, count * rounds, "%d frames stored, want %d", n, count * rounds);
}

static void records_and_tears_down(bool udp)
{
	struct rig r = { .fake = { .mode = FAKE_OK, .digest = true, .udp = udp, .frames = 20 } };
	rig_start(&r, 2000);
	struct camera_record c = camera(&r, 3, PASS);
	cr_assert_eq(ingest_add(r.in, &c), 0);
	cr_assert_eq(ingest_add(r.in, &c), -EEXIST);
	struct ingest_camera_status st = wait_status(&r, 3, 5000, all_frames);
	cr_assert_eq(st.frames, 20, "frames %llu, last_error \"%s\"", (unsigned long long)st.frames,
	             st.last_error);
	cr_assert_eq(st.state, INGEST_STREAMING);
	cr_assert_eq(st.frames_lost, 0);
	cr_assert_eq(st.frames_dropped, 0);
	cr_assert_eq(st.reconnects, 0);
	cr_assert(st.rtcp_clock, "frame times from the sender report");
	cr_assert_gt(st.streaming_since_us, 0);
	static uint8_t buf[BIG_SIZE + 64];
	uint64_t bytes = 0;
	for (int n = 0; n < 20; n++)
		bytes += expected_frame(n, buf);
	cr_assert_eq(st.bytes, bytes);
	char setup[128];
	snprintf(setup, sizeof setup, "rtsp://127.0.0.1:%u/cam/track1", r.fake.port);
	cr_assert_str_eq(r.fake.setup_uri, setup, "SETUP went to the SDP's control URL");
	cr_assert_eq(ingest_remove(r.in, 3), 0);
	cr_assert_eq(ingest_remove(r.in, 3), -ENOENT);
	for (int t = 0; t < 2000 && !atomic_load(&r.fake.teardowns); t += 20)
		sleep_ms(20);
	cr_assert_eq(atomic_load(&r.fake.teardowns), 1, "TEARDOWN sent");
	cr_assert_str_eq(r.fake.teardown_session, SESSION);
	cr_assert_eq(ingest_status(r.in, 3, &st), -ENOENT);
	rig_stop(&r);
	cr_assert_eq(stg_sync(r.env.stg), 0);
	check_storage(&r, 3, 20, 1);
	rig_fini(&r);
}

Test(rtsp_client, tcp_digest_records_and_tears_down, .timeout = 30)
{
	records_and_tears_down(false);
}

Test(rtsp_client, udp_digest_records_and_tears_down, .timeout = 30)
{
	records_and_tears_down(true);
}

/* The recorder stops while the camera's last frames still wait in the
 * socket (a long receive batch keeps them there): they are read and
 * recorded before TEARDOWN's reply, every one of them, and the final
 * totals count them. */
Test(rtsp_client, stop_records_what_waits_in_the_socket, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_OK, .frames = 20 }, .recv_batch_ms = 5000 };
	rig_start(&r, 2000);
	struct camera_record c = camera(&r, 4, NULL);
	cr_assert_eq(ingest_add(r.in, &c), 0);
	for (int t = 0; t < 5000 && atomic_load(&r.fake.frames_sent) < 20; t += 20)
		sleep_ms(20);
	cr_assert_eq(atomic_load(&r.fake.frames_sent), 20);
	sleep_ms(50);
	struct ingest_camera_status st;
	cr_assert_eq(ingest_status(r.in, 4, &st), 0);
	cr_assert_lt(st.frames, 20, "the receive batch holds frames back (%llu read)",
	             (unsigned long long)st.frames);
	struct ingest_totals fin;
	ingest_stop(r.in, &fin);
	r.in = NULL;
	cr_assert_eq(fin.cameras, 1);
	cr_assert_eq(fin.streaming, 1);
	cr_assert_eq(fin.frames, 20, "the final count has the frames read while stopping (%llu)",
	             (unsigned long long)fin.frames);
	rig_stop(&r);
	cr_assert_eq(atomic_load(&r.fake.teardowns), 1, "TEARDOWN sent");
	cr_assert_eq(stg_sync(r.env.stg), 0);
	check_storage(&r, 4, 20, 1);
	rig_fini(&r);
}

static bool reconnected_twice(const struct ingest_camera_status *st)
{
	return st->reconnects >= 2 && st->frames >= 15;
}

/* The camera hangs up after 5 frames, every time: each connection fails
 * with EOF, backs off, reconnects, and records its 5 frames again. */
Test(rtsp_client, eof_backoff_and_reconnect, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_EOF_AFTER_FRAMES, .frames = 5 } };
	rig_start(&r, 2000);
	struct camera_record c = camera(&r, 8, NULL);
	cr_assert_eq(ingest_add(r.in, &c), 0);
	struct ingest_camera_status st = wait_status(&r, 8, 10000, reconnected_twice);
	cr_assert_geq(st.reconnects, 2);
	cr_assert(strstr(st.last_error, "closed by the camera"), "last_error \"%s\"", st.last_error);
	cr_assert_eq(st.frames_lost, 0);
	cr_assert_eq(st.frames_dropped, 0, "times stay increasing across reconnects");
	/* stop between two connections or during one: whole rounds only */
	cr_assert_eq(ingest_remove(r.in, 8), 0);
	sleep_ms(300);
	int plays = atomic_load(&r.fake.plays);
	struct ingest_totals t;
	ingest_totals(r.in, &t);
	cr_assert_eq(t.cameras, 0);
	rig_stop(&r);
	cr_assert_eq(stg_sync(r.env.stg), 0);
	check_storage(&r, 8, 5, plays);
	rig_fini(&r);
}

static bool failed_once(const struct ingest_camera_status *st)
{
	return st->last_error[0] != 0;
}

/* DESCRIBE never answered: the reply timeout fails the session, which
 * retries; removing it while it negotiates again closes the connection. */
Test(rtsp_client, reply_timeout_and_remove_while_negotiating, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_SILENT_DESCRIBE } };
	rig_start(&r, 300);
	struct camera_record c = camera(&r, 5, NULL);
	cr_assert_eq(ingest_add(r.in, &c), 0);
	struct ingest_camera_status st = wait_status(&r, 5, 3000, failed_once);
	cr_assert(strstr(st.last_error, "DESCRIBE: no reply within 300 ms"), "last_error \"%s\"",
	          st.last_error);
	cr_assert_eq(st.frames, 0);
	for (int t = 0; t < 3000 && atomic_load(&r.fake.connections) < 2; t += 20)
		sleep_ms(20);
	cr_assert_geq(atomic_load(&r.fake.connections), 2, "retried after the backoff");
	/* catch it while connected (its DESCRIBE unanswered) */
	for (int t = 0; t < 3000; t += 10) {
		cr_assert_eq(ingest_status(r.in, 5, &st), 0);
		if (st.state == INGEST_NEGOTIATING)
			break;
		sleep_ms(10);
	}
	cr_assert_eq(st.state, INGEST_NEGOTIATING);
	int eofs = atomic_load(&r.fake.eofs);
	cr_assert_eq(ingest_remove(r.in, 5), 0);
	for (int t = 0; t < 1000 && atomic_load(&r.fake.eofs) == eofs; t += 10)
		sleep_ms(10);
	cr_assert_eq(atomic_load(&r.fake.eofs), eofs + 1, "connection closed on remove");
	cr_assert_eq(atomic_load(&r.fake.teardowns), 0, "no TEARDOWN without a session");
	/* the camera can be added again at once */
	cr_assert_eq(ingest_add(r.in, &c), 0);
	rig_stop(&r);
	rig_fini(&r);
}

/* Admission: with one loop allowed one negotiation at a time, three
 * cameras of a server that never answers DESCRIBE take turns: at no
 * moment do two of them connect or negotiate, the others wait (IDLE), and
 * each one gets its turn (fails by the reply timeout, backs off, waits
 * again). With the default (256 at once) all three negotiate together,
 * which is what this test would see without the limit. */
Test(rtsp_client, max_connecting_takes_turns, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_SILENT_DESCRIBE } };
	rig_start_loops(&r, 200, 1, 1);
	for (uint32_t id = 1; id <= 3; id++) {
		struct camera_record c = camera(&r, id, NULL);
		cr_assert_eq(ingest_add(r.in, &c), 0);
	}
	int most_active = 0, most_idle = 0;
	bool failed[4] = { false };
	for (int t = 0; t < 4000 && !(failed[1] && failed[2] && failed[3]); t += 10) {
		int active = 0, idle = 0;
		for (uint32_t id = 1; id <= 3; id++) {
			struct ingest_camera_status st;
			cr_assert_eq(ingest_status(r.in, id, &st), 0);
			active += st.state == INGEST_CONNECTING || st.state == INGEST_NEGOTIATING;
			idle += st.state == INGEST_IDLE;
			failed[id] |= strstr(st.last_error, "DESCRIBE: no reply") != NULL;
		}
		most_active = active > most_active ? active : most_active;
		most_idle = idle > most_idle ? idle : most_idle;
		sleep_ms(10);
	}
	cr_assert_eq(most_active, 1, "%d cameras negotiated at once with max_connecting 1",
	             most_active);
	cr_assert_geq(most_idle, 2, "the others waited their turn");
	cr_assert(failed[1] && failed[2] && failed[3], "every camera had its turn: %d %d %d",
	          failed[1], failed[2], failed[3]);
	/* removing waiting and negotiating cameras leaves nothing behind */
	for (uint32_t id = 1; id <= 3; id++)
		cr_assert_eq(ingest_remove(r.in, id), 0);
	struct ingest_camera_status st;
	cr_assert_eq(ingest_status(r.in, 2, &st), -ENOENT);
	rig_stop(&r);
	rig_fini(&r);
}

/* A wrong password: 401 twice, "credentials refused", nothing recorded;
 * another camera of the same server records all its frames meanwhile. */
Test(rtsp_client, wrong_password_refused_others_unaffected, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_OK, .digest = true, .frames = 20 } };
	rig_start(&r, 2000);
	struct camera_record bad = camera(&r, 11, "not-the-password");
	struct camera_record good = camera(&r, 12, PASS);
	cr_assert_eq(ingest_add(r.in, &bad), 0);
	struct ingest_camera_status st = wait_status(&r, 11, 3000, failed_once);
	cr_assert(strstr(st.last_error, "credentials refused"), "last_error \"%s\"", st.last_error);
	cr_assert(!strstr(st.last_error, "not-the-password"));
	cr_assert_eq(ingest_add(r.in, &good), 0);
	st = wait_status(&r, 12, 5000, all_frames);
	cr_assert_eq(st.frames, 20, "good camera: %llu frames, \"%s\"", (unsigned long long)st.frames,
	             st.last_error);
	cr_assert_eq(ingest_status(r.in, 11, &st), 0);
	cr_assert_eq(st.frames, 0);
	struct ingest_totals t;
	ingest_totals(r.in, &t);
	cr_assert_eq(t.cameras, 2);
	cr_assert_eq(t.streaming, 1);
	cr_assert_eq(t.frames, 20);
	rig_stop(&r);
	cr_assert_eq(stg_sync(r.env.stg), 0);
	check_storage(&r, 12, 20, 1);
	check_storage(&r, 11, 20, 0);
	rig_fini(&r);
}

Test(rtsp_client, refuses_bad_records)
{
	struct rig r = { .fake = { .mode = FAKE_OK } };
	rig_start(&r, 1000);
	struct camera_record c = camera(&r, 4, NULL);
	c.enabled = false;
	cr_assert_eq(ingest_add(r.in, &c), -EINVAL);
	c = camera(&r, 4, NULL);
	snprintf(c.transport, sizeof c.transport, "sctp");
	cr_assert_eq(ingest_add(r.in, &c), -EINVAL);
	cr_assert_eq(ingest_remove(r.in, 4), -ENOENT);
	struct ingest_camera_status st;
	cr_assert_eq(ingest_status(r.in, 4, &st), -ENOENT);
	rig_stop(&r);
	rig_fini(&r);
}

static bool three_seconds(const struct ingest_camera_status *st)
{
	return st->frames >= 75;
}

static double g_want_kbps;

static bool rates_right(const struct ingest_camera_status *st)
{
	return st->fps > 20 && st->fps < 28 && st->bitrate_kbps > g_want_kbps * 0.7 &&
	       st->bitrate_kbps < g_want_kbps * 1.3;
}

/* A camera paced at 25 fps, addressed by name, with a 2 s session
 * timeout: the status reports ~25 fps and the bitrate of its frames over
 * the last whole seconds, and GET_PARAMETER keeps the session alive. */
Test(rtsp_client, status_rates, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_OK, .frames = 100, .pace_ms = 40, .timeout_s = 2 } };
	rig_start(&r, 2000);
	struct camera_record c = camera(&r, 21, NULL);
	/* by name: the resolver thread, then its addresses in turn */
	snprintf(c.main_url, sizeof c.main_url, "rtsp://localhost:%u/cam", r.fake.port);
	cr_assert_eq(ingest_add(r.in, &c), 0);
	struct ingest_camera_status st = wait_status(&r, 21, 6000, three_seconds);
	cr_assert_eq(st.state, INGEST_STREAMING);
	/* frames 25..75 average about 1.9 KB: ~380 kbit/s at 25 fps */
	static uint8_t buf[BIG_SIZE + 64];
	double bytes = 0;
	for (int n = 25; n < 75; n++)
		bytes += (double)expected_frame(n, buf);
	g_want_kbps = bytes / 50 * 25 * 8 / 1000;
	/* The rates cover the last whole seconds: on a loaded machine the
	 * first ones may hold a late or batched second; they must settle
	 * within a second or so while the camera streams. */
	st = wait_status(&r, 21, 1500, rates_right);
	double want = g_want_kbps;
	cr_assert(st.fps > 20 && st.fps < 28, "fps %.2f", st.fps);
	cr_assert(st.bitrate_kbps > want * 0.7 && st.bitrate_kbps < want * 1.3,
	          "bitrate %.1f kbit/s, expected about %.1f", st.bitrate_kbps, want);
	/* session timeout 2 s: a GET_PARAMETER every second (the server reads
	 * them once its 4 s of frames are out) */
	for (int t = 0; t < 3000 && atomic_load(&r.fake.get_parameters) < 3; t += 20)
		sleep_ms(20);
	int ka = atomic_load(&r.fake.get_parameters);
	cr_assert(ka >= 3 && ka <= 5, "%d keep-alives in ~4 s", ka);
	cr_assert_eq(atomic_load(&r.fake.options_after_play), 0);
	rig_stop(&r);
	rig_fini(&r);
}

/* A name that does not resolve: the session fails with the resolver's
 * error, backs off and tries again; nothing else is disturbed. */
Test(rtsp_client, unknown_host_fails_and_retries, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_OK } };
	rig_start(&r, 1000);
	struct camera_record c = camera(&r, 31, NULL);
	snprintf(c.main_url, sizeof c.main_url, "rtsp://nvr-test-host.invalid/cam");
	cr_assert_eq(ingest_add(r.in, &c), 0);
	struct ingest_camera_status st = wait_status(&r, 31, 5000, failed_once);
	cr_assert(strstr(st.last_error, "resolve nvr-test-host.invalid: no such host"), "last_error \"%s\"",
	          st.last_error);
	for (int t = 0; t < 3000 && st.reconnects < 1; t += 20) {
		sleep_ms(20);
		cr_assert_eq(ingest_status(r.in, 31, &st), 0);
	}
	cr_assert_geq(st.reconnects, 1);
	cr_assert_eq(atomic_load(&r.fake.connections), 0);
	rig_stop(&r);
	rig_fini(&r);
}

/* A server that does not list GET_PARAMETER gets OPTIONS as keep-alive. */
Test(rtsp_client, keepalive_falls_back_to_options, .timeout = 30)
{
	struct rig r = { .fake = { .mode = FAKE_OK, .frames = 60, .pace_ms = 40, .timeout_s = 2,
	                           .no_get_parameter = true } };
	rig_start(&r, 2000);
	struct camera_record c = camera(&r, 41, NULL);
	cr_assert_eq(ingest_add(r.in, &c), 0);
	for (int t = 0; t < 5000 && atomic_load(&r.fake.options_after_play) < 2; t += 20)
		sleep_ms(20);
	cr_assert_geq(atomic_load(&r.fake.options_after_play), 2);
	cr_assert_eq(atomic_load(&r.fake.get_parameters), 0);
	rig_stop(&r);
	rig_fini(&r);
}
