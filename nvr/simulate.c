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
/* The demo's video files (scripts/make-fixtures.sh OUTDIR 10 384): 10 s,
 * 384 kbit/s, 25 fps, 640x360, so that 200 cameras and their simulator
 * stay light on a small machine. */
#define SIM_DEMO_FIXTURE "10-384-25-640x360"

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

/*
 * The demo's city: Wuhai, Inner Mongolia, and its three districts around
 * their real centres. Camera k is in district k mod 3 and is a site of
 * kind sim_kind_cycle[k mod 10] (4 in 10 street crossings, 2 residential
 * compounds, 1 school, 1 bank, 1 checkpoint, 1 village), so that any
 * number of cameras spreads evenly and the same id always gets the same
 * place. Streets, schools, banks and compounds stand on a grid of six
 * east-west and six north-south streets about 600 m apart around the
 * centre; checkpoints sit on the roads out, 3.5-6 km away, villages 4-9 km
 * out. Street and site names are plausible, not a survey of the city.
 */
enum sim_kind { SK_STREET, SK_SCHOOL, SK_BANK, SK_CHECKPOINT, SK_VILLAGE, SK_RESIDENTIAL,
                SK_KINDS };

static const enum sim_kind sim_kind_cycle[10] = {
	SK_STREET, SK_SCHOOL, SK_BANK, SK_CHECKPOINT, SK_VILLAGE, SK_RESIDENTIAL,
	SK_STREET, SK_STREET, SK_RESIDENTIAL, SK_STREET,
};
static const char *const sim_kind_tags[SK_KINDS] = {
	[SK_STREET] = "street", [SK_SCHOOL] = "school;street", [SK_BANK] = "bank;street",
	[SK_CHECKPOINT] = "checkpoint", [SK_VILLAGE] = "village", [SK_RESIDENTIAL] = "residential",
};

#define SIM_GRID 6
#define SIM_LAT_STEP 0.0055      /* ~610 m */
#define SIM_LON_STEP 0.0070      /* ~600 m at 39.5 N */
#define SIM_KM_LAT (1.0 / 111.2)
#define SIM_KM_LON (1.0 / 85.8)

struct sim_district {
	const char *name;
	double lat, lon;                      /* centre */
	const char *ew[SIM_GRID], *ns[SIM_GRID];   /* street names */
};

static const struct sim_district sim_districts[3] = {
	{ "Haibowan", 39.684, 106.825,
	  { "Renmin Rd", "Chaoyang Rd", "Jiefang Rd", "Xinhua St", "Wuhai St", "Haibei Rd" },
	  { "Binhe St", "Huanghe St", "Gongyuan Rd", "Yingbin Ave", "Dongfeng Rd", "Baotou Rd" } },
	{ "Hainan", 39.441, 106.891,
	  { "Xinhua Rd", "Laoshidan Rd", "Gongnong Rd", "Hainan St", "Minzu Rd", "Yanjiang Rd" },
	  { "Helan St", "Xingfu Rd", "Kuangqu Rd", "Donghai St", "Jiaoyu Rd", "Beian Rd" } },
	{ "Wuda", 39.505, 106.713,
	  { "Renmin Rd", "Wuda St", "Jianshe Rd", "Gongye Rd", "Hebin Rd", "Qingshan Rd" },
	  { "Beihuan Rd", "Nanhuan Rd", "Tiyu St", "Kuangye Rd", "Zhanqian St", "Xiyuan Rd" } },
};

static const char *const sim_banks[] = {
	"ICBC", "Bank of China", "China Construction Bank", "Agricultural Bank of China",
	"Bank of Inner Mongolia", "Wuhai Rural Commercial Bank",
};
static const char *const sim_compounds[] = {
	"Xingfu", "Heping", "Jinxiu", "Yangguang", "Binhe", "Huayuan", "Lvzhou", "Xinhua",
};
static const char *const sim_gates[] = { "north gate", "south gate", "east gate", "west gate" };
static const char *const sim_roads_out[] = {
	"G6 Expressway toll station", "G110 checkpoint north", "G110 checkpoint south",
	"S215 checkpoint", "Yellow River bridge checkpoint", "industrial park checkpoint",
};
static const char *const sim_villages[] = {
	"Qianlitou", "Gongwusu", "Hetao", "Xinmin", "Dongfeng", "Hongqi", "Shuanghe", "Taiping",
};

#define SIM_COUNT(a) (sizeof (a) / sizeof (a)[0])

/* One simulated camera's place. */
struct sim_site {
	double lat, lon;
	char name[128], site[96];
};

/* A point on the grid: street i (east-west) and road j (north-south), in
 * grid steps from the centre, plus a few metres of deterministic jitter. */
static void sim_grid_point(const struct sim_district *d, double i, double j, uint32_t k,
                           struct sim_site *out)
{
	double jitter = (double)((k * 37u) % 11u) - 5.0;     /* -5 .. 5 */
	out->lat = d->lat + (i - 2.5) * SIM_LAT_STEP + jitter * 0.00002;
	out->lon = d->lon + (j - 2.5) * SIM_LON_STEP - jitter * 0.00002;
}

