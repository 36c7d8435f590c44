/*
 * camsim_fixture.c - a fixture file read once and cut into RTP payloads.
 *
 * libavformat opens whatever the file is (raw .264/.265, .mp4, ...); the
 * h264_mp4toannexb / hevc_mp4toannexb filters turn AVCC/HVCC packets into
 * Annex B and pass Annex B through unchanged. Each packet is one access
 * unit; its NAL units are split at start codes and packetized here, once,
 * for every session that will ever stream the file:
 *   H.264 (RFC 6184, packetization-mode=1): a NAL unit that fits is one
 *     packet; a larger one becomes FU-A fragments (indicator + header).
 *   H.265 (RFC 7798): single NAL unit packets, or FU (type 49) fragments
 *     behind a 2-byte payload header and a 1-byte FU header.
 * Parameter sets travel as single NAL units like every other NAL unit;
 * access unit delimiters and filler data are left out. The first VPS, SPS
 * and PPS also go into the SDP's a=fmtp line.
 *
 * Leading frames before the first key frame are dropped so that every
 * session starts with a decodable frame and the loop joins cleanly.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/base64.h>

#include "camsim.h"
#include "../../nvr/log.h"

#define FX_MAX_PS_BYTES 1024

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	uint32_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, (size_t)n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static int payload_reserve(struct cs_fixture *fx, size_t more)
{
	size_t need = fx->payload_len + more;
	if (need <= fx->payload_cap)
		return 0;
	size_t n = fx->payload_cap ? fx->payload_cap : 1 << 16;
	while (n < need)
		n *= 2;
	uint8_t *q = realloc(fx->payload, n);
	if (!q)
		return -ENOMEM;
	fx->payload = q;
	fx->payload_cap = n;
	return 0;
}

/* Appends one packet made of a header (hlen bytes) and body. */
static int add_pkt(struct cs_fixture *fx, const uint8_t *hdr, size_t hlen,
                   const uint8_t *body, size_t blen, uint8_t keep)
{
	int err = payload_reserve(fx, hlen + blen);
	if (!err)
		err = grow((void **)&fx->pkts, &fx->pkts_cap, fx->npkts + 1, sizeof *fx->pkts);
	if (err)
		return err;
	struct cs_pkt *p = &fx->pkts[fx->npkts++];
	p->off = (uint32_t)fx->payload_len;
	p->len = (uint16_t)(hlen + blen);
	p->keep = keep;
	memcpy(fx->payload + fx->payload_len, hdr, hlen);
	memcpy(fx->payload + fx->payload_len + hlen, body, blen);
	fx->payload_len += hlen + blen;
	return 0;
}

/* One NAL unit as a single packet or as fragments of at most max bytes. */
static int packetize_nal(struct cs_fixture *fx, const uint8_t *nal, size_t len,
                         size_t max)
{
	size_t nh = fx->codec == CS_H264 ? 1 : 2;   /* NAL header bytes */
	if (len <= max)
		return add_pkt(fx, nal, 0, nal, len, (uint8_t)nh);

	uint8_t hdr[3];
	size_t hlen;
	uint8_t type;
	if (fx->codec == CS_H264) {
		hdr[0] = (uint8_t)((nal[0] & 0xE0) | 28);     /* FU-A indicator */
		type = nal[0] & 0x1F;
		hlen = 2;
	} else {
		hdr[0] = (uint8_t)((nal[0] & 0x81) | (49 << 1));   /* FU payload header */
		hdr[1] = nal[1];
		type = (nal[0] >> 1) & 0x3F;
		hlen = 3;
	}
	size_t frag = max - hlen;
	for (size_t off = nh; off < len; off += frag) {
		size_t n = len - off < frag ? len - off : frag;
		uint8_t fu = type;
		if (off == nh)
			fu |= 0x80;                          /* start */
		if (off + n == len)
			fu |= 0x40;                          /* end */
		hdr[hlen - 1] = fu;
		int err = add_pkt(fx, hdr, hlen, nal + off, n, (uint8_t)hlen);
		if (err)
			return err;
	}
	return 0;
}

