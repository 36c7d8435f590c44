/*
 * timeline.js - timeline bars: recorded ranges drawn as green spans over a
 * time window (gaps show as the bar's background), the axis labels under
 * a bar, and the player's scrub bar with its cursor. Positions are shares
 * of the window, so the bars stretch with the layout.
 */
import { el, fmtClock, fmtTime, ticks } from './util.js';

export function pct(t, from, to) { return `${(100 * (t - from) / (to - from)).toFixed(3)}%`; }

/* Fills bar with the ranges of [from, to); the bar's data attributes hold
 * the window so that a click can be turned back into a time. */
export function drawRanges(bar, ranges, from, to) {
  bar.replaceChildren();
  bar.dataset.fromMs = from;
  bar.dataset.toMs = to;
  for (const r of ranges) {
    const s = Math.max(r.start_ms, from), e = Math.min(r.end_ms, to);
    if (e <= s) continue;
    const width = Math.max(100 * (e - s) / (to - from), 0.2).toFixed(3);
    bar.append(el('span', { class: 'rec', style: `left:${pct(s, from, to)};width:${width}%`,
                            title: `${fmtTime(s)} - ${fmtTime(e)}` }));
  }
}

/* The wall time under a pointer event on a bar drawn by drawRanges. */
export function timeAt(bar, e) {
  const r = bar.getBoundingClientRect();
  const f = Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1);
  const from = Number(bar.dataset.fromMs), to = Number(bar.dataset.toMs);
  return Math.round(from + f * (to - from));
}

export function drawAxis(box, from, to) {
  box.replaceChildren();
  const showSeconds = to - from < 10 * 60 * 1000;
  box.append(el('span', { text: fmtClock(from, showSeconds) }));
  box.append(el('span', { text: fmtClock((from + to) / 2, showSeconds) }));
  box.append(el('span', { text: fmtClock(to, showSeconds) }));
}

export function drawTicks(box, from, to) {
  box.replaceChildren();
  const showSeconds = to - from < 30 * 60 * 1000;
  for (const t of ticks(from, to, 6))
    box.append(el('span', { style: `left:${pct(t, from, to)}`, text: fmtClock(t, showSeconds) }));
}

export function drawCursor(bar, t, from, to) {
  let c = bar.querySelector('.cursor');
  if (!c) { c = el('span', { class: 'cursor' }); bar.append(c); }
  c.style.left = pct(Math.min(Math.max(t, from), to), from, to);
}
