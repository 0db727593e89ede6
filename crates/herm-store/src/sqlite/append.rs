//! The append transaction: positions, fencing, conditions and projections, all in one
//! savepoint of the group commit.

use super::{from_micros, now_micros};
use crate::{Append, Condition, Error, Result};
use herm_types::event::{EVENT_FORMAT_VERSION, Role};
use herm_types::*;
use rusqlite::{Connection, OptionalExtension, params};

/// The statuses of an active run, spelled into the statements below (a literal, so looking a
/// statement up in the cache formats nothing).
macro_rules! active {
    () => {
        "('queued','running','waiting_on_human')"
    };
}

/// A thread's status derived from its runs, and its active run (its oldest not yet ended).
fn thread_state(conn: &Connection, thread: &str) -> Result<(ThreadStatus, Option<String>)> {
    let active: Option<(String, String)> = conn
        .prepare_cached(concat!(
            "SELECT id, status FROM runs WHERE thread_id=?1 AND status IN ",
            active!(),
            " ORDER BY id LIMIT 1"
        ))?
        .query_row([thread], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, status)) = active else {
        let last: Option<String> = conn
            .prepare_cached("SELECT status FROM runs WHERE thread_id=?1 ORDER BY id DESC LIMIT 1")?
            .query_row([thread], |r| r.get(0))
            .optional()?;
        let st = if last.as_deref() == Some("error") { ThreadStatus::Error } else { ThreadStatus::Idle };
        return Ok((st, None));
    };
    let st = if status == "waiting_on_human" { ThreadStatus::WaitingOnHuman } else { ThreadStatus::Running };
    Ok((st, Some(id)))
}

pub(crate) fn thread_status_str(s: ThreadStatus) -> &'static str {
    match s {
        ThreadStatus::Idle => "idle",
        ThreadStatus::Running => "running",
        ThreadStatus::WaitingOnHuman => "waiting_on_human",
        ThreadStatus::Error => "error",
    }
}

/// The events of an append serialized, before the job reaches the writer thread (the one
/// thread every append waits for does no JSON work); ephemeral kinds are refused here.
pub(crate) fn serialize(a: &Append) -> Result<Vec<String>> {
    a.events
        .iter()
        .map(|ev| {
            if ev.kind.is_ephemeral() {
                return Err(Error::Corrupt("ephemeral events are not appended".into()));
            }
            serde_json::to_string(&ev.kind).map_err(|e| Error::Corrupt(e.to_string()))
        })
        .collect()
}

/// Refuses, before anything is written, the ids that would fail an insert part-way: an
/// event's or the new run's id already taken, or an event id given twice.
fn ids_free(conn: &Connection, a: &Append) -> Result<()> {
    let taken = |sql: &str, id: &str| exists(conn, sql, [id]);
    for (i, ev) in a.events.iter().enumerate() {
        if a.events[..i].iter().any(|e| e.id == ev.id) {
            return Err(Error::Conflict(format!("event id {} is given twice", ev.id)));
        }
        if taken("SELECT EXISTS (SELECT 1 FROM events WHERE id=?1)", ev.id.as_str())? {
            return Err(Error::Conflict(format!("event {} exists", ev.id)));
        }
    }
    if let Some(r) = &a.new_run
        && taken("SELECT EXISTS (SELECT 1 FROM runs WHERE id=?1)", r.id.as_str())?
    {
        return Err(Error::Conflict(format!("run {} exists", r.id)));
    }
    Ok(())
}

/// Whether `once` is recorded already (what [`record_once`] would refuse).
fn once_taken(conn: &Connection, once: Option<&crate::Once>) -> Result<bool> {
    match once {
        None => Ok(false),
        Some(crate::Once::Firing(f)) => exists(
            conn,
            "SELECT EXISTS (SELECT 1 FROM automation_firings WHERE automation_id=?1 AND key=?2)",
            params![f.automation_id.as_str(), f.key],
        ),
        Some(crate::Once::Key { key, .. }) => {
            exists(conn, "SELECT EXISTS (SELECT 1 FROM once_keys WHERE key=?1)", [key])
        }
    }
}

/// The answer of a `SELECT EXISTS (…)` statement.
fn exists(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
    Ok(conn.prepare_cached(sql)?.query_row(params, |r| r.get(0))?)
}

