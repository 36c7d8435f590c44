/*
 * rtsp_auth.c - Basic and Digest authentication for RTSP (RFC 2617, MD5
 * only), both the client's Authorization header and the server's check of
 * it (see rtsp_auth.h).
 *
 * Challenge and credential headers are lists of name=value pairs whose
 * values are tokens or quoted strings with backslash escapes. One bounded
 * reader (auth_next_param) serves both sides. Values we write into quoted
 * strings are escaped the same way, and anything that could end a header
 * line (CR, LF) is refused, so a user name can never inject a header.
 *
 * MD5 and base64 are libavutil's. Nothing here logs: passwords and the
 * header values derived from them must stay out of the log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libavutil/base64.h>
#include <libavutil/md5.h>
#include <libavutil/mem.h>

#include "rtsp_auth.h"

#define AUTH_VALUE_MAX 512   /* longest auth-param value we accept */

/* ---- characters and strings -------------------------------------------- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_token(char c)
{
	unsigned char u = (unsigned char)c;
	if (u <= 0x20 || u >= 0x7f)
		return false;
	return !strchr("()<>@,;:\\\"/[]?={}", c);
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (lower((unsigned char)*a) != lower((unsigned char)*b))
			return false;
	return *a == *b;
}

/* Compares without stopping at the first difference (the server side must
 * not leak how much of a response matched). Case-insensitive for hex. */
static bool secret_eq(const char *a, size_t alen, const char *b, size_t blen,
                      bool fold_case)
{
	if (alen != blen)
		return false;
	unsigned diff = 0;
	for (size_t i = 0; i < alen; i++) {
		int x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (fold_case) {
			x = lower(x);
			y = lower(y);
		}
		diff |= (unsigned)(x ^ y);
	}
	return diff == 0;
}

static bool has_line_break(const char *s)
{
	return s && strpbrk(s, "\r\n") != NULL;
}

