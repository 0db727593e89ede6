//! Automations, their firings and goals in SQLite. A firing is recorded once per key (the
//! primary key refuses a second), in the same transaction as the append that starts its run
//! (see `append::record_once`); specs and states change only at the revision they were read.

use super::rows::*;
use super::{SqliteStore, from_micros, micros, now_micros};
use crate::*;
use herm_types::proactive::{FiringSource, GoalStatus};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) const AUTO_COLS: &str =
    "id, deployment_id, spec, enabled, paused_reason, token_hash, revision, created_at, updated_at";
pub(crate) type AutoRow = (String, String, String, bool, Option<String>, Option<String>, i64, i64, i64);
fn auto_row(r: &Row) -> rusqlite::Result<AutoRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}
pub(crate) fn auto_rec(t: AutoRow) -> Result<AutomationRecord> {
    Ok(AutomationRecord {
        id: parse_id(t.0)?,
        deployment_id: parse_id(t.1)?,
        spec: json(&t.2)?,
        enabled: t.3,
        paused_reason: t.4,
        token_hash: t.5,
        revision: t.6,
        created_at: from_micros(t.7),
        updated_at: from_micros(t.8),
    })
}

pub(crate) const FIRING_COLS: &str = "f.automation_id, f.key, f.slot_at, f.source, f.skipped, f.run_id, f.thread_id, f.reason, \
     f.created_at, r.status";
pub(crate) type FiringRow =
    (String, String, Option<i64>, String, bool, Option<String>, Option<String>, Option<String>, i64, Option<String>);
fn firing_row(r: &Row) -> rusqlite::Result<FiringRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}
pub(crate) fn firing_rec(t: FiringRow) -> Result<FiringRecord> {
    Ok(FiringRecord {
        firing: NewFiring {
            automation_id: parse_id(t.0)?,
            key: t.1,
            slot_at: t.2.map(from_micros),
            source: FiringSource::parse(&t.3).ok_or_else(|| corrupt("firing source"))?,
            skipped: t.4,
            run_id: t.5.map(parse_id).transpose()?,
            thread_id: t.6.map(parse_id).transpose()?,
            reason: t.7,
        },
        created_at: from_micros(t.8),
        run_status: t.9.as_deref().and_then(RunStatus::parse),
    })
}

pub(crate) const GOAL_COLS: &str =
    "id, deployment_id, thread_id, spec, status, state, revision, created_at, updated_at";
pub(crate) type GoalRow = (String, String, String, String, String, String, i64, i64, i64);
fn goal_row(r: &Row) -> rusqlite::Result<GoalRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}
pub(crate) fn goal_rec(t: GoalRow) -> Result<GoalRecord> {
    Ok(GoalRecord {
        id: parse_id(t.0)?,
        deployment_id: parse_id(t.1)?,
        thread_id: parse_id(t.2)?,
        spec: json(&t.3)?,
        status: GoalStatus::parse(&t.4).ok_or_else(|| corrupt("goal status"))?,
        state: json(&t.5)?,
        revision: t.6,
        created_at: from_micros(t.7),
        updated_at: from_micros(t.8),
    })
}

/// Inserts a firing unless its key is recorded; the number of rows written (0 or 1).
pub(super) fn insert_firing_row(conn: &Connection, f: &NewFiring, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO automation_firings (automation_id, key, slot_at, source, skipped, run_id, thread_id, reason, created_at)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            f.automation_id.as_str(),
            f.key,
            f.slot_at.map(micros),
            f.source.as_str(),
            f.skipped,
            f.run_id.as_ref().map(|r| r.as_str()),
            f.thread_id.as_ref().map(|t| t.as_str()),
            f.reason,
            now
        ])?)
}

/// After a conditional update or delete touched no row: gone, or changed meanwhile.
fn stale_or_gone(c: &Connection, table: &str, id: &str) -> Error {
    let live = c
        .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id=?1)"), [id], |r| r.get::<_, bool>(0))
        .unwrap_or(false);
    if live { Error::Stale } else { Error::NotFound }
}

