// Tests of static/forecast.js, run in a real browser by forecast_browser_test.go like
// logic_test.js: each test records {name, ok, msg} in window.__results.

import * as F from '/static/forecast.js';
import { lineChart } from '/static/chart.js';

const results = [];

function test(name, fn) {
  try {
    fn();
    results.push({ name, ok: true });
  } catch (e) {
    results.push({ name, ok: false, msg: String((e && e.stack) || e) });
  }
}

function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

function ok(cond, what) {
  if (!cond) throw new Error(what);
}

const H = 3600e3;
const T0 = Date.parse('2026-03-01T10:00:00Z');
const iso = (ms) => new Date(ms).toISOString();

// forecast is a forecast of the contract, issued at T0 + 10 min.
function forecast(param, mase = 0.65, model = 'ets_ana') {
  const points = [];
  for (let k = 0; k < 24; k++) {
    const v = 6 + Math.sin(k / 4);
    points.push({ time: iso(T0 + k * H), value: v, lo80: v - 0.5, hi80: v + 0.5, lo95: v - 1, hi95: v + 1 });
  }
  return { station: 'S', param, issued_at: iso(T0 + 10 * 60e3), model,
    skill: { mase, coverage80: 0.78, coverage95: 0.94, backtest_points: 120 }, points };
}

test('skill in words', () => {
  eq(F.skillText(forecast('do')), 'beats the same-hour-yesterday forecast by 35 %; 78 % of actuals fell in the 80 % band over 120 backtests', 'better');
  eq(F.skillText(forecast('do', 1.2)), 'does 20 % worse than the same-hour-yesterday forecast; 78 % of actuals fell in the 80 % band over 120 backtests', 'worse');
  eq(F.skillText(forecast('do', 1, 'seasonal_naive')).split(';')[0], 'is the same-hour-yesterday forecast itself', 'the baseline');
  eq(F.skillText(forecast('do', 1.001)).split(';')[0], 'does as well as the same-hour-yesterday forecast', 'a tie');
  eq(F.skillText({ skill: { mase: 0.5, coverage80: 1, backtest_points: 1 } }).split(';')[1], ' 100 % of actuals fell in the 80 % band over 1 backtest', 'one');
  eq(F.skillText({}), '', 'no skill');
});

test('future span of a chart', () => {
  eq(F.futureMs(H), 3 * H, '1 h range: the next 3 h');
  eq(F.futureMs(24 * H), 24 * H, '24 h range');
  eq(F.futureMs(7 * 24 * H), 24 * H, 'never beyond the horizon');
});

test('band points after the last reading', () => {
  const pts = F.bandPoints(forecast('do'), T0 + 40 * 60e3, T0 + 3 * H + 1);
  eq(pts.map((p) => p.t - T0), [1.5 * H, 2.5 * H], 'hour middles after the last reading, up to the end');
  eq(Object.keys(pts[0]), ['t', 'v', 'lo80', 'hi80', 'lo95', 'hi95'], 'fields');
});

test('live predictions replace older ones only', () => {
  ok(F.onPrediction('S', forecast('do')), 'the first');
  const older = forecast('do', 0.9);
  older.issued_at = iso(T0 - H);
  ok(!F.onPrediction('S', older), 'an older one is ignored');
  eq(F.get('S', 'do').f.skill.mase, 0.65, 'kept');
  ok(!F.onPrediction('S', { nope: 1 }), 'not a forecast');
});

test('the band is drawn after the last reading', () => {
  const host = document.getElementById('chart-host');
  F.onPrediction('S', forecast('ph'));
  const now = T0 + 20 * 60e3;
  const readings = [];
  for (let t = now - H; t <= now; t += 5 * 60e3) readings.push({ t, v: 6.2, min: 6.2, max: 6.2 });
  const plan = F.chartPlan('S', 'ph', now, H, now);
  eq(plan.toMs, now + 3 * H, 'the axis reaches 3 h ahead');
  ok(plan.note.includes('beats the same-hour-yesterday forecast by 35 %'), `note: ${plan.note}`);
  ok(plan.note.includes('Holt-Winters with a daily season'), `note: ${plan.note}`);
  lineChart(host, readings, now - H, plan.toMs, { title: 'pH', ...plan.opts });
  const g = host.querySelector('svg g.forecast');
  ok(g, 'a forecast group');
  const p80 = g.querySelector('polygon.fc-band-80');
  const p95 = g.querySelector('polygon.fc-band-95');
  ok(p80 && p95 && g.querySelector('path.fc-line'), 'both bands and the line');
  const xs = (p) => p.getAttribute('points').split(' ').map((s) => Number(s.split(',')[0]));
  const lastX = Math.max(...[...host.querySelectorAll('path.line')].map((p) => Number(p.getAttribute('d').split('L').pop().split(',')[0])));
  ok(Math.min(...xs(p80)) >= lastX - 0.5, `the band starts after the last reading (${Math.min(...xs(p80))} vs ${lastX})`);
  const b80 = p80.getBBox();
  const b95 = p95.getBBox();
  ok(b95.height > b80.height && b80.height > 0, 'the 95 % band is wider than the 80 % band');
  ok(getComputedStyle(p80).fillOpacity > 0, 'styled');
  F.note(host, plan.note);
  eq(host.nextElementSibling.textContent, plan.note, 'the note under the chart');
  F.note(host, '');
  ok(host.nextElementSibling.hidden, 'an empty note hides');
});

