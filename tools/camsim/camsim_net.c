/*
 * camsim_net.c - listeners, the epoll loop and the life of a connection.
 *
 * Each listener is an IPv4 address and port: a TCP socket for RTSP and a
 * pair of UDP sockets (even RTP port, RTCP port + 1) shared by all of its
 * UDP sessions; RTCP arriving there is matched to its session by the
 * client's address and port (a small hash table) and only keeps the session
 * alive. Several listeners let 30,000 clients connect without running out
 * of ephemeral ports on one address pair.
 *
 * Everything is edge-triggered: connections register EPOLLIN | EPOLLOUT
 * once and never change their registration; a connection that hits a full
 * socket sets CS_F_BLOCKED and the next EPOLLOUT resumes it. Closed
 * connections are unlinked at once but freed only after the current batch
 * of events, which may still name them.
 *
 * Once a second a sweep closes connections silent (no request, no RTCP)
 * for twice the session timeout, applies drop faults to sessions that are
 * blocked, and re-arms listeners paused for lack of descriptors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "camsim.h"
#include "../../nvr/log.h"

#define EVENTS_PER_WAIT 1024
#define ACCEPTS_PER_EVENT 256
#define UDP_SNDBUF (4 << 20)
#define UDP_BATCH 64
#define SWEEP_EVERY_US 1000000LL

uint64_t cs_random(struct cs_server *s)
{
	/* xorshift64*, seeded from getrandom() */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 0x2545F4914F6CDD1Dull;
}

/* ---- UDP RTCP demultiplexing ------------------------------------------------- */

static uint32_t hash_key(uint32_t ip, uint16_t port, uint32_t cap)
{
	uint64_t k = ((uint64_t)ip << 16 | port) * 0x9E3779B97F4A7C15ull;
	return (uint32_t)(k >> 32) & (cap - 1);
}

static int hash_grow(struct cs_server *s)
{
	uint32_t cap = s->hash_cap ? s->hash_cap * 2 : 1024;
	struct cs_conn **h = calloc(cap, sizeof *h);
	if (!h)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->hash_cap; i++)
		for (struct cs_conn *c = s->hash[i], *next; c; c = next) {
			next = c->hash_next;
			uint32_t b = hash_key(c->peer.sin_addr.s_addr, c->peer_rtcp_port, cap);
			c->hash_next = h[b];
			h[b] = c;
		}
	free(s->hash);
	s->hash = h;
	s->hash_cap = cap;
	return 0;
}

void cs_hash_remove(struct cs_server *s, struct cs_conn *c)
{
	if (!(c->flags & CS_F_HASHED))
		return;
	uint32_t b = hash_key(c->peer.sin_addr.s_addr, c->peer_rtcp_port, s->hash_cap);
	for (struct cs_conn **p = &s->hash[b]; *p; p = &(*p)->hash_next)
		if (*p == c) {
			*p = c->hash_next;
			break;
		}
	c->hash_next = NULL;
	c->flags &= (uint8_t)~CS_F_HASHED;
	s->hash_len--;
}

int cs_hash_add(struct cs_server *s, struct cs_conn *c)
{
	cs_hash_remove(s, c);
	if (s->hash_len >= s->hash_cap && hash_grow(s))
		return -ENOMEM;
	uint32_t b = hash_key(c->peer.sin_addr.s_addr, c->peer_rtcp_port, s->hash_cap);
	c->hash_next = s->hash[b];
	s->hash[b] = c;
	c->flags |= CS_F_HASHED;
	s->hash_len++;
	return 0;
}

static struct cs_conn *hash_find(struct cs_server *s, const struct sockaddr_in *from)
{
	if (!s->hash_cap)
		return NULL;
	uint32_t b = hash_key(from->sin_addr.s_addr, from->sin_port, s->hash_cap);
	for (struct cs_conn *c = s->hash[b]; c; c = c->hash_next)
		if (c->peer.sin_addr.s_addr == from->sin_addr.s_addr &&
		    c->peer_rtcp_port == from->sin_port)
			return c;
	return NULL;
}

/* ---- listeners ------------------------------------------------------------------ */

static int parse_addr(const char *text, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof host || !colon[1])
		return -EINVAL;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || colon[1] < '0' || colon[1] > '9' || port > 65535)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

/* Socket options that tune rather than decide: a failure is logged the
 * first time (*logged) and the socket is used as it is. */
static void tune(int fd, int level, int name, int value, const char *what, bool *logged)
{
	if (!setsockopt(fd, level, name, &value, sizeof value) || *logged)
		return;
	*logged = true;
	nvr_log("warn", "camsim", "event=sockopt_failed option=%s error=\"%s\"", what,
	        strerror(errno));
}

