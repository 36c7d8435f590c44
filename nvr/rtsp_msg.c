/*
 * rtsp_msg.c - RTSP/1.0 message parsing (see rtsp_msg.h).
 *
 * The bytes come straight from cameras, so the parser walks them line by
 * line with explicit bounds and never needs a NUL terminator. A message is
 * judged as soon as a line of it is complete: a bad start line or header is
 * reported without waiting for the rest, so a connection that carries
 * garbage is dropped early instead of after RTSP_MAX_HEAD_BYTES.
 *
 * Lines may end in CRLF or a bare LF (some cameras send LF). Header values
 * continued on the next line (obsolete folding: the line starts with a
 * blank) extend the previous header's value; the value then spans the
 * line break, which the value parsers here treat as blank space.
 *
 * The URL functions at the end work on NUL-terminated configuration strings.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rtsp_msg.h"

/* ---- characters ----------------------------------------------------- */

static bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* RFC 2616 token characters (method names, header names). */
static bool is_token(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return !strchr("()<>@,;:\\\"/[]?={}", c);
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool mem_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

static bool str_ieq(const struct rtsp_str *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && mem_ieq(s->p, lit, n);
}

static struct rtsp_str trim(const char *p, size_t len)
{
	while (len && is_blank((uint8_t)p[0])) {
		p++;
		len--;
	}
	while (len && is_blank((uint8_t)p[len - 1]))
		len--;
	return (struct rtsp_str){ p, len };
}

/* Parses a decimal number of at most max_digits digits; false otherwise. */
static bool parse_uint(const char *p, size_t len, size_t max_digits, long *out)
{
	if (len == 0 || len > max_digits)
		return false;
	long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit((uint8_t)p[i]))
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

/* ---- start line and headers -------------------------------------------- */

/* "RTSP/1.0" (any single-digit minor version is accepted). */
static bool is_version(const char *p, size_t len)
{
	return len == 8 && !memcmp(p, "RTSP/1.", 7) && is_digit((uint8_t)p[7]);
}

static int parse_status_line(const char *p, size_t len, struct rtsp_msg *m)
{
	/* RTSP/1.0 SP 3DIGIT [SP reason] */
	if (len < 12 || !is_version(p, 8) || p[8] != ' ')
		return -EBADMSG;
	long status;
	if (!parse_uint(p + 9, 3, 3, &status) || status < 100 || status > 599)
		return -EBADMSG;
	if (len > 12 && p[12] != ' ')
		return -EBADMSG;
	m->is_response = true;
	m->status = (int)status;
	m->reason = len > 12 ? trim(p + 13, len - 13) : (struct rtsp_str){ p + 12, 0 };
	return 0;
}

static int parse_request_line(const char *p, size_t len, struct rtsp_msg *m)
{
	/* METHOD SP uri SP RTSP/1.0 */
	size_t i = 0;
	while (i < len && is_token((uint8_t)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != ' ')
		return -EBADMSG;
	m->method = (struct rtsp_str){ p, i };
	size_t u = i + 1, e = u;
	while (e < len && p[e] != ' ')
		e++;
	if (e == u || e >= len || !is_version(p + e + 1, len - e - 1))
		return -EBADMSG;
	for (size_t k = u; k < e; k++)
		if ((uint8_t)p[k] <= 0x20 || (uint8_t)p[k] == 0x7f)
			return -EBADMSG;
	m->is_response = false;
	m->uri = (struct rtsp_str){ p + u, e - u };
	return 0;
}

static int parse_start_line(const char *p, size_t len, struct rtsp_msg *m)
{
	if (len >= 5 && !memcmp(p, "RTSP/", 5))
		return parse_status_line(p, len, m);
	return parse_request_line(p, len, m);
}

/* A line inside the head must not hold control characters other than tab
 * (a CR only right before the LF, which the caller has cut off). */
static bool line_chars_ok(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static int parse_header_line(const char *p, size_t len, struct rtsp_msg *m)
{
	if (p[0] == ' ' || p[0] == '\t') {
		/* folded continuation of the previous header's value */
		if (m->header_count == 0)
			return -EBADMSG;
		struct rtsp_header *h = &m->headers[m->header_count - 1];
		const char *start = h->value.len ? h->value.p : trim(p, len).p;
		struct rtsp_str more = trim(p, len);
		if (more.len && more.p >= start)
			h->value = (struct rtsp_str){ start, (size_t)(more.p + more.len - start) };
		return 0;
	}
	size_t i = 0;
	while (i < len && is_token((uint8_t)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != ':')
		return -EBADMSG;
	if (m->header_count >= RTSP_MAX_HEADERS)
		return -EBADMSG;
	struct rtsp_header *h = &m->headers[m->header_count++];
	h->name = (struct rtsp_str){ p, i };
	h->value = trim(p + i + 1, len - i - 1);
	return 0;
}

/* Fills cseq and body_len from the parsed headers. */
static int apply_headers(struct rtsp_msg *m)
{
	bool have_cl = false;
	for (int i = 0; i < m->header_count; i++) {
		const struct rtsp_header *h = &m->headers[i];
		long v;
		if (str_ieq(&h->name, "CSeq")) {
			if (m->cseq < 0 && parse_uint(h->value.p, h->value.len, 9, &v))
				m->cseq = (int)v;
		} else if (str_ieq(&h->name, "Content-Length")) {
			if (!parse_uint(h->value.p, h->value.len, 9, &v) ||
			    v > RTSP_MAX_BODY_BYTES)
				return -EBADMSG;
			if (have_cl && (size_t)v != m->body_len)
				return -EBADMSG;   /* two different lengths */
			have_cl = true;
			m->body_len = (size_t)v;
		}
	}
	return 0;
}

/* While the first line is incomplete: can these bytes still begin a valid
 * start line? Lets garbage be refused before a whole line arrives. */
static bool start_prefix_ok(const char *p, size_t len)
{
	if (len && p[0] == 'R') {
		size_t n = len < 5 ? len : 5;
		if (!memcmp(p, "RTSP/", n))
			return true;
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] == ' ')
			return i > 0;
		if (!is_token((uint8_t)p[i]))
			return false;
	}
	return true;
}

int rtsp_msg_parse(const uint8_t *buf, size_t len, struct rtsp_msg *out)
{
	const char *p = (const char *)buf;
	size_t limit = len < RTSP_MAX_HEAD_BYTES ? len : RTSP_MAX_HEAD_BYTES;
	size_t pos = 0;
	bool first = true;

	memset(out, 0, sizeof *out);
	out->cseq = -1;
	for (;;) {
		const char *nl = memchr(p + pos, '\n', limit - pos);
		if (!nl) {
			if (len >= RTSP_MAX_HEAD_BYTES)
				return -EBADMSG;          /* head too long */
			if (first && !start_prefix_ok(p, len))
				return -EBADMSG;
			return 0;
		}
		size_t end = (size_t)(nl - p);
		size_t line_len = end - pos;
		if (line_len && p[end - 1] == '\r')
			line_len--;
		const char *line = p + pos;
		pos = end + 1;
		if (!line_chars_ok(line, line_len))
			return -EBADMSG;
		if (first) {
			if (parse_start_line(line, line_len, out) < 0)
				return -EBADMSG;
			first = false;
			continue;
		}
		if (line_len == 0)
			break;                            /* end of head */
		if (parse_header_line(line, line_len, out) < 0)
			return -EBADMSG;
	}
	if (apply_headers(out) < 0)
		return -EBADMSG;
	if (out->body_len > len - pos)
		return 0;
	out->body = out->body_len ? buf + pos : NULL;
	return (int)(pos + out->body_len);
}

const struct rtsp_str *rtsp_msg_header(const struct rtsp_msg *m,
                                       const char *name)
{
	for (int i = 0; i < m->header_count; i++)
		if (str_ieq(&m->headers[i].name, name))
			return &m->headers[i].value;
	return NULL;
}

/* ---- stream demultiplexing --------------------------------------------- */

void rtsp_next_chunk(const uint8_t *buf, size_t len, struct rtsp_chunk *out)
{
	memset(out, 0, sizeof *out);
	/* Stray line breaks between messages are tolerated and counted in the
	 * size of the chunk that follows them. */
	size_t skip = 0;
	while (skip < len && (buf[skip] == '\r' || buf[skip] == '\n'))
		skip++;
	if (skip >= RTSP_MAX_HEAD_BYTES) {
		out->kind = RTSP_CHUNK_ERROR;
		return;
	}
	if (skip == len) {
		out->kind = RTSP_CHUNK_NEED_MORE;
		return;
	}
	const uint8_t *b = buf + skip;
	size_t n = len - skip;
	if (b[0] == '$') {
		if (n < 4) {
			out->kind = RTSP_CHUNK_NEED_MORE;
			return;
		}
		size_t plen = (size_t)b[2] << 8 | b[3];
		if (n - 4 < plen) {
			out->kind = RTSP_CHUNK_NEED_MORE;
			return;
		}
		out->kind = RTSP_CHUNK_INTERLEAVED;
		out->channel = b[1];
		out->payload = b + 4;
		out->payload_len = plen;
		out->size = skip + 4 + plen;
		return;
	}
	int r = rtsp_msg_parse(b, n, &out->msg);
	if (r < 0) {
		out->kind = RTSP_CHUNK_ERROR;
	} else if (r == 0) {
		out->kind = RTSP_CHUNK_NEED_MORE;
	} else {
		out->kind = RTSP_CHUNK_MESSAGE;
		out->size = skip + (size_t)r;
	}
}

/* ---- header values ----------------------------------------------------- */

/* Splits s at the first `sep`: *item gets the part before it (trimmed), s
 * the rest after it. Returns false when s is exhausted. */
static bool next_item(struct rtsp_str *s, char sep, struct rtsp_str *item)
{
	if (s->len == 0)
		return false;
	const char *q = memchr(s->p, sep, s->len);
	size_t n = q ? (size_t)(q - s->p) : s->len;
	*item = trim(s->p, n);
	if (q) {
		s->p = q + 1;
		s->len -= n + 1;
	} else {
		s->p += n;
		s->len = 0;
	}
	return true;
}

/* "name=value" -> name and value, both trimmed; no '=' gives an empty value
 * and returns false. */
static bool split_param(const struct rtsp_str *item, struct rtsp_str *name,
                        struct rtsp_str *value)
{
	const char *eq = memchr(item->p, '=', item->len);
	if (!eq) {
		*name = *item;
		*value = (struct rtsp_str){ item->p + item->len, 0 };
		return false;
	}
	*name = trim(item->p, (size_t)(eq - item->p));
	*value = trim(eq + 1, item->len - (size_t)(eq - item->p) - 1);
	return true;
}

int rtsp_parse_session(const struct rtsp_str *v, char *id, size_t idsz,
                       int *timeout_s)
{
	struct rtsp_str s = *v, item;
	*timeout_s = 60;
	if (!next_item(&s, ';', &item) || item.len == 0 || item.len >= idsz)
		return -EBADMSG;
	for (size_t i = 0; i < item.len; i++)
		if ((uint8_t)item.p[i] <= 0x20 || (uint8_t)item.p[i] >= 0x7f)
			return -EBADMSG;
	memcpy(id, item.p, item.len);
	id[item.len] = '\0';
	while (next_item(&s, ';', &item)) {
		struct rtsp_str name, value;
		if (!split_param(&item, &name, &value) || !str_ieq(&name, "timeout"))
			continue;
		long t;
		if (!parse_uint(value.p, value.len, 9, &t))
			return -EBADMSG;
		/* timeout=0 means nothing useful: keep the default keep-alive */
		*timeout_s = t > 0 ? (int)t : 60;
	}
	return 0;
}

/* "a" or "a-b" with both in [0, max]; b defaults to a + 1. */
static int parse_pair(const struct rtsp_str *v, long max, int out[2])
{
	const char *dash = memchr(v->p, '-', v->len);
	size_t n1 = dash ? (size_t)(dash - v->p) : v->len;
	long a, b;
	if (!parse_uint(v->p, n1, 5, &a) || a > max)
		return -EBADMSG;
	if (dash) {
		if (!parse_uint(dash + 1, v->len - n1 - 1, 5, &b) || b > max)
			return -EBADMSG;
	} else {
		b = a + 1 > max ? a : a + 1;
	}
	out[0] = (int)a;
	out[1] = (int)b;
	return 0;
}

static bool parse_hex32(const struct rtsp_str *v, uint32_t *out)
{
	if (v->len == 0 || v->len > 8)
		return false;
	uint32_t x = 0;
	for (size_t i = 0; i < v->len; i++) {
		int c = lower((uint8_t)v->p[i]);
		int d = is_digit((uint8_t)c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		x = x << 4 | (uint32_t)d;
	}
	*out = x;
	return true;
}

int rtsp_parse_transport(const struct rtsp_str *v, struct rtsp_transport *out)
{
	memset(out, 0, sizeof *out);
	for (int i = 0; i < 2; i++)
		out->interleaved[i] = out->server_port[i] = out->client_port[i] = -1;

	/* A reply names one transport; take the first if there are several. */
	struct rtsp_str all = *v, spec, s, item;
	if (!next_item(&all, ',', &spec))
		return -EBADMSG;
	s = spec;
	if (!next_item(&s, ';', &item))
		return -EBADMSG;
	if (str_ieq(&item, "RTP/AVP/TCP"))
		out->tcp = true;
	else if (!str_ieq(&item, "RTP/AVP") && !str_ieq(&item, "RTP/AVP/UDP"))
		return -EBADMSG;
	while (next_item(&s, ';', &item)) {
		struct rtsp_str name, value;
		if (!split_param(&item, &name, &value))
			continue;   /* unicast, multicast, ... */
		if (str_ieq(&name, "interleaved")) {
			if (parse_pair(&value, 255, out->interleaved) < 0)
				return -EBADMSG;
		} else if (str_ieq(&name, "server_port")) {
			if (parse_pair(&value, 65535, out->server_port) < 0)
				return -EBADMSG;
		} else if (str_ieq(&name, "client_port")) {
			if (parse_pair(&value, 65535, out->client_port) < 0)
				return -EBADMSG;
		} else if (str_ieq(&name, "ssrc")) {
			/* some cameras send a malformed SSRC; it is only a hint */
			out->has_ssrc = parse_hex32(&value, &out->ssrc);
		}
	}
	return 0;
}

/* ---- URLs -------------------------------------------------------------- */

static int hexval(int c)
{
	c = lower(c);
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes src[0..len) into out (NUL-terminated). */
static int pct_decode(const char *src, size_t len, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int c = (uint8_t)src[i];
		if (c == '%') {
			if (len - i < 3)
				return -EINVAL;
			int h = hexval((uint8_t)src[i + 1]), l = hexval((uint8_t)src[i + 2]);
			if (h < 0 || l < 0)
				return -EINVAL;
			c = h << 4 | l;
			i += 2;
		}
		if (c == 0 || o + 1 >= outsz)
			return -EINVAL;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static bool host_char_ok(uint8_t c, bool v6)
{
	if (v6)
		return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f') || c == ':' || c == '.';
	return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' ||
	       c == '.' || c == '_';
}

static int parse_hostport(const char *p, size_t len, struct rtsp_url *out)
{
	const char *host = p;
	size_t hlen;
	const char *rest;
	bool v6 = len && p[0] == '[';
	if (v6) {
		const char *close = memchr(p, ']', len);
		if (!close)
			return -EINVAL;
		host = p + 1;
		hlen = (size_t)(close - host);
		rest = close + 1;
	} else {
		const char *colon = memchr(p, ':', len);
		hlen = colon ? (size_t)(colon - p) : len;
		rest = p + hlen;
	}
	size_t rlen = len - (size_t)(rest - p);
	if (hlen == 0 || hlen >= sizeof out->host)
		return -EINVAL;
	for (size_t i = 0; i < hlen; i++)
		if (!host_char_ok((uint8_t)host[i], v6))
			return -EINVAL;
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	out->port = 554;
	if (rlen == 0)
		return 0;
	if (rest[0] != ':')
		return -EINVAL;
	long port;
	if (rlen == 1)
		return 0;   /* "host:" - empty port, the default applies */
	if (!parse_uint(rest + 1, rlen - 1, 5, &port) || port < 1 || port > 65535)
		return -EINVAL;
	out->port = (int)port;
	return 0;
}

int rtsp_url_parse(const char *url, struct rtsp_url *out)
{
	memset(out, 0, sizeof *out);
	size_t n = strlen(url);
	if (n < 7 || !mem_ieq(url, "rtsp://", 7))
		return -EINVAL;
	const char *auth = url + 7;
	size_t alen = strcspn(auth, "/?#");
	const char *tail = auth + alen;

	/* userinfo: up to the last '@' (unescaped '@' in passwords happen) */
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (auth[i] == '@')
			at = auth + i;
	if (at) {
		size_t ulen = (size_t)(at - auth);
		const char *colon = memchr(auth, ':', ulen);
		size_t nlen = colon ? (size_t)(colon - auth) : ulen;
		if (pct_decode(auth, nlen, out->user, sizeof out->user) < 0)
			return -EINVAL;
		if (colon && pct_decode(colon + 1, ulen - nlen - 1, out->pass,
		                        sizeof out->pass) < 0)
			return -EINVAL;
		alen -= ulen + 1;
		auth = at + 1;
	}
	if (parse_hostport(auth, alen, out) < 0)
		return -EINVAL;

	size_t plen = strlen(tail);
	for (size_t i = 0; i < plen; i++)
		if ((uint8_t)tail[i] <= 0x20 || (uint8_t)tail[i] == 0x7f)
			return -EINVAL;
	int w;
	if (plen == 0)
		w = snprintf(out->path, sizeof out->path, "/");
	else if (tail[0] == '/')
		w = snprintf(out->path, sizeof out->path, "%s", tail);
	else
		w = snprintf(out->path, sizeof out->path, "/%s", tail);
	if (w < 0 || (size_t)w >= sizeof out->path)
		return -EINVAL;
	return 0;
}

int rtsp_url_format(const struct rtsp_url *u, char *out, size_t outsz)
{
	bool v6 = strchr(u->host, ':') != NULL;
	int w = snprintf(out, outsz, "rtsp://%s%s%s:%d%s", v6 ? "[" : "", u->host,
	                 v6 ? "]" : "", u->port, u->path[0] ? u->path : "/");
	if (w < 0 || (size_t)w >= outsz)
		return -ENOSPC;
	return 0;
}

int rtsp_resolve_control(const char *base, const char *control, char *out,
                         size_t outsz)
{
	int w;
	if (control[0] == '\0' || !strcmp(control, "*")) {
		w = snprintf(out, outsz, "%s", base);
	} else if (strlen(control) >= 7 && mem_ieq(control, "rtsp://", 7)) {
		w = snprintf(out, outsz, "%s", control);
	} else {
		size_t bl = strlen(base);
		bool base_slash = bl && base[bl - 1] == '/';
		bool ctl_slash = control[0] == '/';
		const char *sep = (base_slash || ctl_slash) ? "" : "/";
		if (base_slash && ctl_slash)
			control++;
		w = snprintf(out, outsz, "%s%s%s", base, sep, control);
	}
	if (w < 0 || (size_t)w >= outsz)
		return -ENOSPC;
	return 0;
}
