//! Traces: OpenTelemetry spans projected from the journal. A run is one trace; its spans are
//! made from committed events (the bus's tap): a `model_call` is a `chat` span, a
//! `tool_result` an `execute_tool` span (made on the telemetry thread, see `observe.rs`), a `compaction` a `compact` span, and the run's final
//! `run_status` its root `invoke_agent` span, from the run's creation to its end. Calls that
//! leave no event of their own (an MCP server's `tools/call`, a sandbox exec) are spans made
//! as they finish, children of their tool call's span ([`child`]).
//!
//! Ids follow [`herm_types::trace`]: derived from the run, the event or the tool call, so a
//! run resumed after a crash continues its trace, and every event names its span. The
//! process's id generator asks [`planned_span_id`] and [`planned_trace_id`] for them.
//!
//! Attribute names follow the OpenTelemetry GenAI semantic conventions (`gen_ai.*`); herm's
//! own are `herm.*`. Attributes carry ids, names, counts, durations, outcomes and error codes:
//! never a prompt, a tool's arguments or output, or any value from the vault.
//!
//! Off (no exporter configured), [`enabled`] is false and nothing here does any work.

use herm_types::trace;
use herm_types::*;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue, global};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

static ENABLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The ids the next span built on this thread must have.
    static PLANNED: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// Spans are made from now on (the process installed a tracer provider that exports).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The trace id planned for the span being built on this thread, taken (for the process's id
/// generator; `None` means: make a random one).
pub fn planned_trace_id() -> Option<TraceId> {
    PLANNED.with(|p| {
        let (trace, span) = p.get();
        p.set((None, span));
        trace
    })
}

/// The span id planned for the span being built on this thread, taken.
pub fn planned_span_id() -> Option<SpanId> {
    PLANNED.with(|p| {
        let (trace, span) = p.get();
        p.set((trace, None));
        span
    })
}

/// One span to make, after the fact.
struct Planned<'a> {
    name: String,
    kind: SpanKind,
    trace: [u8; 16],
    /// `None` for a run's root span.
    parent: Option<[u8; 8]>,
    id: [u8; 8],
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    error: Option<&'a str>,
}

/// The tracer, taken from the provider installed when spans were enabled.
fn tracer() -> &'static global::BoxedTracer {
    static TRACER: std::sync::OnceLock<global::BoxedTracer> = std::sync::OnceLock::new();
    TRACER.get_or_init(|| global::tracer("herm"))
}

