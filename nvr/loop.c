/*
 * loop.c - the io_uring event loop of one thread: batched submission,
 * completions dispatched by operation kind, a hashed timer wheel, and a
 * command queue for other threads. The design is written down in loop.h.
 *
 * Invariants:
 *  - `inflight` counts SQEs committed and not yet completed (a CQE with
 *    IORING_CQE_F_MORE does not end its operation). The thread ends only
 *    when quit is set and inflight is 0, so no buffer handed to the kernel
 *    is freed while the kernel may still write into it.
 *  - The eventfd read (kind WAKE) is in flight whenever quit is not set.
 *  - A timer is in exactly one list (a wheel slot, or the local list of the
 *    slot being run) while armed; pprev is NULL otherwise.
 *  - A slot of the registered file table is either on the free list or
 *    holds exactly one owner's socket (loop_file_install .. release).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

/* ---- Timer wheel ----------------------------------------------------------- */

static uint64_t tick_floor(const struct loop_wheel *w, int64_t ms)
{
	return ms <= w->origin_ms ? 0 : (uint64_t)(ms - w->origin_ms) / LOOP_TICK_MS;
}

static uint64_t tick_ceil(const struct loop_wheel *w, int64_t ms)
{
	if (ms <= w->origin_ms)
		return 0;
	return ((uint64_t)(ms - w->origin_ms) + LOOP_TICK_MS - 1) / LOOP_TICK_MS;
}

static void timer_link(struct loop_timer **head, struct loop_timer *t)
{
	t->next = *head;
	if (t->next)
		t->next->pprev = &t->next;
	*head = t;
	t->pprev = head;
}

static void timer_unlink(struct loop_timer *t)
{
	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	t->next = NULL;
	t->pprev = NULL;
}

void loop_wheel_init(struct loop_wheel *w, int64_t now_ms)
{
	memset(w, 0, sizeof *w);
	w->origin_ms = now_ms;
}

void loop_wheel_del(struct loop_wheel *w, struct loop_timer *t)
{
	if (!t->pprev)
		return;
	timer_unlink(t);
	w->count--;
}

/* While a slot runs (w->tick is the tick being run) a timer armed by a
 * callback goes at least one tick later, so that no callback can keep
 * the run going by re-arming with a zero delay. */
void loop_wheel_add(struct loop_wheel *w, struct loop_timer *t, int64_t now_ms,
                    uint32_t delay_ms)
{
	loop_wheel_del(w, t);
	uint64_t exp = tick_ceil(w, now_ms + (int64_t)delay_ms);
	if (exp <= w->tick)
		exp = w->tick + 1;
	t->expires = exp;
	timer_link(&w->slot[exp % LOOP_WHEEL_SLOTS], t);
	w->count++;
}

static unsigned run_tick(struct loop_wheel *w, uint64_t tick)
{
	struct loop_timer **slot = &w->slot[tick % LOOP_WHEEL_SLOTS];
	struct loop_timer *pending = *slot;
	unsigned fired = 0;
	*slot = NULL;
	if (pending)
		pending->pprev = &pending;
	while (pending) {
		struct loop_timer *t = pending;
		timer_unlink(t);
		if (t->expires <= tick) {
			w->count--;
			fired++;
			t->fn(t);
		} else {
			timer_link(slot, t);    /* a later revolution */
		}
	}
	return fired;
}

unsigned loop_wheel_run(struct loop_wheel *w, int64_t now_ms)
{
	uint64_t target = tick_floor(w, now_ms);
	unsigned fired = 0;
	while (w->tick <= target) {
		if (w->count)
			fired += run_tick(w, w->tick);
		w->tick++;
	}
	return fired;
}

int64_t loop_wheel_next_ms(const struct loop_wheel *w, int64_t now_ms, int64_t horizon_ms)
{
	if (!w->count)
		return -1;
	/* Only whether a slot holds anything is looked at, never its list: a
	 * slot also holds timers of later revolutions, and walking them on
	 * every wait cost 8% of a loop's CPU at 500 cameras. Such a timer only
	 * makes the loop wake once early, at most once per tick. */
	uint64_t ticks = (uint64_t)(horizon_ms + LOOP_TICK_MS - 1) / LOOP_TICK_MS;
	if (ticks > LOOP_WHEEL_SLOTS)
		ticks = LOOP_WHEEL_SLOTS;
	for (uint64_t i = 0; i < ticks; i++) {
		uint64_t tick = w->tick + i;
		if (w->slot[tick % LOOP_WHEEL_SLOTS]) {
			int64_t at = w->origin_ms + (int64_t)tick * LOOP_TICK_MS;
			return at > now_ms ? at - now_ms : 0;
		}
	}
	return horizon_ms;
}

