/*
 * demo_login.c - the demo's admin user (demo_login.h): a random password
 * (libsodium randombytes_buf, 18 bytes as 24 URL-safe base64 characters),
 * written to DIR/demo-login with mode 0600 before the user is created, so
 * that a failure never leaves an admin whose password nobody knows.
 */
#include "demo_login.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Writes "admin PASSWORD\n" to path, mode 0600, replacing any old file. */
static int demo_login_write(const char *path, const char *password)
{
	char line[128];
	int n = snprintf(line, sizeof line, "%s %s\n", DEMO_LOGIN_USER, password);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int err = fd < 0 ? -errno : 0;
	errno = 0;
	if (!err && (write(fd, line, (size_t)n) != n || fsync(fd)))
		err = errno ? -errno : -EIO;
	if (fd >= 0 && close(fd) && !err)
		err = -errno;
	sodium_memzero(line, sizeof line);
	if (err)
		nvr_log("error", "demo", "event=demo_login_write_failed path=%s error=\"%s\"", path,
		        strerror(-err));
	return err;
}

int demo_login_ensure(struct users *u, struct audit *a, const char *data_dir)
{
	uint64_t count = 0;
	unsigned char raw[18];
	char password[32], path[PATH_MAX];
	int err = users_count(u, &count);
	if (err || count)
		return err;
	if (snprintf(path, sizeof path, "%s/%s", data_dir, DEMO_LOGIN_FILE) >= (int)sizeof path)
		return -ENAMETOOLONG;
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(password, sizeof password, raw, sizeof raw,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof raw);
	err = demo_login_write(path, password);
	if (!err)
		err = users_add(u, DEMO_LOGIN_USER, USERS_ROLE_ADMIN, password);
	if (!err) {
		fprintf(stderr, "demo login: %s / %s\n", DEMO_LOGIN_USER, password);
		nvr_log("info", "demo", "event=demo_login_created user=%s file=%s", DEMO_LOGIN_USER,
		        path);
		json_t *d = json_pack("{s:s, s:s, s:s}", "name", DEMO_LOGIN_USER, "role", "admin",
		                      "reason", "demo start on an empty user database");
		err = d ? audit_append(a, "nvrd", "user_created", NULL, d, NULL) : -ENOMEM;
		json_decref(d);
	} else {
		nvr_log("error", "demo", "event=demo_login_failed error=\"%s\"", strerror(-err));
	}
	sodium_memzero(password, sizeof password);
	return err;
}
