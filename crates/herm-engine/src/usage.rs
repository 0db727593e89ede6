//! Usage: a deployment's tokens and cost per UTC day or per model, summed from its log's
//! model calls and compaction summaries (every run kind: user, automation, goal, observer,
//! dream); and a customer's budget across its deployments.

use crate::{Engine, Error, Result};
use chrono::{DateTime, Utc};
use herm_types::DeploymentId;
use herm_types::api::{UsageGroup, UsageReport, UsageRow};
use herm_types::webhook::CustomerLimits;

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

    /// A customer's limits across its deployments (none until set).
    pub async fn customer_limits(&self, customer: &str) -> Result<CustomerLimits> {
        check_customer(customer)?;
        Ok(self.store().customer_limits(customer).await?)
    }

    /// Sets a customer's limits (the whole record: no read, so no write is lost).
    pub async fn set_customer_limits(&self, customer: &str, l: CustomerLimits) -> Result<CustomerLimits> {
        check_customer(customer)?;
        let errs = l.validate();
        if !errs.is_empty() {
            return Err(Error::Invalid(errs));
        }
        self.store().put_customer_limits(customer, &l).await?;
        Ok(l)
    }
}

fn check_customer(customer: &str) -> Result<()> {
    if !herm_types::webhook::valid_customer_id(customer) {
        let max = herm_types::config::limits::MAX_CUSTOMER_ID;
        return Err(Error::Validation(format!("a customer id has 1-{max} bytes")));
    }
    Ok(())
}