static int copy_field(char *dst, size_t dstsz, const char *src)
{
	size_t n = strlen(src);
	if (n >= dstsz)
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

/* ---- the auth-param reader --------------------------------------------- */

struct auth_cursor {
	const char *p, *end;
};

static void skip_blanks(struct auth_cursor *c)
{
	while (c->p < c->end && is_blank(*c->p))
		c->p++;
}

/* Reads a token into out (NUL-terminated). Returns its length, or -EINVAL
 * when empty or too long. */
static int read_token(struct auth_cursor *c, char *out, size_t outsz)
{
	size_t n = 0;
	while (c->p < c->end && is_token(*c->p)) {
		if (n + 1 >= outsz)
			return -EINVAL;
		out[n++] = *c->p++;
	}
	out[n] = '\0';
	return n ? (int)n : -EINVAL;
}

static int read_quoted(struct auth_cursor *c, char *out, size_t outsz)
{
	size_t n = 0;
	c->p++;   /* opening quote */
	while (c->p < c->end && *c->p != '"') {
		char ch = *c->p++;
		if (ch == '\\') {
			if (c->p >= c->end)
				return -EINVAL;
			ch = *c->p++;
		}
		if (ch == '\r' || ch == '\n' || ch == '\0' || n + 1 >= outsz)
			return -EINVAL;
		out[n++] = ch;
	}
	if (c->p >= c->end)
		return -EINVAL;   /* no closing quote */
	c->p++;
	out[n] = '\0';
	return 0;
}

/* Next name=value pair of a comma-separated list. Returns 1 with name and
 * value filled, 0 at the end of the list (or where a name is not followed
 * by '=': the start of another challenge), -EINVAL when malformed. */
static int auth_next_param(struct auth_cursor *c, char *name, size_t nsz,
                           char *val, size_t vsz)
{
	while (c->p < c->end && (is_blank(*c->p) || *c->p == ','))
		c->p++;
	if (c->p >= c->end)
		return 0;
	if (read_token(c, name, nsz) < 0)
		return -EINVAL;
	skip_blanks(c);
	if (c->p >= c->end || *c->p != '=')
		return 0;
	c->p++;
	skip_blanks(c);
	if (c->p < c->end && *c->p == '"') {
		if (read_quoted(c, val, vsz) < 0)
			return -EINVAL;
	} else if (read_token(c, val, vsz) < 0) {
		return -EINVAL;
	}
	skip_blanks(c);
	if (c->p < c->end && *c->p != ',')
		return -EINVAL;
	return 1;
}

/* Reads the scheme name at the start of a header value. */
static int read_scheme(struct auth_cursor *c, enum rtsp_auth_scheme *scheme)
{
	char name[16];
	skip_blanks(c);
	if (read_token(c, name, sizeof name) < 0)
		return -EINVAL;
	if (c->p < c->end && !is_blank(*c->p))
		return -EINVAL;
	if (ieq(name, "Basic"))
		*scheme = RTSP_AUTH_BASIC;
	else if (ieq(name, "Digest"))
		*scheme = RTSP_AUTH_DIGEST;
	else
		return -EINVAL;
	return 0;
}

/* Does a qop list such as "auth,auth-int" contain "auth"? */
static bool qop_has_auth(const char *list)
{
	const char *p = list;
	while (*p) {
		while (*p == ',' || is_blank(*p))
			p++;
		size_t n = 0;
		while (p[n] && p[n] != ',' && !is_blank(p[n]))
			n++;
		if (n == 4 && !strncmp(p, "auth", 4))
			return true;
		p += n;
	}
	return false;
}

int rtsp_auth_parse_challenge(const char *value, size_t len,
                              struct rtsp_auth_challenge *out)
{
	struct auth_cursor c = { value, value + len };
	char name[32], val[AUTH_VALUE_MAX];
	bool have_realm = false, have_nonce = false, have_qop = false;
	int r;

	memset(out, 0, sizeof *out);
	if (read_scheme(&c, &out->scheme) < 0)
		goto fail;
	while ((r = auth_next_param(&c, name, sizeof name, val, sizeof val)) > 0) {
		if (ieq(name, "realm")) {
			if (copy_field(out->realm, sizeof out->realm, val) < 0)
				goto fail;
			have_realm = true;
		} else if (ieq(name, "nonce")) {
			if (copy_field(out->nonce, sizeof out->nonce, val) < 0)
				goto fail;
			have_nonce = val[0] != '\0';
		} else if (ieq(name, "opaque")) {
			if (copy_field(out->opaque, sizeof out->opaque, val) < 0)
				goto fail;
		} else if (ieq(name, "qop")) {
			have_qop = true;
			out->qop_auth = qop_has_auth(val);
		} else if (ieq(name, "stale")) {
			out->stale = ieq(val, "true");
		} else if (ieq(name, "algorithm")) {
			if (!ieq(val, "MD5"))
				goto fail;   /* MD5-sess, SHA-256: not supported */
		}
	}
	if (r < 0)
		goto fail;
	if (out->scheme == RTSP_AUTH_DIGEST &&
	    (!have_realm || !have_nonce || (have_qop && !out->qop_auth)))
		goto fail;
	return 0;
fail:
	memset(out, 0, sizeof *out);
	return -EINVAL;
}

/* ---- Digest ------------------------------------------------------------ */

static void hash_hex(struct AVMD5 *md5, const char *const *parts, int n,
                     char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t sum[16];
	av_md5_init(md5);
	for (int i = 0; i < n; i++) {
		if (i)
			av_md5_update(md5, (const uint8_t *)":", 1);
		av_md5_update(md5, (const uint8_t *)parts[i], strlen(parts[i]));
	}
	av_md5_final(md5, sum);
	for (int i = 0; i < 16; i++) {
		hex[2 * i] = digits[sum[i] >> 4];
		hex[2 * i + 1] = digits[sum[i] & 15];
	}
	hex[32] = '\0';
}

/* RFC 2617 3.2.2.1: response = MD5(HA1:nonce[:nc:cnonce:qop]:HA2). */
static int digest_compute(const char *user, const char *realm, const char *pass,
                          const char *method, const char *uri,
                          const char *nonce, const char *nc, const char *cnonce,
                          const char *qop, char out[33])
{
	struct AVMD5 *md5 = av_md5_alloc();
	char ha1[33], ha2[33];
	out[0] = '\0';
	if (!md5)
		return -ENOMEM;
	hash_hex(md5, (const char *const[]){ user, realm, pass }, 3, ha1);
	hash_hex(md5, (const char *const[]){ method, uri }, 2, ha2);
	if (qop)
		hash_hex(md5, (const char *const[]){ ha1, nonce, nc, cnonce, qop, ha2 }, 6, out);
	else
		hash_hex(md5, (const char *const[]){ ha1, nonce, ha2 }, 3, out);
	av_free(md5);
	return 0;
}

void rtsp_digest_response(const char *user, const char *realm,
                          const char *pass, const char *method,
                          const char *uri, const char *nonce, const char *nc,
                          const char *cnonce, const char *qop, char out[33])
{
	/* on allocation failure out is "", which matches no response */
	(void)digest_compute(user, realm, pass, method, uri, nonce, nc, cnonce,
	                     qop, out);
}

/* ---- Authorization header (client) -------------------------------------- */

struct out_buf {
	char *p;
	size_t size, len;
	bool full;
	bool params;   /* a name=value pair was written: the next gets ", " */
};

static void put(struct out_buf *o, const char *s)
{
	size_t n = strlen(s);
	if (o->full || o->len + n >= o->size) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n + 1);
	o->len += n;
}

