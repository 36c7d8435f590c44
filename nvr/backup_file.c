/*
 * backup_file.c - the backup file: a checked header, then one zstd frame
 * per LMDB environment (the layout is in backup.h).
 *
 * Writing streams: a section's source (LMDB's copier) runs in a thread and
 * writes into a pipe; this side reads the pipe, hashes the raw bytes
 * (SHA-256, libsodium), compresses them with zstd's streaming API and
 * appends the output to a temporary file. Nothing is held in memory but
 * two buffers, whatever the size of the environment. If compressing or
 * writing fails, the pipe is still read to its end so that the source
 * finishes (and never meets a closed pipe) before its thread is joined.
 *
 * Reading checks everything before trusting anything: the header's own
 * hash and layout first, then each section's size and SHA-256 as it is
 * decompressed; a restore extracts every section this way before it
 * replaces a single environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zstd.h>

#include "backup.h"
#include "log.h"

#define ENTRIES_AT 32
#define ENTRY_SIZE 96
#define HEADER_HASH_AT (BKP_HEADER_SIZE - BKP_SHA256_BYTES)
#define IO_BUF (256 * 1024)

_Static_assert(ENTRIES_AT + BKP_MAX_ENTRIES * ENTRY_SIZE <= HEADER_HASH_AT,
               "the entries must fit before the header's hash");

struct bkp_writer {
	char path[PATH_MAX];
	char tmp[PATH_MAX + 32];
	int fd;
	ZSTD_CCtx *cctx;
	uint8_t *in, *out;
	size_t out_size;
	uint64_t pos;                  /* where the next section starts */
	struct bkp_info info;
};

/* ---- encoding -------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static bool name_ok(const char *name)
{
	size_t n = strnlen(name, BKP_NAME_MAX);
	if (n == 0 || n >= BKP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_' || name[i] == '-'))
			return false;
	return true;
}

static void encode_header(const struct bkp_info *info, uint8_t *h)
{
	memset(h, 0, BKP_HEADER_SIZE);
	memcpy(h, BKP_MAGIC, 8);
	put_le(h + 8, BKP_VERSION, 4);
	put_le(h + 12, info->count, 4);
	put_le(h + 16, (uint64_t)info->created_us, 8);
	put_le(h + 24, BKP_HEADER_SIZE, 8);
	for (uint32_t i = 0; i < info->count; i++) {
		uint8_t *p = h + ENTRIES_AT + i * ENTRY_SIZE;
		const struct bkp_entry *e = &info->e[i];
		memcpy(p, e->name, strnlen(e->name, BKP_NAME_MAX));
		put_le(p + 16, e->offset, 8);
		put_le(p + 24, e->zsize, 8);
		put_le(p + 32, e->size, 8);
		memcpy(p + 40, e->sha256, BKP_SHA256_BYTES);
	}
	crypto_hash_sha256(h + HEADER_HASH_AT, h, HEADER_HASH_AT);
}

static int bad_file(const char *what)
{
	nvr_log("error", "backup", "event=backup_refused reason=\"%s\"", what);
	return -EBADMSG;
}

static int decode_entry(const uint8_t *p, struct bkp_entry *e)
{
	memset(e, 0, sizeof *e);
	memcpy(e->name, p, BKP_NAME_MAX);
	e->name[BKP_NAME_MAX - 1] = '\0';
	if (!name_ok(e->name) || p[BKP_NAME_MAX - 1] != 0)
		return bad_file("bad environment name in the header");
	e->offset = get_le(p + 16, 8);
	e->zsize = get_le(p + 24, 8);
	e->size = get_le(p + 32, 8);
	memcpy(e->sha256, p + 40, BKP_SHA256_BYTES);
	return 0;
}

/* The sections must tile the file from the header to its end. */
static int check_layout(const struct bkp_info *info)
{
	uint64_t at = BKP_HEADER_SIZE;
	for (uint32_t i = 0; i < info->count; i++) {
		const struct bkp_entry *e = &info->e[i];
		if (e->offset != at || e->zsize == 0 || e->zsize > UINT64_MAX / 2 - at)
			return bad_file("sections do not follow each other");
		at += e->zsize;
	}
	if (at > info->file_size)
		return bad_file("the file is truncated");
	return at == info->file_size ? 0 : bad_file("bytes after the last section");
}

static int decode_header(const uint8_t *h, struct bkp_info *info)
{
	uint8_t sum[BKP_SHA256_BYTES];
	if (memcmp(h, BKP_MAGIC, 8))
		return bad_file("not a backup file (bad magic)");
	if (get_le(h + 8, 4) != BKP_VERSION)
		return bad_file("unsupported backup version");
	crypto_hash_sha256(sum, h, HEADER_HASH_AT);
	if (memcmp(sum, h + HEADER_HASH_AT, sizeof sum))
		return bad_file("header checksum mismatch");
	info->count = (uint32_t)get_le(h + 12, 4);
	info->created_us = (int64_t)get_le(h + 16, 8);
	if (info->count < 1 || info->count > BKP_MAX_ENTRIES || get_le(h + 24, 8) != BKP_HEADER_SIZE)
		return bad_file("bad header fields");
	for (uint32_t i = 0; i < info->count; i++) {
		int err = decode_entry(h + ENTRIES_AT + i * ENTRY_SIZE, &info->e[i]);
		if (err)
			return err;
	}
	return check_layout(info);
}

