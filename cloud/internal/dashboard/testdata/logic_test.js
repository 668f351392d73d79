// Tests of the dashboard's pure logic (static/logic.js) and of the chart drawing, run in
// a real browser by browser_test.go: each test records {name, ok, msg} in
// window.__results, and window.__done says they have all run.

import * as L from '/static/logic.js';
import { lineChart } from '/static/chart.js';
import * as Src from '/static/sources.js';
import { test, eq, ok, finish } from '/test/harness.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const T0 = Date.parse('2025-11-13T12:00:00Z');
const iso = (ms) => new Date(ms).toISOString();
const fixed = (v) => () => v;

test('formatAgo', () => {
  const cases = [
    [0, 'just now'], [44 * S, 'just now'], [45 * S, '1m ago'], [2 * M, '2m ago'],
    [2 * M + 59 * S, '2m ago'], [59 * M + 59 * S, '59m ago'], [H, '1h ago'],
    [23 * H + 59 * M, '23h ago'], [D, '1d ago'], [400 * D, '1y ago'],
    [-10 * S, 'just now'], [-5 * M, 'in 5m'],
  ];
  for (const [d, want] of cases) eq(L.formatAgo(T0 - d, T0), want, `${d} ms before now`);
  eq(L.formatAgo(null, T0), 'never', 'null');
  eq(L.formatAgo(undefined, T0), 'never', 'undefined');
  eq(L.formatAgo(NaN, T0), 'never', 'NaN');
});

test('parseTime', () => {
  eq(L.parseTime('2025-11-13T12:00:00Z'), T0, 'RFC 3339');
  eq(L.parseTime('2025-11-13T17:30:00+05:30'), T0, 'with an offset');
  eq(L.parseTime(''), null, 'empty');
  eq(L.parseTime('yesterday'), null, 'garbage');
  eq(L.parseTime(undefined), null, 'missing');
});

test('backoffDelay grows, is capped and jittered', () => {
  eq(L.backoffDelay(0, fixed(0)), 500, 'first retry, lowest');
  eq(L.backoffDelay(0, fixed(1)), 1000, 'first retry, highest');
  eq(L.backoffDelay(3, fixed(0.5)), 6000, 'fourth retry, middle');
  eq(L.backoffDelay(10, fixed(0)), 15000, 'capped, lowest');
  eq(L.backoffDelay(99, fixed(1)), 30000, 'capped, highest');
  eq(L.backoffDelay(-4, fixed(0)), 500, 'negative attempt');
  for (let i = 0; i < 200; i++) {
    const d = L.backoffDelay(2);
    ok(d >= 2000 && d <= 4000, `attempt 2 gave ${d}, want 2000..4000`);
  }
});

test('Link: live, dropped, offline, back', () => {
  const l = new L.Link(fixed(0));
  eq(l.state, L.CONNECTING, 'at start');
  l.connecting();
  l.open();
  eq(l.state, L.CONNECTING, 'open but not subscribed is not live');
  l.subscribed();
  eq(l.state, L.LIVE, 'subscribed');
  eq(l.closed(), 500, 'a live connection that drops is retried soon');
  eq(l.state, L.RECONNECTING, 'after a drop');
  l.connecting();
  eq(l.state, L.RECONNECTING, 'while reconnecting');
  eq(l.closed(), 1000, 'second attempt waits longer');
  eq(l.state, L.OFFLINE, 'an attempt that cannot open means the cloud is gone');
  l.connecting();
  eq(l.state, L.OFFLINE, 'stays offline while retrying');
  eq(l.closed(), 2000, 'third attempt');
  l.connecting();
  l.open();
  eq(l.state, L.OFFLINE, 'open is not enough');
  l.subscribed();
  eq(l.state, L.LIVE, 'back');
  eq(l.closed(), 500, 'the backoff starts over after a live spell');
});

