// Line charts drawn as SVG with the DOM (no markup strings, so no value from the server
// is ever parsed as markup).

import { downsample, gapThreshold, niceTicks, segments, timeTicks } from './logic.js';

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const timeFmt = new Intl.DateTimeFormat('en-IN', { hour: '2-digit', minute: '2-digit', hour12: false });
const dayFmt = new Intl.DateTimeFormat('en-IN', { day: 'numeric', month: 'short' });

function tickLabel(t, step) {
  return step >= 24 * 3600e3 ? dayFmt.format(t) : timeFmt.format(t);
}

function numLabel(v) {
  const a = Math.abs(v);
  if (a >= 10000) return `${Math.round(v / 1000)}k`;
  return Number(v.toPrecision(4)).toLocaleString('en-IN');
}

let chartSeq = 0;

// lineChart draws points ({t, v, min, max}, oldest first) between fromMs and toMs into
// the element host, replacing what it held, at the host's current width.
//
// opts: title and summary (the accessible name and description); band (draw min–max of
// rollups); limits ([min, max] criteria lines, null for none); bands (background bands
// {from, to, key, label} such as the WQI classes); yMin/yMax (a fixed scale); minGapMs
// (the smallest gap that breaks the line); extent (more values the scale must show) and
// overlay(g, {x, y, el, top, bottom}) (draws into the plot under the data, such as a
// forecast after the last reading).
export function lineChart(host, points, fromMs, toMs, opts = {}) {
  const width = Math.max(260, Math.floor(host.clientWidth || 600));
  const height = opts.height ?? 180;
  const m = { top: 10, right: opts.bands ? 34 : 12, bottom: 24, left: 48 };
  const iw = width - m.left - m.right;
  const ih = height - m.top - m.bottom;
  const id = `chart-${++chartSeq}`;

  const svg = el('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-labelledby': `${id}-t ${id}-d`, class: 'chart',
  });
  svg.append(el('title', { id: `${id}-t` }, opts.title ?? 'Chart'));
  svg.append(el('desc', { id: `${id}-d` }, opts.summary ?? ''));

  // Points from other sources than the station's probes (p.src: a lab sample, government
  // data, a satellite estimate) are drawn as their source's symbol, not joined, and widen
  // the scale like the line's.
  const pts = downsample(points.filter((p) => !p.src), Math.max(20, Math.floor(iw / 2)));
  const markers = points.filter((p) => p.src && p.t >= fromMs && p.t <= toMs);
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of pts) {
    lo = Math.min(lo, opts.band ? p.min : p.v);
    hi = Math.max(hi, opts.band ? p.max : p.v);
  }
  for (const p of markers) {
    lo = Math.min(lo, p.v);
    hi = Math.max(hi, p.v);
  }
  for (const l of opts.limits ?? []) {
    if (l !== null && l !== undefined && pts.length > 0) {
      // Show a limit that lies near the data, not one that would squash it.
      const spread = Math.max(hi - lo, Math.abs(hi) * 0.1, 1e-9);
      if (l >= lo - spread && l <= hi + spread) {
        lo = Math.min(lo, l);
        hi = Math.max(hi, l);
      }
    }
  }
  for (const v of opts.extent ?? []) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (opts.yMin !== undefined) lo = opts.yMin;
  if (opts.yMax !== undefined) hi = opts.yMax;
  if (!Number.isFinite(lo)) {
    lo = 0;
    hi = 1;
  }
  const yt = niceTicks(lo, hi, 4);
  const y0 = opts.yMin ?? yt[0];
  const y1 = opts.yMax ?? yt[yt.length - 1];
  const x = (t) => m.left + ((t - fromMs) / Math.max(1, toMs - fromMs)) * iw;
  const y = (v) => m.top + ih - ((v - y0) / Math.max(1e-12, y1 - y0)) * ih;
  const clampY = (v) => Math.max(m.top, Math.min(m.top + ih, y(v)));

  const plot = el('g');
  for (const b of opts.bands ?? []) {
    const top = clampY(b.to);
    const bottom = clampY(b.from);
    if (bottom - top < 1) continue;
    plot.append(el('rect', { x: m.left, y: top, width: iw, height: bottom - top, class: `band band-${b.key}` }));
    // The class names sit outside the plot, beside their bands.
    plot.append(el('text', { x: m.left + iw + 4, y: (top + bottom) / 2 + 4, class: 'band-label' }, b.label));
  }
  // Grid and axes.
  for (const v of yt) {
    if (v < y0 - 1e-9 || v > y1 + 1e-9) continue;
    plot.append(el('line', { x1: m.left, x2: m.left + iw, y1: y(v), y2: y(v), class: 'grid' }));
    plot.append(el('text', { x: m.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, numLabel(v)));
  }
  const { ticks, step } = timeTicks(fromMs, toMs, Math.max(2, Math.floor(iw / 90)), new Date(toMs).getTimezoneOffset());
  for (const t of ticks) {
    plot.append(el('line', { x1: x(t), x2: x(t), y1: m.top + ih, y2: m.top + ih + 4, class: 'axis' }));
    plot.append(el('text', { x: x(t), y: height - 6, class: 'tick', 'text-anchor': 'middle' }, tickLabel(t, step)));
  }
  plot.append(el('line', { x1: m.left, x2: m.left + iw, y1: m.top + ih, y2: m.top + ih, class: 'axis' }));

  for (const l of opts.limits ?? []) {
    if (l === null || l === undefined || l < y0 || l > y1) continue;
    plot.append(el('line', { x1: m.left, x2: m.left + iw, y1: y(l), y2: y(l), class: 'limit' }));
    const ly = y(l) - 3 < m.top + 10 ? y(l) + 12 : y(l) - 3; // below the line at the top edge
    plot.append(el('text', { x: m.left + 4, y: ly, class: 'limit-label' }, `limit ${numLabel(l)}`));
  }

  if (opts.overlay) opts.overlay(plot, { x, y: clampY, el, top: m.top, bottom: m.top + ih });

  if (pts.length === 0) {
    plot.append(el('text', { x: m.left + iw / 2, y: m.top + ih / 2, class: 'empty', 'text-anchor': 'middle' },
      opts.empty ?? 'No data in this range'));
  } else {
    const segs = segments(pts, gapThreshold(pts, opts.minGapMs ?? 60e3));
    for (const s of segs) {
      if (opts.band && s.length > 1) {
        const up = s.map((p) => `${x(p.t).toFixed(1)},${clampY(p.max).toFixed(1)}`);
        const down = [...s].reverse().map((p) => `${x(p.t).toFixed(1)},${clampY(p.min).toFixed(1)}`);
        plot.append(el('polygon', { points: [...up, ...down].join(' '), class: 'range' }));
      }
      if (s.length === 1) {
        if (opts.band && s[0].max > s[0].min) {
          plot.append(el('line', { x1: x(s[0].t), x2: x(s[0].t), y1: clampY(s[0].min), y2: clampY(s[0].max), class: 'whisker' }));
        }
        plot.append(el('circle', { cx: x(s[0].t), cy: clampY(s[0].v), r: 2.5, class: 'dot' }));
        continue;
      }
      const d = s.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${clampY(p.v).toFixed(1)}`).join('');
      plot.append(el('path', { d, class: 'line' }));
    }
    const last = pts[pts.length - 1];
    plot.append(el('circle', { cx: x(last.t), cy: clampY(last.v), r: 3.5, class: 'last' }));
  }
  // Markers alone are data: no "no data" note under them.
  if (markers.length > 0) plot.querySelector('text.empty')?.remove();
  for (const p of markers) {
    const mark = el('path', { d: markerPath(p.src, x(p.t), clampY(p.v)), class: `marker marker-${p.src}`, 'data-source': p.src });
    if (p.title) mark.append(el('title', {}, p.title));
    plot.append(mark);
  }
  svg.append(plot);
  host.replaceChildren(svg);
}

// markerPath is the symbol of a value's source, centred on cx, cy: a diamond for a lab
// sample, a square for government data, a triangle for a satellite estimate, a ring for
// a model; each differs in shape, not only colour.
function markerPath(src, cx, cy) {
  const r = 5;
  const f = (v) => v.toFixed(1);
  switch (src) {
    case 'manual':
      return `M${f(cx)},${f(cy - r - 1)}L${f(cx + r + 1)},${f(cy)}L${f(cx)},${f(cy + r + 1)}L${f(cx - r - 1)},${f(cy)}Z`;
    case 'api':
      return `M${f(cx - r)},${f(cy - r)}h${2 * r}v${2 * r}h${-2 * r}Z`;
    case 'satellite':
      return `M${f(cx)},${f(cy - r - 1)}L${f(cx + r + 1)},${f(cy + r)}L${f(cx - r - 1)},${f(cy + r)}Z`;
    default:
      return `M${f(cx - r)},${f(cy)}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`;
  }
}
