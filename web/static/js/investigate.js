/*
 * investigate.js - the camera view: the map, the time window, the results
 * with a timeline bar per camera, the player with its wall-clock scrub
 * bar, and (investigators, admins) evidence export and legal holds.
 *
 * Investigators search with GET /search (cameras in the area with footage
 * in the window, ranges included). Viewers and operators may not search:
 * for them the area lists its cameras (GET /cameras) and each one's
 * recorded ranges (GET /cameras/{id}/ranges). Clicking a marker adds that
 * camera to the results.
 */
import { api, ApiError, download, qs } from './api.js';
import { CameraMap } from './map.js';
import { Player } from './player.js';
import { drawAxis, drawCursor, drawRanges, drawTicks, timeAt } from './timeline.js';
import { el, fmtBytes, fmtDuration, fmtTime, fromLocalInput, toLocalInput } from './util.js';

const $ = (id) => document.getElementById(id);
const MAX_EXPORT_CAMERAS = 16;
const MAX_LISTED = 100;           /* cameras listed without search (ranges asked one by one) */

export class InvestigateView {
  constructor(sess) {
    this.sess = sess;
    this.canSearch = ['investigator', 'admin'].includes(sess.role);
    this.results = [];
    this.selected = new Set();
    this.area = null;
    this.map = new CameraMap($('map'), {
      onArea: (q) => this.setArea(q),
      onCamera: (c) => this.addCamera(c),
    });
    this.player = new Player($('video'), {
      onState: (s, clip, err, bytes) => this.playerState(s, clip, err, bytes),
      onTime: (t, clip) => this.playerTime(t, clip),
    });
    this.bind();
    this.setLast(15 * 60);
  }

  bind() {
    document.querySelectorAll('[data-tool]').forEach((b) => b.addEventListener('click', () => {
      document.querySelectorAll('[data-tool]').forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
      this.map.setTool(b.dataset.tool);
    }));
    $('area-view').addEventListener('click', () => this.setArea(this.map.areaFromView()));
    $('area-clear').addEventListener('click', () => { this.map.clearArea(); this.setArea(null); });
    $('map-fit').addEventListener('click', () => this.map.fit());
    document.querySelectorAll('[data-last]').forEach((b) =>
      b.addEventListener('click', () => this.setLast(Number(b.dataset.last))));
    $('search-form').addEventListener('submit', (e) => { e.preventDefault(); this.search(); });
    if (!this.canSearch) $('search-title').textContent = 'Timelines of the area';
    const scrub = $('scrub');
    scrub.addEventListener('click', (e) => this.seek(timeAt(scrub, e)));
    scrub.addEventListener('keydown', (e) => this.scrubKey(e));
    $('export-go')?.addEventListener('click', () => this.exportFootage());
    $('hold-go')?.addEventListener('click', () => this.placeHold());
  }

  async load() {
    const cams = [];
    for (let offset = 0; ; offset += 1000) {
      const j = await api(`/api/v1/cameras?${qs({ limit: 1000, offset })}`);
      cams.push(...j.cameras);
      if (cams.length >= j.total || !j.cameras.length) break;
    }
    this.cams = cams;
    this.map.setCameras(cams);
  }

  /* Marker colours follow the cameras' status (called every few seconds). */
  async refreshStatus() {
    const byId = new Map();
    for (let offset = 0; ; offset += 1000) {
      const j = await api(`/api/v1/cameras?${qs({ limit: 1000, offset })}`);
      for (const c of j.cameras) byId.set(c.id, c.status);
      if (offset + 1000 >= j.total) break;
    }
    this.map.setStatuses(byId);
  }

  setLast(seconds) {
    const to = Date.now();
    $('win-from').value = toLocalInput(to - seconds * 1000);
    $('win-to').value = toLocalInput(to);
  }

  setArea(q) {
    this.area = q;
    $('area-label').textContent = q ? q.label : 'No area';
  }

