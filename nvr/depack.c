/*
 * depack.c - RTP payloads back into Annex B access units: H.264 (RFC 6184)
 * and H.265 (RFC 7798), see depack.h.
 *
 * Memory: one buffer per stream. Its first sizeof(params) bytes are kept
 * free so that a key frame that lacks parameter sets gets the stored ones
 * copied in front of it without moving the frame. The frame follows; the
 * buffer doubles up to the room plus DEPACK_MAX_FRAME.
 *
 * Frames: every NAL unit is written with a 4-byte start code, in the order
 * received. A frame ends on the marker bit or when the RTP timestamp
 * changes. A frame that holds no picture yet (say SPS and PPS sent with a
 * timestamp of their own) is not a frame: its bytes stay in front of the
 * next one, so what comes out is still every NAL unit in order.
 *
 * Loss: a sequence gap, a malformed payload or an oversized frame discards
 * the open frame (later packets with its timestamp are dropped too) and
 * every frame after it until a key frame. Each discarded frame is counted
 * once in frames_lost, keyed by its RTP timestamp.
 *
 * Parameter sets: the stored set (from the SDP, then updated by every
 * delivered frame that carries its own) holds each kind - VPS, SPS, PPS -
 * as the last frame that had that kind sent it. A key frame missing a kind
 * gets the stored NAL units of that kind put in front of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "depack.h"

#define ROOM sizeof(((struct depack *)0)->params)
#define FIRST_CAP (8u << 10)    /* grows to the largest frame ... */
#define GROW_STEP (16u << 10)   /* ... in steps of 16 KiB */
#define MAX_FRAME_PS (sizeof(((struct depack *)0)->frame_ps) / \
                      sizeof(((struct depack *)0)->frame_ps[0]))
#define LOST_FRAGMENT 1   /* depayloader: a fragment whose start was lost */

enum { PS_VPS, PS_SPS, PS_PPS, PS_KINDS };

static const uint8_t start_code[4] = { 0, 0, 0, 1 };

/* ---- NAL unit types ---------------------------------------------------- */

static unsigned nal_type(enum stg_codec c, const uint8_t *hdr)
{
	return c == STG_CODEC_H264 ? hdr[0] & 0x1fu : (hdr[0] >> 1) & 0x3fu;
}

/* Parameter set kind of a NAL unit type, -1 when it is none. */
static int ps_kind(enum stg_codec c, unsigned type)
{
	if (c == STG_CODEC_H264)
		return type == 7 ? PS_SPS : type == 8 ? PS_PPS : -1;
	return type == 32 ? PS_VPS : type == 33 ? PS_SPS : type == 34 ? PS_PPS : -1;
}

static uint8_t required_kinds(enum stg_codec c)
{
	return c == STG_CODEC_H264 ? (1u << PS_SPS | 1u << PS_PPS)
	                           : (1u << PS_VPS | 1u << PS_SPS | 1u << PS_PPS);
}

static bool is_key(enum stg_codec c, unsigned type)
{
	return c == STG_CODEC_H264 ? type == 5 : type >= 16 && type <= 23;
}

static bool is_vcl(enum stg_codec c, unsigned type)
{
	return c == STG_CODEC_H264 ? type >= 1 && type <= 5 : type <= 31;
}

/* Types a single NAL unit packet (or an aggregated one) may carry. */
static bool is_plain_nal(enum stg_codec c, unsigned type)
{
	return c == STG_CODEC_H264 ? type >= 1 && type <= 23 : type <= 47;
}

