//! SQLite schema and migrations, applied in order and tracked with `PRAGMA user_version`.
//!
//! Timestamps are INTEGER microseconds since the Unix epoch; JSON documents are TEXT.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE secrets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE TABLE providers (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    spec TEXT NOT NULL,
    default_thread_id TEXT NOT NULL,
    next_dseq INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deployments_customer ON deployments(customer_id, id);
CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    title TEXT,
    status TEXT NOT NULL DEFAULT 'idle',
    message_count INTEGER NOT NULL DEFAULT 0,
    next_seq INTEGER NOT NULL DEFAULT 1,
    lease_owner TEXT,
    lease_epoch INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX threads_deployment ON threads(deployment_id, id);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads(id),
    deployment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    steps INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    error TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX runs_thread_status ON runs(thread_id, status, id);
CREATE INDEX runs_status ON runs(status);
CREATE TABLE events (
    thread_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deployment_id TEXT NOT NULL,
    dseq INTEGER NOT NULL,
    id TEXT NOT NULL UNIQUE,
    run_id TEXT,
    type TEXT NOT NULL,
    v INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (thread_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX events_deployment ON events(deployment_id, dseq);
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
"#,
    r#"
ALTER TABLE deployments ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
ALTER TABLE runs ADD COLUMN trigger TEXT;
CREATE INDEX runs_deployment_started ON runs(deployment_id, started_at);
CREATE TABLE timers (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    payload TEXT NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claim_expires_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX timers_due ON timers(due_at);
"#,
    r#"
CREATE TABLE automations (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    paused_reason TEXT,
    token_hash TEXT,
    revision INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX automations_deployment ON automations(deployment_id, id);
CREATE TABLE automation_firings (
    automation_id TEXT NOT NULL,
    key TEXT NOT NULL,
    slot_at INTEGER,
    source TEXT NOT NULL,
    skipped INTEGER NOT NULL,
    run_id TEXT,
    thread_id TEXT,
    reason TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (automation_id, key)
);
CREATE INDEX automation_firings_recent ON automation_firings(automation_id, created_at);
CREATE TABLE once_keys (
    key TEXT PRIMARY KEY,
    run_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE goals (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX goals_deployment ON goals(deployment_id, id);
CREATE INDEX runs_goal ON runs(json_extract(trigger, '$.goal_id')) WHERE kind = 'goal';
"#,
    // 4: memories and their versions, dreams, marks.
    r#"
CREATE TABLE memories (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    path TEXT NOT NULL,
    content TEXT,
    source TEXT NOT NULL,
    version INTEGER NOT NULL,
    file_sha TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX memories_path ON memories(deployment_id, path) WHERE content IS NOT NULL;
CREATE INDEX memories_deployment ON memories(deployment_id, id);
CREATE TABLE memory_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    operation TEXT NOT NULL,
    path TEXT NOT NULL,
    content TEXT,
    source TEXT NOT NULL,
    run_id TEXT,
    created_at INTEGER NOT NULL,
    redacted_at INTEGER,
    UNIQUE (memory_id, version)
);
CREATE INDEX memory_versions_run ON memory_versions(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX memory_versions_deployment ON memory_versions(deployment_id, seq);
CREATE TABLE dreams (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX dreams_deployment ON dreams(deployment_id, id);
CREATE INDEX runs_dream ON runs(json_extract(trigger, '$.dream_id')) WHERE kind = 'dream';
CREATE TABLE marks (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    // 5: attachments; their bytes are files under the data directory's `blobs/`.
    r#"
CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    thread_id TEXT,
    reference TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX attachments_blob ON attachments(deployment_id, sha256);
CREATE INDEX attachments_thread ON attachments(thread_id) WHERE thread_id IS NOT NULL;
"#,
    // 6: usage reads a deployment's model calls and compaction summaries by time, without
    // scanning its other events; no other event pays for this index.
    r#"
CREATE INDEX events_usage ON events(deployment_id, created_at) WHERE type IN ('model_call', 'compaction');
"#,
    // 7: customer budgets; outbound webhooks, their outbox (filled in the append's
    // transaction while any webhook exists, so no event a webhook wants is lost to a crash)
    // and their deliveries.
    r#"
CREATE TABLE customer_limits (
    customer_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE webhook_outbox (
    event_id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TRIGGER events_webhook_outbox AFTER INSERT ON events
WHEN NEW.type IN ('run_status', 'budget', 'automation_status') AND EXISTS (SELECT 1 FROM webhooks)
BEGIN
    INSERT INTO webhook_outbox (event_id, created_at) VALUES (NEW.id, NEW.created_at);
END;
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    payload TEXT NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries(webhook_id, id);
"#,
    // 8: facade documents (the Claude Managed Agents API's agents, environments, vaults,
    // sessions), one row per version, the latest marked.
    r#"
CREATE TABLE documents (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    latest INTEGER NOT NULL,
    PRIMARY KEY (kind, id, version)
);
CREATE INDEX documents_latest ON documents(kind, id) WHERE latest = 1;
"#,
    // 9: a thread's active run (its oldest run not yet ended), kept on its row by the
    // append that changes a run's status: an append conditioned on it reads the row it
    // reads anyway instead of searching the thread's runs.
    r#"
ALTER TABLE threads ADD COLUMN active_run TEXT;
UPDATE threads SET active_run = (
    SELECT id FROM runs WHERE thread_id = threads.id AND status IN ('queued','running','waiting_on_human')
    ORDER BY id LIMIT 1
) WHERE deleted_at IS NULL;
"#,
    // 10: the append fills the webhook outbox itself, in the same transaction and on the same
    // condition: the trigger ran a sub-program for every event inserted, and built a
    // temporary table for its list of types each time.
    r#"
DROP TRIGGER IF EXISTS events_webhook_outbox;
"#,
    // 11: events stored in the order they commit (a rowid table) instead of clustered by
    // thread (a table keyed by thread and position). Clustered, every append wrote into the
    // middle of the table: with many threads running, each job of a group commit dirtied
    // (and often split) a page of its own, most of a page's bytes rewritten for an event of a
    // few hundred. Now the events of a commit fill the table's last pages, and the thread's
    // order is a narrow index. Existing events are copied in their stored order (no sort).
    r#"
CREATE TABLE events_v11 (
    thread_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deployment_id TEXT NOT NULL,
    dseq INTEGER NOT NULL,
    id TEXT NOT NULL UNIQUE,
    run_id TEXT,
    type TEXT NOT NULL,
    v INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO events_v11 (thread_id, seq, deployment_id, dseq, id, run_id, type, v, data, created_at)
    SELECT thread_id, seq, deployment_id, dseq, id, run_id, type, v, data, created_at FROM events;
DROP TABLE events;
ALTER TABLE events_v11 RENAME TO events;
CREATE UNIQUE INDEX events_thread ON events(thread_id, seq);
CREATE UNIQUE INDEX events_deployment ON events(deployment_id, dseq);
CREATE INDEX events_usage ON events(deployment_id, created_at) WHERE type IN ('model_call', 'compaction');
"#,
];

/// Per-connection settings: WAL, `synchronous=FULL` (a commit is on disk when it returns).
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=FULL;
         PRAGMA foreign_keys=ON;
         PRAGMA busy_timeout=5000;
         PRAGMA secure_delete=ON;",
    )?;
    tune(conn)?;
    // Memory-mapped pages for the writer: no other connection changes what it reads, so its
    // mapping stays valid (only the file's growth remaps it).
    conn.execute_batch("PRAGMA mmap_size=268435456;")
}

/// Prepared statements each connection keeps (every distinct statement the store runs fits).
const STATEMENT_CACHE: usize = 512;

/// Settings for every connection, readers included.
pub(crate) fn tune(conn: &Connection) -> rusqlite::Result<()> {
    // Savepoint sub-journals (one per job in a group commit) stay in memory, not a temp file.
    conn.execute_batch("PRAGMA temp_store=MEMORY;")?;
    // A 64 MiB page cache. Readers map no pages: a read transaction that finds the journal
    // changed since its connection's last one unmaps the whole file, and with appends every
    // few hundred microseconds that was nearly every read, each unmap interrupting every CPU
    // to flush its TLB (in a virtual machine, an exit each).
    conn.execute_batch("PRAGMA cache_size=-65536; PRAGMA mmap_size=0;")?;
    // Without the planner stability guarantee, a build with STAT4 re-prepares a cached
    // statement whenever a bound value changes: every step paid a full parse.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // The default cache holds 16 statements; one append alone runs about as many, so the
    // writer (which also renews leases, claims timers…) re-parsed statements on every step.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current >= MIGRATIONS.len() as i64 {
        return Ok(());
    }
    // A migration that rebuilds a table builds its indexes by sorting every row's key: in
    // temporary files, not in memory (`tune` keeps them in memory for savepoints), so a
    // large database does not need its indexes' size in RAM to upgrade.
    let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0))?;
    conn.pragma_update(None, "temp_store", "FILE")?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    conn.pragma_update(None, "temp_store", temp_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrating leaves the connection as configured (temporary storage in memory again) and
    /// at the latest version; opening a migrated database changes nothing.
    #[test]
    fn migrating_keeps_the_connection_settings() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let mut conn = Connection::open(dir.path().join("herm.db")).unwrap();
            configure(&conn).unwrap();
            migrate(&mut conn).unwrap();
            let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0)).unwrap();
            assert_eq!(temp_store, 2, "MEMORY");
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            assert_eq!(version, MIGRATIONS.len() as i64);
        }
    }
}
