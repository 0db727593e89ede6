//! A `tools/call` result as text for the model. Content blocks are read through their JSON
//! form so SDK type changes stay here: text as is, images/audio/blobs as a short note,
//! embedded text resources inline, links by URI; `structuredContent` when nothing else.
//! Image blocks are also handed back as such ([`images`]) so the model can be shown them.

use crate::tools::ToolOutput;
use rmcp::model::CallToolResult;
use serde_json::Value;

pub fn render(r: &CallToolResult) -> ToolOutput {
    let mut parts = Vec::new();
    for block in &r.content {
        let Ok(v) = serde_json::to_value(block) else { continue };
        parts.push(block_text(&v));
    }
    if parts.is_empty()
        && let Some(s) = &r.structured_content
    {
        parts.push(s.to_string());
    }
    ToolOutput { content: parts.join("\n"), is_error: r.is_error == Some(true), attachments: Vec::new() }
}

/// The image blocks of a result: (media type, base64 data).
pub fn images(r: &CallToolResult) -> Vec<(String, String)> {
    r.content
        .iter()
        .filter_map(|b| serde_json::to_value(b).ok())
        .filter(|v| v["type"] == "image")
        .filter_map(|v| Some((v["mimeType"].as_str()?.to_owned(), v["data"].as_str()?.to_owned())))
        .collect()
}

fn block_text(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    match s("type") {
        "text" => s("text").to_owned(),
        "image" | "audio" => {
            format!("[{} content: {}, {} bytes of base64]", s("type"), s("mimeType"), s("data").len())
        }
        "resource" => {
            let r = v.get("resource").cloned().unwrap_or_default();
            let rs = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            match r.get("text").and_then(Value::as_str) {
                Some(t) => format!("[resource {}]\n{t}", rs("uri")),
                None => format!("[resource {} ({}), {} bytes of base64]", rs("uri"), rs("mimeType"), rs("blob").len()),
            }
        }
        "resource_link" => format!("[resource link: {} {}]", s("uri"), s("name")),
        other => format!("[{other} content]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks() {
        assert_eq!(block_text(&json!({"type": "text", "text": "hi"})), "hi");
        assert_eq!(
            block_text(&json!({"type": "image", "mimeType": "image/png", "data": "AAAA"})),
            "[image content: image/png, 4 bytes of base64]"
        );
        assert_eq!(
            block_text(&json!({"type": "resource", "resource": {"uri": "file:///a", "text": "body"}})),
            "[resource file:///a]\nbody"
        );
        assert_eq!(block_text(&json!({"type": "resource_link", "uri": "u", "name": "n"})), "[resource link: u n]");
    }
}