/* ---- Loop -------------------------------------------------------------------- */

#define LOOP_IDLE_WAIT_MS 1000

struct loop {
	struct io_uring ring;
	const struct loop_ops *ops;
	void *owner;
	unsigned entries;
	pthread_t thread;
	sem_t started;
	int start_err;

	struct loop_wheel wheel;
	int64_t now_ms;
	uint32_t inflight;
	bool quit;

	pthread_mutex_t mu;                /* guards head/tail */
	struct loop_cmd *head, *tail;
	int efd;
	uint64_t efd_val;                  /* target of the in-flight read */
	struct loop_cmd stop_cmd;

	uint32_t *file_free;               /* free slots of the registered file table */
	uint32_t file_cap, file_nfree;     /* 0: no table (plain descriptors) */
};

void *loop_owner(struct loop *l)
{
	return l->owner;
}

int64_t loop_now_ms(struct loop *l)
{
	return l->now_ms;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint32_t delay_ms)
{
	loop_wheel_add(&l->wheel, t, l->now_ms, delay_ms);
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	loop_wheel_del(&l->wheel, t);
}

struct io_uring_sqe *loop_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (sqe)
		return sqe;
	int err = io_uring_submit(&l->ring);
	if (err < 0)
		nvr_log("warn", "loop", "event=submit_failed error=\"%s\"", strerror(-err));
	return io_uring_get_sqe(&l->ring);
}

static uint64_t make_data(unsigned kind, uint32_t id)
{
	return (uint64_t)kind << 32 | id;
}

void loop_commit(struct loop *l, struct io_uring_sqe *sqe, unsigned kind, uint32_t id)
{
	io_uring_sqe_set_data64(sqe, make_data(kind, id));
	l->inflight++;
}

int loop_cancel(struct loop *l, unsigned kind, uint32_t id)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, make_data(kind, id), 0);
	loop_commit(l, sqe, LOOP_KIND_IGNORE, 0);
	return 0;
}

static int arm_wake(struct loop *l)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof l->efd_val, 0);
	loop_commit(l, sqe, LOOP_KIND_WAKE, 0);
	return 0;
}

void loop_quit(struct loop *l)
{
	if (l->quit)
		return;
	l->quit = true;
	if (loop_cancel(l, LOOP_KIND_WAKE, 0))
		nvr_log("error", "loop", "event=cancel_failed op=wake");
}

static void run_commands(struct loop *l)
{
	pthread_mutex_lock(&l->mu);
	struct loop_cmd *c = l->head;
	l->head = l->tail = NULL;
	pthread_mutex_unlock(&l->mu);
	while (c) {
		struct loop_cmd *next = c->next;
		c->fn(l, c);                  /* may free c */
		c = next;
	}
}

static void on_wake(struct loop *l, int res)
{
	if (res < 0 && res != -ECANCELED && res != -EINTR)
		nvr_log("warn", "loop", "event=wake_read_failed error=\"%s\"", strerror(-res));
	run_commands(l);
	if (!l->quit && arm_wake(l))
		nvr_log("error", "loop", "event=wake_rearm_failed");
}

void loop_post(struct loop *l, struct loop_cmd *c)
{
	c->next = NULL;
	pthread_mutex_lock(&l->mu);
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	pthread_mutex_unlock(&l->mu);
	uint64_t one = 1;
	if (write(l->efd, &one, sizeof one) != sizeof one)
		nvr_log("error", "loop", "event=wake_write_failed error=\"%s\"", strerror(errno));
}

struct loop_call {
	struct loop_cmd cmd;
	int (*fn)(struct loop *l, void *arg);
	void *arg;
	int result;
	sem_t done;
};

static void call_run(struct loop *l, struct loop_cmd *c)
{
	struct loop_call *call = (struct loop_call *)c;
	call->result = call->fn(l, call->arg);
	sem_post(&call->done);
}

int loop_call(struct loop *l, int (*fn)(struct loop *l, void *arg), void *arg)
{
	if (pthread_equal(pthread_self(), l->thread))
		return fn(l, arg);
	struct loop_call call = { .cmd.fn = call_run, .fn = fn, .arg = arg };
	sem_init(&call.done, 0, 0);
	loop_post(l, &call.cmd);
	while (sem_wait(&call.done) && errno == EINTR)
		;
	sem_destroy(&call.done);
	return call.result;
}