test('Link: first attempts', () => {
  const l = new L.Link(fixed(0));
  l.connecting();
  l.closed();
  eq(l.state, L.OFFLINE, 'the first socket never opened');
  const m = new L.Link(fixed(0));
  m.connecting();
  m.open();
  m.closed();
  eq(m.state, L.RECONNECTING, 'opened, closed before the subscription');
  const r = new L.Link(fixed(0));
  r.connecting();
  r.closed();
  r.reachable();
  eq(r.state, L.RECONNECTING, 'the socket failed but the service answers HTTP');
  r.open();
  r.subscribed();
  r.reachable();
  eq(r.state, L.LIVE, 'reachable changes only offline');
  const u = new L.Link(fixed(1));
  u.connecting();
  u.closed();
  eq(u.unauthorized(), 30000, 'without a token, retry seldom');
  eq(u.state, L.UNAUTHORIZED, 'refused for want of a token');
  u.connecting();
  eq(u.state, L.UNAUTHORIZED, 'stays so while retrying');
  u.open();
  u.subscribed();
  eq(u.state, L.LIVE, 'a token that works');
});

test('heartbeat', () => {
  eq(L.heartbeat(10 * S, 0, null), 'ok', 'recent message');
  eq(L.heartbeat(25 * S, 0, null), 'probe', 'quiet for the idle time');
  eq(L.heartbeat(30 * S, 0, 25 * S), 'wait', 'probe sent, waiting');
  eq(L.heartbeat(35 * S, 0, 25 * S), 'dead', 'probe unanswered');
  eq(L.heartbeat(35 * S, 26 * S, 25 * S), 'ok', 'probe answered');
  eq(L.heartbeat(60 * S, 26 * S, 25 * S), 'probe', 'quiet again');
});

test('Resume: fresh subscription, then events', () => {
  const r = new L.Resume();
  eq(r.subscribe(['*']), { type: 'subscribe', stations: ['*'] }, 'first subscribe has no since');
  eq(r.accept({ type: 'status', id: 10, time: iso(T0), data: { subscribed: ['*'] } }),
    { kind: 'subscribed', reload: true, replayed: 0 }, 'acknowledgement');
  eq(r.lastId, 10, 'resume point from the acknowledgement');
  eq(r.accept({ type: 'reading', id: 11, station: 'S1', data: {} }).kind, 'event', 'new event');
  eq(r.accept({ type: 'reading', id: 11, station: 'S1', data: {} }).kind, 'duplicate', 'same id again');
  eq(r.accept({ type: 'alert', id: 9, station: 'S1', data: {} }).kind, 'duplicate', 'older id');
  eq(r.subscribe(['*']), { type: 'subscribe', stations: ['*'], since: '11' }, 'resume after the last id');
  eq(r.accept({ type: 'status', id: 11, data: { subscribed: ['*'] } }).reload, true, 'no reload done yet');
  r.reloaded();
  eq(r.accept({ type: 'status', id: 11, data: { subscribed: ['*'] } }).reload, false, 'after the reload');
});

test('Resume: no alert lost or doubled across a reconnect', () => {
  const r = new L.Resume();
  r.accept({ type: 'status', id: 100, data: { subscribed: ['*'] } });
  r.reloaded();
  eq(r.accept({ type: 'alert', id: 101, station: 'S1', data: { id: 1 } }).kind, 'event', 'alert before the drop');
  // The connection drops; the next one resumes after 101.
  eq(r.subscribe(['*']).since, '101', 'since');
  eq(r.accept({ type: 'alert', id: 101, station: 'S1', data: { id: 1 } }).kind, 'duplicate', 'a replay of what we had');
  eq(r.accept({ type: 'alert', id: 102, station: 'S2', data: { id: 7 } }).kind, 'event', 'the alert from the gap');
  eq(r.accept({ type: 'status', id: 102, data: { subscribed: ['*'], replayed: 2 } }),
    { kind: 'subscribed', reload: false, replayed: 2 }, 'replay acknowledged');
  eq(r.accept({ type: 'alert', id: 103, station: 'S1', data: { id: 2 } }).kind, 'event', 'live again');
});

