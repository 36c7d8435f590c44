/*
 * test_timer.c - the event loop's hashed timer wheel (nvr/loop.c): timers
 * fire never early and within one tick late, across revolutions, in any
 * number; cancel and re-arm from callbacks; the wait the loop computes
 * reaches the earliest timer. Driven with a fake clock (no ring needed),
 * plus one test of the real loop's timers, commands and stop.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <time.h>

#include "loop.h"

struct probe {
	struct loop_timer t;
	int64_t due_ms;        /* when it was asked to fire */
	int64_t fired_ms;      /* clock when it fired, -1 never */
	int fired;
};

static int64_t g_now;
static struct loop_wheel g_wheel;

static void probe_fire(struct loop_timer *t)
{
	struct probe *p = (struct probe *)t;
	p->fired++;
	p->fired_ms = g_now;
}

static void probe_arm(struct probe *p, uint32_t delay)
{
	loop_timer_init(&p->t, probe_fire);
	p->due_ms = g_now + delay;
	p->fired_ms = -1;
	p->fired = 0;
	loop_wheel_add(&g_wheel, &p->t, g_now, delay);
}

/* Advances the fake clock 1 ms at a time up to `to`, running the wheel. */
static void advance_to(int64_t to)
{
	while (g_now < to) {
		g_now++;
		loop_wheel_run(&g_wheel, g_now);
	}
}

Test(timer, fires_not_early_and_within_a_tick)
{
	g_now = 1000003;
	loop_wheel_init(&g_wheel, g_now);
	enum { N = 2000 };
	struct probe *p = calloc(N, sizeof *p);
	srand(7);
	for (int i = 0; i < N; i++) {
		/* up to 3 revolutions of the wheel */
		probe_arm(&p[i], (uint32_t)(rand() % (3 * LOOP_WHEEL_SLOTS * LOOP_TICK_MS)));
		if (i % 3 == 0)
			advance_to(g_now + 1);
	}
	uint32_t fired = 0;
	for (int i = 0; i < N; i++)
		fired += (uint32_t)p[i].fired;
	cr_assert_eq(g_wheel.count + fired, (uint32_t)N, "armed %u + fired %u != %d", g_wheel.count,
	             fired, N);
	advance_to(g_now + 4 * LOOP_WHEEL_SLOTS * LOOP_TICK_MS);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(p[i].fired, 1, "timer %d fired %d times", i, p[i].fired);
		cr_assert_geq(p[i].fired_ms, p[i].due_ms, "timer %d early: due %lld fired %lld", i,
		              (long long)p[i].due_ms, (long long)p[i].fired_ms);
		cr_assert_leq(p[i].fired_ms, p[i].due_ms + LOOP_TICK_MS, "timer %d late: due %lld fired %lld",
		              i, (long long)p[i].due_ms, (long long)p[i].fired_ms);
	}
	cr_assert_eq(g_wheel.count, 0);
	free(p);
}

Test(timer, cancel_and_rearm)
{
	g_now = 0;
	loop_wheel_init(&g_wheel, g_now);
	struct probe a, b, c;
	probe_arm(&a, 50);
	probe_arm(&b, 50);
	probe_arm(&c, 7000);            /* beyond one revolution */
	loop_wheel_del(&g_wheel, &b.t);
	cr_assert_not(loop_timer_armed(&b.t));
	loop_wheel_del(&g_wheel, &b.t);  /* twice is harmless */
	loop_wheel_add(&g_wheel, &c.t, g_now, 100);   /* re-arm earlier */
	c.due_ms = 100;
	cr_assert_eq(g_wheel.count, 2);
	advance_to(10000);
	cr_assert_eq(a.fired, 1);
	cr_assert_eq(b.fired, 0);
	cr_assert_eq(c.fired, 1);
	cr_assert_geq(c.fired_ms, 100);
	cr_assert_leq(c.fired_ms, 110);
}

/* Two timers of one slot each cancel the other when they fire: exactly one
 * fires, whatever the order inside the slot; the one that fires re-arms
 * itself with a zero delay, which must wait for the next tick. */
struct rival {
	struct loop_timer t;
	struct rival *other;
	int runs;
	int64_t last_ms;
};

static void rival_fire(struct loop_timer *t)
{
	struct rival *r = (struct rival *)t;
	r->runs++;
	r->last_ms = g_now;
	loop_wheel_del(&g_wheel, &r->other->t);
	if (r->runs < 3)
		loop_wheel_add(&g_wheel, t, g_now, 0);
}