/* Keeps a copy of the first parameter set of each kind for the SDP. */
static int note_param_set(struct cs_fixture *fx, int which, const uint8_t *nal, size_t len)
{
	if (fx->ps[which] || len > FX_MAX_PS_BYTES)
		return 0;
	fx->ps[which] = malloc(len);
	if (!fx->ps[which])
		return -ENOMEM;
	memcpy(fx->ps[which], nal, len);
	fx->ps_len[which] = len;
	return 0;
}

/* What one NAL unit is: -1 to leave out, else 1 for a key-frame slice,
 * 0 otherwise; parameter sets are noted. */
static int classify_nal(struct cs_fixture *fx, const uint8_t *nal, size_t len, int *err)
{
	*err = 0;
	if (fx->codec == CS_H264) {
		int t = nal[0] & 0x1F;
		if (t == 9 || t == 12)                       /* AUD, filler */
			return -1;
		if (t == 7)
			*err = note_param_set(fx, 1, nal, len);
		else if (t == 8)
			*err = note_param_set(fx, 2, nal, len);
		return t == 5;
	}
	if (len < 2)
		return -1;
	int t = (nal[0] >> 1) & 0x3F;
	if (t == 35 || t == 38)                          /* AUD, filler */
		return -1;
	if (t >= 32 && t <= 34)
		*err = note_param_set(fx, t - 32, nal, len);
	return t >= 16 && t <= 23;
}

/* Next NAL unit of Annex B data at or after *pos: sets *nal and *len and
 * advances *pos; false at the end. */
static bool next_nal(const uint8_t *d, size_t size, size_t *pos,
                     const uint8_t **nal, size_t *len)
{
	size_t i = *pos;
	while (i + 3 <= size && !(d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1))
		i++;
	if (i + 3 > size)
		return false;
	size_t start = i + 3, j = start;
	while (j + 3 <= size && !(d[j] == 0 && d[j + 1] == 0 && (d[j + 2] == 1 || d[j + 2] == 0)))
		j++;
	size_t end = j + 3 <= size ? j : size;
	while (end > start && d[end - 1] == 0)           /* trailing zero bytes */
		end--;
	*nal = d + start;
	*len = end - start;
	*pos = j + 3 <= size ? j : size;
	return true;
}

/* Packetizes one access unit of Annex B data. */
static int add_au(struct cs_fixture *fx, const uint8_t *d, size_t size, size_t max)
{
	uint32_t first = fx->npkts;
	size_t bytes0 = fx->payload_len, pos = 0, len;
	const uint8_t *nal;
	bool key = false;
	int err;

	while (next_nal(d, size, &pos, &nal, &len)) {
		if (len == 0)
			continue;
		int kind = classify_nal(fx, nal, len, &err);
		if (err)
			return err;
		if (kind < 0)
			continue;
		key |= kind == 1;
		err = packetize_nal(fx, nal, len, max);
		if (err)
			return err;
	}
	if (fx->npkts == first)
		return 0;                                   /* nothing to send */
	if (fx->naus == 0 && !key) {                     /* before the first key frame */
		fx->npkts = first;
		fx->payload_len = bytes0;
		return 0;
	}
	err = grow((void **)&fx->aus, &fx->aus_cap, fx->naus + 1, sizeof *fx->aus);
	if (err)
		return err;
	fx->aus[fx->naus++] = (struct cs_au){
		.first = first,
		.count = fx->npkts - first,
		.bytes = (uint32_t)(fx->payload_len - bytes0),
		.key = key,
	};
	return 0;
}

static char *b64(const uint8_t *p, size_t len)
{
	size_t n = AV_BASE64_SIZE(len);
	char *s = malloc(n);
	if (s && !av_base64_encode(s, (int)n, p, (int)len)) {
		free(s);
		s = NULL;
	}
	return s;
}

