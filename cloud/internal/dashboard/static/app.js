// The operator's dashboard: the stations with their index, a live alert feed and a page
// per station, kept current over the live WebSocket and loaded from the JSON API.
//
// Consistency: the page subscribes first and loads from the API once the subscription is
// in effect, so nothing that happens in between is missed; live events and API answers are
// merged so that the newer state wins whatever order they arrive in. After a disconnect it
// resumes after the last event id it received; when the server cannot fill the gap
// (resync) it loads everything again.

import { ago, h, wqiBadge } from './dom.js';
import * as Src from './sources.js';
import * as L from './logic.js';
import { lineChart } from './chart.js';
import * as access from './access.js';
import { createFleet } from './fleet.js';
import * as F from './forecast.js';

const $ = (id) => document.getElementById(id);
const BASE_TITLE = 'Pure Health · River water quality';

// ---------------------------------------------------------------------------------------
// State

const S = {
  token: '',
  stations: new Map(), // id -> {info, wqi, lastSeen, online}
  alerts: new Map(), // alertKey -> alert
  fresh: new Map(), // alertKey -> until (ms): opened while watching
  historyNext: '',
  sort: 'worst',
  detail: null, // the station page's state
  range: '1h',
  retryAt: null, // when the next connection attempt starts
  liveUntil: null, // when the page last stopped being live (null: live, or never was)
};

function readToken() {
  const url = new URL(location.href);
  const t = url.searchParams.get('token');
  if (t) {
    access.keep(t);
    // Out of the address bar, the history and screenshots.
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    return t;
  }
  return access.saved();
}

// ---------------------------------------------------------------------------------------
// JSON API

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const headers = { Accept: 'application/json' };
  if (S.token) headers.Authorization = `Bearer ${S.token}`;
  let r;
  try {
    r = await fetch(path, { headers, cache: 'no-store' });
  } catch {
    throw new APIError(0, 'the cloud does not answer');
  }
  if (r.status === 401) {
    showTokenNeeded();
    throw new APIError(401, 'a viewer token is required');
  }
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      const body = await r.json();
      if (body && body.error) msg = body.error;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new APIError(r.status, msg);
  }
  return r.json();
}

// listAll follows the "next" cursors of a listing, up to max items.
async function listAll(path, key, max) {
  const out = [];
  let cursor = '';
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    out.push(...(page[key] || []));
    if (!page.next || out.length >= max) return { items: out, next: page.next || '' };
    cursor = page.next;
  }
}

