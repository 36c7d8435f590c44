/*
 * avstream.h - recorded frames of one camera and window, muxed (web/mux.h)
 * into an HTTP answer that is streamed, never built whole in memory.
 * Shared by the MP4 playback and the HLS segments. Private to web/.
 *
 * A struct avs reads the window with a storage iterator from the first key
 * frame of a codec the muxer supports, up to the end of the window, a
 * change of codec or `max_frames`, and hands the muxer's output to
 * libmicrohttpd through a buffer of about one GOP (a fragment or a few
 * hundred TS packets). Only the bytes [first, last] of the output are
 * delivered: the muxer's output is deterministic, so avs_measure() runs
 * the same selection into a byte counter to learn the answer's size (and
 * frame count) in advance, which makes Content-Length and Range possible.
 */
#ifndef WEB_AVSTREAM_H
#define WEB_AVSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "mux.h"
#include "storage.h"

struct MHD_Response;

struct avs_plan {
	struct stg *stg;
	uint32_t camera;
	int64_t t0, t1;                 /* the window, as for stg_iter_open */
	const char *format;             /* "mp4" (fragmented) or "mpegts" */
	struct mux_options opt;
	uint64_t max_frames;            /* stop after this many; 0 for no limit */
	const char *what;               /* names the answer in log lines */
};

struct avs;

/* Opens the iterator, finds the first key frame and writes the muxer's
 * header. Only the bytes [first, last] of the output will be delivered
 * (0 and UINT64_MAX: all), of an output of `total` bytes (from
 * avs_measure; UINT64_MAX: unknown); an output that turns out of another
 * size ends the transfer truncated. Returns 0; -ENOENT when the window
 * holds no key frame of a supported codec; or another negative errno
 * (STG_EGONE included). */
int avs_open(struct avs **out, const struct avs_plan *plan, uint64_t first, uint64_t last,
             uint64_t total);

/* Runs the whole answer into a counter: its size in bytes and the frames
 * it holds (give those as max_frames to the answer that follows, so that
 * footage recorded in between does not change it). 0, -ENOENT as above,
 * or a negative errno. */
int avs_measure(const struct avs_plan *plan, uint64_t *size, uint64_t *frames);

/* A libmicrohttpd response reading from s, which it owns from then on
 * (also when this fails). `size` is the body's length, or UINT64_MAX for
 * a chunked answer. Returns NULL on failure. */
struct MHD_Response *avs_response(struct avs *s, uint64_t size);

/* Frees a stream that was not handed to avs_response(). NULL is fine. */
void avs_free(struct avs *s);

#endif
