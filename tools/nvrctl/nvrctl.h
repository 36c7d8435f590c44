/*
 * nvrctl.h - the admin CLI's subcommands. nvrctl.c holds main() and the
 * table below; each cmd_*.c file implements one command group and parses its
 * own options (argv[0] is the command name).
 *
 * Every command works on a data directory (--data DIR, default ./nvr-data):
 * DIR/registry is the camera registry, DIR/index and DIR/vol* the storage,
 * DIR/users the API's users and tokens, DIR/audit the audit trail.
 */
#ifndef NVRCTL_H
#define NVRCTL_H

/* `nvrctl cameras import|export|list|show|delete ...` */
int cmd_cameras(int argc, char **argv);

/* `nvrctl frames --camera ID ...`: dumps recorded frames (daemon stopped). */
int cmd_frames(int argc, char **argv);

/* `nvrctl users add|list|passwd|role|enable|disable|delete ...` (cmd_users.c) */
int cmd_users(int argc, char **argv);

/* `nvrctl tokens create|list|revoke ...` (cmd_users.c) */
int cmd_tokens(int argc, char **argv);

/* `nvrctl audit list|verify ...` (cmd_audit.c) */
int cmd_audit(int argc, char **argv);

/* `nvrctl holds create|list|release`, `nvrctl purge`, `nvrctl retention`
 * (cmd_retention.c): daemon stopped. */
int cmd_holds(int argc, char **argv);
int cmd_purge(int argc, char **argv);
int cmd_retention(int argc, char **argv);

/* `nvrctl backup --out FILE` (nvrd may run) and `nvrctl restore --in FILE`
 * (daemon stopped) (cmd_backup.c). */
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

/* A time on the command line: Unix microseconds or ISO 8601 (cmd_frames.c).
 * Returns 0 or -EINVAL. */
#include <stdint.h>
int nvrctl_parse_time(const char *s, int64_t *out);

/* `nvrctl status [--url URL] ...`: tables of a running nvrd, read from its
 * HTTP API (no data directory). */
int cmd_status(int argc, char **argv);

#endif