test('Resume: resync', () => {
  const r = new L.Resume();
  r.accept({ type: 'status', id: 500, data: { subscribed: ['*'] } });
  r.reloaded();
  r.accept({ type: 'reading', id: 501, station: 'S1', data: {} });
  const got = r.accept({ type: 'status', id: 40, data: { resync: true, reason: 'since is not an event id of this service' } });
  eq(got, { kind: 'resync', reason: 'since is not an event id of this service' }, 'resync');
  eq(r.lastId, 40, 'the new resume point, even below the old one');
  eq(r.accept({ type: 'reading', id: 41, station: 'S1', data: {} }).kind, 'event', 'events after a lower resume point');
  eq(r.accept({ type: 'status', id: 41, data: { subscribed: ['*'] } }).reload, true, 'the acknowledgement asks for the reload');
  eq(r.subscribe(['*']).since, '41', 'since after the resync');
});

test('Resume: errors and garbage', () => {
  const r = new L.Resume();
  r.accept({ type: 'status', id: 7, data: { subscribed: ['*'] } });
  eq(r.accept({ type: 'status', id: 3, data: { error: 'too many' } }), { kind: 'error', error: 'too many' }, 'error');
  eq(r.lastId, 7, 'an error does not move the resume point back');
  for (const m of [null, 42, {}, { type: 'reading' }, { type: 'reading', id: '8', station: 'S' },
    { type: 'reading', id: -1, station: 'S' }, { type: 'reading', id: 8 }, { type: 'reading', id: 8.5, station: 'S' }]) {
    eq(r.accept(m).kind, 'invalid', JSON.stringify(m));
  }
  eq(r.lastId, 7, 'garbage does not move the resume point');
});

test('wsURL', () => {
  eq(L.wsURL({ protocol: 'http:', host: 'cloud:8080' }, ''), 'ws://cloud:8080/ws', 'plain');
  eq(L.wsURL({ protocol: 'https:', host: 'dash.example.org' }, 'a b&c'), 'wss://dash.example.org/ws?token=a%20b%26c', 'TLS with a token');
});

const alert = (over) => ({
  id: 1, origin: 'agent', station: 'S1', rule: 'threshold', param: 'do', severity: 'warning',
  state: 'active', opened_at: iso(T0), resolved_at: null, message: 'DO low', updated_at: iso(T0), ...over,
});

test('mergeAlert: the later transition wins', () => {
  const m = new Map();
  ok(L.mergeAlert(m, alert({})), 'first');
  ok(L.mergeAlert(m, alert({ state: 'resolved', resolved_at: iso(T0 + 5 * M), updated_at: iso(T0 + 5 * M) })), 'resolved');
  ok(!L.mergeAlert(m, alert({})), 'a stale copy from a slow reload');
  eq(m.get('agent/S1/1').state, 'resolved', 'state');
  ok(!L.mergeAlert(m, alert({ updated_at: iso(T0 + 5 * M) })), 'same time: resolved stays');
  ok(L.mergeAlert(m, alert({ origin: 'cloud' })), 'the cloud has its own ids');
  ok(L.mergeAlert(m, alert({ station: 'S2' })), 'so does each station');
  eq(m.size, 3, 'alerts');
  ok(!L.mergeAlert(m, null), 'nothing');
  ok(!L.mergeAlert(m, { message: 'no id' }), 'no id');
});

test('sortAlerts and isActive', () => {
  const a = alert({ id: 1, opened_at: iso(T0) });
  const b = alert({ id: 2, opened_at: iso(T0 + M), severity: 'info' });
  const c = alert({ id: 3, opened_at: iso(T0 + M), severity: 'critical' });
  const d = alert({ id: 4, opened_at: iso(T0 - H), state: 'resolved', resolved_at: iso(T0 + 2 * M) });
  eq(L.sortAlerts([a, b, c, d]).map((x) => x.id), [4, 3, 2, 1], 'newest change first, then severity');
  ok(L.isActive(alert({ state: 'acknowledged' })), 'acknowledged is active');
  ok(!L.isActive(d), 'resolved');
});

