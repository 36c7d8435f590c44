/*
 * range.c - parser of the HTTP Range header (range.h).
 *
 * The grammar (RFC 9110, 14.1.1 and 14.1.2):
 *   ranges-specifier = range-unit "=" range-set
 *   range-set        = 1#range-spec     (commas, optional spaces and tabs)
 *   range-spec       = first-pos "-" [ last-pos ] / "-" suffix-length
 * Every read stays inside the `len` bytes given; numbers too large for
 * 64 bits saturate (a first-pos that large is past any body).
 */
#include "range.h"

#include <errno.h>
#include <stdbool.h>
#include <strings.h>

/* One range-spec as read: kind and numbers. */
struct range_spec {
	bool suffix;          /* "-n" */
	bool open;            /* "a-" */
	uint64_t a, b;        /* first-pos and last-pos, or n in a */
};

struct range_cursor {
	const char *s;
	size_t len, pos;
};

static bool range_digit(const struct range_cursor *c)
{
	return c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9';
}

/* 1*DIGIT, saturating at UINT64_MAX; false when there is no digit. */
static bool range_number(struct range_cursor *c, uint64_t *out)
{
	if (!range_digit(c))
		return false;
	uint64_t v = 0;
	while (range_digit(c)) {
		unsigned d = (unsigned)(c->s[c->pos++] - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*out = v;
	return true;
}

static void range_ows(struct range_cursor *c)
{
	while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t'))
		c->pos++;
}

/* One range-spec at the cursor; false when it does not follow the grammar. */
static bool range_spec(struct range_cursor *c, struct range_spec *r)
{
	*r = (struct range_spec){ 0 };
	if (c->pos < c->len && c->s[c->pos] == '-') {
		c->pos++;
		r->suffix = true;
		return range_number(c, &r->a);
	}
	if (!range_number(c, &r->a) || c->pos >= c->len || c->s[c->pos] != '-')
		return false;
	c->pos++;
	if (!range_digit(c)) {
		r->open = true;
		return true;
	}
	return range_number(c, &r->b) && r->b >= r->a;
}

/* The satisfiable part of a spec within `size` bytes; false when none. */
static bool range_clip(const struct range_spec *r, uint64_t size, uint64_t *first,
                       uint64_t *last)
{
	if (size == 0)
		return false;
	if (r->suffix) {
		if (r->a == 0)
			return false;
		*first = r->a >= size ? 0 : size - r->a;
		*last = size - 1;
		return true;
	}
	if (r->a >= size)
		return false;
	*first = r->a;
	*last = r->open || r->b >= size ? size - 1 : r->b;
	return true;
}

int range_parse(const char *header, size_t len, uint64_t size, uint64_t *first,
                uint64_t *last)
{
	static const char unit[] = "bytes=";
	struct range_cursor c = { header, len, 0 };
	if (!header || len < sizeof unit - 1 || strncasecmp(header, unit, sizeof unit - 1))
		return 0;
	c.pos = sizeof unit - 1;
	int specs = 0, satisfiable = 0;
	for (;;) {
		struct range_spec r;
		range_ows(&c);
		if (c.pos < c.len && c.s[c.pos] == ',') {
			c.pos++;                /* empty list elements are allowed */
			continue;
		}
		if (c.pos == c.len)
			break;
		if (!range_spec(&c, &r) || ++specs > RANGE_MAX_SPECS)
			return 0;
		uint64_t f, l;
		if (range_clip(&r, size, &f, &l) && satisfiable++ == 0) {
			*first = f;
			*last = l;
		}
		range_ows(&c);
		if (c.pos < c.len && c.s[c.pos] != ',')
			return 0;
	}
	if (specs == 0)
		return 0;
	if (satisfiable == 0)
		return -ERANGE;
	return specs == 1 ? 1 : 0;
}
