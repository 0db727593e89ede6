//! Model providers behind one streaming trait: Anthropic Messages and OpenAI Chat Completions
//! (which also serves every OpenAI-compatible server). Adapters translate a provider-neutral
//! [`ModelRequest`] to the provider's wire format and fold its SSE stream into a
//! [`ModelResponse`], calling back for each text delta.
//!
//! Invariants: this crate never logs request bodies or API keys; the key is passed per call
//! and lives only in the outgoing header.

mod anthropic;
mod openai;
mod retry;
mod stream;

pub use anthropic::Anthropic;
pub use openai::OpenAi;
pub use retry::{RetryPolicy, call_with_retry};

use async_trait::async_trait;
use herm_types::attachment::{Attachment, AttachmentKind};
use herm_types::event::RequestedToolCall;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A tool as offered to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// Shared with the tool it describes: a request does not copy it.
    pub input_schema: std::sync::Arc<Value>,
}

/// One tool result returned to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResultMsg {
    pub tool_use_id: String,
    pub content: String,
    pub is_error: bool,
    /// Images the tool returned.
    pub media: Vec<Media>,
}

/// An image or a document shown to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Media {
    /// The log's reference: kind, media type, name, hash.
    pub attachment: Attachment,
    pub source: MediaSource,
}

/// Where the adapter takes a medium's bytes from.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaSource {
    /// Not loaded yet: the caller fills it in from its store before sending.
    Stored,
    /// Base64 of the bytes.
    Base64(Arc<str>),
    /// A URL the provider fetches itself.
    Url(String),
    /// Not shown, for this reason (the bytes are gone, the model takes no such kind); the
    /// model reads a description and the reason instead.
    Omitted(String),
}

impl Media {
    /// What the model reads in place of a medium it is not shown.
    pub fn placeholder(&self) -> String {
        let why = match &self.source {
            MediaSource::Omitted(why) => why.as_str(),
            _ => "not loaded",
        };
        format!("{} ({why})", self.attachment.describe())
    }
}

/// A provider-neutral conversation turn.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    User { text: String, media: Vec<Media> },
    Assistant { text: String, tool_calls: Vec<RequestedToolCall> },
    ToolResults(Vec<ToolResultMsg>),
}

impl Message {
    /// A user turn of text only.
    pub fn user(text: impl Into<String>) -> Self {
        Self::User { text: text.into(), media: Vec::new() }
    }

    /// The media of this turn.
    pub fn media(&self) -> impl Iterator<Item = &Media> {
        let (own, results): (&[Media], &[ToolResultMsg]) = match self {
            Self::User { media, .. } => (media, &[]),
            Self::ToolResults(rs) => (&[], rs),
            Self::Assistant { .. } => (&[], &[]),
        };
        own.iter().chain(results.iter().flat_map(|r| r.media.iter()))
    }

    /// The media of this turn, to load.
    pub fn media_mut(&mut self) -> Vec<&mut Media> {
        match self {
            Self::User { media, .. } => media.iter_mut().collect(),
            Self::ToolResults(rs) => rs.iter_mut().flat_map(|r| r.media.iter_mut()).collect(),
            Self::Assistant { .. } => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelRequest {
    /// The model's name at its provider (without the `provider/` prefix).
    pub model: String,
    pub system: String,
    /// Shared: a worker's next request repeats the conversation its last one sent, and the
    /// turns it keeps between steps are not copied into each request (see herm's history).
    pub messages: Vec<Arc<Message>>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
}

/// Token counts as the provider reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The folded result of one streamed model call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelResponse {
    pub text: String,
    pub tool_calls: Vec<RequestedToolCall>,
    pub usage: TokenUsage,
    pub stop_reason: Option<String>,
}

/// What went wrong with a model call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    RateLimited,
    /// 5xx from the provider.
    Server,
    Timeout,
    /// Connection refused, reset, DNS…
    Network,
    /// 401/403.
    Auth,
    /// Any other 4xx: our request was refused.
    Rejected,
    /// The stream did not parse or ended early.
    BadResponse,
    /// The request is longer than the model's context window (the conversation must be
    /// compacted before it is sent again).
    ContextTooLong,
}

#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, status: None, message: message.into() }
    }

    /// Rate limits, server errors, timeouts and dropped connections are worth retrying.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Timeout
                | ErrorKind::Network
                | ErrorKind::BadResponse
        )
    }

    /// The stable code surfaced in `run_status.error.code`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::RateLimited => "model_rate_limited",
            ErrorKind::Server => "model_server_error",
            ErrorKind::Timeout => "model_timeout",
            ErrorKind::Network => "model_unreachable",
            ErrorKind::Auth => "model_auth_failed",
            ErrorKind::Rejected => "model_request_rejected",
            ErrorKind::BadResponse => "model_bad_response",
            ErrorKind::ContextTooLong => "model_context_exceeded",
        }
    }

    pub(crate) fn from_status(status: u16, body: &str) -> Self {
        let kind = match status {
            429 => ErrorKind::RateLimited,
            401 | 403 => ErrorKind::Auth,
            s if s >= 500 => ErrorKind::Server,
            400 | 413 if context_too_long(body) => ErrorKind::ContextTooLong,
            _ => ErrorKind::Rejected,
        };
        // Provider error bodies describe our request, never the key; keep them short.
        let snippet: String = body.chars().take(300).collect();
        Self { kind, status: Some(status), message: format!("provider returned {status}: {snippet}") }
    }

    pub(crate) fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::new(ErrorKind::Timeout, "model call timed out")
        } else {
            // `without_url` keeps query strings (which may carry keys for some servers) out.
            Self::new(ErrorKind::Network, format!("cannot reach the provider: {}", strip_url(e)))
        }
    }
}

