//! Automations, their firings, once-keys and goals on PostgreSQL; changes conditional on the
//! record's revision.

use super::{PostgresStore, cols, exec, opt, rows, value};
use crate::sqlite::proactive::{AUTO_COLS, FIRING_COLS, GOAL_COLS, auto_rec, firing_rec, goal_rec};
use crate::sqlite::rows::*;
use crate::sqlite::{micros, now_micros};
use crate::*;
use deadpool_postgres::GenericClient;

fn auto_of(r: &tokio_postgres::Row) -> Result<AutomationRecord> {
    auto_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7, 8))
}
fn firing_of(r: &tokio_postgres::Row) -> Result<FiringRecord> {
    firing_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
}
fn goal_of(r: &tokio_postgres::Row) -> Result<GoalRecord> {
    goal_rec(cols!(r; 0, 1, 2, 3, 4, 5, 6, 7, 8))
}

pub(super) async fn insert_firing_row<C: GenericClient>(c: &C, f: &NewFiring, now: i64) -> Result<u64> {
    exec(
        c,
        "INSERT INTO automation_firings (automation_id, key, slot_at, source, skipped, run_id, thread_id, reason, created_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING",
        &[
            &f.automation_id.as_str(),
            &f.key,
            &f.slot_at.map(micros),
            &f.source.as_str(),
            &f.skipped,
            &f.run_id.as_ref().map(|r| r.as_str()),
            &f.thread_id.as_ref().map(|t| t.as_str()),
            &f.reason,
            &now,
        ],
    )
    .await
}

/// Why a conditional write changed nothing: the record moved on, or is gone.
async fn stale_or_gone<C: GenericClient>(c: &C, table: &str, id: &str) -> Result<Error> {
    let live: bool = value(c, &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id=$1)"), &[&id]).await?;
    Ok(if live { Error::Stale } else { Error::NotFound })
}

#[async_trait::async_trait]
impl ProactiveStore for PostgresStore {
    async fn insert_automation(&self, a: AutomationRecord) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            &format!("INSERT INTO automations ({AUTO_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"),
            &[
                &a.id.as_str(),
                &a.deployment_id.as_str(),
                &to_json(&a.spec)?,
                &a.enabled,
                &a.paused_reason,
                &a.token_hash,
                &a.revision,
                &micros(a.created_at),
                &micros(a.updated_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_automation(&self, id: &AutomationId) -> Result<Option<AutomationRecord>> {
        let c = self.client().await?;
        opt(&c, &format!("SELECT {AUTO_COLS} FROM automations WHERE id=$1"), &[&id.as_str()], auto_of).await
    }

    async fn list_automations(
        &self,
        dep: &DeploymentId,
        before: Option<AutomationId>,
        limit: usize,
    ) -> Result<Vec<AutomationRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {AUTO_COLS} FROM automations WHERE deployment_id=$1 AND ($2::text IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3"
            ),
            &[&dep.as_str(), &before.as_ref().map(|b| b.as_str()), &(limit as i64)],
            auto_of,
        )
        .await
    }

    async fn update_automation(&self, a: &AutomationRecord, expected_revision: i64) -> Result<i64> {
        let c = self.client().await?;
        let n = exec(
            &c,
            "UPDATE automations SET spec=$2, enabled=$3, paused_reason=$4, token_hash=$5, revision=revision+1,
             updated_at=$6 WHERE id=$1 AND revision=$7",
            &[
                &a.id.as_str(),
                &to_json(&a.spec)?,
                &a.enabled,
                &a.paused_reason,
                &a.token_hash,
                &now_micros(),
                &expected_revision,
            ],
        )
        .await?;
        if n == 0 {
            return Err(stale_or_gone(&c, "automations", a.id.as_str()).await?);
        }
        Ok(expected_revision + 1)
    }