static int udp_socket(const struct sockaddr_in *addr, uint16_t port, int *fd_out)
{
	static bool logged;
	int big = UDP_SNDBUF;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = *addr;
	a.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&a, sizeof a)) {
		int err = -errno;
		close(fd);
		return err;
	}
	/* A big send buffer absorbs bursts of key frames; beyond wmem_max
	 * only root may go (SO_SNDBUFFORCE). */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big))
		tune(fd, SOL_SOCKET, SO_SNDBUF, big, "SO_SNDBUF", &logged);
	*fd_out = fd;
	return 0;
}

/* An even RTP port and the odd RTCP port after it, both free. */
static int udp_pair(struct cs_listener *l)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		int rtp, rtcp, err = udp_socket(&l->addr, 0, &rtp);
		if (err)
			return err;
		struct sockaddr_in a;
		socklen_t alen = sizeof a;
		if (getsockname(rtp, (struct sockaddr *)&a, &alen)) {
			err = -errno;
			close(rtp);
			return err;
		}
		uint16_t port = ntohs(a.sin_port);
		if (port % 2 == 0 && port < 65535 && !udp_socket(&l->addr, port + 1, &rtcp)) {
			l->rtp.fd = rtp;
			l->rtcp.fd = rtcp;
			l->rtp_port = port;
			l->rtcp_port = port + 1;
			return 0;
		}
		close(rtp);
	}
	return -EADDRINUSE;
}

int cs_listen(struct cs_server *s, const char *addr_port)
{
	if (s->nlisteners == CS_MAX_LISTENERS)
		return -E2BIG;
	struct cs_listener *l = &s->listeners[s->nlisteners];
	uint16_t idx = (uint16_t)s->nlisteners;
	int one = 1, err;

	memset(l, 0, sizeof *l);
	l->tcp = (struct cs_sock){ CS_OBJ_LISTEN, idx, -1 };
	l->rtp = (struct cs_sock){ CS_OBJ_UDP_RTP, idx, -1 };
	l->rtcp = (struct cs_sock){ CS_OBJ_UDP_RTCP, idx, -1 };
	if (parse_addr(addr_port, &l->addr))
		return -EINVAL;
	l->tcp.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->tcp.fd < 0)
		return -errno;
	if (setsockopt(l->tcp.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(l->tcp.fd, (struct sockaddr *)&l->addr, sizeof l->addr) ||
	    listen(l->tcp.fd, 65535)) {
		err = -errno;
		goto fail;
	}
	socklen_t alen = sizeof l->addr;        /* the port chosen for port 0 */
	if (getsockname(l->tcp.fd, (struct sockaddr *)&l->addr, &alen)) {
		err = -errno;
		goto fail;
	}
	err = udp_pair(l);
	if (err)
		goto fail;
	s->nlisteners++;
	nvr_log("info", "camsim", "event=listening addr=%s:%u rtp_port=%u rtcp_port=%u",
	        inet_ntoa(l->addr.sin_addr), ntohs(l->addr.sin_port), l->rtp_port, l->rtcp_port);
	return 0;
fail:
	close(l->tcp.fd);
	l->tcp.fd = -1;
	return err;
}

static int epoll_add(struct cs_server *s, int fd, uint32_t events, void *obj)
{
	struct epoll_event ev = { .events = events, .data.ptr = obj };
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* The shared RTP socket asks for EPOLLOUT only while sessions wait on it:
 * a UDP socket signals writability for every datagram it frees. */
int cs_udp_want_writable(struct cs_server *s, struct cs_listener *l, bool on)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLET | (on ? EPOLLOUT : 0),
		.data.ptr = &l->rtp,
	};
	return epoll_ctl(s->epfd, EPOLL_CTL_MOD, l->rtp.fd, &ev) ? -errno : 0;
}

/* ---- connections ---------------------------------------------------------------- */

static int conn_add(struct cs_server *s, int fd, uint16_t listener, const struct sockaddr_in *peer,
                    int64_t now)
{
	if (s->nconns == s->conns_cap) {
		uint32_t n = s->conns_cap ? s->conns_cap * 2 : 1024;
		struct cs_conn **a = realloc(s->conns, n * sizeof *a);
		if (!a)
			return -ENOMEM;
		s->conns = a;
		s->conns_cap = n;
	}
	struct cs_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->kind = CS_OBJ_CONN;
	c->fd = fd;
	c->listener = listener;
	c->heap_idx = -1;
	c->peer = *peer;
	c->nonce = cs_random(s);
	c->last_seen_us = now;
	int err = epoll_add(s, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, c);
	if (err) {
		free(c);
		return err;
	}
	c->slot = s->nconns;
	s->conns[s->nconns++] = c;
	return 0;
}

