//! What the process reports about itself: the Prometheus recorder behind `GET /metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) of every `_seconds` histogram: a fast API call to a slow model.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0];

/// Installs the process's metrics recorder (before the engine starts, so its descriptions
/// are kept); `None` if one is installed already.
pub fn install_metrics() -> Option<PrometheusHandle> {
    let b = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS).ok()?;
    match b.install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off: a recorder is installed already");
            None
        }
    }
}
