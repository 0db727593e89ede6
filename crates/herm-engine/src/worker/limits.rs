//! The limits a run works under, from its deployment's `limits` and its customer's budget (both
//! as they were when the run was first seen) and the engine's defaults: steps, the run's own cost, the deployment's daily budget and the
//! customer's (what their runs started since 00:00 UTC have cost, read from the store only
//! when such a budget is set). Every kind of run counts: a user's, an observer's, a dream,
//! an automation's and a goal's.

use super::{Driver, Flow};
use crate::Result;
use crate::machine::{Budget, BudgetStop, RunLimits};
use herm_store::DeploymentRecord;
use herm_types::event::RunError;
use herm_types::webhook::CustomerLimits;
use herm_types::*;

impl Driver<'_> {
    /// `customer` is the customer's limits as read when the run was first seen.
    pub(super) async fn limits(&self, dep: &DeploymentRecord, customer: &CustomerLimits) -> Result<RunLimits> {
        let l = &dep.spec.limits;
        let store = self.engine.store();
        let midnight = herm_types::now().date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let daily = match l.max_daily_cost_usd {
            Some(limit_usd) => {
                Some(Budget { limit_usd, spent_usd: store.deployment_cost_since(&dep.id, midnight).await? })
            }
            None => None,
        };
        let customer_daily = match customer.max_daily_cost_usd {
            Some(limit_usd) => {
                let spent_usd = store.customer_cost_since(&dep.spec.customer_id, midnight).await?;
                Some(Budget { limit_usd, spent_usd })
            }
            None => None,
        };
        Ok(RunLimits {
            max_steps: Some(l.max_run_steps.unwrap_or(self.engine.options().default_max_steps)),
            max_cost_usd: l.max_run_cost_usd,
            thread_max_usd: l.max_thread_cost_usd,
            daily,
            customer_daily,
        })
    }

    /// A budget refused the next model call: the `budget` event and the run's end, in one
    /// commit.
    pub(super) async fn over_budget(&self, run: &RunId, stop: BudgetStop) -> Result<Flow> {
        tracing::info!(run = %run, scope = stop.scope.as_str(), "budget reached");
        let usage = crate::machine::run_usage(&self.log, run);
        let budget = EventKind::Budget {
            scope: stop.scope,
            limit_usd: stop.limit_usd,
            spent_usd: stop.spent_usd,
            next_call_usd: stop.next_call_usd,
        };
        let err = RunError { code: "insufficient_credits".into(), message: stop.message() };
        let events = vec![
            NewEvent::new(Some(run.clone()), budget),
            super::status(&self.log, run, RunStatus::Error, Some(err), Some(usage)),
        ];
        let flow = self.append(run, events, vec![]).await?;
        self.ended(run).await;
        Ok(flow)
    }
}
