//! Retry with exponential backoff and jitter for retryable model errors.

use crate::{DeltaSink, Error, ModelClient, ModelRequest, ModelResponse};
use rand::Rng;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(20) }
    }
}

impl RetryPolicy {
    /// Delay before attempt `n` (1-based retry number): base·2ⁿ⁻¹, capped, with ±25% jitter.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let d = exp.min(self.max_delay).as_millis() as f64;
        let j = rand::rng().random_range(0.75..1.25);
        Duration::from_millis((d * j) as u64)
    }
}

/// Calls the model, retrying retryable errors. Text deltas from a failed attempt may already
/// have been streamed; the committed message carries only the successful attempt's text.
pub async fn call_with_retry(
    client: &dyn ModelClient,
    req: &ModelRequest,
    api_key: Option<&str>,
    policy: &RetryPolicy,
    on_delta: &mut DeltaSink<'_>,
    on_retry: &mut (dyn FnMut(u32, &Error) + Send),
) -> Result<ModelResponse, Error> {
    let mut attempt = 1;
    loop {
        match client.stream(req, api_key, on_delta).await {
            Ok(r) => return Ok(r),
            Err(e) if e.retryable() && attempt < policy.max_attempts => {
                on_retry(attempt, &e);
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
