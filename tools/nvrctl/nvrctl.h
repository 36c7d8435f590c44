/*
 * nvrctl.h - the admin CLI's subcommands. nvrctl.c holds main() and the
 * table below; each cmd_*.c file implements one command group and parses its
 * own options (argv[0] is the command name).
 *
 * Every command works on a data directory (--data DIR, default ./nvr-data):
 * DIR/registry is the camera registry, DIR/index and DIR/vol* the storage.
 */
#ifndef NVRCTL_H
#define NVRCTL_H

/* `nvrctl cameras import|export|list|show|delete ...` */
int cmd_cameras(int argc, char **argv);

/* `nvrctl frames --camera ID ...`: dumps recorded frames (daemon stopped). */
int cmd_frames(int argc, char **argv);

/* `nvrctl status [--url URL] ...`: tables of a running nvrd, read from its
 * HTTP API (no data directory). */
int cmd_status(int argc, char **argv);

#endif
