/*
 * format.h - every on-disk and in-index layout of the storage engine.
 *
 * This header is the format's manual (docs/STORAGE_FORMAT.md walks through
 * the same structures with pictures). All multi-byte fields on disk are
 * little-endian; index keys are big-endian so that LMDB's byte order is the
 * numeric order (a range scan over (camera, start) is a time scan).
 *
 * A volume is a directory:
 *
 *     volume.hdr        struct vol_header in a 4096-byte file
 *     seg-000000 ...    segment_count files of segment_size bytes each,
 *                       preallocated by the format tool, never created or
 *                       deleted while recording
 *
 * A segment file, each time it is (re)used, gets a new volume-wide
 * generation number and is written front to back as a log:
 *
 *     [seg_header 4096 B][record][record]...[pad to 4 KiB][record]...[dir record]
 *
 * Records start at 8-byte aligned offsets. A record is a chunk (the frames of
 * one camera, usually one GOP) or the segment directory (written last, when
 * the segment is sealed). When the writer flushes a partially filled buffer it
 * pads to the next 4 KiB boundary with zeros and goes on there. Scanning rule
 * (recovery, fsck): at an offset whose record header is invalid, skip to the
 * next 4 KiB boundary; an invalid header at a 4 KiB boundary ends the log.
 * A record is valid when its magic, version, type, generation, lengths and
 * XXH3-64 checksum all match; a record of an older generation (stale data of
 * an earlier use of the slot) never matches, so it is never served.
 */
#ifndef NVR_STORAGE_FORMAT_H
#define NVR_STORAGE_FORMAT_H

#include <stdint.h>
#include <assert.h>

#define STG_BLOCK 4096u                 /* O_DIRECT alignment and padding unit */
#define STG_FORMAT_VERSION 1u

#define STG_VOL_MAGIC 0x5652564eu       /* "NVRV" */
#define STG_SEG_MAGIC 0x5352564eu       /* "NVRS" */
#define STG_REC_MAGIC 0x4352564eu       /* "NVRC" */

#define STG_VOL_HEADER_FILE "volume.hdr"
#define STG_SEG_FILE_FMT "seg-%06u"

/* volume.hdr: the first 64 bytes of a 4096-byte file, rest zero. */
struct vol_header {
	uint32_t magic;           /* STG_VOL_MAGIC (reveals byte-order mismatch) */
	uint32_t version;         /* STG_FORMAT_VERSION */
	uint8_t uuid[16];         /* random, identifies the disk to the index */
	uint64_t segment_size;    /* bytes, multiple of 1 MiB */
	uint32_t segment_count;
	uint32_t reserved;
	int64_t created_us;
	uint64_t reserved2;
	uint64_t checksum;        /* XXH3-64 of the 56 bytes before it */
};
static_assert(sizeof(struct vol_header) == 64, "vol_header is 64 bytes");

/* First 64 bytes of the first 4 KiB block of a segment, rest zero. */
struct seg_header {
	uint32_t magic;           /* STG_SEG_MAGIC */
	uint32_t version;
	uint8_t volume_uuid[16];
	uint32_t slot;            /* index of the segment file */
	uint32_t generation;      /* volume-wide, grows by one per segment use */
	int64_t opened_us;
	uint8_t reserved[16];
	uint64_t checksum;        /* XXH3-64 of the 56 bytes before it */
};
static_assert(sizeof(struct seg_header) == 64, "seg_header is 64 bytes");

enum rec_type {
	REC_CHUNK = 1,            /* frames of one camera */
	REC_DIR = 2,              /* the segment directory, last record */
};

enum rec_flags {
	REC_KEY_START = 1,        /* chunk's first frame is a key frame */
	REC_RANGE_START = 2,      /* the camera's stream was interrupted before this
	                           * chunk (stg_camera_flush): it starts a new range
	                           * however close in time it follows the last one */
	REC_RELOCATED = 4,        /* a copy written by the retention engine of a
	                           * chunk from an older generation that had to
	                           * outlive it (held, or within its class's
	                           * promised minimum): see storage/retention.c.
	                           * Indexed only once its original is not
	                           * (idx_merge_chunk), in ranges of its own */
};

/*
 * Record header, 64 bytes. For a chunk the payload is the frame bytes
 * (raw_len), zero padding to a multiple of 8, then the frame table
 * (frame_count entries of struct frame_entry).
 * Putting the table last lets the producer append frames into one buffer
 * and add the table when the chunk closes, with no extra copy. For a
 * directory the payload is zstd-compressed struct dir_entry[frame_count],
 * raw_len bytes once decompressed. The record occupies
 * align8(64 + payload_len) bytes.
 */
