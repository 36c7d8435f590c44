/*
 * test_depack.c - the H.264/H.265 depacketizer (nvr/depack.c).
 *
 * Each test makes NAL units of its own, packetizes them here as RFC 6184 /
 * RFC 7798 senders do (single NAL unit, STAP-A / AP, FU-A / FU), wraps them
 * in real RTP headers, sends them through rtp_parse() and depack_push(),
 * and checks every delivered frame byte for byte against the Annex B
 * concatenation of what went in, plus the key flags and the counters.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "depack.h"
#include "rtp.h"

/* ---- NAL units --------------------------------------------------------- */

struct nal {
	uint8_t b[16384];
	size_t len;
};

/* A NAL unit with the given header and `len` bytes in all, filled with
 * bytes that are never zero (so no start code can appear inside). */
static void make_nal(struct nal *n, enum stg_codec c, unsigned type,
                     size_t len, unsigned seed)
{
	cr_assert(len <= sizeof n->b);
	size_t h = 0;
	if (c == STG_CODEC_H264) {
		n->b[h++] = (uint8_t)(0x60 | type);
	} else {
		n->b[h++] = (uint8_t)(type << 1);
		n->b[h++] = 1;   /* layer 0, TID 1 */
	}
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = h; i < len; i++) {
		x = x * 1103515245u + 12345u;
		n->b[i] = (uint8_t)(1 + (x >> 16) % 255);
	}
	n->len = len;
}

/* Annex B of a list of NAL units. */
static size_t annexb(uint8_t *out, const struct nal *const *nals, int count)
{
	size_t o = 0;
	for (int i = 0; i < count; i++) {
		memcpy(out + o, "\0\0\0\1", 4);
		memcpy(out + o + 4, nals[i]->b, nals[i]->len);
		o += 4 + nals[i]->len;
	}
	return o;
}

/* ---- packetizer -------------------------------------------------------- */

enum pack_mode { PACK_SINGLE, PACK_AGG, PACK_FU };

struct pkt {
	uint8_t b[1600];
	size_t len;
};

struct stream {
	enum stg_codec codec;
	struct pkt *p;
	int n, cap;
	uint16_t seq;
	size_t mtu;       /* payload bytes per packet */
};

static void stream_init(struct stream *s, enum stg_codec c)
{
	memset(s, 0, sizeof *s);
	s->codec = c;
	s->seq = 65530;   /* wraps during most tests */
	s->mtu = 1200;
}

static void add_packet(struct stream *s, const uint8_t *pl, size_t len,
                       uint32_t ts, bool marker)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->p = realloc(s->p, (size_t)s->cap * sizeof *s->p);
		cr_assert(s->p);
	}
	struct pkt *p = &s->p[s->n++];
	cr_assert(len + 12 <= sizeof p->b);
	p->b[0] = 0x80;
	p->b[1] = (uint8_t)((marker ? 0x80 : 0) | 96);
	p->b[2] = (uint8_t)(s->seq >> 8);
	p->b[3] = (uint8_t)s->seq;
	s->seq++;
	for (int i = 0; i < 4; i++)
		p->b[4 + i] = (uint8_t)(ts >> (24 - 8 * i));
	memcpy(p->b + 8, "\x12\x34\x56\x78", 4);
	memcpy(p->b + 12, pl, len);
	p->len = 12 + len;
}

static size_t hdr_len(const struct stream *s)
{
	return s->codec == STG_CODEC_H264 ? 1 : 2;
}

/* FU-A / FU packets of one NAL unit, `frag` payload bytes each. */
static void pack_fu(struct stream *s, const struct nal *n, size_t frag,
                    uint32_t ts, bool last_nal, bool marker)
{
	size_t h = hdr_len(s), off = h;
	uint8_t pl[1600];
	while (off < n->len) {
		size_t take = n->len - off < frag ? n->len - off : frag;
		size_t o = 0;
		bool start = off == h, end = off + take == n->len;
		if (s->codec == STG_CODEC_H264) {
			pl[o++] = (uint8_t)((n->b[0] & 0xe0) | 28);
			pl[o++] = (uint8_t)((start ? 0x80 : 0) | (end ? 0x40 : 0) | (n->b[0] & 0x1f));
		} else {
			pl[o++] = (uint8_t)((n->b[0] & 0x81) | 49 << 1);
			pl[o++] = n->b[1];
			pl[o++] = (uint8_t)((start ? 0x80 : 0) | (end ? 0x40 : 0) | ((n->b[0] >> 1) & 0x3f));
		}
		memcpy(pl + o, n->b + off, take);
		add_packet(s, pl, o + take, ts, marker && last_nal && end);
		off += take;
	}
}

