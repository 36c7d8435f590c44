/*
 * config_args.h - nvrd's command line, made from the settings table: every
 * row of config_options with a `cli` name is a --option that overrides the
 * file (a bool row takes an optional =VALUE and alone means true), next to
 * --config FILE, --check-config, --print-config-doc and --help.
 *
 * Values are checked when the command line is parsed, with the same
 * parser and bounds as the file, so a bad one is a usage error before
 * anything else happens; they are applied after the file is read, and
 * again after every reload of it.
 */
#ifndef NVR_CONFIG_ARGS_H
#define NVR_CONFIG_ARGS_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

struct cfgargs_set {
	const struct config_option *o;
	const char *value;         /* points into argv */
};

struct cfgargs {
	const char *config;        /* --config FILE, or NULL: the defaults */
	bool check;                /* --check-config */
	bool print_doc;            /* --print-config-doc */
	bool help;                 /* --help */
	struct cfgargs_set *set;   /* the overrides, in command-line order */
	int count;
};

/* Parses argv. Returns 0, or -EINVAL after a message on stderr. */
int cfgargs_parse(int argc, char **argv, struct cfgargs *a);

void cfgargs_free(struct cfgargs *a);

/* The file named by --config (or the defaults), then the overrides, then
 * the checks across settings. Returns 0, or a negative errno with the
 * errors in errs ("FILE:LINE: message"); c is to be freed either way. */
int cfgargs_load(const struct cfgargs *a, struct nvr_config *c, struct config_errors *errs);

/* The --help text. */
void cfgargs_usage(FILE *to);

#endif
