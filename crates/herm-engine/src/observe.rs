//! The bus's tap: every committed event, in commit order, reaches the metrics and the spans
//! on a thread of their own (`herm-telemetry`), so counting and span building never delay the
//! store's writer thread that publishes it. The tap itself only wakes the webhook dispatcher
//! and hands the event over. If the telemetry thread falls [`BACKLOG`] events behind, events
//! are skipped for it (counted in `herm_telemetry_dropped_total`) rather than slowing commits.

use crate::{metrics, spans, webhooks};
use herm_store::bus::Tap;
use herm_types::Event;
use herm_types::event::LiveFrame;
use std::sync::Arc;

/// Events the telemetry thread may be behind before some are skipped.
pub const BACKLOG: usize = 65_536;

pub(crate) fn tap(webhook_wake: Arc<tokio::sync::Notify>) -> Tap {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Event>>(BACKLOG);
    let counting = metrics::Counting::new();
    let spawned = std::thread::Builder::new().name("herm-telemetry".into()).spawn(move || {
        while let Ok(e) = rx.recv() {
            counting.observe(&e);
            spans::observe(&e);
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no telemetry thread: metrics and traces of events are off");
    }
    Arc::new(move |_dep, frame| {
        let LiveFrame::Committed(e) = frame else { return };
        if webhooks::plan::webhook_event(&e.kind).is_some() {
            webhook_wake.notify_one();
        }
        if tx.try_send(e.clone()).is_err() {
            ::metrics::counter!("herm_telemetry_dropped_total").increment(1);
        }
    })
}
