/*
 * datadir.c - creating, locking and opening a data directory (datadir.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "log.h"
#include "volume_plan.h"

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0755) && errno != EEXIST ? -errno : 0;
}

static void name_volume(struct datadir *d, int i)
{
	snprintf(d->vol_path[i], sizeof d->vol_path[i], "%s/vol%d", d->path, i);
	d->vols[i] = d->vol_path[i];
}

/* volumes == 0: count the DIR/volN directories that exist. */
static int discover_volumes(struct datadir *d)
{
	int n = 0;
	struct stat st;
	while (n < DATADIR_MAX_VOLUMES) {
		name_volume(d, n);
		if (stat(d->vol_path[n], &st) || !S_ISDIR(st.st_mode))
			break;
		n++;
	}
	return n;
}

int datadir_init(struct datadir *d, const char *dir, int volumes, bool create)
{
	memset(d, 0, sizeof *d);
	d->lock_fd = -1;
	if (volumes < 0 || volumes > DATADIR_MAX_VOLUMES)
		return -EINVAL;
	int err = create ? mkdir_p(dir) : 0;
	if (!err && !realpath(dir, d->path))
		err = -errno;
	if (err) {
		nvr_log("error", "datadir", "event=data_dir_failed path=%s error=\"%s\"", dir,
		        strerror(-err));
		return err;
	}
	snprintf(d->index, sizeof d->index, "%s/index", d->path);
	snprintf(d->registry, sizeof d->registry, "%s/registry", d->path);
	snprintf(d->users, sizeof d->users, "%s/users", d->path);
	snprintf(d->audit, sizeof d->audit, "%s/audit", d->path);
	if (volumes == 0) {
		d->volume_count = discover_volumes(d);
		return 0;
	}
	d->volume_count = volumes;
	for (int i = 0; i < volumes; i++)
		name_volume(d, i);
	return 0;
}

int datadir_set_volumes(struct datadir *d, const char *const *paths, int n)
{
	char real[PATH_MAX];
	if (n < 1 || n > DATADIR_MAX_VOLUMES)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		int err = mkdir_p(paths[i]);
		if (!err && !realpath(paths[i], real))
			err = -errno;
		if (!err && snprintf(d->vol_path[i], sizeof d->vol_path[i], "%s", real) >=
		            (int)sizeof d->vol_path[i])
			err = -ENAMETOOLONG;
		if (err) {
			nvr_log("error", "datadir", "event=volume_dir_failed path=%s error=\"%s\"",
			        paths[i], strerror(-err));
			return err;
		}
		d->vols[i] = d->vol_path[i];
	}
	d->volume_count = n;
	return 0;
}

int datadir_lock(struct datadir *d)
{
	char lock[PATH_MAX + 16];
	snprintf(lock, sizeof lock, "%s/nvrd.lock", d->path);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		nvr_log("error", "datadir", "event=data_dir_locked path=%s error=\"%s\" hint=\"%s\"",
		        d->path, strerror(-err),
		        err == -EWOULDBLOCK ? "another nvrd uses this directory" : "");
		return err;
	}
	d->lock_fd = fd;
	return 0;
}

static void log_volume(const char *event, const char *path, const struct stg_volume_info *vi)
{
	char uuid[37];
	vp_uuid_str(vi->uuid, uuid);
	nvr_log("info", "datadir", "event=%s path=%s uuid=%s segment_size=%" PRIu64
	        " segments=%" PRIu32, event, path, uuid, vi->segment_size, vi->segment_count);
}

/* Formats `path` as a volume of `size` bytes, unless it already is one. */
static int prepare_volume(const char *path, uint64_t size)
{
	struct stg_volume_info vi;
	int err = stg_volume_probe(path, &vi);
	if (!err) {
		log_volume("volume_found", path, &vi);
		return 0;
	}
	if (err != STG_EFORMAT) {
		nvr_log("error", "datadir", "event=volume_unreadable path=%s error=\"%s\"", path,
		        stg_strerror(err));
		return err;
	}
	uint64_t seg = vp_auto_segment_size(size);
	err = stg_volume_format(path, seg, vp_segments_in(size, seg), 0, &vi);
	if (err) {
		nvr_log("error", "datadir", "event=volume_format_failed path=%s error=\"%s\"%s", path,
		        stg_strerror(err), err == STG_EEXIST ?
		        " hint=\"the directory holds files but no volume; move them away or run"
		        " nvr-format --force\"" : "");
		return err;
	}
	log_volume("volume_formatted", path, &vi);
	return 0;
}

int datadir_prepare_volume(struct datadir *d, int i, uint64_t volume_size)
{
	if (i < 0 || i >= d->volume_count)
		return -EINVAL;
	return prepare_volume(d->vols[i], volume_size);
}

int datadir_prepare_volumes(struct datadir *d, uint64_t volume_size)
{
	for (int i = 0; i < d->volume_count; i++) {
		int err = prepare_volume(d->vols[i], volume_size);
		if (err)
			return err;
	}
	return 0;
}

int datadir_open_storage(struct datadir *d, const struct stg_config *base, struct stg **out)
{
	struct stg_config cfg = base ? *base : (struct stg_config){ 0 };
	cfg.index_dir = d->index;
	cfg.volumes = d->vols;
	cfg.volume_count = d->volume_count;
	if (d->volume_count == 0) {
		nvr_log("error", "datadir", "event=no_volumes path=%s", d->path);
		return -ENOENT;
	}
	int err = stg_open(&cfg, out);
	if (err)
		nvr_log("error", "datadir", "event=engine_open_failed index=%s error=\"%s\"",
		        d->index, stg_strerror(err));
	return err;
}

void datadir_release(struct datadir *d)
{
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->lock_fd = -1;
}