/* name="value" with '"' and '\' escaped, preceded by ", " unless first. */
static void put_quoted(struct out_buf *o, const char *name, const char *v)
{
	char one[2] = { 0, 0 };
	if (o->params)
		put(o, ", ");
	o->params = true;
	put(o, name);
	put(o, "=\"");
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			put(o, "\\");
		one[0] = *v;
		put(o, one);
	}
	put(o, "\"");
}

static int basic_header(const char *user, const char *pass, char *out,
                        size_t outsz)
{
	char cred[512];
	if (strchr(user, ':'))
		return -EINVAL;   /* RFC 7617: a user-id cannot contain ':' */
	int n = snprintf(cred, sizeof cred, "%s:%s", user, pass);
	if (n < 0 || (size_t)n >= sizeof cred)
		return -EINVAL;
	if (outsz < 6 || outsz - 6 < (size_t)AV_BASE64_SIZE(n))
		return -ENOSPC;
	memcpy(out, "Basic ", 6);
	if (!av_base64_encode(out + 6, (int)(outsz - 6), (const uint8_t *)cred, n))
		return -ENOSPC;
	memset(cred, 0, sizeof cred);
	return (int)strlen(out);
}

static int digest_header(const struct rtsp_auth_challenge *ch,
                         const char *user, const char *pass,
                         const char *method, const char *uri, uint32_t nc,
                         const char *cnonce, char *out, size_t outsz)
{
	char resp[33], ncs[9];
	struct out_buf o = { out, outsz, 0, false, false };

	if (ch->qop_auth && (!cnonce || !cnonce[0]))
		return -EINVAL;
	snprintf(ncs, sizeof ncs, "%08x", nc);
	if (digest_compute(user, ch->realm, pass, method, uri, ch->nonce,
	                   ch->qop_auth ? ncs : NULL, ch->qop_auth ? cnonce : NULL,
	                   ch->qop_auth ? "auth" : NULL, resp) < 0)
		return -ENOMEM;
	if (outsz == 0)
		return -ENOSPC;
	out[0] = '\0';
	put(&o, "Digest ");
	put_quoted(&o, "username", user);
	put_quoted(&o, "realm", ch->realm);
	put_quoted(&o, "nonce", ch->nonce);
	put_quoted(&o, "uri", uri);
	put_quoted(&o, "response", resp);
	if (ch->opaque[0])
		put_quoted(&o, "opaque", ch->opaque);
	if (ch->qop_auth) {
		put(&o, ", qop=auth, nc=");
		put(&o, ncs);
		put_quoted(&o, "cnonce", cnonce);
	}
	if (o.full)
		return -ENOSPC;
	return (int)o.len;
}

int rtsp_auth_header(const struct rtsp_auth_challenge *ch, const char *user,
                     const char *pass, const char *method, const char *uri,
                     uint32_t nc, const char *cnonce, char *out, size_t outsz)
{
	if (has_line_break(user) || has_line_break(method) ||
	    has_line_break(uri) || has_line_break(cnonce))
		return -EINVAL;
	switch (ch->scheme) {
	case RTSP_AUTH_BASIC:
		return basic_header(user, pass, out, outsz);
	case RTSP_AUTH_DIGEST:
		return digest_header(ch, user, pass, method, uri, nc, cnonce, out, outsz);
	default:
		return -EINVAL;
	}
}

