/*
 * export_disk.c - the exports area on disk (layout in export.h): paths,
 * JSON files written atomically, removing a job's files, sizing a job's
 * directory, the id counter, and loading the jobs found at start.
 *
 * A job directory is named by its decimal id. At start a directory with a
 * manifest.json is a done job; one whose job.json says "failed" keeps that
 * reason; any other one was interrupted (the daemon stopped or crashed
 * while it was queued or running): its files other than job.json are
 * removed and job.json records "failed: interrupted".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_int.h"
#include "log.h"

void export_file_name(uint32_t camera, char name[EXPORT_FILE_NAME_MAX])
{
	snprintf(name, EXPORT_FILE_NAME_MAX, "camera-%" PRIu32 ".mp4", camera);
}

int export_path(const struct export_engine *e, uint64_t id, const char *name, char *buf,
                size_t n)
{
	int len = name ? snprintf(buf, n, "%s/%" PRIu64 "/%s", e->dir, id, name)
	               : snprintf(buf, n, "%s/%" PRIu64, e->dir, id);
	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

static int export_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = fsync(fd) ? -errno : 0;
	close(fd);
	return err;
}

int export_write_json(const char *dir, const char *name, const json_t *doc, bool durable)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	int fd = -1, err = -ENAMETOOLONG;
	if (snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= (int)sizeof tmp ||
	    snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst)
		goto fail;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	err = -errno;
	if (fd < 0)
		goto fail;
	err = -EIO;
	if (json_dumpfd(doc, fd, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) ||
	    write(fd, "\n", 1) != 1)
		goto fail;
	err = durable && fsync(fd) ? -errno : 0;
	if (err)
		goto fail;
	err = close(fd) ? -errno : 0;
	fd = -1;
	if (!err)
		err = rename(tmp, dst) ? -errno : 0;
	if (!err && durable)
		err = export_fsync_dir(dir);
	if (err)
		goto fail;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	nvr_log("error", "export", "event=write_failed dir=%s file=%s error=\"%s\"", dir, name,
	        strerror(-err));
	return err;
}

int export_remove(const char *dir, bool keep_job)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	int err = 0;
	struct dirent *de;
	char path[PATH_MAX];
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    (keep_job && !strcmp(de->d_name, "job.json")))
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path ||
		    unlink(path)) {
			int e = errno ? errno : ENAMETOOLONG;
			nvr_log("error", "export", "event=remove_failed path=%s/%s error=\"%s\"", dir,
			        de->d_name, strerror(e));
			if (!err)
				err = -e;
		}
	}
	closedir(d);
	if (!keep_job && !err && rmdir(dir)) {
		err = -errno;
		nvr_log("error", "export", "event=remove_failed path=%s error=\"%s\"", dir,
		        strerror(errno));
	}
	return err;
}

uint64_t export_du(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	uint64_t sum = 0;
	struct dirent *de;
	struct stat st;
	while ((de = readdir(d)) != NULL)
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	closedir(d);
	return sum;
}

/* A directory entry named by a job id (decimal, no leading zero). */
static bool export_id_name(const char *s, uint64_t *id)
{
	if (!s[0] || s[0] == '0' || strlen(s) > 18 || strspn(s, "0123456789") != strlen(s))
		return false;
	*id = strtoull(s, NULL, 10);
	return true;
}

int export_next_id(struct export_engine *e, uint64_t *id)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	uint64_t next = e->last_id + 1;
	if (snprintf(path, sizeof path, "%s/.last-id", e->dir) >= (int)sizeof path ||
	    snprintf(tmp, sizeof tmp, "%s/.last-id.tmp", e->dir) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	int err = fprintf(f, "%" PRIu64 "\n", next) < 0 ? -EIO : 0;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		unlink(tmp);
		nvr_log("error", "export", "event=id_not_saved path=%s error=\"%s\"", path,
		        strerror(-err));
		return err;
	}
	e->last_id = next;
	*id = next;
	return 0;
}

static void export_read_last_id(struct export_engine *e)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/.last-id", e->dir) >= (int)sizeof path)
		return;
	FILE *f = fopen(path, "r");
	uint64_t v;
	if (!f)
		return;
	if (fscanf(f, "%" SCNu64, &v) == 1 && v > e->last_id)
		e->last_id = v;
	fclose(f);
}

/* The request fields of a job.json or manifest: cameras, window, audit id. */
static int export_job_from_doc(struct export_job *j, json_t *doc)
{
	json_t *cams = json_object_get(doc, "cameras");
	json_t *req = json_object_get(doc, "requested");
	j->from_us = json_integer_value(json_object_get(req, "start_ms")) * 1000;
	j->to_us = json_integer_value(json_object_get(req, "end_ms")) * 1000;
	j->audit_id = (uint64_t)json_integer_value(json_object_get(doc, "audit_id"));
	j->estimate = (uint64_t)json_integer_value(json_object_get(doc, "estimated_bytes"));
	j->ncams = json_array_size(cams);
	j->cams = calloc(j->ncams ? j->ncams : 1, sizeof *j->cams);
	j->res = calloc(j->ncams ? j->ncams : 1, sizeof *j->res);
	if (!j->cams || !j->res)
		return -ENOMEM;
	for (size_t i = 0; i < j->ncams; i++) {
		json_t *c = json_array_get(cams, i);
		j->cams[i].id = (uint32_t)json_integer_value(json_object_get(c, "id"));
		snprintf(j->cams[i].name, sizeof j->cams[i].name, "%s",
		         json_string_value(json_object_get(c, "name")) ?: "");
		j->cams[i].latitude = json_number_value(json_object_get(c, "latitude"));
		j->cams[i].longitude = json_number_value(json_object_get(c, "longitude"));
		snprintf(j->cams[i].district, sizeof j->cams[i].district, "%s",
		         json_string_value(json_object_get(c, "district")) ?: "");
		j->res[i].frames = (uint64_t)json_integer_value(json_object_get(c, "frames"));
		j->res[i].bytes = (uint64_t)json_integer_value(json_object_get(c, "bytes"));
		j->res[i].frame_bytes = (uint64_t)json_integer_value(json_object_get(c, "frame_bytes"));
		j->res[i].has_file = json_is_string(json_object_get(c, "file"));
	}
	return 0;
}

