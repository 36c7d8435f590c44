/*
 * resolver.h - host names to addresses off the event loops.
 *
 * getaddrinfo() may block for seconds (DNS), and an event loop must never
 * block, so names are resolved by one small thread shared by all loops:
 * a loop submits a request, the thread resolves it and posts the request
 * back to the loop (loop_post) with its result. Numeric addresses never
 * come here (the RTSP client parses them itself).
 */
#ifndef NVR_RESOLVER_H
#define NVR_RESOLVER_H

#include <sys/socket.h>

#include "loop.h"

#define RESOLVER_MAX_ADDRS 4

struct resolver;

struct resolver_req {
	struct loop_cmd cmd;            /* cmd.fn runs on `loop` with the result */
	struct loop *loop;
	char host[256];
	int port;
	/* result: the addresses in getaddrinfo's order (RFC 6724), for the
	 * caller to try one after the other */
	int err;                        /* 0, -ENOENT (no address), -ECANCELED, ... */
	int count;
	struct sockaddr_storage addr[RESOLVER_MAX_ADDRS];
	socklen_t addrlen[RESOLVER_MAX_ADDRS];
	struct resolver_req *next;      /* resolver's queue */
};

int resolver_start(struct resolver **out);

/* Queues req; its cmd comes back to req->loop exactly once. */
void resolver_submit(struct resolver *r, struct resolver_req *req);

/* Answers every queued request with -ECANCELED (the one being resolved
 * finishes normally) and refuses new ones the same way. */
void resolver_cancel_all(struct resolver *r);

/* Waits for the thread and frees; call after resolver_cancel_all and after
 * the loops that submitted have stopped. */
void resolver_stop(struct resolver *r);

#endif
