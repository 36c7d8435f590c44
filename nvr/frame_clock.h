/*
 * frame_clock.h - the wall-clock time of each received video frame, from
 * its RTP timestamp, the stream's RTCP sender reports and arrival times.
 *
 * Rules (see ingest.h):
 *  1. After a sender report (SR): time = ntp_unix(SR) +
 *     (int32)(rtp_ts - sr_rtp_ts) / clock_rate, the 32-bit difference
 *     taking care of RTP timestamp wrap-around. If that time is more than
 *     max_skew from the frame's arrival, the camera's clock is not trusted
 *     for that frame (counted in skewed_frames; the caller logs the first)
 *     and rule 2 applies.
 *  2. Otherwise: arrival-anchored RTP time. The first frame anchors
 *     (arrival, extended RTP timestamp); later frames get anchor +
 *     RTP delta / clock_rate, so their spacing is the camera's and network
 *     jitter does not show. When that drifts more than max_skew from
 *     arrival, the anchor moves to the current frame.
 *  3. Times strictly increase: a time not after the previous one becomes
 *     previous + 1 us (the storage engine refuses older frames). The
 *     previous time survives reconnects (fclock_reset keeps it).
 *
 * Pure computation, one struct per stream; no I/O, no locking.
 */
#ifndef NVR_FRAME_CLOCK_H
#define NVR_FRAME_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct fclock {
	uint32_t rate;            /* RTP clock rate, Hz */
	int64_t max_skew_us;
	/* RTP timestamp unwrapping */
	bool have_ts;
	uint32_t last_ts;
	int64_t ext_ts;           /* last_ts extended to 64 bits */
	/* arrival anchor (rule 2) */
	bool anchored;
	int64_t anchor_us;
	int64_t anchor_ext;
	/* latest sender report (rule 1) */
	bool have_sr;
	int64_t sr_us;
	uint32_t sr_ts;
	/* results */
	int64_t last_us;          /* previous time given out (rule 3) */
	uint64_t skewed_frames;   /* frames whose SR time was refused */
	uint64_t reanchors;       /* times rule 2 moved its anchor after drift */
};

enum fclock_source { FCLOCK_ARRIVAL = 0, FCLOCK_RTCP = 1 };

/* Starts a clock for a stream; `last_us` is the camera's previous frame
 * time (0 for none). A rate of 0 is treated as 90000. */
void fclock_init(struct fclock *c, uint32_t rate, uint32_t max_skew_ms, int64_t last_us);

/* Forgets the stream (new connection) but keeps last_us. */
void fclock_reset(struct fclock *c, uint32_t rate);

/* Records a sender report: its NTP time as Unix microseconds
 * (rtp_ntp_to_unix_us) and the matching RTP timestamp. */
void fclock_sender_report(struct fclock *c, int64_t sr_unix_us, uint32_t rtp_ts);

/* The time of a frame with RTP timestamp rtp_ts whose first packet arrived
 * at arrival_us (wall clock). *src tells which rule gave it (may be NULL). */
int64_t fclock_frame(struct fclock *c, uint32_t rtp_ts, int64_t arrival_us,
                     enum fclock_source *src);

#endif