test('a series without a forecast says why', () => {
  const plan = F.chartPlan('S', 'fc', T0, H, T0);
  eq(plan, { toMs: T0, opts: {}, note: '' }, 'nothing known: nothing said');
});

test('evidence of an early warning', () => {
  const f = forecast('do');
  const a = { rule: 'forecast_breach', origin: 'cloud', evidence: {
    limit: { set: 'cpcb-class-B', param: 'do', bound: 'min', value: 5, label: 'CPCB class B (organised outdoor bathing) minimum' },
    first: f.points[3], worst: f.points[5], likely: false,
    forecast: { issued_at: f.issued_at, model: 'ets_ana', skill: f.skill } } };
  const lines = F.evidenceLines(a);
  eq(lines[0], 'Limit: CPCB class B (organised outdoor bathing) minimum ≥ 5', 'the limit');
  ok(lines[1].startsWith('First hour beyond it:') && lines[1].includes('80 % interval'), lines[1]);
  ok(lines.some((l) => l.includes('one-in-ten')), 'the odds in words');
  ok(lines[lines.length - 1].includes('beats the same-hour-yesterday forecast by 35 %'), 'the skill');
  const d = F.evidence(a);
  eq(d.tagName, 'DETAILS', 'a disclosure');
  eq(d.querySelector('summary').textContent, 'Evidence (cloud rule forecast_breach)', 'its summary');
  eq(F.evidence({ rule: 'threshold' }), null, 'an agent alert has none');
});

test('evidence of a pollution event', () => {
  const a = { rule: 'pollution_event', origin: 'cloud', evidence: {
    verdict: 'pollution_event', station: 'UP', kind: 'deviation', ongoing: false,
    path: [{ station: 'UP', km: 0.5, start: iso(T0), delay_h: 0, speed_ms: 0 },
      { station: 'DOWN', km: 9.5, start: iso(T0 + 5 * H), delay_h: 5, speed_ms: 0.5 }],
    evidence: [{ station: 'UP', param: 'do', kind: 'deviation', peak: { time: iso(T0 + H), value: 2.1, baseline: 6.3, low: 5.1, high: 7.2, score: -8.4 } }] } };
  const lines = F.evidenceLines(a);
  ok(lines[0].startsWith('Path: UP (km 0.5)') && lines[0].includes('→ DOWN (km 9.5)') && lines[0].includes('5 h later at 0.5 m/s'), lines[0]);
  eq(lines[1], 'Shape: deviation, over', 'the shape');
  ok(lines[2].includes('UP do (deviation): peak 2.1') && lines[2].includes('baseline of 6.3 (normal 5.1–7.2), score -8.4'), lines[2]);
});

// async tests run after the others; done says when.
async function asyncTest(name, fn) {
  try {
    await fn();
    results.push({ name, ok: true });
  } catch (e) {
    results.push({ name, ok: false, msg: String((e && e.stack) || e) });
  }
}

await asyncTest('load keeps forecasts and the reasons of series without one', async () => {
  const asked = [];
  const api = async (path) => {
    asked.push(path);
    if (path.includes('param=do')) return forecast('do', 0.5);
    if (path.includes('param=wqi')) return { station: 'L', param: 'wqi', issued_at: null, model: 'none', skill: null, points: [], reason: 'too little history: 30 hourly values over 1.3 days' };
    throw Object.assign(new Error('the cloud does not answer'), { status: 0 });
  };
  await F.load(api, 'L', ['do', 'wqi', 'ph']);
  eq(asked, ['/v1/stations/L/forecast?param=do', '/v1/stations/L/forecast?param=wqi', '/v1/stations/L/forecast?param=ph'], 'asked');
  eq(F.get('L', 'do').f.skill.mase, 0.5, 'the forecast');
  eq(F.chartPlan('L', 'wqi', T0, H, T0).note, 'No forecast: too little history: 30 hourly values over 1.3 days.', 'the reason');
  eq(F.get('L', 'ph'), null, 'a failed request changes nothing');
});

window.__results = results;
window.__done = true;
document.getElementById('out').textContent = results.map((r) => `${r.ok ? 'ok' : 'FAIL'} ${r.name}${r.msg ? `: ${r.msg}` : ''}`).join('\n');
