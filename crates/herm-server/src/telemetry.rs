//! Per-request telemetry.
//!
//! - Metrics: `herm_http_requests_total{method, route, status}` and
//!   `herm_http_request_duration_seconds{method, route}`. The route is the matched pattern
//!   (`/v1/deployments/{deployment_id}`), never the path a client sent, so ids never become
//!   label values. Paths no route matches are not counted (they reach no handler).
//! - Traces (when an exporter is configured): a server span per request named
//!   `{METHOD} {route}`, joined to the caller's trace when a W3C `traceparent` header names one.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue, global};
use std::time::Instant;

pub async fn count(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let method = req.method().as_str().to_owned();
    let span = herm_engine::spans::enabled().then(|| {
        let parent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(traceparent);
        let cx = parent.map(|p| Context::new().with_remote_span_context(p)).unwrap_or_default();
        let tracer = global::tracer("herm");
        tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.clone()),
                KeyValue::new("http.route", route.clone()),
            ])
            .start_with_context(&tracer, &cx)
    });
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    if let Some(mut span) = span {
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        if status >= 500 {
            span.set_status(Status::error(status.to_string()));
        }
        span.end();
    }
    metrics::counter!("herm_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("herm_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// A W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed and not all zeros.
fn traceparent(v: &str) -> Option<SpanContext> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 || parts.next().is_some() {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok().filter(|t| *t != TraceId::INVALID)?;
    let span = SpanId::from_hex(span).ok().filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(trace, span, TraceFlags::new(flags), true, TraceState::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_read_strictly() {
        let ok = traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(format!("{:x}", ok.trace_id()), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(ok.is_sampled());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(traceparent(bad).is_none(), "{bad}");
        }
    }
}
