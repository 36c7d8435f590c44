/*
 * sdp.c - the SDP lines an RTSP client needs (see sdp.h): v=, m=,
 * a=control, a=rtpmap and a=fmtp.
 *
 * The text comes from the camera, is not NUL-terminated and is read line by
 * line within len. Attributes before the first m= line are session-level;
 * after it they belong to the last media (or are dropped once SDP_MAX_MEDIA
 * media are full). rtpmap and fmtp apply only to the media's first payload
 * type, the one the client sets up.
 *
 * Parameter sets are decoded from base64 (libavutil) into param_sets with a
 * 4-byte start code each, always in the order VPS, SPS, PPS whatever the
 * order of the fmtp parameters; decoding stops at the first bad value.
 */
#include <errno.h>
#include <string.h>

#include <libavutil/base64.h>

#include "sdp.h"

struct sdp_line {
	const char *p;
	size_t len;
};

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool mem_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

static bool line_ieq(struct sdp_line l, const char *lit)
{
	size_t n = strlen(lit);
	return l.len == n && mem_ieq(l.p, lit, n);
}

static struct sdp_line trim(const char *p, size_t len)
{
	while (len && is_blank(p[0])) {
		p++;
		len--;
	}
	while (len && is_blank(p[len - 1]))
		len--;
	return (struct sdp_line){ p, len };
}

/* Cuts the next item ending at `sep` (or at a blank when sep is ' ') off
 * the front of *s. */
static bool next_item(struct sdp_line *s, char sep, struct sdp_line *item)
{
	*s = trim(s->p, s->len);
	if (s->len == 0)
		return false;
	size_t n = 0;
	while (n < s->len && s->p[n] != sep && !(sep == ' ' && is_blank(s->p[n])))
		n++;
	*item = trim(s->p, n);
	s->p += n < s->len ? n + 1 : n;
	s->len -= n < s->len ? n + 1 : n;
	return true;
}

/* Decimal number of up to 9 digits, -1 when not one. */
static long parse_num(struct sdp_line l)
{
	if (l.len == 0 || l.len > 9)
		return -1;
	long v = 0;
	for (size_t i = 0; i < l.len; i++) {
		if (l.p[i] < '0' || l.p[i] > '9')
			return -1;
		v = v * 10 + (l.p[i] - '0');
	}
	return v;
}

/* Copies a value into a fixed field; a value that does not fit is left
 * out whole (a cut-off control URL would address the wrong thing). */
static void copy_str(char *dst, size_t dstsz, struct sdp_line v)
{
	if (v.len >= dstsz)
		return;
	memcpy(dst, v.p, v.len);
	dst[v.len] = '\0';
}

/* ---- m= and a= lines --------------------------------------------------- */

static void parse_media(struct sdp_line v, struct sdp_media *m)
{
	struct sdp_line item;
	memset(m, 0, sizeof *m);
	m->payload_type = -1;
	m->codec = STG_CODEC_UNKNOWN;
	if (!next_item(&v, ' ', &item))
		return;
	copy_str(m->type, sizeof m->type, item);
	/* port, proto, then the first format */
	if (next_item(&v, ' ', &item) && next_item(&v, ' ', &item) &&
	    next_item(&v, ' ', &item)) {
		long pt = parse_num(item);
		m->payload_type = pt >= 0 && pt <= 127 ? (int)pt : -1;
	}
}

/* "96 H264/90000[/params]" for the media's payload type. */
static void parse_rtpmap(struct sdp_line v, struct sdp_media *m)
{
	struct sdp_line pt, enc, name, rate;
	if (!next_item(&v, ' ', &pt) || parse_num(pt) != m->payload_type ||
	    !next_item(&v, ' ', &enc))
		return;
	if (!next_item(&enc, '/', &name))
		return;
	if (line_ieq(name, "H264"))
		m->codec = STG_CODEC_H264;
	else if (line_ieq(name, "H265"))
		m->codec = STG_CODEC_H265;
	if (next_item(&enc, '/', &rate)) {
		long r = parse_num(rate);
		m->clock_rate = r > 0 ? (int)r : 0;
	}
}

/* Appends one base64 parameter set with its start code. */
static int add_param_set(struct sdp_media *m, struct sdp_line b64)
{
	char in[SDP_MAX_PARAM_BYTES * 4 / 3 + 8];
	uint8_t nal[SDP_MAX_PARAM_BYTES];
	if (b64.len >= sizeof in)
		return -EBADMSG;
	memcpy(in, b64.p, b64.len);
	in[b64.len] = '\0';
	int n = av_base64_decode(nal, in, (int)sizeof nal);
	if (n <= 0 || m->param_sets_len + 4 + (size_t)n > sizeof m->param_sets)
		return -EBADMSG;
	uint8_t *dst = m->param_sets + m->param_sets_len;
	memcpy(dst, "\0\0\0\1", 4);
	memcpy(dst + 4, nal, (size_t)n);
	m->param_sets_len += 4 + (size_t)n;
	return 0;
}

