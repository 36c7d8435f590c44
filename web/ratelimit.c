/*
 * ratelimit.c - requests per second per client address (ratelimit.h).
 *
 * A token bucket per address: `rate` tokens a second up to `burst`; a
 * request takes one, and a request finding the bucket empty is answered
 * 429 by the server. Recording has priority over the API, so one client
 * (a script gone wrong, a scraper) must not be able to keep the HTTP
 * threads busy.
 *
 * Buckets live in a fixed open-addressed table (RL_SLOTS, probed
 * RL_PROBES deep), so memory does not grow with the number of clients:
 * when every probed slot is taken by another address, the one idle longest
 * is reused (a full bucket of an idle client holds no information). One
 * mutex guards the table; the work under it is a hash, a few compares and
 * a multiplication.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ratelimit.h"

#define RL_SLOTS 4096u
#define RL_PROBES 8u

struct rl_bucket {
	char key[RL_KEY_MAX];           /* "" for a free slot */
	double tokens;
	int64_t last_us;
};

struct ratelimit {
	pthread_mutex_t lock;
	double rate, burst;
	struct rl_bucket slot[RL_SLOTS];
};

int rl_create(double rate, double burst, struct ratelimit **out)
{
	*out = NULL;
	if (rate <= 0)
		return 0;                /* no limit: rl_allow always says yes */
	struct ratelimit *rl = calloc(1, sizeof *rl);
	if (!rl)
		return -ENOMEM;
	rl->rate = rate;
	rl->burst = burst >= 1 ? burst : 1;
	int err = pthread_mutex_init(&rl->lock, NULL);
	if (err) {
		free(rl);
		return -err;
	}
	*out = rl;
	return 0;
}

void rl_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

/* The address's bucket, or the slot to give it (a free one, else the one
 * idle longest). */
static struct rl_bucket *rl_find(struct ratelimit *rl, const char *key, size_t len)
{
	uint64_t h = XXH64(key, len, 0);
	struct rl_bucket *victim = NULL;
	for (unsigned i = 0; i < RL_PROBES; i++) {
		struct rl_bucket *b = &rl->slot[(h + i) % RL_SLOTS];
		if (!strcmp(b->key, key))
			return b;
		if (!b->key[0])
			return b;
		if (!victim || b->last_us < victim->last_us)
			victim = b;
	}
	return victim;
}

bool rl_allow(struct ratelimit *rl, const char *addr, int64_t now_us)
{
	if (!rl)
		return true;
	char key[RL_KEY_MAX];
	size_t len = strnlen(addr, RL_KEY_MAX - 1);
	memcpy(key, addr, len);
	key[len] = '\0';
	pthread_mutex_lock(&rl->lock);
	struct rl_bucket *b = rl_find(rl, key, len);
	if (strcmp(b->key, key)) {          /* a new address: a full bucket */
		memcpy(b->key, key, len + 1);
		b->tokens = rl->burst;
		b->last_us = now_us;
	}
	double t = b->tokens + (double)(now_us - b->last_us) / 1e6 * rl->rate;
	b->tokens = t > rl->burst ? rl->burst : t;
	b->last_us = now_us;
	bool ok = b->tokens >= 1;
	if (ok)
		b->tokens -= 1;
	pthread_mutex_unlock(&rl->lock);
	return ok;
}
