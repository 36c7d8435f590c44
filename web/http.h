/*
 * http.h - the investigator HTTP API (libmicrohttpd): JSON over GET,
 * versioned under /api/v1/ (see web/README.md for the endpoints).
 *
 * The server runs its own threads (an epoll thread pool); handlers read
 * the registry through an in-memory snapshot without credentials, the
 * ingest's live status and the storage engine's ranges and volume
 * statistics. Every route but /health needs a user (HTTP Basic, or a
 * bearer token; nvr/users.h) with a role the route allows; searches,
 * playback and failed logins go to the audit trail (nvr/audit.h).
 *
 * TLS: with a certificate and key (PEM text), `port` serves HTTPS only
 * (libmicrohttpd with GnuTLS); `plain_port` adds a second, plain HTTP
 * listener with the same routes. Without them `port` is plain HTTP.
 */
#ifndef WEB_HTTP_H
#define WEB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "ingest.h"
#include "registry.h"
#include "storage.h"

struct users;
struct export_engine;

/* What the handlers read; owned by the caller, alive until web_stop(). */
struct web_ctx {
	struct stg *stg;
	struct registry *reg;
	struct ingest *ingest;          /* NULL: every camera reads "not_recording" */
	struct users *users;            /* users and tokens; NULL: nobody logs in */
	struct audit *audit;            /* the audit trail; NULL: nothing audited */
	struct export_engine *exports;  /* evidence exports (export.h); NULL: 503 */
};

struct web_config {
	const char *listen_addr;        /* IPv4 or IPv6 literal ["127.0.0.1"] */
	uint16_t port;                  /* required, 1..65535 */
	unsigned threads;               /* thread pool size [2] */
	unsigned max_connections;       /* [256] */
	unsigned connection_timeout_s;  /* idle connections are closed [30] */
	size_t connection_memory;       /* per-connection buffer bytes [64 KiB] */
	int64_t max_window_ms;          /* longest /ranges window [7 days] */
	double request_rate;            /* requests a second per client address,
	                                 * beyond: 429; 0 none [0] */
	double request_burst;           /* bucket size [4 x request_rate] */
	bool auth_off;                  /* no authentication: every request acts
	                                 * as "anonymous" with the admin role */
	const char *tls_cert_pem;       /* NULL: plain HTTP; else HTTPS (needs tls_key_pem); */
	const char *tls_key_pem;        /* both kept by the caller until web_stop() */
	uint16_t plain_port;            /* with TLS: plain HTTP here too; 0 none */
};

struct web;

/* Starts listening; returns 0 or a negative errno (logged). */
int web_start(const struct web_config *cfg, struct web_ctx *ctx, struct web **out);

/* Stops accepting, waits for the handlers in flight, frees. NULL is fine. */
void web_stop(struct web *w);

#endif