/* A comma-separated list of base64 NAL units. Empty items (a trailing
 * comma) are skipped. */
static int add_param_list(struct sdp_media *m, struct sdp_line list)
{
	struct sdp_line item;
	while (next_item(&list, ',', &item))
		if (item.len && add_param_set(m, item) < 0)
			return -EBADMSG;
	return 0;
}

/* "96 packetization-mode=1;profile-level-id=...;sprop-parameter-sets=..." */
static void parse_fmtp(struct sdp_line v, struct sdp_media *m)
{
	struct sdp_line pt, item;
	struct sdp_line vps = { 0 }, sps = { 0 }, pps = { 0 }, h264 = { 0 };
	if (!next_item(&v, ' ', &pt) || parse_num(pt) != m->payload_type)
		return;
	while (next_item(&v, ';', &item)) {
		const char *eq = memchr(item.p, '=', item.len);
		if (!eq)
			continue;
		struct sdp_line name = trim(item.p, (size_t)(eq - item.p));
		struct sdp_line val = trim(eq + 1, item.len - (size_t)(eq - item.p) - 1);
		if (line_ieq(name, "packetization-mode")) {
			long mode = parse_num(val);
			m->packetization_mode = mode >= 0 ? (int)mode : 0;
		} else if (line_ieq(name, "sprop-parameter-sets")) {
			h264 = val;
		} else if (line_ieq(name, "sprop-vps")) {
			vps = val;
		} else if (line_ieq(name, "sprop-sps")) {
			sps = val;
		} else if (line_ieq(name, "sprop-pps")) {
			pps = val;
		}
	}
	/* a later fmtp line replaces what an earlier one gave */
	m->param_sets_len = 0;
	const struct sdp_line order[] = { vps, sps, pps, h264 };
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		if (order[i].p && add_param_list(m, order[i]) < 0)
			return;
}

struct sdp_state {
	struct sdp_session *s;
	struct sdp_media *cur;    /* NULL: session level, or media dropped */
	bool in_media;
};

static void parse_attribute(struct sdp_state *st, struct sdp_line v)
{
	const char *colon = memchr(v.p, ':', v.len);
	if (!colon)
		return;
	struct sdp_line name = { v.p, (size_t)(colon - v.p) };
	struct sdp_line val = trim(colon + 1, v.len - name.len - 1);
	if (st->in_media && !st->cur)
		return;   /* media past SDP_MAX_MEDIA */
	if (line_ieq(name, "control")) {
		if (st->cur)
			copy_str(st->cur->control, sizeof st->cur->control, val);
		else
			copy_str(st->s->control, sizeof st->s->control, val);
	} else if (st->cur && line_ieq(name, "rtpmap")) {
		parse_rtpmap(val, st->cur);
	} else if (st->cur && line_ieq(name, "fmtp")) {
		parse_fmtp(val, st->cur);
	}
}

static void parse_line(struct sdp_state *st, struct sdp_line l)
{
	if (l.len < 2 || l.p[1] != '=')
		return;
	struct sdp_line v = { l.p + 2, l.len - 2 };
	if (l.p[0] == 'm') {
		st->in_media = true;
		st->cur = NULL;
		if (st->s->media_count < SDP_MAX_MEDIA) {
			st->cur = &st->s->media[st->s->media_count++];
			parse_media(v, st->cur);
		}
	} else if (l.p[0] == 'a') {
		parse_attribute(st, v);
	}
}

/* Next line of text (without its CR LF), false at the end. */
static bool next_line(const char **p, const char *end, struct sdp_line *l)
{
	if (*p >= end)
		return false;
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *e = nl ? nl : end;
	*l = trim(*p, (size_t)(e - *p));
	*p = nl ? nl + 1 : end;
	return true;
}

int sdp_parse(const char *text, size_t len, struct sdp_session *out)
{
	const char *p = text, *end = text + len;
	struct sdp_line l;
	struct sdp_state st = { out, NULL, false };

	memset(out, 0, sizeof *out);
	if (!next_line(&p, end, &l) || !line_ieq(l, "v=0"))
		return -EBADMSG;
	while (next_line(&p, end, &l))
		parse_line(&st, l);
	return 0;
}

const struct sdp_media *sdp_find_video(const struct sdp_session *s)
{
	for (int i = 0; i < s->media_count; i++) {
		const struct sdp_media *m = &s->media[i];
		if (!strcmp(m->type, "video") && m->codec != STG_CODEC_UNKNOWN)
			return m;
	}
	return NULL;
}
