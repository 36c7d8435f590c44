/*
 * mux.h - a libavformat muxer fed with recorded frames (struct
 * stg_read_frame), without transcoding: playback (MP4, HLS segments) and
 * evidence export share it.
 *
 * Use: open with the first key frame of the footage (its parameter sets
 * give the codec parameters; it is only read, not muxed), then hand every
 * frame to mux_frame() in time order, that first key frame included, then
 * mux_finish() and mux_free(). Frames carry wall-clock microseconds; the
 * muxer rebases them to the first frame (or to mux_options.origin_us) and
 * keeps them strictly rising. Each frame is held until the next one tells
 * its duration (the last one keeps the duration of the one before it), so
 * a frame is written one call late: mux_frames() counts written frames.
 *
 * Output is deterministic: libavformat's bitexact mode is on (no encoder
 * string, no creation time), so the same frames give the same bytes, and
 * a run into a counting writer tells the size of the answer in advance.
 *
 * Errors are 0 or a negative errno; libavformat's own codes become -EINVAL
 * (data the muxer refuses, e.g. a key frame without parameter sets) or
 * -EIO, after a log line (comp=mux) with libavformat's message. An error
 * of write_fn (a negative AVERROR, which for errno values is -errno) comes
 * back as that errno. One struct mux belongs to one thread at a time.
 */
#ifndef WEB_MUX_H
#define WEB_MUX_H

#include <stdbool.h>
#include <stdint.h>

#include "storage.h"

struct mux;

/* Receives the muxer's output; returns size or a negative AVERROR. */
typedef int (*mux_write_fn)(void *opaque, const uint8_t *buf, int size);

struct mux_options {
	/* Timestamps are f->time_us - origin_us when has_origin, else they
	 * start at 0 with the first frame. HLS segments of one camera share an
	 * origin so that consecutive segments continue each other's times. */
	int64_t origin_us;
	bool has_origin;
};

/* Streams `format` ("mp4": fragmented, one fragment per key frame, empty
 * moov; or "mpegts") through write_fn; codec parameters come from the
 * first key frame `first` (Annex B with parameter sets). The header is
 * written before this returns. 0 or negative errno. */
int mux_open_stream(struct mux **out, const char *format, const struct stg_read_frame *first,
                    mux_write_fn write_fn, void *opaque);

/* The same with options (NULL: the defaults of mux_open_stream). */
int mux_open_stream_opts(struct mux **out, const char *format,
                         const struct stg_read_frame *first, mux_write_fn write_fn,
                         void *opaque, const struct mux_options *opt);

/* Adds one frame (times are wall-clock microseconds; the muxer rebases
 * them). A frame of another codec than `first` is refused with -EINVAL,
 * as is a frame before the first key frame. 0 or negative errno. */
int mux_frame(struct mux *m, const struct stg_read_frame *f);

/* Writes the held frame and the trailer and flushes; 0 or negative errno. */
int mux_finish(struct mux *m);

/* Frees (after mux_finish, or instead of it on error). NULL is fine. */
void mux_free(struct mux *m);

/* Frames muxed so far (written to the muxer, not held). */
uint64_t mux_frames(const struct mux *m);

/* Whether libavformat can mux this codec (H.264, H.265). */
bool mux_codec_supported(enum stg_codec codec);

#endif