// pool runs fn over items, n at a time.
async function pool(items, n, fn) {
  let i = 0;
  const worker = async () => {
    while (i < items.length) await fn(items[i++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

const stationPath = (id) => `/v1/stations/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------
// Stations and alerts

function station(id) {
  let s = S.stations.get(id);
  if (!s) {
    s = { info: { id, name: id, class: '' }, wqi: null, lastSeen: null, online: null, placeholder: true };
    S.stations.set(id, s);
  }
  return s;
}

// known returns the page's record of station id, or a stand-in that is not kept (a
// mistyped address must not add a station to the list).
function known(id) {
  return S.stations.get(id) ?? { info: { id, name: id, class: '' }, wqi: null, lastSeen: null, online: null, placeholder: true };
}

function seen(s, ms) {
  if (ms !== null && (s.lastSeen === null || ms > s.lastSeen)) s.lastSeen = ms;
}

function applyStationInfo(info) {
  const s = station(info.id);
  s.info = info;
  s.placeholder = false;
  seen(s, L.parseTime(info.last_batch_at));
  s.online = info.offline_since ? false : info.last_batch_at ? true : null;
}

function setWQI(s, w) {
  if (w && L.newer(s.wqi, w)) s.wqi = w;
}

function activeCount(id) {
  let n = 0;
  for (const a of S.alerts.values()) if (a.station === id && L.isActive(a)) n++;
  return n;
}

async function loadStations() {
  const { items } = await listAll('/v1/stations?limit=1000', 'stations', 10000);
  for (const info of items) applyStationInfo(info);
  return items;
}

async function loadStatus(id) {
  const st = await api(`${stationPath(id)}/status`);
  const s = station(id);
  setWQI(s, st.wqi);
  s.fused = Src.pickFused(s.fused, st.fused_wqi);
  seen(s, L.parseTime(st.last_batch_at));
  return st;
}

async function loadAlerts() {
  const active = await listAll('/v1/alerts?active=true&limit=1000', 'alerts', 5000);
  for (const a of active.items) L.mergeAlert(S.alerts, a);
  const recent = await api('/v1/alerts?limit=100');
  for (const a of recent.alerts || []) L.mergeAlert(S.alerts, a);
  S.historyNext = recent.next || '';
}

async function loadOlderAlerts() {
  if (!S.historyNext) return;
  const btn = $('more-history');
  btn.disabled = true;
  try {
    const page = await api(`/v1/alerts?limit=100&cursor=${encodeURIComponent(S.historyNext)}`);
    for (const a of page.alerts || []) L.mergeAlert(S.alerts, a);
    S.historyNext = page.next || '';
    render();
  } catch (e) {
    showBanner(`Could not load older alerts: ${e.message}.`);
  } finally {
    btn.disabled = false;
  }
}

// Reloads: each request is served by a load that starts after it; a failing load is
// retried with backoff until one succeeds.
const reload = { want: 0, done: 0, running: false, failures: 0 };

function requestReload() {
  reload.want++;
  if (!reload.running) runReloads();
}

async function runReloads() {
  reload.running = true;
  while (reload.done < reload.want) {
    const gen = reload.want;
    try {
      const list = await loadStations();
      await Promise.all([
        loadAlerts(),
        pool(list.map((st) => st.id), 6, loadStatus),
      ]);
      if (S.detail) await loadDetail(S.detail.id, false);
      if (fleet?.visible) await fleet.load();
      reload.done = gen;
      reload.failures = 0;
      if (gen === reload.want) resume.reloaded();
      hideBanner('load');
      render();
    } catch (e) {
      const wait = L.backoffDelay(reload.failures++);
      if (e.status !== 401) {
        showBanner(`Could not load the stations from the cloud: ${e.message}. Trying again in ${Math.round(wait / 1000)} s.`, 'load');
      }
      render();
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  reload.running = false;
}

// refreshStations picks up new stations and their last batch, between events.
let refreshing = false;
async function refreshStations() {
  if (refreshing || document.hidden) return;
  refreshing = true;
  try {
    const before = new Set(S.stations.keys());
    const placeholders = [...S.stations.values()].filter((s) => s.placeholder).map((s) => s.info.id);
    const list = await loadStations();
    const added = list.map((st) => st.id).filter((id) => !before.has(id) || placeholders.includes(id));
    await pool(added, 4, loadStatus);
    render();
  } catch {
    // The next refresh or reload tries again; the banner belongs to reloads.
  } finally {
    refreshing = false;
  }
}

// ---------------------------------------------------------------------------------------
// Live connection

const link = new L.Link();
const resume = new L.Resume();
let ws = null;
let retryTimer = null;
let lastRecv = 0;
let probeSent = null;

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  S.retryAt = null;
  link.connecting();
  renderConn();
  let sock;
  try {
    sock = new WebSocket(L.wsURL(location, S.token));
  } catch {
    closed(null);
    return;
  }
  ws = sock;
  sock.onopen = () => {
    if (ws !== sock) return;
    link.open();
    lastRecv = Date.now();
    probeSent = null;
    sock.send(JSON.stringify(resume.subscribe(['*'])));
  };
  sock.onmessage = (ev) => {
    if (ws !== sock) return;
    lastRecv = Date.now();
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    onMessage(msg);
  };
  // An error is always followed by close.
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    ws = null;
    closed(ev);
  };
}

// drop abandons the current socket at once (a dead connection's close handshake could
// take minutes) and schedules the next attempt.
function drop() {
  const sock = ws;
  if (!sock) return;
  ws = null;
  sock.onopen = sock.onmessage = sock.onclose = null;
  try {
    sock.close(4000, 'no answer');
  } catch {
    // Already closing.
  }
  closed(null);
}

async function closed(ev) {
  const opened = link.opened;
  if (link.state === L.LIVE) S.liveUntil = Date.now();
  let delay = link.closed();
  // A dropped connection shows at once; a failed attempt once the probe below says why,
  // so that the announced state does not flicker.
  if (opened) renderConn();
  if (ev && ev.code === 1008 && /slow/.test(ev.reason || '')) delay = Math.max(delay, 2000);
  if (!opened) {
    // The browser does not tell the page why a handshake failed: ask over plain HTTP.
    const status = await probeStatus();
    if (status === 401) {
      delay = link.unauthorized();
      showTokenNeeded();
    } else if (status !== 0) {
      link.reachable();
    }
  }
  if (ws) return; // a retry started meanwhile
  S.retryAt = Date.now() + delay;
  renderConn();
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delay);
}

// probeStatus asks the live endpoint over plain HTTP and returns the status of the
// answer, 0 when nothing answered.
async function probeStatus() {
  try {
    const headers = S.token ? { Authorization: `Bearer ${S.token}` } : {};
    const r = await fetch('/ws', { headers, cache: 'no-store' });
    return r.status;
  } catch {
    return 0;
  }
}

function retryNow() {
  if (ws) return;
  connect();
}

function onMessage(msg) {
  const r = resume.accept(msg);
  switch (r.kind) {
    case 'subscribed':
      probeSent = null;
      if (link.state !== L.LIVE) {
        link.subscribed();
        S.liveUntil = null;
        hideBanner('token');
        renderConn();
      }
      if (r.reload) requestReload();
      break;
    case 'resync':
      // The subscription's acknowledgement follows and asks for the reload.
      showBanner('The live stream had a gap the server could not replay; reloading everything from the cloud.', 'resync', 8000);
      break;
    case 'error':
      console.warn('live events: the server refused a message:', r.error);
      break;
    case 'event':
      applyEvent(msg);
      break;
    default:
      break;
  }
}

function applyEvent(msg) {
  const d = msg.data || {};
  const s = station(msg.station);
  if (s.placeholder) refreshSoon();
  // Data from a station never seen means it has started sending; going offline and
  // coming back are for the server's status events to say.
  // A fused WQI (source "fused") is computed by the cloud from every source: it says
  // nothing of whether the station itself is sending, and is not the station's own index.
  const fused = msg.type === 'wqi' && d.source === 'fused';
  if (s.online === null && (msg.type === 'reading' || msg.type === 'wqi') && !fused) s.online = true;
  switch (msg.type) {
    case 'reading':
      seen(s, L.parseTime(d.time));
      if (S.detail && S.detail.id === msg.station) detailReading(d);
      break;
    case 'wqi':
      if (fused) {
        s.fused = Src.pickFused(s.fused, d);
        break;
      }
      setWQI(s, d);
      seen(s, L.parseTime(d.time));
      if (S.detail && S.detail.id === msg.station) detailWQI(d);
      break;
    case 'alert': {
      const a = { station: msg.station, ...d };
      if (L.mergeAlert(S.alerts, a) && (d.transition === 'opened' || d.transition === 'escalated')) {
        S.fresh.set(L.alertKey(a), Date.now() + 60000);
        const name = s.info.name && s.info.name !== s.info.id ? `${s.info.name} (${s.info.id})` : s.info.id;
        announce(`${d.transition === 'escalated' ? 'Escalated' : 'New'} ${d.severity || ''} alert at ${name}: ${d.message || d.rule || ''}`);
      }
      break;
    }
    case 'prediction':
      F.onPrediction(msg.station, d);
      break;
    case 'status':
      fleet?.status(msg.station, d);
      if (d.health) seen(s, L.parseTime(d.health.last_seen));
      if (typeof d.online === 'boolean') s.online = d.online;
      seen(s, L.parseTime(d.last_seen));
      if (d.backfill) {
        // Readings that arrived late (a station's backlog) come as a count, not one by
        // one: the page showing that station reads them from the API.
        seen(s, L.parseTime(d.backfill.to));
        if (S.detail && S.detail.id === msg.station) reloadDetailSoon(msg.station);
      }
      break;
    default:
      break;
  }
  render();
}

let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshStations();
  }, 1000);
}

// heartbeatCheck proves that messages still flow on an open socket: after a quiet spell
// it sends a subscribe that changes nothing, which the server acknowledges.
function heartbeatCheck() {
  if (!ws || ws.readyState !== WebSocket.OPEN || link.state !== L.LIVE) return;
  const now = Date.now();
  switch (L.heartbeat(now, lastRecv, probeSent)) {
    case 'probe':
      probeSent = now;
      ws.send(JSON.stringify({ type: 'subscribe', stations: ['*'] }));
      break;
    case 'dead':
      drop();
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------
// Banners and announcements

let bannerOwner = '';
let bannerTimer = null;
function showBanner(text, owner = 'misc', ms = 0) {
  const b = $('banner');
  b.textContent = text;
  b.hidden = false;
  bannerOwner = owner;
  clearTimeout(bannerTimer);
  if (ms > 0) bannerTimer = setTimeout(() => hideBanner(owner), ms);
}

function hideBanner(owner) {
  if (bannerOwner !== owner) return;
  $('banner').hidden = true;
  bannerOwner = '';
}

function showTokenNeeded() {
  showBanner(S.token
    ? 'The cloud refused the token this page has: sign in again.'
    : 'This cloud needs a viewer token: sign in.', 'token');
  signIn(S.token ? 'The cloud refused the token this page had.' : 'This cloud shows its data to signed-in viewers only.');
}

// signIn asks for a token and, given one, starts over with it: the live stream and the
// data.
async function signIn(why) {
  const token = await access.ask(why);
  if (!token) return;
  S.token = token;
  hideBanner('token');
  requestReload();
  retryNow();
}

// ack acknowledges an alert in the cloud (an operator's token is needed: the form asks
// for one when the page's token is not).
async function ack(a, button) {
  button.disabled = true;
  try {
    L.mergeAlert(S.alerts, await access.acknowledge(a, S.token));
    render();
  } catch (e) {
    button.disabled = false;
    if (e.status === 401 || e.status === 403) {
      const token = await access.ask(e.status === 403
        ? 'Acknowledging needs an operator token; this one may only read.'
        : 'Acknowledging needs an operator token.');
      if (token) {
        S.token = token;
        ack(a, button);
      }
      return;
    }
    if (e.alert) L.mergeAlert(S.alerts, e.alert);
    showBanner(`Could not acknowledge: ${e.message}.`, 'ack', 8000);
    render();
  }
}

// announce tells screen readers about new alerts through a polite live region; a burst
// (a replay after a reconnect) becomes one announcement.
let announcements = [];
let announceTimer = null;
function announce(text) {
  announcements.push(text);
  if (announceTimer) return;
  $('announcer').textContent = '';
  announceTimer = setTimeout(() => {
    const list = announcements;
    announcements = [];
    announceTimer = null;
    $('announcer').textContent = list.length === 1 ? list[0] : `${list.length} new alerts. The latest: ${list[list.length - 1]}`;
  }, 250);
}

// ---------------------------------------------------------------------------------------
// Rendering

const CONN_TEXT = {
  [L.CONNECTING]: ['CONNECTING', 'connecting to the live stream'],
  [L.LIVE]: ['LIVE', 'live updates are flowing'],
  [L.RECONNECTING]: ['RECONNECTING', 'the live connection dropped'],
  [L.OFFLINE]: ['OFFLINE', 'the cloud cannot be reached; what you see may be out of date'],
  [L.UNAUTHORIZED]: ['NO ACCESS', 'a viewer token is needed'],
};

function renderConn() {
  const c = $('conn');
  c.dataset.state = link.state;
  const [label, why] = CONN_TEXT[link.state];
  if ($('conn-label').textContent !== label) $('conn-label').textContent = label;
  if ($('conn-why').textContent !== `: ${why}`) $('conn-why').textContent = `: ${why}`;
  $('retry').hidden = !(link.state === L.OFFLINE || link.state === L.RECONNECTING || link.state === L.UNAUTHORIZED);
  tickConn();
}

function tickConn() {
  const parts = [];
  if (link.state !== L.LIVE && S.liveUntil !== null) {
    parts.push(`not live since ${new Date(S.liveUntil).toLocaleTimeString('en-IN', { hour: '2-digit', minute: '2-digit', hour12: false })}`);
  }
  if (S.retryAt !== null && !ws) {
    const s = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
    parts.push(s > 0 ? `retry in ${s} s` : 'retrying…');
  }
  const detail = parts.join(' · ');
  if ($('conn-detail').textContent !== detail) $('conn-detail').textContent = detail;
}

let renderPending = false;
function render() {
  if (renderPending) return;
  renderPending = true;
  // A burst of replayed events renders once.
  setTimeout(() => {
    renderPending = false;
    renderOverview();
    if (S.detail) renderDetail();
    renderTitle();
  }, 30);
}

function renderTitle() {
  let active = 0;
  let critical = 0;
  for (const a of S.alerts.values()) {
    if (!L.isActive(a)) continue;
    active++;
    if (a.severity === 'critical') critical++;
  }
  const t = active > 0 ? `(${active}) ${BASE_TITLE}` : BASE_TITLE;
  const page = S.detail ? `${S.detail.id} · ${t}` : t;
  if (document.title !== page) document.title = page;
  const sum = $('alert-summary');
  sum.hidden = active === 0;
  sum.dataset.critical = critical > 0 ? 'yes' : 'no';
  const sumLink = $('alert-summary-link');
  // On a station page or the fleet the summary covers every station and leads back to
  // the overview.
  const away = S.detail || fleet?.visible;
  sumLink.setAttribute('href', away ? '#/' : '#alerts-h');
  sumLink.textContent = `${active} active alert${active === 1 ? '' : 's'}` +
    (critical > 0 ? `, ${critical} critical` : '') + (away ? ' across all stations — see the overview' : ' — see the list');
}

function stationRow(s) {
  return { id: s.info.id, name: s.info.name, wqi: s.wqi, activeAlerts: activeCount(s.info.id), s };
}

function stateLabel(s) {
  if (s.online === true) return h('span', { class: 'state state-online' }, 'Online');
  if (s.online === false) return h('span', { class: 'state state-offline' }, 'Offline');
  return h('span', { class: 'state state-unknown' }, 'No data yet');
}

function categoryText(w) {
  if (!w) return 'No index yet';
  let t = w.category || '';
  if (w.partial) t += ` · partial, without ${(w.missing || []).map(L.paramLabel).join(', ') || 'some parameters'}`;
  return t;
}

function fillStation(li, row) {
  const s = row.s;
  const sig = JSON.stringify([row.name, s.info.class, row.wqi?.wqi, row.wqi?.class, row.wqi?.category,
    row.wqi?.partial, row.wqi?.missing, row.activeAlerts, s.online, s.lastSeen, s.fused?.wqi, s.fused?.partial, s.fused?.inputs]);
  if (li.dataset.sig === sig) return;
  li.dataset.sig = sig;
  let a = li.firstElementChild;
  if (!a) {
    a = h('a', { class: 'card' });
    li.append(a);
  }
  a.href = `#/station/${encodeURIComponent(row.id)}`;
  li.dataset.wqi = L.wqiClass(row.wqi?.class).key;
  const n = row.activeAlerts;
  a.replaceChildren(
    wqiBadge(row.wqi),
    h('span', { class: 'card-main' },
      h('span', { class: 'st-name' }, row.name || row.id),
      h('span', { class: 'st-id' }, row.id, s.info.class ? ` · designated class ${s.info.class}` : ''),
      h('span', { class: 'st-cat' }, categoryText(row.wqi)), Src.fusedCard(s.fused)),
    h('span', { class: 'card-side' },
      stateLabel(s),
      h('span', { class: 'seen' }, ago(s.lastSeen, 'seen')),
      h('span', { class: `alert-count${n > 0 ? ' has-alerts' : ''}` },
        n === 0 ? 'No active alerts' : `${n} active alert${n === 1 ? '' : 's'}`)));
}

// reconcile keeps list's children in the order of items, reusing the element of each key
// so that focus and scroll positions survive live updates.
function reconcile(list, items, keyOf, fill, make) {
  const focused = document.activeElement;
  const focusKey = list.contains(focused) ? focused.closest('li')?.dataset.key : null;
  const old = new Map([...list.children].map((li) => [li.dataset.key, li]));
  items.forEach((item, i) => {
    const key = keyOf(item);
    let li = old.get(key);
    if (li) old.delete(key);
    else {
      li = make(item);
      li.dataset.key = key;
    }
    fill(li, item);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  for (const li of old.values()) li.remove();
  if (focusKey && !list.contains(document.activeElement)) {
    const li = [...list.children].find((x) => x.dataset.key === focusKey);
    li?.querySelector('a, button')?.focus();
  }
}

function renderOverview() {
  const rows = L.sortStations([...S.stations.values()].map(stationRow), S.sort);
  reconcile($('station-list'), rows, (r) => r.id, fillStation, () => h('li', { class: 'station' }));
  $('station-count').textContent = rows.length ? `(${rows.length})` : '';
  const empty = $('stations-empty');
  empty.hidden = rows.length > 0;
  if (rows.length === 0 && reload.done > 0) empty.textContent = 'No stations are registered yet (ph-cloud station add).';

  const all = L.sortAlerts([...S.alerts.values()]);
  const active = all.filter(L.isActive);
  const resolved = all.filter((a) => !L.isActive(a)).slice(0, 200);
  renderAlerts($('active-alerts'), active, true);
  renderAlerts($('history-alerts'), resolved, true);
  $('active-count').textContent = `(${active.length})`;
  $('active-empty').hidden = active.length > 0;
  $('history-empty').hidden = resolved.length > 0;
  $('more-history').hidden = !S.historyNext;
}

function alertWhen(a) {
  switch (a.state) {
    case 'resolved': return ago(L.parseTime(a.resolved_at), 'resolved');
    case 'acknowledged': return ago(L.parseTime(a.acknowledged_at) ?? L.parseTime(a.opened_at), 'acknowledged');
    default: return ago(L.parseTime(a.opened_at), 'opened');
  }
}

function fillAlert(li, a, withStation) {
  const key = L.alertKey(a);
  const fresh = (S.fresh.get(key) ?? 0) > Date.now();
  const sig = JSON.stringify([a.state, a.severity, a.message, a.updated_at, a.acknowledged_by, fresh, withStation]);
  if (li.dataset.sig === sig) return;
  li.dataset.sig = sig;
  const sev = a.severity || 'info';
  li.className = `alert sev-${sev} state-${a.state}${fresh ? ' fresh' : ''}`;
  const s = S.stations.get(a.station);
  const name = s && s.info.name && s.info.name !== a.station ? s.info.name : '';
  li.replaceChildren(
    h('span', { class: 'sev' }, sev.toUpperCase()),
    h('div', { class: 'alert-body' },
      h('p', { class: 'alert-msg' }, fresh ? h('span', { class: 'new-tag' }, 'NEW') : null, a.message || a.rule || 'alert'),
      h('p', { class: 'alert-meta' },
        withStation ? h('a', { href: `#/station/${encodeURIComponent(a.station)}` }, name ? `${name} (${a.station})` : a.station) : null,
        withStation ? ' · ' : null,
        h('span', { class: 'alert-state' }, a.state), a.acknowledged_by ? ` by ${a.acknowledged_by}` : '',
        ' · ', alertWhen(a),
        a.param ? ` · ${L.paramLabel(a.param)}` : ''),
      F.evidence(a)),
    a.state === 'active' ? ackButton(a) : null);
}

function ackButton(a) {
  const b = h('button', { class: 'btn btn-small ack', type: 'button' }, 'Acknowledge');
  b.addEventListener('click', () => ack(a, b));
  return b;
}

function renderAlerts(list, alerts, withStation) {
  reconcile(list, alerts, L.alertKey, (li, a) => fillAlert(li, a, withStation), () => h('li'));
}

// ---------------------------------------------------------------------------------------
// The station page

function newDetail(id) {
  return { id, gen: 0, status: null, now: new Map(), series: new Map(), wqi: new L.Series(0), loaded: false, error: '' };
}

async function loadDetail(id, showLoading = true) {
  const d = S.detail;
  if (!d || d.id !== id) return;
  const gen = ++d.gen;
  const range = L.RANGES[S.range];
  const now = Date.now();
  if (showLoading) $('st-range-note').textContent = 'Loading…';
  try {
    if (known(id).placeholder) {
      applyStationInfo(await api(stationPath(id)));
    }
    const [status, alerts] = await Promise.all([
      loadStatus(id),
      api(`/v1/alerts?station=${encodeURIComponent(id)}&limit=200`),
    ]);
    for (const a of alerts.alerts || []) L.mergeAlert(S.alerts, a);
    const params = new Set(Object.keys(status.params || {}));
    for (const p of d.series.keys()) params.add(p);
    const wqiPage = api(`${stationPath(id)}/wqi?from=${encodeURIComponent(new Date(now - range.ms).toISOString())}&limit=5000`);
    F.load(api, id, [...params, 'wqi']).then(() => render());
    const series = new Map();
    await pool([...params], 4, async (p) => {
      const page = await api(`${stationPath(id)}/readings?${L.readingsQuery(S.range, p, now)}`);
      const sr = new L.Series(range.bucketMs);
      sr.load((page.readings || []).filter((r) => r.quality !== 'bad'));
      sr.truncated = !!page.next;
      series.set(p, sr);
    });
    // Lab, government and satellite values are few: every one in the range, whatever the bucket.
    for (const [p, ms] of await Src.loadMarkers(api, stationPath(id), [...params], now - range.ms)) {
      Src.addMarkers(series.get(p), ms);
    }
    const wqi = await wqiPage;
    if (S.detail !== d || d.gen !== gen) return; // a newer load or another page
    d.status = status;
    const fresh = new Map(Object.entries(status.params || {}));
    for (const [p, v] of d.now) {
      // A live reading newer than the answer.
      const n = fresh.get(p);
      if (!n || (L.parseTime(v.time) ?? 0) > (L.parseTime(n.time) ?? 0)) fresh.set(p, v);
    }
    d.now = fresh;
    // Live points that arrived while the listings were read may be missing from them.
    for (const [p, sr] of series) keepRecent(d.series.get(p), sr, now - 60e3);
    d.series = series;
    const w = new L.Series(0);
    w.load((wqi.wqi || []).map((x) => ({ ...x, value: x.wqi, source: 'wqi' })));
    keepRecent(d.wqi, w, now - 60e3);
    d.wqi = w;
    d.loaded = true;
    d.error = '';
    const truncated = [...series.values()].some((s) => s.truncated);
    $('st-range-note').textContent = (range.bucket === 'raw' ? 'Every reading of the last hour' :
      `Hourly averages with their range, last ${range.label}`) + (truncated ? ' (the newest part only: too many readings)' : '') + '.';
  } catch (e) {
    if (S.detail !== d || d.gen !== gen) return;
    d.error = e.status === 404 ? `There is no station ${id}.` : `Could not load this station: ${e.message}.`;
    $('st-range-note').textContent = '';
  }
  render();
}

// reloadDetailSoon reloads the station page once for a run of backfill notices: a
// station draining days of backlog sends one per batch.
let detailTimer = null;
function reloadDetailSoon(id) {
  if (detailTimer) return;
  detailTimer = setTimeout(() => {
    detailTimer = null;
    loadDetail(id, false);
  }, 2000);
}

// keepRecent copies to a freshly loaded raw series the points newer than fromMs that the
// series it replaces holds and it lacks.
function keepRecent(from, to, fromMs) {
  if (!from || from.bucketMs !== to.bucketMs || to.bucketMs > 0) return;
  for (const p of from.points) {
    if (p.t > fromMs && !to.keys.has(p.key)) {
      to.keys.add(p.key);
      to.points.push(p);
    }
  }
  to.points.sort((a, b) => a.t - b.t);
}

function detailReading(r) {
  const d = S.detail;
  if (L.supersedes(d.now.get(r.param), r)) {
    d.now.set(r.param, { value: r.value, unit: r.unit, time: r.time, source: r.source, sensor: r.sensor, quality: r.quality });
  }
  if (r.quality === 'bad') return;
  let sr = d.series.get(r.param);
  if (!sr) {
    sr = new L.Series(L.RANGES[S.range].bucketMs);
    d.series.set(r.param, sr);
  }
  sr.add(r);
}

function detailWQI(w) {
  S.detail.wqi.add({ ...w, value: w.wqi, source: 'wqi' });
}

function showStation(id) {
  if (!S.detail || S.detail.id !== id) {
    S.detail = newDetail(id);
    $('st-now').replaceChildren();
    $('st-charts').replaceChildren();
    $('chart-wqi').replaceChildren();
    $('st-active').replaceChildren();
    $('st-history').replaceChildren();
    loadDetail(id);
  }
  $('view-overview').hidden = true;
  $('view-station').hidden = false;
  render();
}

// The Fleet page (fleet.js): every station's health in one table.
let fleet = null;

function showFleet() {
  S.detail = null;
  $('view-station').hidden = true;
  $('view-overview').hidden = true;
  fleet.show();
  render();
}

function showOverview() {
  S.detail = null;
  $('view-station').hidden = true;
  $('view-overview').hidden = false;
  render();
}

function renderDetail() {
  const d = S.detail;
  const s = known(d.id);
  const title = s.info.name && s.info.name !== d.id ? s.info.name : d.id;
  if ($('st-title').textContent !== title) $('st-title').textContent = title;
  $('st-meta').replaceChildren(
    `${d.id}`, s.info.class ? ` · designated best use class ${s.info.class}` : '', ' · ',
    stateLabel(s), ' · last seen ', ago(s.lastSeen));
  $('st-wqi').replaceChildren(wqiBadge(s.wqi, true), h('span', { class: 'wqi-cat' }, categoryText(s.wqi)));
  Src.renderFused($('st-fused'), s.wqi, s.fused);
  const err = $('st-error');
  err.hidden = !d.error;
  err.textContent = d.error;

  // Current state.
  const cls = s.info.class;
  const rows = [...d.now.entries()].sort(([a], [b]) => orderOf(a) - orderOf(b));
  reconcile($('st-now'), rows, ([p]) => p, (tr, [p, v]) => {
    const sig = JSON.stringify([v, cls]);
    if (tr.dataset.sig === sig) return;
    tr.dataset.sig = sig;
    const where = `${v.source || ''}${v.sensor ? ` ${v.sensor}` : ''}`;
    const out = L.breach(cls, p, v.value);
    tr.replaceChildren(
      h('th', { scope: 'row' }, L.paramLabel(p)),
      h('td', { class: 'num' }, `${L.formatValue(v.value)} ${L.unitLabel(v.unit)}`.trim(),
        out ? [' ', h('span', { class: 'breach' }, `${out} (class ${cls} limit)`)] : null,
        // At phone width the columns after this one fold into this line.
        h('span', { class: 'sub' }, `${where} · `, ago(L.parseTime(v.time)), ' · ',
          h('span', { class: `q-${v.quality}` }, v.quality || ''))),
      h('td', {}, Src.sourceCell(v)),
      h('td', {}, ago(L.parseTime(v.time))),
      h('td', { class: `q-${v.quality}` }, v.quality || ''));
  }, () => h('tr'));
  $('st-now-empty').hidden = !d.loaded || rows.length > 0;

  // Alerts.
  const mine = L.sortAlerts([...S.alerts.values()].filter((a) => a.station === d.id));
  const active = mine.filter(L.isActive);
  const resolved = mine.filter((a) => !L.isActive(a)).slice(0, 100);
  renderAlerts($('st-active'), active, false);
  renderAlerts($('st-history'), resolved, false);
  $('st-active-empty').hidden = active.length > 0;
  $('st-history-empty').hidden = resolved.length > 0;

  renderCharts();
}

function orderOf(p) {
  const i = L.paramOrder.indexOf(p);
  return i < 0 ? 100 : i;
}

function renderCharts() {
  const d = S.detail;
  if (!d || !d.loaded || $('view-station').hidden) return;
  const range = L.RANGES[S.range];
  const to = Date.now();
  const from = to - range.ms;
  const cls = known(d.id).info.class;
  const minGap = range.bucketMs > 0 ? 3 * range.bucketMs : 5 * 60e3;

  d.wqi.trim(from);
  const lastW = d.wqi.points[d.wqi.points.length - 1];
  $('wqi-latest').textContent = lastW ? `latest ${lastW.v.toFixed(1)}` : '';
  const fw = F.chartPlan(d.id, 'wqi', to, range.ms, lastW?.t);
  lineChart($('chart-wqi'), d.wqi.points, from, fw.toMs, {
    title: `Water Quality Index, last ${range.label}`,
    summary: summary(d.wqi.points, ''),
    bands: L.WQI_BANDS, yMin: 0, yMax: 100, minGapMs: minGap, empty: 'No index in this range', ...fw.opts,
  });
  F.note($('chart-wqi'), fw.note);

  const params = [...d.series.keys()].sort((a, b) => orderOf(a) - orderOf(b));
  const grid = $('st-charts');
  reconcile(grid, params, (p) => p, (fig, p) => {
    const sr = d.series.get(p);
    sr.trim(from);
    const unit = L.unitLabel(d.now.get(p)?.unit ?? L.PARAMS[p]?.unit);
    const last = sr.points[sr.points.length - 1];
    fig.querySelector('.latest').textContent = last ? `latest ${L.formatValue(last.v)} ${unit}`.trim() : '';
    fig.querySelector('figcaption .label').textContent = `${L.paramLabel(p)}${unit ? ` (${unit})` : ''}`;
    const lim = L.limits(cls, p);
    const fp = F.chartPlan(d.id, p, to, range.ms, last?.t);
    lineChart(fig.querySelector('.chart-host'), sr.points, from, fp.toMs, {
      title: `${L.paramLabel(p)}, last ${range.label}`,
      summary: summary(sr.points, unit),
      band: range.bucketMs > 0, limits: lim ?? [], minGapMs: minGap, ...fp.opts,
    });
    F.note(fig.querySelector('.chart-host'), fp.note);
  }, () => h('figure', { class: 'chart-card' },
    h('figcaption', {}, h('span', { class: 'label' }), ' ', h('span', { class: 'latest' })),
    h('div', { class: 'chart-host' })));
}

function summary(points, unit) {
  if (points.length === 0) return 'No data in this range.';
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of points) {
    lo = Math.min(lo, p.v);
    hi = Math.max(hi, p.v);
  }
  const last = points[points.length - 1];
  return `${points.length} points from ${L.formatValue(lo)} to ${L.formatValue(hi)} ${unit}; latest ${L.formatValue(last.v)} ${unit} at ${new Date(last.t).toLocaleTimeString('en-IN')}.`;
}

// ---------------------------------------------------------------------------------------
// Routing, controls, timers

function stationFromHash(hash) {
  const m = /^#\/station\/([^/]+)$/.exec(hash);
  if (!m) return null;
  try {
    const id = decodeURIComponent(m[1]);
    return /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : null;
  } catch {
    return null;
  }
}

// route shows the view the address names: #/station/ID, #/fleet or the overview.
function route(focus) {
  if (location.hash === '#/fleet') {
    showFleet();
    if (focus) fleet.focus();
    return;
  }
  fleet.hide();
  const id = stationFromHash(location.hash);
  if (id) {
    showStation(id);
    if (focus) $('st-title').focus();
  } else {
    showOverview();
    if (focus) $('stations-h').focus();
  }
}

function setPressed(attr, value) {
  for (const b of document.querySelectorAll(`[${attr}]`)) {
    b.setAttribute('aria-pressed', String(b.getAttribute(attr) === value));
  }
}

function tick() {
  const now = Date.now();
  for (const t of document.querySelectorAll('time[data-ago]')) {
    const p = t.dataset.prefix;
    const s = (p ? `${p} ` : '') + L.formatAgo(Number(t.dataset.ago), now);
    if (t.textContent !== s) t.textContent = s;
  }
  tickConn();
  let expired = false;
  for (const [k, until] of S.fresh) {
    if (until <= now) {
      S.fresh.delete(k);
      expired = true;
    }
  }
  if (expired) render();
}

function start() {
  S.token = readToken();
  fleet = createFleet($('view-fleet'), { api, h, ago, reconcile, nameOf: (id) => S.stations.get(id)?.info.name });
  for (const b of document.querySelectorAll('[data-sort]')) {
    b.addEventListener('click', () => {
      S.sort = b.dataset.sort;
      setPressed('data-sort', S.sort);
      render();
    });
  }
  for (const b of document.querySelectorAll('[data-range]')) {
    b.addEventListener('click', () => {
      if (S.range === b.dataset.range) return;
      S.range = b.dataset.range;
      setPressed('data-range', S.range);
      if (S.detail) {
        S.detail.series = new Map([...S.detail.series.keys()].map((p) => [p, new L.Series(L.RANGES[S.range].bucketMs)]));
        S.detail.loaded = false;
        loadDetail(S.detail.id);
      }
    });
  }
  $('retry').addEventListener('click', retryNow);
  $('more-history').addEventListener('click', loadOlderAlerts);
  window.addEventListener('hashchange', () => route(true));
  // Links within the page (skip link, alert summary) move the focus without touching the
  // address, which holds the route.
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest?.('a[href^="#"]');
    const href = a?.getAttribute('href') ?? '';
    if (!a || href.startsWith('#/')) return;
    const target = document.getElementById(href.slice(1));
    if (!target) return;
    ev.preventDefault();
    if (!target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
    target.focus();
    target.scrollIntoView({ block: 'start' });
  });
  window.addEventListener('online', retryNow);
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(renderCharts, 150);
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refreshStations();
  });

  route(false);
  renderConn();
  requestReload();
  connect();
  setInterval(tick, 1000);
  setInterval(heartbeatCheck, 5000);
  setInterval(refreshStations, 60000);
  // The time axis of the charts moves on.
  setInterval(() => {
    if (S.detail) renderCharts();
  }, 30000);
}

start();
