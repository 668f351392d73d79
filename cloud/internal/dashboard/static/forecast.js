// Forecasts and the evidence of the cloud's own alerts on the dashboard.
//
// The station page draws each series' newest forecast (GET /v1/stations/{id}/forecast,
// then the live "prediction" messages) after the chart's last reading: the 80 % and 95 %
// prediction intervals as bands, the point forecast as a dashed line, and under the chart
// the model's skill in words. A series without a forecast says why (the API's reason).
// The alert feed opens the evidence of a cloud alert (forecast_breach, pollution_event,
// suspect_sensor, local_event) in a disclosure: the limit and the hours of an early
// warning, the stations an event passed, the values, baselines and scores behind a finding.
//
// The pure functions (skillText, futureMs, bandPoints, evidenceLines) are tested in
// testdata/forecast_test.js; the rest builds DOM nodes, never markup from strings.

const HOUR = 3600e3;

// MODELS say in words what each model of the forecast contract is.
const MODELS = {
  seasonal_naive: 'the same hour the day before',
  drift: 'a straight-line trend',
  ets_ana: 'Holt-Winters with a daily season',
  ets_aada: 'Holt-Winters with a damped trend and a daily season',
};

export function modelText(model) {
  return MODELS[model] ?? model ?? '';
}

const pct = (x) => `${Math.round(x * 100)} %`;

// skillText says how far to trust a forecast, from its backtest: "beats the
// same-hour-yesterday forecast by 35 %; 78 % of actuals fell in the 80 % band over 120
// backtests".
export function skillText(f) {
  const s = f?.skill;
  if (!s || typeof s.mase !== 'number' || !(s.backtest_points > 0)) return '';
  let vs;
  if (f.model === 'seasonal_naive') vs = 'is the same-hour-yesterday forecast itself';
  else if (Math.round(s.mase * 100) === 100) vs = 'does as well as the same-hour-yesterday forecast';
  else if (s.mase < 1) vs = `beats the same-hour-yesterday forecast by ${pct(1 - s.mase)}`;
  else vs = `does ${pct(s.mase - 1)} worse than the same-hour-yesterday forecast`;
  const n = s.backtest_points;
  return `${vs}; ${pct(s.coverage80)} of actuals fell in the 80 % band over ${n} backtest${n === 1 ? '' : 's'}`;
}

// futureMs is how far after now a chart of a range of rangeMs shows the forecast: as long
// as the range itself, at least 3 h (so that the next hours show on the 1 h chart) and at
// most the horizon (24 h).
export function futureMs(rangeMs, horizonMs = 24 * HOUR) {
  return Math.min(horizonMs, Math.max(3 * HOUR, rangeMs));
}

// bandPoints are the forecast's points to draw: each hour at its middle (a point is the
// forecast of the hour's median), from the last reading on, up to toMs.
export function bandPoints(f, lastMs, toMs) {
  const out = [];
  for (const p of f?.points ?? []) {
    const t = Date.parse(p.time) + HOUR / 2;
    if (!Number.isFinite(t) || t < lastMs || t > toMs) continue;
    out.push({ t, v: p.value, lo80: p.lo80, hi80: p.hi80, lo95: p.lo95, hi95: p.hi95 });
  }
  return out;
}

// The forecasts the page knows: station -> param -> {f} or {reason}.
const known = new Map();

function slot(station) {
  let m = known.get(station);
  if (!m) {
    m = new Map();
    known.set(station, m);
  }
  return m;
}

// onPrediction takes a live "prediction" message's data; it returns true when it is
// newer than what the page had.
export function onPrediction(station, f) {
  if (!f || typeof f.param !== 'string') return false;
  const m = slot(station);
  const cur = m.get(f.param)?.f;
  if (cur && Date.parse(cur.issued_at) > Date.parse(f.issued_at)) return false;
  m.set(f.param, { f });
  return true;
}

// load asks the API for the forecasts of a station's series (api is the page's fetch
// helper), keeping the reason of a series without one (model "none"). A failed request
// leaves what the page knows: live messages and the next load fill it in.
export async function load(api, station, params) {
  await Promise.all(params.map(async (p) => {
    let f;
    try {
      f = await api(`/v1/stations/${encodeURIComponent(station)}/forecast?param=${encodeURIComponent(p)}`);
    } catch {
      return;
    }
    if (f?.model === 'none') {
      if (!slot(station).get(p)?.f) slot(station).set(p, { reason: f.reason || '' });
    } else {
      onPrediction(station, f);
    }
  }));
}

export function get(station, param) {
  return known.get(station)?.get(param) ?? null;
}

const NS = 'http://www.w3.org/2000/svg';

function svg(name, attrs) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function area(pts, x, y, lo, hi, cls) {
  const up = pts.map((p) => `${x(p.t).toFixed(1)},${y(p[hi]).toFixed(1)}`);
  const down = [...pts].reverse().map((p) => `${x(p.t).toFixed(1)},${y(p[lo]).toFixed(1)}`);
  return svg('polygon', { points: [...up, ...down].join(' '), class: cls });
}

