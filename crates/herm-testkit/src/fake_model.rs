//! The fake model server. A test scripts one [`Reply`] per step; the step of a request is the
//! number of assistant turns already in it, so a request repeated after a crash gets the
//! same reply. Every request is recorded with whether its response was sent to the end.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Which wire format a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Anthropic,
    OpenAi,
}

/// What the model answers at one step.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// Text, streamed as these chunks.
    pub text: Vec<String>,
    /// Tool calls: (name, arguments).
    pub tool_calls: Vec<(String, Value)>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Pause between streamed chunks.
    pub chunk_delay: Duration,
    /// On the first attempt at this step: stream the text and then hang (never finish).
    pub stall_first: bool,
    /// Fail the first N attempts with this HTTP status.
    pub fail_first: Option<(u16, u32)>,
    /// Report no usage, as llama.cpp's OpenAI-compatible server does (OpenAI wire only: no
    /// usage chunk is sent).
    pub no_usage: bool,
}

impl Reply {
    pub fn text(chunks: &[&str]) -> Self {
        Self {
            text: chunks.iter().map(|s| s.to_string()).collect(),
            input_tokens: 20,
            output_tokens: 10,
            ..Default::default()
        }
    }
    pub fn tool(name: &str, args: Value) -> Self {
        Self { tool_calls: vec![(name.into(), args)], input_tokens: 30, output_tokens: 15, ..Default::default() }
    }
    pub fn with_text(mut self, chunks: &[&str]) -> Self {
        self.text = chunks.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn delayed(mut self, d: Duration) -> Self {
        self.chunk_delay = d;
        self
    }
    pub fn stall_first(mut self) -> Self {
        self.stall_first = true;
        self
    }
    pub fn without_usage(mut self) -> Self {
        self.no_usage = true;
        self
    }
    pub fn fail_first(mut self, status: u16, times: u32) -> Self {
        self.fail_first = Some((status, times));
        self
    }
}

/// One request the fake model received.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub wire: Wire,
    pub step: usize,
    pub body: Value,
    pub headers: Vec<(String, String)>,
    /// The whole response was handed to the connection.
    pub completed: Arc<AtomicBool>,
    pub status: u16,
    /// The side script that answered it (its index), if the request matched one.
    pub side: Option<usize>,
}

impl Attempt {
    pub fn is_completed(&self) -> bool {
        self.completed.load(Ordering::SeqCst)
    }
}

struct Inner {
    script: Vec<Reply>,
    sides: Vec<(String, Vec<Reply>)>,
    attempts: Mutex<Vec<Attempt>>,
    /// Requests whose body is longer than this many bytes are refused as the provider
    /// refuses a prompt longer than the model's window (status 413 is recorded for them).
    context_limit: Mutex<Option<usize>>,
}

/// The status recorded for a request refused as too long (the response itself is a 400).
pub const TOO_LONG: u16 = 413;

#[derive(Clone)]
pub struct FakeModel {
    inner: Arc<Inner>,
    pub addr: std::net::SocketAddr,
}

impl FakeModel {
    pub async fn start(script: Vec<Reply>) -> Self {
        Self::start_with_sides(script, Vec::new()).await
    }

    /// Also answers requests whose body contains a marker (a judge's system prompt, say)
    /// from a side script of their own, in order: `(marker, replies)`.
    pub async fn start_with_sides(script: Vec<Reply>, sides: Vec<(String, Vec<Reply>)>) -> Self {
        let inner =
            Arc::new(Inner { script, sides, attempts: Mutex::new(Vec::new()), context_limit: Mutex::new(None) });
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat/completions", post(openai))
            // Requests with images are large: take what a provider takes (32 MB and more).
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(inner.clone());
        let addr = crate::serve_local(app).await;
        Self { inner, addr }
    }

    /// `base_url` for an `anthropic` provider.
    pub fn anthropic_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `base_url` for an `openai-compatible` provider.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// From now on, refuse requests longer than `bytes` with the provider's "prompt is too
    /// long" error (a model with a small context window).
    pub fn refuse_longer_than(&self, bytes: usize) {
        *self.inner.context_limit.lock() = Some(bytes);
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.inner.attempts.lock().clone()
    }

    /// Completed responses per step.
    pub fn completed_per_step(&self) -> Vec<usize> {
        let mut v = vec![0; self.inner.script.len()];
        for a in self.attempts() {
            if a.is_completed() && a.status == 200 && a.side.is_none() && a.step < v.len() {
                v[a.step] += 1;
            }
        }
        v
    }

    /// Requests received (any outcome).
    pub fn request_count(&self) -> usize {
        self.inner.attempts.lock().len()
    }
}

fn step_of(body: &Value) -> usize {
    body["messages"].as_array().map(|m| m.iter().filter(|x| x["role"] == "assistant").count()).unwrap_or(0)
}

