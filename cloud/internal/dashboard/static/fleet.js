// The Fleet page (#/fleet): every station in one sortable table — when the cloud last
// heard from it, its agent version, hours of autonomy, backlog, probes and the next
// calibration due — loaded from GET /v1/fleet and kept current by the live health events
// (status messages whose data holds "health": the station's fleet entry, about once a
// minute per station).
//
// Two rules mark a station for attention, with text as well as colour: a buffer that
// absorbs less than a day of readings with the uplink down (LOW_AUTONOMY_HOURS), and an
// agent older than the newest version in the fleet. They are the cloud's rules
// (cloud/internal/fleet), applied here again as live events arrive, because a newer
// version reported by one station makes the others lag without an event of their own.

// LOW_AUTONOMY_HOURS is fleet.LowAutonomyHours.
export const LOW_AUTONOMY_HOURS = 24;

// parseVersion reads an agent version as `git describe` makes it (v1.4.2,
// v1.4.2-14-gabc1234, either with -dirty) into [major, minor, patch, commits past the
// tag], or null for one that cannot be ordered (a bare commit hash, "dev").
const VERSION = /^v?(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?(?:-(\d{1,9})-g[0-9a-f]+)?(?:-dirty)?$/;
export function parseVersion(s) {
  const m = typeof s === 'string' ? VERSION.exec(s) : null;
  return m ? [1, 2, 3, 4].map((i) => Number(m[i] || 0)) : null;
}

// compareVersions orders two parsed versions.
export function compareVersions(a, b) {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

// judge applies the two rules to the fleet's entries: the newest version, and per station
// id whether its version lags and its autonomy is low.
export function judge(entries) {
  let newest = null;
  let newestText = '';
  for (const e of entries) {
    const v = parseVersion(e.version);
    if (v && (!newest || compareVersions(v, newest) > 0)) {
      newest = v;
      newestText = e.version;
    }
  }
  const lags = new Set();
  const low = new Set();
  for (const e of entries) {
    const v = parseVersion(e.version);
    if (v && newest && compareVersions(v, newest) < 0) lags.add(e.id);
    const h = e.buffer?.autonomy_h;
    if (typeof h === 'number' && h < LOW_AUTONOMY_HOURS) low.add(e.id);
  }
  return { newest: newestText, lags, low };
}

// merge keeps the newer of two fleet entries of a station: the one with the newer health
// record, with the later last_seen of both.
export function merge(old, next) {
  if (!old) return next;
  const t = (e) => Date.parse(e.health_at ?? '') || 0;
  const seen = (e) => Date.parse(e.last_seen ?? '') || 0;
  const out = t(next) >= t(old) ? { ...next } : { ...old };
  if (seen(old) > seen(out)) out.last_seen = old.last_seen;
  if (!out.name) out.name = old.name || next.name;
  return out;
}

// soonestDue is the calibration due first, or null.
export function soonestDue(e) {
  let best = null;
  for (const c of e.calibration_due || []) {
    const t = Date.parse(c.due_at);
    if (Number.isFinite(t) && (!best || t < best.t)) best = { probe: c.probe, t };
  }
  return best;
}

// formatHours renders hours of autonomy: "45 min", "18 h", "3.2 d".
export function formatHours(h) {
  if (h < 1) return `${Math.max(0, Math.round(h * 60))} min`;
  if (h < 48) return `${Math.floor(h)} h`;
  return `${(h / 24).toFixed(1)} d`;
}

// formatSpan renders a positive time span in ms: "5 h", "12 d".
function formatSpan(ms) {
  const h = ms / 3600000;
  return h < 48 ? `${Math.max(1, Math.round(h))} h` : `${Math.round(h / 24)} d`;
}

// The columns: the key of each, its heading, and the value it sorts by (null: unknown,
// always after the known ones).
export const COLUMNS = [
  { key: 'id', label: 'Station', value: (e) => (e.name || e.id).toLowerCase() },
  { key: 'last_seen', label: 'Last seen', value: (e) => Date.parse(e.last_seen ?? '') || null },
  { key: 'version', label: 'Version', value: (e) => parseVersion(e.version) ?? (e.version ? e.version : null) },
  { key: 'autonomy', label: 'Autonomy', value: (e) => (e.buffer ? e.buffer.autonomy_h ?? Infinity : null) },
  { key: 'backlog', label: 'Backlog', value: (e) => e.backlog ?? null },
  { key: 'failing', label: 'Failing probes', value: (e) => (e.probes ? e.probes.failing.length : null) },
  { key: 'calibration', label: 'Calibration due', value: (e) => soonestDue(e)?.t ?? (e.version ? Infinity : null) },
];

function compareValues(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return compareVersions(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return Array.isArray(a) ? 1 : -1; // an ordered version after one that is not
  if (typeof a === 'string' && typeof b === 'string') return a.localeCompare(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

// sortEntries orders entries by a column, ascending or descending, unknown values last
// either way and the station id breaking ties.
export function sortEntries(entries, key, dir) {
  const col = COLUMNS.find((c) => c.key === key) ?? COLUMNS[0];
  const sign = dir === 'descending' ? -1 : 1;
  return [...entries].sort((x, y) => {
    const a = col.value(x);
    const b = col.value(y);
    if (a === null || b === null) {
      if (a !== b) return a === null ? 1 : -1;
    } else {
      const c = compareValues(a, b) * sign;
      if (c !== 0) return c;
    }
    return x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
  });
}

// createFleet builds the page in host. deps are the dashboard's helpers: api(path) reads
// the JSON API, h builds elements, ago makes a ticking "2m ago", reconcile keeps rows in
// order reusing their elements, and nameOf(id) is a station's name as the dashboard
// knows it.
export function createFleet(host, { api, h, ago, reconcile, nameOf }) {
  const entries = new Map();
  const sort = { key: 'id', dir: 'ascending' };
  let loaded = false;
  let error = '';
  let visible = false;
  let pending = false;

  const heading = h('h1', { id: 'fleet-h', tabindex: '-1' }, 'Fleet ', h('span', { class: 'count', id: 'fleet-count' }));
  const note = h('p', { class: 'note', id: 'fleet-note' });
  const headRow = h('tr');
  const rows = h('tbody', { id: 'fleet-rows' });
  const empty = h('p', { class: 'empty-note', id: 'fleet-empty' }, 'Loading the fleet…');
  for (const c of COLUMNS) {
    const button = h('button', { type: 'button', class: 'sort', 'data-col': c.key }, c.label);
    button.addEventListener('click', () => {
      sort.dir = sort.key === c.key && sort.dir === 'ascending' ? 'descending' : 'ascending';
      sort.key = c.key;
      render();
    });
    headRow.append(h('th', { scope: 'col', 'data-col': c.key }, button));
  }
  host.replaceChildren(h('section', { class: 'panel fleet', 'aria-labelledby': 'fleet-h' },
    h('div', { class: 'section-head' }, heading),
    note,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'fleet-table' },
        h('caption', { class: 'visually-hidden' },
          'Every station\'s health as its agent last reported it; the column headings sort the table.'),
        h('thead', {}, headRow), rows)),
    empty));

  function render() {
    if (!visible || pending) return;
    pending = true;
    // A burst of live events renders once.
    setTimeout(() => {
      pending = false;
      draw();
    }, 30);
  }

  function draw() {
    const list = [...entries.values()].map((e) => ({ ...e, name: nameOf(e.id) || e.name || '' }));
    const verdict = judge(list);
    for (const th of headRow.children) {
      th.setAttribute('aria-sort', th.dataset.col === sort.key ? sort.dir : 'none');
    }
    reconcile(rows, sortEntries(list, sort.key, sort.dir), (e) => e.id,
      (tr, e) => fill(tr, e, verdict), () => h('tr'));
    const n = list.length;
    heading.querySelector('.count').textContent = n ? `(${n})` : '';
    const attention = new Set([...verdict.lags, ...verdict.low]).size;
    note.replaceChildren(
      verdict.newest ? `Newest agent version in the fleet: ${verdict.newest}. ` : '',
      attention
        ? h('strong', {}, `${attention} station${attention === 1 ? ' needs' : 's need'} attention`)
        : 'No station needs attention',
      ` (autonomy under ${LOW_AUTONOMY_HOURS} h, or an agent older than the newest).`);
    empty.hidden = n > 0 && !error;
    empty.textContent = error || (loaded ? 'No stations are registered yet (ph-cloud station add).' : 'Loading the fleet…');
  }

  function fill(tr, e, verdict) {
    const lags = verdict.lags.has(e.id);
    const low = verdict.low.has(e.id);
    const due = soonestDue(e);
    const overdue = due !== null && due.t <= Date.now();
    const sig = JSON.stringify([e, lags, low, verdict.newest, overdue]);
    if (tr.dataset.sig === sig) return;
    tr.dataset.sig = sig;
    tr.className = lags || low ? 'attention' : '';
    tr.dataset.lags = String(lags);
    tr.dataset.low = String(low);
    const label = e.name && e.name !== e.id ? e.name : '';
    const cells = [
      h('th', { scope: 'row' },
        h('a', { href: `#/station/${encodeURIComponent(e.id)}` }, label || e.id),
        label ? h('span', { class: 'st-id' }, e.id) : null),
      h('td', { 'data-col': 'last_seen' }, ago(Date.parse(e.last_seen ?? '') || null),
        e.online === false ? h('span', { class: 'flag flag-bad' }, 'OFFLINE') : null),
    ];
    if (!e.version) {
      cells.push(h('td', { colspan: COLUMNS.length - 2, class: 'muted' }, 'No health record yet'));
      tr.replaceChildren(...cells);
      return;
    }
    const b = e.buffer || {};
    const probes = e.probes || { total: 0, online: 0, failing: [] };
    cells.push(
      h('td', { 'data-col': 'version' }, e.version,
        lags ? h('span', { class: 'flag flag-warn' }, `behind ${verdict.newest}`) : null,
        e.clock_synced === false ? h('span', { class: 'flag flag-warn' }, 'clock not synced') : null),
      h('td', { 'data-col': 'autonomy' },
        typeof b.autonomy_h === 'number' ? formatHours(b.autonomy_h) : h('span', { class: 'muted' }, 'idle'),
        low ? h('span', { class: 'flag flag-bad' }, 'under a day') : null),
      h('td', { 'data-col': 'backlog', class: 'num' }, (e.backlog ?? 0).toLocaleString('en-IN')),
      h('td', { 'data-col': 'failing' },
        probes.failing.length === 0
          ? h('span', { class: 'muted' }, `none · ${probes.online}/${probes.total} online`)
          : h('ul', { class: 'failing' }, probes.failing.map((f) =>
            h('li', {}, h('span', { class: 'probe' }, f.name), ' ', h('span', { class: 'reason' }, f.reason))))),
      h('td', { 'data-col': 'calibration' },
        due === null ? h('span', { class: 'muted' }, '—')
          : overdue ? [due.probe, ' ', h('span', { class: 'flag flag-bad' }, `overdue ${formatSpan(Date.now() - due.t)}`)]
            : `${due.probe} in ${formatSpan(due.t - Date.now())}`));
    tr.replaceChildren(...cells);
  }

  async function load() {
    try {
      const v = await api('/v1/fleet');
      for (const e of v.stations || []) entries.set(e.id, merge(entries.get(e.id), e));
      loaded = true;
      error = '';
    } catch (err) {
      error = `Could not load the fleet: ${err.message}.`;
    }
    render();
  }

  return {
    // show makes the page visible and loads it.
    show() {
      visible = true;
      host.hidden = false;
      render();
      return load();
    },
    hide() {
      visible = false;
      host.hidden = true;
    },
    get visible() {
      return visible;
    },
    load,
    // status takes the data of a station's live status message: a health record, or a
    // station going offline or coming back.
    status(id, d) {
      if (d.health) {
        entries.set(id, merge(entries.get(id), d.health));
      } else if (typeof d.online === 'boolean' && entries.has(id)) {
        const e = { ...entries.get(id), online: d.online };
        if (d.last_seen && Date.parse(d.last_seen) > (Date.parse(e.last_seen ?? '') || 0)) e.last_seen = d.last_seen;
        entries.set(id, e);
      } else {
        return;
      }
      render();
    },
    focus() {
      heading.focus();
    },
  };
}