/* One STAP-A / AP packet of nals[0..count). */
static void pack_agg(struct stream *s, const struct nal *const *nals, int count,
                     uint32_t ts, bool marker)
{
	uint8_t pl[1600];
	size_t o = 0;
	if (s->codec == STG_CODEC_H264) {
		pl[o++] = 0x60 | 24;
	} else {
		pl[o++] = 48 << 1;
		pl[o++] = 1;
	}
	for (int i = 0; i < count; i++) {
		cr_assert(o + 2 + nals[i]->len <= sizeof pl);
		pl[o++] = (uint8_t)(nals[i]->len >> 8);
		pl[o++] = (uint8_t)nals[i]->len;
		memcpy(pl + o, nals[i]->b, nals[i]->len);
		o += nals[i]->len;
	}
	add_packet(s, pl, o, ts, marker);
}

/* Packetizes one frame the way `mode` says; NAL units larger than the MTU
 * are always fragmented. marker: set the marker bit on the last packet. */
static void pack_frame(struct stream *s, const struct nal *const *nals,
                       int count, uint32_t ts, enum pack_mode mode, bool marker)
{
	for (int i = 0; i < count; i++) {
		bool last = i == count - 1;
		if (mode == PACK_FU) {
			pack_fu(s, nals[i], 500, ts, last, marker);
		} else if (nals[i]->len > s->mtu) {
			pack_fu(s, nals[i], s->mtu, ts, last, marker);
		} else if (mode == PACK_AGG) {
			int j = i;
			size_t total = 0;
			while (j < count && nals[j]->len <= s->mtu &&
			       total + 2 + nals[j]->len <= s->mtu)
				total += 2 + nals[j++]->len;
			pack_agg(s, nals + i, j - i, ts, marker && j == count);
			i = j - 1;
		} else {
			add_packet(s, nals[i]->b, nals[i]->len, ts, marker && last);
		}
	}
}

/* ---- receiving --------------------------------------------------------- */

#define MAX_FRAMES 64

struct got {
	uint8_t *data[MAX_FRAMES];
	size_t size[MAX_FRAMES];
	uint32_t ts[MAX_FRAMES];
	bool key[MAX_FRAMES];
	int n;
};

static void on_frame(void *user, const struct depack_frame *f)
{
	struct got *g = user;
	cr_assert_lt(g->n, MAX_FRAMES);
	g->data[g->n] = malloc(f->size);
	cr_assert(g->data[g->n]);
	memcpy(g->data[g->n], f->data, f->size);
	g->size[g->n] = f->size;
	g->ts[g->n] = f->rtp_timestamp;
	g->key[g->n] = f->key;
	g->n++;
}

static void got_free(struct got *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->data[i]);
	memset(g, 0, sizeof *g);
}

/* Pushes packets [from, to) except the one at index `skip` (-1: none);
 * returns how many pushes reported -EBADMSG. */
static int push_range(struct depack *d, const struct stream *s, int from,
                      int to, int skip)
{
	int bad = 0;
	for (int i = from; i < to; i++) {
		if (i == skip)
			continue;
		struct rtp_packet p;
		cr_assert_eq(rtp_parse(s->p[i].b, s->p[i].len, &p), 0);
		int r = depack_push(d, &p);
		cr_assert(r == 0 || r == -EBADMSG, "push %d: %d", i, r);
		bad += r == -EBADMSG;
	}
	return bad;
}

static void expect_frame(const struct got *g, int i, const struct nal *const *nals,
                         int count, uint32_t ts, bool key)
{
	static uint8_t want[1 << 20];
	size_t n = annexb(want, nals, count);
	cr_assert_lt(i, g->n, "frame %d missing (got %d)", i, g->n);
	cr_assert_eq(g->size[i], n, "frame %d: size %zu, want %zu", i, g->size[i], n);
	cr_assert(!memcmp(g->data[i], want, n), "frame %d bytes differ", i);
	cr_assert_eq(g->ts[i], ts, "frame %d timestamp", i);
	cr_assert_eq(g->key[i], key, "frame %d key flag", i);
}

static void expect_stats(const struct depack *d, uint64_t frames, uint64_t lost,
                         uint64_t gaps, uint64_t bad)
{
	cr_assert_eq(d->stats.frames, frames, "frames %lu", (unsigned long)d->stats.frames);
	cr_assert_eq(d->stats.frames_lost, lost, "frames_lost %lu", (unsigned long)d->stats.frames_lost);
	cr_assert_eq(d->stats.gaps, gaps, "gaps %lu", (unsigned long)d->stats.gaps);
	cr_assert_eq(d->stats.bad_packets, bad, "bad_packets %lu", (unsigned long)d->stats.bad_packets);
}

/* ---- a small H.264 GOP ------------------------------------------------- */

struct gop264 {
	struct nal sps, pps, sei, idr1, idr2, p[6];
};

