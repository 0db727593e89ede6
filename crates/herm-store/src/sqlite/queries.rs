//! The [`Store`] implementation for SQLite: every method but `append` (see [`super::append`]).

use super::append::{active_run_id, append_tx};
use super::{SqliteStore, from_micros, micros, now_micros};
use crate::*;
use herm_types::config::{DeploymentSpec, ProviderSpec};
use herm_types::event::{LiveFrame, RunError};
use rusqlite::{Connection, OptionalExtension, Row, params};

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

fn parse_id<T: std::str::FromStr>(s: String) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(corrupt)
}

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(corrupt)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(corrupt)
}

const KEY_COLS: &str = "id, name, hash, scopes, created_at, revoked_at";
type KeyRow = (String, String, String, String, i64, Option<i64>);
fn key_row(r: &Row) -> rusqlite::Result<KeyRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}
fn key_rec(t: KeyRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: parse_id(t.0)?,
        name: t.1,
        hash: t.2,
        scopes: json(&t.3)?,
        created_at: from_micros(t.4),
        revoked_at: t.5.map(from_micros),
    })
}

const SECRET_COLS: &str = "id, name, description, nonce, ciphertext, created_at";
type SecretRow = (String, String, Option<String>, Vec<u8>, Vec<u8>, i64);
fn secret_row(r: &Row) -> rusqlite::Result<SecretRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}
fn secret_rec(t: SecretRow) -> Result<SecretRecord> {
    Ok(SecretRecord {
        id: parse_id(t.0)?,
        name: t.1,
        description: t.2,
        nonce: t.3,
        ciphertext: t.4,
        created_at: from_micros(t.5),
    })
}

const DEP_COLS: &str = "id, status, error, spec, default_thread_id, created_at, updated_at";
type DepRow = (String, String, Option<String>, String, String, i64, i64);
fn dep_row(r: &Row) -> rusqlite::Result<DepRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}
fn dep_rec(t: DepRow) -> Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        id: parse_id(t.0)?,
        status: DeploymentStatus::parse(&t.1).ok_or_else(|| corrupt("deployment status"))?,
        error: t.2,
        spec: json(&t.3)?,
        default_thread_id: parse_id(t.4)?,
        created_at: from_micros(t.5),
        updated_at: from_micros(t.6),
    })
}

const THREAD_COLS: &str = "id, deployment_id, title, status, message_count, created_at, last_activity_at, next_seq";
type ThreadRow = (String, String, Option<String>, String, i64, i64, i64, i64);
fn thread_row(r: &Row) -> rusqlite::Result<ThreadRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}
fn thread_rec(t: ThreadRow) -> Result<ThreadRecord> {
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

const RUN_COLS: &str =
    "id, thread_id, deployment_id, status, steps, input_tokens, output_tokens, cost_usd, error, started_at, ended_at";
type RunRow = (String, String, String, String, i64, i64, i64, f64, Option<String>, i64, Option<i64>);
fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
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
    ))
}
fn run_rec(t: RunRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: parse_id(t.0)?,
        thread_id: parse_id(t.1)?,
        deployment_id: parse_id(t.2)?,
        status: RunStatus::parse(&t.3).ok_or_else(|| corrupt("run status"))?,
        steps: t.4.max(0) as u32,
        usage: Usage { input_tokens: t.5.max(0) as u64, output_tokens: t.6.max(0) as u64, cost_usd: t.7 },
        error: t.8.as_deref().map(json::<RunError>).transpose()?,
        started_at: from_micros(t.9),
        ended_at: t.10.map(from_micros),
    })
}

