// herm's operator console: a client of herm's public API, nothing more. The API key is
// kept in this tab's sessionStorage (never in a URL, a cookie or localStorage); the page can
// do what the key's scopes allow, and the API refuses the rest anyway. No HTML is built
// from strings: every value reaches the page as text.

const KEY = 'herm.key';
let me = null;
const PAGE = 100;
const main = document.getElementById('main');

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 3000);
}

const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');
const badge = (s) => el('span', { class: `badge ${s}`, text: s });

function crumbs(...parts) {
  const nav = document.getElementById('crumbs');
  nav.replaceChildren(...parts.flatMap((p, i) => [i ? ' / ' : '', p]));
}

// ---------- the key and the API ----------

function takeKeyFromFragment() {
  const m = location.hash.match(/^#key=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  me = null;
  // The fragment never reached the server; it leaves the address bar (and history) at once.
  history.replaceState(null, '', `${location.pathname}#/`);
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (res.status === 401) {
    signOut();
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const can = (scope) => !!me && (me.scopes.includes('admin') || me.scopes.includes(scope));

function signOut() {
  sessionStorage.removeItem(KEY);
  me = null;
  stopStream();
  location.hash = '#/';
  render();
}

document.getElementById('signout').addEventListener('click', signOut);

// ---------- routing ----------

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
  if (!me) {
    try {
      me = await api('/v1/me');
    } catch (e) {
      return showSignIn(e.message);
    }
  }
  who.textContent = `${me.name} · ${me.scopes.join(', ')}`;
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

// ---------- sign in ----------

function showSignIn(problem) {
  crumbs();
  const input = el('input', { id: 'key', type: 'password', autocomplete: 'off', required: true });
  const form = el('form', { class: 'signin', onsubmit: (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    me = null;
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

// ---------- deployments ----------

async function showDeployments() {
  crumbs('Deployments');
  const page = await api(`/v1/deployments?limit=${PAGE}`);
  const deps = page.data;
  // Activity and waiting approvals come from each deployment's threads.
  const threads = await Promise.all(deps.map((d) =>
    api(`/v1/deployments/${d.deployment_id}/threads?limit=${PAGE}`).then((p) => p.data).catch(() => [])));
  // Today, UTC (the API's default window).
  const costs = await Promise.all(deps.map((d) =>
    api(`/v1/deployments/${d.deployment_id}/usage`).then((u) => u.total.cost_usd).catch(() => null)));
  const byCustomer = new Map();
  deps.forEach((d, i) => {
    const list = byCustomer.get(d.customer_id) || [];
    list.push([d, threads[i], costs[i]]);
    byCustomer.set(d.customer_id, list);
  });
  const sections = [...byCustomer.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([customer, rows]) =>
    el('section', {},
      el('h2', { text: `Customer ${customer}` }),
      el('div', { class: 'table-wrap' }, el('table', {},
        el('thead', {}, el('tr', {}, ['Deployment', 'Status', 'Model', 'Last activity', 'Cost today (UTC)', 'Waiting on a person']
          .map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, rows.map(([d, ts, cost]) => {
          const last = ts.map((t) => t.last_activity_at).sort().pop();
          const waiting = ts.filter((t) => t.status === 'waiting_on_human').length;
          return el('tr', { class: 'deployment' },
            el('td', {}, el('a', { href: `#/d/${d.deployment_id}`, text: d.name })),
            el('td', {}, badge(d.status)),
            el('td', { text: d.model || '—' }),
            el('td', { text: when(last || d.updated_at) }),
            el('td', { class: 'cost', text: cost === null ? '—' : `$${cost.toFixed(4)}` }),
            el('td', {}, waiting ? badge(`${waiting} waiting`) : '—'));
        }))))));
  main.replaceChildren(el('h1', { text: 'Deployments' }),
    ...(sections.length ? sections : [el('p', { text: 'No deployments yet.' })]));
}

async function showDeployment(dep) {
  const d = await api(`/v1/deployments/${dep}`);
  crumbs(el('a', { href: '#/', text: 'Deployments' }), d.name);
  const page = await api(`/v1/deployments/${dep}/threads?limit=${PAGE}`);
  main.replaceChildren(
    el('h1', { text: d.name }),
    el('p', {}, badge(d.status), ` customer ${d.customer_id} · model ${d.model || 'default'} · ${dep}`),
    el('h2', { text: 'Threads' }),
    el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, ['Thread', 'Status', 'Messages', 'Last activity'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, page.data.map((t) => el('tr', { class: 'thread' },
        el('td', {}, el('a', { href: `#/d/${dep}/t/${t.thread_id}`, text: t.title || t.thread_id })),
        el('td', {}, badge(t.status)),
        el('td', { text: t.message_count }),
        el('td', { text: when(t.last_activity_at) })))))),
    section('Files', () => filesPanel(dep, '')),
    section('Memories', () => memoriesPanel(dep)),
    section('Automations', () => automationsPanel(dep)),
    section('Goals', () => goalsPanel(dep)));
}

/// A titled panel whose content loads on its own (a failure stays inside it).
function section(title, load) {
  const body = el('div', { class: 'section-body' }, el('p', { text: 'Loading…' }));
  const refresh = async () => {
    try {
      body.replaceChildren(...[].concat(await load(refresh)));
    } catch (e) {
      body.replaceChildren(el('p', { class: 'meta', text: e.message }));
    }
  };
  refresh();
  return el('section', { class: `panel ${title.toLowerCase()}` }, el('h2', { text: title }), body);
}

async function fetchBlob(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  return res.blob();
}

function save(blob, name) {
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

async function filesPanel(dep, path) {
  const listing = await api(`/v1/deployments/${dep}/files?path=${encodeURIComponent(path)}`);
  const holder = el('div');
  const preview = el('div', { class: 'preview' });
  const show = async (full, name) => {
    try {
      const blob = await fetchBlob(`/v1/deployments/${dep}/files/content?path=${encodeURIComponent(full)}`);
      const text = blob.size <= 65536 ? await blob.text() : null;
      preview.replaceChildren(el('h3', { text: `${full} (${blob.size} bytes)` }),
        el('button', { type: 'button', class: 'download', text: 'Download', onclick: () => save(blob, name) }),
        text !== null && !text.includes('\u0000') ? el('pre', { class: 'file-text', text }) : el('p', { class: 'meta', text: 'No preview for this file.' }));
    } catch (e) { toast(e.message); }
  };
  const open = async (p) => {
    try { holder.replaceChildren(...[].concat(await filesPanel(dep, p))); } catch (e) { toast(e.message); }
  };
  const up = path ? path.split('/').slice(0, -1).join('/') : null;
  const rows = listing.entries.map((f) => {
    const full = path ? `${path}/${f.name}` : f.name;
    return el('tr', { class: 'file' },
      el('td', {}, f.type === 'directory'
        ? el('button', { type: 'button', class: 'link', text: `${f.name}/`, onclick: () => open(full) })
        : el('button', { type: 'button', class: 'link', text: f.name, onclick: () => show(full, f.name) })),
      el('td', { text: f.size ?? '' }),
      el('td', { text: when(f.modified_at) }));
  });
  holder.append(
    el('p', { class: 'meta', text: `/workspace/${path}` }),
    up !== null ? el('button', { type: 'button', text: '.. (up)', onclick: () => open(up) }) : '',
    el('div', { class: 'table-wrap' }, el('table', {}, el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { text: '(empty)' }))))),
    preview);
  return holder;
}

async function memoriesPanel(dep) {
  const page = await api(`/v1/deployments/${dep}/memories?limit=${PAGE}`);
  if (!page.data.length) return el('p', { text: 'No memories yet.' });
  const editor = el('div', { class: 'memory-editor' });
  const edit = async (m) => {
    const [cur, versions] = await Promise.all([
      api(`/v1/deployments/${dep}/memories/${m.memory_id}`),
      api(`/v1/deployments/${dep}/memories/${m.memory_id}/versions`),
    ]);
    const text = el('textarea', { 'aria-label': `Content of ${cur.path}` });
    text.value = cur.content;
    const problems = el('div', { class: 'problems', role: 'alert' });
    const save = async () => {
      const res = await fetch(`/v1/deployments/${dep}/memories/${m.memory_id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}`, 'content-type': 'application/json', 'if-match': `"${cur.version}"` },
        body: JSON.stringify({ content: text.value }),
      });
      if (res.ok) { toast('Saved'); edit(m); } else { problems.textContent = (await res.json().catch(() => ({}))).detail || `HTTP ${res.status}`; }
    };
    editor.replaceChildren(el('h3', { text: `${cur.path} (version ${cur.version}, ${cur.source})` }), text,
      can('deployments:write') ? el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'button', text: 'Save', onclick: save })) : '',
      problems,
      el('h3', { text: 'Versions' }),
      el('ol', { class: 'versions' }, (versions.data || []).map((v) =>
        el('li', { text: `v${v.version} ${v.operation} by ${v.source} ${when(v.created_at)}${v.redacted_at ? ' (redacted)' : ''}` }))));
  };
  return [el('div', { class: 'table-wrap' }, el('table', {}, el('tbody', {}, page.data.map((m) =>
    el('tr', { class: 'memory' },
      el('td', {}, el('button', { type: 'button', class: 'link', text: m.path, onclick: () => edit(m) })),
      el('td', { text: `v${m.version}` }),
      el('td', { text: m.source }),
      el('td', { text: when(m.updated_at) })))))), editor];
}

