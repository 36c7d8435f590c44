/*
 * loop.h - one event loop per thread around one io_uring, for the RTSP
 * sessions of many cameras.
 *
 * DESIGN (in the shape of liburing's examples/proxy.c)
 *  - Completion-based: the owner prepares an SQE (loop_sqe), then tags it
 *    with an operation kind and an object id (loop_commit). Both travel in
 *    the SQE's user_data (kind << 32 | id); each completion is dispatched to
 *    the handler of its kind with the id, cqe->res and cqe->flags. One kind
 *    has one handler; an object has at most one operation of a kind in
 *    flight, so (kind, id) also names the operation for a cancel.
 *  - One batched io_uring_submit_and_wait_timeout() per iteration, then the
 *    whole completion queue is handled and advanced at once.
 *  - Timers: a hashed timer wheel of LOOP_WHEEL_SLOTS slots of LOOP_TICK_MS
 *    each, driven by the wait timeout of that call (the loop sleeps until
 *    the earliest timer it can see within one revolution). Arming and
 *    cancelling are O(1) (intrusive doubly linked lists), so thousands of
 *    sessions can each keep reply timeouts, keep-alives and backoffs.
 *    A timer never fires early; it fires within one tick after its time.
 *  - Commands from other threads: a mutex-protected list plus an eventfd
 *    whose 8-byte read is always in flight on the ring; loop_post() queues,
 *    loop_call() queues and waits for the result.
 *  - Stop: loop_stop() (another thread) runs the owner's on_stop on the
 *    loop thread; when the owner has nothing left it calls loop_quit(); the
 *    thread exits once no operation is in flight any more (the ring never
 *    holds a buffer of freed memory), and loop_stop() joins and frees.
 *
 * Thread-safety: loop_post, loop_call and loop_stop from any thread; every
 * other function only on the loop's own thread (from handlers, timers and
 * commands).
 */
#ifndef NVR_LOOP_H
#define NVR_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

/* ---- Timer wheel (usable on its own, e.g. by tests) ------------------------ */

#define LOOP_TICK_MS 10
#define LOOP_WHEEL_SLOTS 512           /* one revolution: 5.12 s */

struct loop_timer;
typedef void (*loop_timer_fn)(struct loop_timer *t);

struct loop_timer {
	struct loop_timer *next;
	struct loop_timer **pprev;         /* NULL while not armed */
	uint64_t expires;                  /* tick at which it fires */
	loop_timer_fn fn;
};

struct loop_wheel {
	struct loop_timer *slot[LOOP_WHEEL_SLOTS];
	int64_t origin_ms;                 /* time of tick 0 */
	uint64_t tick;                     /* next tick to run */
	uint32_t count;                    /* armed timers */
};

void loop_wheel_init(struct loop_wheel *w, int64_t now_ms);

/* Arms (or re-arms) t to fire `delay_ms` after `now_ms`. */
void loop_wheel_add(struct loop_wheel *w, struct loop_timer *t, int64_t now_ms,
                    uint32_t delay_ms);
void loop_wheel_del(struct loop_wheel *w, struct loop_timer *t);

/* Fires every timer due at `now_ms` (a callback may arm or cancel any
 * timer, itself included). Returns how many fired. */
unsigned loop_wheel_run(struct loop_wheel *w, int64_t now_ms);

/* How long the loop may sleep: milliseconds from now_ms until the first
 * wheel slot that holds a timer (0 if it is due), looking at most
 * horizon_ms (and one revolution) ahead, horizon_ms when none is that near;
 * -1 when no timer is armed. A slot may hold a timer of a later
 * revolution: the loop then wakes early, never late. */
int64_t loop_wheel_next_ms(const struct loop_wheel *w, int64_t now_ms, int64_t horizon_ms);

static inline void loop_timer_init(struct loop_timer *t, loop_timer_fn fn)
{
	t->next = NULL;
	t->pprev = NULL;
	t->expires = 0;
	t->fn = fn;
}

static inline bool loop_timer_armed(const struct loop_timer *t)
{
	return t->pprev != NULL;
}

/* ---- Event loop -------------------------------------------------------------- */

struct loop;

/* Kinds 0 and 1 belong to the loop (eventfd read, ignored completions such
 * as cancels); owners use LOOP_KIND_USER .. LOOP_KIND_MAX-1. */
enum { LOOP_KIND_WAKE = 0, LOOP_KIND_IGNORE = 1, LOOP_KIND_USER = 2, LOOP_KIND_MAX = 16 };

typedef void (*loop_cqe_fn)(struct loop *l, uint32_t id, int res, uint32_t flags);

struct loop_ops {
	const char *name;                  /* thread name (15 chars shown) */
	loop_cqe_fn cqe[LOOP_KIND_MAX];    /* handler per kind */
	void (*on_stop)(struct loop *l);   /* loop thread: begin shutting down */
};

/* Starts the loop's thread, which creates the ring (so that the kernel may
 * treat it as single-issuer) and logs the io_uring features it found.
 * `entries`: submission queue size (0: 1024). */
int loop_start(const struct loop_ops *ops, void *owner, unsigned entries,
               struct loop **out);

/* Runs on_stop on the loop thread, waits for the thread to end, frees. */
void loop_stop(struct loop *l);

void *loop_owner(struct loop *l);

/* A free SQE (the ring is submitted to make room when full), or NULL. */
struct io_uring_sqe *loop_sqe(struct loop *l);

/* Tags a prepared SQE with its kind and object id; it goes out with the
 * next batch. */
void loop_commit(struct loop *l, struct io_uring_sqe *sqe, unsigned kind,
                 uint32_t id);

/* Asks the kernel to cancel the operation (kind, id). Its completion still
 * arrives (usually with -ECANCELED) at the kind's handler. Returns 0 or
 * -EBUSY when no SQE could be had. */
int loop_cancel(struct loop *l, unsigned kind, uint32_t id);

/* Monotonic milliseconds, read once per iteration. */
int64_t loop_now_ms(struct loop *l);

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint32_t delay_ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* Registered file table (loop thread only): installs socket `fd` in a free
 * slot and returns the slot (the caller then closes fd and uses the slot
 * with IOSQE_FIXED_FILE), or -ENFILE when the table is full or absent.
 * loop_file_release empties a slot no operation uses any more. */
int loop_file_install(struct loop *l, int fd);
void loop_file_release(struct loop *l, int slot);
bool loop_has_file_table(struct loop *l);

/* Commands: fn runs on the loop thread. */
struct loop_cmd {
	struct loop_cmd *next;
	void (*fn)(struct loop *l, struct loop_cmd *c);
};

/* Queues c (caller-owned until fn runs; fn may free it). */
void loop_post(struct loop *l, struct loop_cmd *c);

/* Runs fn(l, arg) on the loop thread and returns its result; runs it
 * directly when called on the loop thread. */
int loop_call(struct loop *l, int (*fn)(struct loop *l, void *arg), void *arg);

/* Owner: nothing is left to do; the thread ends when no operation is in
 * flight. */
void loop_quit(struct loop *l);

#endif