/* The a=fmtp parameters: sprop-parameter-sets (H.264) or sprop-vps/sps/pps. */
static int build_fmtp(struct cs_fixture *fx)
{
	int first = fx->codec == CS_H264 ? 1 : 0;
	char *enc[3] = { NULL, NULL, NULL };
	int err = -ENOMEM;
	for (int i = first; i < 3; i++) {
		if (!fx->ps[i]) {
			nvr_log("error", "camsim", "event=fixture_error path=%s error=\"no %s in the stream\"",
			        fx->path, i == 0 ? "VPS" : i == 1 ? "SPS" : "PPS");
			err = -EINVAL;
			goto fail;
		}
		enc[i] = b64(fx->ps[i], fx->ps_len[i]);
		if (!enc[i])
			goto fail;
	}
	size_t n = 128;
	for (int i = first; i < 3; i++)
		n += strlen(enc[i]);
	fx->fmtp = malloc(n);
	if (!fx->fmtp)
		goto fail;
	if (fx->codec == CS_H264) {
		const uint8_t *sps = fx->ps[1];
		if (fx->ps_len[1] >= 4)
			snprintf(fx->fmtp, n, "packetization-mode=1;profile-level-id=%02X%02X%02X;"
			         "sprop-parameter-sets=%s,%s", sps[1], sps[2], sps[3], enc[1], enc[2]);
		else
			snprintf(fx->fmtp, n, "packetization-mode=1;sprop-parameter-sets=%s,%s",
			         enc[1], enc[2]);
	} else {
		snprintf(fx->fmtp, n, "sprop-vps=%s;sprop-sps=%s;sprop-pps=%s", enc[0], enc[1], enc[2]);
	}
	err = 0;
fail:
	for (int i = 0; i < 3; i++)
		free(enc[i]);
	return err;
}

/* Distance in frames from each AU to the next key AU, going round. */
static int build_key_table(struct cs_fixture *fx)
{
	fx->to_key = malloc(fx->naus * sizeof *fx->to_key);
	if (!fx->to_key)
		return -ENOMEM;
	uint32_t d = 0;
	for (uint32_t pass = 0; pass < 2; pass++)
		for (uint32_t i = fx->naus; i-- > 0;) {
			d = fx->aus[i].key ? 0 : d + 1;
			fx->to_key[i] = d;
		}
	for (uint32_t i = 0; i < fx->naus; i++) {
		if (fx->aus[i].count > fx->max_au_pkts)
			fx->max_au_pkts = fx->aus[i].count;
		fx->bytes_per_loop += fx->aus[i].bytes;
	}
	return 0;
}

static void set_frame_rate(struct cs_fixture *fx, const AVStream *st)
{
	AVRational r = st->avg_frame_rate;
	if (r.num <= 0 || r.den <= 0)
		r = st->r_frame_rate;
	if (r.num <= 0 || r.den <= 0 || av_q2d(r) > 1000) {
		r = (AVRational){ 25, 1 };
		nvr_log("warn", "camsim", "event=fixture_no_frame_rate path=%s fps=25", fx->path);
	}
	fx->fps_num = (uint32_t)r.num;
	fx->fps_den = (uint32_t)r.den;
}

/* Takes every access unit the filter has ready. */
static int drain_filter(struct cs_fixture *fx, AVBSFContext *bsf, AVPacket *pkt, size_t max)
{
	int err;
	while (!(err = av_bsf_receive_packet(bsf, pkt))) {
		err = add_au(fx, pkt->data, (size_t)pkt->size, max);
		av_packet_unref(pkt);
		if (err)
			return err;
	}
	return err == AVERROR(EAGAIN) || err == AVERROR_EOF ? 0 : err;
}

/* Feeds every video packet of the file through the Annex B filter. */
static int read_all(struct cs_fixture *fx, AVFormatContext *fmt, int si, AVBSFContext *bsf,
                    size_t max)
{
	AVPacket *pkt = av_packet_alloc();
	if (!pkt)
		return -ENOMEM;
	bool eof = false;
	int err;
	do {
		err = av_read_frame(fmt, pkt);
		if (err == AVERROR_EOF) {
			eof = true;
			err = av_bsf_send_packet(bsf, NULL);
		} else if (!err && pkt->stream_index != si) {
			av_packet_unref(pkt);
			continue;
		} else if (!err) {
			err = av_bsf_send_packet(bsf, pkt);
		}
		av_packet_unref(pkt);
		if (!err)
			err = drain_filter(fx, bsf, pkt, max);
	} while (!err && !eof);
	av_packet_free(&pkt);
	return err;
}