test('wqiClass', () => {
  eq(['A', 'B', 'C', 'D/E', 'D', undefined, 'X'].map((c) => L.wqiClass(c).key), ['a', 'b', 'c', 'de', 'de', 'none', 'none'], 'keys');
  eq(L.wqiClass('D/E').label, 'D/E', 'label');
});

test('sortStations', () => {
  const st = (id, name, cls, wqi, activeAlerts = 0) => ({ id, name, activeAlerts, wqi: cls ? { class: cls, wqi } : null });
  const rows = [st('S1', 'Bhima', 'A', 80), st('S2', 'Mula', 'D/E', 30), st('S3', 'Godavari', 'C', 45, 1),
    st('S4', 'Krishna', 'C', 40), st('S5', 'Arunawati', null), st('S6', 'Tapi', 'C', 48, 3)];
  eq(L.sortStations(rows, 'worst').map((r) => r.id), ['S2', 'S6', 'S3', 'S4', 'S1', 'S5'], 'worst first');
  eq(L.sortStations(rows, 'name').map((r) => r.id), ['S5', 'S1', 'S3', 'S4', 'S2', 'S6'], 'by name');
  eq(rows[0].id, 'S1', 'the input is not reordered');
});

test('formatValue, labels', () => {
  eq(L.formatValue(7.234), '7.23', 'small');
  eq(L.formatValue(150.25), '150.3', 'hundreds');
  eq(L.formatValue(1234.5), '1,235', 'thousands');
  eq(L.formatValue(250000), '2,50,000', 'Indian grouping');
  eq(L.formatValue(undefined), '–', 'missing');
  eq(L.unitLabel('degC'), '°C', 'degC');
  eq(L.unitLabel('uS/cm'), 'µS/cm', 'uS/cm');
  eq(L.paramLabel('do'), 'Dissolved oxygen', 'do');
  eq(L.paramLabel('xyz'), 'xyz', 'unknown');
});

test('supersedes and limits', () => {
  const cur = { source: 'api', time: iso(T0) };
  ok(L.supersedes(cur, { source: 'sensor', time: iso(T0 - H), quality: 'good' }), 'a sensor beats the API');
  ok(!L.supersedes({ source: 'sensor', time: iso(T0) }, { source: 'api', time: iso(T0 + M), quality: 'good' }), 'the API does not beat a sensor');
  ok(!L.supersedes({ source: 'sensor', time: iso(T0) }, { source: 'sensor', time: iso(T0 - M), quality: 'good' }), 'older');
  ok(L.supersedes({ source: 'sensor', time: iso(T0) }, { source: 'sensor', time: iso(T0 + M), quality: 'suspect' }), 'newer');
  ok(!L.supersedes(undefined, { source: 'sensor', time: iso(T0), quality: 'bad' }), 'bad never');
  eq(L.limits('B', 'do'), [5, null], 'DO in class B');
  eq(L.limits('A', 'fc'), [null, 50], 'coliform in class A');
  eq(L.limits('E', 'do'), null, 'none');
  eq(L.limits('', 'do'), null, 'unknown class');
  eq(L.breach('B', 'do', 2), 'below 5', 'DO too low');
  eq(L.breach('B', 'ph', 9.1), 'above 8.5', 'pH too high');
  eq(L.breach('B', 'ph', 7), null, 'within');
  eq(L.breach('B', 'temp', 40), null, 'no criterion');
});

test('readingsQuery', () => {
  const q = (r) => Object.fromEntries(new URLSearchParams(L.readingsQuery(r, 'do', T0)));
  eq(q('1h'), { param: 'do', from: iso(T0 - H), limit: '5000' }, '1 h: raw');
  eq(q('24h'), { param: 'do', from: iso(T0 - D), limit: '1000', bucket: '1h' }, '24 h: hourly');
  eq(q('7d'), { param: 'do', from: iso(T0 - 7 * D), limit: '1000', bucket: '1h' }, '7 d: hourly');
});

