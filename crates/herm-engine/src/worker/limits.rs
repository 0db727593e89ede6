//! The limits a run works under, from its deployment's `limits` and the engine's defaults:
//! steps, the run's own cost, and the deployment's daily budget (what its runs started
//! since 00:00 UTC have cost, read from the store only when a daily budget is set).

use super::Driver;
use crate::Result;
use crate::machine::{Budget, RunLimits};
use herm_store::DeploymentRecord;

impl Driver<'_> {
    pub(super) async fn limits(&self, dep: &DeploymentRecord) -> Result<RunLimits> {
        let l = &dep.spec.limits;
        let daily = match l.max_daily_cost_usd {
            Some(limit_usd) => {
                let midnight = herm_types::now().date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
                let spent_usd = self.engine.store().deployment_cost_since(&dep.id, midnight).await?;
                Some(Budget { limit_usd, spent_usd })
            }
            None => None,
        };
        Ok(RunLimits {
            max_steps: Some(l.max_run_steps.unwrap_or(self.engine.options().default_max_steps)),
            max_cost_usd: l.max_run_cost_usd,
            daily,
        })
    }
}
