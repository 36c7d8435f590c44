/*
 * avsource.c - cameras that are not RTSP, recorded through libavformat by a
 * bounded pool of threads (see avsource.h).
 *
 * Pool and queue. `av_threads` worker threads serve any number of sources.
 * Sources wait in one FIFO queue, each with a not-before time (0 for a new
 * source). A free worker takes the first queued source whose time has come,
 * runs one session with it, and then puts it back at the tail of the queue
 * with a backoff time. No thread is held during a backoff, so a source that
 * is down costs nothing but its place in the queue. A queued source whose
 * time has come reports INGEST_WAITING_WORKER; one whose time has not come
 * reports INGEST_BACKOFF.
 *
 * Session. avformat_open_input (the camera's credentials are put into the
 * URL here only, and the buffer is wiped right after), stream probing, the
 * best video stream (H.264 or H.265; anything else is an error), the
 * h264_mp4toannexb / hevc_mp4toannexb filter when the stream's extradata is
 * AVCC/hvcC (Annex B input passes through untouched), then av_read_frame
 * until the end or an error. Packets are never decoded or transcoded; each
 * access unit goes to stg_put_frame() from the worker, which is the only
 * thread putting that camera's frames while it holds the source. An
 * AVIOInterruptCB ends any blocking libavformat call when the source is
 * removed or the pool stops, and when no data came for timeout_ms.
 *
 * Time. A frame's time is the wall clock taken when the session opened plus
 * the packet's decode timestamp (its pts when there is no dts) minus the
 * session's first one, rescaled to microseconds; frames are stored in
 * decode order, so that is the order times must follow. A packet with no
 * timestamp comes one frame duration after the previous one. When a
 * packet's slot (open time + offset, on the monotonic clock) is further
 * than max_clock_skew_ms from now, the timestamps jumped (a discontinuity,
 * a wrap, or a live source's clock drifting from ours): the session's
 * origin is moved so that this packet lands now. Times handed to storage
 * are kept strictly increasing for the life of the source (across
 * reconnects too): a time not after the previous one becomes previous + 1 us.
 *
 * Pacing. A source that is not live (a file, or anything read faster than
 * it plays) is paced at real time: the worker sleeps until each packet's
 * slot, so a file "camera" records like a live one. Live means a realtime
 * format or URL scheme (rtp, udp, rtmp, srt, tcp, ...) or a source that is
 * neither seekable nor of known duration; those are read as they arrive.
 *
 * Retry. At the end of input or on any error the camera's open chunk is
 * flushed, last_error is set, and the source waits min..cap ms with full
 * jitter, where cap = backoff_min_ms << n, bounded by backoff_max_ms, and n
 * counts the sessions in a row that recorded no frame (a session that
 * recorded frames counts as n = 1). A file therefore loops with a gap
 * between passes; each new session counts one reconnect. Every session
 * that ended with an error (not the end of a paced file) is remembered as
 * a failure (repeat failures, ingest.h); the source's failure lines go
 * through its own log limiter (log.h).
 *
 * Credentials live only in the source's copy of the camera record and in
 * the open-time URL buffer. URLs in logs and in last_error have their
 * user:pass@ part stripped; libavformat's own log lines are routed through
 * nvr_log (warnings and errors only) with the same stripping.
 *
 * Locking. One mutex and one condition variable (on CLOCK_MONOTONIC) per
 * pool guard the source list, the queue and every source's status. The
 * condition variable is broadcast whenever the queue changes, a source is
 * released by its worker or told to stop; workers sleeping for pacing wait
 * on it too, so a stop wakes them at once. The interrupt callback reads
 * only two atomics of its source. avsource_remove() returns once the
 * worker holding the source has let go of it: at once through the
 * interrupt callback, except during a host name lookup, which libavformat
 * cannot interrupt. avsource_pool_stop() must not race other calls.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>

#include "avsource.h"
#include "log.h"

#define AVS_RATE_SECS 5          /* bitrate/fps window: 4 s + the current second */
#define AVS_URL_MAX 2048
#define AVS_DEFAULT_FRAME_US 40000

struct avs_rate_bucket {
	int64_t sec;                 /* monotonic second this bucket counts */
	uint64_t frames, bytes;
};

struct avs_source {
	struct avsource_pool *pool;
	struct camera_record rec;    /* holds the credentials: never logged */
	char url_log[512];           /* main_url without credentials */
	struct stg_camera *cam;
	atomic_bool stop;            /* removed or pool stopping */
	_Atomic int64_t deadline_us; /* monotonic: no-data timeout */
	int64_t last_time_us;        /* last time put; touched only by the holder */

