//! Shared plumbing: POST a JSON body, check the status, and yield SSE events with an idle
//! timeout between chunks.

use crate::{Error, ErrorKind, HttpSettings};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use std::pin::Pin;

pub(crate) type SseStream = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, Error>> + Send>>;

pub(crate) async fn post_sse(
    client: &reqwest::Client,
    url: &str,
    headers: Vec<(&'static str, String)>,
    body: &serde_json::Value,
    settings: &HttpSettings,
) -> Result<SseStream, Error> {
    let mut rb = client.post(url).json(body);
    for (k, v) in headers {
        rb = rb.header(k, v);
    }
    let resp = tokio::time::timeout(settings.idle_timeout, rb.send())
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "model call timed out waiting for headers"))?
        .map_err(|e| Error::from_reqwest(&e))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let text = resp.text().await.unwrap_or_default();
        return Err(Error::from_status(status, &text));
    }
    let idle = settings.idle_timeout;
    let events = resp.bytes_stream().eventsource();
    let s = futures::stream::unfold(Box::pin(events), move |mut events| async move {
        match tokio::time::timeout(idle, events.next()).await {
            Err(_) => Some((Err(Error::new(ErrorKind::Timeout, "model stream stalled")), events)),
            Ok(None) => None,
            Ok(Some(Ok(ev))) => Some((Ok(ev), events)),
            Ok(Some(Err(e))) => Some((Err(Error::new(ErrorKind::Network, format!("model stream broke: {e}"))), events)),
        }
    });
    Ok(Box::pin(s))
}

pub(crate) fn http_client(settings: &HttpSettings) -> reqwest::Client {
    reqwest::Client::builder().connect_timeout(settings.connect_timeout).build().unwrap_or_default()
}
