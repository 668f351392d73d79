// The dashboard's logic that is easy to get wrong, as pure functions and small state
// machines: no DOM, no network, no clock of their own (callers pass the time and, where
// needed, the random source), so that the tests can drive every path.

// ---------------------------------------------------------------------------------------
// Times

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// JUST_NOW is how close to now a time reads "just now".
export const JUST_NOW = 45 * SECOND;

function span(ms) {
  if (ms < HOUR) return `${Math.max(1, Math.floor(ms / MINUTE))}m`;
  if (ms < DAY) return `${Math.floor(ms / HOUR)}h`;
  if (ms < 365 * DAY) return `${Math.floor(ms / DAY)}d`;
  return `${Math.floor(ms / (365 * DAY))}y`;
}

// formatAgo says how long before nowMs thenMs was: "just now", "2m ago", "3h ago",
// "4d ago"; a time ahead of now (a clock that runs fast) reads "in 5m". A missing or
// invalid time reads "never".
export function formatAgo(thenMs, nowMs) {
  if (thenMs === null || thenMs === undefined || !Number.isFinite(thenMs)) return 'never';
  const d = nowMs - thenMs;
  if (d < -JUST_NOW) return `in ${span(-d)}`;
  if (d < JUST_NOW) return 'just now';
  return `${span(d)} ago`;
}