// chartPlan says how to draw series param of station on a chart of the last rangeMs up to
// nowMs whose newest reading is at lastMs: the end of the time axis, the lineChart
// options that draw the forecast, and the note under the chart.
export function chartPlan(station, param, nowMs, rangeMs, lastMs) {
  const k = get(station, param);
  if (!k) return { toMs: nowMs, opts: {}, note: '' };
  if (!k.f) return { toMs: nowMs, opts: {}, note: k.reason ? `No forecast: ${k.reason}.` : '' };
  const f = k.f;
  const toMs = nowMs + futureMs(rangeMs);
  const pts = bandPoints(f, lastMs ?? nowMs - rangeMs, toMs);
  const issued = new Date(f.issued_at);
  const when = issued.toLocaleTimeString('en-IN', { hour: '2-digit', minute: '2-digit', hour12: false });
  const note = `Forecast by ${modelText(f.model)}, issued ${when}: ${skillText(f)}.`;
  if (pts.length === 0) return { toMs: nowMs, opts: {}, note };
  const extent = [];
  for (const p of pts) extent.push(p.lo95, p.hi95);
  return {
    toMs,
    note,
    opts: {
      extent,
      overlay: (plot, c) => {
        const g = svg('g', { class: 'forecast', 'data-issued': f.issued_at, 'data-points': pts.length });
        const nx = c.x(nowMs);
        g.append(svg('line', { x1: nx, x2: nx, y1: c.top, y2: c.bottom, class: 'fc-now' }));
        g.append(area(pts, c.x, c.y, 'lo95', 'hi95', 'fc-band-95'));
        g.append(area(pts, c.x, c.y, 'lo80', 'hi80', 'fc-band-80'));
        const d = pts.map((p, i) => `${i ? 'L' : 'M'}${c.x(p.t).toFixed(1)},${c.y(p.v).toFixed(1)}`).join('');
        g.append(svg('path', { d, class: 'fc-line' }));
        plot.append(g);
      },
    },
  };
}

// note puts text in the forecast note under a chart host (made on first use).
export function note(host, text) {
  let p = host.nextElementSibling;
  if (!p || !p.classList.contains('forecast-note')) {
    p = document.createElement('p');
    p.className = 'forecast-note';
    host.after(p);
  }
  if (p.textContent !== text) p.textContent = text;
  p.hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Evidence of cloud alerts

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : '–');
const hhmm = (s) => {
  const t = Date.parse(s);
  return Number.isFinite(t) ? new Date(t).toLocaleString('en-IN', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hour12: false }) : '';
};

// evidenceLines turns an alert's evidence into lines of text, by rule; [] when there is
// none to show.
export function evidenceLines(a) {
  const e = a?.evidence;
  if (!e || typeof e !== 'object') return [];
  const out = [];
  if (a.rule === 'forecast_breach' && e.limit) {
    const l = e.limit;
    out.push(`Limit: ${l.label ?? ''} ${l.bound === 'min' ? '≥' : '≤'} ${num(l.value)}`.trim());
    for (const [what, p] of [['First hour beyond it', e.first], ['Furthest beyond it', e.worst]]) {
      if (p) out.push(`${what}: ${hhmm(p.time)}, forecast ${num(p.value)}, 80 % interval ${num(p.lo80)}–${num(p.hi80)}, 95 % ${num(p.lo95)}–${num(p.hi95)}`);
    }
    out.push(e.likely ? 'The forecast itself crosses the limit: more likely than not.' :
      'Only the 80 % interval crosses the limit: a one-in-ten chance or more.');
    if (e.forecast) {
      const f = { model: e.forecast.model, skill: e.forecast.skill };
      out.push(`Forecast by ${modelText(f.model)}, issued ${hhmm(e.forecast.issued_at)}: ${skillText(f)}.`);
    }
    return out;
  }
  if (Array.isArray(e.path) && e.path.length > 0) {
    out.push(`Path: ${e.path.map((p, i) => `${p.station} (km ${num(p.km)}) ${hhmm(p.start)}` +
      (i > 0 ? `, ${num(p.delay_h)} h later${p.speed_ms > 0 ? ` at ${num(p.speed_ms)} m/s` : ''}` : '')).join(' → ')}`);
  }
  if (e.kind) out.push(`Shape: ${String(e.kind).replace('_', ' ')}${e.ongoing ? ', still going on' : ', over'}`);
  for (const ep of Array.isArray(e.evidence) ? e.evidence : []) {
    const p = ep.peak ?? {};
    out.push(`${ep.station} ${ep.param} (${String(ep.kind).replace('_', ' ')}): peak ${num(p.value)} at ${hhmm(p.time)} ` +
      `against a baseline of ${num(p.baseline)} (normal ${num(p.low)}–${num(p.high)}), score ${num(p.score)}` +
      (ep.spikes ? `, ${ep.spikes} spikes` : ''));
  }
  return out;
}

// evidence is the disclosure of an alert's evidence, or null when it has none.
export function evidence(a) {
  const lines = evidenceLines(a);
  if (lines.length === 0) return null;
  const d = document.createElement('details');
  d.className = 'evidence';
  const s = document.createElement('summary');
  s.textContent = `Evidence (${a.origin === 'cloud' ? 'cloud rule ' : ''}${a.rule})`;
  const ul = document.createElement('ul');
  for (const l of lines) {
    const li = document.createElement('li');
    li.textContent = l;
    ul.append(li);
  }
  d.append(s, ul);
  return d;
}
