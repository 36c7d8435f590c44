/*
 * export_file.c - an exported MP4 written once, front to back, and hashed
 * on the way (export_file.h).
 *
 * Why: an evidence file's SHA-256 must be of the bytes on disk, and the
 * export should cost about one read of the footage, not three (write,
 * rewrite to move the index to the front, read back to hash). The muxer
 * writes a fragmented MP4 strictly in order (web/mux.h), so every byte is
 * final when it arrives: it is hashed then, and the file never has to be
 * read again.
 *
 * How: bytes collect in one of two aligned blocks of EXPORT_FILE_BLOCK;
 * a full block goes to the disk through io_uring while the other block
 * fills, so the disk write overlaps the reading, muxing and hashing of the
 * next block. The file is opened with O_DIRECT where the file system
 * allows it (the footage passes once, the page cache has no use for it);
 * the last block is padded to the alignment and the file truncated back to
 * its length.
 *
 * Durability: when a file is finished, its fdatasync goes into the same
 * ring and the writer goes on with the next file at once; the sync
 * completes while the next one is written (the finished file's descriptor
 * is closed then). A job waits only for the syncs still in flight after its last
 * file (export_file_settle), and writes its manifest after that, so the
 * manifest never names a file that a power cut could take back. Waiting
 * for all of a job's syncs at the end instead cost 50-80 ms of an export's
 * 210-250 ms here; one after the other, 16 files took 56-173 ms.
 *
 * The blocks and the ring are made once per export worker and serve file
 * after file: fresh memory would cost a page fault per 4 KiB of every
 * file, which on a virtual machine costs more than copying the bytes.
 *
 * Errors are negative errno values; a short write is retried from where it
 * stopped, so a full disk reports -ENOSPC. One export_file belongs to one
 * thread.
 */
#include "export_file.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXPORT_FILE_BLOCK (4u << 20)
#define EXPORT_FILE_ALIGN 4096u
#define SYNC_SLOTS 16                /* finished files whose fdatasync is in flight */
#define RING_ENTRIES 32              /* >= the two block writes + SYNC_SLOTS */
#define DATA_SYNC 2                  /* user_data of a sync: DATA_SYNC + its slot */

struct export_file {
	int fd;
	bool direct;                  /* opened with O_DIRECT */
	struct io_uring ring;
	bool ring_ready;
	uint8_t *block[2];
	size_t fill;                  /* bytes in block[cur] */
	int cur;
	bool busy[2];                 /* block i's write is in flight */
	size_t busy_len[2];
	uint64_t busy_off[2];
	uint64_t written;             /* bytes handed to the disk so far */
	EVP_MD_CTX *md;
	int error;                    /* first write error, sticky */
	uint64_t tag;                 /* the open file's, from export_file_open */
	int sync_fd[SYNC_SLOTS];      /* a finished file being synced, or -1 */
	uint64_t sync_tag[SYNC_SLOTS];
	unsigned syncing;             /* slots in use */
	int sync_error;               /* first failed sync since the last settle */
	uint64_t sync_failed_tag;
};

int export_file_new(struct export_file **out)
{
	*out = NULL;
	struct export_file *f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->fd = -1;
	for (int i = 0; i < SYNC_SLOTS; i++)
		f->sync_fd[i] = -1;
	int err = 0;
	for (int i = 0; !err && i < 2; i++) {
		/* page aligned, and its pages faulted in now, once */
		void *p = mmap(NULL, EXPORT_FILE_BLOCK, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		err = p == MAP_FAILED ? -errno : 0;
		f->block[i] = err ? NULL : p;
	}
	if (!err) {
		err = io_uring_queue_init(RING_ENTRIES, &f->ring, 0);
		f->ring_ready = err == 0;
	}
	f->md = err ? NULL : EVP_MD_CTX_new();
	if (!err && !f->md)
		err = -ENOMEM;
	if (err) {
		export_file_free(f);
		return err;
	}
	*out = f;
	return 0;
}

int export_file_open(struct export_file *f, const char *path, uint64_t tag)
{
	export_file_close(f);
	f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0640);
	f->direct = f->fd >= 0;
	if (f->fd < 0 && errno == EINVAL)     /* a file system without O_DIRECT */
		f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (f->fd < 0)
		return -errno;
	f->fill = 0;
	f->cur = 0;
	f->written = 0;
	f->error = 0;
	f->tag = tag;
	if (EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) != 1) {
		export_file_close(f);
		return -ENOMEM;
	}
	return 0;
}

