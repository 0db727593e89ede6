//! OpenAI Chat Completions adapter (`POST {base}/chat/completions`, `stream: true`); with a
//! `base_url` it serves every OpenAI-compatible server (vLLM, Ollama, llama.cpp).

use crate::stream::{http_client, post_sse};
use crate::*;
use futures::StreamExt;
use serde_json::{Value, json};

const DEFAULT_BASE: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    base_url: String,
    client: reqwest::Client,
    settings: HttpSettings,
}

impl OpenAi {
    /// `base_url` includes the version path (`http://host:8000/v1`).
    pub fn new(base_url: Option<&str>, settings: HttpSettings) -> Self {
        let base_url = base_url.unwrap_or(DEFAULT_BASE).trim_end_matches('/').to_owned();
        Self { base_url, client: http_client(&settings), settings }
    }
}

pub(crate) fn body(req: &ModelRequest) -> Value {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system}));
    }
    for m in &req.messages {
        match &**m {
            Message::User { text, media } if media.is_empty() => {
                messages.push(json!({"role": "user", "content": text}))
            }
            Message::User { text, media } => {
                // A message of media alone has no text part.
                let mut parts: Vec<Value> =
                    if text.is_empty() { vec![] } else { vec![json!({"type": "text", "text": text})] };
                parts.extend(media.iter().map(part));
                messages.push(json!({"role": "user", "content": parts}));
            }
            Message::Assistant { text, tool_calls } => {
                let mut msg =
                    json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
                if !tool_calls.is_empty() {
                    msg["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| json!({"id": c.tool_use_id, "type": "function", "function": {"name": c.tool, "arguments": c.arguments.to_string()}}))
                        .collect();
                }
                messages.push(msg);
            }
            Message::ToolResults(rs) => {
                for r in rs {
                    messages.push(json!({"role": "tool", "tool_call_id": r.tool_use_id, "content": r.content}));
                }
                // A tool message holds text only: images a tool returned follow in a user turn.
                let media: Vec<&Media> = rs.iter().flat_map(|r| &r.media).collect();
                if !media.is_empty() {
                    let mut parts =
                        vec![json!({"type": "text", "text": "The tool results above returned these images."})];
                    parts.extend(media.into_iter().map(part));
                    messages.push(json!({"role": "user", "content": parts}));
                }
            }
        }
    }
    let mut b = json!({
        "model": req.model,
        "messages": messages,
        "max_tokens": req.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !req.tools.is_empty() {
        b["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": *t.input_schema}}))
            .collect();
    }
    b
}

/// A content part: `image_url` (a data URL or a web URL) or a PDF as a `file` with base64 data.
fn part(m: &Media) -> Value {
    let a = &m.attachment;
    let text = || json!({"type": "text", "text": m.placeholder()});
    match (a.kind, &m.source) {
        (AttachmentKind::Image, MediaSource::Base64(d)) => {
            json!({"type": "image_url", "image_url": {"url": format!("data:{};base64,{}", a.media_type, d)}})
        }
        (AttachmentKind::Image, MediaSource::Url(u)) => json!({"type": "image_url", "image_url": {"url": u}}),
        (AttachmentKind::Document, MediaSource::Base64(d)) => json!({"type": "file", "file": {
            "filename": a.name.clone().unwrap_or_else(|| "document.pdf".into()),
            "file_data": format!("data:{};base64,{}", a.media_type, d),
        }}),
        _ => text(),
    }
}

#[derive(Default)]
pub(crate) struct Folder {
    resp: ModelResponse,
    /// Tool calls by their stream index: (id, name, argument fragments).
    calls: std::collections::BTreeMap<u64, (String, String, String)>,
    done: bool,
}

