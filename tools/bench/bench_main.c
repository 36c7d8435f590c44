/*
 * bench_main.c - nvr-bench: measurements that size an NVR appliance.
 *
 * nvr-bench is one program with subcommands, like git. Each subcommand lives
 * in its own file and is listed once in the table below, so adding a
 * benchmark means adding a file and a line. main() only picks the entry,
 * runs it and turns its result into an exit status.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct subcommand subcommands[] = {
	{ "storage", bench_storage_main,
	  "record N synthetic cameras through the storage engine; report write rate "
	  "vs. raw disk, index size, seek latency, memory and a modelled HDD load" },
	{ "ingest", bench_ingest_main,
	  "record N simulated RTSP cameras with nvrd; CPU and memory per camera "
	  "against one ffmpeg -c copy process per camera on the same streams" },
	{ "http", bench_http_main,
	  "the investigator API while recording: search latency over a city's "
	  "cameras, playback time to first byte and frames lost under 100 "
	  "clients, export throughput against a raw read" },
	{ "retention", bench_retention_main,
	  "write rate while the ring reclaims (classes, a hold) against the rate "
	  "with free space, in one run; reclaim latency" },
};

#define NSUB (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *to)
{
	fprintf(to, "usage: nvr-bench SUBCOMMAND [options]\n\nsubcommands:\n");
	for (size_t i = 0; i < NSUB; i++)
		fprintf(to, "  %-10s %s\n", subcommands[i].name, subcommands[i].help);
	fprintf(to, "\nRun 'nvr-bench SUBCOMMAND --help' for its options. "
	        "docs/BENCHMARKS.md explains the figures.\n");
}

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < NSUB; i++)
		if (strcmp(subcommands[i].name, name) == 0)
			return &subcommands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct subcommand *sc;
	int err;

	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sc = find_subcommand(argv[1]);
	if (!sc) {
		fprintf(stderr, "nvr-bench: unknown subcommand '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	err = sc->fn(argc - 1, argv + 1);
	if (err) {
		fprintf(stderr, "nvr-bench %s: failed: %s\n", sc->name, stg_strerror(err));
		return 1;
	}
	return 0;
}