static int open_filter(const AVStream *st, enum cs_codec codec, AVBSFContext **out)
{
	const AVBitStreamFilter *f = av_bsf_get_by_name(codec == CS_H264 ? "h264_mp4toannexb"
	                                                                 : "hevc_mp4toannexb");
	if (!f)
		return AVERROR_BSF_NOT_FOUND;
	int err = av_bsf_alloc(f, out);
	if (err)
		return err;
	err = avcodec_parameters_copy((*out)->par_in, st->codecpar);
	if (!err) {
		(*out)->time_base_in = st->time_base;
		err = av_bsf_init(*out);
	}
	if (err)
		av_bsf_free(out);
	return err;
}

int cs_fixture_load(const char *path, unsigned packet_size, struct cs_fixture *fx)
{
	AVFormatContext *fmt = NULL;
	AVBSFContext *bsf = NULL;
	const char *what = "open";
	char msg[128];
	int err;

	memset(fx, 0, sizeof *fx);
	fx->path = path;
	err = avformat_open_input(&fmt, path, NULL, NULL);
	if (!err) {
		what = "probe";
		err = avformat_find_stream_info(fmt, NULL);
	}
	if (err < 0)
		goto fail;
	what = "find video";
	int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (si < 0) {
		err = si;
		goto fail;
	}
	const AVStream *st = fmt->streams[si];
	if (st->codecpar->codec_id == AV_CODEC_ID_H264) {
		fx->codec = CS_H264;
	} else if (st->codecpar->codec_id == AV_CODEC_ID_HEVC) {
		fx->codec = CS_H265;
	} else {
		what = "codec (H.264 or H.265 only)";
		err = AVERROR_PATCHWELCOME;
		goto fail;
	}
	fx->width = st->codecpar->width;
	fx->height = st->codecpar->height;
	set_frame_rate(fx, st);
	what = "filter";
	err = open_filter(st, fx->codec, &bsf);
	if (err)
		goto fail;
	what = "read";
	err = read_all(fx, fmt, si, bsf, packet_size - CS_RTP_HEADER);
	if (err)
		goto fail;
	what = "key frame";
	if (fx->naus == 0) {
		err = AVERROR_INVALIDDATA;
		goto fail;
	}
	what = "parameter sets";
	err = build_fmtp(fx);
	if (!err)
		err = build_key_table(fx);
	if (err)
		goto fail;
	av_bsf_free(&bsf);
	avformat_close_input(&fmt);
	nvr_log("info", "camsim", "event=fixture_loaded path=%s codec=%s width=%d height=%d "
	        "fps=%.3f frames=%" PRIu32 " packets=%" PRIu32 " bytes=%" PRIu64 " kbps=%.0f",
	        path, fx->codec == CS_H264 ? "h264" : "h265", fx->width, fx->height,
	        (double)fx->fps_num / fx->fps_den, fx->naus, fx->npkts, fx->bytes_per_loop,
	        (double)fx->bytes_per_loop * 8 / 1000 * fx->fps_num / fx->fps_den / fx->naus);
	return 0;
fail:
	av_strerror(err, msg, sizeof msg);
	nvr_log("error", "camsim", "event=fixture_error path=%s step=\"%s\" error=\"%s\"",
	        path, what, msg);
	av_bsf_free(&bsf);
	avformat_close_input(&fmt);
	cs_fixture_free(fx);
	return err < 0 ? err : -EINVAL;
}

void cs_fixture_free(struct cs_fixture *fx)
{
	free(fx->payload);
	free(fx->pkts);
	free(fx->aus);
	free(fx->to_key);
	free(fx->fmtp);
	for (int i = 0; i < 3; i++)
		free(fx->ps[i]);
	const char *path = fx->path;
	memset(fx, 0, sizeof *fx);
	fx->path = path;
}
