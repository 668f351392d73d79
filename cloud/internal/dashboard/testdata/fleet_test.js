// Tests of the Fleet page's rules (static/fleet.js), run in a real browser by
// fleet_browser_test.go; they mirror the cloud's (cloud/internal/fleet) on the same cases.

import * as F from '/static/fleet.js';
import { test, eq, finish } from '/test/harness.js';

test('parseVersion', () => {
  const cases = [
    ['v1.4.2', [1, 4, 2, 0]], ['1.4.2', [1, 4, 2, 0]], ['v1.4', [1, 4, 0, 0]],
    ['v1.4.2-14-gabc1234', [1, 4, 2, 14]], ['v1.4.2-14-gabc1234-dirty', [1, 4, 2, 14]],
    ['v1.4.2-dirty', [1, 4, 2, 0]], ['dev', null], ['abc1234', null], ['v1.4.2-rc1', null],
    ['v1.99999999999.0', null], ['', null], [undefined, null],
  ];
  for (const [s, want] of cases) eq(F.parseVersion(s), want, s);
});

test('judge: newest version, lagging stations, low autonomy', () => {
  const entries = [
    { id: 'A', version: 'v1.4.0', buffer: { autonomy_h: 200 } },
    { id: 'B', version: 'v1.3.9-30-gdeadbee', buffer: { autonomy_h: 23.9 } },
    { id: 'C', version: 'v1.4.0-2-gcafe123-dirty', buffer: { autonomy_h: 24 } },
    { id: 'D', version: 'dev', buffer: {} },
    { id: 'E', version: null, buffer: null },
  ];
  const v = F.judge(entries);
  eq(v.newest, 'v1.4.0-2-gcafe123-dirty', 'two commits past v1.4.0 is newer');
  eq([...v.lags].sort(), ['A', 'B'], 'lagging');
  eq([...v.low], ['B'], 'under a day');
  eq(F.judge([{ id: 'X', version: 'dev' }]).newest, '', 'nothing to order');
});

test('merge keeps the newer record and the later last_seen', () => {
  const old = { id: 'A', health_at: '2026-07-01T10:01:00Z', last_seen: '2026-07-01T10:05:00Z', version: 'v2', name: 'Pune' };
  const late = { id: 'A', health_at: '2026-07-01T10:00:00Z', last_seen: '2026-07-01T10:00:30Z', version: 'v1' };
  eq(F.merge(old, late).version, 'v2', 'an older record arriving late changes nothing');
  const next = { id: 'A', health_at: '2026-07-01T10:02:00Z', last_seen: '2026-07-01T10:02:00Z', version: 'v3' };
  const m = F.merge(old, next);
  eq([m.version, m.last_seen, m.name], ['v3', '2026-07-01T10:05:00Z', 'Pune'], 'the newer record, the later last_seen');
  eq(F.merge(undefined, next), next, 'first');
});

test('sortEntries by each column, unknown last both ways', () => {
  const entries = [
    { id: 'B', name: 'Beta', version: 'v1.3.0', last_seen: '2026-07-01T10:00:00Z', buffer: { autonomy_h: 5 }, backlog: 3,
      probes: { failing: [{}] }, calibration_due: [{ probe: 'p', due_at: '2026-07-03T00:00:00Z' }] },
    { id: 'A', name: 'Alpha', version: 'v1.4.0', last_seen: '2026-07-01T11:00:00Z', buffer: { autonomy_h: null }, backlog: 0,
      probes: { failing: [] }, calibration_due: [] },
    { id: 'C', name: 'Gamma', version: 'dev', last_seen: '2026-07-01T09:00:00Z', buffer: { autonomy_h: 50 }, backlog: 900,
      probes: { failing: [{}, {}] }, calibration_due: [{ probe: 'q', due_at: '2026-07-02T00:00:00Z' }] },
    { id: 'D', name: 'Delta', version: null, last_seen: null, buffer: null, backlog: null, probes: null, calibration_due: [] },
  ];
  const ids = (key, dir) => F.sortEntries(entries, key, dir).map((e) => e.id).join('');
  eq(ids('id', 'ascending'), 'ABDC', 'by name');
  eq(ids('id', 'descending'), 'CDBA', 'by name, descending');
  eq(ids('last_seen', 'descending'), 'ABCD', 'newest first, never seen last');
  eq(ids('version', 'ascending'), 'CBAD', 'an unordered version before the ordered ones, none last');
  eq(ids('autonomy', 'ascending'), 'BCAD', 'idle (no estimate) is unlimited, no record last');
  eq(ids('backlog', 'descending'), 'CBAD', 'largest backlog first');
  eq(ids('failing', 'descending'), 'CBAD', 'most failing first');
  eq(ids('calibration', 'ascending'), 'CBAD', 'soonest due first, none due after, no record last');
});

test('formatHours', () => {
  eq([0.5, 1, 18.7, 47.9, 48, 130].map(F.formatHours), ['30 min', '1 h', '18 h', '47 h', '2.0 d', '5.4 d'], 'spans');
});

finish();
