/*
 * fuzz_range.c - libFuzzer target for the HTTP Range header parser
 * (web/range.c): any bytes a client sends as Range must never crash it or
 * make it read past their length, and what it answers must hold together:
 * a single range lies inside the body (first <= last < size), an empty
 * body has no satisfiable range, and the range written back in canonical
 * form ("bytes=first-last") is parsed to the same bytes.
 *
 * Input: the first byte picks the body size (0..254 as is; 255 takes the
 * next 8 bytes as a 64-bit size), the rest is the header value. Static
 * names carry the rangef_ prefix (see fuzz_rtsp.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "range.h"

static uint64_t rangef_size(const uint8_t **data, size_t *size)
{
	uint64_t v = (*data)[0];
	(*data)++;
	(*size)--;
	if (v < 255 || *size < 8)
		return v;
	v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | (*data)[i];
	*data += 8;
	*size -= 8;
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint64_t body = rangef_size(&data, &size);
	uint64_t first = 0, last = 0;
	int r = range_parse((const char *)data, size, body, &first, &last);
	if (r != 1 && r != 0 && r != -ERANGE)
		abort();
	if (r != 1)
		return 0;
	if (first > last || last >= body)
		abort();
	char canon[64];
	int n = snprintf(canon, sizeof canon, "bytes=%" PRIu64 "-%" PRIu64, first, last);
	uint64_t f2 = 0, l2 = 0;
	if (range_parse(canon, (size_t)n, body, &f2, &l2) != 1 || f2 != first || l2 != last)
		abort();
	return 0;
}
