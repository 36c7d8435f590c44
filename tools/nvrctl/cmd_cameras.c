/*
 * cmd_cameras.c - `nvrctl cameras`: the camera registry from the command
 * line (nvr/registry.h), in DIR/registry of the data directory.
 *
 *   import FILE [--format csv|json] [--replace]   all or nothing
 *   export [--format csv|json] [--with-credentials] [FILE|-]
 *   list                                          one line per camera
 *   show ID
 *   delete ID
 *
 * Every subcommand takes --data DIR (default ./nvr-data). Passwords and
 * user names are never printed, except into an export asked for with
 * --with-credentials (written with mode 0600).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../nvr/cli_parse.h"
#include "../../nvr/log.h"
#include "../../nvr/registry.h"
#include "nvrctl.h"

#define CAM_DEFAULT_DATA "./nvr-data"

enum cam_opt_bits {
	CAM_OPT_FORMAT = 1, CAM_OPT_REPLACE = 2, CAM_OPT_CREDENTIALS = 4,
};

struct cam_args {
	const char *data;
	const char *format;       /* NULL: from the file name */
	bool replace, credentials;
	int npos;
	char **pos;               /* positional arguments */
};

struct cam_sub {
	const char *name;
	int (*run)(const struct cam_args *a);
	unsigned opts;            /* cam_opt_bits it accepts */
	int min_pos, max_pos;
	const char *usage;
};

static int cam_import(const struct cam_args *a);
static int cam_export(const struct cam_args *a);
static int cam_list(const struct cam_args *a);
static int cam_show(const struct cam_args *a);
static int cam_delete(const struct cam_args *a);

static const struct cam_sub cam_subs[] = {
	{ "import", cam_import, CAM_OPT_FORMAT | CAM_OPT_REPLACE, 1, 1,
	  "import FILE [--format csv|json] [--replace] [--data DIR]" },
	{ "export", cam_export, CAM_OPT_FORMAT | CAM_OPT_CREDENTIALS, 0, 1,
	  "export [--format csv|json] [--with-credentials] [--data DIR] [FILE|-]" },
	{ "list", cam_list, 0, 0, 0, "list [--data DIR]" },
	{ "show", cam_show, 0, 1, 1, "show ID [--data DIR]" },
	{ "delete", cam_delete, 0, 1, 1, "delete ID [--data DIR]" },
};
#define CAM_NSUBS (sizeof cam_subs / sizeof cam_subs[0])

static void cam_usage(FILE *f)
{
	fprintf(f, "usage: nvrctl cameras SUBCOMMAND ...\n");
	for (size_t i = 0; i < CAM_NSUBS; i++)
		fprintf(f, "  nvrctl cameras %s\n", cam_subs[i].usage);
	fprintf(f, "\nDIR defaults to %s; the registry is DIR/registry.\n"
	        "CSV and JSON fields:", CAM_DEFAULT_DATA);
	for (int i = 0; registry_csv_columns[i]; i++)
		fprintf(f, "%s%s", i ? "," : " ", registry_csv_columns[i]);
	fprintf(f, "\nimport --replace deletes the cameras the file does not list.\n");
}

static int cam_parse(const struct cam_sub *s, int argc, char **argv, struct cam_args *a)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "format", required_argument, NULL, 'f' },
		{ "replace", no_argument, NULL, 'r' },
		{ "with-credentials", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	*a = (struct cam_args){ .data = CAM_DEFAULT_DATA };
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		unsigned need = ch == 'f' ? CAM_OPT_FORMAT : ch == 'r' ? CAM_OPT_REPLACE :
		                ch == 'c' ? CAM_OPT_CREDENTIALS : 0;
		if (ch == 'h') {
			printf("usage: nvrctl cameras %s\n", s->usage);
			return 0;
		}
		if ((need && !(s->opts & need)) || ch == '?' || ch == ':') {
			fprintf(stderr, "nvrctl cameras %s: bad option \"%s\"\n", s->name,
			        argv[optind - 1]);
			goto usage;
		}
		if (ch == 'd')
			a->data = optarg;
		else if (ch == 'f')
			a->format = optarg;
		else if (ch == 'r')
			a->replace = true;
		else if (ch == 'c')
			a->credentials = true;
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < s->min_pos || a->npos > s->max_pos) {
		fprintf(stderr, "nvrctl cameras %s: wrong number of arguments\n", s->name);
		goto usage;
	}
	if (a->format && strcmp(a->format, "csv") && strcmp(a->format, "json")) {
		fprintf(stderr, "nvrctl cameras %s: --format is csv or json\n", s->name);
		goto usage;
	}
	return 1;
usage:
	fprintf(stderr, "usage: nvrctl cameras %s\n", s->usage);
	return -2;
}

/* DIR/registry; `create` makes DIR when it is missing (import), otherwise
 * a missing registry is an error rather than a new empty one. */