	/* Below: under pool->lock. */
	struct avs_source *next;     /* all sources */
	struct avs_source *q_next;   /* waiting queue */
	bool queued, busy, removed;
	int64_t not_before_us;       /* monotonic */
	uint32_t failures;           /* sessions in a row without a frame */
	uint64_t sessions;
	enum ingest_state state;
	char last_error[160];
	uint64_t frames, bytes, refused, reconnects;
	int64_t streaming_since_us;  /* wall clock */
	int64_t stream_start_us;     /* monotonic */
	struct avs_rate_bucket rate[AVS_RATE_SECS];
	struct ingest_failures fails; /* recent failure times (repeat failures) */
	struct nvr_log_limit log_limit; /* this source's lines about failures */
};

struct avsource_pool {
	struct ingest_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t *threads;
	uint32_t nthreads;
	struct avs_source *all;
	struct avs_source *q_head, *q_tail;
	bool stopping;
	uint64_t rng;
};

/* One open session of a source; lives on its worker's stack. */
struct avs_session {
	struct avs_source *s;
	AVFormatContext *ic;
	AVBSFContext *bsf;
	AVPacket *pkt;
	int stream;
	AVRational tb;
	enum stg_codec codec;
	bool paced;
	bool started;                /* a packet was handled */
	int64_t first_ts;            /* stream time base; AV_NOPTS_VALUE until known */
	int64_t ts_origin_us;        /* offset given to first_ts */
	int64_t last_off_us;
	int64_t frame_us;            /* nominal frame duration */
	int64_t base_wall_us, base_mono_us;
	uint64_t frames;             /* put in this session */
	bool warned_refusal;
	bool looped;                 /* a paced source (a file) reached its end */
	char err[160];
};

/* ---- text: URLs without credentials ----------------------------------- */

/* Copies `in` to `out` leaving out the userinfo ("user:pass@") of every URL
 * in it. Used for URLs and for any text that may contain one. */
static void avs_redact(const char *in, char *out, size_t outsz)
{
	size_t o = 0;
	const char *p = in;
	while (*p && o + 1 < outsz) {
		if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
			for (int i = 0; i < 3 && o + 1 < outsz; i++)
				out[o++] = *p++;
			size_t auth = strcspn(p, "/?# \t\r\n\"'");
			const char *at = memrchr(p, '@', auth);
			if (at)
				p = at + 1;
			continue;
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
}

struct avs_buf {
	char *b;
	size_t len, cap;
	bool overflow;
};

static void avs_put_bytes(struct avs_buf *w, const char *s, size_t n)
{
	if (w->len + n >= w->cap) {
		w->overflow = true;
		return;
	}
	memcpy(w->b + w->len, s, n);
	w->len += n;
	w->b[w->len] = '\0';
}

/* Appends a userinfo component percent-encoded (RFC 3986: unreserved and
 * sub-delims stay, everything else is %XX; libavformat decodes it). */
static void avs_put_userinfo(struct avs_buf *w, const char *s)
{
	static const char keep[] = "-._~!$&'()*+,;=";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             (c >= '0' && c <= '9') || (c && strchr(keep, c));
		if (plain) {
			avs_put_bytes(w, (const char *)&c, 1);
		} else {
			char hex[4];
			snprintf(hex, sizeof hex, "%%%02X", c);
			avs_put_bytes(w, hex, 3);
		}
	}
}

/* The URL to open: main_url with the record's credentials as its userinfo
 * (replacing any in the URL). A URL without "scheme://" (a file path) or a
 * record without a user name is used as it is. The caller wipes `out`. */
static int avs_open_url(const struct camera_record *c, char *out, size_t outsz)
{
	struct avs_buf w = { out, 0, outsz, false };
	out[0] = '\0';
	const char *url = c->main_url;
	const char *sep = strstr(url, "://");
	if (!c->username[0] || !sep) {
		avs_put_bytes(&w, url, strlen(url));
		return w.overflow ? -ENAMETOOLONG : 0;
	}
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', alen);
	const char *host = at ? at + 1 : auth;
	avs_put_bytes(&w, url, (size_t)(auth - url));
	avs_put_userinfo(&w, c->username);
	if (c->password[0]) {
		avs_put_bytes(&w, ":", 1);
		avs_put_userinfo(&w, c->password);
	}
	avs_put_bytes(&w, "@", 1);
	avs_put_bytes(&w, host, strlen(host));
	return w.overflow ? -ENAMETOOLONG : 0;
}

