//! Declarative connector tools: one HTTP request per call, templated from the tool input and
//! the deployment's secrets (resolved host-side at call time, never shown to the model).

use super::ToolOutput;
use super::template::{TemplateError, render, secret_names};
use crate::redact::percent_encode;
use herm_store::vault::SecretValue;
use herm_types::config::HttpToolSpec;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Responses longer than this are cut (the model is told).
const MAX_RESPONSE: usize = 64 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Every secret name the tool's URL and headers use.
pub fn secrets_used(spec: &HttpToolSpec) -> Vec<String> {
    let mut v = secret_names(&spec.url);
    for h in spec.headers.values() {
        v.extend(secret_names(h));
    }
    v.sort();
    v.dedup();
    v
}

pub async fn call(
    client: &reqwest::Client,
    spec: &HttpToolSpec,
    input: &Value,
    secrets: &BTreeMap<String, SecretValue>,
) -> ToolOutput {
    match build(client, spec, input, secrets) {
        Ok(rb) => send(rb, spec).await,
        Err(e) => ToolOutput::error(format!("cannot build the request: {e}")),
    }
}

fn build(
    client: &reqwest::Client,
    spec: &HttpToolSpec,
    input: &Value,
    secrets: &BTreeMap<String, SecretValue>,
) -> Result<reqwest::RequestBuilder, TemplateError> {
    let url = render(&spec.url, input, secrets, percent_encode)?;
    let method =
        reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes()).unwrap_or(reqwest::Method::POST);
    let has_body = matches!(method, reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH);
    let mut rb =
        client.request(method, url).timeout(spec.timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_TIMEOUT));
    for (k, v) in &spec.headers {
        rb = rb.header(k.as_str(), render(v, input, secrets, |s| s.to_owned())?);
    }
    if has_body {
        rb = rb.json(input);
    }
    Ok(rb)
}

async fn send(rb: reqwest::RequestBuilder, spec: &HttpToolSpec) -> ToolOutput {
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return ToolOutput::error(format!("`{}` timed out", spec.name)),
        // The error text may contain the URL, which may contain a secret: keep only the kind.
        Err(e) => {
            let why = if e.is_connect() { "connection failed" } else { "request failed" };
            return ToolOutput::error(format!("`{}`: {why}", spec.name));
        }
    };
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(_) => return ToolOutput::error(format!("`{}`: the response body could not be read", spec.name)),
    };
    let mut text = String::from_utf8_lossy(&body[..body.len().min(MAX_RESPONSE)]).into_owned();
    if body.len() > MAX_RESPONSE {
        text.push_str(&format!("\n[response truncated: {} of {} bytes shown]", MAX_RESPONSE, body.len()));
    }
    ToolOutput {
        content: format!("HTTP {}\n{}", status.as_u16(), text),
        is_error: !status.is_success(),
        attachments: Vec::new(),
    }
}
