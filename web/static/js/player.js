/*
 * player.js - plays a camera's recorded footage in a <video> element and
 * keeps track of the wall-clock time of what is shown.
 *
 * The footage comes from GET /cameras/{id}/video.mp4?from&to, a fragmented
 * MP4, fetched with the session's token (a <video src> could not send it)
 * and fed to Media Source Extensions box by box while it arrives, so
 * playback starts after the first fragment. A clip is at most MAX_CLIP_MS
 * long; seeking outside it loads the clip around the new time.
 *
 * Wall-clock time: the MP4's time starts at its first frame (the key frame
 * at or before `from`) and a gap in the recording is a jump in its time,
 * so wall = f0 + (mediaTime - firstMediaTime). f0 is exact when `from`
 * lies in a gap or at the start of a recorded range (the first frame is
 * then the range's start); otherwise it is first taken as `from` and,
 * once the whole clip is in, set from the clip's end: the last frame ends
 * at `to` (or at the end of the last recorded range before it), so f0 is
 * that end minus the clip's media duration. The player jumps over gaps
 * between buffered ranges (MSE would stall there).
 */
import { apiFetch, api, qs } from './api.js';
import { codecString, splitBoxes } from './mp4.js';

export const MAX_CLIP_MS = 10 * 60 * 1000;
const LEAD_MS = 60 * 1000;          /* a clip around a seek starts this much earlier */
const RANGE_MARGIN_MS = 60 * 1000;  /* ranges read before the clip, to find its first key frame */

function appendOnce(sb, data) {
  return new Promise((resolve, reject) => {
    const ok = () => { sb.removeEventListener('error', bad); resolve(); };
    const bad = () => { sb.removeEventListener('updateend', ok); reject(new Error('the browser refused the video data')); };
    sb.addEventListener('updateend', ok, { once: true });
    sb.addEventListener('error', bad, { once: true });
    sb.appendBuffer(data);
  });
}

function concat(a, b) {
  if (!a.length) return b;
  const c = new Uint8Array(a.length + b.length);
  c.set(a);
  c.set(b, a.length);
  return c;
}