#[async_trait::async_trait]
impl ProactiveStore for SqliteStore {
    async fn insert_automation(&self, a: AutomationRecord) -> Result<()> {
        let spec = to_json(&a.spec)?;
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO automations ({AUTO_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
                params![
                    a.id.as_str(),
                    a.deployment_id.as_str(),
                    spec,
                    a.enabled,
                    a.paused_reason,
                    a.token_hash,
                    a.revision,
                    micros(a.created_at),
                    micros(a.updated_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_automation(&self, id: &AutomationId) -> Result<Option<AutomationRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            one(c, &format!("SELECT {AUTO_COLS} FROM automations WHERE id=?1"), [id], auto_row, auto_rec)
        })
        .await
    }

    async fn list_automations(
        &self,
        dep: &DeploymentId,
        before: Option<AutomationId>,
        limit: usize,
    ) -> Result<Vec<AutomationRecord>> {
        let (dep, before) = (dep.to_string(), before.map(String::from));
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {AUTO_COLS} FROM automations WHERE deployment_id=?1 AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3"
                ),
                params![dep, before, limit as i64],
                auto_row,
                auto_rec,
            )
        })
        .await
    }

    async fn update_automation(&self, a: &AutomationRecord, expected_revision: i64) -> Result<i64> {
        let a = a.clone();
        let spec = to_json(&a.spec)?;
        self.write(move |c| {
            let n = c.execute(
                "UPDATE automations SET spec=?2, enabled=?3, paused_reason=?4, token_hash=?5, revision=revision+1,
                 updated_at=?6 WHERE id=?1 AND revision=?7",
                params![a.id.as_str(), spec, a.enabled, a.paused_reason, a.token_hash, now_micros(), expected_revision],
            )?;
            if n == 0 {
                return Err(stale_or_gone(c, "automations", a.id.as_str()));
            }
            Ok(expected_revision + 1)
        })
        .await
    }

    async fn delete_automation(&self, id: &AutomationId, expected_revision: Option<i64>) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM automations WHERE id=?1 AND (?2 IS NULL OR revision=?2)",
                params![id, expected_revision],
            )?;
            if n == 0 {
                return Err(stale_or_gone(c, "automations", &id));
            }
            c.execute("DELETE FROM automation_firings WHERE automation_id=?1", [&id])?;
            Ok(())
        })
        .await
    }

    async fn insert_firing(&self, f: NewFiring) -> Result<bool> {
        self.write(move |c| Ok(insert_firing_row(c, &f, now_micros())? > 0)).await
    }

    async fn get_firing(&self, automation: &AutomationId, key: &str) -> Result<Option<FiringRecord>> {
        let (id, key) = (automation.to_string(), key.to_owned());
        self.read(move |c| {
            one(
                c,
                &format!(
                    "SELECT {FIRING_COLS} FROM automation_firings f LEFT JOIN runs r ON r.id = f.run_id
                     WHERE f.automation_id=?1 AND f.key=?2"
                ),
                params![id, key],
                firing_row,
                firing_rec,
            )
        })
        .await
    }

    async fn list_firings(&self, automation: &AutomationId, limit: usize) -> Result<Vec<FiringRecord>> {
        let id = automation.to_string();
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {FIRING_COLS} FROM automation_firings f LEFT JOIN runs r ON r.id = f.run_id
                     WHERE f.automation_id=?1 ORDER BY f.created_at DESC, COALESCE(f.slot_at, 0) DESC LIMIT ?2"
                ),
                params![id, limit as i64],
                firing_row,
                firing_rec,
            )
        })
        .await
    }

    async fn once_run(&self, key: &str) -> Result<Option<Option<RunId>>> {
        let key = key.to_owned();
        self.read(move |c| {
            let row: Option<Option<String>> = c
                .prepare_cached("SELECT run_id FROM once_keys WHERE key=?1")?
                .query_row([key], |r| r.get(0))
                .optional()?;
            row.map(|r| r.map(parse_id).transpose()).transpose()
        })
        .await
    }

    async fn insert_goal(&self, g: GoalRecord) -> Result<()> {
        let (spec, state) = (to_json(&g.spec)?, to_json(&g.state)?);
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO goals ({GOAL_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
                params![
                    g.id.as_str(),
                    g.deployment_id.as_str(),
                    g.thread_id.as_str(),
                    spec,
                    g.status.as_str(),
                    state,
                    g.revision,
                    micros(g.created_at),
                    micros(g.updated_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_goal(&self, id: &GoalId) -> Result<Option<GoalRecord>> {
        let id = id.to_string();
        self.read(move |c| one(c, &format!("SELECT {GOAL_COLS} FROM goals WHERE id=?1"), [id], goal_row, goal_rec))
            .await
    }

    async fn list_goals(&self, dep: &DeploymentId, before: Option<GoalId>, limit: usize) -> Result<Vec<GoalRecord>> {
        let (dep, before) = (dep.to_string(), before.map(String::from));
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {GOAL_COLS} FROM goals WHERE deployment_id=?1 AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3"
                ),
                params![dep, before, limit as i64],
                goal_row,
                goal_rec,
            )
        })
        .await
    }

    async fn update_goal(&self, g: &GoalRecord, expected_revision: i64) -> Result<i64> {
        let g = g.clone();
        let state = to_json(&g.state)?;
        self.write(move |c| {
            let n = c.execute(
                "UPDATE goals SET status=?2, state=?3, revision=revision+1, updated_at=?4 WHERE id=?1 AND revision=?5",
                params![g.id.as_str(), g.status.as_str(), state, now_micros(), expected_revision],
            )?;
            if n == 0 {
                return Err(stale_or_gone(c, "goals", g.id.as_str()));
            }
            Ok(expected_revision + 1)
        })
        .await
    }

    async fn goal_runs(&self, goal: &GoalId) -> Result<Vec<RunRecord>> {
        let id = goal.to_string();
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {RUN_COLS} FROM runs WHERE kind='goal' AND json_extract(trigger, '$.goal_id')=?1 ORDER BY id"
                ),
                [id],
                run_row,
                run_rec,
            )
        })
        .await
    }
}
