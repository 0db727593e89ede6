//! A counting HTTP connector for `http_tools`: it echoes each request (method, path, query,
//! headers, body) as JSON and counts calls. `?delay_ms=N` (or the default delay) holds the
//! response, so a test can kill herm while a tool call is in flight.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Content served at a path: its type, its bytes, and how often it was fetched.
type Served = (String, Vec<u8>, usize);

struct Inner {
    /// Fixed content served at a path (skills and attachments fetched by URL): its type and
    /// bytes, and how often it was fetched.
    files: Mutex<std::collections::HashMap<String, Served>>,
    started: AtomicUsize,
    finished: AtomicUsize,
    calls: Mutex<Vec<Call>>,
}

#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
    pub addr: std::net::SocketAddr,
}

impl Connector {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner {
            files: Mutex::new(Default::default()),
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let addr = crate::serve_local(app).await;
        Self { inner, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `body` as text at `path` (not counted as a call).
    pub fn serve(&self, path: &str, body: &str) {
        self.serve_bytes(path, "text/plain; charset=utf-8", body.as_bytes().to_vec());
    }

    /// Serves `bytes` with `content_type` at `path` (not counted as a call; see [`Self::fetches`]).
    pub fn serve_bytes(&self, path: &str, content_type: &str, bytes: Vec<u8>) {
        self.inner.files.lock().insert(path.to_owned(), (content_type.to_owned(), bytes, 0));
    }

    /// How often the content at `path` was fetched.
    pub fn fetches(&self, path: &str) -> usize {
        self.inner.files.lock().get(path).map(|f| f.2).unwrap_or(0)
    }

    /// Calls received (including ones still being answered).
    pub fn calls(&self) -> usize {
        self.inner.started.load(Ordering::SeqCst)
    }

    pub fn finished(&self) -> usize {
        self.inner.finished.load(Ordering::SeqCst)
    }

    pub fn recorded(&self) -> Vec<Call> {
        self.inner.calls.lock().clone()
    }
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> axum::response::Response {
    let served = inner.files.lock().get_mut(req.uri().path()).map(|f| {
        f.2 += 1;
        (f.0.clone(), f.1.clone())
    });
    if let Some((content_type, bytes)) = served {
        return ([(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response();
    }
    inner.started.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let call = Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: query.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    inner.calls.lock().push(call.clone());
    let delay =
        query.split('&').find_map(|kv| kv.strip_prefix("delay_ms=")).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    inner.finished.fetch_add(1, Ordering::SeqCst);
    let headers: Value =
        call.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>().into();
    axum::Json(
        json!({"method": call.method, "path": call.path, "query": call.query, "headers": headers, "body": call.body}),
    )
    .into_response()
}