struct rec_header {
	uint32_t magic;           /* STG_REC_MAGIC */
	uint8_t version;          /* STG_FORMAT_VERSION */
	uint8_t type;             /* enum rec_type */
	uint8_t codec;            /* enum stg_codec (chunk) */
	uint8_t flags;            /* enum rec_flags */
	uint32_t camera_id;       /* 0 for a directory */
	uint32_t generation;      /* the segment's generation when written */
	int64_t first_us;         /* time of the first frame */
	int64_t last_us;          /* time of the last frame */
	int64_t end_us;           /* end of the last frame (exclusive) */
	uint32_t frame_count;     /* frames, or directory entries */
	uint32_t payload_len;     /* bytes after this header */
	uint32_t raw_len;         /* chunk: frame bytes; dir: uncompressed size */
	uint32_t reserved;
	uint64_t checksum;        /* XXH3-64 of header (this field 0) + payload */
};
static_assert(sizeof(struct rec_header) == 64, "rec_header is 64 bytes");

/* One frame in a chunk's frame table. */
struct frame_entry {
	uint32_t size;            /* bytes of the access unit */
	uint32_t dt_key;          /* (time - first_us) << 1 | key; dt < 2^31 us */
};
static_assert(sizeof(struct frame_entry) == 8, "frame_entry is 8 bytes");

/* One chunk in a segment directory; entries are sorted by (camera, start). */
struct dir_entry {
	uint32_t camera_id;
	uint32_t offset8;         /* record offset in the segment / 8 */
	uint32_t length;          /* record length on disk (aligned to 8) */
	uint16_t frames;
	uint16_t flags;           /* enum rec_flags */
	int64_t start_us;
	int64_t end_us;
};
static_assert(sizeof(struct dir_entry) == 32, "dir_entry is 32 bytes");

/* ---- LMDB index layouts --------------------------------------------------
 *
 * Database "volumes": key u16 BE volume id -> struct idx_volume.
 * Database "segments": key struct seg_key -> struct idx_segment. Only live
 *   generations have a record; reclaiming a slot deletes its record in the
 *   same transaction that removes the ranges pointing into it.
 * Database "ranges": key struct range_key -> struct idx_range. A range is a
 *   run of a camera's footage without a gap on one volume, in generations
 *   first_gen..last_gen. Invariant (enforced in index.c): the range's start
 *   is the start of its first chunk, which lies in first_gen; its end is the
 *   end of its last chunk, which lies in last_gen; both generations are live.
 * Database "meta": "format" -> u32 STG_INDEX_VERSION.
 *
 * Index version 2 (retention) adds, all written by storage/retention.c:
 * Database "classes": key the class name (1-31 bytes, no NUL) ->
 *   struct idx_class.
 * Database "camclass": key u32 BE camera id -> the class name (1-31 bytes).
 * Database "holds": key u64 BE hold id -> struct idx_hold followed by
 *   camera_count u32 camera ids.
 * and the range flag RANGE_RELOCATED. A version 1 index is upgraded in
 * place when opened (the new databases start empty); a version 2 index is
 * refused by older engines, which would not honour holds.
 */
#define STG_INDEX_VERSION 2u
struct seg_key {
	uint8_t vol_be[2];
	uint8_t gen_be[4];
};

enum seg_state {
	SEG_OPEN = 1,             /* being written; recovery scans it */
	SEG_SEALED = 2,           /* complete, directory at dir_off */
};

struct idx_segment {
	uint32_t slot;
	uint32_t state;           /* enum seg_state */
	int64_t t_min;            /* earliest chunk start in the segment */
	int64_t t_max;            /* latest chunk end */
	uint32_t chunks;
	uint32_t dir_len;         /* sealed: directory record length */
	uint64_t dir_off;         /* sealed: directory record offset */
};
static_assert(sizeof(struct idx_segment) == 40, "idx_segment is 40 bytes");

struct idx_volume {
	uint8_t uuid[16];
	uint64_t segment_size;
	uint32_t segment_count;
	uint32_t next_gen;        /* generation the next segment use gets */
	char path[232];
};
static_assert(sizeof(struct idx_volume) == 264, "idx_volume is 264 bytes");

struct range_key {
	uint8_t cam_be[4];
	uint8_t start_be[8];      /* start_us, sign bit flipped */
};

enum range_flags {
	RANGE_RELOCATED = 1,      /* made of REC_RELOCATED chunks only */
};

struct idx_range {
	int64_t end_us;
	uint32_t first_gen;
	uint32_t last_gen;
	uint16_t vol;
	uint16_t flags;           /* enum range_flags (0 in index version 1) */
	uint32_t reserved2;
};
static_assert(sizeof(struct idx_range) == 24, "idx_range is 24 bytes");

struct idx_class {
	int64_t min_us;           /* promised minimum retention, 0 none */
	int64_t max_us;           /* maximum retention, 0 none */
	uint32_t share_pct;       /* share of capacity, 0 none */
	uint32_t reserved;
	int64_t short_until_us;   /* footage of the class up to this time was
	                           * reclaimed before its promise: the class is
	                           * below its promise until this is min_us old */
	int64_t reserved2;
};
static_assert(sizeof(struct idx_class) == 40, "idx_class is 40 bytes");

struct idx_hold {
	int64_t start_us, end_us; /* the held window */
	int64_t created_us;
	int64_t expires_us;       /* 0: until released */
	char case_ref[64];
	char reason[160];
	uint32_t camera_count;
	uint32_t reserved;
};
static_assert(sizeof(struct idx_hold) == 264, "idx_hold is 264 bytes");

static inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

#endif