fn record(inner: &Inner, wire: Wire, headers: &axum::http::HeaderMap, body: &Value) -> (Reply, usize, Attempt) {
    let text = body.to_string();
    let side = inner.sides.iter().position(|(marker, _)| text.contains(marker.as_str()));
    let mut attempts = inner.attempts.lock();
    let (step, script) = match side {
        // A side script answers in order of its requests.
        Some(i) => (attempts.iter().filter(|a| a.side == Some(i)).count(), &inner.sides[i].1),
        None => (step_of(body), &inner.script),
    };
    let prior = attempts.iter().filter(|a| a.step == step && a.wire == wire && a.side == side).count() as u32;
    let reply = script.get(step).cloned().unwrap_or_else(|| Reply::text(&["(script exhausted)"]));
    let mut status = 200;
    if let Some((s, n)) = reply.fail_first
        && prior < n
    {
        status = s;
    }
    if inner.context_limit.lock().is_some_and(|max| text.len() > max) {
        status = TOO_LONG;
    }
    let a = Attempt {
        wire,
        step,
        body: body.clone(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned())).collect(),
        completed: Arc::new(AtomicBool::new(false)),
        status,
        side,
    };
    attempts.push(a.clone());
    let first = prior == 0;
    let mut reply = reply;
    reply.stall_first = reply.stall_first && first;
    (reply, step, a)
}

/// Streams SSE frames with the reply's pacing; marks the attempt completed after the last.
fn sse_body(frames: Vec<String>, reply: &Reply, stall_after: Option<usize>, done: Arc<AtomicBool>) -> Response {
    let delay = reply.chunk_delay;
    let n = frames.len();
    let s = futures::stream::iter(frames.into_iter().enumerate()).then(move |(i, f)| {
        let done = done.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if stall_after == Some(i) {
                // Hang forever: the client must give up or be killed.
                futures::future::pending::<()>().await;
            }
            if i + 1 == n {
                done.store(true, Ordering::SeqCst);
            }
            Ok::<_, std::convert::Infallible>(Bytes::from(f))
        }
    });
    Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(Body::from_stream(s)).unwrap()
}

fn error_response(status: u16, wire: Wire) -> Response {
    if status == TOO_LONG {
        let body = match wire {
            Wire::Anthropic => json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "prompt is too long: 210000 tokens > 200000 maximum"}}),
            Wire::OpenAi => json!({"error": {"message": "This model's maximum context length is 128000 tokens.",
                "type": "invalid_request_error", "code": "context_length_exceeded"}}),
        };
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let body = match wire {
        Wire::Anthropic => json!({"type": "error", "error": {"type": "api_error", "message": "scripted failure"}}),
        Wire::OpenAi => json!({"error": {"message": "scripted failure", "type": "server_error"}}),
    };
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn anthropic(
    State(inner): State<Arc<Inner>>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let (reply, step, a) = record(&inner, Wire::Anthropic, &headers, &body);
    if a.status != 200 {
        return error_response(a.status, Wire::Anthropic);
    }
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut f = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": format!("msg_{step}"), "type": "message", "role": "assistant", "model": body["model"], "content": [], "stop_reason": null, "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1}}}),
    )];
    let mut idx = 0;
    if !reply.text.is_empty() {
        f.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}}),
        ));
        f.push(ev("ping", json!({"type": "ping"})));
        for t in &reply.text {
            f.push(ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": t}}),
            ));
        }
        f.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": idx})));
        idx += 1;
    }
    let stall_after = reply.stall_first.then_some(f.len());
    for (i, (name, args)) in reply.tool_calls.iter().enumerate() {
        let id = format!("toolu_{step}_{i}");
        f.push(ev("content_block_start", json!({"type": "content_block_start", "index": idx, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
        // Arguments arrive in fragments, as the real API sends them.
        let s = args.to_string();
        let mid = s.len() / 2;
        let (a, b) = s.split_at(s.char_indices().map(|(i, _)| i).find(|&i| i >= mid).unwrap_or(mid));
        for part in [a, b] {
            f.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": part}})));
        }
        f.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": idx})));
        idx += 1;
    }
    let stop = if reply.tool_calls.is_empty() { "end_turn" } else { "tool_use" };
    f.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": reply.output_tokens}})));
    f.push(ev("message_stop", json!({"type": "message_stop"})));
    sse_body(f, &reply, stall_after, a.completed.clone())
}

async fn openai(
    State(inner): State<Arc<Inner>>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let (reply, step, a) = record(&inner, Wire::OpenAi, &headers, &body);
    if a.status != 200 {
        return error_response(a.status, Wire::OpenAi);
    }
    let id = format!("chatcmpl-{step}");
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut f = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for t in &reply.text {
        f.push(chunk(json!({"content": t}), Value::Null));
    }
    let stall_after = reply.stall_first.then_some(f.len());
    for (i, (name, args)) in reply.tool_calls.iter().enumerate() {
        f.push(chunk(
            json!({"tool_calls": [{"index": i, "id": format!("call_{step}_{i}"), "type": "function", "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        let s = args.to_string();
        let mid = s.char_indices().map(|(i, _)| i).find(|&i| i >= s.len() / 2).unwrap_or(0);
        for part in [&s[..mid], &s[mid..]] {
            f.push(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}), Value::Null));
        }
    }
    let finish = if reply.tool_calls.is_empty() { "stop" } else { "tool_calls" };
    f.push(chunk(json!({}), json!(finish)));
    if !reply.no_usage {
        f.push(format!(
            "data: {}\n\n",
            json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": body["model"], "choices": [], "usage": {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens, "total_tokens": reply.input_tokens + reply.output_tokens}})
        ));
    }
    f.push("data: [DONE]\n\n".into());
    sse_body(f, &reply, stall_after, a.completed.clone())
}