static void dispatch(struct loop *l, const struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	unsigned kind = (unsigned)(data >> 32);
	uint32_t id = (uint32_t)data;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		l->inflight--;
	if (kind == LOOP_KIND_WAKE)
		on_wake(l, cqe->res);
	else if (kind == LOOP_KIND_IGNORE)
		return;
	else if (kind < LOOP_KIND_MAX && l->ops->cqe[kind])
		l->ops->cqe[kind](l, id, cqe->res, cqe->flags);
	else
		nvr_log("error", "loop", "event=unknown_completion kind=%u id=%u res=%d", kind, id, cqe->res);
}

static unsigned reap(struct loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		dispatch(l, cqe);
		n++;
	}
	io_uring_cq_advance(&l->ring, n);
	return n;
}

static void wait_once(struct loop *l)
{
	int64_t next = loop_wheel_next_ms(&l->wheel, l->now_ms, LOOP_IDLE_WAIT_MS);
	if (next < 0)
		next = LOOP_IDLE_WAIT_MS;
	struct __kernel_timespec ts = {
		.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	int err = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (err < 0 && err != -ETIME && err != -EINTR && err != -EAGAIN && err != -EBUSY)
		nvr_log("warn", "loop", "event=wait_failed error=\"%s\"", strerror(-err));
}

static void run(struct loop *l)
{
	while (!(l->quit && l->inflight == 0)) {
		l->now_ms = nvr_mono_us() / 1000;
		loop_wheel_run(&l->wheel, l->now_ms);
		wait_once(l);
		l->now_ms = nvr_mono_us() / 1000;
		reap(l);
	}
}

/* ---- Registered files ------------------------------------------------------- */

/* Sockets can live in the ring's own file table ("fixed files") instead of
 * the process's descriptor table: a session's socket is created as usual,
 * installed in a free slot, and its descriptor closed at once, so tens of
 * thousands of sessions do not count against RLIMIT_NOFILE (the kernel
 * bounds each ring's table by that limit, so each loop gets its own up to
 * it). Operations then name the slot with IOSQE_FIXED_FILE. Installing and
 * releasing are io_uring_register calls of the loop thread. */
#define LOOP_FILES_MAX (1u << 20)

static void files_init(struct loop *l)
{
	struct rlimit rl;
	uint32_t cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < LOOP_FILES_MAX ?
	               (uint32_t)rl.rlim_cur : LOOP_FILES_MAX;
	l->file_free = malloc(cap * sizeof *l->file_free);
	int err = l->file_free ? io_uring_register_files_sparse(&l->ring, cap) : -ENOMEM;
	if (err) {
		nvr_log("warn", "loop", "event=file_table_unavailable error=\"%s\" "
		        "note=\"sockets use process descriptors\"", strerror(-err));
		free(l->file_free);
		l->file_free = NULL;
		return;
	}
	for (uint32_t i = 0; i < cap; i++)
		l->file_free[i] = cap - 1 - i;
	l->file_cap = l->file_nfree = cap;
}

int loop_file_install(struct loop *l, int fd)
{
	if (!l->file_nfree)
		return -ENFILE;
	uint32_t slot = l->file_free[--l->file_nfree];
	int err = io_uring_register_files_update(&l->ring, slot, &fd, 1);
	if (err == 1)
		return (int)slot;
	l->file_free[l->file_nfree++] = slot;
	return err < 0 ? err : -EIO;
}

void loop_file_release(struct loop *l, int slot)
{
	int none = -1;
	int err = io_uring_register_files_update(&l->ring, (unsigned)slot, &none, 1);
	if (err != 1)
		nvr_log("error", "loop", "event=file_release_failed slot=%d error=\"%s\"", slot,
		        strerror(err < 0 ? -err : EIO));
	l->file_free[l->file_nfree++] = (uint32_t)slot;
}

bool loop_has_file_table(struct loop *l)
{
	return l->file_cap > 0;
}

/* ---- Ring set-up ------------------------------------------------------------ */

/* Newest set-up first; each step drops what an older kernel refuses. */
static int ring_init(struct loop *l, unsigned *flags_out)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		0,
	};
	int err = -EINVAL;
	for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = l->entries * 8;
		err = io_uring_queue_init_params(l->entries, &l->ring, &p);
		if (err == 0) {
			*flags_out = p.flags;
			return 0;
		}
		if (err != -EINVAL)
			break;
	}
	return err;
}

