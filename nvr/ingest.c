/*
 * ingest.c - the ingest front door (ingest.h): starts the RTSP event loops
 * (rtsp_client.h, one shard per loop thread), the resolver thread they
 * share and the libavformat worker pool (avsource.h), and routes each
 * camera: rtsp:// URLs to shard (id modulo loops), everything else to the
 * pool. This file is the only place that knows both kinds of source.
 *
 * Stop order: the resolver stops taking requests first (sessions waiting
 * for a name get -ECANCELED at once), then every loop tears its sessions
 * down and ends, then the pool, then the resolver thread is joined.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "avsource.h"
#include "ingest.h"
#include "log.h"
#include "resolver.h"
#include "rtsp_client.h"

#define MAX_LOOPS 256

struct ingest {
	struct ingest_config cfg;
	struct resolver *resolver;
	struct rtsp_shard **shards;
	uint32_t nshards;
	struct avsource_pool *av;
};

const char *ingest_state_name(enum ingest_state s)
{
	switch (s) {
	case INGEST_IDLE: return "idle";
	case INGEST_CONNECTING: return "connecting";
	case INGEST_NEGOTIATING: return "negotiating";
	case INGEST_STREAMING: return "streaming";
	case INGEST_BACKOFF: return "backoff";
	case INGEST_WAITING_WORKER: return "waiting_worker";
	}
	return "unknown";
}

void ingest_failures_note(struct ingest_failures *f, int64_t now_us)
{
	f->at_us[f->next] = now_us;
	f->next = (f->next + 1) % INGEST_FAILURE_RING;
	if (f->count < INGEST_FAILURE_RING)
		f->count++;
}

uint32_t ingest_failures_within(const struct ingest_failures *f, int64_t now_us,
                                int64_t window_us, int64_t *last_us)
{
	uint32_t n = 0;
	*last_us = 0;
	for (uint32_t i = 0; i < f->count; i++) {
		int64_t t = f->at_us[(f->next + INGEST_FAILURE_RING - 1 - i) % INGEST_FAILURE_RING];
		if (i == 0)
			*last_us = t;
		n += t >= now_us - window_us;
	}
	return n;
}

bool ingest_is_repeat_failure(const struct ingest_camera_status *st)
{
	return st->failures_24h >= INGEST_REPEAT_FAILURES;
}

void ingest_config_defaults(struct ingest_config *c)
{
	if (!c->loops)
		c->loops = 1;
	if (c->loops > MAX_LOOPS)
		c->loops = MAX_LOOPS;
	if (!c->av_threads)
		c->av_threads = 4;
	if (!c->udp_port_min && !c->udp_port_max) {
		c->udp_port_min = 50000;
		c->udp_port_max = 59999;
	}
	if (!c->backoff_min_ms)
		c->backoff_min_ms = 1000;
	if (!c->backoff_max_ms)
		c->backoff_max_ms = 60000;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (!c->timeout_ms)
		c->timeout_ms = 10000;
	if (!c->max_clock_skew_ms)
		c->max_clock_skew_ms = 5000;
	if (!c->recv_buffer_max)
		c->recv_buffer_max = 256u << 10;
	if (!c->recv_batch_ms)
		c->recv_batch_ms = 100;
	if (!c->max_connecting)
		c->max_connecting = 256;
}

static bool is_rtsp(const char *url)
{
	return !strncasecmp(url, "rtsp://", 7);
}

static struct rtsp_shard *shard_of(struct ingest *in, uint32_t id)
{
	return in->shards[id % in->nshards];
}

int ingest_start(const struct ingest_config *cfg, struct ingest **out)
{
	if (!cfg || !cfg->stg)
		return -EINVAL;
	struct ingest *in = calloc(1, sizeof *in);
	if (!in)
		return -ENOMEM;
	in->cfg = *cfg;
	ingest_config_defaults(&in->cfg);
	if (in->cfg.udp_port_max <= in->cfg.udp_port_min) {
		free(in);
		return -EINVAL;
	}
	in->shards = calloc(in->cfg.loops, sizeof *in->shards);
	int err = in->shards ? resolver_start(&in->resolver) : -ENOMEM;
	for (uint32_t i = 0; !err && i < in->cfg.loops; i++) {
		err = rtsp_shard_start(&in->cfg, i, in->cfg.loops, in->resolver, &in->shards[i]);
		if (!err)
			in->nshards++;
	}
	if (!err)
		err = avsource_pool_start(&in->cfg, &in->av);
	if (err)
		goto fail;
	nvr_log("info", "ingest", "event=ingest_started loops=%u av_threads=%u udp_ports=%u-%u "
	        "timeout_ms=%u backoff_ms=%u-%u recv_buffer_max=%u", in->cfg.loops,
	        in->cfg.av_threads, in->cfg.udp_port_min, in->cfg.udp_port_max, in->cfg.timeout_ms,
	        in->cfg.backoff_min_ms, in->cfg.backoff_max_ms, in->cfg.recv_buffer_max);
	*out = in;
	return 0;
fail:
	nvr_log("error", "ingest", "event=ingest_start_failed error=\"%s\"", strerror(-err));
	ingest_stop(in, NULL);
	return err;
}

int ingest_add(struct ingest *in, const struct camera_record *c)
{
	if (!c->enabled || !c->id)
		return -EINVAL;
	struct ingest_camera_status st;
	if (is_rtsp(c->main_url)) {
		if (avsource_status(in->av, c->id, &st) != -ENOENT)
			return -EEXIST;
		return rtsp_shard_add(shard_of(in, c->id), c);
	}
	if (rtsp_shard_status(shard_of(in, c->id), c->id, &st) != -ENOENT)
		return -EEXIST;
	return avsource_add(in->av, c);
}

/* RTSP cameras go to their shards in one call per shard (an add is a
 * round trip into a busy loop: one per camera made 30,000 adds take
 * minutes); the others one by one. */
