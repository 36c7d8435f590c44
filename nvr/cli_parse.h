/*
 * cli_parse.h - parsing of plain numbers on command lines, shared by nvrd
 * and the tools so that every program accepts and refuses the same things:
 * decimal digits only (no sign, no spaces, no suffix), within [min, max].
 * Sizes with K/M/G/T suffixes are in volume_plan.h.
 */
#ifndef NVR_CLI_PARSE_H
#define NVR_CLI_PARSE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* Returns 0 and *out, or -EINVAL. */
static inline int cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || errno || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* The same for a 32-bit value. */
static inline int cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;
	int err = cli_parse_uint(s, min, max, &v);
	if (!err)
		*out = (uint32_t)v;
	return err;
}

#endif