async function automationsPanel(dep) {
  const page = await api(`/v1/deployments/${dep}/automations?limit=${PAGE}`);
  if (!page.data.length) return el('p', { text: 'No automations.' });
  const act = (a, verb) => api(`/v1/deployments/${dep}/automations/${a.automation_id}/${verb}`, { method: 'POST' })
    .then(() => toast(`${a.name}: ${verb === 'run' ? 'started' : `${verb}d`}`)).catch((e) => toast(e.message));
  const history = el('div');
  const show = async (a) => {
    const f = await api(`/v1/deployments/${dep}/automations/${a.automation_id}/firings?limit=20`);
    history.replaceChildren(el('h3', { text: `${a.name}: recent firings` }), el('ol', {}, (f.data || []).map((x) =>
      el('li', { text: `${when(x.slot_at || x.created_at)} ${x.status || ''} ${x.run_id || ''}` }))));
  };
  return [el('div', { class: 'table-wrap' }, el('table', {}, el('tbody', {}, page.data.map((a) => el('tr', { class: 'automation' },
    el('td', {}, el('button', { type: 'button', class: 'link', text: a.name, onclick: () => show(a) })),
    el('td', { text: a.description || a.cron || 'webhook' }),
    el('td', {}, badge(a.enabled ? 'enabled' : 'paused')),
    el('td', { text: a.next_run_at ? `next ${when(a.next_run_at)}` : '' }),
    can('deployments:write') ? el('td', {},
      el('button', { type: 'button', text: 'Run now', onclick: () => act(a, 'run') }), ' ',
      el('button', { type: 'button', text: a.enabled ? 'Pause' : 'Resume', onclick: () => act(a, a.enabled ? 'pause' : 'resume') })) : el('td')))))), history];
}