/* ---- plain I/O ---------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + *got, len - *got, (off_t)(off + *got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

/* Syncs the directory holding `path`, so that a rename in it is durable. */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = fsync(fd) ? -errno : 0;
	close(fd);
	return err;
}

/* ---- writing ------------------------------------------------------------------- */

static void writer_free(struct bkp_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	ZSTD_freeCCtx(w->cctx);
	free(w->in);
	free(w->out);
	free(w);
}

int bkp_writer_open(const char *path, int level, struct bkp_writer **out)
{
	if (sodium_init() < 0)
		return -EIO;
	struct bkp_writer *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->out_size = ZSTD_CStreamOutSize();
	w->in = malloc(IO_BUF);
	w->out = malloc(w->out_size);
	w->cctx = ZSTD_createCCtx();
	int err = 0;
	if (!w->in || !w->out || !w->cctx)
		err = -ENOMEM;
	else if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path)
		err = -ENAMETOOLONG;
	else if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
	         ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)))
		err = -EINVAL;
	if (err)
		goto fail;
	snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w->fd < 0 || ftruncate(w->fd, BKP_HEADER_SIZE) ||
	    lseek(w->fd, BKP_HEADER_SIZE, SEEK_SET) < 0) {
		err = -errno;
		nvr_log("error", "backup", "event=backup_write_failed path=%s error=\"%s\"", w->tmp,
		        strerror(-err));
		if (w->fd >= 0)
			unlink(w->tmp);
		goto fail;
	}
	w->pos = BKP_HEADER_SIZE;
	w->info.created_us = nvr_now_us();
	*out = w;
	return 0;
fail:
	writer_free(w);
	return err;
}

/* Feeds `len` bytes (mode ZSTD_e_end: and the end of the frame) to zstd
 * and appends what it gives to the file. */
static int compress_some(struct bkp_writer *w, size_t len, ZSTD_EndDirective mode,
                         uint64_t *zsize)
{
	ZSTD_inBuffer in = { w->in, len, 0 };
	size_t left;
	do {
		ZSTD_outBuffer out = { w->out, w->out_size, 0 };
		left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
		if (ZSTD_isError(left)) {
			nvr_log("error", "backup", "event=backup_compress_failed error=\"%s\"",
			        ZSTD_getErrorName(left));
			return -EIO;
		}
		int err = write_all(w->fd, w->out, out.pos);
		if (err)
			return err;
		*zsize += out.pos;
	} while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
	return 0;
}

/* Reads the pipe to its end: hashes, compresses and appends. After an
 * error the rest is read and dropped so that the source can finish. */
static int compress_stream(struct bkp_writer *w, int in, struct bkp_entry *e)
{
	crypto_hash_sha256_state sha;
	crypto_hash_sha256_init(&sha);
	ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
	int err = 0;
	for (;;) {
		ssize_t n = read(in, w->in, IO_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = err ? err : -errno;
			break;
		}
		if (!err) {
			e->size += (uint64_t)n;
			crypto_hash_sha256_update(&sha, w->in, (unsigned long long)n);
			err = compress_some(w, (size_t)n, n ? ZSTD_e_continue : ZSTD_e_end, &e->zsize);
		}
		if (n == 0)
			break;
	}
	crypto_hash_sha256_final(&sha, e->sha256);
	return err;
}

struct source_run {
	bkp_source_fn fn;
	void *user;
	int fd;
	int rc;
};

static void *source_main(void *arg)
{
	struct source_run *r = arg;
	r->rc = r->fn(r->user, r->fd);
	close(r->fd);
	return NULL;
}

int bkp_writer_add(struct bkp_writer *w, const char *name, bkp_source_fn source, void *user)
{
	if (!name_ok(name) || w->info.count == BKP_MAX_ENTRIES)
		return -EINVAL;
	struct bkp_entry *e = &w->info.e[w->info.count];
	memset(e, 0, sizeof *e);
	snprintf(e->name, sizeof e->name, "%s", name);
	e->offset = w->pos;
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	struct source_run run = { .fn = source, .user = user, .fd = p[1] };
	pthread_t th;
	int err = -pthread_create(&th, NULL, source_main, &run);
	if (err) {
		close(p[0]);
		close(p[1]);
		return err;
	}
	err = compress_stream(w, p[0], e);
	pthread_join(th, NULL);
	close(p[0]);
	if (!err && run.rc)
		err = run.rc;
	if (err) {
		nvr_log("error", "backup", "event=backup_section_failed name=%s error=\"%s\"", name,
		        stg_strerror(err));
		return err;
	}
	w->pos += e->zsize;
	w->info.count++;
	return 0;
}

