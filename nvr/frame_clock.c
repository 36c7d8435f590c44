/*
 * frame_clock.c - frame wall-clock times from RTP timestamps, RTCP sender
 * reports and arrival times; the rules are in frame_clock.h.
 */
#include <stdlib.h>
#include <string.h>

#include "frame_clock.h"

/* RTP ticks to microseconds, rounding toward negative infinity. */
static int64_t ticks_to_us(int64_t ticks, uint32_t rate)
{
	int64_t num = ticks * 1000000;
	int64_t q = num / rate;
	if (num % rate < 0)
		q--;
	return q;
}

void fclock_init(struct fclock *c, uint32_t rate, uint32_t max_skew_ms, int64_t last_us)
{
	memset(c, 0, sizeof *c);
	c->rate = rate ? rate : 90000;
	c->max_skew_us = (int64_t)max_skew_ms * 1000;
	c->last_us = last_us;
}

void fclock_reset(struct fclock *c, uint32_t rate)
{
	fclock_init(c, rate, (uint32_t)(c->max_skew_us / 1000), c->last_us);
}

void fclock_sender_report(struct fclock *c, int64_t sr_unix_us, uint32_t rtp_ts)
{
	c->have_sr = true;
	c->sr_us = sr_unix_us;
	c->sr_ts = rtp_ts;
}

static int64_t unwrap(struct fclock *c, uint32_t ts)
{
	if (!c->have_ts) {
		c->have_ts = true;
		c->ext_ts = ts;
	} else {
		c->ext_ts += (int32_t)(ts - c->last_ts);
	}
	c->last_ts = ts;
	return c->ext_ts;
}

static bool within_skew(const struct fclock *c, int64_t t, int64_t arrival_us)
{
	return llabs(t - arrival_us) <= c->max_skew_us;
}

static int64_t from_arrival(struct fclock *c, int64_t ext, int64_t arrival_us)
{
	if (!c->anchored) {
		c->anchored = true;
		c->anchor_us = arrival_us;
		c->anchor_ext = ext;
		return arrival_us;
	}
	int64_t t = c->anchor_us + ticks_to_us(ext - c->anchor_ext, c->rate);
	if (within_skew(c, t, arrival_us))
		return t;
	c->reanchors++;
	c->anchor_us = arrival_us;
	c->anchor_ext = ext;
	return arrival_us;
}

int64_t fclock_frame(struct fclock *c, uint32_t rtp_ts, int64_t arrival_us,
                     enum fclock_source *src)
{
	int64_t ext = unwrap(c, rtp_ts);
	enum fclock_source from = FCLOCK_ARRIVAL;
	int64_t t = 0;
	if (c->have_sr) {
		t = c->sr_us + ticks_to_us((int32_t)(rtp_ts - c->sr_ts), c->rate);
		if (within_skew(c, t, arrival_us))
			from = FCLOCK_RTCP;
		else
			c->skewed_frames++;
	}
	if (from == FCLOCK_ARRIVAL)
		t = from_arrival(c, ext, arrival_us);
	if (t <= c->last_us)
		t = c->last_us + 1;
	c->last_us = t;
	if (src)
		*src = from;
	return t;
}
