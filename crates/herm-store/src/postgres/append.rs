//! The append transaction on PostgreSQL: the thread's row is locked first (its lease and
//! conditions are judged under that lock) and the projections written; the deployment's
//! sequence row is taken last, so appends of one deployment commit in `deployment_sequence`
//! order with no gap while holding it only for the events' insert; the commit notifies every
//! node (`herm_events`).

use super::fanout::Fanout;
use super::{DB_NOW_MS, exec, opt, value};
use crate::sqlite::rows::corrupt;
use crate::{Append, Condition, Error, Result};
use deadpool_postgres::{GenericClient, Transaction};
use herm_types::event::{EVENT_FORMAT_VERSION, Role};
use herm_types::*;

pub(super) const ACTIVE: &str = "('queued','running','waiting_on_human')";

pub(super) async fn active_run_id<C: GenericClient>(c: &C, thread: &str) -> Result<Option<String>> {
    opt(
        c,
        &format!("SELECT id FROM runs WHERE thread_id=$1 AND status IN {ACTIVE} ORDER BY id LIMIT 1"),
        &[&thread],
        |r| Ok(r.try_get(0)?),
    )
    .await
}

/// A thread's status, derived from its runs.
async fn thread_status<C: GenericClient>(c: &C, thread: &str) -> Result<&'static str> {
    let active: Option<String> = opt(
        c,
        &format!("SELECT status FROM runs WHERE thread_id=$1 AND status IN {ACTIVE} ORDER BY id LIMIT 1"),
        &[&thread],
        |r| Ok(r.try_get(0)?),
    )
    .await?;
    Ok(match active.as_deref() {
        Some("waiting_on_human") => "waiting_on_human",
        Some(_) => "running",
        None => {
            let last: Option<String> =
                opt(c, "SELECT status FROM runs WHERE thread_id=$1 ORDER BY id DESC LIMIT 1", &[&thread], |r| {
                    Ok(r.try_get(0)?)
                })
                .await?;
            if last.as_deref() == Some("error") { "error" } else { "idle" }
        }
    })
}

