/*
 * volume_plan.h - how a volume's size becomes segments, shared by nvr-format
 * and nvrd so that both lay out a volume the same way.
 *
 * A volume is a ring of equal segment files (storage/storage.h). Sizes on
 * the command line are bytes with an optional K, M, G or T suffix (powers of
 * 1024, like nvr-bench). The engine rounds a segment size up to a whole MiB,
 * so the plan does the same before dividing, and a ring needs at least
 * VP_MIN_SEGMENTS segments (the engine's own minimum: one being written,
 * two prepared next, and at least one sealed that can be reclaimed). The
 * plan checks it first so that the tools can say why in plain words.
 *
 * Header-only (static inline) because the two programs are built from
 * separate source directories and share nothing else.
 */
#ifndef NVR_VOLUME_PLAN_H
#define NVR_VOLUME_PLAN_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define VP_MIB (1024ull * 1024)
#define VP_DEFAULT_SEGMENT_SIZE (256 * VP_MIB)
#define VP_MIN_SEGMENTS 4u

/* Parses "123", "64K", "256M", "2G" or "1T" into bytes. Returns 0, or
 * -EINVAL for anything else (empty, junk, zero, overflow). */
static inline int vp_parse_size(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || v == 0)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* The segment size the engine will actually use for `bytes`. */
static inline uint64_t vp_round_segment(uint64_t bytes)
{
	return (bytes + VP_MIB - 1) / VP_MIB * VP_MIB;
}

/* Segments of `segment_size` (already rounded) that fit in `volume_size`;
 * 0 if the count does not fit in 32 bits. */
static inline uint32_t vp_segments_in(uint64_t volume_size, uint64_t segment_size)
{
	uint64_t n = volume_size / segment_size;
	return n > UINT32_MAX ? 0 : (uint32_t)n;
}

/* Segment size for a volume of `volume_size` bytes when the caller does not
 * choose one: the default, or less (whole MiB, at least 1 MiB) so that the
 * volume still holds VP_MIN_SEGMENTS segments. */
static inline uint64_t vp_auto_segment_size(uint64_t volume_size)
{
	uint64_t per = volume_size / VP_MIN_SEGMENTS / VP_MIB * VP_MIB;
	if (per < VP_MIB)
		per = VP_MIB;
	return per < VP_DEFAULT_SEGMENT_SIZE ? per : VP_DEFAULT_SEGMENT_SIZE;
}

/* "8-4-4-4-12" lower-case hex form of a volume UUID. */
static inline void vp_uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
	         u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* Human form of a byte count: "256 MiB", "1.5 GiB", "4096 B". */
static inline void vp_human(uint64_t bytes, char *out, size_t n)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(out, n, "%llu %s", (unsigned long long)v, unit[u]);
	else
		snprintf(out, n, "%.1f %s", v, unit[u]);
}

#endif
