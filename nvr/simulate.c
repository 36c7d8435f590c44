/*
 * simulate.c - runs nvr-camsim as a child process and registers its
 * cameras (simulate.h).
 *
 * The child's stdout is a pipe: the simulator prints one "ready ..." line
 * once it listens, which is what sim_start waits for; its stderr (log
 * lines, comp=camsim) goes to ours. The child gets PR_SET_PDEATHSIG so it
 * never outlives the daemon.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "simulate.h"

#define READY_TIMEOUT_MS 10000

struct sim {
	pid_t pid;
	int out_fd;
};

/* The first file in dir whose name matches `pattern` (sorted by name). */
static int find_fixture(const char *dir, const char *pattern, char *out, size_t outsz)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return -errno;
	int err = -ENOENT;
	for (int i = 0; i < n; i++) {
		if (err && fnmatch(pattern, names[i]->d_name, 0) == 0 &&
		    snprintf(out, outsz, "%s/%s", dir, names[i]->d_name) < (int)outsz)
			err = 0;
		free(names[i]);
	}
	free(names);
	return err;
}

static void exec_camsim(const struct sim_config *cfg, const char *f264, const char *f265,
                        int out_fd)
{
	char cams[16], listen[64];
	snprintf(cams, sizeof cams, "%" PRIu32, cfg->cameras);
	snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)cfg->port);
	/* The daemon blocks its signals to take them synchronously; the
	 * simulator must not inherit that mask, or SIGTERM would not stop it. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	dup2(out_fd, STDOUT_FILENO);
	execl(cfg->camsim_path, "nvr-camsim", "--cameras", cams, "--fixture", f264,
	      "--fixture", f265, "--listen", listen, (char *)NULL);
	fprintf(stderr, "level=error comp=simulate event=exec_failed path=%s error=\"%s\"\n",
	        cfg->camsim_path, strerror(errno));
	_exit(127);
}

/* Reads the child's stdout until a line starting with "ready". */
static int wait_ready(struct sim *s)
{
	char buf[512];
	size_t len = 0;
	int64_t deadline = nvr_mono_us() + READY_TIMEOUT_MS * 1000LL;
	while (nvr_mono_us() < deadline) {
		struct pollfd p = { .fd = s->out_fd, .events = POLLIN };
		int left = (int)((deadline - nvr_mono_us()) / 1000);
		if (poll(&p, 1, left > 0 ? left : 1) <= 0)
			continue;
		ssize_t n = read(s->out_fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			return -EPIPE;   /* the simulator exited before it was ready */
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "ready"))
			return 0;
		if (len == sizeof buf - 1)
			len = 0;
	}
	return -ETIMEDOUT;
}

static const char *const districts[] = { "Haibowan", "Hainan", "Wuda" };
/* District centres (degrees) of Wuhai, Inner Mongolia. */
static const double district_lat[] = { 39.684, 39.441, 39.505 };
static const double district_lon[] = { 106.825, 106.891, 106.713 };
static const char *const tag_sets[] = {
	"street", "school;street", "bank;street", "checkpoint", "village", "residential",
};

/* One CSV row per simulated camera, spread on a spiral around its district. */
static void write_camera_rows(FILE *f, const struct sim_config *cfg)
{
	fprintf(f, "id,name,main_url,latitude,longitude,tags,site,district,enabled\n");
	for (uint32_t k = 1; k <= cfg->cameras; k++) {
		int d = (int)(k % 3);
		double angle = k * 2.39996, radius = 0.004 * sqrt((double)k);
		fprintf(f, "%" PRIu32 ",Simulated camera %" PRIu32 ",rtsp://127.0.0.1:%u/cam/%" PRIu32
		        ",%.6f,%.6f,%s,simulator,%s,true\n", k, k, (unsigned)cfg->port, k,
		        district_lat[d] + radius * sin(angle), district_lon[d] + radius * cos(angle),
		        tag_sets[k % 6], districts[d]);
	}
}

static int register_cameras(const struct sim_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return -errno;
	write_camera_rows(f, cfg);
	fclose(f);
	FILE *in = fmemopen(text, len, "r");
	if (!in) {
		free(text);
		return -errno;
	}
	struct registry_import_result res;
	int err = registry_import(cfg->registry, in, REGISTRY_CSV, 0, &res);
	fclose(in);
	free(text);
	if (err)
		nvr_log("error", "simulate", "event=register_failed line=%d error=\"%s\"",
		        res.error_line, res.error);
	else
		nvr_log("info", "simulate", "event=cameras_registered cameras=%" PRIu64
		        " added=%" PRIu64 " updated=%" PRIu64, res.rows, res.added, res.updated);
	return err;
}

static int spawn(const struct sim_config *cfg, struct sim *s)
{
	char f264[PATH_MAX], f265[PATH_MAX];
	if (find_fixture(cfg->fixture_dir, "h264-*.264", f264, sizeof f264) ||
	    find_fixture(cfg->fixture_dir, "h265-*.265", f265, sizeof f265)) {
		nvr_log("error", "simulate", "event=no_fixtures dir=%s hint=\"run make, or"
		        " scripts/make-fixtures.sh %s\"", cfg->fixture_dir, cfg->fixture_dir);
		return -ENOENT;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0)
		exec_camsim(cfg, f264, f265, p[1]);
	close(p[1]);
	s->pid = pid;
	s->out_fd = p[0];
	return 0;
}

int sim_start(const struct sim_config *cfg, struct sim **out)
{
	struct sim *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->pid = -1;
	s->out_fd = -1;
	int err = spawn(cfg, s);
	if (!err && (err = wait_ready(s)) != 0)
		nvr_log("error", "simulate", "event=camsim_not_ready path=%s error=\"%s\"",
		        cfg->camsim_path, strerror(-err));
	if (!err)
		err = register_cameras(cfg);
	if (err) {
		sim_stop(s);
		return err;
	}
	nvr_log("info", "simulate", "event=camsim_started pid=%ld cameras=%" PRIu32
	        " url=rtsp://127.0.0.1:%u/cam/1", (long)s->pid, cfg->cameras, (unsigned)cfg->port);
	*out = s;
	return 0;
}

void sim_stop(struct sim *s)
{
	if (!s)
		return;
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		int status;
		while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (s->out_fd >= 0)
		close(s->out_fd);
	free(s);
}
