//! A webhook receiver: records every delivery attempt (headers, body, the status it
//! answered) and answers 500 to the first `fail_first` attempts at each event id
//! (`webhook-id`), then 204.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// One attempt the receiver saw.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
}

struct Inner {
    fail_first: u32,
    seen: Mutex<Vec<Received>>,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    pub addr: std::net::SocketAddr,
}

impl Receiver {
    pub async fn start(fail_first: u32) -> Self {
        let inner = Arc::new(Inner { fail_first, seen: Mutex::new(Vec::new()) });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let addr = crate::serve_local(app).await;
        Self { inner, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.seen.lock().clone()
    }

    /// Attempts per event id, and how many of them were accepted.
    pub fn tally(&self) -> HashMap<String, (usize, usize)> {
        let mut out: HashMap<String, (usize, usize)> = HashMap::new();
        for r in self.received() {
            let t = out.entry(r.id).or_default();
            t.0 += 1;
            t.1 += usize::from(r.status < 300);
        }
        out
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let id = h("webhook-id");
    let mut seen = inner.seen.lock();
    let before = seen.iter().filter(|r| r.id == id).count() as u32;
    let status = if before < inner.fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT };
    seen.push(Received {
        id,
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: status.as_u16(),
    });
    status
}
