//! Anthropic Messages API adapter (`POST {base}/v1/messages`, `stream: true`).

use crate::stream::{http_client, post_sse};
use crate::*;
use futures::StreamExt;
use serde_json::{Value, json};

const DEFAULT_BASE: &str = "https://api.anthropic.com";

pub struct Anthropic {
    base_url: String,
    client: reqwest::Client,
    settings: HttpSettings,
}

impl Anthropic {
    pub fn new(base_url: Option<&str>, settings: HttpSettings) -> Self {
        let base_url = base_url.unwrap_or(DEFAULT_BASE).trim_end_matches('/').to_owned();
        Self { base_url, client: http_client(&settings), settings }
    }
}

/// Builds the request body; consecutive turns of one role are merged, as the API requires
/// alternating roles.
pub(crate) fn body(req: &ModelRequest) -> Value {
    let mut msgs: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match &**m {
            Message::User { text, media } => {
                // Images and documents first, as Anthropic advises, then the text.
                // A message of media alone has no text block (the API refuses an empty one).
                let mut b: Vec<Value> = media.iter().map(block).collect();
                if !text.is_empty() || media.is_empty() {
                    b.push(json!({"type": "text", "text": text}));
                }
                ("user", b)
            }
            Message::Assistant { text, tool_calls } => {
                let mut b = Vec::new();
                if !text.is_empty() {
                    b.push(json!({"type": "text", "text": text}));
                }
                for c in tool_calls {
                    b.push(json!({"type": "tool_use", "id": c.tool_use_id, "name": c.tool, "input": c.arguments}));
                }
                ("assistant", b)
            }
            Message::ToolResults(rs) => (
                "user",
                rs.iter()
                    .map(|r| {
                        let content = if r.media.is_empty() {
                            json!(r.content)
                        } else {
                            let mut c = vec![json!({"type": "text", "text": r.content})];
                            c.extend(r.media.iter().map(block));
                            Value::Array(c)
                        };
                        json!({"type": "tool_result", "tool_use_id": r.tool_use_id, "content": content, "is_error": r.is_error})
                    })
                    .collect(),
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match msgs.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => msgs.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = msgs.into_iter().map(|(r, c)| json!({"role": r, "content": c})).collect();
    let mut b = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "messages": messages,
        "stream": true,
    });
    if !req.system.is_empty() {
        b["system"] = json!(req.system);
    }
    if !req.tools.is_empty() {
        b["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": *t.input_schema}))
            .collect();
    }
    b
}

/// An image or document block: `{type: image|document, source: {type: base64|url, …}}`.
fn block(m: &Media) -> Value {
    let a = &m.attachment;
    let ty = match a.kind {
        AttachmentKind::Image => "image",
        AttachmentKind::Document => "document",
        AttachmentKind::Audio | AttachmentKind::Video => return json!({"type": "text", "text": m.placeholder()}),
    };
    let source = match &m.source {
        MediaSource::Base64(data) => json!({"type": "base64", "media_type": a.media_type, "data": data.as_ref()}),
        MediaSource::Url(url) => json!({"type": "url", "url": url}),
        MediaSource::Stored | MediaSource::Omitted(_) => return json!({"type": "text", "text": m.placeholder()}),
    };
    let mut b = json!({"type": ty, "source": source});
    if let (AttachmentKind::Document, Some(name)) = (a.kind, &a.name) {
        b["title"] = json!(name);
    }
    b
}

/// Folds Anthropic stream events into a response.
#[derive(Default)]
pub(crate) struct Folder {
    resp: ModelResponse,
    /// Open content blocks by index: tool calls accumulate their JSON fragments here.
    blocks: std::collections::BTreeMap<u64, (String, String, String)>,
    done: bool,
}

