/*
 * nvrctl.c - the admin CLI: `nvrctl COMMAND [options]`.
 *
 * One table maps command names to their cmd_* function (nvrctl.h). Exit
 * status: 0 success, 1 the command failed (its message on stderr), 2 bad
 * usage.
 */
#include <stdio.h>
#include <string.h>

#include "nvrctl.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "cameras", cmd_cameras, "import, export, list, show or delete cameras" },
	{ "frames", cmd_frames, "dump a camera's recorded frames (daemon stopped)" },
	{ "users", cmd_users, "add, list, change or delete users of the HTTP API" },
	{ "tokens", cmd_tokens, "create, list or revoke API tokens" },
	{ "audit", cmd_audit, "list the audit trail or verify its hash chain" },
	{ "holds", cmd_holds, "create, list or release legal holds (daemon stopped)" },
	{ "purge", cmd_purge, "erase a camera's footage in a time window (daemon stopped)" },
	{ "retention", cmd_retention, "retention per class and camera: kept and forecast" },
	{ "backup", cmd_backup, "back up index, cameras, users and audit trail (nvrd may run)" },
	{ "restore", cmd_restore, "restore a backup, then re-index the disks (daemon stopped)" },
	{ "status", cmd_status, "health, cameras in trouble, volumes of a running nvrd (HTTP API)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: nvrctl COMMAND [options]   (nvrctl COMMAND --help)\n\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "nvrctl: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
