/*
 * bench_synth.c - synthetic cameras for the storage benchmark.
 *
 * A camera here is a formula, not a stream: frame k of camera c has a time,
 * a size and bytes that depend only on (c, k). That lets the producers make
 * frames without copying (the bytes are a window into one shared pool of
 * random data) and lets the seek test check any frame it reads back
 * without keeping a copy of what was written.
 *
 * The shape mimics an H.264 camera: 25 fps, a key frame every 2 s that is
 * about 8 times the size of a P frame, each size varied by up to +/-20%,
 * and the average over a GOP equal to the requested bitrate.
 *
 * Cameras start at different moments (spread over 4 s, the engine's
 * default chunk length) unless asked to be aligned: if every camera had
 * its key frames in the same 40 ms, every camera would close its chunk in
 * the same tick, a burst a real site never produces.
 */
#include "bench.h"
#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MIN_BYTES (4u << 20)
#define POOL_SEED 0x6e76722d62656e63ULL   /* "nvr-benc" */

/* Largest frame synth_frame can return: the key frame plus 20%. */
static uint32_t max_frame_bytes(const struct synth *s)
{
	return s->key_bytes + s->key_bytes / 5 + 1;
}

static void fill_pool(uint8_t *pool, size_t size)
{
	uint64_t state = POOL_SEED;

	for (size_t i = 0; i < size; i += 8) {
		uint64_t r = bench_mix64(state++);
		size_t n = size - i < 8 ? size - i : 8;

		memcpy(pool + i, &r, n);
	}
}

int synth_init(struct synth *s, uint32_t bitrate_kbps, int64_t base_us, bool aligned)
{
	/* Bytes in one GOP (2 s) = kbit/s * 1000 / 8 * 2. */
	uint64_t gop_bytes = (uint64_t)bitrate_kbps * 250;
	uint64_t units = SYNTH_KEY_RATIO + (SYNTH_GOP - 1);
	uint64_t p = gop_bytes / units;

	memset(s, 0, sizeof(*s));
	if (p < 16)
		p = 16;
	if (p * SYNTH_KEY_RATIO > UINT32_MAX / 4) {
		fprintf(stderr, "synth: bitrate %u kbit/s is too high\n", bitrate_kbps);
		return -EINVAL;
	}
	s->base_us = base_us;
	s->bitrate_kbps = bitrate_kbps;
	s->spread_ticks = aligned ? 1 : SYNTH_SPREAD_TICKS;
	s->p_bytes = (uint32_t)p;
	s->key_bytes = (uint32_t)(p * SYNTH_KEY_RATIO);
	s->pool_size = (size_t)max_frame_bytes(s) * 2;
	if (s->pool_size < POOL_MIN_BYTES)
		s->pool_size = POOL_MIN_BYTES;
	s->pool = malloc(s->pool_size);
	if (!s->pool) {
		fprintf(stderr, "synth: cannot allocate a %zu-byte pool\n", s->pool_size);
		return -ENOMEM;
	}
	fill_pool(s->pool, s->pool_size);
	return 0;
}

void synth_free(struct synth *s)
{
	free(s->pool);
	s->pool = NULL;
}

uint32_t synth_start_tick(const struct synth *s, uint32_t camera)
{
	return (uint32_t)(bench_mix64(0x57a27ULL ^ camera) % s->spread_ticks);
}

int64_t synth_phase_us(const struct synth *s, uint32_t camera)
{
	return (int64_t)synth_start_tick(s, camera) * SYNTH_FRAME_US +
	       (int64_t)(camera % 40) * 1000;
}

void synth_frame(const struct synth *s, uint32_t camera, uint64_t k,
                 struct stg_frame *out)
{
	uint64_t h = bench_mix64(((uint64_t)camera << 40) ^ k);
	bool key = (k % SYNTH_GOP) == 0;
	uint64_t nominal = key ? s->key_bytes : s->p_bytes;
	/* factor in [0.8, 1.2] from 16 bits of the hash. */
	uint64_t size = nominal * (80 + (h & 0xffff) * 40 / 0xffff) / 100;
	uint64_t room;

	if (size == 0)
		size = 1;
	room = s->pool_size - size + 1;
	out->time_us = s->base_us + synth_phase_us(s, camera) + (int64_t)k * SYNTH_FRAME_US;
	out->data = s->pool + (h >> 16) % room;
	out->size = (uint32_t)size;
	out->key = key;
	out->codec = STG_CODEC_H264;
}

int synth_frame_number(const struct synth *s, uint32_t camera, int64_t time_us,
                       uint64_t *k)
{
	int64_t rel = time_us - s->base_us - synth_phase_us(s, camera);

	if (rel < 0 || rel % SYNTH_FRAME_US != 0)
		return -EINVAL;
	*k = (uint64_t)(rel / SYNTH_FRAME_US);
	return 0;
}
