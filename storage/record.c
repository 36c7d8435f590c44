/*
 * record.c - encoding and checking of the records inside a segment.
 *
 * Everything that decides whether bytes read from a disk may be trusted is
 * here: the record header checks used by the recovery scan and by readers,
 * and the segment directory's compressed encoding. These functions take
 * untrusted input and are the target of tests/fuzz/fuzz_record.c.
 *
 * Directory compression: a sealed segment's directory is a sorted array of
 * 32-byte dir_entry; camera ids repeat and times grow slowly, so zstd (level
 * 3) shrinks it several times over, which makes the one read a seek needs
 * smaller. Chunk frame tables are not compressed: at 8 bytes a frame they are
 * under 1% of a chunk, and the reader would have to decompress them on
 * every chunk it serves (see docs/STORAGE_FORMAT.md for the figures).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>
#include "internal.h"

/* The checksum is XXH3-64 of the header (checksum field 0) seeded with
 * XXH3-64 of the payload. Two steps so that the producer hashes the payload
 * once and the writer, which learns the generation only when it packs the
 * record into a segment, finishes the checksum over 64 bytes. */
uint64_t rec_payload_hash(const void *payload, uint32_t len)
{
	return XXH3_64bits(payload, len);
}

uint64_t rec_header_hash(const struct rec_header *h, uint64_t payload_hash)
{
	struct rec_header copy = *h;
	copy.checksum = 0;
	return XXH3_64bits_withSeed(&copy, sizeof copy, payload_hash);
}

uint64_t rec_checksum(const struct rec_header *h, const void *payload)
{
	return rec_header_hash(h, rec_payload_hash(payload, h->payload_len));
}

int rec_header_check(const struct rec_header *h, uint32_t gen,
                     uint64_t offset, uint64_t seg_size)
{
	if (h->magic != STG_REC_MAGIC || h->version != STG_FORMAT_VERSION)
		return STG_ECORRUPT;
	if (h->type != REC_CHUNK && h->type != REC_DIR)
		return STG_ECORRUPT;
	if (h->generation != gen)
		return STG_EGONE;
	uint64_t len = align_up((uint64_t)sizeof *h + h->payload_len, 8);
	if (offset < STG_BLOCK || offset % 8 || len > seg_size - offset)
		return STG_ECORRUPT;
	if (h->type == REC_CHUNK) {
		uint64_t table = (uint64_t)h->frame_count * sizeof(struct frame_entry);
		if (h->frame_count == 0 || align_up(h->raw_len, 8) + table != h->payload_len)
			return STG_ECORRUPT;
		if (h->last_us < h->first_us || h->end_us < h->last_us)
			return STG_ECORRUPT;
	}
	return 0;
}

int rec_verify(const void *buf, size_t len, uint32_t gen)
{
	struct rec_header h;
	if (len < sizeof h)
		return STG_ECORRUPT;
	memcpy(&h, buf, sizeof h);
	int err = rec_header_check(&h, gen, STG_BLOCK, STG_BLOCK + (uint64_t)len);
	if (err)
		return err;
	if (rec_checksum(&h, (const uint8_t *)buf + sizeof h) != h.checksum)
		return STG_ECORRUPT;
	return 0;
}

/* Largest directory accepted: 8M entries, far above the ~1M chunks of the
 * largest segment (32 GiB) filled with 32 KiB chunks. */
#define DIR_MAX_BYTES (256u << 20)

uint64_t dir_record_bound(uint32_t n)
{
	return align_up(sizeof(struct rec_header) +
	                ZSTD_compressBound((size_t)n * sizeof(struct dir_entry)), 8)
	       + STG_BLOCK;
}

int dir_entry_cmp(const void *a, const void *b)
{
	const struct dir_entry *x = a, *y = b;
	if (x->camera_id != y->camera_id)
		return x->camera_id < y->camera_id ? -1 : 1;
	if (x->start_us != y->start_us)
		return x->start_us < y->start_us ? -1 : 1;
	/* a chunk before its relocated copy (idx_merge_chunk relies on it) */
	return (x->flags & REC_RELOCATED) - (y->flags & REC_RELOCATED);
}

