/*
 * bench_raw.c - the raw baseline: how fast this disk takes plain big writes.
 *
 * The storage benchmark's write rate means little on its own; what matters
 * is how close the engine gets to the disk's own sequential speed. This file
 * measures that speed the simplest way that is still fair: the same number
 * of bytes, into the same volume's segment files, with O_DIRECT (no page
 * cache), 4 MiB aligned blocks and 16 writes in flight through io_uring,
 * going round the segment files like a ring. Each file is fdatasync'ed once
 * its last write completed, since the engine syncs its data too.
 */
#include "bench.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAW_ALIGN 4096u
#define RAW_FILES (RAW_QUEUE_DEPTH + 1)

struct raw_file {
	int fd;                 /* -1: slot free */
	uint32_t segment;
	unsigned inflight;
	bool issuing;           /* still the file new writes go to */
};

struct raw_ctx {
	struct io_uring ring;
	const char *voldir;
	uint64_t seg_size;
	uint32_t seg_count;
	uint64_t total;         /* bytes to write, rounded up to RAW_ALIGN */
	uint8_t *buf;
	struct raw_file files[RAW_FILES];
	int cur;                /* file receiving writes, -1 none */
	uint32_t next_seg;
	uint64_t seg_off;       /* next offset in the current file */
	uint64_t issued;
	uint64_t completed;
	unsigned inflight;
	uint32_t touched;
};

static int raw_close_file(struct raw_file *f, bool sync)
{
	int err = 0;

	if (sync && fdatasync(f->fd) != 0) {
		err = -errno;
		fprintf(stderr, "raw: fdatasync seg-%06u: %s\n", f->segment, strerror(-err));
	}
	close(f->fd);
	f->fd = -1;
	return err;
}

static int raw_open_next(struct raw_ctx *c)
{
	char name[32], path[4096];
	struct raw_file *f = NULL;
	int err;

	for (int i = 0; i < RAW_FILES && !f; i++)
		if (c->files[i].fd < 0)
			f = &c->files[i];
	if (!f)
		return -EMFILE; /* cannot happen: at most QD files have writes */
	snprintf(name, sizeof(name), "seg-%06u", c->next_seg);
	err = bench_path_join(path, sizeof(path), c->voldir, name);
	if (err)
		return err;
	f->fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (f->fd < 0) {
		err = -errno;
		fprintf(stderr, "raw: open %s with O_DIRECT: %s\n", path, strerror(-err));
		return err;
	}
	f->segment = c->next_seg;
	f->inflight = 0;
	f->issuing = true;
	c->cur = (int)(f - c->files);
	c->next_seg = (c->next_seg + 1) % c->seg_count;
	c->seg_off = 0;
	c->touched++;
	return 0;
}

/* Leaves the current file; closes it now if none of its writes is pending. */
static int raw_leave_file(struct raw_ctx *c)
{
	struct raw_file *f;

	if (c->cur < 0)
		return 0;
	f = &c->files[c->cur];
	c->cur = -1;
	f->issuing = false;
	return f->inflight == 0 ? raw_close_file(f, true) : 0;
}