static void gop264_make(struct gop264 *g)
{
	make_nal(&g->sps, STG_CODEC_H264, 7, 24, 1);
	make_nal(&g->pps, STG_CODEC_H264, 8, 6, 2);
	make_nal(&g->sei, STG_CODEC_H264, 6, 40, 3);
	make_nal(&g->idr1, STG_CODEC_H264, 5, 5000, 4);
	make_nal(&g->idr2, STG_CODEC_H264, 5, 3000, 5);
	for (int i = 0; i < 6; i++)
		make_nal(&g->p[i], STG_CODEC_H264, 1, 1100 + 300 * (size_t)i, 10 + (unsigned)i);
}

static void check_modes_h264(enum pack_mode mode)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop264_make(&g);
	stream_init(&s, STG_CODEC_H264);

	const struct nal *f0[] = { &g.sps, &g.pps, &g.sei, &g.idr1, &g.idr2 };
	const struct nal *f1[] = { &g.p[0] };
	const struct nal *f2[] = { &g.p[1], &g.p[2] };
	const struct nal *f3[] = { &g.p[3] };
	pack_frame(&s, f0, 5, 3000, mode, true);
	pack_frame(&s, f1, 1, 6000, mode, true);
	pack_frame(&s, f2, 2, 9000, mode, true);
	pack_frame(&s, f3, 1, 12000, mode, true);

	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	cr_assert_eq(got.n, 4);
	expect_frame(&got, 0, f0, 5, 3000, true);
	expect_frame(&got, 1, f1, 1, 6000, false);
	expect_frame(&got, 2, f2, 2, 9000, false);
	expect_frame(&got, 3, f3, 1, 12000, false);
	expect_stats(&d, 4, 0, 0, 0);
	cr_assert_eq(d.stats.packets, (uint64_t)s.n);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, h264_single_nal_units_byte_exact)
{
	check_modes_h264(PACK_SINGLE);
}

Test(depack, h264_stap_a_byte_exact)
{
	check_modes_h264(PACK_AGG);
}

Test(depack, h264_fu_a_byte_exact)
{
	check_modes_h264(PACK_FU);
}

Test(depack, h264_stap_a_really_aggregates)
{
	/* the aggregation path must be the one under test: SPS, PPS and SEI go
	 * into one STAP-A packet */
	struct gop264 g;
	struct stream s;
	gop264_make(&g);
	stream_init(&s, STG_CODEC_H264);
	const struct nal *f0[] = { &g.sps, &g.pps, &g.sei, &g.idr1 };
	pack_frame(&s, f0, 4, 3000, PACK_AGG, true);
	cr_assert_eq(s.p[0].b[12] & 0x1f, 24);
	cr_assert_eq(s.p[1].b[12] & 0x1f, 28);
	free(s.p);
}

