/*
 * config_args.c - nvrd's command line from the settings table
 * (config_args.h): getopt_long's option array is built from the rows that
 * have a `cli` name, so a setting with an option is still one row.
 */
#include "config_args.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_CONFIG = 1, OPT_CHECK, OPT_DOC, OPT_HELP, OPT_ROW = 256 };

static const struct option fixed_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "check-config", no_argument, NULL, OPT_CHECK },
	{ "print-config-doc", no_argument, NULL, OPT_DOC },
	{ "help", no_argument, NULL, OPT_HELP },
};
#define FIXED_COUNT (sizeof fixed_options / sizeof fixed_options[0])

static struct option *build_options(void)
{
	struct option *v = calloc(FIXED_COUNT + config_option_count + 1, sizeof *v);
	if (!v)
		return NULL;
	memcpy(v, fixed_options, sizeof fixed_options);
	size_t n = FIXED_COUNT;
	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *o = &config_options[i];
		if (!o->cli)
			continue;
		v[n++] = (struct option){ o->cli, required_argument, NULL, OPT_ROW + (int)i };
	}
	return v;
}

/* Checks the value on a scratch configuration and remembers it. */
static int add_set(struct cfgargs *a, struct nvr_config *scratch, const struct config_option *o,
                   const char *value)
{
	char err[160];
	if (!value)
		value = "true";
	if (config_set(scratch, o, value, err, sizeof err)) {
		fprintf(stderr, "nvrd: bad --%s '%s': %s\nRun 'nvrd --help' for usage.\n", o->cli,
		        value, err);
		return -EINVAL;
	}
	a->set[a->count++] = (struct cfgargs_set){ o, value };
	return 0;
}

static int parse_one(struct cfgargs *a, struct nvr_config *scratch, int c, const char *arg)
{
	switch (c) {
	case OPT_CONFIG: a->config = arg; return 0;
	case OPT_CHECK: a->check = true; return 0;
	case OPT_DOC: a->print_doc = true; return 0;
	case OPT_HELP: a->help = true; return 0;
	}
	if (c >= OPT_ROW && (size_t)(c - OPT_ROW) < config_option_count)
		return add_set(a, scratch, &config_options[c - OPT_ROW], arg);
	return -EINVAL;
}

static int parse_all(int argc, char **argv, struct cfgargs *a, const struct option *longopts,
                     struct nvr_config *scratch)
{
	int c, err = 0;
	opterr = 0;
	optind = 1;
	while (!err && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			fprintf(stderr, "nvrd: unknown or incomplete option '%s'\n"
			        "Run 'nvrd --help' for usage.\n", argv[optind - 1]);
			return -EINVAL;
		}
		err = parse_one(a, scratch, c, optarg);
	}
	if (!err && optind < argc) {
		fprintf(stderr, "nvrd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return err;
}

int cfgargs_parse(int argc, char **argv, struct cfgargs *a)
{
	struct nvr_config scratch;
	struct option *longopts = NULL;
	*a = (struct cfgargs){ 0 };
	int err = config_defaults(&scratch);
	if (err)
		return err;
	a->set = calloc((size_t)argc + 1, sizeof *a->set);
	longopts = build_options();
	if (!a->set || !longopts) {
		err = -ENOMEM;
		goto fail;
	}
	err = parse_all(argc, argv, a, longopts, &scratch);
fail:
	free(longopts);
	config_free(&scratch);
	if (err)
		cfgargs_free(a);
	return err;
}

void cfgargs_free(struct cfgargs *a)
{
	free(a->set);
	a->set = NULL;
	a->count = 0;
}

int cfgargs_load(const struct cfgargs *a, struct nvr_config *c, struct config_errors *errs)
{
	char err[160];
	int rc;
	errs->count = 0;
	rc = a->config ? config_load(a->config, c, errs) : config_defaults(c);
	if (rc)
		return rc;
	for (int i = 0; i < a->count; i++) {
		rc = config_set(c, a->set[i].o, a->set[i].value, err, sizeof err);
		if (rc) {
			snprintf(errs->msg[0], sizeof errs->msg[0], "command line: --%s: %s",
			         a->set[i].o->cli, err);
			errs->line[0] = -1;
			errs->count = 1;
			return rc;
		}
	}
	return a->count ? config_check(c, errs) : 0;
}

void cfgargs_usage(FILE *to)
{
	fprintf(to,
	        "usage: nvrd [--config FILE] [--check-config] [--print-config-doc] [OPTION...]\n"
	        "\n"
	        "Records every enabled camera of the registry (see `nvrctl cameras`) onto the\n"
	        "volumes of the data directory. Settings come from FILE (INI, documented in\n"
	        "docs/CONFIG.md); without --config every setting takes its default (the demo:\n"
	        "./nvr-data and simulated cameras). SIGHUP re-reads FILE; SIGTERM or SIGINT\n"
	        "stop after writing out every frame.\n"
	        "\n"
	        "  --config FILE           the configuration file\n"
	        "  --check-config          check FILE and the options, print \"configuration ok\"\n"
	        "                          or each error as FILE:LINE: message, and exit\n"
	        "  --print-config-doc      print the reference of every setting and exit\n"
	        "  --help                  this text\n"
	        "\n"
	        "Options overriding a setting of the file [default]:\n");
	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *o = &config_options[i];
		char name[64];
		if (!o->cli)
			continue;
		snprintf(name, sizeof name, "--%s%s", o->cli, o->type == CONFIG_BOOL ? " on|off" :
		         " VALUE");
		fprintf(to, "  %-23s %s.%s [%s]\n  %-23s %s\n", name, o->section, o->key,
		        o->def[0] ? o->def : "empty", "", o->doc);
	}
}