int ingest_add_many(struct ingest *in, const struct camera_record *cams, size_t n, int *results)
{
	const struct camera_record **mine = malloc(n * sizeof *mine);
	size_t *at = malloc(n * sizeof *at);
	int *res = malloc(n * sizeof *res);
	if (!mine || !at || !res) {
		free(mine);
		free(at);
		free(res);
		return -ENOMEM;
	}
	struct ingest_camera_status st;
	for (uint32_t sh = 0; sh < in->nshards; sh++) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			const struct camera_record *c = &cams[i];
			if (!is_rtsp(c->main_url) || shard_of(in, c->id) != in->shards[sh])
				continue;
			if (!c->enabled || !c->id)
				results[i] = -EINVAL;
			else if (avsource_status(in->av, c->id, &st) != -ENOENT)
				results[i] = -EEXIST;
			else {
				mine[k] = c;
				at[k++] = i;
			}
		}
		rtsp_shard_add_many(in->shards[sh], mine, k, res);
		for (size_t i = 0; i < k; i++)
			results[at[i]] = res[i];
	}
	for (size_t i = 0; i < n; i++)
		if (!is_rtsp(cams[i].main_url))
			results[i] = ingest_add(in, &cams[i]);
	free(mine);
	free(at);
	free(res);
	return 0;
}

int ingest_remove(struct ingest *in, uint32_t id)
{
	int err = rtsp_shard_remove(shard_of(in, id), id);
	if (err == -ENOENT)
		err = avsource_remove(in->av, id);
	return err;
}

int ingest_status(struct ingest *in, uint32_t id, struct ingest_camera_status *out)
{
	int err = rtsp_shard_status(shard_of(in, id), id, out);
	if (err == -ENOENT)
		err = avsource_status(in->av, id, out);
	return err;
}

void ingest_status_many(struct ingest *in, const uint32_t *ids, size_t n,
                        struct ingest_camera_status *out, bool *found)
{
	memset(found, 0, n * sizeof *found);
	for (uint32_t s = 0; s < in->nshards; s++) {
		size_t i = 0;
		while (i < n && shard_of(in, ids[i]) != in->shards[s])
			i++;
		if (i < n)                       /* only the loops that hold some of them */
			rtsp_shard_status_many(in->shards[s], ids + i, n - i, out + i, found + i);
	}
	for (size_t i = 0; i < n; i++)
		if (!found[i])
			found[i] = avsource_status(in->av, ids[i], &out[i]) == 0;
}

void ingest_totals(struct ingest *in, struct ingest_totals *out)
{
	struct ingest_totals av;
	avsource_totals(in->av, &av);      /* fills, does not add */
	*out = av;
	for (uint32_t i = 0; i < in->nshards; i++)
		rtsp_shard_totals(in->shards[i], out);
}

void ingest_stop(struct ingest *in, struct ingest_totals *final)
{
	if (!in)
		return;
	if (final)
		avsource_totals(in->av, final);     /* fills; the shards add */
	if (in->resolver)
		resolver_cancel_all(in->resolver);
	for (uint32_t i = 0; i < in->nshards; i++)
		rtsp_shard_stop(in->shards[i], final);
	if (in->av)
		avsource_pool_stop(in->av);
	resolver_stop(in->resolver);
	free(in->shards);
	nvr_log("info", "ingest", "event=ingest_stopped");
	free(in);
}