Test(depack, h264_key_frame_gets_sdp_parameter_sets)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	uint8_t sdp[256];
	gop264_make(&g);
	stream_init(&s, STG_CODEC_H264);
	const struct nal *ps[] = { &g.sps, &g.pps };
	size_t sdp_len = annexb(sdp, ps, 2);

	const struct nal *f0[] = { &g.idr1 };               /* no SPS/PPS */
	const struct nal *f1[] = { &g.p[0] };
	const struct nal *f2[] = { &g.sps, &g.pps, &g.idr2 }; /* has its own */
	const struct nal *f3[] = { &g.sei, &g.idr1 };        /* again none */
	pack_frame(&s, f0, 1, 100, PACK_AGG, true);
	pack_frame(&s, f1, 1, 200, PACK_AGG, true);
	pack_frame(&s, f2, 3, 300, PACK_AGG, true);
	pack_frame(&s, f3, 2, 400, PACK_AGG, true);

	cr_assert_eq(depack_init(&d, STG_CODEC_H264, sdp, sdp_len, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	const struct nal *w0[] = { &g.sps, &g.pps, &g.idr1 };
	const struct nal *w3[] = { &g.sps, &g.pps, &g.sei, &g.idr1 };
	expect_frame(&got, 0, w0, 3, 100, true);
	expect_frame(&got, 1, f1, 1, 200, false);   /* P frames get nothing */
	expect_frame(&got, 2, f2, 3, 300, true);    /* passed through, no duplicate */
	expect_frame(&got, 3, w3, 4, 400, true);
	expect_stats(&d, 4, 0, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, h264_in_band_parameter_sets_replace_sdp_ones)
{
	struct gop264 g;
	struct nal sps2, pps2, pps3;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	uint8_t sdp[256];
	gop264_make(&g);
	make_nal(&sps2, STG_CODEC_H264, 7, 30, 77);
	make_nal(&pps2, STG_CODEC_H264, 8, 7, 78);
	make_nal(&pps3, STG_CODEC_H264, 8, 9, 79);
	stream_init(&s, STG_CODEC_H264);
	const struct nal *ps[] = { &g.sps, &g.pps };
	size_t sdp_len = annexb(sdp, ps, 2);

	const struct nal *f0[] = { &sps2, &pps2, &g.idr1 };
	const struct nal *f1[] = { &g.idr2 };
	const struct nal *f2[] = { &pps3, &g.p[0] };   /* a PPS alone, in a P frame */
	const struct nal *f3[] = { &g.idr1 };
	pack_frame(&s, f0, 3, 10, PACK_SINGLE, true);
	pack_frame(&s, f1, 1, 20, PACK_FU, true);
	pack_frame(&s, f2, 2, 30, PACK_SINGLE, true);
	pack_frame(&s, f3, 1, 40, PACK_FU, true);

	cr_assert_eq(depack_init(&d, STG_CODEC_H264, sdp, sdp_len, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	const struct nal *w1[] = { &sps2, &pps2, &g.idr2 };
	const struct nal *w3[] = { &sps2, &pps3, &g.idr1 };
	expect_frame(&got, 0, f0, 3, 10, true);
	expect_frame(&got, 1, w1, 3, 20, true);
	expect_frame(&got, 2, f2, 2, 30, false);
	expect_frame(&got, 3, w3, 3, 40, true);
	expect_stats(&d, 4, 0, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, h264_parameter_sets_in_fu_are_remembered)
{
	/* a large SPS split into FU-A fragments still becomes the stored one */
	struct gop264 g;
	struct nal big_sps;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop264_make(&g);
	make_nal(&big_sps, STG_CODEC_H264, 7, 1300, 55);
	stream_init(&s, STG_CODEC_H264);
	const struct nal *f0[] = { &big_sps, &g.pps, &g.idr1 };
	const struct nal *f1[] = { &g.idr2 };
	pack_frame(&s, f0, 3, 1, PACK_FU, true);
	pack_frame(&s, f1, 1, 2, PACK_SINGLE, true);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	const struct nal *w1[] = { &big_sps, &g.pps, &g.idr2 };
	expect_frame(&got, 0, f0, 3, 1, true);
	expect_frame(&got, 1, w1, 3, 2, true);
	expect_stats(&d, 2, 0, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, timestamp_change_ends_frames_without_marker)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop264_make(&g);
	stream_init(&s, STG_CODEC_H264);
	const struct nal *f0[] = { &g.sps, &g.pps, &g.idr1 };
	const struct nal *f1[] = { &g.p[0], &g.p[1] };
	const struct nal *f2[] = { &g.p[2] };
	pack_frame(&s, f0, 3, 1000, PACK_FU, false);
	pack_frame(&s, f1, 2, 4000, PACK_SINGLE, false);
	pack_frame(&s, f2, 1, 7000, PACK_AGG, false);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	cr_assert_eq(got.n, 2, "the last frame waits for its end");
	expect_frame(&got, 0, f0, 3, 1000, true);
	expect_frame(&got, 1, f1, 2, 4000, false);
	depack_flush(&d);
	expect_frame(&got, 2, f2, 1, 7000, false);
	expect_stats(&d, 3, 0, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, parameter_sets_with_their_own_timestamp_lead_the_next_frame)
{
	/* some cameras send SPS/PPS with a marker and a timestamp of their own:
	 * they are not a frame, they open the key frame that follows */
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop264_make(&g);
	stream_init(&s, STG_CODEC_H264);
	const struct nal *f0[] = { &g.sps, &g.pps };
	const struct nal *f1[] = { &g.idr1 };
	const struct nal *f2[] = { &g.p[0] };
	pack_frame(&s, f0, 2, 500, PACK_SINGLE, true);
	pack_frame(&s, f1, 1, 600, PACK_FU, true);
	pack_frame(&s, f2, 1, 700, PACK_FU, true);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	const struct nal *w0[] = { &g.sps, &g.pps, &g.idr1 };
	expect_frame(&got, 0, w0, 3, 600, true);
	expect_frame(&got, 1, f2, 1, 700, false);
	expect_stats(&d, 2, 0, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

/* ---- loss -------------------------------------------------------------- */

/* key(3000) P P P key P, every NAL unit fragmented; returns the index of
 * the first packet of each frame in first[]. */
static void lossy_stream(struct stream *s, struct gop264 *g, int first[7])
{
	gop264_make(g);
	stream_init(s, STG_CODEC_H264);
	const struct nal *k0[] = { &g->sps, &g->pps, &g->idr1 };
	const struct nal *k4[] = { &g->sps, &g->pps, &g->idr2 };
	uint32_t ts = 3000;
	for (int f = 0; f < 6; f++, ts += 3000) {
		first[f] = s->n;
		if (f == 0)
			pack_frame(s, k0, 3, ts, PACK_FU, true);
		else if (f == 4)
			pack_frame(s, k4, 3, ts, PACK_FU, true);
		else
			pack_frame(s, (const struct nal *[]){ &g->p[f] }, 1, ts, PACK_FU, true);
	}
	first[6] = s->n;
}

Test(depack, gap_in_a_frame_discards_until_the_next_key_frame)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	int first[7];
	lossy_stream(&s, &g, first);
	cr_assert_gt(first[2] - first[1], 2, "frame 1 needs 3 packets or more");

	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	/* lose the second packet of frame 1 */
	cr_assert_eq(push_range(&d, &s, 0, s.n, first[1] + 1), 0);
	cr_assert_eq(got.n, 3);
	expect_frame(&got, 0, (const struct nal *[]){ &g.sps, &g.pps, &g.idr1 }, 3, 3000, true);
	expect_frame(&got, 1, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 15000, true);
	expect_frame(&got, 2, (const struct nal *[]){ &g.p[5] }, 1, 18000, false);
	/* frames 1, 2 and 3 discarded, each counted once */
	expect_stats(&d, 3, 3, 1, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, lost_marker_packet_loses_that_frame_only_until_key)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	int first[7];
	lossy_stream(&s, &g, first);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	/* lose the last packet (with the marker) of frame 3, just before the
	 * key frame: frame 3 is lost, the key frame is not */
	cr_assert_eq(push_range(&d, &s, 0, s.n, first[4] - 1), 0);
	cr_assert_eq(got.n, 5);
	expect_frame(&got, 0, (const struct nal *[]){ &g.sps, &g.pps, &g.idr1 }, 3, 3000, true);
	expect_frame(&got, 1, (const struct nal *[]){ &g.p[1] }, 1, 6000, false);
	expect_frame(&got, 2, (const struct nal *[]){ &g.p[2] }, 1, 9000, false);
	expect_frame(&got, 3, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 15000, true);
	expect_frame(&got, 4, (const struct nal *[]){ &g.p[5] }, 1, 18000, false);
	expect_stats(&d, 5, 1, 1, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, gap_of_whole_frames_counts_only_what_was_discarded)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	int first[7];
	lossy_stream(&s, &g, first);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	/* frames 1 and 2 never arrive; frame 3 arrives after the gap and is
	 * discarded (no key frame yet); frame 4 is a key frame */
	cr_assert_eq(push_range(&d, &s, 0, first[1], -1), 0);
	cr_assert_eq(push_range(&d, &s, first[3], s.n, -1), 0);
	cr_assert_eq(got.n, 3);
	expect_frame(&got, 0, (const struct nal *[]){ &g.sps, &g.pps, &g.idr1 }, 3, 3000, true);
	expect_frame(&got, 1, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 15000, true);
	expect_frame(&got, 2, (const struct nal *[]){ &g.p[5] }, 1, 18000, false);
	expect_stats(&d, 3, 1, 1, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, gap_starting_mid_fragment_is_loss_not_corruption)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	int first[7];
	lossy_stream(&s, &g, first);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	/* the first packet of frame 2 (FU start) is lost after a complete
	 * frame 1: frame 2 starts with a middle fragment */
	cr_assert_eq(push_range(&d, &s, 0, s.n, first[2]), 0);
	cr_assert_eq(got.n, 4);
	expect_frame(&got, 1, (const struct nal *[]){ &g.p[1] }, 1, 6000, false);
	expect_frame(&got, 2, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 15000, true);
	expect_stats(&d, 4, 2, 1, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

/* Replaces packet `i`'s payload with `pl`. */
static void set_payload(struct stream *s, int i, const uint8_t *pl, size_t len)
{
	memcpy(s->p[i].b + 12, pl, len);
	s->p[i].len = 12 + len;
}

/* Frame 2's packet `which` (0 first) gets a bad payload. */
static void check_bad_at(const uint8_t *pl, size_t len, int which)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	int first[7];
	lossy_stream(&s, &g, first);
	set_payload(&s, first[2] + which, pl, len);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 1, "one push reports -EBADMSG");
	cr_assert_eq(got.n, 4);
	expect_frame(&got, 0, (const struct nal *[]){ &g.sps, &g.pps, &g.idr1 }, 3, 3000, true);
	expect_frame(&got, 1, (const struct nal *[]){ &g.p[1] }, 1, 6000, false);
	expect_frame(&got, 2, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 15000, true);
	expect_frame(&got, 3, (const struct nal *[]){ &g.p[5] }, 1, 18000, false);
	/* frames 2 and 3 lost, no gap, one bad packet */
	expect_stats(&d, 4, 2, 0, 1);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

static void check_bad_payload(const uint8_t *pl, size_t len)
{
	check_bad_at(pl, len, 0);
	check_bad_at(pl, len, 1);
}

Test(depack, h264_refuses_stap_b_mtap_fu_b)
{
	const uint8_t stap_b[] = { 0x60 | 25, 0x00, 0x01, 0x00, 0x02, 0x41, 0x55 };
	const uint8_t mtap16[] = { 0x60 | 26, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x41 };
	const uint8_t mtap24[] = { 0x60 | 27, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x41 };
	const uint8_t fu_b[] = { 0x60 | 29, 0x81, 0x00, 0x01, 0x55 };
	check_bad_payload(stap_b, sizeof stap_b);
	check_bad_payload(mtap16, sizeof mtap16);
	check_bad_payload(mtap24, sizeof mtap24);
	check_bad_payload(fu_b, sizeof fu_b);
}

Test(depack, h264_malformed_payloads)
{
	const uint8_t stap_past_end[] = { 0x78, 0x00, 0x09, 0x41, 0x55 };
	const uint8_t stap_zero_size[] = { 0x78, 0x00, 0x00, 0x00, 0x01, 0x41 };
	const uint8_t stap_trailing[] = { 0x78, 0x00, 0x01, 0x41, 0x00 };
	const uint8_t stap_nested[] = { 0x78, 0x00, 0x02, 0x78, 0x00 };
	const uint8_t fu_short[] = { 0x7c };
	const uint8_t fu_bad_type[] = { 0x7c, 0x80 | 28, 0x55 };
	const uint8_t type0[] = { 0x00, 0x55 };
	const uint8_t empty[] = { 0 };
	check_bad_payload(stap_past_end, sizeof stap_past_end);
	check_bad_payload(stap_zero_size, sizeof stap_zero_size);
	check_bad_payload(stap_trailing, sizeof stap_trailing);
	check_bad_payload(stap_nested, sizeof stap_nested);
	check_bad_payload(fu_short, sizeof fu_short);
	check_bad_payload(fu_bad_type, sizeof fu_bad_type);
	check_bad_payload(type0, sizeof type0);
	check_bad_payload(empty, 0);
}

Test(depack, fragment_without_start_and_no_gap_is_corruption)
{
	/* a middle FU-A fragment where a single NAL unit was expected */
	const uint8_t middle[] = { 0x7c, 0x01, 0x55, 0x66 };
	check_bad_at(middle, sizeof middle, 0);
}

Test(depack, unfinished_fragment_at_frame_end_is_corruption)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	int first[7];
	lossy_stream(&s, &g, first);
	/* frame 2's only NAL: clear the end bit of its last fragment; the next
	 * timestamp then ends a frame whose NAL unit never finished */
	int last = first[3] - 1;
	s.p[last].b[13] &= (uint8_t)~0x40;
	s.p[last].b[1] &= 0x7f;   /* and no marker */
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	cr_assert_eq(got.n, 4);
	expect_frame(&got, 1, (const struct nal *[]){ &g.p[1] }, 1, 6000, false);
	expect_frame(&got, 2, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 15000, true);
	expect_stats(&d, 4, 2, 0, 1);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, oversized_frame_is_discarded_and_counted)
{
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	struct nal *chunk = malloc(sizeof *chunk);
	cr_assert(chunk);
	gop264_make(&g);
	stream_init(&s, STG_CODEC_H264);
	make_nal(chunk, STG_CODEC_H264, 1, 16000, 9);
	pack_frame(&s, (const struct nal *[]){ &g.sps, &g.pps, &g.idr1 }, 3, 10, PACK_AGG, true);
	/* a P frame of 530 NAL units of 16000 bytes: more than 8 MiB */
	int n_big = (int)(DEPACK_MAX_FRAME / 16000) + 6;
	for (int i = 0; i < n_big; i++)
		pack_frame(&s, (const struct nal *[]){ chunk }, 1, 20, PACK_SINGLE, i == n_big - 1);
	pack_frame(&s, (const struct nal *[]){ &g.p[0] }, 1, 30, PACK_SINGLE, true);
	pack_frame(&s, (const struct nal *[]){ &g.idr2 }, 1, 40, PACK_AGG, true);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	cr_assert_eq(got.n, 2);
	expect_frame(&got, 0, (const struct nal *[]){ &g.sps, &g.pps, &g.idr1 }, 3, 10, true);
	/* the key frame after it still gets the in-band SPS/PPS of frame 0 */
	expect_frame(&got, 1, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 40, true);
	expect_stats(&d, 2, 2, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(chunk);
	free(s.p);
}

Test(depack, init_refuses_unknown_codec)
{
	struct depack d;
	struct got got = { 0 };
	cr_assert_eq(depack_init(&d, STG_CODEC_UNKNOWN, NULL, 0, on_frame, &got), -EINVAL);
	cr_assert_eq(depack_init(&d, (enum stg_codec)7, NULL, 0, on_frame, &got), -EINVAL);
	uint8_t huge[5000];
	memset(huge, 0x55, sizeof huge);
	memcpy(huge, "\0\0\0\1\x67", 5);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, huge, sizeof huge, on_frame, &got), -EINVAL);
}

/* ---- H.265 ------------------------------------------------------------- */

struct gop265 {
	struct nal vps, sps, pps, sei, idr, cra, trail[4];
};

static void gop265_make(struct gop265 *g)
{
	make_nal(&g->vps, STG_CODEC_H265, 32, 24, 101);
	make_nal(&g->sps, STG_CODEC_H265, 33, 60, 102);
	make_nal(&g->pps, STG_CODEC_H265, 34, 8, 103);
	make_nal(&g->sei, STG_CODEC_H265, 39, 30, 104);
	make_nal(&g->idr, STG_CODEC_H265, 19, 6000, 105);   /* IDR_W_RADL */
	make_nal(&g->cra, STG_CODEC_H265, 21, 2500, 106);   /* CRA */
	for (int i = 0; i < 4; i++)
		make_nal(&g->trail[i], STG_CODEC_H265, 1, 200 + 700 * (size_t)i, 110 + (unsigned)i);
}

static void check_modes_h265(enum pack_mode mode)
{
	struct gop265 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop265_make(&g);
	stream_init(&s, STG_CODEC_H265);
	const struct nal *f0[] = { &g.vps, &g.sps, &g.pps, &g.sei, &g.idr };
	const struct nal *f1[] = { &g.trail[0], &g.trail[1] };
	const struct nal *f2[] = { &g.trail[2] };
	const struct nal *f3[] = { &g.vps, &g.sps, &g.pps, &g.cra };
	pack_frame(&s, f0, 5, 90000, mode, true);
	pack_frame(&s, f1, 2, 93600, mode, true);
	pack_frame(&s, f2, 1, 97200, mode, true);
	pack_frame(&s, f3, 4, 100800, mode, true);
	cr_assert_eq(depack_init(&d, STG_CODEC_H265, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	cr_assert_eq(got.n, 4);
	expect_frame(&got, 0, f0, 5, 90000, true);
	expect_frame(&got, 1, f1, 2, 93600, false);
	expect_frame(&got, 2, f2, 1, 97200, false);
	expect_frame(&got, 3, f3, 4, 100800, true);
	expect_stats(&d, 4, 0, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, h265_single_nal_units_byte_exact)
{
	check_modes_h265(PACK_SINGLE);
}

Test(depack, h265_aggregation_packets_byte_exact)
{
	check_modes_h265(PACK_AGG);
}

Test(depack, h265_fragmentation_units_byte_exact)
{
	check_modes_h265(PACK_FU);
}

Test(depack, h265_key_frame_gets_vps_sps_pps_in_order)
{
	struct gop265 g;
	struct nal pps2;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	uint8_t sdp[512];
	gop265_make(&g);
	make_nal(&pps2, STG_CODEC_H265, 34, 11, 120);
	stream_init(&s, STG_CODEC_H265);
	/* the SDP's sets in a different order: stored as VPS, SPS, PPS */
	const struct nal *ps[] = { &g.pps, &g.sps, &g.vps };
	size_t sdp_len = annexb(sdp, ps, 3);
	const struct nal *f0[] = { &g.sei, &g.idr };
	const struct nal *f1[] = { &g.trail[0] };
	const struct nal *f2[] = { &pps2, &g.cra };   /* only a new PPS */
	const struct nal *f3[] = { &g.idr };
	pack_frame(&s, f0, 2, 1, PACK_AGG, true);
	pack_frame(&s, f1, 1, 2, PACK_AGG, true);
	pack_frame(&s, f2, 2, 3, PACK_AGG, true);
	pack_frame(&s, f3, 1, 4, PACK_FU, true);
	cr_assert_eq(depack_init(&d, STG_CODEC_H265, sdp, sdp_len, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 0);
	expect_frame(&got, 0, (const struct nal *[]){ &g.vps, &g.sps, &g.pps, &g.sei, &g.idr }, 5, 1, true);
	expect_frame(&got, 1, f1, 1, 2, false);
	/* the missing kinds only, in front */
	expect_frame(&got, 2, (const struct nal *[]){ &g.vps, &g.sps, &pps2, &g.cra }, 4, 3, true);
	expect_frame(&got, 3, (const struct nal *[]){ &g.vps, &g.sps, &pps2, &g.idr }, 4, 4, true);
	expect_stats(&d, 4, 0, 0, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

static void check_bad_h265(const uint8_t *pl, size_t len)
{
	struct gop265 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop265_make(&g);
	stream_init(&s, STG_CODEC_H265);
	const struct nal *k[] = { &g.vps, &g.sps, &g.pps, &g.idr };
	pack_frame(&s, k, 4, 10, PACK_AGG, true);
	pack_frame(&s, (const struct nal *[]){ &g.trail[0] }, 1, 20, PACK_SINGLE, true);
	int bad = s.n;
	pack_frame(&s, (const struct nal *[]){ &g.trail[1] }, 1, 30, PACK_SINGLE, true);
	pack_frame(&s, (const struct nal *[]){ &g.trail[2] }, 1, 40, PACK_SINGLE, true);
	pack_frame(&s, (const struct nal *[]){ &g.cra }, 1, 50, PACK_FU, true);
	set_payload(&s, bad, pl, len);
	cr_assert_eq(depack_init(&d, STG_CODEC_H265, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, -1), 1);
	cr_assert_eq(got.n, 3);
	expect_frame(&got, 0, k, 4, 10, true);
	expect_frame(&got, 1, (const struct nal *[]){ &g.trail[0] }, 1, 20, false);
	expect_frame(&got, 2, (const struct nal *[]){ &g.vps, &g.sps, &g.pps, &g.cra }, 4, 50, true);
	expect_stats(&d, 3, 2, 0, 1);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, h265_malformed_payloads)
{
	const uint8_t paci[] = { 50 << 1, 1, 0x00, 0x00, 0x02, 0x01 };
	const uint8_t unassigned[] = { 55 << 1, 1, 0x55 };
	const uint8_t fu_of_ap[] = { 49 << 1, 1, 0x80 | 48, 0x55 };
	const uint8_t fu_short[] = { 49 << 1, 1 };
	const uint8_t ap_past_end[] = { 48 << 1, 1, 0x00, 0x09, 0x02, 0x01 };
	const uint8_t ap_one_byte_nal[] = { 48 << 1, 1, 0x00, 0x01, 0x02 };
	const uint8_t one_byte[] = { 0x02 };
	check_bad_h265(paci, sizeof paci);
	check_bad_h265(unassigned, sizeof unassigned);
	check_bad_h265(fu_of_ap, sizeof fu_of_ap);
	check_bad_h265(fu_short, sizeof fu_short);
	check_bad_h265(ap_past_end, sizeof ap_past_end);
	check_bad_h265(ap_one_byte_nal, sizeof ap_one_byte_nal);
	check_bad_h265(one_byte, sizeof one_byte);
}

Test(depack, h265_gap_until_irap)
{
	struct gop265 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop265_make(&g);
	stream_init(&s, STG_CODEC_H265);
	const struct nal *k[] = { &g.vps, &g.sps, &g.pps, &g.idr };
	pack_frame(&s, k, 4, 10, PACK_FU, true);
	int lose = s.n + 1;
	pack_frame(&s, (const struct nal *[]){ &g.trail[3] }, 1, 20, PACK_FU, true);
	pack_frame(&s, (const struct nal *[]){ &g.trail[1] }, 1, 30, PACK_FU, true);
	pack_frame(&s, (const struct nal *[]){ &g.cra }, 1, 40, PACK_FU, true);
	pack_frame(&s, (const struct nal *[]){ &g.trail[2] }, 1, 50, PACK_FU, true);
	cr_assert_eq(depack_init(&d, STG_CODEC_H265, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, lose), 0);
	cr_assert_eq(got.n, 3);
	expect_frame(&got, 0, k, 4, 10, true);
	expect_frame(&got, 1, (const struct nal *[]){ &g.vps, &g.sps, &g.pps, &g.cra }, 4, 40, true);
	expect_frame(&got, 2, (const struct nal *[]){ &g.trail[2] }, 1, 50, false);
	expect_stats(&d, 3, 2, 1, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}

Test(depack, lost_frame_split_by_markers_counts_once)
{
	/* a camera that sets the marker on every slice: after a gap, the two
	 * halves of one P frame (one timestamp) are one lost frame */
	struct gop264 g;
	struct stream s;
	struct depack d;
	struct got got = { 0 };
	gop264_make(&g);
	stream_init(&s, STG_CODEC_H264);
	const struct nal *k[] = { &g.sps, &g.pps, &g.idr1 };
	pack_frame(&s, k, 3, 100, PACK_AGG, true);
	int lose = s.n;
	pack_frame(&s, (const struct nal *[]){ &g.p[0] }, 1, 200, PACK_SINGLE, true);
	pack_frame(&s, (const struct nal *[]){ &g.p[1] }, 1, 300, PACK_SINGLE, true);
	pack_frame(&s, (const struct nal *[]){ &g.p[2] }, 1, 300, PACK_SINGLE, true);
	pack_frame(&s, (const struct nal *[]){ &g.idr2 }, 1, 400, PACK_FU, true);
	cr_assert_eq(depack_init(&d, STG_CODEC_H264, NULL, 0, on_frame, &got), 0);
	cr_assert_eq(push_range(&d, &s, 0, s.n, lose), 0);
	cr_assert_eq(got.n, 2);
	expect_frame(&got, 0, k, 3, 100, true);
	expect_frame(&got, 1, (const struct nal *[]){ &g.sps, &g.pps, &g.idr2 }, 3, 400, true);
	expect_stats(&d, 2, 1, 1, 0);
	depack_free(&d);
	got_free(&got);
	free(s.p);
}
