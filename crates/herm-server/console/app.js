// herm's operator console: a client of herm's public API, nothing more. The page can do
// what the key's scopes allow, and the API refuses the rest anyway.

import { KEY, api, crumbs, el, main, session } from './api.js';
import { showDeployment, showDeployments } from './deployments.js';
import { showThread, stopStream } from './thread.js';

function takeKeyFromFragment() {
  const m = location.hash.match(/^#key=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  session.me = null;
  // The fragment never reached the server; it leaves the address bar (and history) at once.
  history.replaceState(null, '', `${location.pathname}#/`);
}

function signOut() {
  sessionStorage.removeItem(KEY);
  session.me = null;
  stopStream();
  location.hash = '#/';
  render();
}

document.getElementById('signout').addEventListener('click', signOut);

window.addEventListener('herm:refused', signOut);

async function render() {
  stopStream();
  takeKeyFromFragment();
  const who = document.getElementById('who');
  const out = document.getElementById('signout');
  if (!sessionStorage.getItem(KEY)) {
    who.textContent = '';
    out.hidden = true;
    return showSignIn();
  }
  if (!session.me) {
    try {
      session.me = await api('/v1/me');
    } catch (e) {
      return showSignIn(e.message);
    }
  }
  who.textContent = `${session.me.name} · ${session.me.scopes.join(', ')}`;
  out.hidden = false;
  const h = location.hash.slice(1) || '/';
  let m;
  try {
    if ((m = h.match(/^\/d\/(dep_\w+)\/t\/(thr_\w+)$/))) return await showThread(m[1], m[2]);
    if ((m = h.match(/^\/d\/(dep_\w+)$/))) return await showDeployment(m[1]);
    return await showDeployments();
  } catch (e) {
    main.replaceChildren(el('p', { class: 'error', role: 'alert', text: `Could not load this page: ${e.message}` }));
  }
}

window.addEventListener('hashchange', render);

function showSignIn(problem) {
  crumbs();
  const input = el('input', { id: 'key', type: 'password', autocomplete: 'off', required: true });
  const form = el('form', { class: 'signin', onsubmit: (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    session.me = null;
    location.hash = '#/';
    render();
  } },
  el('h1', { text: 'Sign in' }),
  el('label', { for: 'key', text: 'API key' }), input,
  problem ? el('p', { class: 'error', role: 'alert', text: problem }) : null,
  el('button', { class: 'primary', type: 'submit', text: 'Sign in' }),
  el('p', { text: 'The key stays in this tab only and is forgotten when the tab closes.' }));
  main.replaceChildren(form);
  input.focus();
}

render();