Test(timer, callbacks_cancel_and_rearm_in_the_same_slot)
{
	g_now = 0;
	loop_wheel_init(&g_wheel, g_now);
	struct rival a = { .runs = 0 }, b = { .runs = 0 };
	a.other = &b;
	b.other = &a;
	loop_timer_init(&a.t, rival_fire);
	loop_timer_init(&b.t, rival_fire);
	loop_wheel_add(&g_wheel, &a.t, g_now, 30);
	loop_wheel_add(&g_wheel, &b.t, g_now, 30);
	advance_to(30);
	cr_assert_eq(a.runs + b.runs, 1, "a ran %d, b ran %d", a.runs, b.runs);
	advance_to(100);
	struct rival *w = a.runs ? &a : &b;
	cr_assert_eq(w->runs, 3);
	cr_assert_eq(w->other->runs, 0, "cancelled timer fired");
	cr_assert_eq(w->last_ms, 50, "zero-delay re-arms fire one tick apart");
	cr_assert_eq(g_wheel.count, 0);
}

Test(timer, next_wait_reaches_the_earliest_timer)
{
	g_now = 5;
	loop_wheel_init(&g_wheel, g_now);
	const int64_t rev = LOOP_WHEEL_SLOTS * LOOP_TICK_MS;
	cr_assert_eq(loop_wheel_next_ms(&g_wheel, g_now, rev), -1);
	struct probe a, b;
	probe_arm(&a, 2500);
	probe_arm(&b, 60000);
	int64_t w = loop_wheel_next_ms(&g_wheel, g_now, rev);
	cr_assert_geq(w, 2500);
	cr_assert_leq(w, 2500 + LOOP_TICK_MS);
	/* a shorter horizon caps the wait */
	cr_assert_eq(loop_wheel_next_ms(&g_wheel, g_now, 1000), 1000);
	loop_wheel_del(&g_wheel, &a.t);
	/* only a far timer: the loop may wake early (its slot comes round
	 * first), never later than one revolution, and nothing fires early */
	w = loop_wheel_next_ms(&g_wheel, g_now, rev);
	cr_assert_gt(w, 0);
	cr_assert_leq(w, rev);
	g_now += w;
	loop_wheel_run(&g_wheel, g_now);
	cr_assert_eq(b.fired, 0);
	/* a clock that jumps far ahead fires it at once */
	g_now += 61000;
	loop_wheel_run(&g_wheel, g_now);
	cr_assert_eq(b.fired, 1);
}

/* ---- The real loop: a timer, a command and stop ----------------------------- */

struct real {
	struct loop_timer t;
	struct loop *l;
	int64_t armed_ms, fired_ms;
	int stops;
};

static void real_fire(struct loop_timer *t)
{
	struct real *r = (struct real *)t;
	r->fired_ms = loop_now_ms(r->l);
}

static int real_arm(struct loop *l, void *arg)
{
	struct real *r = arg;
	r->l = l;
	loop_timer_init(&r->t, real_fire);
	r->armed_ms = loop_now_ms(l);
	loop_timer_arm(l, &r->t, 120);
	return 42;
}

static int real_read(struct loop *l, void *arg)
{
	(void)l;
	struct real *r = arg;
	return r->fired_ms >= 0 ? (int)(r->fired_ms - r->armed_ms) : -1;
}

static void real_stop(struct loop *l)
{
	struct real *r = loop_owner(l);
	r->stops++;
	loop_quit(l);
}

Test(timer, real_loop_timer_command_and_stop)
{
	static const struct loop_ops ops = { .name = "test-loop", .on_stop = real_stop };
	struct real r = { .fired_ms = -1 };
	struct loop *l;
	int err = loop_start(&ops, &r, 64, &l);
	if (err == -ENOSYS || err == -EPERM)
		cr_skip_test("io_uring unavailable (%d)", err);
	cr_assert_eq(err, 0);
	cr_assert_eq(loop_call(l, real_arm, &r), 42);
	struct timespec ts = { 0, 300 * 1000000 };
	nanosleep(&ts, NULL);
	int waited = loop_call(l, real_read, &r);
	cr_assert_geq(waited, 120, "timer fired after %d ms", waited);
	cr_assert_leq(waited, 200, "timer fired after %d ms", waited);
	loop_stop(l);
	cr_assert_eq(r.stops, 1);
}