static int cam_open(const struct cam_args *a, const char *sub, bool create,
                    struct registry **r)
{
	char path[4096];
	struct stat st;
	int rc;
	if (snprintf(path, sizeof path, "%s/registry", a->data) >= (int)sizeof path) {
		fprintf(stderr, "nvrctl cameras %s: data directory path too long\n", sub);
		return -ENAMETOOLONG;
	}
	if (create && mkdir(a->data, 0750) && errno != EEXIST) {
		rc = -errno;
		fprintf(stderr, "nvrctl cameras %s: %s: %s\n", sub, a->data, strerror(-rc));
		return rc;
	}
	if (!create && stat(path, &st)) {
		rc = -errno;
		fprintf(stderr, "nvrctl cameras %s: no camera registry in %s (%s)\n", sub, a->data,
		        strerror(-rc));
		return rc;
	}
	if ((rc = registry_open(path, r)))
		fprintf(stderr, "nvrctl cameras %s: cannot open %s: %s\n", sub, path, strerror(-rc));
	return rc;
}

/* --format, else the file name's extension; def when neither says. */
static int cam_format(const struct cam_args *a, const char *file, int def,
                      enum registry_format *fmt)
{
	const char *f = a->format;
	if (!f && file && strcmp(file, "-")) {
		const char *dot = strrchr(file, '.');
		if (dot && !strcasecmp(dot, ".csv"))
			f = "csv";
		else if (dot && !strcasecmp(dot, ".json"))
			f = "json";
	}
	if (!f && def < 0)
		return -EINVAL;
	*fmt = f ? (!strcmp(f, "csv") ? REGISTRY_CSV : REGISTRY_JSON) : (enum registry_format)def;
	return 0;
}

static int cam_import(const struct cam_args *a)
{
	const char *file = a->pos[0];
	bool is_stdin = !strcmp(file, "-");
	const char *shown = is_stdin ? "(stdin)" : file;
	enum registry_format fmt;
	struct registry_import_result res;
	struct registry *r = NULL;
	FILE *in = NULL;
	int rc;
	if (cam_format(a, is_stdin ? NULL : file, -1, &fmt)) {
		fprintf(stderr, "nvrctl cameras import: cannot tell the format of %s: use --format csv|json\n",
		        shown);
		return 2;
	}
	in = is_stdin ? stdin : fopen(file, "r");
	if (!in) {
		fprintf(stderr, "nvrctl cameras import: %s: %s\nnothing imported\n", file, strerror(errno));
		return 1;
	}
	if ((rc = cam_open(a, "import", true, &r)))
		goto fail;
	int64_t t0 = nvr_mono_us();
	rc = registry_import(r, in, fmt, a->replace ? REGISTRY_IMPORT_REPLACE : 0, &res);
	double secs = (double)(nvr_mono_us() - t0) / 1e6;
	if (rc == -EINVAL && res.error_line > 0)
		fprintf(stderr, "%s:%d: %s\n", shown, res.error_line, res.error);
	else if (rc)
		fprintf(stderr, "nvrctl cameras import: %s: %s\n", shown, strerror(-rc));
	else
		printf("imported %llu cameras (%llu added, %llu updated, %llu removed) in %.2f s\n",
		       (unsigned long long)res.rows, (unsigned long long)res.added,
		       (unsigned long long)res.updated, (unsigned long long)res.removed, secs);
fail:
	if (rc)
		fprintf(stderr, "nothing imported\n");
	registry_close(r);
	if (!is_stdin)
		fclose(in);
	return rc ? 1 : 0;
}

/* Writes to FILE.tmp.PID and renames it over FILE once the export is
 * complete, so a failed export leaves no partial file. */
static int cam_export_file(struct registry *r, const char *file, enum registry_format fmt,
                           unsigned flags)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", file, (int)getpid()) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, (flags & REGISTRY_EXPORT_CREDENTIALS) ? 0600 : 0644);
	if (fd < 0)
		return -errno;
	FILE *out = fdopen(fd, "w");
	if (!out) {
		int rc = -errno;
		close(fd);
		unlink(tmp);
		return rc;
	}
	int rc = registry_export(r, out, fmt, flags);
	if (!rc && fsync(fileno(out)))
		rc = -errno;
	if (fclose(out) && !rc)
		rc = -EIO;
	if (!rc && rename(tmp, file))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static int cam_export(const struct cam_args *a)
{
	const char *file = a->npos ? a->pos[0] : "-";
	unsigned flags = a->credentials ? REGISTRY_EXPORT_CREDENTIALS : 0;
	enum registry_format fmt;
	struct registry *r;
	int rc;
	cam_format(a, file, REGISTRY_CSV, &fmt);
	if ((rc = cam_open(a, "export", false, &r)))
		return 1;
	if (!strcmp(file, "-"))
		rc = registry_export(r, stdout, fmt, flags);
	else
		rc = cam_export_file(r, file, fmt, flags);
	registry_close(r);
	if (rc) {
		fprintf(stderr, "nvrctl cameras export: %s: %s\n", file, strerror(-rc));
		return 1;
	}
	return 0;
}