const EVENT_COLS: &str = "id, seq, dseq, deployment_id, thread_id, run_id, data, created_at";
type EventRow = (String, i64, i64, String, String, Option<String>, String, i64);
fn event_row(r: &Row) -> rusqlite::Result<EventRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}
fn event_rec(t: EventRow) -> Result<Event> {
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
fn one<T, R>(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    row: fn(&Row) -> rusqlite::Result<R>,
    rec: fn(R) -> Result<T>,
) -> Result<Option<T>> {
    conn.prepare_cached(sql)?.query_row(p, row).optional()?.map(rec).transpose()
}

fn collect<T, R>(
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

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert_api_key(&self, k: ApiKeyRecord) -> Result<()> {
        let scopes = to_json(&k.scopes)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES (?1,?2,?3,?4,?5)",
                params![k.id.as_str(), k.name, k.hash, scopes, micros(k.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let hash = hash.to_owned();
        self.read(move |c| one(c, &format!("SELECT {KEY_COLS} FROM api_keys WHERE hash=?1"), [hash], key_row, key_rec))
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.read(|c| collect(c, &format!("SELECT {KEY_COLS} FROM api_keys ORDER BY id"), [], key_row, key_rec)).await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE api_keys SET revoked_at=?2 WHERE id=?1 AND revoked_at IS NULL",
                params![id, now_micros()],
            )? > 0)
        })
        .await
    }

    async fn insert_secret(&self, s: SecretRecord) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO secrets (id, name, description, nonce, ciphertext, created_at) VALUES (?1,?2,?3,?4,?5,?6)",
                params![s.id.as_str(), s.name, s.description, s.nonce, s.ciphertext, micros(s.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_secret(&self, id: &SecretId) -> Result<Option<SecretRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {SECRET_COLS} FROM secrets WHERE id=?1 AND deleted_at IS NULL"),
                [id],
                secret_row,
                secret_rec,
            )
        })
        .await
    }

    async fn list_secrets(&self) -> Result<Vec<SecretRecord>> {
        self.read(|c| {
            collect(
                c,
                &format!("SELECT {SECRET_COLS} FROM secrets WHERE deleted_at IS NULL ORDER BY id"),
                [],
                secret_row,
                secret_rec,
            )
        })
        .await
    }

    async fn delete_secret(&self, id: &SecretId) -> Result<bool> {
        let id = id.to_string();
        // The ciphertext is destroyed, not just hidden: a deleted secret must not be recoverable.
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE secrets SET deleted_at=?2, ciphertext=x'', nonce=x'' WHERE id=?1 AND deleted_at IS NULL",
                params![id, now_micros()],
            )? > 0)
        })
        .await
    }

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

    async fn update_deployment_spec(&self, id: &DeploymentId, spec: &DeploymentSpec) -> Result<()> {
        let (id, spec) = (id.to_string(), to_json(spec)?);
        self.write(move |c| {
            let n = c.execute(
                "UPDATE deployments SET spec=?2, updated_at=?3 WHERE id=?1 AND status != 'deleted'",
                params![id, spec, now_micros()],
            )?;
            if n == 0 { Err(Error::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn set_deployment_status(
        &self,
        id: &DeploymentId,
        status: DeploymentStatus,
        error: Option<String>,
    ) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE deployments SET status=?2, error=?3, updated_at=?4 WHERE id=?1 AND status != 'deleted'",
                params![id, status.as_str(), error, now_micros()],
            )?;
            if status == DeploymentStatus::Deleted {
                // Stop every unfinished run of the deployment for good.
                c.execute(
                    "UPDATE runs SET status='interrupted', ended_at=?2 WHERE deployment_id=?1
                     AND status IN ('queued','running','waiting_on_human')",
                    params![id, now_micros()],
                )?;
                c.execute("UPDATE threads SET deleted_at=?2 WHERE deployment_id=?1", params![id, now_micros()])?;
            }
            if n == 0 { Err(Error::NotFound) } else { Ok(()) }
        })
        .await
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

    async fn create_thread(&self, t: NewThread) -> Result<()> {
        self.write(move |c| {
            let now = now_micros();
            let n = c.execute(
                "INSERT INTO threads (id, deployment_id, title, created_at, last_activity_at)
                 SELECT ?1, ?2, ?3, ?4, ?4 WHERE EXISTS (SELECT 1 FROM deployments WHERE id=?2 AND status != 'deleted')",
                params![t.id.as_str(), t.deployment_id.as_str(), t.title, now],
            )?;
            if n == 0 { Err(Error::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn get_thread(&self, id: &ThreadId) -> Result<Option<ThreadRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {THREAD_COLS} FROM threads WHERE id=?1 AND deleted_at IS NULL"),
                [id],
                thread_row,
                thread_rec,
            )
        })
        .await
    }

    async fn list_threads(&self, q: ThreadQuery) -> Result<Vec<ThreadRecord>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {THREAD_COLS} FROM threads WHERE deployment_id=?1 AND deleted_at IS NULL
                 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
            );
            collect(
                c,
                &sql,
                params![q.deployment_id.as_str(), q.before.as_ref().map(|b| b.as_str()), q.limit as i64],
                thread_row,
                thread_rec,
            )
        })
        .await
    }

    async fn set_thread_title(&self, id: &ThreadId, title: &str) -> Result<bool> {
        let (id, title) = (id.to_string(), title.to_owned());
        self.write(move |c| {
            Ok(c.execute("UPDATE threads SET title=?2 WHERE id=?1 AND deleted_at IS NULL", params![id, title])? > 0)
        })
        .await
    }

    async fn delete_thread(&self, id: &ThreadId) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let now = now_micros();
            let n =
                c.execute("UPDATE threads SET deleted_at=?2 WHERE id=?1 AND deleted_at IS NULL", params![id, now])?;
            c.execute(
                "UPDATE runs SET status='interrupted', ended_at=?2 WHERE thread_id=?1
                 AND status IN ('queued','running','waiting_on_human')",
                params![id, now],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let id = id.to_string();
        self.read(move |c| one(c, &format!("SELECT {RUN_COLS} FROM runs WHERE id=?1"), [id], run_row, run_rec)).await
    }

    async fn active_run(&self, thread: &ThreadId) -> Result<Option<RunRecord>> {
        let thread = thread.to_string();
        self.read(move |c| {
            let Some(id) = active_run_id(c, &thread)? else { return Ok(None) };
            one(c, &format!("SELECT {RUN_COLS} FROM runs WHERE id=?1"), [id], run_row, run_rec)
        })
        .await
    }

    async fn append(&self, a: Append) -> Result<Vec<Arc<Event>>> {
        let bus = self.bus().clone();
        self.inner
            .writer
            .write(
                move |c| Ok(append_tx(c, &a)?.into_iter().map(Arc::new).collect::<Vec<_>>()),
                move |events: &Vec<Arc<Event>>| {
                    for e in events {
                        bus.publish(&e.deployment_id, LiveFrame::Committed(e.clone()));
                    }
                },
            )
            .await
    }

    async fn thread_events(&self, thread: &ThreadId, after: i64, limit: usize) -> Result<Vec<Event>> {
        let thread = thread.to_string();
        self.read(move |c| {
            collect(
                c,
                &format!("SELECT {EVENT_COLS} FROM events WHERE thread_id=?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
                params![thread, after, limit as i64],
                event_row,
                event_rec,
            )
        })
        .await
    }

    async fn deployment_events(
        &self,
        dep: &DeploymentId,
        after: i64,
        limit: usize,
        f: &EventFilter,
    ) -> Result<Vec<Event>> {
        let dep = dep.to_string();
        let (t, r) = (f.thread_id.as_ref().map(|x| x.to_string()), f.run_id.as_ref().map(|x| x.to_string()));
        self.read(move |c| {
            collect(
                c,
                &format!(
                    "SELECT {EVENT_COLS} FROM events WHERE deployment_id=?1 AND dseq > ?2
                     AND (?3 IS NULL OR thread_id=?3) AND (?4 IS NULL OR run_id=?4) ORDER BY dseq LIMIT ?5"
                ),
                params![dep, after, t, r, limit as i64],
                event_row,
                event_rec,
            )
        })
        .await
    }

    async fn run_log(&self, thread: &ThreadId) -> Result<Vec<Event>> {
        self.thread_events(thread, 0, usize::MAX >> 1).await
    }

    async fn acquire_lease(&self, thread: &ThreadId, owner: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let (tid, owner) = (thread.clone(), owner.to_owned());
        self.write(move |c| {
            let now = now_micros() / 1000;
            let epoch: Option<i64> = c
                .prepare_cached(
                    "UPDATE threads SET lease_owner=?2, lease_epoch=lease_epoch+1, lease_expires_at=?3
                     WHERE id=?1 AND deleted_at IS NULL AND (lease_owner IS NULL OR lease_expires_at < ?4 OR lease_owner=?2)
                     RETURNING lease_epoch",
                )?
                .query_row(params![tid.as_str(), owner, now + ttl_ms, now], |r| r.get(0))
                .optional()?;
            Ok(epoch.map(|epoch| Lease { thread_id: tid, owner, epoch }))
        })
        .await
    }

    async fn renew_lease(&self, l: &Lease, ttl_ms: i64) -> Result<bool> {
        let l = l.clone();
        self.write(move |c| {
            let now = now_micros() / 1000;
            Ok(c.prepare_cached(
                "UPDATE threads SET lease_expires_at=?4 WHERE id=?1 AND lease_owner=?2 AND lease_epoch=?3 AND lease_expires_at >= ?5",
            )?
            .execute(params![l.thread_id.as_str(), l.owner, l.epoch, now + ttl_ms, now])?
                > 0)
        })
        .await
    }

    async fn release_lease(&self, l: &Lease) -> Result<()> {
        let l = l.clone();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE threads SET lease_owner=NULL, lease_expires_at=0 WHERE id=?1 AND lease_owner=?2 AND lease_epoch=?3",
            )?
            .execute(params![l.thread_id.as_str(), l.owner, l.epoch])?;
            Ok(())
        })
        .await
    }

    async fn release_leases_with_prefix(&self, prefix: &str) -> Result<u64> {
        let pat = format!("{}%", prefix.replace('%', "").replace('_', "\\_"));
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE threads SET lease_owner=NULL, lease_expires_at=0 WHERE lease_owner LIKE ?1 ESCAPE '\\'",
                [pat],
            )? as u64)
        })
        .await
    }

    async fn runnable_threads(&self, limit: usize) -> Result<Vec<ThreadId>> {
        self.read(move |c| {
            collect(
                c,
                "SELECT DISTINCT r.thread_id FROM runs r JOIN threads t ON t.id = r.thread_id
                 WHERE r.status IN ('queued','running') AND t.deleted_at IS NULL
                 AND (t.lease_owner IS NULL OR t.lease_expires_at < ?1) LIMIT ?2",
                params![now_micros() / 1000, limit as i64],
                |r| r.get::<_, String>(0),
                parse_id,
            )
        })
        .await
    }

    async fn idempotency_begin(&self, scope: &str, key: &str, fp: &str) -> Result<IdemBegin> {
        let (scope, key, fp) = (scope.to_owned(), key.to_owned(), fp.to_owned());
        self.write(move |c| {
            let now = now_micros();
            // Keys are kept for 24 hours at least; older ones are forgotten lazily.
            c.execute(
                "DELETE FROM idempotency WHERE scope=?1 AND key=?2 AND created_at < ?3",
                params![scope, key, now - 48 * 3600 * 1_000_000],
            )?;
            let row: Option<(String, Option<i64>, Option<Vec<u8>>)> = c
                .query_row(
                    "SELECT fingerprint, status, body FROM idempotency WHERE scope=?1 AND key=?2",
                    params![scope, key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            Ok(match row {
                None => {
                    c.execute(
                        "INSERT INTO idempotency (scope, key, fingerprint, created_at) VALUES (?1,?2,?3,?4)",
                        params![scope, key, fp, now],
                    )?;
                    IdemBegin::Fresh
                }
                Some((f, _, _)) if f != fp => IdemBegin::Mismatch,
                Some((_, Some(status), body)) => {
                    IdemBegin::Replay { status: status as u16, body: body.unwrap_or_default() }
                }
                Some(_) => IdemBegin::InProgress,
            })
        })
        .await
    }

    async fn idempotency_finish(&self, scope: &str, key: &str, status: u16, body: &[u8]) -> Result<()> {
        let (scope, key, body) = (scope.to_owned(), key.to_owned(), body.to_vec());
        self.write(move |c| {
            c.execute(
                "UPDATE idempotency SET status=?3, body=?4 WHERE scope=?1 AND key=?2",
                params![scope, key, status as i64, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn idempotency_abort(&self, scope: &str, key: &str) -> Result<()> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.write(move |c| {
            c.execute("DELETE FROM idempotency WHERE scope=?1 AND key=?2 AND status IS NULL", params![scope, key])?;
            Ok(())
        })
        .await
    }
}