/* ---- server-side check ------------------------------------------------- */

static bool check_basic(struct auth_cursor *c, const char *user,
                        const char *pass)
{
	char tok[AUTH_VALUE_MAX];
	uint8_t dec[AUTH_VALUE_MAX];
	char want[AUTH_VALUE_MAX];

	skip_blanks(c);
	size_t n = 0;
	while (c->p < c->end && !is_blank(*c->p)) {
		if (n + 1 >= sizeof tok)
			return false;
		tok[n++] = *c->p++;
	}
	tok[n] = '\0';
	skip_blanks(c);
	if (n == 0 || c->p != c->end)
		return false;
	int dlen = av_base64_decode(dec, tok, (int)sizeof dec);
	int wlen = snprintf(want, sizeof want, "%s:%s", user, pass);
	if (dlen < 0 || wlen < 0 || (size_t)wlen >= sizeof want)
		return false;
	return secret_eq((const char *)dec, (size_t)dlen, want, (size_t)wlen, false);
}

struct digest_creds {
	char username[AUTH_VALUE_MAX], realm[AUTH_VALUE_MAX], nonce[AUTH_VALUE_MAX];
	char uri[AUTH_VALUE_MAX], response[AUTH_VALUE_MAX], qop[AUTH_VALUE_MAX];
	char nc[AUTH_VALUE_MAX], cnonce[AUTH_VALUE_MAX];
	bool bad_algorithm;
};

static int read_digest_creds(struct auth_cursor *c, struct digest_creds *d)
{
	char name[32], val[AUTH_VALUE_MAX];
	int r;
	memset(d, 0, sizeof *d);
	while ((r = auth_next_param(c, name, sizeof name, val, sizeof val)) > 0) {
		char *dst = ieq(name, "username") ? d->username
		          : ieq(name, "realm") ? d->realm
		          : ieq(name, "nonce") ? d->nonce
		          : ieq(name, "uri") ? d->uri
		          : ieq(name, "response") ? d->response
		          : ieq(name, "qop") ? d->qop
		          : ieq(name, "nc") ? d->nc
		          : ieq(name, "cnonce") ? d->cnonce : NULL;
		if (dst)
			memcpy(dst, val, strlen(val) + 1);
		else if (ieq(name, "algorithm") && !ieq(val, "MD5"))
			d->bad_algorithm = true;
	}
	if (r < 0 || c->p != c->end)
		return -EINVAL;
	return 0;
}

static bool check_digest(struct auth_cursor *c, const char *realm,
                         const char *nonce, const char *user, const char *pass,
                         const char *method)
{
	struct digest_creds d;
	char want[33];

	if (read_digest_creds(c, &d) < 0 || d.bad_algorithm)
		return false;
	if (strcmp(d.username, user) || strcmp(d.realm, realm) ||
	    strcmp(d.nonce, nonce) || !d.uri[0] || strlen(d.response) != 32)
		return false;
	bool qop = d.qop[0] != '\0';
	if (qop && (strcmp(d.qop, "auth") || strlen(d.nc) != 8 || !d.cnonce[0]))
		return false;
	if (digest_compute(user, realm, pass, method, d.uri, nonce,
	                   qop ? d.nc : NULL, qop ? d.cnonce : NULL,
	                   qop ? "auth" : NULL, want) < 0)
		return false;
	return secret_eq(d.response, 32, want, 32, true);
}

bool rtsp_auth_check(const char *value, size_t len, const char *realm,
                     const char *nonce, const char *user, const char *pass,
                     const char *method, bool allow_basic)
{
	struct auth_cursor c = { value, value + len };
	enum rtsp_auth_scheme scheme;
	if (read_scheme(&c, &scheme) < 0)
		return false;
	if (scheme == RTSP_AUTH_BASIC)
		return allow_basic && check_basic(&c, user, pass);
	return check_digest(&c, realm, nonce, user, pass, method);
}