void cs_conn_close(struct cs_server *s, struct cs_conn *c, const char *reason)
{
	if (c->state == CS_ST_CLOSED)
		return;
	if (c->state != CS_ST_INIT)
		nvr_log("info", "camsim", "event=session_close camera=%" PRIu32 " session=%016"
		        PRIx64 " reason=%s frames_sent=%" PRIu64, c->camera, c->session_id, reason,
		        c->frames_sent);
	cs_heap_remove(s, c);
	cs_udp_wait_remove(s, c);
	cs_hash_remove(s, c);
	close(c->fd);
	c->fd = -1;
	free(c->rx);
	free(c->out);
	c->rx = c->out = NULL;
	struct cs_conn *last = s->conns[--s->nconns];
	s->conns[c->slot] = last;
	last->slot = c->slot;
	c->state = CS_ST_CLOSED;
	c->dead_next = s->dead;
	s->dead = c;
}

static void free_dead(struct cs_server *s)
{
	while (s->dead) {
		struct cs_conn *c = s->dead;
		s->dead = c->dead_next;
		free(c);
	}
}

static void pause_listener(struct cs_server *s, struct cs_listener *l, int err)
{
	if (l->paused)
		return;
	if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, l->tcp.fd, NULL))
		return;                       /* still registered: accept is retried */
	l->paused = true;
	nvr_log("warn", "camsim", "event=accept_paused addr=%s:%u connections=%" PRIu32
	        " error=\"%s\"", inet_ntoa(l->addr.sin_addr), ntohs(l->addr.sin_port),
	        s->nconns, strerror(-err));
}

static void on_accept(struct cs_server *s, struct cs_listener *l, int64_t now)
{
	static bool logged[2];
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof peer;
		int fd = accept4(l->tcp.fd, (struct sockaddr *)&peer, &plen,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				pause_listener(s, l, -errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			         errno != ECONNABORTED)
				nvr_log("warn", "camsim", "event=accept_error error=\"%s\"", strerror(errno));
			return;
		}
		tune(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY", &logged[0]);
		tune(fd, SOL_SOCKET, SO_SNDBUF, CS_TCP_SNDBUF, "SO_SNDBUF", &logged[1]);
		int err = conn_add(s, fd, (uint16_t)(l - s->listeners), &peer, now);
		if (err) {
			close(fd);
			pause_listener(s, l, err);
			return;
		}
	}
}

