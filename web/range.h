/*
 * range.h - the HTTP Range request header (RFC 9110, section 14) for a body
 * whose size is known: which single byte range to send.
 *
 * Accepted: the "bytes" unit (any case) with one range-spec: "bytes=a-b"
 * (b past the end is cut to the end), "bytes=a-", "bytes=-n" (the last n
 * bytes), with optional spaces or tabs around each range-spec. A header
 * with several range-specs is answered with the whole body (RFC 9110
 * allows a server to ignore Range) unless none of them is satisfiable,
 * which is a 416 like a single unsatisfiable range. A header that does not
 * follow the grammar, or another unit, is ignored as the RFC asks.
 */
#ifndef WEB_RANGE_H
#define WEB_RANGE_H

#include <stddef.h>
#include <stdint.h>

#define RANGE_MAX_SPECS 64   /* more range-specs: the header is ignored */

/* Reads `len` bytes of a Range header's value for a body of `size` bytes.
 * Returns 1 with [*first, *last] (inclusive) set for a single satisfiable
 * range; 0 when the header is to be ignored (send the whole body, 200);
 * -ERANGE when nothing asked for lies inside the body (416). */
int range_parse(const char *header, size_t len, uint64_t size, uint64_t *first,
                uint64_t *last);

#endif