/* Writes what a short write left, synchronously; 0 or a negative errno. */
static int export_file_rest(struct export_file *f, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(f->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENOSPC;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* A finished file's sync in slot s completed with res: its descriptor is
 * closed, a failure kept for export_file_settle. */
static void export_file_synced(struct export_file *f, unsigned s, int res)
{
	if (res < 0 && !f->sync_error) {
		f->sync_error = res;
		f->sync_failed_tag = f->sync_tag[s];
	}
	close(f->sync_fd[s]);
	f->sync_fd[s] = -1;
	f->syncing--;
}

/* A block's write completed with res: a short write is finished here, a
 * failure sticks to the file. */
static void export_file_written(struct export_file *f, int b, int res)
{
	int err = 0;
	f->busy[b] = false;
	if (res < 0)
		err = res;
	else if ((size_t)res < f->busy_len[b])
		err = export_file_rest(f, f->block[b] + res, f->busy_len[b] - (size_t)res,
		                       f->busy_off[b] + (uint64_t)res);
	if (err && !f->error)
		f->error = err;
}

/* Waits for one completion (a block's write or a file's sync) and takes
 * it; 0 or the ring's negative errno. */
static int export_file_reap(struct export_file *f)
{
	struct io_uring_cqe *cqe;
	int err;
	if (io_uring_sq_ready(&f->ring))
		(void)io_uring_submit(&f->ring);   /* what a failed submit left queued */
	do
		err = io_uring_wait_cqe(&f->ring, &cqe);
	while (err == -EINTR);
	if (err)
		return err;
	uint64_t data = io_uring_cqe_get_data64(cqe);
	int res = cqe->res;
	io_uring_cqe_seen(&f->ring, cqe);
	if (data >= DATA_SYNC)
		export_file_synced(f, (unsigned)(data - DATA_SYNC), res);
	else
		export_file_written(f, (int)data, res);
	return 0;
}

/* Waits for block i's write; 0 or a negative errno. */
static int export_file_wait(struct export_file *f, int i)
{
	while (f->busy[i]) {
		int err = export_file_reap(f);
		if (err)
			return err;
	}
	return f->error;
}

/* Sends block i's first len bytes to the disk at f->written. */
static int export_file_submit(struct export_file *f, int i, size_t len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
	if (!sqe)
		return -EBUSY;              /* at most two writes are ever in flight */
	io_uring_prep_write(sqe, f->fd, f->block[i], (unsigned)len, f->written);
	io_uring_sqe_set_data64(sqe, (uint64_t)i);
	f->busy[i] = true;
	f->busy_len[i] = len;
	f->busy_off[i] = f->written;
	f->written += len;
	int n = io_uring_submit(&f->ring);
	return n == 1 ? 0 : n < 0 ? n : -EIO;
}

/* Sends the current block and switches to the other one. */
static int export_file_flip(struct export_file *f)
{
	int err = export_file_submit(f, f->cur, f->fill);
	f->cur ^= 1;
	f->fill = 0;
	return err ? err : export_file_wait(f, f->cur);
}

int export_file_write(void *opaque, const uint8_t *buf, int size)
{
	struct export_file *f = opaque;
	if (f->fd < 0)
		return -EBADF;
	if (f->error)
		return f->error;
	if (size <= 0)
		return 0;
	if (EVP_DigestUpdate(f->md, buf, (size_t)size) != 1)
		return f->error = -EIO;
	size_t left = (size_t)size;
	while (left) {
		size_t n = EXPORT_FILE_BLOCK - f->fill;
		if (n > left)
			n = left;
		memcpy(f->block[f->cur] + f->fill, buf, n);
		f->fill += n;
		buf += n;
		left -= n;
		int err = f->fill == EXPORT_FILE_BLOCK ? export_file_flip(f) : 0;
		if (err)
			return f->error = err;
	}
	return size;
}

static void export_file_hex(const unsigned char *b, unsigned n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The last block, padded to the alignment under O_DIRECT, then the file cut
 * back to its length; everything written waited for. */
static int export_file_tail(struct export_file *f, uint64_t *bytes)
{
	uint64_t length = f->written + f->fill;
	size_t len = f->fill;
	if (f->direct && len % EXPORT_FILE_ALIGN) {
		size_t padded = (len + EXPORT_FILE_ALIGN - 1) / EXPORT_FILE_ALIGN * EXPORT_FILE_ALIGN;
		memset(f->block[f->cur] + len, 0, padded - len);
		len = padded;
	}
	int err = len ? export_file_submit(f, f->cur, len) : 0;
	int werr = export_file_wait(f, 0);
	if (!werr)
		werr = export_file_wait(f, 1);
	err = err ? err : werr;
	if (!err && f->written != length && ftruncate(f->fd, (off_t)length))
		err = -errno;
	*bytes = length;
	return err;
}

/* Hands the finished file to an fdatasync in flight (after waiting for a
 * free slot if SYNC_SLOTS are busy); its descriptor is the sync's from
 * now on, closed when the sync completes. */
static int export_file_start_sync(struct export_file *f)
{
	while (f->syncing == SYNC_SLOTS) {
		int err = export_file_reap(f);
		if (err)
			return err;
	}
	unsigned s = 0;
	while (f->sync_fd[s] >= 0)
		s++;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
	if (!sqe)
		return -EBUSY;              /* the ring holds every write and sync in flight */
	io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, DATA_SYNC + s);
	f->sync_fd[s] = f->fd;       /* the slot's from here on, even if submit fails: */
	f->sync_tag[s] = f->tag;     /* the queued sync goes with the next reap */
	f->syncing++;
	f->fd = -1;
	int n = io_uring_submit(&f->ring);
	return n < 0 ? n : 0;
}

int export_file_finish(struct export_file *f, char sha256_hex[65], uint64_t *bytes)
{
	if (f->fd < 0)
		return -EBADF;
	if (f->error)
		return f->error;
	int err = export_file_tail(f, bytes);
	unsigned char sum[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (!err && (EVP_DigestFinal_ex(f->md, sum, &len) != 1 || len != 32))
		err = -EIO;
	if (!err)
		err = export_file_start_sync(f);
	if (err)
		return f->error = err;
	export_file_hex(sum, len, sha256_hex);
	return 0;
}

int export_file_settle(struct export_file *f, uint64_t *failed_tag)
{
	int err = 0;
	while (!err && f->syncing)
		err = export_file_reap(f);
	if (!err && f->sync_error) {
		err = f->sync_error;
		*failed_tag = f->sync_failed_tag;
	}
	f->sync_error = 0;
	return err;
}

void export_file_close(struct export_file *f)
{
	if (!f || f->fd < 0)
		return;
	if (f->ring_ready) {
		(void)export_file_wait(f, 0);   /* the blocks must outlive their writes */
		(void)export_file_wait(f, 1);
	}
	close(f->fd);
	f->fd = -1;
}

void export_file_free(struct export_file *f)
{
	if (!f)
		return;
	export_file_close(f);
	uint64_t tag;
	if (f->ring_ready)
		(void)export_file_settle(f, &tag);  /* closes the files still syncing */
	if (f->ring_ready && !f->syncing)
		io_uring_queue_exit(&f->ring);
	/* else the ring is left as it is: a sync may still use its file */
	EVP_MD_CTX_free(f->md);
	for (int i = 0; i < 2; i++)
		if (f->block[i])
			munmap(f->block[i], EXPORT_FILE_BLOCK);
	free(f);
}
