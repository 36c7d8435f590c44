/*
 * map.js - the camera map, drawn in SVG without map tiles (the appliance
 * has no internet): cameras are projected from latitude/longitude to
 * metres around their centroid (equirectangular, exact enough at city
 * scale), each district is outlined by the convex hull of its cameras and
 * labelled, and markers are coloured by status. The view pans (drag,
 * arrow keys) and zooms (wheel around the pointer, + and - keys). An area
 * is drawn as a rectangle (-> bbox) or a circle from its centre (-> near
 * and radius), or taken from the visible part of the map.
 */
const SVGNS = 'http://www.w3.org/2000/svg';
const M_PER_DEG_LAT = 110574;
const M_PER_DEG_LON = 111320;
const EARTH_R = 6371008.8;

function svg(tag, attrs = {}) {
  const n = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
}

/* Andrew's monotone chain: the convex hull of points [x, y], counter-clockwise. */
export function convexHull(points) {
  const p = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const q of p) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop();
    lower.push(q);
  }
  for (const q of p.reverse()) {
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop();
    upper.push(q);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

export class CameraMap {
  constructor(svgEl, { onArea, onCamera }) {
    this.el = svgEl;
    this.onArea = onArea;
    this.onCamera = onCamera;
    this.cams = [];
    this.tool = 'pan';
    this.area = null;
    this.scale = 1;             /* screen px per metre */
    this.tx = 0;
    this.ty = 0;
    this.origin = { lat: 0, lon: 0 };
    this.root = svg('g');
    this.gDistricts = svg('g');
    this.gCams = svg('g');
    this.gArea = svg('g');
    this.gLabels = svg('g');
    this.root.append(this.gDistricts, this.gArea, this.gCams);
    this.el.append(this.root, this.gLabels);
    this.bindEvents();
  }

  project(lat, lon) {
    const k = Math.cos(this.origin.lat * Math.PI / 180);
    return [(lon - this.origin.lon) * M_PER_DEG_LON * k, -(lat - this.origin.lat) * M_PER_DEG_LAT];
  }

  unproject(x, y) {
    const k = Math.cos(this.origin.lat * Math.PI / 180);
    return { lat: this.origin.lat - y / M_PER_DEG_LAT, lon: this.origin.lon + x / (M_PER_DEG_LON * k) };
  }

  /* Screen (SVG pixel) point to world metres and back. */
  toWorld(sx, sy) { return [(sx - this.tx) / this.scale, (sy - this.ty) / this.scale]; }
  toScreen(x, y) { return [x * this.scale + this.tx, y * this.scale + this.ty]; }

  setCameras(cams) {
    this.cams = cams.filter((c) => Number.isFinite(c.latitude) && Number.isFinite(c.longitude));
    if (this.cams.length) {
      this.origin = {
        lat: this.cams.reduce((s, c) => s + c.latitude, 0) / this.cams.length,
        lon: this.cams.reduce((s, c) => s + c.longitude, 0) / this.cams.length,
      };
    }
    for (const c of this.cams) [c._x, c._y] = this.project(c.latitude, c.longitude);
    this.drawDistricts();
    this.drawCameras();
    this.fit();
  }

  /* Updates marker colours without moving anything. */
  setStatuses(byId) {
    for (const c of this.cams) {
      const st = byId.get(c.id);
      if (st && st !== c.status) {
        c.status = st;
        if (c._node) c._node.setAttribute('class', `cam st-${st}`);
      }
    }
  }

  highlight(ids) {
    const set = new Set(ids);
    for (const c of this.cams) c._node?.classList.toggle('hit', set.has(c.id));
  }

  drawDistricts() {
    this.gDistricts.replaceChildren();
    const groups = new Map();
    for (const c of this.cams) {
      const d = c.district || '';
      if (!d) continue;
      if (!groups.has(d)) groups.set(d, []);
      groups.get(d).push(c);
    }
    this.districts = [];
    const xs = this.cams.map((c) => c._x), ys = this.cams.map((c) => c._y);
    const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys), 1);
    const pad = Math.max(150, span * 0.03);   /* metres around each camera */
    for (const [name, list] of groups) {
      const pts = [];
      for (const c of list)
        for (let a = 0; a < 8; a++)
          pts.push([c._x + pad * Math.cos(a * Math.PI / 4), c._y + pad * Math.sin(a * Math.PI / 4)]);
      const hull = convexHull(pts);
      const poly = svg('polygon', { class: 'district', points: hull.map((p) => p.join(',')).join(' ') });
      poly.append(svg('title'));
      poly.firstChild.textContent = `${name}: ${list.length} cameras`;
      this.gDistricts.append(poly);
      const cx = list.reduce((s, c) => s + c._x, 0) / list.length;
      const top = Math.min(...hull.map((p) => p[1]));
      this.districts.push({ name, x: cx, y: top, count: list.length });
    }
  }

  drawCameras() {
    this.gCams.replaceChildren();
    for (const c of this.cams) {
      const n = svg('circle', { class: `cam st-${c.status || 'not_recording'}`, cx: c._x, cy: c._y, r: 6,
                                'data-camera': c.id });
      const t = svg('title');
      t.textContent = `${c.name} (#${c.id}) - ${c.status || 'unknown'}`;
      n.append(t);
      n.addEventListener('click', (e) => { if (!this.dragged) this.onCamera?.(c); e.stopPropagation(); });
      c._node = n;
      this.gCams.append(n);
    }
  }

  /* Applies the transform; marker radii and labels stay the same on screen. */
  render() {
    this.root.setAttribute('transform', `translate(${this.tx},${this.ty}) scale(${this.scale})`);
    const r = 6 / this.scale;
    for (const c of this.cams) c._node?.setAttribute('r', r);
    this.gLabels.replaceChildren();
    for (const d of this.districts || []) {
      const [x, y] = this.toScreen(d.x, d.y);
      const t = svg('text', { class: 'district-label', x, y: y - 4, 'text-anchor': 'middle' });
      t.textContent = d.name;
      this.gLabels.append(t);
    }
    this.drawArea();
  }

  size() {
    const r = this.el.getBoundingClientRect();
    return [Math.max(r.width, 1), Math.max(r.height, 1)];
  }

  fit() {
    const [w, h] = this.size();
    if (!this.cams.length) { this.scale = 1; this.tx = w / 2; this.ty = h / 2; this.render(); return; }
    const xs = this.cams.map((c) => c._x), ys = this.cams.map((c) => c._y);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    this.scale = Math.min((w - 60) / Math.max(x1 - x0, 200), (h - 60) / Math.max(y1 - y0, 200));
    this.tx = w / 2 - this.scale * (x0 + x1) / 2;
    this.ty = h / 2 - this.scale * (y0 + y1) / 2;
    this.render();
  }

  zoomAt(sx, sy, factor) {
    const [wx, wy] = this.toWorld(sx, sy);
    this.scale = Math.min(Math.max(this.scale * factor, 1e-5), 20);
    this.tx = sx - wx * this.scale;
    this.ty = sy - wy * this.scale;
    this.render();
  }

  pan(dx, dy) { this.tx += dx; this.ty += dy; this.render(); }

  setTool(tool) {
    this.tool = tool;
    this.el.classList.toggle('drawing', tool !== 'pan');
  }

  point(e) {
    const r = this.el.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  bindEvents() {
    this.el.addEventListener('wheel', (e) => {
      e.preventDefault();
      const [sx, sy] = this.point(e);
      this.zoomAt(sx, sy, Math.exp(-e.deltaY * 0.0015));
    }, { passive: false });
    this.el.addEventListener('pointerdown', (e) => this.down(e));
    this.el.addEventListener('pointermove', (e) => this.move(e));
    this.el.addEventListener('pointerup', (e) => this.up(e));
    this.el.addEventListener('keydown', (e) => this.key(e));
    window.addEventListener('resize', () => this.render());
  }

  down(e) {
    if (e.button !== 0) return;
    this.el.setPointerCapture?.(e.pointerId);
    this.drag = { start: this.point(e), last: this.point(e) };
    this.dragged = false;
  }

  move(e) {
    if (!this.drag) return;
    const p = this.point(e);
    if (Math.hypot(p[0] - this.drag.start[0], p[1] - this.drag.start[1]) > 3) this.dragged = true;
    if (this.tool === 'pan') {
      this.pan(p[0] - this.drag.last[0], p[1] - this.drag.last[1]);
    } else if (this.dragged) {
      this.area = this.shapeFrom(this.drag.start, p);
      this.drawArea();
    }
    this.drag.last = p;
  }

  up(e) {
    if (!this.drag) return;
    const p = this.point(e);
    if (this.tool !== 'pan' && this.dragged) {
      this.area = this.shapeFrom(this.drag.start, p);
      this.drawArea();
      this.onArea?.(this.areaQuery());
    }
    this.drag = null;
    setTimeout(() => { this.dragged = false; }, 0);
  }

  key(e) {
    const step = 60;
    const [w, h] = this.size();
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (moves[e.key]) this.pan(...moves[e.key]);
    else if (e.key === '+' || e.key === '=') this.zoomAt(w / 2, h / 2, 1.4);
    else if (e.key === '-') this.zoomAt(w / 2, h / 2, 1 / 1.4);
    else return;
    e.preventDefault();
  }

  /* A shape in world metres from two screen points. */
  shapeFrom(a, b) {
    const [x0, y0] = this.toWorld(...a), [x1, y1] = this.toWorld(...b);
    if (this.tool === 'circle') return { kind: 'circle', cx: x0, cy: y0, r: Math.hypot(x1 - x0, y1 - y0) };
    return { kind: 'rect', x0: Math.min(x0, x1), y0: Math.min(y0, y1), x1: Math.max(x0, x1), y1: Math.max(y0, y1) };
  }

  /* The visible part of the map as the area. */
  areaFromView() {
    const [w, h] = this.size();
    this.area = this.shapeFromRect(this.toWorld(0, 0), this.toWorld(w, h));
    this.drawArea();
    return this.areaQuery();
  }

  shapeFromRect([x0, y0], [x1, y1]) { return { kind: 'rect', x0, y0, x1, y1 }; }

  /* Sets the area from query terms (bbox or near/radius), e.g. for tests. */
  setAreaQuery(q) {
    if (q.bbox) {
      const [minLon, minLat, maxLon, maxLat] = q.bbox.split(',').map(Number);
      const [x0, y1] = this.project(minLat, minLon), [x1, y0] = this.project(maxLat, maxLon);
      this.area = { kind: 'rect', x0, y0, x1, y1 };
    } else if (q.near) {
      const [lat, lon] = q.near.split(',').map(Number);
      const [cx, cy] = this.project(lat, lon);
      this.area = { kind: 'circle', cx, cy, r: Number(q.radius) };
    }
    this.drawArea();
  }

  clearArea() { this.area = null; this.drawArea(); }

  drawArea() {
    this.gArea.replaceChildren();
    const a = this.area;
    if (!a) return;
    if (a.kind === 'circle')
      this.gArea.append(svg('circle', { class: 'area', cx: a.cx, cy: a.cy, r: a.r }));
    else
      this.gArea.append(svg('rect', { class: 'area', x: a.x0, y: a.y0, width: a.x1 - a.x0, height: a.y1 - a.y0 }));
  }

  /* The area as /search terms: {bbox} or {near, radius}, plus a label. */
  areaQuery() {
    const a = this.area;
    if (!a) return null;
    if (a.kind === 'circle') {
      const c = this.unproject(a.cx, a.cy);
      const r = Math.max(1, Math.round(a.r));
      return { near: `${c.lat.toFixed(6)},${c.lon.toFixed(6)}`, radius: r,
               label: `circle, radius ${r >= 1000 ? (r / 1000).toFixed(2) + ' km' : r + ' m'}` };
    }
    const sw = this.unproject(a.x0, a.y1), ne = this.unproject(a.x1, a.y0);
    const w = Math.round(a.x1 - a.x0), h = Math.round(a.y1 - a.y0);
    return { bbox: [sw.lon, sw.lat, ne.lon, ne.lat].map((v) => v.toFixed(6)).join(','),
             label: `rectangle ${w} x ${h} m` };
  }

  /* Cameras inside the area, by the same geometry the server uses. */
  camerasInArea() {
    const q = this.areaQuery();
    if (!q) return [];
    if (q.bbox) {
      const [a, b, c, d] = q.bbox.split(',').map(Number);
      return this.cams.filter((k) => k.longitude >= a && k.longitude <= c && k.latitude >= b && k.latitude <= d);
    }
    const [lat, lon] = q.near.split(',').map(Number);
    return this.cams.filter((k) => haversine(lat, lon, k.latitude, k.longitude) <= q.radius);
  }
}

export function haversine(lat1, lon1, lat2, lon2) {
  const r = Math.PI / 180;
  const h = Math.sin((lat2 - lat1) * r / 2) ** 2 +
            Math.cos(lat1 * r) * Math.cos(lat2 * r) * Math.sin((lon2 - lon1) * r / 2) ** 2;
  return 2 * EARTH_R * Math.asin(Math.sqrt(h));
}
