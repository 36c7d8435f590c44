/*
 * operate.js - the operations view (operators, admins): the health
 * verdict and its reasons, retention alarms, cameras by status with
 * repeat failures on top, volumes with their use and errors, retention
 * classes with promised and actual days, and the newest audit entries
 * with the verification of the whole chain.
 */
import { api, ApiError, qs } from './api.js';
import { el, fmtBytes, fmtTime } from './util.js';

const $ = (id) => document.getElementById(id);
const AUDIT_SHOWN = 50;
const STATUS_ORDER = ['repeat_failure', 'backoff', 'connecting', 'negotiating', 'waiting_worker', 'idle', 'not_recording', 'streaming'];

function table(head, rows, rowAttrs = () => ({})) {
  return el('table', {},
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows.map((r, i) => el('tr', rowAttrs(i), r.map((c) =>
      c instanceof Node ? el('td', {}, c) : el('td', { class: typeof c === 'number' ? 'num' : null, text: c ?? '-' }))))));
}

function meter(share) {
  return el('span', { class: 'meter', title: `${Math.round(100 * share)}%` }, el('i', { style: `width:${Math.round(100 * share)}%` }));
}

export class OperateView {
  constructor() {
    $('op-refresh').addEventListener('click', () => this.refresh());
  }

  async refresh() {
    const parts = [this.health(), this.cameras(), this.classes(), this.audit()];
    const res = await Promise.allSettled(parts);
    const bad = res.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
    $('op-updated').textContent = `updated ${fmtTime(Date.now())}${bad.length ? ` - errors: ${bad.join('; ')}` : ''}`;
  }

  async health() {
    const h = await api('/api/v1/health');
    const v = $('op-verdict');
    v.textContent = h.status;
    v.className = `badge ${h.status}`;
    $('op-reasons').replaceChildren(...(h.reasons || []).map((r) => el('li', {}, el('code', { text: r.code }), ` ${r.detail}`)));
    if (!(h.reasons || []).length) $('op-reasons').append(el('li', { class: 'muted', text: 'nothing to report' }));
    $('op-totals').textContent = `${h.cameras} cameras, ${h.streaming} streaming, ${h.backoff} waiting to retry, ` +
      `${h.repeat_failures} repeat failures; ${h.frames} frames stored, ${h.frames_dropped} dropped`;
    $('op-alarms').replaceChildren(...(h.alarms || []).map((a) => el('li', { class: 'error' },
      `class ${a.class}: ${a.retained_days.toFixed(1)} days kept, ${a.promised_days.toFixed(1)} promised (since ${fmtTime(a.since_ms ?? Date.parse(a.since))})`)));
    if (!(h.alarms || []).length) $('op-alarms').append(el('li', { class: 'muted', text: 'no alarms' }));
    this.volumes(h.volumes || []);
  }

  volumes(vols) {
    $('op-volumes').replaceChildren(table(['volume', 'state', 'used', 'written', 'errors', 'oldest'],
      vols.map((v) => {
        const used = v.segments_total ? (v.segments_total - v.segments_free) / v.segments_total : 0;
        return [el('span', {}, v.path, v.last_error ? el('div', { class: 'error', text: v.last_error }) : null),
          v.state, el('span', {}, meter(used), ` ${v.segments_total - v.segments_free}/${v.segments_total} segments`),
          fmtBytes(v.bytes_written), v.write_errors, v.oldest ? fmtTime(Date.parse(v.oldest)) : '-'];
      })));
  }

  async cameras() {
    const rf = await api('/api/v1/repeat-failures');
    const all = [];
    for (let offset = 0; ; offset += 1000) {
      const j = await api(`/api/v1/cameras?${qs({ live: 1, limit: 1000, offset })}`);
      all.push(...j.cameras);
      if (all.length >= j.total || !j.cameras.length) break;
    }
    const repeat = new Map(rf.cameras.map((c) => [c.id, c]));
    const rank = (c) => (repeat.has(c.id) ? -1 : STATUS_ORDER.indexOf(c.status));
    all.sort((a, b) => rank(a) - rank(b) || (repeat.get(b.id)?.failures_24h || 0) - (repeat.get(a.id)?.failures_24h || 0) || a.id - b.id);
    const counts = {};
    for (const c of all) counts[c.status] = (counts[c.status] || 0) + 1;
    const summary = el('p', { class: 'muted', text: Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ') +
      `; ${rf.total} cameras failed ${rf.threshold} or more times in 24 h` });
    const rows = all.map((c) => {
      const l = c.live || {};
      const r = repeat.get(c.id);
      return [c.id, c.name, c.district || '', r ? 'repeat failure' : c.status, r ? r.failures_24h : (l.failures_24h ?? 0),
              l.bitrate_kbps !== undefined ? Math.round(l.bitrate_kbps) : '-', r ? r.last_error : (l.last_error || '')];
    });
    $('op-cameras').replaceChildren(summary, table(['id', 'camera', 'district', 'status', 'failures 24 h', 'kbit/s', 'last error'],
      rows, (i) => ({ class: repeat.has(all[i].id) ? 'repeat' : null, 'data-camera': all[i].id })));
  }

  /* Classes with promised and actual days: GET /retention when the server
   * has it, else the alarms of /health are all there is. */
  async classes() {
    let r;
    try {
      r = await api('/api/v1/retention?limit=0');
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        $('op-classes').replaceChildren(el('p', { class: 'muted', text: 'This recorder does not publish its retention classes over the API; classes below their promise are listed under Alarms.' }));
        return;
      }
      throw e;
    }
    const classes = r.classes || [];
    const days = (x) => (x === null || x === undefined ? '-' : Number(x.toFixed(1)));
    $('op-classes').replaceChildren(
      el('p', { class: 'muted', text: `holds keep ${fmtBytes(r.held_bytes)} of ${fmtBytes(r.capacity_bytes)} (${r.holds} holds)` }),
      table(['class', 'promised days', 'actual days', 'forecast days', 'maximum days', 'share', 'cameras', 'alarm'],
        classes.map((c) => [c.name, days(c.promised_days), days(c.retained_days), days(c.forecast_days),
                            c.max_days === null ? 'while space allows' : days(c.max_days), `${c.share_pct}%`, c.cameras,
                            c.alarm ? `below promise since ${fmtTime(c.alarm_since_ms)}` : '']),
        (i) => ({ class: classes[i].alarm ? 'repeat' : null })));
  }

  async audit() {
    const v = await api('/api/v1/audit/verify');
    const b = $('op-verify');
    b.textContent = v.ok ? `chain verified: ${v.entries} entries` : `chain broken at entry ${v.broken_id}: ${v.reason}`;
    b.className = `badge ${v.ok ? 'ok' : 'broken'}`;
    b.dataset.ok = String(v.ok);
    const after = Math.max(0, (v.last_id || 0) - AUDIT_SHOWN);
    const j = await api(`/api/v1/audit?${qs({ after, limit: AUDIT_SHOWN })}`);
    const rows = j.entries.slice().reverse().map((e) => [e.id, fmtTime(e.time_ms), e.user, e.action, e.remote,
      el('code', { text: JSON.stringify(e.detail) })]);
    $('op-audit').replaceChildren(table(['id', 'time', 'user', 'action', 'client', 'detail'], rows));
  }
}