static void cam_position(const struct camera_record *c, char *buf, size_t sz)
{
	if (isnan(c->latitude) || isnan(c->longitude))
		snprintf(buf, sz, "-");
	else
		snprintf(buf, sz, "%.7f,%.7f", c->latitude, c->longitude);
}

static void cam_tags(const struct camera_record *c, char *buf, size_t sz)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < c->tag_count && n < sz; i++)
		n += (size_t)snprintf(buf + n, sz - n, "%s%s", i ? "," : "", c->tags[i]);
	if (!c->tag_count)
		snprintf(buf, sz, "-");
}

static int cam_list_one(void *user, const struct camera_record *c)
{
	char pos[64], tags[REGISTRY_MAX_TAGS * 32 + 1];
	(void)user;
	cam_position(c, pos, sizeof pos);
	cam_tags(c, tags, sizeof tags);
	if (printf("%u\t%s\t%s\t%s\t%s\t%s\n", c->id, c->enabled ? "enabled" : "disabled", c->name,
	           c->district[0] ? c->district : "-", tags, pos) < 0)
		return -EIO;
	return 0;
}

static int cam_list(const struct cam_args *a)
{
	struct registry *r;
	if (cam_open(a, "list", false, &r))
		return 1;
	int rc = registry_foreach(r, cam_list_one, NULL);
	if (!rc && fflush(stdout))
		rc = -EIO;
	registry_close(r);
	if (rc) {
		fprintf(stderr, "nvrctl cameras list: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}

static int cam_id(const struct cam_args *a, const char *sub, uint32_t *id)
{
	if (cli_parse_u32(a->pos[0], 1, 2147483647u, id) == 0)
		return 0;
	fprintf(stderr, "nvrctl cameras %s: \"%s\" is not a camera id (1..2147483647)\n", sub,
	        a->pos[0]);
	return -EINVAL;
}

static void cam_print(const struct camera_record *c)
{
	char pos[64], tags[REGISTRY_MAX_TAGS * 32 + 1];
	cam_position(c, pos, sizeof pos);
	cam_tags(c, tags, sizeof tags);
	printf("id:              %u\n", c->id);
	printf("name:            %s\n", c->name);
	printf("enabled:         %s\n", c->enabled ? "yes" : "no");
	printf("main_url:        %s\n", c->main_url);
	printf("sub_url:         %s\n", c->sub_url[0] ? c->sub_url : "-");
	printf("username:        %s\n", c->username[0] ? "(set)" : "(none)");
	printf("password:        %s\n", c->password[0] ? "(set)" : "(none)");
	printf("position:        %s\n", pos);
	printf("tags:            %s\n", tags);
	printf("site:            %s\n", c->site[0] ? c->site : "-");
	printf("district:        %s\n", c->district[0] ? c->district : "-");
	printf("retention_class: %s\n", c->retention_class[0] ? c->retention_class : "(default)");
	printf("transport:       %s\n", c->transport[0] ? c->transport : "(default: tcp)");
}

static int cam_show(const struct cam_args *a)
{
	struct registry *r;
	struct camera_record c;
	uint32_t id;
	if (cam_id(a, "show", &id))
		return 2;
	if (cam_open(a, "show", false, &r))
		return 1;
	int rc = registry_get(r, id, &c);
	registry_close(r);
	if (rc == -ENOENT) {
		fprintf(stderr, "nvrctl cameras show: no camera %u\n", id);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "nvrctl cameras show: %s\n", strerror(-rc));
		return 1;
	}
	cam_print(&c);
	return 0;
}

static int cam_delete(const struct cam_args *a)
{
	struct registry *r;
	uint32_t id;
	if (cam_id(a, "delete", &id))
		return 2;
	if (cam_open(a, "delete", false, &r))
		return 1;
	int rc = registry_delete(r, id);
	registry_close(r);
	if (rc == -ENOENT) {
		fprintf(stderr, "nvrctl cameras delete: no camera %u\n", id);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "nvrctl cameras delete: %s\n", strerror(-rc));
		return 1;
	}
	printf("deleted camera %u\n", id);
	return 0;
}

int cmd_cameras(int argc, char **argv)
{
	nvr_log_set_level("error");
	if (argc < 2) {
		cam_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		cam_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < CAM_NSUBS; i++) {
		if (strcmp(argv[1], cam_subs[i].name))
			continue;
		struct cam_args a;
		int rc = cam_parse(&cam_subs[i], argc - 1, argv + 1, &a);
		if (rc <= 0)
			return -rc;
		return cam_subs[i].run(&a);
	}
	fprintf(stderr, "nvrctl cameras: unknown subcommand \"%s\"\n", argv[1]);
	cam_usage(stderr);
	return 2;
}
