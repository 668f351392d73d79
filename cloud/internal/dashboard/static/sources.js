// Where each value comes from: a badge per source (a probe, a lab sample, a government
// programme, a satellite estimate, a model) with its age; the lab, government and
// satellite points of a parameter, drawn on its chart as symbols of their own; and the
// fused WQI the cloud computes from every source, next to the station's own index, with
// the source of each of its inputs.
//
// The functions that take data and return data are pure and tested in
// testdata/logic_test.js; the others build DOM nodes (text only, never markup).

import { ago, h, wqiBadge } from './dom.js';
import * as L from './logic.js';

// SOURCES are the sources of a reading (design §5a), most trusted first, with the label
// a badge shows and what the label means.
export const SOURCES = {
  sensor: { label: 'Sensor', what: 'a probe at the station' },
  manual: { label: 'Lab', what: 'a lab or field-kit sample' },
  api: { label: 'Gov. data', what: 'a government monitoring programme' },
  satellite: { label: 'Satellite', what: 'a satellite estimate' },
  model: { label: 'Model', what: 'a forecast' },
};

// sourceLabel names a source for a badge; an unknown one keeps its own name.
export function sourceLabel(src) {
  return SOURCES[src]?.label ?? (src || 'unknown');
}

// provenance describes where a value came from, for a tooltip: what the source is, and
// the origin (the upstream source's name, the lab) and sensor when they say more.
export function provenance(v) {
  const parts = [SOURCES[v.source]?.what ?? v.source ?? 'unknown source'];
  if (v.origin && v.origin !== v.source) parts.push(v.origin);
  if (v.lab) parts.push(v.lab);
  if (v.sensor && v.sensor !== v.origin && v.sensor !== v.lab) parts.push(v.sensor);
  return parts.join(' · ');
}

// badge is a value's source and, when given its time, its age: "Lab · 3d ago".
export function badge(v, withAge = true) {
  const src = v.source || 'unknown';
  const b = h('span', { class: `src-badge src-${src}`, 'data-source': src, title: provenance(v) },
    h('span', { class: 'src-name' }, sourceLabel(src)));
  const t = L.parseTime(v.time);
  if (withAge && t !== null) b.append(h('span', { class: 'src-age' }, ' · ', ago(t)));
  return b;
}

// sourceCell is the station page's Source column: the badge and the origin or sensor.
export function sourceCell(v) {
  const where = v.origin && v.origin !== v.source ? v.origin : v.sensor;
  return [badge(v), where ? h('span', { class: 'sensor' }, ` ${where}`) : null];
}

// pickFused returns the newer of two fused indexes (either may be missing).
export function pickFused(cur, next) {
  if (!next) return cur ?? null;
  if (!cur) return next;
  return L.newer(cur, next) ? next : cur;
}

// fusedSummary says of a fused index how complete it is and where its inputs came from:
// {complete, sources: [source, ...] most trusted first, bySource: {source: [param, ...]}}.
export function fusedSummary(w) {
  const bySource = {};
  for (const p of L.paramOrder) {
    const in_ = w?.inputs?.[p];
    if (!in_) continue;
    (bySource[in_.source] ??= []).push(p);
  }
  const order = Object.keys(SOURCES);
  const sources = Object.keys(bySource).sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  return { complete: !!w && !w.partial, sources, bySource };
}

// markerTitle is a marker's tooltip: value, source and when.
export function markerTitle(r) {
  const t = L.parseTime(r.time);
  const when = t === null ? '' : ` on ${new Date(t).toLocaleString('en-IN', { dateStyle: 'medium', timeStyle: 'short' })}`;
  return `${L.formatValue(r.value)} ${L.unitLabel(r.unit)} from ${provenance(r)}${when}`.replace(/\s+/g, ' ');
}

// toMarker turns an API reading from outside the station into a marker, or null.
export function toMarker(r) {
  const p = L.toPoint(r);
  if (!p || !p.src || r.quality === 'bad') return null;
  p.title = markerTitle(r);
  return p;
}

// OTHER_SOURCES are the sources drawn as markers.
const OTHER_SOURCES = Object.keys(SOURCES).filter((s) => s !== 'sensor').join(',');

// loadMarkers reads, per parameter, the readings of other sources than the probes since
// fromMs (labs, government, satellites: a handful, whatever the range): a Map param ->
// markers. get fetches a path of the JSON API.
export async function loadMarkers(get, stationPath, params, fromMs) {
  const out = new Map();
  await Promise.all(params.map(async (p) => {
    const q = new URLSearchParams({ param: p, from: new Date(fromMs).toISOString(), source: OTHER_SOURCES, limit: '500' });
    const page = await get(`${stationPath}/readings?${q}`);
    out.set(p, (page.readings || []).map(toMarker).filter(Boolean));
  }));
  return out;
}

// addMarkers puts markers into a chart's series (L.Series), each once.
export function addMarkers(series, markers) {
  if (!series) return;
  for (const m of markers) {
    if (series.keys.has(m.key)) continue;
    series.keys.add(m.key);
    series.points.push(m);
  }
  series.points.sort((a, b) => a.t - b.t);
}

// renderFused fills host with the fused WQI beside the station's own (own): its class and
// value, complete or partial, and each input's value, source and age.
export function renderFused(host, own, fused) {
  const sig = JSON.stringify([fused?.time, fused?.wqi, fused?.class, fused?.inputs, own?.partial, own?.missing]);
  if (host.dataset.sig === sig) return;
  host.dataset.sig = sig;
  const s = fusedSummary(fused);
  host.dataset.state = !fused ? 'none' : s.complete ? 'complete' : 'partial';
  const head = h('p', { class: 'fused-head' },
    h('span', { class: 'fused-title' }, 'All sources'), ' ', wqiBadge(fused), ' ',
    h('span', { class: 'fused-state' }, !fused ? 'no fresh inputs' : s.complete ? 'complete' :
      `partial, without ${(fused.missing || []).map(L.paramLabel).join(', ')}`));
  const own_ = h('p', { class: 'fused-own' }, !own ? 'The station computes no index yet.' :
    own.partial ? `The station's own index is partial, without ${(own.missing || []).map(L.paramLabel).join(', ')}: ` +
      'its probes cannot measure them.' : "The station's own index is complete.");
  const items = [];
  for (const p of L.paramOrder) {
    const in_ = fused?.inputs?.[p];
    if (!in_) continue;
    items.push(h('li', { 'data-param': p, 'data-source': in_.source },
      h('span', { class: 'fused-param' }, L.paramLabel(p)), ' ',
      h('span', { class: 'num' }, `${L.formatValue(in_.value)} ${L.unitLabel(in_.unit)}`.trim()), ' ', badge(in_)));
  }
  host.replaceChildren(head, own_, items.length ? h('ul', { class: 'fused-inputs', 'aria-label': 'Inputs of the fused index' }, items) : '');
}

// fusedCard is the overview card's line about the fused index, or null without one.
export function fusedCard(fused) {
  if (!fused) return null;
  const s = fusedSummary(fused);
  const c = L.wqiClass(fused.class);
  return h('span', { class: 'st-fused', 'data-state': s.complete ? 'complete' : 'partial' },
    'All sources: ', h('span', { class: `wqi-mini wqi-${c.key}` }, `${c.label} ${fused.wqi.toFixed(1)}`),
    s.complete ? ' complete' : ' partial', ' (', s.sources.map(sourceLabel).join(', '), ')');
}
