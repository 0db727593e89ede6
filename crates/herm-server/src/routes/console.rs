//! The operator console: a page and its script and styles, embedded in the binary and served
//! at `/console`. It is a client of the public API like any other (the same keys, scopes and
//! errors), so these routes serve static files only. The key lives in the browser's session
//! storage; the headers forbid inline script, other origins and framing.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../console/index.html");
const STYLES: &str = include_str!("../../console/app.css");
/// The script's modules by file name: the app (routing, sign-in), the API client and helpers,
/// the deployment pages, the thread view.
const SCRIPTS: [(&str, &str); 4] = [
    ("app.js", include_str!("../../console/app.js")),
    ("api.js", include_str!("../../console/api.js")),
    ("deployments.js", include_str!("../../console/deployments.js")),
    ("thread.js", include_str!("../../console/thread.js")),
];

/// Only this origin's script and styles; requests to this origin only; no frames, forms,
/// plugins or base changes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

pub async fn script(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match SCRIPTS.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => asset(body, "text/javascript; charset=utf-8"),
        None => crate::error::ApiError::not_found("console file").into_response(),
    }
}

pub async fn styles() -> Response {
    asset(STYLES, "text/css; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path with its parameters (`{id}`, `${dep}`) and query removed, for comparison.
    fn shape(p: &str) -> String {
        let p = p.split('?').next().unwrap_or(p);
        let mut out = String::new();
        let mut depth = 0;
        for ch in p.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    if depth == 1 {
                        out.push('*');
                    }
                }
                '}' => depth -= 1,
                '$' if depth == 0 => {}
                _ if depth == 0 => out.push(ch),
                _ => {}
            }
        }
        out
    }

    /// The console is a client, not a back door: every API path its script calls is a
    /// documented path of the public API.
    #[test]
    fn the_console_calls_only_the_documented_api() {
        let doc = crate::openapi::document();
        let documented: Vec<String> = doc["paths"].as_object().unwrap().keys().map(|p| shape(p)).collect();
        let mut called = Vec::new();
        for (_, script) in SCRIPTS {
            for quote in ['`', '\''] {
                for piece in script.split(quote).skip(1).step_by(2) {
                    if piece.starts_with("/v1/") {
                        called.push(shape(piece));
                    }
                }
            }
        }
        assert!(called.len() > 10, "{called:?}");
        for c in &called {
            // `…/automations/${id}/${verb}`: the verb is one of the documented actions.
            let c = c.replace("/*/*", "/*/run");
            assert!(documented.contains(&c), "the console calls `{c}`, which the API document does not have");
        }
    }
}