test('Series: raw readings', () => {
  const r = (seq, t, value) => ({ seq, time: iso(t), value, source: 'sensor' });
  const s = new L.Series(0);
  s.load([r(3, T0 + 2 * M, 7.3), r(1, T0, 7.1), r(2, T0 + M, 7.2), r(2, T0 + M, 7.2)]);
  eq(s.points.map((p) => p.v), [7.1, 7.2, 7.3], 'sorted without the duplicate');
  ok(!s.add(r(3, T0 + 2 * M, 7.3)), 'a reading already loaded');
  ok(s.add(r(5, T0 + 4 * M, 7.5)), 'live');
  ok(s.add(r(4, T0 + 3 * M, 7.4)), 'late');
  eq(s.points.map((p) => p.v), [7.1, 7.2, 7.3, 7.4, 7.5], 'in time order');
  ok(!s.add({ time: 'garbage', value: 1 }), 'no time');
  s.trim(T0 + 150 * S);
  eq(s.points.map((p) => p.v), [7.4, 7.5], 'trimmed');
});

test('Series: hourly buckets', () => {
  const s = new L.Series(H);
  s.load([{ time: iso(T0), value: 6, avg: 6, min: 5, max: 7, count: 2 }]);
  ok(s.add({ seq: 9, time: iso(T0 + 30 * M), value: 9, source: 'sensor' }), 'into the last bucket');
  eq(s.points.length, 1, 'no new bucket');
  eq([s.points[0].v, s.points[0].min, s.points[0].max, s.points[0].n], [7, 5, 9, 3], 'mean, min, max, count');
  ok(!s.add({ seq: 9, time: iso(T0 + 30 * M), value: 9, source: 'sensor' }), 'the same reading twice');
  ok(s.add({ seq: 10, time: iso(T0 + H + M), value: 4, source: 'sensor' }), 'the next hour');
  eq(s.points.map((p) => [p.t, p.v]), [[T0, 7], [T0 + H, 4]], 'buckets');
});

test('downsample keeps spikes', () => {
  const pts = [];
  for (let i = 0; i < 10000; i++) pts.push({ t: T0 + i * S, v: Math.sin(i / 100) });
  pts[5000].v = 50;
  pts[7000].v = -50;
  const out = L.downsample(pts, 100);
  ok(out.length <= 200, `${out.length} points, want at most 200`);
  ok(out.some((p) => p.v === 50) && out.some((p) => p.v === -50), 'the spikes survive');
  for (let i = 1; i < out.length; i++) ok(out[i].t > out[i - 1].t, 'in time order');
  eq(L.downsample(pts.slice(0, 10), 100).length, 10, 'short series unchanged');
});

test('segments and gapThreshold', () => {
  const pts = [0, 1, 2, 3, 20, 21, 22].map((m) => ({ t: T0 + m * M, v: m }));
  eq(L.gapThreshold(pts, 0), 4 * M, 'four median steps');
  eq(L.gapThreshold(pts, 10 * M), 10 * M, 'at least the minimum');
  eq(L.segments(pts, 4 * M).map((s) => s.length), [4, 3], 'split at the outage');
  eq(L.segments([], M), [], 'empty');
});

test('niceTicks', () => {
  eq(L.niceTicks(0, 7.3, 4), [0, 2, 4, 6, 8], '0..7.3');
  const t = L.niceTicks(6.92, 7.41, 4);
  ok(t[0] <= 6.92 && t[t.length - 1] >= 7.41 && t.length >= 3 && t.length <= 7, `6.92..7.41 gave ${t}`);
  const f = L.niceTicks(5, 5, 4);
  ok(f[0] < 5 && f[f.length - 1] > 5, `a flat line gave ${f}`);
  eq(L.niceTicks(NaN, 1), [], 'NaN');
});