// parseTime reads an RFC 3339 time into milliseconds, or null.
export function parseTime(s) {
  if (typeof s !== 'string' || s === '') return null;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

// ---------------------------------------------------------------------------------------
// Reconnecting

// backoffDelay is the wait before reconnect attempt number attempt (0 for the first
// retry): exponential from baseMs up to maxMs, with "equal jitter" (half of it fixed, half
// random) so that the dashboards that lost the same server come back spread out, yet
// never in a tight loop.
export function backoffDelay(attempt, random = Math.random, baseMs = 1000, maxMs = 30000) {
  const n = Math.max(0, Math.min(30, Math.floor(attempt)));
  const cap = Math.min(maxMs, baseMs * 2 ** n);
  return Math.round(cap / 2 + random() * (cap / 2));
}

// Link states, as the connection indicator shows them.
export const CONNECTING = 'connecting';
export const LIVE = 'live';
export const RECONNECTING = 'reconnecting';
export const OFFLINE = 'offline';
export const UNAUTHORIZED = 'unauthorized';

// Link is the state machine of the live connection. It is LIVE only between the
// server's acknowledgement of the subscription and the socket closing (or missing its
// heartbeat); a connection that drops is RECONNECTING; an attempt that cannot even open
// the socket means the cloud is gone (OFFLINE, retrying with growing delays) unless the
// service still answers plain HTTP (reachable). Each method that ends a connection
// returns the delay before the next attempt.
export class Link {
  constructor(random = Math.random) {
    this.random = random;
    this.state = CONNECTING;
    this.failures = 0; // attempts in a row that did not reach LIVE
    this.opened = false; // the current socket opened
  }

  // connecting: a new socket is being opened.
  connecting() {
    this.opened = false;
    if (this.state !== OFFLINE && this.state !== UNAUTHORIZED && this.state !== RECONNECTING) {
      this.state = CONNECTING;
    }
  }

  // open: the socket opened (not LIVE yet: the subscription is not acknowledged).
  open() {
    this.opened = true;
  }

  // subscribed: the server acknowledged the subscription; messages flow.
  subscribed() {
    this.state = LIVE;
    this.failures = 0;
  }

  // closed: the socket closed or failed. It returns the delay before the next attempt.
  closed() {
    if (this.state === LIVE) {
      // A connection that worked dropped: try again soon.
      this.state = RECONNECTING;
      this.failures = 0;
    } else if (!this.opened) {
      this.state = OFFLINE;
    } else {
      this.state = RECONNECTING;
    }
    this.opened = false;
    return backoffDelay(this.failures++, this.random);
  }

  // reachable: the socket failed, yet the service answers plain HTTP (it refused the
  // handshake, or something between rejects WebSockets): not offline, reconnecting.
  reachable() {
    if (this.state === OFFLINE) this.state = RECONNECTING;
  }

  // unauthorized: the server refused the connection for want of a viewer token. It
  // returns the delay before the next attempt (the longest: a new token needs a person).
  unauthorized() {
    this.state = UNAUTHORIZED;
    this.opened = false;
    this.failures++;
    return backoffDelay(30, this.random);
  }
}

// heartbeat decides, from the time of the last message received and of the last probe
// sent (null for none), whether the connection needs a probe (a message that the server
// answers), is dead (a probe went unanswered for timeoutMs) or is fine. Browsers answer
// the server's WebSocket pings without telling the page, so the page needs its own proof
// that messages flow.
export function heartbeat(nowMs, lastRecvMs, probeSentMs, idleMs = 25 * SECOND, timeoutMs = 10 * SECOND) {
  if (probeSentMs !== null && probeSentMs >= lastRecvMs) {
    return nowMs - probeSentMs >= timeoutMs ? 'dead' : 'wait';
  }
  return nowMs - lastRecvMs >= idleMs ? 'probe' : 'ok';
}

// Resume follows the live stream's ids (see the fan-out's contract): it keeps the last id
// received, builds the subscribe message that resumes after it, drops what it already
// had, and says when the state must be reloaded from the JSON API (a first subscription,
// or a resync after a gap the server could not fill).
export class Resume {
  constructor() {
    this.lastId = null; // the connection's resume point
    this.needReload = true; // the state has not been loaded since the stream's start
  }

  // subscribe is the first message of a connection.
  subscribe(stations = ['*']) {
    const m = { type: 'subscribe', stations };
    if (this.lastId !== null) m.since = String(this.lastId);
    return m;
  }

  // accept classifies one server message and advances the resume point:
  //   'event'      a new event: apply it
  //   'duplicate'  an event already received: drop it
  //   'subscribed' the subscription is in effect (reload: the state must be loaded)
  //   'resync'     the gap could not be served: reload the state
  //   'error'      the server refused a client message
  //   'invalid'    not a message of the protocol
  accept(msg) {
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return { kind: 'invalid' };
    const id = msg.id;
    if (!Number.isSafeInteger(id) || id < 0) return { kind: 'invalid' };
    const data = msg.data && typeof msg.data === 'object' ? msg.data : {};
    if (msg.type === 'status' && !msg.station) {
      if (data.resync) {
        // The id is where the live stream now starts, even when it is lower than what we
        // had (a service whose events were reset).
        this.lastId = id;
        this.needReload = true;
        return { kind: 'resync', reason: String(data.reason || '') };
      }
      if (data.error) {
        this.lastId = this.lastId === null ? id : Math.max(this.lastId, id);
        return { kind: 'error', error: String(data.error) };
      }
      this.lastId = this.lastId === null ? id : Math.max(this.lastId, id);
      return { kind: 'subscribed', reload: this.needReload, replayed: data.replayed ?? 0 };
    }
    if (typeof msg.station !== 'string' || msg.station === '') return { kind: 'invalid' };
    if (this.lastId !== null && id <= this.lastId) return { kind: 'duplicate' };
    this.lastId = id;
    return { kind: 'event' };
  }

  // reloaded records that the state was loaded from the JSON API after the last
  // subscription or resync.
  reloaded() {
    this.needReload = false;
  }
}

// wsURL is the live endpoint's address for a page at loc, with the viewer token.
export function wsURL(loc, token) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = token ? `?token=${encodeURIComponent(token)}` : '';
  return `${scheme}//${loc.host}/ws${q}`;
}

// ---------------------------------------------------------------------------------------
// Alerts

// alertKey identifies an alert: ids are per station and per origin (agent or cloud).
export function alertKey(a) {
  return `${a.origin || 'station'}/${a.station}/${a.id}`;
}

// alertTime is when an alert last changed state, in milliseconds.
export function alertTime(a) {
  return parseTime(a.resolved_at) ?? parseTime(a.acknowledged_at) ?? parseTime(a.opened_at) ?? 0;
}

// isActive: not resolved (acknowledged alerts are still active).
export function isActive(a) {
  return a.state !== 'resolved';
}

// mergeAlert puts a into alerts (a Map by alertKey) unless what is there is newer: a live
// event and a reload from the API can arrive in either order, so the state with the later
// transition wins. It returns true when the map changed.
export function mergeAlert(alerts, a) {
  if (!a || a.id === undefined || !a.station) return false;
  const key = alertKey(a);
  const old = alerts.get(key);
  if (old) {
    const to = parseTime(old.updated_at) ?? alertTime(old);
    const tn = parseTime(a.updated_at) ?? alertTime(a);
    if (tn < to) return false;
    if (tn === to && old.state === 'resolved' && a.state !== 'resolved') return false;
  }
  alerts.set(key, a);
  return true;
}

