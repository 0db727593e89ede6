//! Metrics: what the Prometheus page at `/metrics` counts. Counters and histograms move as
//! events commit (from the bus's tap, on the telemetry thread: see `observe.rs`), so they
//! agree with the log; gauges of work in progress are read from the store when the page is
//! scraped ([`Engine::gauges`]).
//!
//! Every label takes a bounded set of values: run kinds and statuses, tool outcomes, and
//! model and tool names, of which the first [`MAX_NAMES`] seen are kept and the rest are
//! reported as `other` (a model or tool name comes from configuration, and a careless one must
//! not grow the page without end). No thread, run or deployment id is ever a label.
//!
//! The names, units and labels are documented in the README ("Metrics").

use crate::{Engine, Result};
use herm_types::*;
use parking_lot::Mutex;
use std::collections::HashSet;

/// Distinct model or tool names kept as label values.
pub const MAX_NAMES: usize = 200;

/// Work in progress, read from the store at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub runs_queued: u64,
    pub runs_running: u64,
    pub runs_waiting: u64,
    /// Timers due now and not yet claimed (a backlog here means the timer loop is behind).
    pub timers_due: u64,
}

/// Names already used as label values, capped.
#[derive(Default)]
struct Names(Mutex<HashSet<String>>);

impl Names {
    fn label(&self, name: &str) -> String {
        let mut seen = self.0.lock();
        if seen.contains(name) || (seen.len() < MAX_NAMES && seen.insert(name.to_owned())) {
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

/// Counts committed events (the telemetry thread calls it for each, in commit order).
#[derive(Default)]
pub(crate) struct Counting {
    models: Names,
    tools: Names,
}

impl Counting {
    /// Describes every metric once (units and help text on the page).
    pub(crate) fn new() -> Self {
        describe();
        Self::default()
    }

    pub(crate) fn observe(&self, e: &Event) {
        observe(&e.kind, &self.models, &self.tools);
    }
}

impl Engine {
    /// Work in progress now, for the metrics page.
    pub async fn gauges(&self) -> Result<Gauges> {
        let [runs_queued, runs_running, runs_waiting] = self.store().active_run_counts().await?;
        let timers_due = self.store().due_timer_count(self.now()).await?;
        Ok(Gauges { runs_queued, runs_running, runs_waiting, timers_due })
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("herm_runs_total", "Runs that ended, by kind and final status.");
    describe_counter!("herm_model_calls_total", "Model calls completed, by model.");
    describe_histogram!("herm_model_call_duration_seconds", Unit::Seconds, "Model call latency, by model.");
    describe_counter!("herm_model_tokens_total", "Tokens of completed model calls, by model and direction.");
    describe_counter!(
        "herm_model_cost_microusd_total",
        "What completed model calls cost, in millionths of a USD, by model."
    );
    describe_counter!("herm_tool_calls_total", "Tool calls that returned, by tool and outcome.");
    describe_histogram!("herm_tool_call_duration_seconds", Unit::Seconds, "Tool call latency, by tool.");
    describe_counter!("herm_budget_stops_total", "Model calls refused by a budget, by scope.");
    describe_gauge!("herm_runs_active", "Runs queued or running (state=queued|running).");
    describe_gauge!("herm_runs_waiting", "Runs waiting on a person.");
    describe_gauge!("herm_timers_due", "Durable timers due and not yet claimed.");
    describe_gauge!("herm_sse_clients", "Open SSE streams.");
    describe_counter!("herm_http_requests_total", "HTTP requests answered, by method, route and status.");
    describe_histogram!("herm_http_request_duration_seconds", Unit::Seconds, "HTTP request latency, by route.");
    describe_counter!("herm_webhook_deliveries_total", "Webhook delivery attempts, by result.");
    describe_counter!("herm_telemetry_dropped_total", "Events the telemetry thread skipped (it was far behind).");
}

fn observe(kind: &EventKind, models: &Names, tools: &Names) {
    match kind {
        EventKind::RunStatus { status, kind, .. } if status.is_terminal() => {
            metrics::counter!("herm_runs_total", "kind" => kind.as_str(), "status" => status.as_str()).increment(1);
        }
        EventKind::ModelCall { model, input_tokens, output_tokens, cost_usd, duration_ms, .. } => {
            let model = models.label(model);
            metrics::counter!("herm_model_calls_total", "model" => model.clone()).increment(1);
            metrics::histogram!("herm_model_call_duration_seconds", "model" => model.clone())
                .record(*duration_ms as f64 / 1000.0);
            metrics::counter!("herm_model_tokens_total", "model" => model.clone(), "direction" => "input")
                .increment(*input_tokens);
            metrics::counter!("herm_model_tokens_total", "model" => model.clone(), "direction" => "output")
                .increment(*output_tokens);
            // Counters are integers: cost is counted in micro-dollars.
            metrics::counter!("herm_model_cost_microusd_total", "model" => model)
                .increment((cost_usd * 1e6).round() as u64);
        }
        EventKind::ToolResult { tool, outcome, duration_ms, .. } => {
            let tool = tools.label(tool);
            metrics::counter!("herm_tool_calls_total", "tool" => tool.clone(), "outcome" => outcome.as_str())
                .increment(1);
            metrics::histogram!("herm_tool_call_duration_seconds", "tool" => tool).record(*duration_ms as f64 / 1000.0);
        }
        EventKind::Budget { scope, .. } => {
            metrics::counter!("herm_budget_stops_total", "scope" => scope.as_str()).increment(1);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_capped() {
        let names = Names::default();
        for i in 0..MAX_NAMES {
            assert_eq!(names.label(&format!("tool{i}")), format!("tool{i}"));
        }
        assert_eq!(names.label("one-too-many"), "other");
        assert_eq!(names.label("tool7"), "tool7", "names seen before keep their label");
    }
}