test('timeTicks', () => {
  const a = L.timeTicks(T0, T0 + H, 6, 0);
  eq(a.step, 10 * M, 'an hour in 6');
  ok(a.ticks.every((t) => t % (10 * M) === 0), 'aligned');
  const b = L.timeTicks(T0, T0 + D, 6, -330); // India, UTC+05:30
  eq(b.step, 6 * H, 'a day in 6');
  ok(b.ticks.every((t) => (t + 330 * M) % (6 * H) === 0), `aligned to local hours: ${b.ticks.map(iso)}`);
  ok(b.ticks.every((t) => t >= T0 && t <= T0 + D), 'within the range');
});

test('lineChart draws a series with a gap, a limit and a title', () => {
  const host = document.getElementById('chart-host');
  host.style.width = '600px';
  const pts = [0, 1, 2, 3, 40, 41, 42].map((m) => ({ t: T0 + m * M, v: 5 + m / 10, min: 5, max: 10 }));
  lineChart(host, pts, T0, T0 + H, { title: 'DO, last 1 h', summary: '7 points', limits: [5, null], minGapMs: M });
  const svg = host.querySelector('svg');
  ok(svg, 'an svg');
  eq(svg.getAttribute('role'), 'img', 'role');
  eq(svg.getAttribute('width'), '600', 'drawn at the width of its box');
  eq(svg.querySelector('title').textContent, 'DO, last 1 h', 'title');
  eq(svg.querySelectorAll('path.line').length, 2, 'two segments: no line across the gap');
  eq(svg.querySelectorAll('line.limit').length, 1, 'the limit line');
  ok(svg.querySelectorAll('text.tick').length >= 4, 'axis labels');
  lineChart(host, [], T0, T0 + H, { title: 'empty' });
  eq(host.querySelectorAll('svg').length, 1, 'replaced, not added');
  eq(host.querySelector('text.empty').textContent, 'No data in this range', 'empty chart');
  lineChart(host, pts, T0, T0 + H, { band: true, bands: L.WQI_BANDS, yMin: 0, yMax: 100 });
  eq(host.querySelectorAll('rect.band').length, 4, 'the WQI class bands');
  ok(host.querySelectorAll('polygon.range').length >= 1, 'the min-max band');
});

test('supersedes: a lab sample beats government data, not a probe', () => {
  ok(L.supersedes({ source: 'api', time: iso(T0) }, { source: 'manual', time: iso(T0 - D), quality: 'good' }), 'manual over api');
  ok(!L.supersedes({ source: 'sensor', time: iso(T0) }, { source: 'manual', time: iso(T0 + M), quality: 'good' }), 'sensor over manual');
  ok(L.supersedes({ source: 'satellite', time: iso(T0) }, { source: 'api', time: iso(T0 - D), quality: 'good' }), 'api over satellite');
});

test('toPoint keeps the source of values from outside the station', () => {
  eq(L.toPoint({ time: iso(T0), value: 3, seq: 0, source: 'manual' }).src, 'manual', 'manual');
  eq(L.toPoint({ time: iso(T0), value: 3, seq: 9, source: 'sensor' }).src, undefined, 'a probe has none');
  eq(L.toPoint({ time: iso(T0), value: 3, avg: 3, count: 4 }).src, undefined, 'a rollup has none');
});