/* libavformat's own messages: warnings and errors only, one nvr_log line
 * each, URLs stripped of credentials. */
static void avs_av_log(void *avcl, int level, const char *fmt, va_list vl)
{
	static _Thread_local int print_prefix = 1;
	if (level > AV_LOG_WARNING)
		return;
	char line[1024], clean[1024];
	av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
	avs_redact(line, clean, sizeof clean);
	size_t n = strlen(clean);
	while (n && (clean[n - 1] == '\n' || clean[n - 1] == '\r'))
		clean[--n] = '\0';
	for (char *q = clean; *q; q++)
		if (*q == '"' || *q == '\n')
			*q = '\'';
	if (n)
		nvr_log(level <= AV_LOG_ERROR ? "error" : "warn", "avsource",
		        "event=libav msg=\"%s\"", clean);
}

static void avs_av_log_install(void)
{
	av_log_set_callback(avs_av_log);
}

/* ---- pool helpers (pool->lock held) ---------------------------------- */

static void avs_wait_until(struct avsource_pool *p, int64_t mono_us)
{
	if (mono_us == INT64_MAX) {
		pthread_cond_wait(&p->cond, &p->lock);
		return;
	}
	struct timespec ts = { mono_us / 1000000, (mono_us % 1000000) * 1000 };
	pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

static struct avs_source *avs_find(struct avsource_pool *p, uint32_t id,
                                   bool with_removed)
{
	for (struct avs_source *s = p->all; s; s = s->next)
		if (s->rec.id == id && (with_removed || !s->removed))
			return s;
	return NULL;
}

static void avs_enqueue(struct avsource_pool *p, struct avs_source *s,
                        int64_t not_before_us)
{
	s->not_before_us = not_before_us;
	s->q_next = NULL;
	if (p->q_tail)
		p->q_tail->q_next = s;
	else
		p->q_head = s;
	p->q_tail = s;
	s->queued = true;
	pthread_cond_broadcast(&p->cond);
}

static void avs_dequeue(struct avsource_pool *p, struct avs_source *s)
{
	struct avs_source *prev = NULL;
	for (struct avs_source *q = p->q_head; q; prev = q, q = q->q_next) {
		if (q != s)
			continue;
		if (prev)
			prev->q_next = s->q_next;
		else
			p->q_head = s->q_next;
		if (p->q_tail == s)
			p->q_tail = prev;
		break;
	}
	s->q_next = NULL;
	s->queued = false;
}

static void avs_unlink(struct avsource_pool *p, struct avs_source *s)
{
	for (struct avs_source **pp = &p->all; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
}

/* Waits for the first queued source whose time has come and takes it out
 * of the queue; NULL when the pool stops. */
static struct avs_source *avs_take(struct avsource_pool *p)
{
	for (;;) {
		if (p->stopping)
			return NULL;
		int64_t now = nvr_mono_us(), wake = INT64_MAX;
		for (struct avs_source *s = p->q_head; s; s = s->q_next) {
			if (s->not_before_us <= now) {
				avs_dequeue(p, s);
				return s;
			}
			if (s->not_before_us < wake)
				wake = s->not_before_us;
		}
		avs_wait_until(p, wake);
	}
}

/* Uniform in [lo, hi] from the pool's xorshift generator. */
static uint64_t avs_random(struct avsource_pool *p, uint64_t lo, uint64_t hi)
{
	uint64_t x = p->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	p->rng = x;
	return hi <= lo ? lo : lo + x % (hi - lo + 1);
}

static uint64_t avs_backoff_ms(struct avsource_pool *p, uint32_t n)
{
	uint64_t lo = p->cfg.backoff_min_ms, hi = p->cfg.backoff_max_ms;
	uint64_t cap = lo << (n < 20 ? n : 20);
	return avs_random(p, lo, cap < hi ? cap : hi);
}

static void avs_rate_add(struct avs_source *s, int64_t mono_us, uint32_t bytes)
{
	int64_t sec = mono_us / 1000000;
	struct avs_rate_bucket *b = &s->rate[sec % AVS_RATE_SECS];
	if (b->sec != sec)
		*b = (struct avs_rate_bucket){ .sec = sec };
	b->frames++;
	b->bytes += bytes;
}

/* Bitrate and frame rate over the window, since streaming began at most. */
static void avs_rates(const struct avs_source *s, int64_t now,
                      double *kbps, double *fps)
{
	*kbps = *fps = 0;
	if (s->state != INGEST_STREAMING)
		return;
	int64_t sec = now / 1000000;
	int64_t from = (sec - (AVS_RATE_SECS - 1)) * 1000000;
	if (from < s->stream_start_us)
		from = s->stream_start_us;
	uint64_t frames = 0, bytes = 0;
	for (int i = 0; i < AVS_RATE_SECS; i++) {
		const struct avs_rate_bucket *b = &s->rate[i];
		if (b->sec > sec - AVS_RATE_SECS && b->sec <= sec) {
			frames += b->frames;
			bytes += b->bytes;
		}
	}
	double span = (double)(now - from) / 1e6;
	if (span < 0.001)
		return;
	*fps = (double)frames / span;
	*kbps = (double)bytes * 8 / 1000 / span;
}

static void avs_set_state(struct avs_source *s, enum ingest_state st)
{
	pthread_mutex_lock(&s->pool->lock);
	s->state = st;
	if (st == INGEST_STREAMING) {
		s->streaming_since_us = nvr_now_us();
		s->stream_start_us = nvr_mono_us();
		memset(s->rate, 0, sizeof s->rate);
	}
	pthread_mutex_unlock(&s->pool->lock);
}

/* ---- one session ------------------------------------------------------ */

static int avs_interrupt(void *opaque)
{
	struct avs_source *s = opaque;
	return atomic_load(&s->stop) || nvr_mono_us() > atomic_load(&s->deadline_us);
}

static void avs_arm_timeout(struct avs_session *ss)
{
	int64_t t = nvr_mono_us() + (int64_t)ss->s->pool->cfg.timeout_ms * 1000;
	atomic_store(&ss->s->deadline_us, t);
}

/* Sets ss->err (cut at its size: the reason comes before the URL). */
static void avs_errf(struct avs_session *ss, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void avs_errf(struct avs_session *ss, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ss->err, sizeof ss->err, fmt, ap);
	va_end(ap);
}

/* Describes a libavformat error in ss->err; `what` names the step. */
static void avs_fail(struct avs_session *ss, const char *what, int averr)
{
	struct avs_source *s = ss->s;
	if (averr == AVERROR_EOF) {
		ss->looped = ss->paced;
		avs_errf(ss, "end of input: %s", s->url_log);
	} else if (averr == AVERROR_EXIT && !atomic_load(&s->stop)) {
		avs_errf(ss, "%s: no data for %u ms: %s", what, s->pool->cfg.timeout_ms,
		         s->url_log);
	} else {
		char msg[AV_ERROR_MAX_STRING_SIZE];
		av_strerror(averr, msg, sizeof msg);
		avs_errf(ss, "%s: %s: %s", what, msg, s->url_log);
	}
}

static bool avs_is_annexb(const uint8_t *p, int n)
{
	return n >= 3 && p[0] == 0 && p[1] == 0 &&
	       (p[2] == 1 || (n >= 4 && p[2] == 0 && p[3] == 1));
}

/* Live sources are read as they arrive; everything else is paced. */
static bool avs_is_live(const AVFormatContext *ic)
{
	static const char *const formats[] = { "rtp", "rtsp", "sdp" };
	static const char *const schemes[] = {
		"rtp:", "udp:", "srt:", "tcp:", "rtmp:", "rtmps:", "rtmpt:",
		"rtmpe:", "rtmpte:", "rtmpts:",
	};
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
		if (!strcmp(ic->iformat->name, formats[i]))
			return true;
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
		if (ic->url && !strncmp(ic->url, schemes[i], strlen(schemes[i])))
			return true;
	bool seekable = ic->pb && (ic->pb->seekable & AVIO_SEEKABLE_NORMAL);
	return !seekable && ic->duration == AV_NOPTS_VALUE;
}

static int avs_open_input(struct avs_session *ss)
{
	struct avs_source *s = ss->s;
	char url[AVS_URL_MAX];
	int err = avs_open_url(&s->rec, url, sizeof url);
	if (err) {
		avs_errf(ss, "URL too long: %s", s->url_log);
		goto done;
	}
	ss->ic = avformat_alloc_context();
	if (!ss->ic) {
		err = AVERROR(ENOMEM);
		avs_fail(ss, "open", err);
		goto done;
	}
	ss->ic->interrupt_callback = (AVIOInterruptCB){ avs_interrupt, s };
	avs_arm_timeout(ss);
	err = avformat_open_input(&ss->ic, url, NULL, NULL);
	if (err < 0)
		avs_fail(ss, "open", err);   /* ic was freed and set to NULL */
done:
	explicit_bzero(url, sizeof url);
	return err;
}

static int avs_setup_bsf(struct avs_session *ss, const AVStream *st)
{
	const AVCodecParameters *par = st->codecpar;
	if (par->extradata_size <= 0 || avs_is_annexb(par->extradata, par->extradata_size))
		return 0;
	const char *name = par->codec_id == AV_CODEC_ID_H264 ? "h264_mp4toannexb"
	                                                      : "hevc_mp4toannexb";
	const AVBitStreamFilter *f = av_bsf_get_by_name(name);
	int err = f ? av_bsf_alloc(f, &ss->bsf) : AVERROR_BSF_NOT_FOUND;
	if (err >= 0)
		err = avcodec_parameters_copy(ss->bsf->par_in, par);
	if (err >= 0) {
		ss->bsf->time_base_in = st->time_base;
		err = av_bsf_init(ss->bsf);
	}
	if (err < 0)
		avs_fail(ss, name, err);
	return err;
}

/* Opens the source and prepares its video stream; fills ss->err on error. */
static int avs_open(struct avs_session *ss)
{
	int err = avs_open_input(ss);
	if (err < 0)
		return err;
	avs_arm_timeout(ss);
	err = avformat_find_stream_info(ss->ic, NULL);
	if (err < 0) {
		avs_fail(ss, "probe", err);
		return err;
	}
	err = av_find_best_stream(ss->ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (err < 0) {
		avs_errf(ss, "no video stream: %s", ss->s->url_log);
		return err;
	}
	ss->stream = err;
	AVStream *st = ss->ic->streams[ss->stream];
	enum AVCodecID id = st->codecpar->codec_id;
	if (id != AV_CODEC_ID_H264 && id != AV_CODEC_ID_HEVC) {
		avs_errf(ss, "unsupported codec %s: %s", avcodec_get_name(id), ss->s->url_log);
		return AVERROR_PATCHWELCOME;
	}
	for (unsigned i = 0; i < ss->ic->nb_streams; i++)
		if ((int)i != ss->stream)
			ss->ic->streams[i]->discard = AVDISCARD_ALL;
	ss->codec = id == AV_CODEC_ID_H264 ? STG_CODEC_H264 : STG_CODEC_H265;
	ss->tb = st->time_base;
	AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
	ss->frame_us = fr.num > 0 && fr.den > 0
	               ? av_rescale(1000000, fr.den, fr.num) : AVS_DEFAULT_FRAME_US;
	if (ss->frame_us <= 0)
		ss->frame_us = AVS_DEFAULT_FRAME_US;
	ss->paced = !avs_is_live(ss->ic);
	err = avs_setup_bsf(ss, st);
	if (err < 0)
		return err;
	ss->pkt = av_packet_alloc();
	if (!ss->pkt) {
		avs_fail(ss, "open", AVERROR(ENOMEM));
		return AVERROR(ENOMEM);
	}
	ss->first_ts = AV_NOPTS_VALUE;
	ss->base_mono_us = nvr_mono_us();
	ss->base_wall_us = nvr_now_us();
	nvr_log("info", "avsource", "event=source_open camera=%u url=\"%s\" format=%s "
	        "codec=%s paced=%d annexb_filter=%s", ss->s->rec.id, ss->s->url_log,
	        ss->ic->iformat->name, avcodec_get_name(id), ss->paced,
	        ss->bsf ? ss->bsf->filter->name : "none");
	return 0;
}

/* The packet's offset from the session's first packet, in microseconds. */
static int64_t avs_offset_us(struct avs_session *ss, const AVPacket *pkt)
{
	int64_t ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
	int64_t dur = pkt->duration > 0
	              ? av_rescale_q(pkt->duration, ss->tb, AV_TIME_BASE_Q) : ss->frame_us;
	int64_t next = ss->started ? ss->last_off_us + dur : 0;
	if (ts == AV_NOPTS_VALUE)
		return next;
	if (ss->first_ts == AV_NOPTS_VALUE) {
		ss->first_ts = ts;
		ss->ts_origin_us = next;
	}
	return ss->ts_origin_us + av_rescale_q(ts - ss->first_ts, ss->tb, AV_TIME_BASE_Q);
}

/* Sleeps until monotonic time `until_us`; false when told to stop. */
static bool avs_sleep_until(struct avs_source *s, int64_t until_us)
{
	struct avsource_pool *p = s->pool;
	pthread_mutex_lock(&p->lock);
	while (!atomic_load(&s->stop) && nvr_mono_us() < until_us)
		avs_wait_until(p, until_us);
	pthread_mutex_unlock(&p->lock);
	return !atomic_load(&s->stop);
}

/* Gives the packet its wall-clock time (see the top of the file), pacing
 * first when the source is not live. False when told to stop. */
static bool avs_frame_time(struct avs_session *ss, const AVPacket *pkt, int64_t *out)
{
	struct avs_source *s = ss->s;
	int64_t off = avs_offset_us(ss, pkt);
	int64_t skew = (int64_t)s->pool->cfg.max_clock_skew_ms * 1000;
	int64_t now = nvr_mono_us();
	int64_t slot = ss->base_mono_us + off;
	if (slot > now + skew || slot < now - skew) {
		nvr_log("debug", "avsource", "event=time_rebase camera=%u jump_us=%lld",
		        s->rec.id, (long long)(slot - now));
		ss->base_mono_us = now - off;
		ss->base_wall_us = nvr_now_us() - off;
		slot = now;
	}
	ss->last_off_us = off;
	ss->started = true;
	if (ss->paced && slot > now && !avs_sleep_until(s, slot))
		return false;
	int64_t t = ss->base_wall_us + off;
	if (t <= s->last_time_us)
		t = s->last_time_us + 1;
	*out = t;
	return true;
}

/* Hands one Annex B access unit to storage. False when told to stop. */
static bool avs_put(struct avs_session *ss, const AVPacket *pkt)
{
	struct avs_source *s = ss->s;
	int64_t t;
	if (!avs_frame_time(ss, pkt, &t))
		return false;
	struct stg_frame f = {
		.time_us = t, .data = pkt->data, .size = (uint32_t)pkt->size,
		.key = (pkt->flags & AV_PKT_FLAG_KEY) != 0, .codec = ss->codec,
	};
	int err = pkt->size > 0 ? stg_put_frame(s->cam, &f) : -EINVAL;
	if (err && !ss->warned_refusal) {
		ss->warned_refusal = true;
		nvr_log_limited(&s->log_limit, "warn", "avsource", "event=frame_refused camera=%u"
		                " size=%d error=\"%s\"", s->rec.id, pkt->size, stg_strerror(err));
	}
	if (!err)
		s->last_time_us = t;
	pthread_mutex_lock(&s->pool->lock);
	if (err) {
		s->refused++;
	} else {
		s->frames++;
		s->bytes += (uint64_t)pkt->size;
		ss->frames++;
		avs_rate_add(s, nvr_mono_us(), (uint32_t)pkt->size);
	}
	pthread_mutex_unlock(&s->pool->lock);
	return true;
}

/* Passes a packet (NULL: end of stream) through the Annex B filter, if
 * any, and puts what comes out. Returns 0, 1 when told to stop, or a
 * negative AVERROR with ss->err set. */
static int avs_feed(struct avs_session *ss, AVPacket *pkt)
{
	if (!ss->bsf) {
		if (!pkt)
			return 0;
		bool go = avs_put(ss, pkt);
		av_packet_unref(pkt);
		return go ? 0 : 1;
	}
	int err = av_bsf_send_packet(ss->bsf, pkt);
	if (pkt)
		av_packet_unref(pkt);
	if (err < 0) {
		avs_fail(ss, ss->bsf->filter->name, err);
		return err;
	}
	AVPacket *out = ss->pkt;
	while ((err = av_bsf_receive_packet(ss->bsf, out)) >= 0) {
		bool go = avs_put(ss, out);
		av_packet_unref(out);
		if (!go)
			return 1;
	}
	if (err == AVERROR(EAGAIN) || err == AVERROR_EOF)
		return 0;
	avs_fail(ss, ss->bsf->filter->name, err);
	return err;
}

/* Reads until the end of input, an error or a stop. */
static void avs_read_loop(struct avs_session *ss)
{
	AVPacket *in = av_packet_alloc();
	if (!in) {
		avs_fail(ss, "read", AVERROR(ENOMEM));
		return;
	}
	for (;;) {
		avs_arm_timeout(ss);
		int err = av_read_frame(ss->ic, in);
		if (err < 0) {
			if (err == AVERROR_EOF && avs_feed(ss, NULL) != 0)
				break;
			avs_fail(ss, "read", err);
			break;
		}
		if (in->stream_index != ss->stream) {
			av_packet_unref(in);
			continue;
		}
		if (avs_feed(ss, in) != 0)
			break;
	}
	av_packet_free(&in);
}

static void avs_session_close(struct avs_session *ss)
{
	av_bsf_free(&ss->bsf);
	av_packet_free(&ss->pkt);
	avformat_close_input(&ss->ic);
}

/* Runs one session of a source held by this worker; the outcome (frames
 * recorded, error text) is left in *ss. */
static void avs_run(struct avs_source *s, struct avs_session *ss)
{
	*ss = (struct avs_session){ .s = s, .stream = -1 };
	if (avs_open(ss) == 0) {
		avs_set_state(s, INGEST_STREAMING);
		avs_read_loop(ss);
	}
	avs_session_close(ss);
	int err = stg_camera_flush(s->cam);
	if (err)
		nvr_log("warn", "avsource", "event=flush_failed camera=%u error=\"%s\"",
		        s->rec.id, stg_strerror(err));
}

/* After a session (pool->lock held): back into the queue after a backoff,
 * or let go when removed or the pool is stopping. */
static void avs_release(struct avsource_pool *p, struct avs_source *s,
                        const struct avs_session *ss)
{
	s->busy = false;
	s->streaming_since_us = 0;
	if (s->removed || p->stopping) {
		s->state = INGEST_IDLE;
		pthread_cond_broadcast(&p->cond);
		return;
	}
	s->failures = ss->frames ? 1 : s->failures + 1;
	uint64_t delay = avs_backoff_ms(p, s->failures);
	snprintf(s->last_error, sizeof s->last_error, "%s", ss->err);
	s->state = INGEST_BACKOFF;
	if (!ss->looped)
		ingest_failures_note(&s->fails, nvr_now_us());
	nvr_log_limited(&s->log_limit, "info", "avsource", "event=source_down camera=%u frames=%llu "
	                "error=\"%s\" retry_ms=%llu", s->rec.id, (unsigned long long)ss->frames,
	                ss->err, (unsigned long long)delay);
	avs_enqueue(p, s, nvr_mono_us() + (int64_t)delay * 1000);
}

static void *avs_worker(void *arg)
{
	struct avsource_pool *p = arg;
	struct avs_session ss;
	pthread_mutex_lock(&p->lock);
	struct avs_source *s;
	while ((s = avs_take(p))) {
		s->busy = true;
		s->state = INGEST_CONNECTING;
		if (s->sessions++)
			s->reconnects++;
		pthread_mutex_unlock(&p->lock);
		avs_run(s, &ss);
		pthread_mutex_lock(&p->lock);
		avs_release(p, s, &ss);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- public API --------------------------------------------------------- */

static void avs_source_free(struct avs_source *s)
{
	explicit_bzero(&s->rec, sizeof s->rec);
	free(s);
}

static void avs_free_pool(struct avsource_pool *p)
{
	for (struct avs_source *s = p->all, *n; s; s = n) {
		n = s->next;
		int err = stg_camera_flush(s->cam);
		if (err)
			nvr_log("warn", "avsource", "event=flush_failed camera=%u error=\"%s\"",
			        s->rec.id, stg_strerror(err));
		avs_source_free(s);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

static void avs_stop_threads(struct avsource_pool *p, uint32_t started)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	for (struct avs_source *s = p->all; s; s = s->next)
		atomic_store(&s->stop, true);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(p->threads[i], NULL);
}

int avsource_pool_start(const struct ingest_config *cfg, struct avsource_pool **out)
{
	static pthread_once_t log_once = PTHREAD_ONCE_INIT;
	if (!cfg || !cfg->stg)
		return -EINVAL;
	pthread_once(&log_once, avs_av_log_install);
	struct avsource_pool *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	ingest_config_defaults(&p->cfg);
	p->rng = (uint64_t)nvr_now_us() * 0x9E3779B97F4A7C15ull | 1;
	p->threads = calloc(p->cfg.av_threads, sizeof *p->threads);
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->lock, NULL);
	int err = 0;
	uint32_t i;
	for (i = 0; i < p->cfg.av_threads; i++) {
		err = -pthread_create(&p->threads[i], NULL, avs_worker, p);
		if (err)
			goto fail;
	}
	p->nthreads = i;
	nvr_log("info", "avsource", "event=pool_started threads=%u", p->nthreads);
	*out = p;
	return 0;
fail:
	nvr_log("error", "avsource", "event=pool_start_failed error=\"%s\"", strerror(-err));
	avs_stop_threads(p, i);
	avs_free_pool(p);
	return err;
}

int avsource_add(struct avsource_pool *p, const struct camera_record *c)
{
	if (!c->enabled || !c->main_url[0])
		return -EINVAL;
	struct avs_source *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->pool = p;
	s->rec = *c;
	avs_redact(c->main_url, s->url_log, sizeof s->url_log);
	int err = stg_camera_get(p->cfg.stg, c->id, &s->cam);
	if (err)
		goto fail;
	pthread_mutex_lock(&p->lock);
	struct avs_source *old;
	/* a source of this camera being removed still owns its frames */
	while ((old = avs_find(p, c->id, true)) && old->removed && !p->stopping)
		pthread_cond_wait(&p->cond, &p->lock);
	err = p->stopping ? -ECANCELED : old ? -EEXIST : 0;
	if (err) {
		pthread_mutex_unlock(&p->lock);
		goto fail;
	}
	s->next = p->all;
	p->all = s;
	s->state = INGEST_WAITING_WORKER;
	avs_enqueue(p, s, 0);
	pthread_mutex_unlock(&p->lock);
	nvr_log("info", "avsource", "event=source_added camera=%u url=\"%s\"",
	        c->id, s->url_log);
	return 0;
fail:
	avs_source_free(s);
	return err;
}

int avsource_remove(struct avsource_pool *p, uint32_t id)
{
	pthread_mutex_lock(&p->lock);
	struct avs_source *s = avs_find(p, id, false);
	if (!s) {
		pthread_mutex_unlock(&p->lock);
		return -ENOENT;
	}
	s->removed = true;
	atomic_store(&s->stop, true);
	if (s->queued)
		avs_dequeue(p, s);
	pthread_cond_broadcast(&p->cond);
	while (s->busy)
		pthread_cond_wait(&p->cond, &p->lock);
	avs_unlink(p, s);
	pthread_cond_broadcast(&p->cond);   /* an add of the same camera may wait */
	pthread_mutex_unlock(&p->lock);
	int err = stg_camera_flush(s->cam);
	if (err)
		nvr_log("warn", "avsource", "event=flush_failed camera=%u error=\"%s\"",
		        id, stg_strerror(err));
	nvr_log("info", "avsource", "event=source_removed camera=%u", id);
	avs_source_free(s);
	return 0;
}

/* Fills *out from a source (pool->lock held). */
static void avs_fill_status(struct avsource_pool *p, const struct avs_source *s,
                            int64_t now, struct ingest_camera_status *out)
{
	memset(out, 0, sizeof *out);
	out->id = s->rec.id;
	out->state = s->state;
	if (s->queued && s->state == INGEST_BACKOFF && now >= s->not_before_us)
		out->state = INGEST_WAITING_WORKER;
	snprintf(out->last_error, sizeof out->last_error, "%s", s->last_error);
	avs_rates(s, now, &out->bitrate_kbps, &out->fps);
	out->frames = s->frames;
	out->bytes = s->bytes;
	out->frames_dropped = s->refused;
	struct stg_camera_stats st;
	if (stg_camera_stats(p->cfg.stg, s->rec.id, &st) == 0)
		out->frames_dropped += st.dropped_frames;
	out->reconnects = s->reconnects;
	out->streaming_since_us = s->state == INGEST_STREAMING ? s->streaming_since_us : 0;
	out->failures_24h = ingest_failures_within(&s->fails, nvr_now_us(), INGEST_REPEAT_WINDOW_US,
	                                           &out->last_failure_us);
}

int avsource_status(struct avsource_pool *p, uint32_t id,
                    struct ingest_camera_status *out)
{
	pthread_mutex_lock(&p->lock);
	const struct avs_source *s = avs_find(p, id, false);
	if (s)
		avs_fill_status(p, s, nvr_mono_us(), out);
	pthread_mutex_unlock(&p->lock);
	return s ? 0 : -ENOENT;
}

void avsource_totals(struct avsource_pool *p, struct ingest_totals *out)
{
	memset(out, 0, sizeof *out);
	int64_t now = nvr_mono_us();
	pthread_mutex_lock(&p->lock);
	for (const struct avs_source *s = p->all; s; s = s->next) {
		if (s->removed)
			continue;
		struct ingest_camera_status st;
		avs_fill_status(p, s, now, &st);
		out->cameras++;
		out->streaming += st.state == INGEST_STREAMING;
		out->backoff += st.state == INGEST_BACKOFF;
		out->repeat_failures += ingest_is_repeat_failure(&st);
		out->frames += st.frames;
		out->bytes += st.bytes;
		out->frames_lost += st.frames_lost;
		out->frames_dropped += st.frames_dropped;
		out->reconnects += st.reconnects;
	}
	pthread_mutex_unlock(&p->lock);
}

void avsource_pool_stop(struct avsource_pool *p)
{
	if (!p)
		return;
	avs_stop_threads(p, p->nthreads);
	nvr_log("info", "avsource", "event=pool_stopped threads=%u", p->nthreads);
	avs_free_pool(p);
}
