/*
 * resolver.c - one thread running getaddrinfo() for the event loops (see
 * resolver.h). Requests wait in a FIFO; a name gets up to
 * RESOLVER_MAX_ADDRS TCP addresses, in getaddrinfo's order. Results travel back as loop commands, so the loop that asked sees
 * them on its own thread.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "resolver.h"

struct resolver {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct resolver_req *head, *tail;
	bool cancelled;                 /* refuse and answer everything */
	bool quit;
};

static int gai_errno(int rc)
{
	switch (rc) {
	case EAI_NONAME:
	case EAI_NODATA:
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	default:
		return -EINVAL;
	}
}

static void resolve(struct resolver_req *req)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char port[16];
	snprintf(port, sizeof port, "%d", req->port);
	int rc = getaddrinfo(req->host, port, &hints, &res);
	if (rc) {
		req->err = gai_errno(rc);
		return;
	}
	req->count = 0;
	for (struct addrinfo *ai = res; ai && req->count < RESOLVER_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof req->addr[0])
			continue;
		memcpy(&req->addr[req->count], ai->ai_addr, ai->ai_addrlen);
		req->addrlen[req->count++] = ai->ai_addrlen;
	}
	req->err = req->count ? 0 : -ENOENT;
	freeaddrinfo(res);
}

static void *resolver_thread(void *arg)
{
	struct resolver *r = arg;
	pthread_setname_np(pthread_self(), "nvr-resolver");
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->head && !r->quit)
			pthread_cond_wait(&r->cv, &r->mu);
		if (!r->head)
			break;
		struct resolver_req *req = r->head;
		r->head = req->next;
		if (!r->head)
			r->tail = NULL;
		pthread_mutex_unlock(&r->mu);
		resolve(req);
		loop_post(req->loop, &req->cmd);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int resolver_start(struct resolver **out)
{
	struct resolver *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	int err = -pthread_create(&r->thread, NULL, resolver_thread, r);
	if (err) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

void resolver_submit(struct resolver *r, struct resolver_req *req)
{
	req->next = NULL;
	req->err = 0;
	req->count = 0;
	pthread_mutex_lock(&r->mu);
	if (r->cancelled) {
		pthread_mutex_unlock(&r->mu);
		req->err = -ECANCELED;
		loop_post(req->loop, &req->cmd);
		return;
	}
	if (r->tail)
		r->tail->next = req;
	else
		r->head = req;
	r->tail = req;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void resolver_cancel_all(struct resolver *r)
{
	pthread_mutex_lock(&r->mu);
	r->cancelled = true;
	struct resolver_req *req = r->head;
	r->head = r->tail = NULL;
	pthread_mutex_unlock(&r->mu);
	while (req) {
		struct resolver_req *next = req->next;
		req->err = -ECANCELED;
		loop_post(req->loop, &req->cmd);
		req = next;
	}
}

void resolver_stop(struct resolver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->quit = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
