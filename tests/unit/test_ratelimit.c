/*
 * test_ratelimit.c - the per-address token bucket of the HTTP server
 * (web/ratelimit.c): bursts, refill, addresses kept apart, a full table.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "../../web/ratelimit.h"

#define SEC 1000000LL

static int allowed(struct ratelimit *rl, const char *addr, int64_t now, int n)
{
	int ok = 0;
	for (int i = 0; i < n; i++)
		ok += rl_allow(rl, addr, now);
	return ok;
}

Test(ratelimit, burst_then_refused_then_refilled)
{
	struct ratelimit *rl;
	cr_assert_eq(rl_create(10, 20, &rl), 0);
	cr_assert_not_null(rl);
	cr_expect_eq(allowed(rl, "10.0.0.1", 0, 25), 20);     /* the burst */
	cr_expect_eq(allowed(rl, "10.0.0.1", SEC / 2, 10), 5); /* half a second: 5 more */
	cr_expect_eq(allowed(rl, "10.0.0.1", 100 * SEC, 30), 20); /* never above the burst */
	rl_free(rl);
}

Test(ratelimit, addresses_are_kept_apart)
{
	struct ratelimit *rl;
	cr_assert_eq(rl_create(1, 3, &rl), 0);
	cr_expect_eq(allowed(rl, "10.0.0.1", 0, 10), 3);
	cr_expect_eq(allowed(rl, "10.0.0.2", 0, 10), 3);
	cr_expect_eq(allowed(rl, "10.0.0.1", 0, 1), 0);
	rl_free(rl);
}

Test(ratelimit, zero_rate_means_no_limit)
{
	struct ratelimit *rl = (struct ratelimit *)1;
	cr_assert_eq(rl_create(0, 5, &rl), 0);
	cr_assert_null(rl);
	cr_expect_eq(allowed(rl, "10.0.0.1", 0, 1000), 1000);
	rl_free(rl);
}

/* Far more addresses than slots: memory stays bounded, a busy client that
 * keeps its bucket empty stays limited while idle ones come and go. */
Test(ratelimit, many_addresses)
{
	struct ratelimit *rl;
	cr_assert_eq(rl_create(1, 2, &rl), 0);
	char addr[32];
	int64_t now = 0;
	for (int i = 0; i < 100000; i++) {
		snprintf(addr, sizeof addr, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		cr_assert(rl_allow(rl, addr, now), "a new address starts with a full bucket");
		if (i % 1000 == 0) {
			allowed(rl, "192.168.1.1", now, 5);     /* busy: empties its bucket */
			cr_expect_eq(allowed(rl, "192.168.1.1", now, 1), 0);
		}
		now += 10;   /* 100,000 requests within one second */
	}
	rl_free(rl);
}

Test(ratelimit, long_addresses_are_cut_not_overrun)
{
	struct ratelimit *rl;
	char addr[200];
	memset(addr, 'a', sizeof addr - 1);
	addr[sizeof addr - 1] = '\0';
	cr_assert_eq(rl_create(1, 1, &rl), 0);
	cr_expect(rl_allow(rl, addr, 0));
	cr_expect_not(rl_allow(rl, addr, 0));
	rl_free(rl);
}
