/*
 * fuzz_record.c - libFuzzer target for the on-disk record parsers: the
 * record header checks, the chunk parser (frame table) and the segment
 * directory decoder. These read bytes straight from disks that may be
 * damaged, so no input may crash them or make them read out of bounds.
 * Each input is tried as-is and with its generation field forced to match,
 * so the fuzzer reaches past the generation check.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static void try_parsers(const uint8_t *buf, size_t len)
{
	if (len >= sizeof(struct rec_header)) {
		struct rec_header h;
		memcpy(&h, buf, sizeof h);
		(void)rec_header_check(&h, 7, STG_BLOCK, STG_BLOCK + (uint64_t)len);
		const struct frame_entry *table;
		const uint8_t *frames;
		(void)chunk_parse(buf, len, 7, h.camera_id, &h, &table, &frames);
	}
	struct dir_entry *e = NULL;
	uint32_t n = 0;
	if (dir_record_decode(buf, len, 7, &e, &n) == 0)
		free(e);
}

/* Makes the header plausible and its checksum right, so the fuzzer
 * explores the payload parsers too. */
static void make_plausible(uint8_t *buf, size_t size)
{
	struct rec_header h;
	memcpy(&h, buf, sizeof h);
	h.magic = STG_REC_MAGIC;
	h.version = STG_FORMAT_VERSION;
	h.generation = 7;
	if (h.payload_len > size - sizeof h)
		h.payload_len = (uint32_t)(size - sizeof h);
	h.checksum = rec_checksum(&h, buf + sizeof h);
	memcpy(buf, &h, sizeof h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	try_parsers(buf, size);
	if (size >= sizeof(struct rec_header)) {
		make_plausible(buf, size);
		try_parsers(buf, size);
	}
	free(buf);
	return 0;
}