/* A point `km` out of the centre in direction `deg` (0 = north). */
static void sim_out_point(const struct sim_district *d, double km, double deg,
                          struct sim_site *out)
{
	double a = deg * M_PI / 180.0;
	out->lat = d->lat + km * cos(a) * SIM_KM_LAT;
	out->lon = d->lon + km * sin(a) * SIM_KM_LON;
}

/* The n-th site of kind `kind` in district d (n counts from 0 per district
 * and kind), for camera k. */
static void sim_site_of(const struct sim_district *d, enum sim_kind kind, uint32_t n, uint32_t k,
                        struct sim_site *o)
{
	uint32_t a = n % (SIM_GRID * SIM_GRID), i = a % SIM_GRID, j = (a / SIM_GRID + a) % SIM_GRID;
	uint32_t round = n / (SIM_GRID * SIM_GRID);
	switch (kind) {
	case SK_STREET:
		sim_grid_point(d, i, j, k, o);
		snprintf(o->site, sizeof o->site, "%s & %s", d->ew[i], d->ns[j]);
		break;
	case SK_SCHOOL:
		sim_grid_point(d, i, j + 0.5, k, o);
		snprintf(o->site, sizeof o->site, "No.%" PRIu32 " %s School", n / 2 + 1,
		         n % 2 ? "Middle" : "Primary");
		snprintf(o->name, sizeof o->name, "%s %s gate", d->name, o->site);
		return;
	case SK_BANK:
		sim_grid_point(d, i + 0.5, j, k, o);
		snprintf(o->site, sizeof o->site, "%s %s branch", sim_banks[n % SIM_COUNT(sim_banks)],
		         d->ns[j]);
		break;
	case SK_RESIDENTIAL:
		sim_grid_point(d, i + 0.5, j + 0.5, k, o);
		snprintf(o->site, sizeof o->site, "%s Garden %s",
		         sim_compounds[n % SIM_COUNT(sim_compounds)], sim_gates[(n / 8) % 4]);
		break;
	case SK_CHECKPOINT:
		sim_out_point(d, 3.5 + (n % 4) * 0.8, 30.0 + 60.0 * n, o);
		snprintf(o->site, sizeof o->site, "%s", sim_roads_out[n % SIM_COUNT(sim_roads_out)]);
		round = n / SIM_COUNT(sim_roads_out);
		break;
	case SK_VILLAGE:
		sim_out_point(d, 4.0 + (n % 6) * 1.0, 15.0 + 47.0 * n, o);
		snprintf(o->site, sizeof o->site, "%s village entrance",
		         sim_villages[n % SIM_COUNT(sim_villages)]);
		round = n / SIM_COUNT(sim_villages);
		break;
	case SK_KINDS:
		break;
	}
	int len = snprintf(o->name, sizeof o->name, "%s - %s", d->name, o->site);
	if (round && len > 0 && (size_t)len < sizeof o->name)
		snprintf(o->name + len, sizeof o->name - (size_t)len, " #%" PRIu32, round + 1);
}

/* One CSV row per simulated camera (see the layout above). */
static void write_camera_rows(FILE *f, const struct sim_config *cfg)
{
	uint32_t seen[3][SK_KINDS] = { { 0 } };
	fprintf(f, "id,name,main_url,latitude,longitude,tags,site,district,enabled\n");
	for (uint32_t k = 1; k <= cfg->cameras; k++) {
		const struct sim_district *d = &sim_districts[k % 3];
		enum sim_kind kind = sim_kind_cycle[k % 10];
		struct sim_site o;
		sim_site_of(d, kind, seen[k % 3][kind]++, k, &o);
		fprintf(f, "%" PRIu32 ",%s,rtsp://127.0.0.1:%u/cam/%" PRIu32 ",%.6f,%.6f,%s,%s,%s,true\n",
		        k, o.name, (unsigned)cfg->port, k, o.lat, o.lon, sim_kind_tags[kind], o.site,
		        d->name);
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
	char f264[PATH_MAX] = "", f265[PATH_MAX] = "";
	if (find_fixture(cfg->fixture_dir, "h264-" SIM_DEMO_FIXTURE ".264", f264, sizeof f264) ||
	    find_fixture(cfg->fixture_dir, "h265-" SIM_DEMO_FIXTURE ".265", f265, sizeof f265)) {
		nvr_log("warn", "simulate", "event=demo_fixture_missing dir=%s want=" SIM_DEMO_FIXTURE
		        " hint=\"make builds it; other fixtures of the directory are used\"",
		        cfg->fixture_dir);
		if (find_fixture(cfg->fixture_dir, "h264-*.264", f264, sizeof f264) ||
		    find_fixture(cfg->fixture_dir, "h265-*.265", f265, sizeof f265))
			f264[0] = '\0';
	}
	if (!f264[0]) {
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