/* A done job's totals and times, from its manifest. */
static void export_done_from_manifest(struct export_job *j, json_t *m)
{
	uint64_t frames = 0, bytes = 0, frame_bytes = 0;
	for (size_t i = 0; i < j->ncams; i++) {
		frames += j->res[i].frames;
		bytes += j->res[i].bytes;
		frame_bytes += j->res[i].frame_bytes;
	}
	atomic_store(&j->frames, frames);
	atomic_store(&j->bytes, bytes);
	atomic_store(&j->frame_bytes, frame_bytes);
	j->started_us = json_integer_value(json_object_get(m, "started_at_ms")) * 1000;
	j->finished_us = json_integer_value(json_object_get(m, "finished_at_ms")) * 1000;
	j->elapsed_us = j->finished_us > j->started_us ? j->finished_us - j->started_us : 0;
	j->state = EXPORT_DONE;
}

static json_t *export_load_doc(const char *dir, const char *name)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return NULL;
	json_error_t jerr;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc && access(path, F_OK) == 0)
		nvr_log("warn", "export", "event=unreadable path=%s line=%d error=\"%s\"", path,
		        jerr.line, jerr.text);
	return json_is_object(doc) ? doc : (json_decref(doc), NULL);
}

/* Turns an interrupted job directory into "failed: interrupted". */
static int export_mark_interrupted(struct export_job *j, const char *dir)
{
	int err = export_remove(dir, true);
	if (!j->doc)
		j->doc = json_pack("{s:I}", "id", (json_int_t)j->id);
	if (!j->doc)
		return -ENOMEM;
	json_object_set_new(j->doc, "state", json_string("failed"));
	json_object_set_new(j->doc, "error", json_string("interrupted"));
	int werr = export_write_json(dir, "job.json", j->doc, false);
	j->state = EXPORT_FAILED;
	snprintf(j->error, sizeof j->error, "interrupted");
	nvr_log("warn", "export", "event=job_interrupted id=%" PRIu64 " action=partial_files_removed",
	        j->id);
	return err ? err : werr;
}

/* Loads one job directory; 0 or a negative errno. */
static int export_load_one(struct export_engine *e, uint64_t id)
{
	char dir[PATH_MAX];
	int err = export_path(e, id, NULL, dir, sizeof dir);
	struct export_job *j = err ? NULL : calloc(1, sizeof *j);
	if (!j)
		return err ? err : -ENOMEM;
	j->id = id;
	json_t *m = export_load_doc(dir, "manifest.json");
	j->doc = m ? m : export_load_doc(dir, "job.json");
	err = j->doc ? export_job_from_doc(j, j->doc) : 0;
	const char *state = json_string_value(json_object_get(j->doc, "state"));
	if (!err && m) {
		export_done_from_manifest(j, m);
	} else if (!err && state && !strcmp(state, "failed")) {
		j->state = EXPORT_FAILED;
		snprintf(j->error, sizeof j->error, "%s",
		         json_string_value(json_object_get(j->doc, "error")) ?: "unknown");
	} else if (!err) {
		err = export_mark_interrupted(j, dir);
	}
	if (err && err != -ENOMEM && j->state == EXPORT_FAILED)
		err = 0;       /* logged; the job still shows as failed */
	if (err) {
		export_job_free(j);
		return err;
	}
	j->disk_bytes = export_du(dir);
	e->used += j->disk_bytes;
	/* ids are loaded in any order: keep the list sorted */
	struct export_job **pp = &e->jobs;
	while (*pp && (*pp)->id < id)
		pp = &(*pp)->next;
	j->next = *pp;
	*pp = j;
	if (!j->next)
		e->jobs_tail = j;
	if (id > e->last_id)
		e->last_id = id;
	return 0;
}

int export_load(struct export_engine *e)
{
	export_read_last_id(e);
	DIR *d = opendir(e->dir);
	if (!d)
		return -errno;
	struct dirent *de;
	int err = 0;
	unsigned n = 0;
	while (!err && (de = readdir(d)) != NULL) {
		uint64_t id;
		if (export_id_name(de->d_name, &id) && (err = export_load_one(e, id)) == 0)
			n++;
	}
	closedir(d);
	if (!err)
		nvr_log("info", "export", "event=exports_loaded dir=%s jobs=%u used=%" PRIu64
		        " quota=%" PRIu64, e->dir, n, e->used, e->cfg.quota_bytes);
	return err;
}
