/*
 * camsim_fault.c - the --fault option: KIND:ARG@CAMERAS, several allowed.
 *
 *   drop:T      close every session of the camera T seconds after its PLAY
 *   stall:T     send nothing for T seconds, once, 5 s after PLAY
 *   corrupt:P   flip one byte in a fraction P of the RTP payloads
 *   reorder:P   swap a fraction P of adjacent packet pairs
 *   refuse      answer DESCRIBE with 503
 *
 * CAMERAS is "k", "k-m" or a comma list of those (1-based). A later fault
 * of the same kind on the same camera replaces the earlier one.
 *
 * The per-packet decisions (corrupt, reorder) come from a hash of the
 * session's SSRC and the packet's sequence number rather than from a
 * random stream, so an access unit rebuilt after a partial send is rebuilt
 * byte for byte the same.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camsim.h"

enum fault_kind { F_DROP, F_STALL, F_CORRUPT, F_REORDER, F_REFUSE };

static const struct {
	const char *name;
	enum fault_kind kind;
	bool needs_arg;
	double max;                 /* largest allowed argument */
} kinds[] = {
	{ "drop", F_DROP, true, 1e6 },
	{ "stall", F_STALL, true, 1e6 },
	{ "corrupt", F_CORRUPT, true, 1.0 },
	{ "reorder", F_REORDER, true, 1.0 },
	{ "refuse", F_REFUSE, false, 0 },
};

static void apply(struct cs_fault *f, enum fault_kind kind, double arg)
{
	switch (kind) {
	case F_DROP: f->drop_s = arg; break;
	case F_STALL: f->stall_s = arg; break;
	case F_CORRUPT: f->corrupt_p = arg; break;
	case F_REORDER: f->reorder_p = arg; break;
	case F_REFUSE: f->refuse = true; break;
	}
	f->any = true;
}

static int parse_camera(const char *s, char **end, uint32_t cameras, uint32_t *out)
{
	if (*s < '0' || *s > '9')
		return -EINVAL;
	unsigned long v = strtoul(s, end, 10);
	if (v < 1 || v > cameras)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Applies the fault to each camera of a list such as "1,3-5". */
static int apply_cameras(const char *list, struct cs_fault *faults, uint32_t cameras,
                         enum fault_kind kind, double arg)
{
	const char *p = list;
	for (;;) {
		char *end;
		uint32_t a, b;
		if (parse_camera(p, &end, cameras, &a))
			return -EINVAL;
		b = a;
		if (*end == '-' && parse_camera(end + 1, &end, cameras, &b))
			return -EINVAL;
		if (b < a)
			return -EINVAL;
		for (uint32_t k = a; k <= b; k++)
			apply(&faults[k - 1], kind, arg);
		if (*end == '\0')
			return 0;
		if (*end != ',')
			return -EINVAL;
		p = end + 1;
	}
}

int cs_fault_parse(const char *spec, struct cs_fault *faults, uint32_t cameras)
{
	const char *at = strchr(spec, '@');
	if (!at || !at[1])
		goto bad;
	size_t i, n = sizeof kinds / sizeof kinds[0];
	for (i = 0; i < n; i++) {
		size_t len = strlen(kinds[i].name);
		if (!strncmp(spec, kinds[i].name, len) &&
		    (spec[len] == ':' || spec[len] == '@'))
			break;
	}
	if (i == n)
		goto bad;
	const char *arg = spec + strlen(kinds[i].name);
	double v = 0;
	if (kinds[i].needs_arg) {
		char *end;
		if (*arg != ':' || arg[1] < '0' || arg[1] > '9')
			goto bad;
		v = strtod(arg + 1, &end);
		if (end != at || !isfinite(v) || v < 0 || v > kinds[i].max)
			goto bad;
	} else if (arg != at) {
		goto bad;
	}
	if (apply_cameras(at + 1, faults, cameras, kinds[i].kind, v))
		goto bad;
	return 0;
bad:
	fprintf(stderr, "nvr-camsim: bad --fault '%s' (KIND:ARG@CAMERAS: drop:SECONDS, "
	        "stall:SECONDS, corrupt:FRACTION, reorder:FRACTION or refuse; cameras k, k-m "
	        "or a comma list, within 1..%u)\n", spec, cameras);
	return -EINVAL;
}

double cs_fault_draw(uint32_t ssrc, uint32_t seq, uint32_t salt)
{
	/* splitmix64 finalizer over the packet's identity */
	uint64_t z = ((uint64_t)ssrc << 32 | (seq & 0xFFFF) << 8 | (salt & 0xFF)) + 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1.0p-53;
}
