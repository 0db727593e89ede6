// The deployments page and a deployment's page: threads, files, memories, automations, goals.

import { KEY, PAGE, api, badge, can, crumbs, el, fetchBlob, main, save, toast, when } from './api.js';

export async function showDeployments() {
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

export async function showDeployment(dep) {
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
  const versionCells = new Map();
  const edit = async (m) => {
    const [cur, versions] = await Promise.all([
      api(`/v1/deployments/${dep}/memories/${m.memory_id}`),
      api(`/v1/deployments/${dep}/memories/${m.memory_id}/versions`),
    ]);
    versionCells.get(m.memory_id).textContent = `v${cur.version}`;
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
      (() => { const td = el('td', { text: `v${m.version}` }); versionCells.set(m.memory_id, td); return td; })(),
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