test('sources: labels, provenance, fused summary', () => {
  eq(['sensor', 'manual', 'api', 'satellite', 'model', 'rumour'].map(Src.sourceLabel),
    ['Sensor', 'Lab', 'Gov. data', 'Satellite', 'Model', 'rumour'], 'labels');
  eq(Src.provenance({ source: 'api', origin: 'cpcb-nwmp', sensor: 'cpcb-nwmp' }), 'a government monitoring programme · cpcb-nwmp', 'api');
  eq(Src.provenance({ source: 'manual', origin: 'manual', lab: 'MPCB Pune' }), 'a lab or field-kit sample · MPCB Pune', 'lab');
  const w = { time: iso(T0), wqi: 61.2, class: 'B', partial: false, inputs: {
    do: { source: 'sensor' }, ph: { source: 'sensor' }, fc: { source: 'api' }, bod: { source: 'manual' }, temp: { source: 'satellite' } } };
  eq(Src.fusedSummary(w), { complete: true, sources: ['sensor', 'manual', 'api', 'satellite'],
    bySource: { sensor: ['do', 'ph'], api: ['fc'], manual: ['bod'], satellite: ['temp'] } }, 'summary');
  eq(Src.fusedSummary(null).complete, false, 'none');
  eq(Src.fusedSummary({ ...w, partial: true }).complete, false, 'partial');
  const older = { ...w, time: iso(T0 - M) };
  eq(Src.pickFused(older, w), w, 'the newer');
  eq(Src.pickFused(w, older), w, 'not the older');
  eq(Src.pickFused(w, null), w, 'keeps what it has');
  eq(Src.pickFused(undefined, null), null, 'nothing');
});

test('markers: values from outside the station kept as points of their own', () => {
  eq(Src.toMarker({ time: iso(T0), value: 4, seq: 0, source: 'sensor' }), null, 'a probe is no marker');
  eq(Src.toMarker({ time: iso(T0), value: 4, seq: 0, source: 'api', quality: 'bad' }), null, 'nor a bad value');
  const m = Src.toMarker({ time: iso(T0), value: 4.2, unit: 'mg/L', seq: 0, source: 'manual', lab: 'MPCB Pune', quality: 'good' });
  eq(m.src, 'manual', 'its source');
  ok(m.title.startsWith('4.2 mg/L from a lab or field-kit sample · MPCB Pune on '), m.title);
  const s = new L.Series(H);
  s.load([{ time: iso(T0), value: 3, avg: 3, min: 2, max: 4, count: 60 }]);
  Src.addMarkers(s, [m, m]);
  eq(s.points.length, 2, 'the bucket and the marker, once');
  ok(s.add({ time: iso(T0 + 5 * M), value: 6, seq: 0, source: 'satellite', quality: 'good' }), 'a live estimate');
  ok(s.add({ time: iso(T0 + 6 * M), value: 7, seq: 12, source: 'sensor', quality: 'good' }), 'a live probe reading');
  eq(s.points.map((p) => [p.src ?? '', p.n]), [['', 61], ['manual', 1], ['satellite', 1]],
    'the probe goes into its hourly bucket, the estimate stays a point');
  Src.addMarkers(undefined, [m]);
});

test('lineChart draws the markers of other sources by shape', () => {
  const host = document.getElementById('chart-host');
  const pts = [0, 1, 2].map((m) => ({ t: T0 + m * M, v: 3 }));
  const markers = [{ t: T0 + 30 * M, v: 12, src: 'manual', title: 'lab' }, { t: T0 + 40 * M, v: 2, src: 'api' },
    { t: T0 + 50 * M, v: 2.5, src: 'satellite' }, { t: T0 - D, v: 99, src: 'api' }];
  lineChart(host, [...pts, ...markers].sort((a, b) => a.t - b.t), T0, T0 + H, {});
  eq(host.querySelectorAll('path.line').length, 1, 'the probes joined, not the markers');
  eq(['manual', 'api', 'satellite'].map((s) => host.querySelectorAll(`path.marker-${s}`).length), [1, 1, 1],
    'one symbol each; the one outside the range is left out');
  eq(host.querySelector('path.marker-manual title').textContent, 'lab', 'a tooltip');
  const shapes = new Set([...host.querySelectorAll('path.marker')].map((p) => p.getAttribute('d').replace(/[-\d.,\s]/g, '')));
  eq(shapes.size, 3, 'three different shapes');
  ok([...host.querySelectorAll('text.tick')].some((t) => Number(t.textContent) >= 12), 'the scale reaches the lab value');
  lineChart(host, markers.slice(1, 2), T0, T0 + H, {});
  eq(host.querySelectorAll('text.empty').length, 0, 'markers alone are data');
});

finish();
