/*
 * rtsp_auth.h - RTSP authentication: Basic and Digest (RFC 2617, MD5).
 *
 * Cameras answer an unauthenticated request with "401 Unauthorized" and a
 * WWW-Authenticate header; the client parses the challenge once and then
 * adds an Authorization header to every request. The server side (the
 * camera simulator) checks an Authorization header against its own
 * challenge with the same code, so both sides agree on one implementation.
 *
 * MD5 and base64 come from libavutil. Passwords are never logged: nothing
 * here writes to the log, and callers must not log the header values.
 */
#ifndef NVR_RTSP_AUTH_H
#define NVR_RTSP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rtsp_auth_scheme {
	RTSP_AUTH_NONE = 0,
	RTSP_AUTH_BASIC,
	RTSP_AUTH_DIGEST,
};

struct rtsp_auth_challenge {
	enum rtsp_auth_scheme scheme;
	char realm[128];
	char nonce[128];
	char opaque[128];
	bool qop_auth;        /* server offered qop="auth" (we then send nc/cnonce) */
	bool stale;
};

/* Parses the value of one WWW-Authenticate header ("Digest realm=..." or
 * "Basic realm=..."). Returns 0, or -EINVAL for anything malformed or an
 * unsupported scheme or algorithm (only MD5 Digest is supported). When a
 * response carries several WWW-Authenticate headers the caller prefers
 * Digest. */
int rtsp_auth_parse_challenge(const char *value, size_t len,
                              struct rtsp_auth_challenge *out);

/* Writes the value of an Authorization header for one request into out
 * (NUL-terminated). `nc` counts requests made with this nonce (from 1);
 * `cnonce` is any client nonce (used only with qop=auth). Returns the
 * length written, -ENOSPC if outsz is too small, -EINVAL for a challenge
 * of no scheme, a CR or LF in user/method/uri/cnonce, a ':' in a Basic
 * user name or a missing cnonce with qop=auth, -ENOMEM if MD5 could not
 * be set up. */
int rtsp_auth_header(const struct rtsp_auth_challenge *ch, const char *user,
                     const char *pass, const char *method, const char *uri,
                     uint32_t nc, const char *cnonce, char *out, size_t outsz);

/* The Digest "response" value: MD5(HA1:nonce[:nc:cnonce:qop]:HA2) as 32
 * lowercase hex digits plus NUL. qop, nc and cnonce are NULL without qop. */
void rtsp_digest_response(const char *user, const char *realm,
                          const char *pass, const char *method,
                          const char *uri, const char *nonce, const char *nc,
                          const char *cnonce, const char *qop, char out[33]);

/* Server side: true if the Authorization header value `value` is a valid
 * answer to a challenge with this realm and nonce for user/pass, method and
 * any uri (the uri inside the header is used). Basic is accepted only when
 * allow_basic is set. */
bool rtsp_auth_check(const char *value, size_t len, const char *realm,
                     const char *nonce, const char *user, const char *pass,
                     const char *method, bool allow_basic);

#endif