impl Folder {
    pub(crate) fn apply(&mut self, data: &str, on_delta: &mut DeltaSink<'_>) -> Result<(), Error> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| Error::new(ErrorKind::BadResponse, format!("bad stream chunk: {e}")))?;
        if let Some(err) = v.get("error") {
            return Err(Error::new(
                ErrorKind::Server,
                format!("provider stream error: {}", err["message"].as_str().unwrap_or("unknown")),
            ));
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.resp.usage.input_tokens = u["prompt_tokens"].as_u64().unwrap_or(0);
            self.resp.usage.output_tokens = u["completion_tokens"].as_u64().unwrap_or(0);
        }
        let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else { return Ok(()) };
        let d = &choice["delta"];
        if let Some(t) = d["content"].as_str()
            && !t.is_empty()
        {
            self.resp.text.push_str(t);
            on_delta(t);
        }
        if let Some(tcs) = d["tool_calls"].as_array() {
            for tc in tcs {
                let idx = tc["index"].as_u64().unwrap_or(0);
                let e = self.calls.entry(idx).or_default();
                if let Some(id) = tc["id"].as_str() {
                    e.0 = id.to_owned();
                }
                if let Some(n) = tc["function"]["name"].as_str() {
                    e.1.push_str(n);
                }
                if let Some(a) = tc["function"]["arguments"].as_str() {
                    e.2.push_str(a);
                }
            }
        }
        if let Some(r) = choice["finish_reason"].as_str() {
            self.resp.stop_reason = Some(r.to_owned());
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<ModelResponse, Error> {
        if !self.done && self.resp.stop_reason.is_none() {
            return Err(Error::new(ErrorKind::BadResponse, "model stream ended before finish"));
        }
        for (_, (id, name, args)) in std::mem::take(&mut self.calls) {
            self.resp.tool_calls.push(RequestedToolCall {
                tool_use_id: id,
                tool: name,
                arguments: parse_arguments(&args)?,
            });
        }
        Ok(self.resp)
    }
}

#[async_trait]
impl ModelClient for OpenAi {
    async fn stream(
        &self,
        req: &ModelRequest,
        api_key: Option<&str>,
        on_delta: &mut DeltaSink<'_>,
    ) -> Result<ModelResponse, Error> {
        let mut headers = Vec::new();
        if let Some(k) = api_key {
            headers.push(("authorization", format!("Bearer {k}")));
        }
        let url = format!("{}/chat/completions", self.base_url);
        let mut events = post_sse(&self.client, &url, headers, &body(req), &self.settings).await?;
        let mut folder = Folder::default();
        while let Some(ev) = events.next().await {
            folder.apply(&ev?.data, on_delta)?;
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
    fn folds_content_and_indexed_tool_call_fragments() {
        let chunks = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"there"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"id\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"other","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"7}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}"#,
            "[DONE]",
        ];
        let mut f = Folder::default();
        let mut seen = String::new();
        for c in chunks {
            f.apply(c, &mut |t| seen.push_str(t)).unwrap();
        }
        let r = f.finish().unwrap();
        assert_eq!(seen, "Hi there");
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].tool_use_id, "call_1");
        assert_eq!(r.tool_calls[0].arguments, json!({"id": 7}));
        assert_eq!(r.usage, TokenUsage { input_tokens: 5, output_tokens: 9 });
    }

    #[test]
    fn media_in_the_openai_wire_shape() {
        let b = body(&with_media());
        let m = b["messages"].as_array().unwrap();
        let user = &m[0]["content"];
        assert_eq!(user[0], json!({"type": "text", "text": "look"}));
        assert_eq!(user[1], json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}));
        assert_eq!(user[2], json!({"type": "image_url", "image_url": {"url": "https://example.test/a.png"}}));
        assert_eq!(
            user[3],
            json!({"type": "file", "file": {"filename": "brief.pdf", "file_data": "data:application/pdf;base64,JVBE"}})
        );
        assert_eq!(user[4]["type"], "text");
        // The tool message is text; its image follows in a user turn.
        assert_eq!(m[2], json!({"role": "tool", "tool_call_id": "t", "content": "the image"}));
        assert_eq!(m[3]["role"], "user");
        assert_eq!(m[3]["content"][1]["image_url"]["url"], "data:image/png;base64,REVG");
    }

    #[test]
    fn bad_arguments_are_a_bad_response() {
        let mut f = Folder::default();
        f.apply(r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"n","arguments":"{oops"}}]},"finish_reason":"tool_calls"}]}"#, &mut |_| {}).unwrap();
        assert_eq!(f.finish().unwrap_err().kind, ErrorKind::BadResponse);
    }
}
