//! Providers, deployments and customer limits on PostgreSQL.

use super::{PostgresStore, cols, exec, opt, rows, value};
use crate::sqlite::rows::*;
use crate::sqlite::{micros, now_micros};
use crate::*;
use herm_types::config::{DeploymentSpec, ProviderSpec};

fn dep_of(r: &tokio_postgres::Row) -> Result<DeploymentRecord> {
    dep_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7))
}

/// Why a conditional write on a deployment changed nothing.
async fn stale_or_gone<C: deadpool_postgres::GenericClient>(c: &C, id: &str) -> Result<Error> {
    let live: bool =
        value(c, "SELECT EXISTS (SELECT 1 FROM deployments WHERE id=$1 AND status != 'deleted')", &[&id]).await?;
    Ok(if live { Error::Stale } else { Error::NotFound })
}

#[async_trait::async_trait]
impl ConfigStore for PostgresStore {
    async fn put_provider(&self, name: &str, spec: &ProviderSpec) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO providers (name, spec, updated_at) VALUES ($1,$2,$3)
             ON CONFLICT (name) DO UPDATE SET spec=excluded.spec, updated_at=excluded.updated_at",
            &[&name, &to_json(spec)?, &now_micros()],
        )
        .await?;
        Ok(())
    }

    async fn list_providers(&self) -> Result<Vec<(String, ProviderSpec)>> {
        let c = self.client().await?;
        rows(&c, "SELECT name, spec FROM providers ORDER BY name", &[], |r| {
            Ok((r.try_get(0)?, json(r.try_get::<_, &str>(1)?)?))
        })
        .await
    }

    async fn delete_provider(&self, name: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(&c, "DELETE FROM providers WHERE name=$1", &[&name]).await? > 0)
    }

    async fn customer_limits(&self, customer: &str) -> Result<herm_types::webhook::CustomerLimits> {
        let c = self.client().await?;
        let spec: Option<String> =
            opt(&c, "SELECT spec FROM customer_limits WHERE customer_id=$1", &[&customer], |r| Ok(r.try_get(0)?))
                .await?;
        spec.map(|s| json(&s)).transpose().map(Option::unwrap_or_default)
    }

    async fn put_customer_limits(&self, customer: &str, l: &herm_types::webhook::CustomerLimits) -> Result<()> {
        let c = self.client().await?;
        if l.max_daily_cost_usd.is_none() {
            exec(&c, "DELETE FROM customer_limits WHERE customer_id=$1", &[&customer]).await?;
        } else {
            exec(
                &c,
                "INSERT INTO customer_limits (customer_id, spec, updated_at) VALUES ($1,$2,$3)
                 ON CONFLICT (customer_id) DO UPDATE SET spec=excluded.spec, updated_at=excluded.updated_at",
                &[&customer, &to_json(l)?, &now_micros()],
            )
            .await?;
        }
        Ok(())
    }

    async fn create_deployment(&self, d: DeploymentRecord) -> Result<()> {
        let spec = to_json(&d.spec)?;
        let (at, up) = (micros(d.created_at), micros(d.updated_at));
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        exec(
            &tx,
            "INSERT INTO deployments (id, customer_id, status, error, spec, default_thread_id, created_at, updated_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            &[
                &d.id.as_str(),
                &d.spec.customer_id,
                &d.status.as_str(),
                &d.error,
                &spec,
                &d.default_thread_id.as_str(),
                &at,
                &up,
            ],
        )
        .await?;
        exec(
            &tx,
            "INSERT INTO threads (id, deployment_id, created_at, last_activity_at) VALUES ($1,$2,$3,$3)",
            &[&d.default_thread_id.as_str(), &d.id.as_str(), &at],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_deployment(&self, id: &DeploymentId) -> Result<Option<DeploymentRecord>> {
        let c = self.client().await?;
        opt(
            &c,
            &format!("SELECT {DEP_COLS} FROM deployments WHERE id=$1 AND status != 'deleted'"),
            &[&id.as_str()],
            dep_of,
        )
        .await
    }

    async fn list_deployments(&self, q: DeploymentQuery) -> Result<Vec<DeploymentRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {DEP_COLS} FROM deployments WHERE status != 'deleted'
                 AND ($1::text IS NULL OR customer_id=$1) AND ($2::text IS NULL OR status=$2)
                 AND ($3::text IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
            ),
            &[&q.customer_id, &q.status.map(|s| s.as_str()), &q.before.as_ref().map(|b| b.as_str()), &(q.limit as i64)],
            dep_of,
        )
        .await
    }

    async fn update_deployment_spec(&self, id: &DeploymentId, spec: &DeploymentSpec, expected: i64) -> Result<i64> {
        let c = self.client().await?;
        let next: Option<i64> = opt(
            &c,
            "UPDATE deployments SET spec=$2, updated_at=$3, revision=revision+1
             WHERE id=$1 AND status != 'deleted' AND revision=$4 RETURNING revision",
            &[&id.as_str(), &to_json(spec)?, &now_micros(), &expected],
            |r| Ok(r.try_get(0)?),
        )
        .await?;
        match next {
            Some(r) => Ok(r),
            None => Err(stale_or_gone(&c, id.as_str()).await?),
        }
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
        let c = self.client().await?;
        let n = exec(
            &c,
            "UPDATE deployments SET status=$2, error=$3, updated_at=$4 WHERE id=$1 AND status != 'deleted'",
            &[&id.as_str(), &status.as_str(), &error, &now_micros()],
        )
        .await?;
        if n == 0 { Err(Error::NotFound) } else { Ok(()) }
    }

    async fn delete_deployment(&self, id: &DeploymentId, expected_revision: Option<i64>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_micros();
        // Threads first, as an append locks them (then the deployment): no deadlock between the two.
        exec(&tx, "SELECT 1 FROM threads WHERE deployment_id=$1 FOR UPDATE", &[&id.as_str()]).await?;
        let n = exec(
            &tx,
            "UPDATE deployments SET status='deleted', updated_at=$2
             WHERE id=$1 AND status != 'deleted' AND ($3::bigint IS NULL OR revision=$3)",
            &[&id.as_str(), &now, &expected_revision],
        )
        .await?;
        if n == 0 {
            return Err(stale_or_gone(&tx, id.as_str()).await?);
        }
        exec(
            &tx,
            "UPDATE runs SET status='interrupted', ended_at=$2 WHERE deployment_id=$1
             AND status IN ('queued','running','waiting_on_human')",
            &[&id.as_str(), &now],
        )
        .await?;
        exec(&tx, "UPDATE threads SET deleted_at=$2 WHERE deployment_id=$1", &[&id.as_str(), &now]).await?;
        // Its attachments and their bytes go with it.
        exec(&tx, "DELETE FROM attachments WHERE deployment_id=$1", &[&id.as_str()]).await?;
        exec(&tx, "DELETE FROM blobs WHERE deployment_id=$1", &[&id.as_str()]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn provisioning_deployments(&self) -> Result<Vec<DeploymentId>> {
        let c = self.client().await?;
        rows(&c, "SELECT id FROM deployments WHERE status='provisioning'", &[], |r| parse_id(r.try_get(0)?)).await
    }
}