uint32_t bkp_writer_count(const struct bkp_writer *w)
{
	return w->info.count;
}

void bkp_writer_abort(struct bkp_writer *w)
{
	if (!w)
		return;
	unlink(w->tmp);
	writer_free(w);
}

int bkp_writer_finish(struct bkp_writer *w, struct bkp_info *info)
{
	uint8_t h[BKP_HEADER_SIZE];
	int err = w->info.count ? 0 : -EINVAL;
	w->info.file_size = w->pos;
	encode_header(&w->info, h);
	ssize_t n = err ? 0 : pwrite(w->fd, h, sizeof h, 0);
	if (n < 0)
		err = -errno;
	else if (!err && n != (ssize_t)sizeof h)
		err = -EIO;
	if (!err && fsync(w->fd))
		err = -errno;
	if (!err && rename(w->tmp, w->path))
		err = -errno;
	if (!err)
		err = sync_parent(w->path);
	if (err) {
		nvr_log("error", "backup", "event=backup_write_failed path=%s error=\"%s\"", w->path,
		        strerror(-err));
		unlink(w->tmp);
	} else if (info) {
		*info = w->info;
	}
	writer_free(w);
	return err;
}

/* ---- reading ------------------------------------------------------------------- */

int bkp_read_header(int fd, struct bkp_info *info)
{
	uint8_t h[BKP_HEADER_SIZE];
	struct stat st;
	size_t got;
	memset(info, 0, sizeof *info);
	if (sodium_init() < 0)
		return -EIO;
	if (fstat(fd, &st))
		return -errno;
	int err = pread_full(fd, h, sizeof h, 0, &got);
	if (err)
		return err;
	if (got < sizeof h)
		return bad_file("the file is shorter than a backup header");
	info->file_size = (uint64_t)st.st_size;
	return decode_header(h, info);
}

struct extract {
	ZSTD_DCtx *dctx;
	uint8_t *in, *out;
	size_t out_size;
	crypto_hash_sha256_state sha;
	uint64_t size;
	size_t last;                   /* zstd's last answer: 0 once a frame ended */
};

/* Decompresses one input buffer; writes and hashes what comes out. */
static int extract_some(struct extract *x, const struct bkp_entry *e, size_t len, int out_fd)
{
	ZSTD_inBuffer in = { x->in, len, 0 };
	while (in.pos < in.size) {
		ZSTD_outBuffer out = { x->out, x->out_size, 0 };
		x->last = ZSTD_decompressStream(x->dctx, &out, &in);
		if (ZSTD_isError(x->last))
			return bad_file(ZSTD_getErrorName(x->last));
		x->size += out.pos;
		if (x->size > e->size)
			return bad_file("a section is longer than its header says");
		crypto_hash_sha256_update(&x->sha, x->out, out.pos);
		int err = out_fd >= 0 ? write_all(out_fd, x->out, out.pos) : 0;
		if (err)
			return err;
		if (x->last == 0 && in.pos < in.size)
			return bad_file("bytes after a section's zstd frame");
	}
	return 0;
}

static int extract_run(int fd, const struct bkp_entry *e, int out_fd, struct extract *x)
{
	uint64_t at = e->offset, end = e->offset + e->zsize;
	while (at < end) {
		size_t want = end - at < IO_BUF ? (size_t)(end - at) : IO_BUF, got;
		int err = pread_full(fd, x->in, want, at, &got);
		if (err)
			return err;
		if (got < want)
			return bad_file("the file is truncated");
		if ((err = extract_some(x, e, got, out_fd)))
			return err;
		at += got;
	}
	uint8_t sum[BKP_SHA256_BYTES];
	crypto_hash_sha256_final(&x->sha, sum);
	if (x->last != 0)
		return bad_file("a section's zstd frame is incomplete");
	if (x->size != e->size)
		return bad_file("a section is shorter than its header says");
	if (memcmp(sum, e->sha256, sizeof sum))
		return bad_file("a section's SHA-256 does not match");
	return 0;
}

int bkp_extract(int fd, const struct bkp_entry *e, int out_fd)
{
	struct extract x = { .dctx = ZSTD_createDCtx(), .out_size = ZSTD_DStreamOutSize() };
	x.in = malloc(IO_BUF);
	x.out = malloc(x.out_size);
	crypto_hash_sha256_init(&x.sha);
	int err = x.dctx && x.in && x.out ? extract_run(fd, e, out_fd, &x) : -ENOMEM;
	if (err)
		nvr_log("error", "backup", "event=backup_extract_failed name=%s error=\"%s\"", e->name,
		        strerror(-err));
	ZSTD_freeDCtx(x.dctx);
	free(x.in);
	free(x.out);
	return err;
}