impl Folder {
    /// Applies one SSE event; text deltas are passed to `on_delta`.
    pub(crate) fn apply(&mut self, event: &str, data: &str, on_delta: &mut DeltaSink<'_>) -> Result<(), Error> {
        let v: Value = match event {
            "ping" => return Ok(()),
            _ => serde_json::from_str(data)
                .map_err(|e| Error::new(ErrorKind::BadResponse, format!("bad stream event: {e}")))?,
        };
        let ty = v["type"].as_str().unwrap_or(event);
        match ty {
            "message_start" => {
                let u = &v["message"]["usage"];
                self.resp.usage.input_tokens = u["input_tokens"].as_u64().unwrap_or(0)
                    + u["cache_read_input_tokens"].as_u64().unwrap_or(0)
                    + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
                self.resp.usage.output_tokens = u["output_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let idx = v["index"].as_u64().unwrap_or(0);
                let cb = &v["content_block"];
                if cb["type"] == "tool_use" {
                    let id = cb["id"].as_str().unwrap_or_default().to_owned();
                    let name = cb["name"].as_str().unwrap_or_default().to_owned();
                    self.blocks.insert(idx, (id, name, String::new()));
                } else if let Some(t) = cb["text"].as_str()
                    && !t.is_empty()
                {
                    self.resp.text.push_str(t);
                    on_delta(t);
                }
            }
            "content_block_delta" => {
                let idx = v["index"].as_u64().unwrap_or(0);
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let t = d["text"].as_str().unwrap_or_default();
                        self.resp.text.push_str(t);
                        on_delta(t);
                    }
                    Some("input_json_delta") => {
                        if let Some(b) = self.blocks.get_mut(&idx) {
                            b.2.push_str(d["partial_json"].as_str().unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let idx = v["index"].as_u64().unwrap_or(0);
                if let Some((id, name, args)) = self.blocks.remove(&idx) {
                    self.resp.tool_calls.push(RequestedToolCall {
                        tool_use_id: id,
                        tool: name,
                        arguments: parse_arguments(&args)?,
                    });
                }
            }
            "message_delta" => {
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    self.resp.stop_reason = Some(r.to_owned());
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    self.resp.usage.output_tokens = o;
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let kind = match v["error"]["type"].as_str() {
                    Some("overloaded_error") | Some("api_error") => ErrorKind::Server,
                    Some("rate_limit_error") => ErrorKind::RateLimited,
                    _ => ErrorKind::BadResponse,
                };
                return Err(Error::new(
                    kind,
                    format!("provider stream error: {}", v["error"]["message"].as_str().unwrap_or("unknown")),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<ModelResponse, Error> {
        if !self.done {
            return Err(Error::new(ErrorKind::BadResponse, "model stream ended before message_stop"));
        }
        Ok(self.resp)
    }
}

#[async_trait]
impl ModelClient for Anthropic {
    async fn stream(
        &self,
        req: &ModelRequest,
        api_key: Option<&str>,
        on_delta: &mut DeltaSink<'_>,
    ) -> Result<ModelResponse, Error> {
        let mut headers = vec![("anthropic-version", "2023-06-01".to_owned())];
        if let Some(k) = api_key {
            headers.push(("x-api-key", k.to_owned()));
        }
        let url = format!("{}/v1/messages", self.base_url);
        let mut events = post_sse(&self.client, &url, headers, &body(req), &self.settings).await?;
        let mut folder = Folder::default();
        while let Some(ev) = events.next().await {
            let ev = ev?;
            folder.apply(&ev.event, &ev.data, on_delta)?;
            if folder.done {
                break;
            }
        }
        folder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::with_media;

    #[test]
    fn folds_text_and_fragmented_tool_calls() {
        let events = [
            ("message_start", r#"{"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            ),
            ("ping", "{}"),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}"#,
            ),
            ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu_1","name":"get","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\": \"a"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"b\"}"}}"#,
            ),
            ("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let mut f = Folder::default();
        let mut seen = String::new();
        for (e, d) in events {
            f.apply(e, d, &mut |t| seen.push_str(t)).unwrap();
        }
        let r = f.finish().unwrap();
        assert_eq!(seen, "Hello");
        assert_eq!(r.text, "Hello");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].arguments, json!({"q": "ab"}));
        assert_eq!(r.usage, TokenUsage { input_tokens: 12, output_tokens: 30 });
        assert_eq!(r.stop_reason.as_deref(), Some("tool_use"));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut f = Folder::default();
        f.apply("message_start", r#"{"type":"message_start","message":{"usage":{}}}"#, &mut |_| {}).unwrap();
        assert_eq!(f.finish().unwrap_err().kind, ErrorKind::BadResponse);
    }

    #[test]
    fn media_in_the_anthropic_wire_shape() {
        let b = body(&with_media());
        let user = &b["messages"][0]["content"];
        assert_eq!(
            user[0],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}})
        );
        assert_eq!(user[1], json!({"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}));
        assert_eq!(
            user[2],
            json!({"type": "document", "title": "brief.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}})
        );
        assert_eq!(user[3]["type"], "text");
        assert!(user[3]["text"].as_str().unwrap().contains("no longer available"));
        assert_eq!(user[4], json!({"type": "text", "text": "look"}));
        let result = &b["messages"][2]["content"][0];
        assert_eq!(result["content"][0], json!({"type": "text", "text": "the image"}));
        assert_eq!(result["content"][1]["source"]["data"], "REVG");
    }

    #[test]
    fn body_merges_tool_results_and_user_turns() {
        let req = ModelRequest {
            model: "m".into(),
            system: "sys".into(),
            messages: vec![
                Message::user("hi"),
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![RequestedToolCall {
                        tool_use_id: "t".into(),
                        tool: "x".into(),
                        arguments: json!({}),
                    }],
                },
                Message::ToolResults(vec![ToolResultMsg {
                    tool_use_id: "t".into(),
                    content: "ok".into(),
                    is_error: false,
                    media: vec![],
                }]),
                Message::user("more"),
            ]
            .into_iter()
            .map(Arc::new)
            .collect(),
            tools: vec![],
            max_tokens: 10,
        };
        let b = body(&req);
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[2]["content"][0]["type"], "tool_result");
        assert_eq!(m[2]["content"][1]["text"], "more");
        assert_eq!(b["system"], "sys");
    }
}