  window() {
    const from = fromLocalInput($('win-from').value), to = fromLocalInput($('win-to').value);
    if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from)
      throw new Error('the window needs a start before its end');
    return { from, to };
  }

  status(text) { $('search-status').textContent = text; }

  async search() {
    let w;
    try { w = this.window(); } catch (e) { this.status(e.message); return; }
    if (!this.area) { this.status('Draw an area on the map first (or use the visible area).'); return; }
    const place = this.area.bbox ? { bbox: this.area.bbox } : { near: this.area.near, radius: this.area.radius };
    this.status('Searching...');
    try {
      const list = this.canSearch ? await this.searchFootage(place, w) : await this.listArea(place, w);
      this.showResults(list, w);
      this.status(`${list.length} cameras with footage in ${this.area.label}, ${fmtDuration(w.to - w.from)} window`);
    } catch (e) {
      this.status(`Search failed: ${e.message}`);
    }
  }

  async searchFootage(place, w) {
    const out = [];
    for (let offset = 0; ; offset += 1000) {
      const j = await api(`/api/v1/search?${qs({ ...place, from: w.from, to: w.to, limit: 1000, offset })}`);
      out.push(...j.cameras);
      if (out.length >= j.total || !j.cameras.length) break;
    }
    return out;
  }

  async listArea(place, w) {
    const j = await api(`/api/v1/cameras?${qs({ ...place, limit: MAX_LISTED })}`);
    const out = [];
    for (const c of j.cameras) {
      const r = await api(`/api/v1/cameras/${c.id}/ranges?${qs({ from: w.from, to: w.to })}`);
      if (r.ranges.length) out.push({ ...c, ranges: r.ranges });
    }
    return out;
  }

  /* A marker clicked: its timeline over the window, first in the list. */
  async addCamera(cam) {
    let w;
    try { w = this.window(); } catch (e) { this.status(e.message); return; }
    try {
      const r = await api(`/api/v1/cameras/${cam.id}/ranges?${qs({ from: w.from, to: w.to })}`);
      const rest = this.results.filter((c) => c.id !== cam.id);
      this.showResults([{ ...cam, ranges: r.ranges }, ...rest], w);
      this.status(`${cam.name}: ${r.ranges.length ? 'footage in the window' : 'no footage in the window'}`);
    } catch (e) {
      this.status(`Camera ${cam.id}: ${e.message}`);
    }
  }

  showResults(list, w) {
    this.results = list;
    this.win = w;
    this.selected = new Set([...this.selected].filter((id) => list.some((c) => c.id === id)));
    $('result-count').textContent = `(${list.length})`;
    drawAxis($('result-axis'), w.from, w.to);
    const ol = $('results');
    ol.replaceChildren(...list.map((c) => this.resultItem(c, w)));
    this.map.highlight(list.map((c) => c.id));
  }

  resultItem(c, w) {
    const covered = c.ranges.reduce((s, r) => s + Math.min(r.end_ms, w.to) - Math.max(r.start_ms, w.from), 0);
    const box = this.canSearch
      ? el('input', { type: 'checkbox', 'aria-label': `Select ${c.name}`, checked: this.selected.has(c.id),
                      onchange: (e) => { e.target.checked ? this.selected.add(c.id) : this.selected.delete(c.id); } })
      : el('span');
    const bar = el('div', { class: 'bar', title: 'Click to play from that time' });
    drawRanges(bar, c.ranges, w.from, w.to);
    bar.addEventListener('click', (e) => this.play(c, timeAt(bar, e)));
    return el('li', { 'data-camera': c.id },
      box,
      el('div', { class: 'name' },
        el('span', {}, `#${c.id} ${c.name}`, el('span', { class: 'muted', text: ` ${c.district || ''} ${fmtDuration(covered)}` })),
        el('button', { type: 'button', class: 'play', onclick: () => this.play(c, w.from), text: 'Play' })),
      el('span'), bar);
  }

  async play(cam, at) {
    $('player-title').textContent = `#${cam.id} ${cam.name}`;
    try {
      await this.player.play(cam, this.win.from, this.win.to, at);
    } catch { /* shown by playerState */ }
  }

  seek(ms) { this.player.seekWall(ms).catch(() => {}); }

  scrubKey(e) {
    const now = this.player.now();
    const step = { ArrowLeft: -5000, ArrowRight: 5000, PageDown: -60000, PageUp: 60000 }[e.key];
    const c = this.player.clip;
    if (!c) return;
    if (step !== undefined && Number.isFinite(now)) this.seek(now + step);
    else if (e.key === 'Home') this.seek(c.from);
    else if (e.key === 'End') this.seek(c.to - 2000);
    else if (e.key === ' ') (this.player.video.paused ? this.player.video.play() : this.player.video.pause());
    else return;
    e.preventDefault();
  }

  playerState(state, clip, err, bytes) {
    const s = $('player-status');
    if (state === 'error') s.textContent = err.message;
    else if (state === 'loading') s.textContent = `loading ${fmtBytes(bytes || 0)}`;
    else if (state === 'loaded') s.textContent = `clip ${fmtTime(clip.from)} - ${fmtTime(clip.to)} loaded (${fmtBytes(bytes)})`;
    else s.textContent = 'playing';
    const scrub = $('scrub');
    if (scrub.dataset.fromMs !== String(clip.from) || scrub.dataset.toMs !== String(clip.to) || state === 'loaded') {
      drawRanges(scrub, clip.ranges, clip.from, clip.to);
      drawTicks($('scrub-ticks'), clip.from, clip.to);
      scrub.setAttribute('aria-valuemin', clip.from);
      scrub.setAttribute('aria-valuemax', clip.to);
    }
  }

  playerTime(t, clip) {
    if (!Number.isFinite(t)) return;
    const out = $('wallclock');
    out.textContent = fmtTime(t);
    out.dataset.wallMs = String(Math.round(t));
    out.dataset.exact = String(clip.exact);
    const scrub = $('scrub');
    drawCursor(scrub, t, clip.from, clip.to);
    scrub.setAttribute('aria-valuenow', Math.round(t));
    scrub.setAttribute('aria-valuetext', fmtTime(t));
  }

  /* Cameras and window of an export or hold; null with a message if not ready. */
  evidenceRequest(msgEl) {
    const cams = this.results.filter((c) => this.selected.has(c.id)).map((c) => c.id);
    const kase = $('case-ref').value.trim(), reason = $('case-reason').value.trim();
    const fail = (m) => { msgEl.textContent = m; return null; };
    if (!this.win) return fail('Search first.');
    if (!cams.length) return fail('Tick the cameras in the results first.');
    if (!kase) return fail('A case reference is required.');
    return { cameras: cams, from: this.win.from, to: this.win.to, case: kase, reason };
  }

  async exportFootage() {
    const state = $('export-state');
    $('export-box').hidden = false;
    const req = this.evidenceRequest(state);
    if (!req) return;
    if (req.cameras.length > MAX_EXPORT_CAMERAS) { state.textContent = `At most ${MAX_EXPORT_CAMERAS} cameras per export.`; return; }
    $('export-files').replaceChildren();
    $('export-progress').value = 0;
    try {
      const job = await api('/api/v1/exports', { method: 'POST', json: req });
      state.textContent = `export ${job.id} queued`;
      this.pollExport(job.id);
    } catch (e) {
      state.textContent = `Export refused: ${e.message}`;
    }
  }

  async pollExport(id) {
    const state = $('export-state');
    for (;;) {
      let j;
      try { j = await api(`/api/v1/exports/${id}`); } catch (e) { state.textContent = e.message; return; }
      $('export-progress').value = j.status === 'done' ? 1 : (j.progress || 0);
      state.textContent = `export ${id}: ${j.status}${j.status === 'running' ? ` ${Math.round(100 * (j.progress || 0))}%` : ''}`;
      state.dataset.status = j.status;
      if (j.status === 'done') { this.exportFiles(j); return; }
      if (['failed', 'cancelled'].includes(j.status)) { state.textContent += j.error ? ` (${j.error})` : ''; return; }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  exportFiles(j) {
    const ul = $('export-files');
    const items = (j.files || []).map((f) => el('li', {},
      el('button', { type: 'button', class: 'dl-mp4', 'data-camera': f.camera,
                     onclick: () => download(`/api/v1/exports/${j.id}/download?camera=${f.camera}`, `export-${j.id}-camera-${f.camera}.mp4`) },
         `Download camera ${f.camera} (${fmtBytes(f.bytes)})`),
      el('div', { class: 'sha', text: `SHA-256 ${f.sha256}` })));
    items.push(el('li', {}, el('button', { type: 'button', class: 'dl-manifest',
      onclick: () => download(`/api/v1/exports/${j.id}/manifest`, `export-${j.id}-manifest.json`) }, 'Download manifest')));
    ul.replaceChildren(...items);
  }

  async placeHold() {
    const out = $('hold-status');
    const req = this.evidenceRequest(out);
    if (!req) return;
    try {
      const h = await api('/api/v1/holds', { method: 'POST', json: req });
      out.dataset.holdId = h.id;
      const gone = h.gone_count ? `; ${h.gone_count} stretches had no footage` : '';
      out.textContent = `Legal hold ${h.id} placed on ${req.cameras.length} cameras (${fmtBytes(h.bytes)} kept${gone}).`;
    } catch (e) {
      out.textContent = e instanceof ApiError && e.status === 404 && !e.parameter
        ? 'This recorder does not offer legal holds over the API.'
        : `Hold refused: ${e.message}`;
    }
  }
}
