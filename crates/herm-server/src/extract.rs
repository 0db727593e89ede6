//! Request extractors that fail with problem+json: bounded JSON bodies, path IDs and query
//! strings. Sizes and shapes are checked here, at the edge.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Largest JSON body accepted by the API.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// An oversized body is read (and discarded) up to this size so the client, still sending,
/// receives the 413 instead of a reset connection; past it the connection is dropped.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

/// Largest body of a message with attachments: their 32 MiB as base64, and the text.
pub const MAX_MESSAGE_BODY: usize = 48 * 1024 * 1024;

/// A JSON body, at most `MAX` bytes ([`MAX_JSON_BODY`] unless a route says otherwise). The
/// raw bytes are kept for idempotency.
pub struct JsonBody<T, const MAX: usize = MAX_JSON_BODY> {
    pub value: T,
    pub raw: bytes::Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned + serde::Serialize, const MAX: usize> FromRequest<S> for JsonBody<T, MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        // The body is parsed as JSON whatever its declared type: `curl -d` sends a form type
        // by default, and a clear JSON error beats a 415 for that.
        let raw = read_bounded(req.into_body(), MAX).await?;
        let value = parse_json(&raw)?;
        Ok(Self { value, raw })
    }
}

/// Reads a body of at most `max` bytes (413 past it).
pub async fn read_bounded(body: axum::body::Body, max: usize) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::validation("the request body could not be read"))?;
        total += chunk.len();
        if total <= max {
            buf.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {max} bytes"),
        ));
    }
    Ok(buf.freeze())
}

pub fn parse_json<T: DeserializeOwned + serde::Serialize>(raw: &[u8]) -> Result<T, ApiError> {
    let invalid = |e: serde_json::Error| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
            _ => "invalid request body",
        };
        ApiError::validation(format!("{what}: {e}"))
    };
    let input: serde_json::Value = serde_json::from_slice(raw).map_err(invalid)?;
    let value = T::deserialize(&input).map_err(invalid)?;
    // serde reads a struct from an array too (`[]` as `{}`); the API's objects are objects.
    let back = serde_json::to_value(&value).map_err(|_| ApiError::internal())?;
    if let Some(path) = array_for_object(&input, &back, "body") {
        return Err(ApiError::validation(format!("invalid request body: `{path}` must be a JSON object")));
    }
    Ok(value)
}

/// Where `input` has an array that was read as an object (compared with the value read from
/// it, serialized again).
fn array_for_object(input: &serde_json::Value, read: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (input, read) {
        (Value::Array(_), Value::Object(_)) => Some(path.to_owned()),
        (Value::Object(a), Value::Object(b)) => {
            a.iter().find_map(|(k, v)| b.get(k).and_then(|w| array_for_object(v, w, &format!("{path}.{k}"))))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.iter().zip(b).enumerate().find_map(|(i, (v, w))| array_for_object(v, w, &format!("{path}[{i}]")))
        }
        _ => None,
    }
}

/// Query parameters, rejected as `validation_error` when they do not parse.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q).map(Query).map_err(|e| ApiError::validation(format!("invalid query string: {e}")))
    }
}

/// Parses a typed ID from a path segment; a malformed id cannot exist, so it is a 404.
pub fn id<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, ApiError> {
    s.parse::<T>().map_err(|_| ApiError::not_found(what))
}

/// `?limit=&cursor=` of a list of records newest first, paged by id.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The page size, and the id the page starts after.
    pub fn page<T: std::str::FromStr>(&self) -> Result<(usize, Option<T>), ApiError> {
        let before = match self.cursor.as_deref() {
            Some(c) => Some(c.parse::<T>().map_err(|_| ApiError::validation("invalid cursor"))?),
            None => None,
        };
        Ok((limit(self.limit)?, before))
    }
}

/// The cursor of the next page: the last row's id, when the page is full.
pub fn next_cursor<T>(rows: &[T], limit: usize, id: impl Fn(&T) -> String) -> Option<String> {
    rows.last().filter(|_| rows.len() == limit).map(id)
}

/// `limit` (1–100, default 20).
pub fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::validation("`limit` must be between 1 and 100")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize, serde::Serialize)]
    struct Inner {
        #[serde(default)]
        a: Option<u32>,
    }
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Outer {
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
    }

    #[test]
    fn objects_given_as_arrays_are_refused() {
        let parse = |v: serde_json::Value| {
            parse_json::<Outer>(&serde_json::to_vec(&v).unwrap()).map(|_| ()).map_err(|e| e.detail)
        };
        assert!(parse(json!({"inner": {"a": 1}, "list": [{"a": 2}]})).is_ok());
        assert!(parse(json!([])).unwrap_err().contains("`body` must be a JSON object"));
        assert!(parse(json!({"inner": [5]})).unwrap_err().contains("`body.inner`"));
        assert!(parse(json!({"list": [{}, []]})).unwrap_err().contains("`body.list[1]`"));
    }
}
