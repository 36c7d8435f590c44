/*
 * camsim_main.c - nvr-camsim: options, start-up and the final summary.
 *
 *   nvr-camsim --cameras N --fixture FILE [--fixture FILE2 ...]
 *              [--listen ADDR:PORT ...] [--fps F] [--user U --password P]
 *              [--packet-size BYTES] [--fault SPEC ...] [--seconds S]
 *              [--verbose]
 *
 * Camera k (1..N) streams fixture (k-1) mod F at rtsp://ADDR:PORT/cam/k on
 * every listener (default 127.0.0.1:8554). Once listening it prints
 * "ready cameras=N listeners=L" on stdout; at exit (SIGINT, SIGTERM or
 * --seconds) it logs and prints the camsim_summary line and exits 0.
 * Bad options exit 2, start-up failures 1. See tools/camsim/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "camsim.h"
#include "../../nvr/cli_parse.h"
#include "../../nvr/log.h"

#define MAX_CAMERAS 1000000u
#define MAX_FAULTS 256

struct options {
	const char *fixtures[CS_MAX_FIXTURES];
	unsigned nfixtures;
	const char *listens[CS_MAX_LISTENERS];
	unsigned nlistens;
	const char *faults[MAX_FAULTS];
	unsigned nfaults;
	double fps;                 /* 0: each fixture's own */
	uint32_t seconds;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: nvr-camsim --cameras N --fixture FILE [--fixture FILE ...]\n"
	        "                  [--listen ADDR:PORT ...] [--fps F] [--user U --password P]\n"
	        "                  [--packet-size BYTES] [--fault KIND:ARG@CAMERAS ...]\n"
	        "                  [--seconds S] [--verbose]\n"
	        "  camera k is rtsp://ADDR:PORT/cam/k on every listener (default 127.0.0.1:8554)\n"
	        "  faults: drop:SECONDS stall:SECONDS corrupt:FRACTION reorder:FRACTION refuse\n");
}

static int bad(const char *what, const char *value)
{
	fprintf(stderr, "nvr-camsim: bad %s '%s'\n", what, value);
	return -EINVAL;
}

static int parse_fps(const char *v, double *out)
{
	char *end;
	double f = strtod(v, &end);
	if (*v < '0' || *v > '9' || *end || !isfinite(f) || f < 0.001 || f > 1000)
		return bad("--fps (0.001 to 1000)", v);
	*out = f;
	return 0;
}

static int add_arg(const char **list, unsigned *n, unsigned max, const char *v, const char *what)
{
	if (*n == max)
		return bad(what, "(too many)");
	list[(*n)++] = v;
	return 0;
}

static int parse_options(int argc, char **argv, struct cs_server *s, struct options *o)
{
	enum { O_CAMERAS = 256, O_FIXTURE, O_LISTEN, O_FPS, O_USER, O_PASSWORD,
	       O_PACKET_SIZE, O_FAULT, O_SECONDS, O_VERBOSE, O_HELP };
	static const struct option longopts[] = {
		{ "cameras", required_argument, NULL, O_CAMERAS },
		{ "fixture", required_argument, NULL, O_FIXTURE },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "fps", required_argument, NULL, O_FPS },
		{ "user", required_argument, NULL, O_USER },
		{ "password", required_argument, NULL, O_PASSWORD },
		{ "packet-size", required_argument, NULL, O_PACKET_SIZE },
		{ "fault", required_argument, NULL, O_FAULT },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t v;
	int opt, err = 0;

	s->packet_size = 1400;
	while (!err && (opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case O_CAMERAS:
			err = cli_parse_u32(optarg, 1, MAX_CAMERAS, &s->ncameras) ?
			      bad("--cameras (1 to 1000000)", optarg) : 0;
			break;
		case O_FIXTURE:
			err = add_arg(o->fixtures, &o->nfixtures, CS_MAX_FIXTURES, optarg, "--fixture");
			break;
		case O_LISTEN:
			err = add_arg(o->listens, &o->nlistens, CS_MAX_LISTENERS, optarg, "--listen");
			break;
		case O_FPS:
			err = parse_fps(optarg, &o->fps);
			break;
		case O_USER:
			s->user = optarg;
			break;
		case O_PASSWORD:
			s->password = optarg;
			break;
		case O_PACKET_SIZE:
			err = cli_parse_u32(optarg, 64, 65507, &v) ?
			      bad("--packet-size (64 to 65507)", optarg) : 0;
			s->packet_size = v;
			break;
		case O_FAULT:
			err = add_arg(o->faults, &o->nfaults, MAX_FAULTS, optarg, "--fault");
			break;
		case O_SECONDS:
			err = cli_parse_u32(optarg, 1, UINT32_MAX, &o->seconds) ?
			      bad("--seconds", optarg) : 0;
			break;
		case O_VERBOSE:
			s->verbose = true;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			err = -EINVAL;
		}
	}
	if (err)
		return err;
	if (optind < argc)
		return bad("argument", argv[optind]);
	if (!s->ncameras || !o->nfixtures) {
		usage(stderr);
		return -EINVAL;
	}
	if (!s->user != !s->password) {
		fprintf(stderr, "nvr-camsim: --user and --password go together\n");
		return -EINVAL;
	}
	return 0;
}