fn make(p: Planned) {
    let tracer = tracer();
    let cx = match p.parent {
        Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(p.trace),
            SpanId::from_bytes(parent),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    PLANNED.with(|c| c.set((Some(TraceId::from_bytes(p.trace)), Some(SpanId::from_bytes(p.id)))));
    let mut span = tracer
        .span_builder(p.name)
        .with_kind(p.kind)
        .with_start_time(p.start)
        .with_attributes(p.attributes)
        .start_with_context(tracer, &cx);
    PLANNED.with(|c| c.set((None, None)));
    if let Some(e) = p.error {
        span.set_attribute(KeyValue::new("error.type", e.to_owned()));
        span.set_status(Status::error(e.to_owned()));
    }
    span.end_with_timestamp(p.end);
}

fn at(t: chrono::DateTime<chrono::Utc>) -> SystemTime {
    SystemTime::from(t)
}

/// Makes the spans a committed event stands for.
pub(crate) fn observe(e: &Event) {
    if !enabled() {
        return;
    }
    let Some(run) = e.run_id.as_ref() else { return };
    let r = run.as_str();
    let end = at(e.created_at);
    let took = |ms: &u64| end.checked_sub(Duration::from_millis(*ms)).unwrap_or(end);
    // What every span of an event carries (built only for events that make a span).
    let ids = || {
        vec![
            KeyValue::new("herm.deployment.id", e.deployment_id.to_string()),
            KeyValue::new("gen_ai.conversation.id", e.thread_id.to_string()),
            KeyValue::new("herm.run.id", r.to_owned()),
            KeyValue::new("herm.event.id", e.id.to_string()),
        ]
    };
    let child = |name: String, kind, id, start, attributes, error| Planned {
        name,
        kind,
        trace: trace::trace_id(r),
        parent: Some(trace::run_span(r)),
        id,
        start,
        end,
        attributes,
        error,
    };
    let planned = match &e.kind {
        EventKind::ModelCall {
            model,
            input_tokens,
            output_tokens,
            cost_usd,
            duration_ms,
            stop_reason,
            estimated,
            ..
        } => {
            let (provider, name) = model.split_once('/').unwrap_or(("", model));
            let mut attributes = ids();
            attributes.extend([
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.provider.name", provider.to_owned()),
                KeyValue::new("gen_ai.request.model", name.to_owned()),
                KeyValue::new("gen_ai.usage.input_tokens", *input_tokens as i64),
                KeyValue::new("gen_ai.usage.output_tokens", *output_tokens as i64),
                KeyValue::new("herm.cost_usd", *cost_usd),
                KeyValue::new("herm.usage.estimated", *estimated),
            ]);
            if let Some(s) = stop_reason {
                attributes.push(KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    opentelemetry::Value::Array(vec![opentelemetry::StringValue::from(s.clone())].into()),
                ));
            }
            let id = trace::model_span(e.id.as_str());
            child(format!("chat {name}"), SpanKind::Client, id, took(duration_ms), attributes, None)
        }
        EventKind::ToolResult { tool_use_id, tool, is_error, duration_ms, outcome, .. } => {
            let mut attributes = ids();
            attributes.extend([
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
                KeyValue::new("gen_ai.tool.name", tool.clone()),
                KeyValue::new("gen_ai.tool.call.id", tool_use_id.clone()),
                KeyValue::new("herm.tool.outcome", outcome.as_str()),
            ]);
            let id = trace::tool_span(r, tool_use_id);
            let error = is_error.then_some(outcome.as_str());
            child(format!("execute_tool {tool}"), SpanKind::Internal, id, took(duration_ms), attributes, error)
        }
        EventKind::Compaction { model, input_tokens, output_tokens, tokens_before, tokens_after, .. } => {
            let mut attributes = ids();
            attributes.extend([
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", model.clone()),
                KeyValue::new("gen_ai.usage.input_tokens", *input_tokens as i64),
                KeyValue::new("gen_ai.usage.output_tokens", *output_tokens as i64),
                KeyValue::new("herm.compaction.tokens_before", *tokens_before as i64),
                KeyValue::new("herm.compaction.tokens_after", *tokens_after as i64),
            ]);
            let id = trace::span_id(&["compaction", e.id.as_str()]);
            child("compact".into(), SpanKind::Internal, id, end, attributes, None)
        }
        EventKind::RunStatus { status, kind, error, usage, .. } if status.is_terminal() => {
            let mut attributes = ids();
            attributes.extend([
                KeyValue::new("gen_ai.operation.name", "invoke_agent"),
                KeyValue::new("gen_ai.agent.id", e.deployment_id.to_string()),
                KeyValue::new("herm.run.kind", kind.as_str()),
                KeyValue::new("herm.run.status", status.as_str()),
            ]);
            if let Some(u) = usage {
                attributes.extend([
                    KeyValue::new("gen_ai.usage.input_tokens", u.input_tokens as i64),
                    KeyValue::new("gen_ai.usage.output_tokens", u.output_tokens as i64),
                    KeyValue::new("herm.cost_usd", u.cost_usd),
                ]);
            }
            let start = run.created_at().map(at).unwrap_or(end);
            Planned {
                name: "invoke_agent".into(),
                kind: SpanKind::Internal,
                trace: trace::trace_id(r),
                parent: None,
                id: trace::run_span(r),
                start,
                end,
                attributes,
                error: error.as_ref().map(|e| e.code.as_str()),
            }
        }
        _ => return,
    };
    make(planned);
}

/// A call inside a tool call that leaves no event of its own (an MCP `tools/call`, a sandbox
/// exec): a client span under the tool call's span, made as it finishes.
pub(crate) fn child(
    cx: &crate::tools::source::CallContext<'_>,
    name: String,
    started: SystemTime,
    attributes: Vec<KeyValue>,
    failed: bool,
) {
    let Some(run) = cx.run.filter(|_| enabled()) else { return };
    let (r, tool_use_id) = (run.as_str(), cx.tool_use_id);
    let nonce = rand::random::<u64>().to_string();
    make(Planned {
        name,
        kind: SpanKind::Client,
        trace: trace::trace_id(r),
        parent: Some(trace::tool_span(r, tool_use_id)),
        id: trace::span_id(&["child", r, tool_use_id, &nonce]),
        start: started,
        end: SystemTime::now(),
        attributes,
        error: failed.then_some("tool_error"),
    });
}
