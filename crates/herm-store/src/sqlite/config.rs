//! Providers and deployments in SQLite; spec changes are conditional on the revision.

use super::rows::*;
use super::{SqliteStore, micros, now_micros};
use crate::*;
use herm_types::config::{DeploymentSpec, ProviderSpec};
use rusqlite::{OptionalExtension, params};

#[async_trait::async_trait]
impl ConfigStore for SqliteStore {
    async fn put_provider(&self, name: &str, spec: &ProviderSpec) -> Result<()> {
        let (name, spec) = (name.to_owned(), to_json(spec)?);
        self.write(move |c| {
            c.execute(
                "INSERT INTO providers (name, spec, updated_at) VALUES (?1,?2,?3)
                 ON CONFLICT(name) DO UPDATE SET spec=excluded.spec, updated_at=excluded.updated_at",
                params![name, spec, now_micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_providers(&self) -> Result<Vec<(String, ProviderSpec)>> {
        self.read(|c| {
            collect(
                c,
                "SELECT name, spec FROM providers ORDER BY name",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                |(n, s)| Ok((n, json(&s)?)),
            )
        })
        .await
    }

    async fn delete_provider(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM providers WHERE name=?1", [name])? > 0)).await
    }

    async fn customer_limits(&self, customer: &str) -> Result<herm_types::webhook::CustomerLimits> {
        let customer = customer.to_owned();
        self.read(move |c| {
            let spec: Option<String> = c
                .prepare_cached("SELECT spec FROM customer_limits WHERE customer_id=?1")?
                .query_row([customer], |r| r.get(0))
                .optional()?;
            spec.map(|s| json(&s)).transpose().map(Option::unwrap_or_default)
        })
        .await
    }

    async fn put_customer_limits(&self, customer: &str, l: &herm_types::webhook::CustomerLimits) -> Result<()> {
        let (customer, empty, spec) = (customer.to_owned(), l.max_daily_cost_usd.is_none(), to_json(l)?);
        self.write(move |c| {
            if empty {
                c.execute("DELETE FROM customer_limits WHERE customer_id=?1", [customer])?;
            } else {
                c.execute(
                    "INSERT INTO customer_limits (customer_id, spec, updated_at) VALUES (?1,?2,?3)
                     ON CONFLICT(customer_id) DO UPDATE SET spec=excluded.spec, updated_at=excluded.updated_at",
                    params![customer, spec, now_micros()],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn create_deployment(&self, d: DeploymentRecord) -> Result<()> {
        let spec = to_json(&d.spec)?;
        self.write(move |c| {
            let (at, up) = (micros(d.created_at), micros(d.updated_at));
            c.execute(
                "INSERT INTO deployments (id, customer_id, status, error, spec, default_thread_id, created_at, updated_at)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![d.id.as_str(), d.spec.customer_id, d.status.as_str(), d.error, spec,
                        d.default_thread_id.as_str(), at, up],
            )?;
            c.execute(
                "INSERT INTO threads (id, deployment_id, created_at, last_activity_at) VALUES (?1,?2,?3,?3)",
                params![d.default_thread_id.as_str(), d.id.as_str(), at],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_deployment(&self, id: &DeploymentId) -> Result<Option<DeploymentRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {DEP_COLS} FROM deployments WHERE id=?1 AND status != 'deleted'"),
                [id],
                dep_row,
                dep_rec,
            )
        })
        .await
    }

    async fn list_deployments(&self, q: DeploymentQuery) -> Result<Vec<DeploymentRecord>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {DEP_COLS} FROM deployments WHERE status != 'deleted'
                 AND (?1 IS NULL OR customer_id=?1) AND (?2 IS NULL OR status=?2) AND (?3 IS NULL OR id < ?3)
                 ORDER BY id DESC LIMIT ?4"
            );
            collect(
                c,
                &sql,
                params![
                    q.customer_id,
                    q.status.map(|s| s.as_str()),
                    q.before.as_ref().map(|b| b.as_str()),
                    q.limit as i64
                ],
                dep_row,
                dep_rec,
            )
        })
        .await
    }

    async fn update_deployment_spec(&self, id: &DeploymentId, spec: &DeploymentSpec, expected: i64) -> Result<i64> {
        let (id, spec) = (id.to_string(), to_json(spec)?);
        self.write(move |c| {
            let next: Option<i64> = c
                .query_row(
                    "UPDATE deployments SET spec=?2, updated_at=?3, revision=revision+1
                     WHERE id=?1 AND status != 'deleted' AND revision=?4 RETURNING revision",
                    params![id, spec, now_micros(), expected],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(r) = next {
                return Ok(r);
            }
            let live: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM deployments WHERE id=?1 AND status != 'deleted')",
                [&id],
                |r| r.get(0),
            )?;
            Err(if live { Error::Stale } else { Error::NotFound })
        })
        .await
    }

    async fn set_deployment_status(
        &self,
        id: &DeploymentId,
        status: DeploymentStatus,
        error: Option<String>,
    ) -> Result<()> {
        if status == DeploymentStatus::Deleted {
            return self.delete_deployment(id, None).await;
        }
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE deployments SET status=?2, error=?3, updated_at=?4 WHERE id=?1 AND status != 'deleted'",
                params![id, status.as_str(), error, now_micros()],
            )?;
            if n == 0 { Err(Error::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn delete_deployment(&self, id: &DeploymentId, expected_revision: Option<i64>) -> Result<()> {
        let dep = id.clone();
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE deployments SET status='deleted', updated_at=?2
                 WHERE id=?1 AND status != 'deleted' AND (?3 IS NULL OR revision=?3)",
                params![id, now_micros(), expected_revision],
            )?;
            if n == 0 {
                let live: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM deployments WHERE id=?1 AND status != 'deleted')",
                    [&id],
                    |r| r.get(0),
                )?;
                return Err(if live { Error::Stale } else { Error::NotFound });
            }
            // Stop every unfinished run of the deployment for good.
            c.execute(
                "UPDATE runs SET status='interrupted', ended_at=?2 WHERE deployment_id=?1
                 AND status IN ('queued','running','waiting_on_human')",
                params![id, now_micros()],
            )?;
            c.execute(
                "UPDATE threads SET deleted_at=?2, active_run=NULL WHERE deployment_id=?1",
                params![id, now_micros()],
            )?;
            Ok(())
        })
        .await?;
        self.drop_blobs(&dep).await
    }

    async fn provisioning_deployments(&self) -> Result<Vec<DeploymentId>> {
        self.read(|c| {
            collect(
                c,
                "SELECT id FROM deployments WHERE status='provisioning'",
                [],
                |r| r.get::<_, String>(0),
                parse_id,
            )
        })
        .await
    }
}