static int setup_faults(struct cs_server *s, const struct options *o)
{
	if (!o->nfaults)
		return 0;
	s->faults = calloc(s->ncameras, sizeof *s->faults);
	if (!s->faults)
		return -ENOMEM;
	for (unsigned i = 0; i < o->nfaults; i++)
		if (cs_fault_parse(o->faults[i], s->faults, s->ncameras))
			return -EINVAL;
	return 0;
}

/* Descriptors: the soft limit goes to the hard limit, which root first
 * raises to the kernel's fs.nr_open. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		nvr_log("warn", "camsim", "event=nofile_limit error=\"%s\"", strerror(errno));
		return;
	}
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	unsigned long nr_open = 0;
	if (f) {
		if (fscanf(f, "%lu", &nr_open) != 1)
			nr_open = 0;
		fclose(f);
	}
	if (nr_open > rl.rlim_max) {
		struct rlimit want = { nr_open, nr_open };
		if (!setrlimit(RLIMIT_NOFILE, &want))
			rl = want;
		else if (geteuid() == 0)
			nvr_log("warn", "camsim", "event=nofile_hard_limit wanted=%lu error=\"%s\"",
			        nr_open, strerror(errno));
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		nvr_log("warn", "camsim", "event=nofile_limit error=\"%s\"", strerror(errno));
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	nvr_log("info", "camsim", "event=nofile_limit soft=%lu hard=%lu",
	        (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static int load_fixtures(struct cs_server *s, const struct options *o)
{
	for (unsigned i = 0; i < o->nfixtures; i++) {
		int err = cs_fixture_load(o->fixtures[i], s->packet_size, &s->fixtures[i]);
		if (err)
			return err;
		s->nfixtures++;
	}
	s->cameras = calloc(s->ncameras, sizeof *s->cameras);
	if (!s->cameras)
		return -ENOMEM;
	uint32_t num = 0, den = 1;
	if (o->fps > 0) {
		num = (uint32_t)lround(o->fps * 1000);
		den = 1000;
		uint32_t g = gcd(num, den);
		num /= g;
		den /= g;
	}
	for (uint32_t k = 0; k < s->ncameras; k++) {
		struct cs_camera *cam = &s->cameras[k];
		cam->fixture = (uint16_t)(k % s->nfixtures);
		cam->fps_num = num ? num : s->fixtures[cam->fixture].fps_num;
		cam->fps_den = num ? den : s->fixtures[cam->fixture].fps_den;
	}
	return 0;
}

static int start(struct cs_server *s, const struct options *o)
{
	int err = setup_faults(s, o);
	if (err)
		return err == -EINVAL ? 2 : 1;
	raise_nofile();
	if (load_fixtures(s, o) || cs_scratch_init(s))
		return 1;
	for (unsigned i = 0; i < (o->nlistens ? o->nlistens : 1); i++) {
		const char *a = o->nlistens ? o->listens[i] : "127.0.0.1:8554";
		err = cs_listen(s, a);
		if (err == -EINVAL) {
			fprintf(stderr, "nvr-camsim: bad --listen '%s' (IPv4 ADDR:PORT)\n", a);
			return 2;
		}
		if (err) {
			nvr_log("error", "camsim", "event=listen_failed addr=%s error=\"%s\"", a,
			        strerror(-err));
			return 1;
		}
	}
	return 0;
}

static void summary(const struct cs_server *s)
{
	char line[512];
	snprintf(line, sizeof line, "event=camsim_summary sessions=%" PRIu64 " frames_sent=%" PRIu64
	         " packets_sent=%" PRIu64 " bytes_sent=%" PRIu64 " frames_skipped=%" PRIu64
	         " packets_corrupted=%" PRIu64 " pairs_reordered=%" PRIu64,
	         s->t.sessions, s->t.frames_sent, s->t.packets_sent, s->t.bytes_sent,
	         s->t.frames_skipped, s->t.packets_corrupted, s->t.pairs_reordered);
	nvr_log("info", "camsim", "%s", line);
	printf("%s\n", line);
	fflush(stdout);
	if (!s->verbose)
		return;
	for (uint32_t k = 0; k < s->ncameras; k++)
		nvr_log("info", "camsim", "event=camsim_camera camera=%" PRIu32 " frames_sent=%" PRIu64,
		        k + 1, s->cameras[k].frames_sent);
}

static void cleanup(struct cs_server *s)
{
	cs_server_close(s);
	cs_scratch_free(s);
	for (unsigned i = 0; i < s->nfixtures; i++)
		cs_fixture_free(&s->fixtures[i]);
	free(s->cameras);
	free(s->faults);
}

int main(int argc, char **argv)
{
	static struct cs_server s;
	struct options o = { 0 };
	int rc;

	s.epfd = -1;
	s.sig.fd = -1;
	if (parse_options(argc, argv, &s, &o))
		return 2;
	rc = start(&s, &o);
	if (rc) {
		cleanup(&s);
		return rc;
	}
	printf("ready cameras=%" PRIu32 " listeners=%u\n", s.ncameras, s.nlisteners);
	fflush(stdout);
	if (o.seconds)
		s.end_mono_us = nvr_mono_us() + (int64_t)o.seconds * 1000000;
	int err = cs_server_run(&s);
	if (err)
		nvr_log("error", "camsim", "event=loop_failed error=\"%s\"", strerror(-err));
	else if (s.stop)
		nvr_log("info", "camsim", "event=stopping signal=%d", s.stop);
	summary(&s);
	cleanup(&s);
	return err ? 1 : 0;
}
