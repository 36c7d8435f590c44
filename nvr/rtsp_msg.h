/*
 * rtsp_msg.h - RTSP/1.0 messages (RFC 2326): parsing responses and
 * requests, splitting a TCP stream into RTSP messages and interleaved RTP
 * frames, and the few header values a client needs (Session, Transport,
 * RTP-Info) plus rtsp:// URLs.
 *
 * Everything here is pure parsing over caller-owned bytes: no I/O, no
 * allocation, no logging; every function bounds its reads by the lengths it
 * is given, since the bytes come from cameras on the network (this is what
 * tests/fuzz/fuzz_rtsp.c feeds). Parsed strings point into the caller's
 * buffer and are not NUL-terminated unless stated.
 */
#ifndef NVR_RTSP_MSG_H
#define NVR_RTSP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTSP_MAX_HEADERS 32
#define RTSP_MAX_HEAD_BYTES 16384   /* status/request line + headers */
#define RTSP_MAX_BODY_BYTES 65536   /* Content-Length above this is refused */

struct rtsp_str {
	const char *p;
	size_t len;
};

struct rtsp_header {
	struct rtsp_str name;
	struct rtsp_str value;    /* leading/trailing blanks trimmed */
};

/* One parsed message: a response ("RTSP/1.0 200 OK") or a request
 * ("DESCRIBE rtsp://... RTSP/1.0"). */
struct rtsp_msg {
	bool is_response;
	int status;               /* responses: 100-599 */
	struct rtsp_str reason;   /* responses */
	struct rtsp_str method;   /* requests */
	struct rtsp_str uri;      /* requests */
	int cseq;                 /* -1 when absent */
	int header_count;
	struct rtsp_header headers[RTSP_MAX_HEADERS];
	const uint8_t *body;
	size_t body_len;          /* Content-Length, 0 when absent */
};

/* Parses one whole message at the start of buf[0..len).
 * Returns the number of bytes it occupies (head + body) when complete,
 * 0 when more bytes are needed, or -EBADMSG when malformed (bad start line,
 * header without colon, more than RTSP_MAX_HEADERS headers, head longer than
 * RTSP_MAX_HEAD_BYTES, bad or too large Content-Length). */
int rtsp_msg_parse(const uint8_t *buf, size_t len, struct rtsp_msg *out);

/* First header called `name` (case-insensitive), or NULL. */
const struct rtsp_str *rtsp_msg_header(const struct rtsp_msg *m,
                                       const char *name);

/* What comes next on an RTSP-over-TCP connection. */
enum rtsp_chunk_kind {
	RTSP_CHUNK_NEED_MORE = 0,   /* incomplete: read more bytes */
	RTSP_CHUNK_MESSAGE,         /* an RTSP message (parse with rtsp_msg_parse) */
	RTSP_CHUNK_INTERLEAVED,     /* '$', channel, 16-bit length, payload */
	RTSP_CHUNK_ERROR,           /* garbage: the connection is unusable */
};

struct rtsp_chunk {
	enum rtsp_chunk_kind kind;
	size_t size;              /* bytes the chunk occupies in the stream */
	uint8_t channel;          /* interleaved only */
	const uint8_t *payload;   /* interleaved only */
	size_t payload_len;
	struct rtsp_msg msg;      /* message only (already parsed) */
};

/* Classifies (and, for messages, parses) the chunk at the start of buf. */
void rtsp_next_chunk(const uint8_t *buf, size_t len, struct rtsp_chunk *out);

/* Session header: "id[;timeout=N]". Copies the id (NUL-terminated) and
 * sets *timeout_s (60 when absent). Returns 0 or -EBADMSG. */
int rtsp_parse_session(const struct rtsp_str *v, char *id, size_t idsz,
                       int *timeout_s);

/* Transport header of a SETUP reply. */
struct rtsp_transport {
	bool tcp;                 /* RTP/AVP/TCP ... interleaved */
	int interleaved[2];       /* RTP and RTCP channels, -1 when absent */
	int server_port[2];       /* UDP: server's RTP/RTCP ports, -1 when absent */
	int client_port[2];
	bool has_ssrc;
	uint32_t ssrc;
};
int rtsp_parse_transport(const struct rtsp_str *v, struct rtsp_transport *out);

/* rtsp://[user[:pass]@]host[:port][/path]. Fills NUL-terminated fields;
 * port defaults to 554. user/pass are percent-decoded. `path` is everything
 * from the first '/' after the authority ("/" when absent). Returns 0 or
 * -EINVAL. */
struct rtsp_url {
	char host[256];
	int port;
	char user[128];
	char pass[128];
	char path[1024];
};
int rtsp_url_parse(const char *url, struct rtsp_url *out);

/* The URL a request goes to, without credentials: "rtsp://host:port/path"
 * (an IPv6 host in brackets). Returns 0 or -ENOSPC. */
int rtsp_url_format(const struct rtsp_url *u, char *out, size_t outsz);

/* Resolves an SDP a=control value against a base URL (Content-Base,
 * Content-Location or the DESCRIBE URL): "*" or empty -> base; an absolute
 * rtsp:// URL -> itself; otherwise base + "/" + control (no double '/').
 * Returns 0 or -ENOSPC. */
int rtsp_resolve_control(const char *base, const char *control, char *out,
                         size_t outsz);

#endif