const severityRank = { critical: 0, warning: 1, info: 2 };

// sortAlerts orders alerts newest change first; among equal times the more severe first.
export function sortAlerts(list) {
  return [...list].sort((x, y) => alertTime(y) - alertTime(x) ||
    (severityRank[x.severity] ?? 3) - (severityRank[y.severity] ?? 3) ||
    alertKey(x).localeCompare(alertKey(y)));
}

// ---------------------------------------------------------------------------------------
// Stations and the index

// wqiClass maps a CPCB WQI class to the class name of its colour and a label.
export function wqiClass(cls) {
  switch (cls) {
    case 'A': return { key: 'a', label: 'A' };
    case 'B': return { key: 'b', label: 'B' };
    case 'C': return { key: 'c', label: 'C' };
    case 'D/E': case 'D': case 'E': return { key: 'de', label: 'D/E' };
    default: return { key: 'none', label: '–' };
  }
}

const classRank = { a: 3, b: 2, c: 1, de: 0 };

// sortStations orders station rows ({id, name, wqi, activeAlerts}) by name, or worst
// first: the worst WQI class, then the most active alerts, then the lowest index;
// stations without an index come last.
export function sortStations(rows, mode) {
  const byName = (x, y) => (x.name || x.id).localeCompare(y.name || y.id) || x.id.localeCompare(y.id);
  if (mode === 'name') return [...rows].sort(byName);
  return [...rows].sort((x, y) => {
    const rx = x.wqi ? classRank[wqiClass(x.wqi.class).key] ?? 4 : 5;
    const ry = y.wqi ? classRank[wqiClass(y.wqi.class).key] ?? 4 : 5;
    return rx - ry || (y.activeAlerts || 0) - (x.activeAlerts || 0) ||
      (x.wqi && y.wqi ? x.wqi.wqi - y.wqi.wqi : 0) || byName(x, y);
  });
}

// newer reports whether the point b (with an RFC 3339 time) is at least as new as a.
export function newer(a, b) {
  if (!a) return true;
  return (parseTime(b.time) ?? -Infinity) >= (parseTime(a.time) ?? -Infinity);
}

// ---------------------------------------------------------------------------------------
// Parameters and values

export const PARAMS = {
  ph: { label: 'pH', unit: 'pH' },
  do: { label: 'Dissolved oxygen', unit: 'mg/L' },
  bod: { label: 'BOD', unit: 'mg/L' },
  fc: { label: 'Fecal coliform', unit: 'MPN/100mL' },
  tds: { label: 'TDS', unit: 'mg/L' },
  temp: { label: 'Temperature', unit: 'degC' },
  turbidity: { label: 'Turbidity', unit: 'NTU' },
  conductivity: { label: 'Conductivity', unit: 'uS/cm' },
  chla: { label: 'Chlorophyll-a', unit: 'ug/L' },
};

// paramOrder lists parameters in the order the index weighs them, then the others.
export const paramOrder = ['do', 'fc', 'ph', 'bod', 'temp', 'turbidity', 'tds', 'conductivity', 'chla'];

export function paramLabel(p) {
  return PARAMS[p]?.label ?? p;
}

export function unitLabel(u) {
  return { degC: '°C', 'uS/cm': 'µS/cm', 'ug/L': 'µg/L', pH: '' }[u] ?? u ?? '';
}

