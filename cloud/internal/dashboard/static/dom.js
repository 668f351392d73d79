// DOM helpers shared by the page's modules. Every value from the server goes in as text,
// never as markup.

import * as L from './logic.js';

// h builds an element; children are nodes or strings (always text, never markup).
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// ago is a <time> that the page's ticker keeps saying "2m ago".
export function ago(ms, prefix = '') {
  if (ms === null || ms === undefined) return h('span', {}, prefix ? `${prefix} never` : 'never');
  const d = new Date(ms);
  return h('time', { datetime: d.toISOString(), title: d.toLocaleString('en-IN'), 'data-ago': ms, 'data-prefix': prefix },
    (prefix ? `${prefix} ` : '') + L.formatAgo(ms, Date.now()));
}

// wqiBadge shows an index's class and value (or that there is none).
export function wqiBadge(w, big = false) {
  const c = L.wqiClass(w?.class);
  return h('span', { class: `wqi-badge wqi-${c.key}${big ? ' wqi-badge-big' : ''}` },
    h('span', { class: 'visually-hidden' }, 'WQI class '),
    h('span', { class: 'wqi-class' }, c.label),
    h('span', { class: 'wqi-value' }, w ? ` ${w.wqi.toFixed(1)}` : ' no index'));
}