    async fn delete_automation(&self, id: &AutomationId, expected_revision: Option<i64>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = exec(
            &tx,
            "DELETE FROM automations WHERE id=$1 AND ($2::bigint IS NULL OR revision=$2)",
            &[&id.as_str(), &expected_revision],
        )
        .await?;
        if n == 0 {
            return Err(stale_or_gone(&tx, "automations", id.as_str()).await?);
        }
        exec(&tx, "DELETE FROM automation_firings WHERE automation_id=$1", &[&id.as_str()]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_firing(&self, f: NewFiring) -> Result<bool> {
        let c = self.client().await?;
        Ok(insert_firing_row(&c, &f, now_micros()).await? > 0)
    }

    async fn get_firing(&self, automation: &AutomationId, key: &str) -> Result<Option<FiringRecord>> {
        let c = self.client().await?;
        opt(
            &c,
            &format!(
                "SELECT {FIRING_COLS} FROM automation_firings f LEFT JOIN runs r ON r.id = f.run_id
                 WHERE f.automation_id=$1 AND f.key=$2"
            ),
            &[&automation.as_str(), &key],
            firing_of,
        )
        .await
    }

    async fn list_firings(&self, automation: &AutomationId, limit: usize) -> Result<Vec<FiringRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {FIRING_COLS} FROM automation_firings f LEFT JOIN runs r ON r.id = f.run_id
                 WHERE f.automation_id=$1 ORDER BY f.created_at DESC, COALESCE(f.slot_at, 0) DESC LIMIT $2"
            ),
            &[&automation.as_str(), &(limit as i64)],
            firing_of,
        )
        .await
    }

    async fn once_run(&self, key: &str) -> Result<Option<Option<RunId>>> {
        let c = self.client().await?;
        let row: Option<Option<String>> =
            opt(&c, "SELECT run_id FROM once_keys WHERE key=$1", &[&key], |r| Ok(r.try_get(0)?)).await?;
        row.map(|r| r.map(parse_id).transpose()).transpose()
    }

    async fn insert_goal(&self, g: GoalRecord) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            &format!("INSERT INTO goals ({GOAL_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"),
            &[
                &g.id.as_str(),
                &g.deployment_id.as_str(),
                &g.thread_id.as_str(),
                &to_json(&g.spec)?,
                &g.status.as_str(),
                &to_json(&g.state)?,
                &g.revision,
                &micros(g.created_at),
                &micros(g.updated_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_goal(&self, id: &GoalId) -> Result<Option<GoalRecord>> {
        let c = self.client().await?;
        opt(&c, &format!("SELECT {GOAL_COLS} FROM goals WHERE id=$1"), &[&id.as_str()], goal_of).await
    }

    async fn list_goals(&self, dep: &DeploymentId, before: Option<GoalId>, limit: usize) -> Result<Vec<GoalRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!(
                "SELECT {GOAL_COLS} FROM goals WHERE deployment_id=$1 AND ($2::text IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3"
            ),
            &[&dep.as_str(), &before.as_ref().map(|b| b.as_str()), &(limit as i64)],
            goal_of,
        )
        .await
    }

    async fn update_goal(&self, g: &GoalRecord, expected_revision: i64) -> Result<i64> {
        let c = self.client().await?;
        let n = exec(
            &c,
            "UPDATE goals SET status=$2, state=$3, revision=revision+1, updated_at=$4 WHERE id=$1 AND revision=$5",
            &[&g.id.as_str(), &g.status.as_str(), &to_json(&g.state)?, &now_micros(), &expected_revision],
        )
        .await?;
        if n == 0 {
            return Err(stale_or_gone(&c, "goals", g.id.as_str()).await?);
        }
        Ok(expected_revision + 1)
    }

    async fn goal_runs(&self, goal: &GoalId) -> Result<Vec<RunRecord>> {
        let c = self.client().await?;
        rows(
            &c,
            &format!("SELECT {RUN_COLS} FROM runs WHERE kind='goal' AND (trigger::jsonb)->>'goal_id'=$1 ORDER BY id"),
            &[&goal.as_str()],
            super::log::run_of,
        )
        .await
    }
}