static int check_opcodes(struct loop *l)
{
	static const struct { int op; const char *name; } need[] = {
		{ IORING_OP_CONNECT, "connect" }, { IORING_OP_RECV, "recv" },
		{ IORING_OP_SEND, "send" }, { IORING_OP_RECVMSG, "recvmsg" },
		{ IORING_OP_READ, "read" }, { IORING_OP_ASYNC_CANCEL, "async_cancel" },
	};
	struct io_uring_probe *probe = io_uring_get_probe_ring(&l->ring);
	if (!probe) {
		nvr_log("warn", "loop", "event=probe_unavailable");
		return 0;
	}
	int err = 0;
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
		if (!io_uring_opcode_supported(probe, need[i].op)) {
			nvr_log("error", "loop", "event=opcode_missing op=%s", need[i].name);
			err = -EOPNOTSUPP;
		}
	}
	io_uring_free_probe(probe);
	return err;
}

static void log_features(struct loop *l, unsigned flags)
{
	unsigned f = l->ring.features;
	nvr_log("info", "loop",
	        "event=loop_started name=%s sq_entries=%u cq_entries=%u single_issuer=%d "
	        "defer_taskrun=%d coop_taskrun=%d fast_poll=%d nodrop=%d ext_arg=%d "
	        "cqe_skip=%d native_workers=%d features=0x%x",
	        l->ops->name, l->ring.sq.ring_entries, l->ring.cq.ring_entries,
	        !!(flags & IORING_SETUP_SINGLE_ISSUER), !!(flags & IORING_SETUP_DEFER_TASKRUN),
	        !!(flags & IORING_SETUP_COOP_TASKRUN), !!(f & IORING_FEAT_FAST_POLL),
	        !!(f & IORING_FEAT_NODROP), !!(f & IORING_FEAT_EXT_ARG),
	        !!(f & IORING_FEAT_CQE_SKIP), !!(f & IORING_FEAT_NATIVE_WORKERS), f);
	if (!(f & IORING_FEAT_EXT_ARG))
		nvr_log("warn", "loop", "event=no_ext_arg note=\"wait timeouts use a timeout SQE\"");
}

static void *loop_thread(void *arg)
{
	struct loop *l = arg;
	unsigned flags = 0;
	pthread_setname_np(pthread_self(), l->ops->name);
	int err = ring_init(l, &flags);
	if (err) {
		nvr_log("error", "loop", "event=ring_init_failed error=\"%s\"", strerror(-err));
	} else {
		err = check_opcodes(l);
		if (!err) {
			log_features(l, flags);
			files_init(l);
			l->now_ms = nvr_mono_us() / 1000;
			loop_wheel_init(&l->wheel, l->now_ms);
			err = arm_wake(l);
		}
		if (err)
			io_uring_queue_exit(&l->ring);
	}
	l->start_err = err;
	sem_post(&l->started);
	if (err)
		return NULL;
	run(l);
	io_uring_queue_exit(&l->ring);
	free(l->file_free);
	return NULL;
}

static void loop_free(struct loop *l)
{
	if (l->efd >= 0)
		close(l->efd);
	pthread_mutex_destroy(&l->mu);
	sem_destroy(&l->started);
	free(l);
}

int loop_start(const struct loop_ops *ops, void *owner, unsigned entries,
               struct loop **out)
{
	struct loop *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->ops = ops;
	l->owner = owner;
	l->entries = entries ? entries : 1024;
	pthread_mutex_init(&l->mu, NULL);
	sem_init(&l->started, 0, 0);
	l->efd = eventfd(0, EFD_CLOEXEC);
	int err = l->efd < 0 ? -errno : 0;
	if (!err)
		err = -pthread_create(&l->thread, NULL, loop_thread, l);
	if (err)
		goto fail;
	while (sem_wait(&l->started) && errno == EINTR)
		;
	err = l->start_err;
	if (err) {
		pthread_join(l->thread, NULL);
		goto fail;
	}
	*out = l;
	return 0;
fail:
	loop_free(l);
	return err;
}

static void stop_run(struct loop *l, struct loop_cmd *c)
{
	(void)c;
	if (l->ops->on_stop)
		l->ops->on_stop(l);
	else
		loop_quit(l);
}

void loop_stop(struct loop *l)
{
	if (!l)
		return;
	l->stop_cmd.fn = stop_run;
	loop_post(l, &l->stop_cmd);
	pthread_join(l->thread, NULL);
	/* Commands posted after the thread ended would never run: callers stop
	 * posting before they stop the loop. */
	loop_free(l);
}
