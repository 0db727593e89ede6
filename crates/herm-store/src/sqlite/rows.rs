//! Row shapes and conversions shared by the SQLite queries: one `*_row` reads a row, one
//! `*_rec` turns it into a record (a value that does not parse is [`Error::Corrupt`]).

use super::from_micros;
use crate::*;
use herm_types::event::RunError;
use rusqlite::{Connection, OptionalExtension, Row};

pub(crate) fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

pub(crate) fn parse_id<T: std::str::FromStr>(s: String) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(corrupt)
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(corrupt)
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(corrupt)
}

pub(crate) const KEY_COLS: &str = "id, name, hash, scopes, created_at, revoked_at";
pub(crate) type KeyRow = (String, String, String, String, i64, Option<i64>);
pub(crate) fn key_row(r: &Row) -> rusqlite::Result<KeyRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}
pub(crate) fn key_rec(t: KeyRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: parse_id(t.0)?,
        name: t.1,
        hash: t.2,
        scopes: json(&t.3)?,
        created_at: from_micros(t.4),
        revoked_at: t.5.map(from_micros),
    })
}

pub(crate) const SECRET_COLS: &str = "id, name, description, nonce, ciphertext, created_at";
pub(crate) type SecretRow = (String, String, Option<String>, Vec<u8>, Vec<u8>, i64);
pub(crate) fn secret_row(r: &Row) -> rusqlite::Result<SecretRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}
pub(crate) fn secret_rec(t: SecretRow) -> Result<SecretRecord> {
    Ok(SecretRecord {
        id: parse_id(t.0)?,
        name: t.1,
        description: t.2,
        nonce: t.3,
        ciphertext: t.4,
        created_at: from_micros(t.5),
    })
}

pub(crate) const DEP_COLS: &str = "id, status, error, spec, default_thread_id, created_at, updated_at, revision";
pub(crate) type DepRow = (String, String, Option<String>, String, String, i64, i64, i64);
pub(crate) fn dep_row(r: &Row) -> rusqlite::Result<DepRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}
pub(crate) fn dep_rec(t: DepRow) -> Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        id: parse_id(t.0)?,
        status: DeploymentStatus::parse(&t.1).ok_or_else(|| corrupt("deployment status"))?,
        error: t.2,
        spec: json(&t.3)?,
        default_thread_id: parse_id(t.4)?,
        created_at: from_micros(t.5),
        updated_at: from_micros(t.6),
        revision: t.7,
    })
}

pub(crate) const THREAD_COLS: &str =
    "id, deployment_id, title, status, message_count, created_at, last_activity_at, next_seq";
pub(crate) type ThreadRow = (String, String, Option<String>, String, i64, i64, i64, i64);
pub(crate) fn thread_row(r: &Row) -> rusqlite::Result<ThreadRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}
pub(crate) fn thread_rec(t: ThreadRow) -> Result<ThreadRecord> {
    Ok(ThreadRecord {
        id: parse_id(t.0)?,
        deployment_id: parse_id(t.1)?,
        title: t.2,
        status: json(&format!("\"{}\"", t.3))?,
        message_count: t.4.max(0) as u64,
        created_at: from_micros(t.5),
        last_activity_at: from_micros(t.6),
        last_sequence: t.7 - 1,
    })
}

pub(crate) const RUN_COLS: &str = "id, thread_id, deployment_id, status, steps, input_tokens, output_tokens, cost_usd, \
     error, started_at, ended_at, kind, trigger";
pub(crate) type RunRow =
    (String, String, String, String, i64, i64, i64, f64, Option<String>, i64, Option<i64>, String, Option<String>);
pub(crate) fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}
pub(crate) fn run_rec(t: RunRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: parse_id(t.0)?,
        thread_id: parse_id(t.1)?,
        deployment_id: parse_id(t.2)?,
        status: RunStatus::parse(&t.3).ok_or_else(|| corrupt("run status"))?,
        kind: RunKind::parse(&t.11).ok_or_else(|| corrupt("run kind"))?,
        trigger: t.12.as_deref().map(json::<RunTrigger>).transpose()?,
        steps: t.4.max(0) as u32,
        usage: Usage { input_tokens: t.5.max(0) as u64, output_tokens: t.6.max(0) as u64, cost_usd: t.7 },
        error: t.8.as_deref().map(json::<RunError>).transpose()?,
        started_at: from_micros(t.9),
        ended_at: t.10.map(from_micros),
    })
}

pub(crate) const EVENT_COLS: &str = "id, seq, dseq, deployment_id, thread_id, run_id, data, created_at";
pub(crate) type EventRow = (String, i64, i64, String, String, Option<String>, String, i64);
pub(crate) fn event_row(r: &Row) -> rusqlite::Result<EventRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}
pub(crate) fn event_rec(t: EventRow) -> Result<Event> {
    Ok(Event {
        id: parse_id(t.0)?,
        sequence: Sequence(t.1),
        deployment_sequence: DeploymentSeq(t.2),
        deployment_id: parse_id(t.3)?,
        thread_id: parse_id(t.4)?,
        run_id: t.5.map(parse_id).transpose()?,
        kind: json(&t.6)?,
        created_at: from_micros(t.7),
    })
}

/// At most one row, mapped to its record.
pub(crate) fn one<T, R>(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    row: fn(&Row) -> rusqlite::Result<R>,
    rec: fn(R) -> Result<T>,
) -> Result<Option<T>> {
    conn.prepare_cached(sql)?.query_row(p, row).optional()?.map(rec).transpose()
}

pub(crate) fn collect<T, R>(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    row: fn(&Row) -> rusqlite::Result<R>,
    rec: fn(R) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(rec(r?)?);
    }
    Ok(out)
}