pub(super) async fn append_tx(tx: &Transaction<'_>, a: &Append, fanout: &Fanout) -> Result<Vec<Event>> {
    let now = crate::sqlite::now_micros();
    let tid = a.thread_id.as_str();
    type Locked = (String, i64, Option<String>, i64, i64, Option<i64>, i64);
    let row: Option<Locked> = opt(
        tx,
        &format!(
            "SELECT deployment_id, next_seq, lease_owner, lease_epoch, lease_expires_at, deleted_at, {DB_NOW_MS}
             FROM threads WHERE id=$1 FOR UPDATE"
        ),
        &[&tid],
        |r| Ok(super::cols!(r; 0, 1, 2, 3, 4, 5, 6)),
    )
    .await?;
    let Some((dep, mut seq, owner, epoch, expires, deleted, db_now)) = row else { return Err(Error::NotFound) };
    if deleted.is_some() {
        return Err(Error::NotFound);
    }
    if let Some(l) = &a.lease
        && (owner.as_deref() != Some(l.owner.as_str()) || epoch != l.epoch || expires < db_now)
    {
        return Err(Error::LeaseLost);
    }
    for c in &a.conditions {
        match c {
            Condition::ActiveRunIs(want) => {
                let have = active_run_id(tx, tid).await?;
                if have.as_deref() != want.as_ref().map(|r| r.as_str()) {
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
    let deployment_id = DeploymentId::parse(&dep).map_err(corrupt)?;
    if let Some(once) = &a.once {
        record_once(tx, once, now).await?;
    }
    if let Some(r) = &a.new_run {
        let trigger = r.trigger.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
        exec(
            tx,
            "INSERT INTO runs (id, thread_id, deployment_id, status, started_at, kind, trigger)
             VALUES ($1,$2,$3,$4,$5,$6,$7)",
            &[&r.id.as_str(), &tid, &dep, &r.status.as_str(), &now, &r.kind.as_str(), &trigger],
        )
        .await?;
    }
    // Projections first: nothing here needs a deployment position.
    let mut messages = 0i64;
    let mut status_changed = a.new_run.is_some();
    for ev in &a.events {
        if ev.kind.is_ephemeral() {
            return Err(Error::Corrupt("ephemeral events are not appended".into()));
        }
        let run = ev.run_id.as_ref().map(|r| r.as_str());
        match &ev.kind {
            EventKind::Message { role: Role::User, .. } | EventKind::AgentMessage { .. } => messages += 1,
            EventKind::ModelCall { input_tokens, output_tokens, cost_usd, .. } => {
                exec(
                    tx,
                    "UPDATE runs SET steps=steps+1, input_tokens=input_tokens+$2,
                     output_tokens=output_tokens+$3, cost_usd=cost_usd+$4 WHERE id=$1",
                    &[&run, &(*input_tokens as i64), &(*output_tokens as i64), cost_usd],
                )
                .await?;
            }
            // A summarising call costs like any other, but is not a step of the run.
            EventKind::Compaction { input_tokens, output_tokens, cost_usd, .. } => {
                exec(
                    tx,
                    "UPDATE runs SET input_tokens=input_tokens+$2, output_tokens=output_tokens+$3,
                     cost_usd=cost_usd+$4 WHERE id=$1",
                    &[&run, &(*input_tokens as i64), &(*output_tokens as i64), cost_usd],
                )
                .await?;
            }
            EventKind::RunStatus { status, error, .. } => {
                let err = error.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
                let ended = status.is_terminal().then_some(now);
                exec(
                    tx,
                    "UPDATE runs SET status=$2, ended_at=$3, error=COALESCE($4, error) WHERE id=$1",
                    &[&run, &status.as_str(), &ended, &err],
                )
                .await?;
                status_changed = true;
            }
            _ => {}
        }
    }
    let n = a.events.len() as i64;
    let first_seq = seq;
    seq += n;
    exec(
        tx,
        "UPDATE threads SET next_seq=$2, last_activity_at=$3, message_count=message_count+$4 WHERE id=$1",
        &[&tid, &seq, &now, &messages],
    )
    .await?;
    if status_changed {
        let st = thread_status(tx, tid).await?;
        exec(tx, "UPDATE threads SET status=$2 WHERE id=$1", &[&tid, &st]).await?;
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    // Positions last: the deployment's row stays locked from here to the commit, so appends of
    // one deployment wait on each other for three statements, not the whole transaction.
    let end: i64 =
        value(tx, "UPDATE deployments SET next_dseq=next_dseq+$2 WHERE id=$1 RETURNING next_dseq", &[&dep, &n]).await?;
    fanout.reserve(&deployment_id, end - n);
    let created_at = crate::sqlite::from_micros(now);
    let mut cols = EventColumns::default();
    let mut out = Vec::with_capacity(a.events.len());
    for ((s, d), ev) in (first_seq..).zip(end - n..).zip(a.events.iter()) {
        cols.seq.push(s);
        cols.dseq.push(d);
        cols.id.push(ev.id.to_string());
        cols.run.push(ev.run_id.as_ref().map(|r| r.to_string()));
        cols.kind.push(ev.kind.type_name().to_owned());
        cols.data.push(serde_json::to_string(&ev.kind).map_err(corrupt)?);
        out.push(Event {
            id: ev.id.clone(),
            sequence: Sequence(s),
            deployment_sequence: DeploymentSeq(d),
            deployment_id: deployment_id.clone(),
            thread_id: a.thread_id.clone(),
            run_id: ev.run_id.clone(),
            created_at,
            kind: ev.kind.clone(),
        });
    }
    exec(
        tx,
        "INSERT INTO events (thread_id, seq, deployment_id, dseq, id, run_id, type, v, data, created_at)
         SELECT $1, u.s, $2, u.d, u.i, u.r, u.t, $3, u.x, $4
         FROM UNNEST($5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[]) AS u(s, d, i, r, t, x)",
        &[&tid, &dep, &EVENT_FORMAT_VERSION, &now, &cols.seq, &cols.dseq, &cols.id, &cols.run, &cols.kind, &cols.data],
    )
    .await?;
    // Delivered to every listening node at commit, in commit order.
    let note = super::fanout::note(&dep, end - n, end - 1);
    exec(tx, "SELECT pg_notify('herm_events', $1)", &[&note]).await?;
    Ok(out)
}

/// An append's events as columns, inserted with one statement.
#[derive(Default)]
struct EventColumns {
    seq: Vec<i64>,
    dseq: Vec<i64>,
    id: Vec<String>,
    run: Vec<Option<String>>,
    kind: Vec<String>,
    data: Vec<String>,
}

/// Records the append's [`crate::Once`] mark; refuses with [`Error::Duplicate`] if it is there.
async fn record_once(tx: &Transaction<'_>, once: &crate::Once, now: i64) -> Result<()> {
    let n = match once {
        crate::Once::Firing(f) => super::proactive::insert_firing_row(tx, f, now).await?,
        crate::Once::Key { key, run_id } => {
            exec(
                tx,
                "INSERT INTO once_keys (key, run_id, created_at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
                &[key, &run_id.as_ref().map(|r| r.as_str()), &now],
            )
            .await?
        }
    };
    if n == 0 { Err(Error::Duplicate) } else { Ok(()) }
}
