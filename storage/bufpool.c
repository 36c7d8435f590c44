/*
 * bufpool.c - recycling of chunk buffers.
 *
 * Every closed chunk travels in its own buffer from the producer to the
 * writer, which frees it once copied into a write block. Chunks are large
 * (a GOP: 16 KiB at one frame a second to 2 MiB), so plain malloc/free
 * would hand each one fresh pages from mmap and fault them in on first
 * touch: measured, page faults were a quarter of the engine's CPU. The
 * pool keeps freed buffers in size classes four to an octave (16, 20, 24,
 * 28, 32, 40 KiB ... 4 MiB of
 * memory, struct included, so a class is what it costs and rounding wastes
 * at most a quarter) up to a byte budget, so in steady state the same warm
 * memory goes round between producers and writers.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include "internal.h"

#define POOL_MIN_SHIFT 14          /* 16 KiB */
#define POOL_OCTAVES 8             /* .. 4 MiB */
#define POOL_CLASSES (POOL_OCTAVES * 4 + 1)

#define HUGE_PAGE (2u << 20)       /* one transparent huge page */
#define SLAB_BYTES (16u << 20)     /* eight of them: room for any class */

/* A huge page that buffers smaller than it are carved from; slabs stay for
 * the life of the process (their buffers go round through the pool). */
struct slab {
	struct slab *next;
	uint32_t used;
};

struct bufpool {
	pthread_mutex_t lock;
	struct chunk_buf *free[POOL_CLASSES];
	uint64_t bytes, max_bytes;     /* bytes of big (own huge page) buffers */
	struct slab *slabs;            /* newest first; carving from the head */
};

static struct bufpool pool = { PTHREAD_MUTEX_INITIALIZER, {0}, 0, 256ull << 20, NULL };

/* Class c is 2^(16 + c/4) * (1 + (c%4)/4) bytes. */
static uint32_t class_bytes(int c)
{
	uint32_t base = 1u << (POOL_MIN_SHIFT + c / 4);
	return base + base / 4 * (uint32_t)(c % 4);
}
static uint32_t class_cap(int c) { return class_bytes(c) - (uint32_t)sizeof(struct chunk_buf); }

/* The smallest class whose capacity holds `cap` bytes, or -1. */
static int size_class(uint32_t cap)
{
	for (int c = 0; c < POOL_CLASSES; c++)
		if (cap <= class_cap(c))
			return c;
	return -1;
}

/* All buffers live in transparent huge pages: one page fault per 2 MiB
 * instead of 512, which on a virtual machine is most of the cost of a new
 * buffer (30,000 cameras first touch about 2 GiB). Every class is carved
 * back to back from 16 MiB slabs, so a 1.25 MiB buffer costs 1.25 MiB and
 * not the 2 MiB page it would need on its own. */
static void *huge_alloc(size_t bytes)
{
	void *p;
	if (posix_memalign(&p, HUGE_PAGE, align_up(bytes, HUGE_PAGE)))
		return NULL;
	madvise(p, align_up(bytes, HUGE_PAGE), MADV_HUGEPAGE);
	return p;
}

/* Carves `bytes` from the current slab (a new one when it is full).
 * Called with the pool lock held. */
static void *slab_carve(size_t bytes)
{
	struct slab *s = pool.slabs;
	if (!s || s->used + bytes > SLAB_BYTES) {
		s = huge_alloc(SLAB_BYTES);
		if (!s)
			return NULL;
		/* one fault per huge page brings it in now, under our
		 * control, rather than in a producer's memcpy later */
		for (uint32_t off = HUGE_PAGE - 1; off < SLAB_BYTES; off += HUGE_PAGE)
			*(volatile uint8_t *)((uint8_t *)s + off) = 0;
		s->next = pool.slabs;
		s->used = (uint32_t)align_up(sizeof *s, 64);
		pool.slabs = s;
	}
	void *p = (uint8_t *)s + s->used;
	s->used += (uint32_t)align_up(bytes, 64);
	return p;
}

static struct chunk_buf *buf_alloc(uint32_t want)
{
	size_t bytes = sizeof(struct chunk_buf) + want;
	struct chunk_buf *b;
	if (bytes > SLAB_BYTES / 4) {
		b = huge_alloc(bytes);   /* beyond the classes: its own pages */
	} else {
		pthread_mutex_lock(&pool.lock);
		b = slab_carve(bytes);
		pthread_mutex_unlock(&pool.lock);
	}
	if (b) {
		b->cap = want;
		b->carved = bytes <= SLAB_BYTES / 4;
	}
	return b;
}

struct chunk_buf *bufpool_get(uint32_t want)
{
	int c = size_class(want);
	if (c >= 0) {
		pthread_mutex_lock(&pool.lock);
		struct chunk_buf *b = pool.free[c];
		if (b) {
			pool.free[c] = b->next;
			if (!b->carved)
				pool.bytes -= b->cap;
		}
		pthread_mutex_unlock(&pool.lock);
		if (b)
			return b;
		want = class_cap(c);
	}
	return buf_alloc(want);
}

void bufpool_put(struct chunk_buf *b)
{
	int c = size_class(b->cap);
	if (c < 0 || b->cap != class_cap(c)) {
		free(b);           /* not from the pool (a directory record) */
		return;
	}
	pthread_mutex_lock(&pool.lock);
	bool keep = b->carved || pool.bytes + b->cap <= pool.max_bytes;
	if (keep) {
		b->next = pool.free[c];
		pool.free[c] = b;
		if (!b->carved)
			pool.bytes += b->cap;
	}
	pthread_mutex_unlock(&pool.lock);
	if (!keep)
		free(b);
}