export class Player {
  constructor(video, { onState, onTime } = {}) {
    this.video = video;
    this.onState = onState || (() => {});
    this.onTime = onTime || (() => {});
    this.clip = null;
    this.ctl = null;
    video.addEventListener('timeupdate', () => this.tick());
    video.addEventListener('seeking', () => this.tick());
    video.addEventListener('waiting', () => this.skipGap());
    const loop = () => { if (!this.video.paused) this.tick(); requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
  }

  /* Wall-clock ms of a media time, and back. */
  wallAt(t) { return this.clip ? this.clip.f0 + (t - this.clip.b0) * 1000 : NaN; }
  mediaAt(wall) { return this.clip ? this.clip.b0 + (wall - this.clip.f0) / 1000 : NaN; }
  now() { return this.wallAt(this.video.currentTime); }

  tick() {
    if (!this.clip || this.clip.b0 === null) return;
    this.skipGap();
    this.onTime(this.now(), this.clip);
  }

  /* At the end of a buffered range with another after it: jump there. */
  skipGap() {
    const b = this.video.buffered, t = this.video.currentTime;
    for (let i = 0; i + 1 < b.length; i++)
      if (t >= b.end(i) - 0.25 && t < b.start(i + 1)) { this.video.currentTime = b.start(i + 1) + 0.001; return; }
  }

  /* Plays camera `cam` (an object with id and name) around wall time
   * seekMs, inside the window [winFrom, winTo). */
  async play(cam, winFrom, winTo, seekMs = winFrom) {
    const from = winTo - winFrom <= MAX_CLIP_MS ? winFrom : Math.max(winFrom, Math.min(seekMs - LEAD_MS, winTo - MAX_CLIP_MS));
    const to = Math.min(winTo, from + MAX_CLIP_MS);
    this.stop();
    const ctl = new AbortController();
    this.ctl = ctl;
    const ranges = await this.ranges(cam.id, from - RANGE_MARGIN_MS, to);
    const clip = { cam, winFrom, winTo, from, to, ranges: ranges.filter((r) => r.end_ms > from && r.start_ms < to),
                   f0: this.firstFrameGuess(ranges, from), exact: false, b0: null, complete: false, seekMs };
    clip.exact = clip.f0 !== from || ranges.some((r) => r.start_ms === from);
    this.clip = clip;
    this.onState('loading', clip);
    try {
      await this.load(clip, ctl.signal);
    } catch (e) {
      if (ctl.signal.aborted) return;
      this.onState('error', clip, e);
      throw e;
    }
  }

  /* Seeks to a wall-clock time: inside the clip directly, else a new clip. */
  async seekWall(ms) {
    const c = this.clip;
    if (!c) return;
    ms = Math.max(c.winFrom, Math.min(ms, c.winTo - 1));
    const r = c.ranges.find((x) => x.end_ms > ms);
    if (r && ms < r.start_ms) ms = r.start_ms;          /* in a gap: the footage after it */
    if (ms >= c.from && ms < c.to && c.b0 !== null) {
      this.video.currentTime = Math.max(this.mediaAt(ms), c.b0);
      this.onTime(this.now(), c);
      return;
    }
    await this.play(c.cam, c.winFrom, c.winTo, ms);
  }

  stop() {
    this.ctl?.abort();
    this.ctl = null;
    this.video.pause();
    this.video.removeAttribute('src');
    this.video.load();
  }

  async ranges(id, from, to) {
    const j = await api(`/api/v1/cameras/${id}/ranges?${qs({ from: Math.round(from), to: Math.round(to) })}`);
    return j.ranges || [];
  }

  /* The first frame's wall time: exact when `from` is in a gap or at a
   * range's start, else `from` until the clip's end tells. */
  firstFrameGuess(ranges, from) {
    const inside = ranges.find((r) => r.start_ms <= from && r.end_ms > from);
    if (inside) return from;
    const next = ranges.find((r) => r.start_ms > from);
    return next ? next.start_ms : from;
  }

  async load(clip, signal) {
    const ms = new MediaSource();
    this.video.src = URL.createObjectURL(ms);
    await new Promise((r) => ms.addEventListener('sourceopen', r, { once: true }));
    const url = `/api/v1/cameras/${clip.cam.id}/video.mp4?${qs({ from: clip.from, to: clip.to })}`;
    const res = await apiFetch(url, { signal });
    const reader = res.body.getReader();
    let pending = new Uint8Array(0), init = [], sb = null, total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      pending = concat(pending, value);
      const { boxes, used } = splitBoxes(pending);
      if (!used) continue;
      const chunk = pending.subarray(0, used);
      pending = pending.slice(used);
      if (!sb) {
        init.push(chunk);
        const moov = boxes.find((b) => b.type === 'moov');
        if (!moov) continue;
        sb = this.sourceBuffer(ms, chunk.subarray(moov.start, moov.end));
        for (const c of init) await appendOnce(sb, c);
        init = null;
      } else {
        await appendOnce(sb, chunk);
      }
      if (signal.aborted) return;
      this.started(clip, sb);
      this.onState('loading', clip, null, total);
    }
    if (!sb) throw new Error('the answer held no video');
    if (ms.readyState === 'open') ms.endOfStream();
    clip.complete = true;
    await this.settle(clip, sb);
    this.onState('loaded', clip, null, total);
  }

  sourceBuffer(ms, moov) {
    const codec = codecString(moov);
    const type = `video/mp4; codecs="${codec}"`;
    if (!codec || !MediaSource.isTypeSupported(type))
      throw new Error(`this browser cannot play ${codec && codec.startsWith('hvc1') ? 'H.265' : 'this'} video (${codec || 'unknown codec'}); export the footage to view it in another player`);
    return ms.addSourceBuffer(type);
  }

  /* Once there is media: its first time, the seek, and play. */
  started(clip, sb) {
    if (clip.b0 !== null || !sb.buffered.length) return;
    clip.b0 = sb.buffered.start(0);
    const target = Math.max(clip.seekMs, clip.from);
    this.video.currentTime = Math.max(this.mediaAt(target), clip.b0);
    this.video.play().catch(() => {});
    this.onState('playing', clip);
  }

  /* The whole clip is in: fix f0 from its end (see the top of the file). */
  async settle(clip, sb) {
    if (clip.exact || !sb.buffered.length) return;
    const after = await this.ranges(clip.cam.id, clip.from - RANGE_MARGIN_MS, clip.to);
    const ends = after.filter((r) => r.start_ms < clip.to).map((r) => Math.min(r.end_ms, clip.to));
    if (!ends.length) return;
    const lastEnd = Math.max(...ends);
    const dur = sb.buffered.end(sb.buffered.length - 1) - clip.b0;
    const f0 = lastEnd - dur * 1000;
    if (f0 <= clip.from + 100 && f0 > clip.from - RANGE_MARGIN_MS) {
      const wall = this.now();
      clip.f0 = f0;
      clip.exact = true;
      if (Number.isFinite(wall)) this.video.currentTime = Math.max(this.mediaAt(wall), clip.b0);
      this.onTime(this.now(), clip);
    }
  }
}
