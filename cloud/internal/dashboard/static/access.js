// Tokens and acting on alerts: the sign-in form the dashboard shows when the cloud wants a
// token (auth.require_viewer, or acknowledging, which needs an operator token), where the
// token is kept for the browser tab's session, and the Acknowledge button's request.

const TOKEN_KEY = 'purehealth.viewerToken';

// saved returns the token kept for this tab's session, '' when there is none.
export function saved() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

// keep stores a token for this tab's session (not beyond: closing the tab forgets it).
export function keep(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode): the token lives as long as the page.
  }
}

let open = null; // the form being shown, so that a burst of 401s asks once

// ask shows the sign-in form with why, and resolves with the token entered (kept for the
// session), or '' when the user closes the form.
export function ask(why) {
  if (open) return open;
  const dlg = document.getElementById('signin');
  const input = document.getElementById('signin-token');
  document.getElementById('signin-why').textContent = why;
  input.value = '';
  open = new Promise((resolve) => {
    const done = (token) => {
      dlg.removeEventListener('close', onClose);
      document.getElementById('signin-form').removeEventListener('submit', onSubmit);
      open = null;
      resolve(token);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      keep(token);
      dlg.close();
      done(token);
    };
    const onClose = () => done('');
    document.getElementById('signin-form').addEventListener('submit', onSubmit);
    dlg.addEventListener('close', onClose);
    document.getElementById('signin-cancel').onclick = () => dlg.close();
  });
  dlg.showModal();
  input.focus();
  return open;
}

// acknowledge asks the cloud to acknowledge alert a with token; it resolves with the alert
// as the cloud then has it, or rejects with an Error whose status is the HTTP status
// (401 no or unknown token, 403 not an operator, 409 resolved meanwhile).
export async function acknowledge(a, token) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let r;
  try {
    r = await fetch(`/v1/alerts/${encodeURIComponent(a.id)}/ack`, {
      method: 'POST', headers, cache: 'no-store',
      body: JSON.stringify({ station: a.station, origin: a.origin || 'station' }),
    });
  } catch {
    throw Object.assign(new Error('the cloud does not answer'), { status: 0 });
  }
  let body = null;
  try {
    body = await r.json();
  } catch {
    // Not JSON: the status says enough.
  }
  if (r.ok) return body;
  const err = new Error((body && body.error) || `${r.status} ${r.statusText}`);
  err.status = r.status;
  err.alert = body && body.alert;
  throw err;
}