static int raw_issue(struct raw_ctx *c)
{
	struct io_uring_sqe *sqe;
	struct raw_file *f;
	uint64_t len;
	int err;

	if (c->cur < 0 || c->seg_off >= c->seg_size) {
		err = raw_leave_file(c);
		if (!err)
			err = raw_open_next(c);
		if (err)
			return err;
	}
	f = &c->files[c->cur];
	len = c->seg_size - c->seg_off;
	if (len > RAW_BLOCK_BYTES)
		len = RAW_BLOCK_BYTES;
	if (len > c->total - c->issued)
		len = c->total - c->issued;
	sqe = io_uring_get_sqe(&c->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_write(sqe, f->fd, c->buf, (unsigned)len, c->seg_off);
	/* user_data: file slot in the low byte, length above it. */
	io_uring_sqe_set_data64(sqe, ((uint64_t)len << 8) | (uint64_t)c->cur);
	c->seg_off += len;
	c->issued += len;
	c->inflight++;
	f->inflight++;
	return 0;
}

static int raw_complete(struct raw_ctx *c, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	struct raw_file *f = &c->files[data & 0xff];
	uint64_t len = data >> 8;
	int err = 0;

	if (cqe->res < 0) {
		err = cqe->res;
		fprintf(stderr, "raw: write to seg-%06u failed: %s\n", f->segment, strerror(-err));
	} else if ((uint64_t)cqe->res != len) {
		err = -EIO;
		fprintf(stderr, "raw: short write to seg-%06u: %d of %llu bytes\n",
		        f->segment, cqe->res, (unsigned long long)len);
	}
	c->inflight--;
	f->inflight--;
	if (!err)
		c->completed += len;
	if (f->inflight == 0 && !f->issuing) {
		int e = raw_close_file(f, err == 0);

		err = err ? err : e;
	}
	return err;
}

/* Waits for at least one completion and handles all that are ready. */
static int raw_reap(struct raw_ctx *c)
{
	struct io_uring_cqe *cqe;
	int err = io_uring_wait_cqe(&c->ring, &cqe);

	if (err < 0) {
		fprintf(stderr, "raw: io_uring_wait_cqe: %s\n", strerror(-err));
		return err;
	}
	do {
		int e = raw_complete(c, cqe);

		io_uring_cqe_seen(&c->ring, cqe);
		err = err ? err : e;
	} while (io_uring_peek_cqe(&c->ring, &cqe) == 0);
	return err;
}

static int raw_loop(struct raw_ctx *c)
{
	int err = 0;

	while (!err && c->completed < c->total) {
		while (!err && c->inflight < RAW_QUEUE_DEPTH && c->issued < c->total)
			err = raw_issue(c);
		if (err)
			break;
		err = io_uring_submit(&c->ring);
		if (err < 0) {
			fprintf(stderr, "raw: io_uring_submit: %s\n", strerror(-err));
			break;
		}
		err = raw_reap(c);
	}
	if (!err)
		err = raw_leave_file(c);
	return err;
}

static int raw_setup(struct raw_ctx *c, const uint8_t *fill)
{
	int err;

	for (int i = 0; i < RAW_FILES; i++)
		c->files[i].fd = -1;
	c->cur = -1;
	err = posix_memalign((void **)&c->buf, RAW_ALIGN, RAW_BLOCK_BYTES);
	if (err) {
		fprintf(stderr, "raw: cannot allocate the write buffer\n");
		return -err;
	}
	memcpy(c->buf, fill, RAW_BLOCK_BYTES);
	err = io_uring_queue_init(RAW_QUEUE_DEPTH, &c->ring, 0);
	if (err < 0) {
		fprintf(stderr, "raw: io_uring_queue_init: %s\n", strerror(-err));
		free(c->buf);
	}
	return err;
}

/* After an error: waits out pending writes so no buffer or fd is in use. */
static void raw_teardown(struct raw_ctx *c)
{
	struct io_uring_cqe *cqe;

	io_uring_submit(&c->ring);
	while (c->inflight > 0 && io_uring_wait_cqe(&c->ring, &cqe) == 0) {
		c->inflight--;
		io_uring_cqe_seen(&c->ring, cqe);
	}
	for (int i = 0; i < RAW_FILES; i++)
		if (c->files[i].fd >= 0)
			close(c->files[i].fd);
	io_uring_queue_exit(&c->ring);
	free(c->buf);
}

int raw_write(const char *voldir, uint64_t seg_size, uint32_t seg_count,
              uint64_t total, const uint8_t *fill, struct raw_result *out)
{
	struct raw_ctx c = {
		.voldir = voldir,
		.seg_size = seg_size,
		.seg_count = seg_count,
		.total = (total + RAW_ALIGN - 1) / RAW_ALIGN * RAW_ALIGN,
	};
	int64_t t0;
	int err;

	if (seg_count == 0 || seg_size == 0 || seg_size % RAW_ALIGN) {
		fprintf(stderr, "raw: bad volume geometry (%llu x %u)\n",
		        (unsigned long long)seg_size, seg_count);
		return -EINVAL;
	}
	err = raw_setup(&c, fill);
	if (err)
		return err;
	t0 = bench_now_ns();
	err = raw_loop(&c);
	out->seconds = (double)(bench_now_ns() - t0) / 1e9;
	out->bytes = c.completed;
	out->segments_touched = c.touched;
	raw_teardown(&c);
	return err;
}