/// Consumes `a`, whose events `data` holds serialized ([`serialize`]): their contents move
/// into the committed events (nothing is copied, and nothing the caller allocated is freed
/// on the writer thread).
pub(crate) fn append_tx(conn: &Connection, a: Append, data: Vec<String>) -> Result<Vec<Event>> {
    let now = now_micros();
    let tid = a.thread_id.as_str();
    let row = conn
        .prepare_cached(
            "SELECT deployment_id, next_seq, lease_owner, lease_epoch, lease_expires_at, deleted_at, active_run
             FROM threads WHERE id=?1",
        )?
        .query_row([tid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .optional()?;
    let Some((dep, mut seq, owner, epoch, expires, deleted, active_run)) = row else {
        return Err(Error::NotFound);
    };
    if deleted.is_some() {
        return Err(Error::NotFound);
    }
    if let Some(l) = &a.lease
        && (owner.as_deref() != Some(l.owner.as_str()) || epoch != l.epoch || expires < now / 1000)
    {
        return Err(Error::LeaseLost);
    }
    for c in &a.conditions {
        match c {
            Condition::ActiveRunIs(want) => {
                if active_run.as_deref() != want.as_ref().map(|r| r.as_str()) {
                    return Err(Error::Conflict("active run changed".into()));
                }
            }
            Condition::LastSequenceIs(s) => {
                if seq - 1 != *s {
                    return Err(Error::Conflict("thread log moved on".into()));
                }
            }
        }
    }
    let deployment_id = DeploymentId::parse(&dep).map_err(|e| Error::Corrupt(e.to_string()))?;
    if let Err(e) = ids_free(conn, &a) {
        // An append repeated whole is refused as a repeat when it carries a once-key.
        return Err(if once_taken(conn, a.once.as_ref())? { Error::Duplicate } else { e });
    }
    // Every check is made (the once-mark's insert refuses without writing): after it, only a
    // database fault fails the append.
    if let Some(once) = &a.once {
        record_once(conn, once, now)?;
    }
    if let Some(r) = &a.new_run {
        let trigger =
            r.trigger.as_ref().map(serde_json::to_string).transpose().map_err(|e| Error::Corrupt(e.to_string()))?;
        conn.prepare_cached(
            "INSERT INTO runs (id, thread_id, deployment_id, status, started_at, kind, trigger)
             VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?
        .execute(params![r.id.as_str(), tid, dep, r.status.as_str(), now, r.kind.as_str(), trigger])?;
    }
    // The deployment's positions for these events, taken in one statement.
    let taken = a.events.len() as i64;
    let first_dseq: i64 = conn
        .prepare_cached("UPDATE deployments SET next_dseq=next_dseq+?2 WHERE id=?1 RETURNING next_dseq-?2")?
        .query_row(params![dep, taken], |r| r.get(0))?;
    let mut out = Vec::with_capacity(a.events.len());
    let mut messages = 0i64;
    let mut status_changed = a.new_run.is_some();
    let created_at = from_micros(now);
    for ((ev, data), dseq) in a.events.into_iter().zip(data).zip(first_dseq..) {
        let run = ev.run_id.as_ref().map(|r| r.as_str());
        // OR FAIL: no statement journal (which would copy each page the insert touches that
        // the transaction already changed). An insert that fails (a database fault: the ids
        // were checked) fails the append, and the writer undoes it with its transaction (see
        // `writer`).
        conn.prepare_cached(
            "INSERT OR FAIL INTO events (thread_id, seq, deployment_id, dseq, id, run_id, type, v, data, created_at)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
        )?
        .execute(params![
            tid,
            seq,
            dep,
            dseq,
            ev.id.as_str(),
            run,
            ev.kind.type_name(),
            EVENT_FORMAT_VERSION,
            data,
            now
        ])?;
        if crate::kept_for_webhooks(&ev.kind) {
            // What a webhook may want, kept for delivery while any webhook exists.
            conn.prepare_cached(
                "INSERT INTO webhook_outbox (event_id, created_at)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM webhooks)",
            )?
            .execute(params![ev.id.as_str(), now])?;
        }
        match &ev.kind {
            EventKind::Message { role: Role::User, .. } | EventKind::AgentMessage { .. } => messages += 1,
            EventKind::ModelCall { input_tokens, output_tokens, cost_usd, .. } => {
                conn.prepare_cached(
                    "UPDATE runs SET steps=steps+1, input_tokens=input_tokens+?2,
                     output_tokens=output_tokens+?3, cost_usd=cost_usd+?4 WHERE id=?1",
                )?
                .execute(params![run, *input_tokens as i64, *output_tokens as i64, cost_usd])?;
            }
            // A summarising call costs like any other, but is not a step of the run.
            EventKind::Compaction { input_tokens, output_tokens, cost_usd, .. } => {
                conn.prepare_cached(
                    "UPDATE runs SET input_tokens=input_tokens+?2, output_tokens=output_tokens+?3,
                     cost_usd=cost_usd+?4 WHERE id=?1",
                )?
                .execute(params![run, *input_tokens as i64, *output_tokens as i64, cost_usd])?;
            }
            EventKind::RunStatus { status, error, .. } => {
                let err = match error {
                    Some(e) => Some(serde_json::to_string(e).map_err(|e| Error::Corrupt(e.to_string()))?),
                    None => None,
                };
                let ended = status.is_terminal().then_some(now);
                conn.prepare_cached("UPDATE runs SET status=?2, ended_at=?3, error=COALESCE(?4, error) WHERE id=?1")?
                    .execute(params![run, status.as_str(), ended, err])?;
                status_changed = true;
            }
            _ => {}
        }
        out.push(Event {
            id: ev.id,
            sequence: Sequence(seq),
            deployment_sequence: DeploymentSeq(dseq),
            deployment_id: deployment_id.clone(),
            thread_id: a.thread_id.clone(),
            run_id: ev.run_id,
            created_at,
            kind: ev.kind,
        });
        seq += 1;
    }
    conn.prepare_cached(
        "UPDATE threads SET next_seq=?2, last_activity_at=?3, message_count=message_count+?4 WHERE id=?1",
    )?
    .execute(params![tid, seq, now, messages])?;
    if status_changed {
        let (st, active) = thread_state(conn, tid)?;
        conn.prepare_cached("UPDATE threads SET status=?2, active_run=?3 WHERE id=?1")?.execute(params![
            tid,
            thread_status_str(st),
            active
        ])?;
    }
    Ok(out)
}

/// Records the append's [`crate::Once`] mark; refuses with [`Error::Duplicate`] if it is there.
fn record_once(conn: &Connection, once: &crate::Once, now: i64) -> Result<()> {
    let n = match once {
        crate::Once::Firing(f) => super::proactive::insert_firing_row(conn, f, now)?,
        crate::Once::Key { key, run_id } => conn
            .prepare_cached("INSERT INTO once_keys (key, run_id, created_at) VALUES (?1,?2,?3) ON CONFLICT DO NOTHING")?
            .execute(params![key, run_id.as_ref().map(|r| r.as_str()), now])?,
    };
    if n == 0 { Err(Error::Duplicate) } else { Ok(()) }
}
