/*
 * volume.c - volumes: formatting a directory, checking its header, and
 * attaching it to a running engine.
 *
 * A volume is a directory holding volume.hdr and segment_count segment files
 * of segment_size bytes, allocated once with fallocate() so that recording
 * never creates, deletes or grows a file and the file system never
 * fragments. The index remembers each volume's UUID and path; a volume whose
 * UUID does not match what the index holds for that path (a disk moved or
 * mounted in the wrong place), or whose UUID the index knows under another
 * path, is refused with a clear message and the engine goes on without it.
 */
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "internal.h"

#define MIB (1024ull * 1024)

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	struct dirent *de;
	int empty = 1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	return empty;
}

static void info_from_header(const struct vol_header *h, struct stg_volume_info *out)
{
	*out = (struct stg_volume_info){
		.segment_size = h->segment_size, .segment_count = h->segment_count,
		.created_us = h->created_us, .format_version = h->version,
	};
	memcpy(out->uuid, h->uuid, 16);
}

static int write_header(const char *path, const struct vol_header *h)
{
	char file[512];
	uint8_t block[STG_BLOCK] = {0};
	memcpy(block, h, sizeof *h);
	snprintf(file, sizeof file, "%s/%s", path, STG_VOL_HEADER_FILE);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	int err = 0;
	if (write(fd, block, sizeof block) != (ssize_t)sizeof block || fsync(fd))
		err = errno ? -errno : -EIO;
	close(fd);
	return err;
}

