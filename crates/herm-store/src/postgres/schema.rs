//! The PostgreSQL schema, the same tables as SQLite's (timestamps as BIGINT microseconds,
//! JSON as TEXT; every text in the "C" collation, so ids order byte by byte as
//! in SQLite, whatever the database's locale), with attachments' bytes in the database (every node reads them) and the
//! webhook outbox filled by a trigger. Migrations are applied once, under an advisory lock,
//! and recorded in `herm_migrations`.

use crate::Result;

/// The advisory lock key that serialises migrations between nodes starting together.
const MIGRATION_LOCK: i64 = 0x6865_726d_0001;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY, name TEXT COLLATE "C" NOT NULL, hash TEXT COLLATE "C" NOT NULL UNIQUE, scopes TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL, revoked_at BIGINT
);
CREATE TABLE secrets (
    id TEXT COLLATE "C" PRIMARY KEY, name TEXT COLLATE "C" NOT NULL, description TEXT COLLATE "C", nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL, created_at BIGINT NOT NULL, deleted_at BIGINT
);
CREATE TABLE providers (name TEXT COLLATE "C" PRIMARY KEY, spec TEXT COLLATE "C" NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE deployments (
    id TEXT COLLATE "C" PRIMARY KEY, customer_id TEXT COLLATE "C" NOT NULL, status TEXT COLLATE "C" NOT NULL, error TEXT COLLATE "C",
    spec TEXT COLLATE "C" NOT NULL, default_thread_id TEXT COLLATE "C" NOT NULL, next_dseq BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, revision BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX deployments_customer ON deployments(customer_id, id);
CREATE TABLE threads (
    id TEXT COLLATE "C" PRIMARY KEY, deployment_id TEXT COLLATE "C" NOT NULL REFERENCES deployments(id), title TEXT COLLATE "C",
    status TEXT COLLATE "C" NOT NULL DEFAULT 'idle', message_count BIGINT NOT NULL DEFAULT 0,
    next_seq BIGINT NOT NULL DEFAULT 1, lease_owner TEXT COLLATE "C", lease_epoch BIGINT NOT NULL DEFAULT 0,
    lease_expires_at BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL, deleted_at BIGINT
);
CREATE INDEX threads_deployment ON threads(deployment_id, id);
CREATE TABLE runs (
    id TEXT COLLATE "C" PRIMARY KEY, thread_id TEXT COLLATE "C" NOT NULL REFERENCES threads(id), deployment_id TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL, steps BIGINT NOT NULL DEFAULT 0, input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0, cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0, error TEXT COLLATE "C",
    started_at BIGINT NOT NULL, ended_at BIGINT, kind TEXT COLLATE "C" NOT NULL DEFAULT 'user', trigger TEXT COLLATE "C"
);
CREATE INDEX runs_thread_status ON runs(thread_id, status, id);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_deployment_started ON runs(deployment_id, started_at);
CREATE INDEX runs_goal ON runs(((trigger::jsonb)->>'goal_id')) WHERE kind = 'goal';
CREATE INDEX runs_dream ON runs(((trigger::jsonb)->>'dream_id')) WHERE kind = 'dream';
CREATE TABLE events (
    thread_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, deployment_id TEXT COLLATE "C" NOT NULL, dseq BIGINT NOT NULL,
    id TEXT COLLATE "C" NOT NULL UNIQUE, run_id TEXT COLLATE "C", type TEXT COLLATE "C" NOT NULL, v BIGINT NOT NULL, data TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL, PRIMARY KEY (thread_id, seq)
);
CREATE UNIQUE INDEX events_deployment ON events(deployment_id, dseq);
CREATE INDEX events_usage ON events(deployment_id, created_at) WHERE type IN ('model_call', 'compaction');
CREATE TABLE idempotency (
    scope TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, fingerprint TEXT COLLATE "C" NOT NULL, status BIGINT, body BYTEA,
    created_at BIGINT NOT NULL, PRIMARY KEY (scope, key)
);
CREATE TABLE timers (
    key TEXT COLLATE "C" PRIMARY KEY, kind TEXT COLLATE "C" NOT NULL, due_at BIGINT NOT NULL, payload TEXT COLLATE "C" NOT NULL,
    epoch BIGINT NOT NULL DEFAULT 0, claimed_by TEXT COLLATE "C", claim_expires_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX timers_due ON timers(due_at);
CREATE TABLE automations (
    id TEXT COLLATE "C" PRIMARY KEY, deployment_id TEXT COLLATE "C" NOT NULL, spec TEXT COLLATE "C" NOT NULL, enabled BOOLEAN NOT NULL,
    paused_reason TEXT COLLATE "C", token_hash TEXT COLLATE "C", revision BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE INDEX automations_deployment ON automations(deployment_id, id);
CREATE TABLE automation_firings (
    automation_id TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, slot_at BIGINT, source TEXT COLLATE "C" NOT NULL,
    skipped BOOLEAN NOT NULL, run_id TEXT COLLATE "C", thread_id TEXT COLLATE "C", reason TEXT COLLATE "C", created_at BIGINT NOT NULL,
    PRIMARY KEY (automation_id, key)
);
CREATE INDEX automation_firings_recent ON automation_firings(automation_id, created_at);
CREATE TABLE once_keys (key TEXT COLLATE "C" PRIMARY KEY, run_id TEXT COLLATE "C", created_at BIGINT NOT NULL);
CREATE TABLE goals (
    id TEXT COLLATE "C" PRIMARY KEY, deployment_id TEXT COLLATE "C" NOT NULL, thread_id TEXT COLLATE "C" NOT NULL, spec TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL, state TEXT COLLATE "C" NOT NULL, revision BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE INDEX goals_deployment ON goals(deployment_id, id);
CREATE TABLE memories (
    id TEXT COLLATE "C" PRIMARY KEY, deployment_id TEXT COLLATE "C" NOT NULL, path TEXT COLLATE "C" NOT NULL, content TEXT COLLATE "C",
    source TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, file_sha TEXT COLLATE "C", created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX memories_path ON memories(deployment_id, path) WHERE content IS NOT NULL;
CREATE INDEX memories_deployment ON memories(deployment_id, id);
CREATE TABLE memory_versions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, memory_id TEXT COLLATE "C" NOT NULL,
    deployment_id TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, operation TEXT COLLATE "C" NOT NULL, path TEXT COLLATE "C" NOT NULL,
    content TEXT COLLATE "C", source TEXT COLLATE "C" NOT NULL, run_id TEXT COLLATE "C", created_at BIGINT NOT NULL, redacted_at BIGINT,
    UNIQUE (memory_id, version)
);
CREATE INDEX memory_versions_run ON memory_versions(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX memory_versions_deployment ON memory_versions(deployment_id, seq);
CREATE TABLE dreams (id TEXT COLLATE "C" PRIMARY KEY, deployment_id TEXT COLLATE "C" NOT NULL, reason TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX dreams_deployment ON dreams(deployment_id, id);
CREATE TABLE marks (key TEXT COLLATE "C" PRIMARY KEY, value TEXT COLLATE "C" NOT NULL);
CREATE TABLE attachments (
    id TEXT COLLATE "C" PRIMARY KEY, deployment_id TEXT COLLATE "C" NOT NULL, thread_id TEXT COLLATE "C", reference TEXT COLLATE "C" NOT NULL,
    sha256 TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL
);
CREATE INDEX attachments_blob ON attachments(deployment_id, sha256);
CREATE INDEX attachments_thread ON attachments(thread_id) WHERE thread_id IS NOT NULL;
CREATE TABLE blobs (deployment_id TEXT COLLATE "C" NOT NULL, sha256 TEXT COLLATE "C" NOT NULL, bytes BYTEA NOT NULL, PRIMARY KEY (deployment_id, sha256));
CREATE TABLE customer_limits (customer_id TEXT COLLATE "C" PRIMARY KEY, spec TEXT COLLATE "C" NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE webhooks (id TEXT COLLATE "C" PRIMARY KEY, spec TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE webhook_outbox (event_id TEXT COLLATE "C" PRIMARY KEY, created_at BIGINT NOT NULL);
CREATE FUNCTION herm_webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks) THEN
        INSERT INTO webhook_outbox (event_id, created_at) VALUES (NEW.id, NEW.created_at);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER events_webhook_outbox AFTER INSERT ON events FOR EACH ROW
WHEN (NEW.type IN ('run_status', 'budget', 'automation_status')) EXECUTE FUNCTION herm_webhook_outbox();
CREATE TABLE webhook_deliveries (
    id TEXT COLLATE "C" PRIMARY KEY, webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id TEXT COLLATE "C" NOT NULL, event TEXT COLLATE "C" NOT NULL, status TEXT COLLATE "C" NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT, last_status BIGINT, last_error TEXT COLLATE "C", created_at BIGINT NOT NULL,
    delivered_at BIGINT, payload TEXT COLLATE "C" NOT NULL, UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries(webhook_id, id);
CREATE TABLE documents (
    kind TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, body TEXT COLLATE "C" NOT NULL,
    latest BOOLEAN NOT NULL, PRIMARY KEY (kind, id, version)
);
CREATE INDEX documents_latest ON documents(kind, id) WHERE latest;
CREATE TABLE nodes (
    node_id TEXT COLLATE "C" PRIMARY KEY, incarnation TEXT COLLATE "C" NOT NULL, heartbeat_at BIGINT NOT NULL, started_at BIGINT NOT NULL
);
CREATE TABLE vault_check (id INT PRIMARY KEY, nonce BYTEA NOT NULL, ciphertext BYTEA NOT NULL);
"#];

pub(super) async fn migrate(c: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    // (Checked rather than `IF NOT EXISTS`, whose notice every later start would log.)
    let fresh: bool = tx.query_one("SELECT to_regclass('herm_migrations') IS NULL", &[]).await?.try_get(0)?;
    if fresh {
        tx.batch_execute(
            "CREATE TABLE herm_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    }
    let current: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM herm_migrations", &[]).await?.try_get(0)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO herm_migrations (version) VALUES ($1)", &[&((i + 1) as i64)]).await?;
    }
    tx.commit().await?;
    Ok(())
}
