//! Optimistic concurrency the HTTP way: a deployment's revision is its `ETag` (`"<n>"`), and
//! `If-Match` on a change names the revision the client saw. A stale or unreadable one is 412
//! `precondition_failed`; `*` or no header means "whatever is current" (the engine still
//! never loses a concurrent edit).

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

/// The revision an `If-Match` header names, if it names one.
pub struct IfMatch(pub Option<i64>);

/// The `ETag` of a revision.
pub fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Headers carrying the `ETag` of a revision.
pub fn etag_headers(revision: i64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, etag(revision));
    h
}

fn parse(raw: &str) -> Option<Option<i64>> {
    let raw = raw.trim();
    if raw == "*" {
        return Some(None);
    }
    let tag = raw.strip_prefix("W/").unwrap_or(raw);
    tag.strip_prefix('"')?.strip_suffix('"')?.parse::<i64>().ok().filter(|n| *n > 0).map(Some)
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else { return Ok(IfMatch(None)) };
        let parsed = v.to_str().ok().and_then(parse);
        // A tag we never issued cannot match the current revision.
        parsed.map(IfMatch).ok_or_else(ApiError::precondition_failed)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn if_match_forms() {
        let cases = [
            ("\"3\"", Some(Some(3))),
            ("W/\"12\"", Some(Some(12))),
            (" * ", Some(None)),
            ("3", None),
            ("\"abc\"", None),
            ("\"0\"", None),
            ("\"-1\"", None),
            ("\"1\", \"2\"", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw), want, "{raw}");
        }
    }
}