async function goalsPanel(dep) {
  const page = await api(`/v1/deployments/${dep}/goals?limit=${PAGE}`);
  if (!page.data.length) return el('p', { text: 'No goals.' });
  return el('div', { class: 'table-wrap' }, el('table', {}, el('tbody', {}, page.data.map((g) => el('tr', { class: 'goal' },
    el('td', { text: g.objective }),
    el('td', {}, badge(g.status)),
    el('td', { text: `${g.runs.length} of ${g.max_runs} runs` }),
    el('td', { text: `$${Number(g.cost_usd).toFixed(4)}` }),
    el('td', {}, el('a', { href: `#/d/${dep}/t/${g.thread_id}`, text: 'thread' })))))));
}

// ---------- a thread, live ----------

let stream = null;

function stopStream() {
  if (stream) stream.abort();
  stream = null;
}

/// Reads the thread's SSE stream with the key in a header (EventSource cannot send one),
/// resuming from the last committed sequence after any disconnect.
async function follow(tid, view) {
  const ctl = new AbortController();
  stream = ctl;
  while (!ctl.signal.aborted) {
    try {
      const res = await fetch(`/v1/threads/${tid}/events/stream`, {
        headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}`, 'last-event-id': String(view.last) },
        signal: ctl.signal,
      });
      if (!res.ok) throw new Error(`stream ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          if (data) view.receive(JSON.parse(data));
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function summarize(e) {
  switch (e.type) {
    case 'message': {
      const n = (e.attachments || []).length;
      return `${e.content}${n ? `\n[${n} attachment${n > 1 ? 's' : ''}: ${e.attachments.map((a) => a.name || a.type).join(', ')}]` : ''}`;
    }
    case 'agent_message': return e.content;
    case 'tool_call': return `${e.tool}(${JSON.stringify(e.arguments)})`;
    case 'tool_result': return `${e.tool} → ${String(e.result).slice(0, 4000)}`;
    case 'model_call': return `${e.model} · ${e.input_tokens} in / ${e.output_tokens} out · $${Number(e.cost_usd).toFixed(4)} · ${e.duration_ms} ms`;
    case 'steering_request': return e.summary;
    case 'steering_response': return `${e.result || 'answered'}${e.answer ? `: ${e.answer}` : ''}${e.input ? ` with ${JSON.stringify(e.input)}` : ''}`;
    case 'steer': case 'interrupt': return e.message || '';
    case 'run_status': return `${e.status}${e.error ? ` — ${e.error.code}: ${e.error.message}` : ''}`;
    case 'compaction': return `compacted ${e.tokens_before ?? '?'} → ${e.tokens_after ?? '?'} tokens\n${e.summary}`;
    case 'filesystem': return `${e.change} ${e.path}`;
    default: return JSON.stringify(e);
  }
}

function row(e) {
  const bad = (e.type === 'tool_result' && e.is_error) || (e.type === 'run_status' && e.status === 'error');
  return el('li', { class: `ev ev-${e.type}${bad ? ' is-error' : ''}`, 'data-seq': e.sequence },
    el('span', { class: 'time', text: time(e.created_at) }),
    el('span', { class: 'type', text: e.type === 'run_status' ? `run ${e.status}` : e.type.replace('_', ' ') }),
    el('span', { class: 'body', text: summarize(e) }));
}

/// Problems with `value` against a JSON Schema (the subset tool schemas use); the server
/// checks again.
function check(schema, value, path = '$') {
  if (!schema || typeof schema !== 'object') return [];
  const out = [];
  const kind = Array.isArray(value) ? 'array' : value === null ? 'null' : Number.isInteger(value) ? 'integer' : typeof value;
  const types = schema.type ? [].concat(schema.type) : null;
  if (types && !types.some((t) => t === kind || (t === 'number' && kind === 'integer'))) {
    return [`${path}: expected ${types.join(' or ')}, got ${kind}`];
  }
  if (schema.enum && !schema.enum.some((v) => JSON.stringify(v) === JSON.stringify(value))) out.push(`${path}: not one of ${JSON.stringify(schema.enum)}`);
  if (kind === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) out.push(`${path}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) out.push(`${path}: longer than ${schema.maxLength}`);
  }
  if (kind === 'integer' || kind === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) out.push(`${path}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) out.push(`${path}: above ${schema.maximum}`);
  }
  if (kind === 'object') {
    for (const r of schema.required || []) if (!(r in value)) out.push(`${path}.${r}: required`);
    for (const [k, v] of Object.entries(value)) {
      if (schema.properties && k in schema.properties) out.push(...check(schema.properties[k], v, `${path}.${k}`));
      else if (schema.additionalProperties === false) out.push(`${path}.${k}: not allowed`);
    }
  }
  if (kind === 'array' && schema.items) value.forEach((v, i) => out.push(...check(schema.items, v, `${path}[${i}]`)));
  return out;
}

function pendingCard(tid, p, schemas) {
  const writable = can('deployments:write');
  const card = el('div', { class: 'card pending', 'data-request': p.request_id, role: 'group', 'aria-label': p.summary },
    el('strong', { text: p.kind === 'question' ? 'Question' : `Approval: ${p.tool}` }),
    el('p', { text: p.question || p.summary }));
  if (!writable) {
    card.append(el('p', { class: 'meta', text: 'This key can read only: it cannot answer.' }));
    if (p.arguments) card.append(el('pre', { text: JSON.stringify(p.arguments, null, 2) }));
    return card;
  }
  const problems = el('div', { class: 'problems', role: 'alert' });
  const send = async (event, label) => {
    try {
      await api(`/v1/threads/${tid}/events`, { method: 'POST', body: { events: [event] } });
      toast(label);
      card.remove();
    } catch (e) {
      problems.textContent = e.message;
    }
  };
  if (p.kind === 'question') {
    const answer = el('input', { type: 'text', 'aria-label': 'Answer', class: 'answer' });
    card.append(answer, el('div', { class: 'actions' },
      el('button', { class: 'primary', type: 'button', text: 'Answer',
        onclick: () => send({ type: 'user.answer', request_id: p.request_id, answer: answer.value }, 'Answered') })), problems);
    return card;
  }
  const args = el('textarea', { class: 'arguments', 'aria-label': 'Arguments (JSON)', spellcheck: 'false' });
  args.value = JSON.stringify(p.arguments ?? {}, null, 2);
  const reason = el('input', { type: 'text', class: 'deny-message', 'aria-label': 'Why (sent to the agent when denying)', placeholder: 'Why (optional, for a denial)' });
  const allow = () => {
    let input;
    try { input = JSON.parse(args.value); } catch (e) { problems.textContent = `The arguments are not JSON: ${e.message}`; return; }
    const errors = check(schemas.get(p.tool), input);
    if (errors.length) { problems.textContent = `The arguments do not fit the tool's schema:\n${errors.join('\n')}`; return; }
    const edited = JSON.stringify(input) !== JSON.stringify(p.arguments ?? {});
    send({ type: 'user.tool_confirmation', request_id: p.request_id, result: 'allow', ...(edited ? { input } : {}) },
      edited ? 'Allowed with edits' : 'Allowed');
  };
  card.append(args, el('div', { class: 'actions' },
    el('button', { class: 'primary approve', type: 'button', text: 'Allow', onclick: allow }),
    el('button', { class: 'danger deny', type: 'button', text: 'Deny',
      onclick: () => send({ type: 'user.tool_confirmation', request_id: p.request_id, result: 'deny', ...(reason.value ? { deny_message: reason.value } : {}) }, 'Denied') })),
  reason, problems);
  return card;
}

async function allEvents(tid) {
  const all = [];
  let cursor = '0';
  for (;;) {
    const page = await api(`/v1/threads/${tid}/events?cursor=${cursor}&limit=${PAGE}`);
    all.push(...page.data);
    if (!page.next_cursor) return all;
    cursor = page.next_cursor;
  }
}

async function showThread(dep, tid) {
  const [d, t, tools] = await Promise.all([
    api(`/v1/deployments/${dep}`),
    api(`/v1/deployments/${dep}/threads/${tid}`),
    api(`/v1/deployments/${dep}/tools`).catch(() => ({ data: [] })),
  ]);
  crumbs(el('a', { href: '#/', text: 'Deployments' }), el('a', { href: `#/d/${dep}`, text: d.name }), t.title || tid);
  const schemas = new Map((tools.data || []).map((x) => [x.name, x.input_schema]));
  const log = el('ol', { id: 'log', 'aria-live': 'polite' });
  const pending = el('div', { id: 'pending' });
  const status = el('p', { id: 'thread-status' }, badge(t.status));
  // The newest page first; earlier pages on demand, so a long thread never loads whole.
  let first = Math.max(0, t.last_sequence - PAGE);
  const view = {
    last: t.last_sequence,
    live: new Map(),
    receive(e) {
      if (e.sequence === undefined) return this.fragment(e);
      if (e.sequence <= this.last && log.querySelector(`[data-seq="${e.sequence}"]`)) return;
      this.last = Math.max(this.last, e.sequence);
      if (e.type === 'agent_message' || e.type === 'run_status') this.clearLive(e.run_id);
      if (e.type === 'tool_result') this.clearLive(e.tool_use_id);
      log.append(row(e));
      if (e.type === 'steering_request') pending.append(pendingCard(tid, e, schemas));
      if (e.type === 'steering_response') pending.querySelector(`[data-request="${e.request_id}"]`)?.remove();
      if (e.type === 'run_status') {
        status.replaceChildren(badge(e.status === 'completed' || e.status === 'interrupted' ? 'idle' : e.status));
        if (['completed', 'error', 'interrupted'].includes(e.status)) pending.querySelectorAll('.card').forEach((c) => c.remove());
      }
    },
    // Live-only frames: streamed tokens and tool output, shown until their record commits.
    fragment(e) {
      const id = e.type === 'token' ? e.run_id : e.tool_use_id;
      if (!id || (e.type !== 'token' && e.type !== 'tool_output')) return;
      let li = this.live.get(id);
      if (!li) {
        li = el('li', { class: 'live' }, el('span', { class: 'time', text: time(new Date().toISOString()) }),
          el('span', { class: 'type', text: e.type === 'token' ? 'streaming' : 'tool output' }), el('span', { class: 'body' }));
        this.live.set(id, li);
        log.append(li);
      }
      li.lastChild.textContent += e.delta;
    },
    clearLive(id) {
      this.live.get(id)?.remove();
      this.live.delete(id);
    },
  };
  const earlier = el('button', { type: 'button', class: 'earlier', text: 'Load earlier events', onclick: async () => {
    const from = Math.max(0, first - PAGE);
    const page = await api(`/v1/threads/${tid}/events?cursor=${from}&limit=${first - from}`);
    log.prepend(...page.data.map(row));
    first = from;
    earlier.hidden = first === 0;
  } });
  earlier.hidden = first === 0;
  const initial = t.last_sequence ? await api(`/v1/threads/${tid}/events?cursor=${first}&limit=${PAGE}`) : { data: [] };
  log.append(...initial.data.map(row));
  for (const p of t.pending || []) pending.append(pendingCard(tid, p, schemas));

  const side = [el('div', { class: 'panel' }, el('h2', { text: 'Waiting on a person' }), pending)];
  if (can('deployments:write')) {
    const text = el('textarea', { id: 'compose', 'aria-label': 'Message' });
    const post = (event, label) => api(`/v1/threads/${tid}/events`, { method: 'POST', body: { events: [event] } })
      .then(() => { toast(label); text.value = ''; }).catch((e) => toast(e.message));
    side.push(el('div', { class: 'panel' }, el('h2', { text: 'Talk to the agent' }), text,
      el('div', { class: 'actions' },
        el('button', { class: 'primary send', type: 'button', text: 'Send', onclick: () => post({ type: 'user.message', content: text.value }, 'Sent') }),
        el('button', { type: 'button', text: 'Steer', onclick: () => post({ type: 'user.steer', message: text.value }, 'Steered') }),
        el('button', { class: 'danger', type: 'button', text: 'Interrupt', onclick: () => post({ type: 'user.interrupt', ...(text.value ? { message: text.value } : {}) }, 'Interrupted') }))));
  }
  const exportJson = el('button', { type: 'button', text: 'Export the audit record (JSON)', onclick: async () => {
    const events = await allEvents(tid);
    const blob = new Blob([JSON.stringify({ thread_id: tid, deployment_id: dep, exported_at: new Date().toISOString(), events }, null, 2)], { type: 'application/json' });
    const a = el('a', { href: URL.createObjectURL(blob), download: `${tid}.json` });
    document.body.append(a);
    a.click();
    a.remove();
  } });
  main.replaceChildren(
    el('h1', { text: t.title || tid }), status,
    el('div', { class: 'toolbar' }, earlier, exportJson),
    el('div', { class: 'layout' }, log, el('aside', {}, side)));
  follow(tid, view);
}

render();
