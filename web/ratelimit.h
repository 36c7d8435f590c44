/*
 * ratelimit.h - a token bucket per client address, bounded in memory
 * (ratelimit.c). Thread-safe.
 */
#ifndef WEB_RATELIMIT_H
#define WEB_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RL_KEY_MAX 64                   /* addresses longer are cut */

struct ratelimit;

/* `rate` requests a second per address, bursts of up to `burst`. A rate of
 * 0 or less means no limit: *out is NULL and rl_allow(NULL, ...) always
 * allows. Returns 0 or -ENOMEM. */
int rl_create(double rate, double burst, struct ratelimit **out);
void rl_free(struct ratelimit *rl);

/* Takes a token of `addr`'s bucket at `now_us` (any monotonic clock):
 * true when there was one, false when the request should be refused. */
bool rl_allow(struct ratelimit *rl, const char *addr, int64_t now_us);

#endif