/// Whether a refusal says the prompt exceeds the context window (Anthropic: "prompt is too
/// long"; OpenAI: `context_length_exceeded`, "maximum context length").
fn context_too_long(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    ["prompt is too long", "context_length_exceeded", "maximum context length", "context window"]
        .iter()
        .any(|p| b.contains(p))
}

fn strip_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}

/// Connection settings shared by the adapters.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// Longest silence allowed between two stream chunks before the call counts as stalled.
    pub idle_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(120) }
    }
}

/// Receives streamed text fragments.
pub type DeltaSink<'a> = dyn for<'s> FnMut(&'s str) + Send + 'a;

/// A streaming model client. `on_delta` receives text fragments as they arrive.
#[async_trait]
pub trait ModelClient: Send + Sync {
    async fn stream(
        &self,
        req: &ModelRequest,
        api_key: Option<&str>,
        on_delta: &mut DeltaSink<'_>,
    ) -> Result<ModelResponse, Error>;
}

/// Parses accumulated tool-call argument JSON; empty means `{}`.
pub(crate) fn parse_arguments(s: &str) -> Result<Value, Error> {
    if s.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(s)
        .map_err(|e| Error::new(ErrorKind::BadResponse, format!("tool call arguments are not JSON: {e}")))
}

/// A request with every kind of medium, for the adapters' wire-shape tests.
#[cfg(test)]
pub(crate) mod testdata {
    use super::*;
    use serde_json::json;

    pub(crate) fn media(kind: AttachmentKind, media_type: &str, source: MediaSource) -> Media {
        Media {
            attachment: Attachment {
                kind,
                media_type: media_type.into(),
                size: 3,
                sha256: "ab".into(),
                name: Some("brief.pdf".into()),
                attachment_id: None,
                url: None,
                width: None,
                height: None,
            },
            source,
        }
    }

    pub(crate) fn with_media() -> ModelRequest {
        let img = |s| media(AttachmentKind::Image, "image/png", s);
        ModelRequest {
            model: "m".into(),
            system: String::new(),
            messages: vec![
                Message::User {
                    text: "look".into(),
                    media: vec![
                        img(MediaSource::Base64("QUJD".into())),
                        img(MediaSource::Url("https://example.test/a.png".into())),
                        media(AttachmentKind::Document, "application/pdf", MediaSource::Base64("JVBE".into())),
                        img(MediaSource::Omitted("no longer available".into())),
                    ],
                },
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![RequestedToolCall {
                        tool_use_id: "t".into(),
                        tool: "view".into(),
                        arguments: json!({}),
                    }],
                },
                Message::ToolResults(vec![ToolResultMsg {
                    tool_use_id: "t".into(),
                    content: "the image".into(),
                    is_error: false,
                    media: vec![img(MediaSource::Base64("REVG".into()))],
                }]),
            ]
            .into_iter()
            .map(Arc::new)
            .collect(),
            tools: vec![],
            max_tokens: 10,
        }
    }
}
