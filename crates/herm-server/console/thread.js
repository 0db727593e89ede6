// A thread, live: a page of its log, then its stream; answering what waits on a person.

import { KEY, PAGE, api, badge, can, crumbs, el, main, time, toast } from './api.js';

let stream = null;

export function stopStream() {
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
      // A refusal (a revoked key, a deleted thread) is final; anything else is retried.
      if (res.status >= 400 && res.status < 500) {
        toast(`The live stream was refused (${res.status})`);
        return;
      }
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

export async function showThread(dep, tid) {
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