int dir_record_build(struct dir_entry *e, uint32_t n, uint32_t gen,
                     void **out, uint32_t *len)
{
	size_t raw = (size_t)n * sizeof *e;
	size_t cap = align_up(sizeof(struct rec_header) + ZSTD_compressBound(raw), 8);
	uint8_t *buf = calloc(1, cap);
	if (!buf)
		return -ENOMEM;
	qsort(e, n, sizeof *e, dir_entry_cmp);
	size_t z = ZSTD_compress(buf + sizeof(struct rec_header),
	                         cap - sizeof(struct rec_header), e, raw, 3);
	if (ZSTD_isError(z)) {
		free(buf);
		return -EIO;
	}
	struct rec_header h = {
		.magic = STG_REC_MAGIC, .version = STG_FORMAT_VERSION,
		.type = REC_DIR, .generation = gen, .frame_count = n,
		.payload_len = (uint32_t)z, .raw_len = (uint32_t)raw,
	};
	for (uint32_t i = 0; i < n; i++) {
		if (i == 0 || e[i].start_us < h.first_us)
			h.first_us = e[i].start_us;
		if (i == 0 || e[i].end_us > h.end_us)
			h.end_us = h.last_us = e[i].end_us;
	}
	h.checksum = rec_checksum(&h, buf + sizeof h);
	memcpy(buf, &h, sizeof h);
	*out = buf;
	*len = (uint32_t)align_up(sizeof h + z, 8);
	return 0;
}

int dir_record_decode(const void *buf, size_t len, uint32_t gen,
                      struct dir_entry **out, uint32_t *n)
{
	int err = rec_verify(buf, len, gen);
	if (err)
		return err;
	struct rec_header h;
	memcpy(&h, buf, sizeof h);
	if (h.type != REC_DIR || h.raw_len != (uint64_t)h.frame_count * sizeof(struct dir_entry))
		return STG_ECORRUPT;
	/* the sizes come from the disk: check them before allocating anything
	 * (a damaged header once asked for 4 GiB here, found by fuzzing) */
	unsigned long long content = ZSTD_getFrameContentSize((const uint8_t *)buf + sizeof h,
	                                                      h.payload_len);
	if (h.raw_len > DIR_MAX_BYTES || content != h.raw_len)
		return STG_ECORRUPT;
	struct dir_entry *e = malloc(h.raw_len ? h.raw_len : 1);
	if (!e)
		return -ENOMEM;
	size_t got = ZSTD_decompress(e, h.raw_len, (const uint8_t *)buf + sizeof h,
	                             h.payload_len);
	if (ZSTD_isError(got) || got != h.raw_len) {
		free(e);
		return STG_ECORRUPT;
	}
	for (uint32_t i = 1; i < h.frame_count; i++)
		if (dir_entry_cmp(&e[i - 1], &e[i]) > 0) {
			free(e);
			return STG_ECORRUPT;
		}
	*out = e;
	*n = h.frame_count;
	return 0;
}

int chunk_parse(const void *buf, size_t len, uint32_t gen, uint32_t camera_id,
                struct rec_header *h, const struct frame_entry **table,
                const uint8_t **frames)
{
	int err = rec_verify(buf, len, gen);
	if (err)
		return err;
	memcpy(h, buf, sizeof *h);
	if (h->type != REC_CHUNK || h->camera_id != camera_id)
		return STG_ECORRUPT;
	*frames = (const uint8_t *)buf + sizeof *h;
	*table = (const struct frame_entry *)(*frames + align_up(h->raw_len, 8));
	uint64_t sum = 0;
	int64_t prev = -1;
	for (uint32_t i = 0; i < h->frame_count; i++) {
		struct frame_entry fe;
		memcpy(&fe, &(*table)[i], sizeof fe);
		sum += fe.size;
		if ((int64_t)(fe.dt_key >> 1) < prev)
			return STG_ECORRUPT;
		prev = fe.dt_key >> 1;
	}
	if (sum != h->raw_len || h->first_us + prev > h->last_us)
		return STG_ECORRUPT;
	return 0;
}