/* Reads RTCP (and whatever else) arriving on a shared UDP socket. */
static void on_udp_readable(struct cs_server *s, struct cs_sock *sock, int64_t now)
{
	struct mmsghdr msgs[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_in from[UDP_BATCH];
	const size_t slice = 2048;
	for (;;) {
		for (int i = 0; i < UDP_BATCH; i++) {
			iov[i] = (struct iovec){ s->rxbuf + (size_t)i * slice, slice };
			msgs[i] = (struct mmsghdr){ .msg_hdr = {
				.msg_name = &from[i], .msg_namelen = sizeof from[i],
				.msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		int n = recvmmsg(sock->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;                       /* EAGAIN; ICMP errors need no answer */
		if (sock->kind != CS_OBJ_UDP_RTCP)
			continue;
		for (int i = 0; i < n; i++) {
			struct cs_conn *c = hash_find(s, &from[i]);
			if (c)
				c->last_seen_us = now;
		}
	}
}

static void on_conn_event(struct cs_server *s, struct cs_conn *c, uint32_t ev, int64_t now)
{
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		cs_rtsp_readable(s, c, now);
		if (c->state == CS_ST_CLOSED)
			return;
	}
	if (ev & EPOLLOUT)
		cs_stream_writable(s, c, now);
}

static void on_event(struct cs_server *s, const struct epoll_event *e, int64_t now)
{
	uint8_t kind = *(const uint8_t *)e->data.ptr;
	if (kind == CS_OBJ_CONN) {
		struct cs_conn *c = e->data.ptr;
		if (c->state != CS_ST_CLOSED)
			on_conn_event(s, c, e->events, now);
		return;
	}
	struct cs_sock *sock = e->data.ptr;
	if (kind == CS_OBJ_SIGNAL) {
		struct signalfd_siginfo si;
		while (read(sock->fd, &si, sizeof si) == (ssize_t)sizeof si)
			s->stop = (int)si.ssi_signo;
		return;
	}
	struct cs_listener *l = &s->listeners[sock->listener];
	if (kind == CS_OBJ_LISTEN) {
		on_accept(s, l, now);
		return;
	}
	if (e->events & EPOLLIN)
		on_udp_readable(s, sock, now);
	if (kind == CS_OBJ_UDP_RTP && (e->events & EPOLLOUT))
		cs_stream_udp_writable(s, l, now);
}

static void sweep(struct cs_server *s, int64_t now)
{
	const int64_t silent = 2LL * CS_SESSION_TIMEOUT_S * 1000000;
	for (uint32_t i = s->nconns; i-- > 0;) {
		struct cs_conn *c = s->conns[i];
		const struct cs_fault *f = s->faults && c->camera ? &s->faults[c->camera - 1] : NULL;
		if (now - c->last_seen_us > silent)
			cs_conn_close(s, c, "timeout");
		else if (f && f->drop_s > 0 && c->state == CS_ST_PLAYING &&
		         now >= c->play_mono_us + (int64_t)(f->drop_s * 1e6))
			cs_conn_close(s, c, "fault_drop");
	}
	for (unsigned i = 0; i < s->nlisteners; i++) {
		struct cs_listener *l = &s->listeners[i];
		if (l->paused && !epoll_add(s, l->tcp.fd, EPOLLIN, &l->tcp))
			l->paused = false;
	}
}

static int setup_loop(struct cs_server *s)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		seed = (uint64_t)nvr_now_us() ^ (uint64_t)getpid() << 32;
	s->rng = seed | 1;

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	s->sig = (struct cs_sock){ CS_OBJ_SIGNAL, 0, signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC) };
	if (s->sig.fd < 0)
		return -errno;
	int err = epoll_add(s, s->sig.fd, EPOLLIN, &s->sig);
	for (unsigned i = 0; i < s->nlisteners && !err; i++) {
		struct cs_listener *l = &s->listeners[i];
		err = epoll_add(s, l->tcp.fd, EPOLLIN, &l->tcp);
		if (!err)
			err = epoll_add(s, l->rtp.fd, EPOLLIN | EPOLLET, &l->rtp);
		if (!err)
			err = epoll_add(s, l->rtcp.fd, EPOLLIN | EPOLLET, &l->rtcp);
	}
	return err;
}

/* Milliseconds until the next frame is due (rounded up), the next sweep
 * or the end of the run, whichever comes first. */
static int wait_ms(const struct cs_server *s, int64_t now)
{
	int64_t next = s->next_sweep_us;
	if (s->heap_len && s->heap[0].due_us < next)
		next = s->heap[0].due_us;
	if (s->end_mono_us && s->end_mono_us < next)
		next = s->end_mono_us;
	if (next <= now)
		return 0;
	return (int)((next - now + 999) / 1000);
}

int cs_server_run(struct cs_server *s)
{
	static struct epoll_event events[EVENTS_PER_WAIT];
	int err = setup_loop(s);
	if (err)
		return err;
	int64_t now = nvr_mono_us();
	s->next_sweep_us = now + SWEEP_EVERY_US;
	while (!s->stop) {
		int n = epoll_wait(s->epfd, events, EVENTS_PER_WAIT, wait_ms(s, now));
		if (n < 0 && errno != EINTR)
			return -errno;
		now = nvr_mono_us();
		for (int i = 0; i < n; i++)
			on_event(s, &events[i], now);
		free_dead(s);
		now = nvr_mono_us();
		cs_stream_run_due(s, now);
		if (now >= s->next_sweep_us) {
			sweep(s, now);
			s->next_sweep_us = now + SWEEP_EVERY_US;
		}
		free_dead(s);
		if (s->end_mono_us && now >= s->end_mono_us)
			break;
	}
	return 0;
}

void cs_server_close(struct cs_server *s)
{
	while (s->nconns)
		cs_conn_close(s, s->conns[s->nconns - 1], "shutdown");
	free_dead(s);
	for (unsigned i = 0; i < s->nlisteners; i++) {
		close(s->listeners[i].tcp.fd);
		close(s->listeners[i].rtp.fd);
		close(s->listeners[i].rtcp.fd);
	}
	s->nlisteners = 0;
	if (s->sig.fd >= 0)
		close(s->sig.fd);
	if (s->epfd >= 0)
		close(s->epfd);
	s->sig.fd = s->epfd = -1;
	free(s->conns);
	free(s->heap);
	free(s->hash);
	s->conns = NULL;
	s->heap = NULL;
	s->hash = NULL;
}
