//! Usage: a deployment's tokens and cost per UTC day or per model, summed from its log's
//! model calls and compaction summaries (every run kind: user, automation, goal, observer,
//! dream).

use crate::{Engine, Error, Result};
use chrono::{DateTime, Utc};
use herm_types::DeploymentId;
use herm_types::api::{UsageGroup, UsageReport, UsageRow};

impl Engine {
    pub async fn usage(
        &self,
        dep: &DeploymentId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        by: UsageGroup,
    ) -> Result<UsageReport> {
        self.deployment(dep).await?;
        if from >= to {
            return Err(Error::Validation("`from` must be before `to`".into()));
        }
        let data = self.store().usage(dep, from, to, by).await?;
        let total = data.iter().fold(UsageRow { key: "total".into(), ..Default::default() }, |mut t, r| {
            t.input_tokens += r.input_tokens;
            t.output_tokens += r.output_tokens;
            t.cost_usd += r.cost_usd;
            t.estimated |= r.estimated;
            t
        });
        Ok(UsageReport { data, total })
    }
}