/* Writes zeros through a whole segment file with large direct writes. */
static int zero_fill(const char *file, uint64_t size)
{
	const size_t chunk = 4u << 20;
	void *buf;
	if (posix_memalign(&buf, STG_BLOCK, chunk))
		return ENOMEM;
	memset(buf, 0, chunk);
	int fd = open(file, O_WRONLY | O_DIRECT);
	int err = fd < 0 ? errno : 0;
	for (uint64_t off = 0; !err && off < size; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			err = errno ? errno : EIO;
	}
	if (!err && fdatasync(fd))
		err = errno;
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

static int create_segment(const char *path, uint32_t i, uint64_t size, bool zero)
{
	char file[512];
	snprintf(file, sizeof file, "%s/" STG_SEG_FILE_FMT, path, i);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	int err = posix_fallocate(fd, 0, (off_t)size);
	if (!err && zero)
		err = zero_fill(file, size);
	/* a zeroed first block: no segment header, so the slot reads as free */
	uint8_t block0[STG_BLOCK] = {0};
	if (!err && pwrite(fd, block0, sizeof block0, 0) != (ssize_t)sizeof block0)
		err = errno;
	if (!err && fsync(fd))
		err = errno;
	close(fd);
	return -err;
}

int stg_volume_format(const char *path, uint64_t segment_size,
                      uint32_t segment_count, unsigned flags,
                      struct stg_volume_info *out)
{
	bool force = flags & STG_FORMAT_FORCE;
	/* one open, two prepared and at least one sealed to reclaim */
	if (segment_count < 4 || segment_size < MIB)
		return -EINVAL;
	segment_size = align_up(segment_size, MIB);
	if (segment_size > 32ull * 1024 * MIB)   /* dir_entry.offset8 is 32-bit */
		return -EINVAL;
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	int empty = dir_is_empty(path);
	if (empty < 0)
		return empty;
	if (!empty && !force)
		return STG_EEXIST;

	struct vol_header h = {
		.magic = STG_VOL_MAGIC, .version = STG_FORMAT_VERSION,
		.segment_size = segment_size, .segment_count = segment_count,
		.created_us = stg_realtime_us(),
	};
	if (getrandom(h.uuid, sizeof h.uuid, 0) != (ssize_t)sizeof h.uuid)
		return -EIO;
	h.uuid[6] = (h.uuid[6] & 0x0f) | 0x40;   /* RFC 4122 version 4 */
	h.uuid[8] = (h.uuid[8] & 0x3f) | 0x80;
	h.checksum = XXH3_64bits(&h, offsetof(struct vol_header, checksum));

	/* Header last: a half-formatted directory is not a volume. */
	char file[512];
	snprintf(file, sizeof file, "%s/%s", path, STG_VOL_HEADER_FILE);
	unlink(file);
	for (uint32_t i = 0; i < segment_count; i++) {
		int err = create_segment(path, i, segment_size, flags & STG_FORMAT_ZERO);
		if (err)
			return err;
	}
	int err = write_header(path, &h);
	if (err)
		return err;
	if (out)
		info_from_header(&h, out);
	return 0;
}

static int read_header(const char *path, struct vol_header *h)
{
	char file[512];
	snprintf(file, sizeof file, "%s/%s", path, STG_VOL_HEADER_FILE);
	int fd = open(file, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? STG_EFORMAT : -errno;
	ssize_t n = pread(fd, h, sizeof *h, 0);
	close(fd);
	if (n != (ssize_t)sizeof *h)
		return STG_EFORMAT;
	if (h->magic != STG_VOL_MAGIC || h->version != STG_FORMAT_VERSION)
		return STG_EFORMAT;
	if (h->checksum != XXH3_64bits(h, offsetof(struct vol_header, checksum)))
		return STG_ECORRUPT;
	if (h->segment_count == 0 || h->segment_size < MIB || h->segment_size % MIB)
		return STG_EFORMAT;
	return 0;
}

int stg_volume_probe(const char *path, struct stg_volume_info *out)
{
	struct vol_header h;
	int err = read_header(path, &h);
	if (!err)
		info_from_header(&h, out);
	return err;
}

static int open_segments(struct vol *v)
{
	uint32_t n = v->hdr.segment_count;
	v->seg_fd = malloc(n * sizeof *v->seg_fd);
	v->slot_gen = calloc(n, sizeof *v->slot_gen);
	if (!v->seg_fd || !v->slot_gen)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		v->seg_fd[i] = -1;
	for (uint32_t i = 0; i < n; i++) {
		char file[512];
		snprintf(file, sizeof file, "%s/" STG_SEG_FILE_FMT, v->path, i);
		v->seg_fd[i] = open(file, O_RDONLY | O_CLOEXEC);
		if (v->seg_fd[i] < 0)
			return -errno;
		struct stat st;
		if (fstat(v->seg_fd[i], &st) || (uint64_t)st.st_size < v->hdr.segment_size)
			return STG_EFORMAT;
	}
	return 0;
}

int vol_open_segment_direct(struct vol *v, uint32_t slot)
{
	char file[512];
	snprintf(file, sizeof file, "%s/" STG_SEG_FILE_FMT, v->path, slot);
	int fd = open(file, O_WRONLY | O_DIRECT | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int vol_open_segment_buffered(struct vol *v, uint32_t slot)
{
	char file[512];
	snprintf(file, sizeof file, "%s/" STG_SEG_FILE_FMT, v->path, slot);
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
	         u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* Finds the volume's record in the index, by path and by UUID, or adds it. */
static int match_index(struct stg *stg, struct vol *v)
{
	MDB_txn *t;
	int err = idx_write_begin(stg->ix, &t);
	if (err)
		return err;
	MDB_cursor *c;
	mdb_cursor_open(t, idx_db_volumes(stg->ix), &c);
	MDB_val k, d;
	int by_path = -1, by_uuid = -1, max_id = 0;
	struct idx_volume rec;
	for (int rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		const uint8_t *kb = k.mv_data;
		int id = kb[0] << 8 | kb[1];
		memcpy(&rec, d.mv_data, sizeof rec);
		if (id > max_id)
			max_id = id;
		if (!strncmp(rec.path, v->path, sizeof rec.path))
			by_path = id;
		if (!memcmp(rec.uuid, v->hdr.uuid, 16))
			by_uuid = id;
	}
	mdb_cursor_close(c);
	char us[37];
	uuid_str(v->hdr.uuid, us);
	if (by_path >= 0 && by_path != by_uuid) {
		snprintf(v->last_error, sizeof v->last_error,
		         "volume UUID %s does not match the index for this path "
		         "(a different disk is mounted here)", us);
		mdb_txn_abort(t);
		return STG_EUUID;
	}
	if (by_uuid >= 0 && by_path != by_uuid) {
		snprintf(v->last_error, sizeof v->last_error,
		         "volume %s is known to the index under another path "
		         "(disk moved or mounted in the wrong place)", us);
		mdb_txn_abort(t);
		return STG_EUUID;
	}
	if (by_uuid >= 0) {
		v->id = (uint16_t)by_uuid;
		mdb_txn_abort(t);
		return 0;
	}
	memset(&rec, 0, sizeof rec);
	memcpy(rec.uuid, v->hdr.uuid, 16);
	rec.segment_size = v->hdr.segment_size;
	rec.segment_count = v->hdr.segment_count;
	rec.next_gen = 1;
	snprintf(rec.path, sizeof rec.path, "%s", v->path);
	v->id = (uint16_t)(max_id + 1);
	uint8_t kb[2] = { v->id >> 8, v->id & 0xff };
	k = (MDB_val){ 2, kb };
	d = (MDB_val){ sizeof rec, &rec };
	err = mdb_put(t, idx_db_volumes(stg->ix), &k, &d, 0);
	if (err) {
		mdb_txn_abort(t);
		return err;
	}
	LOG_INFO("event=volume_added path=%s uuid=%s id=%u", v->path, us, v->id);
	return idx_write_commit(stg->ix, t);
}

static int note_slot(void *user, uint32_t gen, const struct idx_segment *s)
{
	struct vol *v = user;
	if (s->slot >= v->hdr.segment_count)
		return STG_ECORRUPT;
	v->slot_gen[s->slot] = gen;
	return 0;
}

/* Loads which generation lives in each slot from the segment records. */
static int load_slots(struct stg *stg, struct vol *v)
{
	MDB_txn *t;
	int err = idx_read_begin(stg->ix, &t);
	if (err)
		return err;
	err = idx_foreach_segment(t, stg->ix, v->id, note_slot, v);
	idx_read_end(stg->ix, t);
	v->free_slots = 0;
	for (uint32_t i = 0; i < v->hdr.segment_count; i++)
		v->free_slots += v->slot_gen[i] == 0;
	return err;
}

int vol_attach(struct stg *stg, struct vol *v, const char *path)
{
	/* the index knows a volume by its UUID and its canonical path */
	char canon[PATH_MAX];
	const char *p = realpath(path, canon) ? canon : path;
	pthread_mutex_init(&v->lock, NULL);
	v->state = STG_VOL_REFUSED;
	if (strlen(p) >= sizeof v->path) {
		snprintf(v->last_error, sizeof v->last_error, "volume path longer than %zu bytes",
		         sizeof v->path - 1);
		LOG_ERR("event=volume_refused path=%s reason=\"%s\"", path, v->last_error);
		return -ENAMETOOLONG;
	}
	memcpy(v->path, p, strlen(p) + 1);
	int err = read_header(path, &v->hdr);
	if (err) {
		snprintf(v->last_error, sizeof v->last_error, "bad volume header: %s",
		         stg_strerror(err));
		goto fail;
	}
	err = open_segments(v);
	if (err) {
		snprintf(v->last_error, sizeof v->last_error,
		         "cannot open segment files: %s", stg_strerror(err));
		goto fail;
	}
	err = match_index(stg, v);
	if (err)
		goto fail;
	err = load_slots(stg, v);
	if (err) {
		snprintf(v->last_error, sizeof v->last_error,
		         "segment records unreadable: %s", stg_strerror(err));
		goto fail;
	}
	v->q_limit = stg->cfg.queue_bytes_per_volume;
	v->state = STG_VOL_ACTIVE;
	return 0;
fail:
	LOG_ERR("event=volume_refused path=%s reason=\"%s\"", path, v->last_error);
	return err;
}

void vol_detach(struct vol *v)
{
	if (v->seg_fd)
		for (uint32_t i = 0; i < v->hdr.segment_count; i++)
			if (v->seg_fd[i] >= 0)
				close(v->seg_fd[i]);
	free(v->seg_fd);
	free(v->slot_gen);
	v->seg_fd = NULL;
	v->slot_gen = NULL;
	pthread_mutex_destroy(&v->lock);
}

void vol_fail(struct stg *stg, struct vol *v, const char *why, int err)
{
	(void)stg;
	int expected = STG_VOL_ACTIVE;
	if (!atomic_compare_exchange_strong(&v->state, &expected, STG_VOL_FAILED))
		return;
	snprintf(v->last_error, sizeof v->last_error, "%s: %s", why, stg_strerror(err));
	LOG_ERR("event=volume_failed path=%s reason=\"%s\" action=out_of_service",
	        v->path, v->last_error);
}

/* The volume a camera's next chunk goes to: the camera's current volume if
 * it is healthy, else a healthy volume chosen by camera id, so that cameras
 * spread evenly and stay put (sequential runs) while nothing fails. */
int vol_pick_for_camera(struct stg *stg, uint32_t camera_id)
{
	int active[STG_MAX_VOLUMES], n = 0;
	for (int i = 0; i < stg->nvols; i++)
		if (stg->vols[i].state == STG_VOL_ACTIVE)
			active[n++] = i;
	if (n == 0)
		return -1;
	return active[camera_id % (uint32_t)n];
}

/* Fills a 4 KiB block with the header of generation `gen` in `slot`. */
void seg_header_block(const struct vol *v, uint32_t slot, uint32_t gen,
                      int64_t now_us, uint8_t block[STG_BLOCK])
{
	struct seg_header h = {
		.magic = STG_SEG_MAGIC, .version = STG_FORMAT_VERSION,
		.slot = slot, .generation = gen, .opened_us = now_us,
	};
	memcpy(h.volume_uuid, v->hdr.uuid, 16);
	h.checksum = XXH3_64bits(&h, offsetof(struct seg_header, checksum));
	memset(block, 0, STG_BLOCK);
	memcpy(block, &h, sizeof h);
}
