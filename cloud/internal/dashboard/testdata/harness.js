// The test harness of the pages under testdata, run in a real browser by
// runBrowserTests (browser_test.go): each test records {name, ok, msg} in
// window.__results, and finish sets window.__done once they have all run.

const results = [];

export function test(name, fn) {
  try {
    fn();
    results.push({ name, ok: true });
  } catch (e) {
    results.push({ name, ok: false, msg: String((e && e.stack) || e) });
  }
}

export function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

export function ok(cond, what) {
  if (!cond) throw new Error(what);
}

// finish publishes the results, and shows them in #out for a person looking.
export function finish() {
  window.__results = results;
  window.__done = true;
  document.getElementById('out').textContent = results.map((r) => `${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${r.msg ? `\n${r.msg}` : ''}`).join('\n');
}