static size_t nal_header_len(enum stg_codec c)
{
	return c == STG_CODEC_H264 ? 1 : 2;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* ---- the assembly buffer ----------------------------------------------- */

static int reserve(struct depack *d, size_t extra)
{
	if (extra > DEPACK_MAX_FRAME - d->len)
		return -EFBIG;
	size_t need = ROOM + d->len + extra;
	if (need <= d->cap)
		return 0;
	/* Grow to what is needed, rounded up to GROW_STEP: the buffer lives as
	 * long as the session and ends at the largest frame, so doubling would
	 * leave up to half of it unused at every camera. */
	size_t cap = d->cap ? d->cap : FIRST_CAP;
	if (cap < need)
		cap = (need + GROW_STEP - 1) / GROW_STEP * GROW_STEP;
	if (cap > ROOM + DEPACK_MAX_FRAME)
		cap = ROOM + DEPACK_MAX_FRAME;
	uint8_t *nb = realloc(d->buf, cap);
	if (!nb)
		return -ENOMEM;
	d->buf = nb;
	d->cap = cap;
	return 0;
}

static void put(struct depack *d, const uint8_t *p, size_t n)
{
	memcpy(d->buf + ROOM + d->len, p, n);
	d->len += n;
}

/* Starts a NAL unit: start code and header (the caller reserved room). */
static void nal_begin(struct depack *d, const uint8_t *hdr)
{
	size_t hlen = nal_header_len(d->codec);
	unsigned type = nal_type(d->codec, hdr);
	put(d, start_code, 4);
	int kind = ps_kind(d->codec, type);
	if (kind >= 0) {
		d->cur_ps_mask |= (uint8_t)(1u << kind);
		if (d->frame_ps_count < MAX_FRAME_PS)
			d->frame_ps[d->frame_ps_count++] =
				(struct depack_ps_ref){ (uint8_t)kind, (uint32_t)d->len, 0 };
	}
	d->cur_key |= is_key(d->codec, type);
	d->cur_vcl |= is_vcl(d->codec, type);
	put(d, hdr, hlen);
}

/* Ends the NAL unit begun last: if it is a parameter set, its record is
 * the last one and still open (length 0; a NAL unit has at least its
 * header, so a closed record is never 0). */
static void nal_end(struct depack *d)
{
	if (d->frame_ps_count) {
		struct depack_ps_ref *ps = &d->frame_ps[d->frame_ps_count - 1];
		if (ps->len == 0)
			ps->len = (uint32_t)(d->len - ps->off);
	}
}

/* A whole NAL unit (header included). */
static int nal_add(struct depack *d, const uint8_t *nal, size_t n)
{
	size_t hlen = nal_header_len(d->codec);
	int r = reserve(d, 4 + n);
	if (r < 0)
		return r;
	nal_begin(d, nal);
	put(d, nal + hlen, n - hlen);
	nal_end(d);
	return 0;
}

/* ---- stored parameter sets --------------------------------------------- */

/* One NAL unit of an Annex B buffer at *pos (3- or 4-byte start codes);
 * false at the end. */
static bool annexb_next(const uint8_t *p, size_t len, size_t *pos,
                        const uint8_t **nal, size_t *nal_len)
{
	size_t i = *pos;
	while (i + 3 <= len && !(p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1))
		i++;
	if (i + 3 > len)
		return false;
	size_t start = i + 3, end = start;
	while (end + 3 <= len && !(p[end] == 0 && p[end + 1] == 0 && p[end + 2] == 1))
		end++;
	if (end + 3 > len)
		end = len;
	*pos = end;
	while (end > start && p[end - 1] == 0)
		end--;   /* the leading zero of a 4-byte start code */
	*nal = p + start;
	*nal_len = end - start;
	return true;
}

/* Builds the stored set into tmp, kind by kind: from `src` (Annex B) for
 * the kinds in `from_src`, from the current store for the others. */
static int params_rebuild(struct depack *d, const uint8_t *src, size_t src_len,
                          uint8_t from_src)
{
	uint8_t tmp[ROOM];
	uint16_t off[PS_KINDS], len[PS_KINDS];
	size_t n = 0;
	for (int k = 0; k < PS_KINDS; k++) {
		off[k] = (uint16_t)n;
		if (from_src & (1u << k)) {
			size_t pos = 0, nl;
			const uint8_t *nal;
			while (annexb_next(src, src_len, &pos, &nal, &nl)) {
				if (nl < nal_header_len(d->codec) ||
				    ps_kind(d->codec, nal_type(d->codec, nal)) != k)
					continue;
				if (4 + nl > sizeof tmp - n)
					return -ENOSPC;
				memcpy(tmp + n, start_code, 4);
				memcpy(tmp + n + 4, nal, nl);
				n += 4 + nl;
			}
		} else {
			memcpy(tmp + n, d->params + d->ps_off[k], d->ps_len[k]);
			n += d->ps_len[k];
		}
		len[k] = (uint16_t)(n - off[k]);
	}
	memcpy(d->params, tmp, n);
	d->params_len = n;
	memcpy(d->ps_off, off, sizeof off);
	memcpy(d->ps_len, len, sizeof len);
	return 0;
}

/* After a delivered frame: its parameter sets replace the stored ones of
 * the same kinds. The frame's sets are gathered into an Annex B scratch
 * area in the buffer's room (free again once the frame is out). */
static void params_update(struct depack *d)
{
	uint8_t *scratch = d->buf;
	size_t n = 0;
	uint8_t kinds = 0;
	for (unsigned i = 0; i < d->frame_ps_count; i++) {
		const struct depack_ps_ref *ps = &d->frame_ps[i];
		if (ps->len == 0 || 4 + (size_t)ps->len > ROOM - n)
			return;   /* too big to store: keep the previous set */
		memcpy(scratch + n, start_code, 4);
		memcpy(scratch + n + 4, d->buf + ROOM + ps->off, ps->len);
		n += 4 + ps->len;
		kinds |= (uint8_t)(1u << ps->kind);
	}
	(void)params_rebuild(d, scratch, n, kinds);   /* cannot overflow: n <= ROOM */
}

/* ---- frames ------------------------------------------------------------ */

static void reset_frame(struct depack *d)
{
	d->len = 0;
	d->frame_ps_count = 0;
	d->cur_ps_mask = 0;
	d->have_ts = false;
	d->cur_key = d->cur_vcl = d->cur_broken = false;
	d->in_fu = false;
}

static void count_lost(struct depack *d)
{
	if (d->lost_ts_valid && d->lost_ts == d->cur_ts)
		return;
	d->stats.frames_lost++;
	d->lost_ts = d->cur_ts;
	d->lost_ts_valid = true;
}

/* Drops the open frame; packets with its timestamp are dropped until the
 * frame would have ended. Decoding resumes at the next key frame. */
static void discard_frame(struct depack *d)
{
	uint32_t ts = d->cur_ts;
	count_lost(d);
	reset_frame(d);
	d->have_ts = true;
	d->cur_ts = ts;
	d->cur_broken = true;
	d->waiting_for_key = true;
}

static void deliver(struct depack *d)
{
	uint8_t *start = d->buf + ROOM;
	size_t size = d->len;
	if (d->cur_key) {
		uint8_t missing = required_kinds(d->codec) & (uint8_t)~d->cur_ps_mask;
		for (int k = PS_KINDS - 1; k >= 0; k--) {
			if (!(missing & (1u << k)) || !d->ps_len[k])
				continue;
			start -= d->ps_len[k];
			memcpy(start, d->params + d->ps_off[k], d->ps_len[k]);
			size += d->ps_len[k];
		}
	}
	struct depack_frame f = { start, size, d->cur_ts, d->cur_key };
	d->waiting_for_key = false;
	d->stats.frames++;
	d->on_frame(d->user, &f);
	if (d->cur_ps_mask)
		params_update(d);
}

/* Ends the open frame: delivers it, or discards it, or keeps its bytes
 * for the next one when it holds no picture. */
static void frame_end(struct depack *d)
{
	if (!d->have_ts)
		return;
	if (d->cur_broken) {
		reset_frame(d);
		return;
	}
	if (d->in_fu) {
		/* a fragmented NAL unit never got its end */
		d->stats.bad_packets++;
		discard_frame(d);
		reset_frame(d);
		return;
	}
	if (!d->cur_vcl)
		return;
	if (d->waiting_for_key && !d->cur_key)
		count_lost(d);
	else
		deliver(d);
	reset_frame(d);
}

/* ---- payload formats --------------------------------------------------- */

/* STAP-A (H.264) or AP (H.265) body: 16-bit size, NAL unit, repeated.
 * Checked whole before anything is added. */
static int aggregate(struct depack *d, const uint8_t *p, size_t n)
{
	size_t hlen = nal_header_len(d->codec);
	if (n == 0)
		return -EBADMSG;
	for (int pass = 0; pass < 2; pass++) {
		size_t off = 0;
		while (off < n) {
			if (n - off < 2)
				return -EBADMSG;
			size_t sz = be16(p + off);
			off += 2;
			if (sz < hlen || sz > n - off ||
			    !is_plain_nal(d->codec, nal_type(d->codec, p + off)))
				return -EBADMSG;
			if (pass == 1) {
				int r = nal_add(d, p + off, sz);
				if (r < 0)
					return r;
			}
			off += sz;
		}
	}
	return 0;
}

/* FU-A (H.264) or FU (H.265): `hdr` is the rebuilt NAL header, `fu` the FU
 * header byte, data the fragment. */
static int fragment(struct depack *d, const uint8_t *hdr, unsigned type,
                    uint8_t fu, const uint8_t *data, size_t n, bool gap)
{
	bool s = fu & 0x80, e = fu & 0x40;
	size_t hlen = nal_header_len(d->codec);
	int r;
	if (!is_plain_nal(d->codec, type))
		return -EBADMSG;
	if (s) {
		if (d->in_fu)
			return -EBADMSG;
		if ((r = reserve(d, 4 + hlen + n)) < 0)
			return r;
		nal_begin(d, hdr);
		d->in_fu = true;
		d->fu_type = (uint8_t)type;
	} else {
		if (!d->in_fu)
			return gap ? LOST_FRAGMENT : -EBADMSG;
		if (type != d->fu_type)
			return -EBADMSG;
		if ((r = reserve(d, n)) < 0)
			return r;
	}
	put(d, data, n);
	if (e) {
		d->in_fu = false;
		nal_end(d);
	}
	return 0;
}

static int h264_payload(struct depack *d, const uint8_t *p, size_t n, bool gap)
{
	if (n < 1)
		return -EBADMSG;
	unsigned type = p[0] & 0x1f;
	if (type >= 1 && type <= 23)
		return d->in_fu ? -EBADMSG : nal_add(d, p, n);
	if (type == 24)
		return d->in_fu ? -EBADMSG : aggregate(d, p + 1, n - 1);
	if (type == 28) {
		if (n < 2)
			return -EBADMSG;
		uint8_t hdr = (uint8_t)((p[0] & 0xe0) | (p[1] & 0x1f));
		return fragment(d, &hdr, p[1] & 0x1fu, p[1], p + 2, n - 2, gap);
	}
	return -EBADMSG;   /* 0, STAP-B, MTAP16, MTAP24, FU-B, 30, 31 */
}

static int h265_payload(struct depack *d, const uint8_t *p, size_t n, bool gap)
{
	if (n < 2)
		return -EBADMSG;
	unsigned type = (p[0] >> 1) & 0x3f;
	if (type <= 47)
		return d->in_fu ? -EBADMSG : nal_add(d, p, n);
	if (type == 48)
		return d->in_fu ? -EBADMSG : aggregate(d, p + 2, n - 2);
	if (type == 49) {
		if (n < 3)
			return -EBADMSG;
		unsigned ft = p[2] & 0x3fu;
		uint8_t hdr[2] = { (uint8_t)((p[0] & 0x81) | ft << 1), p[1] };
		return fragment(d, hdr, ft, p[2], p + 3, n - 3, gap);
	}
	return -EBADMSG;   /* PACI and unassigned types */
}

/* ---- API --------------------------------------------------------------- */

int depack_init(struct depack *d, enum stg_codec codec,
                const uint8_t *param_sets, size_t param_len,
                depack_frame_fn on_frame, void *user)
{
	memset(d, 0, sizeof *d);
	if ((codec != STG_CODEC_H264 && codec != STG_CODEC_H265) || !on_frame)
		return -EINVAL;
	d->codec = codec;
	d->on_frame = on_frame;
	d->user = user;
	if (param_sets && param_len &&
	    params_rebuild(d, param_sets, param_len, (1u << PS_KINDS) - 1) < 0) {
		memset(d, 0, sizeof *d);
		return -EINVAL;
	}
	return 0;
}

int depack_push(struct depack *d, const struct rtp_packet *pkt)
{
	bool gap = false;
	d->stats.packets++;
	if (d->have_seq && pkt->seq != d->next_seq) {
		gap = true;
		d->stats.gaps++;
		if (d->have_ts && !d->cur_broken)
			discard_frame(d);
		d->waiting_for_key = true;
	}
	d->have_seq = true;
	d->next_seq = (uint16_t)(pkt->seq + 1);

	if (d->have_ts && pkt->timestamp != d->cur_ts) {
		frame_end(d);
		if (d->have_ts)
			d->cur_ts = pkt->timestamp;   /* bytes kept from a picture-less frame */
	}
	if (!d->have_ts) {
		d->have_ts = true;
		d->cur_ts = pkt->timestamp;
	}

	int r = 0;
	if (!d->cur_broken) {
		r = d->codec == STG_CODEC_H264
		  ? h264_payload(d, pkt->payload, pkt->payload_len, gap)
		  : h265_payload(d, pkt->payload, pkt->payload_len, gap);
		if (r == -EBADMSG)
			d->stats.bad_packets++;
		if (r != 0)
			discard_frame(d);
		if (r > 0 || r == -EFBIG)
			r = 0;   /* counted in frames_lost: not an error of this packet */
	}
	if (pkt->marker)
		frame_end(d);
	return r;
}

void depack_flush(struct depack *d)
{
	if (d->have_ts && !d->cur_broken && d->cur_vcl) {
		if (d->in_fu)
			count_lost(d);   /* cut off inside a NAL unit: not whole */
		else
			frame_end(d);
	}
	reset_frame(d);
}

void depack_free(struct depack *d)
{
	free(d->buf);
	d->buf = NULL;
	d->len = d->cap = 0;
}