// formatValue prints a measured value with as many decimals as its size deserves.
export function formatValue(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  const digits = a >= 1000 ? 0 : a >= 100 ? 1 : 2;
  return v.toLocaleString('en-IN', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

// The order of trust of the fusion policy (design §5a): a probe, a lab, a government
// programme, a satellite, a model.
const sourceRank = { sensor: 0, manual: 1, api: 2, satellite: 3, model: 4 };

// supersedes reports whether a live reading r should replace cur in a station's current
// state: a better source, or the same source and not older. Bad readings never do.
export function supersedes(cur, r) {
  if (!r || r.quality === 'bad') return false;
  if (!cur) return true;
  const rs = sourceRank[r.source] ?? 4;
  const cs = sourceRank[cur.source] ?? 4;
  if (rs !== cs) return rs < cs;
  return newer(cur, r);
}

// CPCB designated-best-use criteria per station class (science.md), for the limit lines
// of the charts. fc is compared with the total-coliform limit.
const CRITERIA = {
  A: { ph: [6.5, 8.5], do: [6, null], bod: [null, 2], fc: [null, 50] },
  B: { ph: [6.5, 8.5], do: [5, null], bod: [null, 3], fc: [null, 500] },
  C: { ph: [6, 9], do: [4, null], bod: [null, 3], fc: [null, 5000] },
  D: { ph: [6.5, 8.5], do: [4, null] },
  E: { ph: [6.0, 8.5], conductivity: [null, 2250] },
};

// limits returns the [min, max] criteria (null for no bound) of param for a station of
// class cls, or null when the class sets none.
export function limits(cls, param) {
  return CRITERIA[cls]?.[param] ?? null;
}

// breach says how value falls outside the criteria of param for class cls: "below 5",
// "above 8.5", or null when it is within them (or the class sets none).
export function breach(cls, param, value) {
  const l = limits(cls, param);
  if (!l || typeof value !== 'number') return null;
  if (l[0] !== null && value < l[0]) return `below ${l[0]}`;
  if (l[1] !== null && value > l[1]) return `above ${l[1]}`;
  return null;
}

// WQI class bounds (lower bound inclusive), for the bands of the WQI chart.
export const WQI_BANDS = [
  { key: 'a', label: 'A', from: 63, to: 100 },
  { key: 'b', label: 'B', from: 50, to: 63 },
  { key: 'c', label: 'C', from: 38, to: 50 },
  { key: 'de', label: 'D/E', from: 0, to: 38 },
];

// ---------------------------------------------------------------------------------------
// Series for the charts

// RANGES are the station page's time ranges: raw readings for the last hour, hourly
// rollups for a day and for a week (a daily bucket would leave 7 points).
export const RANGES = {
  '1h': { label: '1 h', ms: HOUR, bucket: 'raw', bucketMs: 0, limit: 5000 },
  '24h': { label: '24 h', ms: DAY, bucket: '1h', bucketMs: HOUR, limit: 1000 },
  '7d': { label: '7 d', ms: 7 * DAY, bucket: '1h', bucketMs: HOUR, limit: 1000 },
};

// readingsQuery builds the query string of a range's readings of param, ending at nowMs.
export function readingsQuery(range, param, nowMs) {
  const r = RANGES[range] ?? RANGES['1h'];
  const from = new Date(nowMs - r.ms).toISOString();
  const q = new URLSearchParams({ param, from, limit: String(r.limit) });
  if (r.bucket !== 'raw') q.set('bucket', r.bucket);
  return q.toString();
}

// toPoint turns an API reading or rollup into a chart point {t, v, min, max, n, key}.
export function toPoint(r) {
  const t = parseTime(r.time);
  if (t === null || typeof r.value !== 'number') return null;
  const p = { t, v: r.value, min: r.min ?? r.value, max: r.max ?? r.value, n: r.count ?? 1 };
  p.key = r.seq !== undefined ? `${r.source || ''}:${r.seq}:${t}` : `b:${t}`;
  // A value from outside the station's probes keeps its source, to be drawn apart.
  if (r.source && r.source !== 'sensor') p.src = r.source;
  return p;
}

// Series is one chart's points, oldest first, without duplicates. A live reading goes in
// as a point (raw) or into the bucket of its time (rollups), keeping the bucket's
// running mean, minimum and maximum.
export class Series {
  constructor(bucketMs = 0) {
    this.bucketMs = bucketMs;
    this.points = [];
    this.keys = new Set();
  }

  // load replaces the points with an API listing (in any order).
  load(items) {
    this.points = [];
    this.keys = new Set();
    for (const r of items) {
      const p = toPoint(r);
      if (p && !this.keys.has(p.key)) {
        this.keys.add(p.key);
        this.points.push(p);
      }
    }
    this.points.sort((a, b) => a.t - b.t);
  }

  // add puts in one live reading; it returns true when the series changed.
  add(r) {
    const p = toPoint(r);
    if (!p) return false;
    // A value from outside the station stays a point of its own, drawn by its source.
    if (this.bucketMs > 0 && !p.src) return this.addToBucket(p);
    if (this.keys.has(p.key)) return false;
    this.keys.add(p.key);
    let i = this.points.length;
    while (i > 0 && this.points[i - 1].t > p.t) i--;
    this.points.splice(i, 0, p);
    return true;
  }

  addToBucket(p) {
    const seen = `r:${p.key}`;
    if (this.keys.has(seen)) return false;
    this.keys.add(seen);
    const t = Math.floor(p.t / this.bucketMs) * this.bucketMs;
    let i = this.points.length;
    while (i > 0 && this.points[i - 1].t > t) i--;
    // The bucket of t, if there is one: a lab or satellite point may share its time.
    let b = null;
    for (let j = i; j > 0 && this.points[j - 1].t === t; j--) {
      if (!this.points[j - 1].src) {
        b = this.points[j - 1];
        break;
      }
    }
    if (b) {
      b.v = (b.v * b.n + p.v) / (b.n + 1);
      b.min = Math.min(b.min, p.v);
      b.max = Math.max(b.max, p.v);
      b.n += 1;
    } else {
      this.points.splice(i, 0, { t, v: p.v, min: p.v, max: p.v, n: 1, key: `b:${t}` });
    }
    return true;
  }

  // trim drops points older than fromMs.
  trim(fromMs) {
    let i = 0;
    while (i < this.points.length && this.points[i].t < fromMs) i++;
    if (i > 0) this.points.splice(0, i);
  }
}

// downsample keeps at most about 2·bins points of a long series for drawing: in each of
// bins equal time slices the lowest and the highest point, in time order, so that spikes
// stay visible.
export function downsample(points, bins) {
  if (points.length <= bins * 2 || bins < 1) return points;
  const t0 = points[0].t;
  const width = (points[points.length - 1].t - t0) / bins || 1;
  const out = [];
  let lo = null;
  let hi = null;
  let cur = -1;
  const flush = () => {
    if (lo === null) return;
    if (lo === hi) out.push(lo);
    else if (lo.t <= hi.t) out.push(lo, hi);
    else out.push(hi, lo);
  };
  for (const p of points) {
    const b = Math.min(bins - 1, Math.floor((p.t - t0) / width));
    if (b !== cur) {
      flush();
      cur = b;
      lo = hi = p;
      continue;
    }
    if (p.v < lo.v) lo = p;
    if (p.v > hi.v) hi = p;
  }
  flush();
  return out;
}

// segments splits points where two neighbours lie further apart than gapMs, so that a
// chart does not draw a line across an outage.
export function segments(points, gapMs) {
  const out = [];
  let seg = [];
  for (const p of points) {
    if (seg.length > 0 && p.t - seg[seg.length - 1].t > gapMs) {
      out.push(seg);
      seg = [];
    }
    seg.push(p);
  }
  if (seg.length > 0) out.push(seg);
  return out;
}

// gapThreshold is the gap that splits a series: four times its median step, and at
// least minMs.
export function gapThreshold(points, minMs) {
  if (points.length < 3) return Math.max(minMs, DAY);
  const steps = [];
  for (let i = 1; i < points.length; i++) steps.push(points[i].t - points[i - 1].t);
  steps.sort((a, b) => a - b);
  return Math.max(minMs, 4 * steps[Math.floor(steps.length / 2)]);
}

// niceTicks returns about count round values that cover [lo, hi].
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const d = Math.abs(lo) / 10 || 1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
    if (out.length > 50) break;
  }
  if (out[out.length - 1] < hi) out.push(Number((out[out.length - 1] + step).toPrecision(12)));
  return out;
}

const TIME_STEPS = [MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR,
  3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

// timeTicks returns about count round times within [fromMs, toMs] (aligned in the
// time zone whose offset from UTC is offsetMin minutes, as Date.getTimezoneOffset gives
// it) and the step chosen.
export function timeTicks(fromMs, toMs, count = 6, offsetMin = 0) {
  const want = (toMs - fromMs) / Math.max(1, count);
  const step = TIME_STEPS.find((s) => s >= want) ?? TIME_STEPS[TIME_STEPS.length - 1];
  const shift = -offsetMin * MINUTE; // local = UTC + shift
  const out = [];
  let t = Math.ceil((fromMs + shift) / step) * step - shift;
  for (; t <= toMs && out.length < 50; t += step) out.push(t);
  return { ticks: out, step };
}
