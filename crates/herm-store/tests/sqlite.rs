//! Runs the store conformance suite against the SQLite store, plus SQLite-specific checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
use herm_store::bus::Bus;
use herm_store::sqlite::SqliteStore;
use std::sync::Arc;
use suite::Fixture;

fn fixture(dir: &tempfile::TempDir) -> Fixture {
    let bus = Bus::new();
    let store = SqliteStore::open(&dir.path().join("herm.db"), bus.clone()).unwrap();
    Fixture { store: Arc::new(store), bus }
}

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            suite::$name(fixture(&dir)).await;
        }
    )*};
}

every_suite_test!(suite_tests);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen_and_wal_full_sync_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let (d, run) = {
        let f = fixture(&dir);
        let d = suite::deployment(f.store.as_ref()).await;
        let run = suite::start_run(f.store.as_ref(), &d.default_thread_id).await;
        (d, run)
    };
    let f = fixture(&dir);
    let log = f.store.thread_events(&d.default_thread_id, 0, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(f.store.get_run(&run).await.unwrap().unwrap().status, herm_types::RunStatus::Running);
    let c = rusqlite::Connection::open(dir.path().join("herm.db")).unwrap();
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

/// A database written by the previous version (schema 1, events with string-typed fields)
/// opens, migrates, and reads back: typed events, revision 1, runs of kind `user`; and it
/// takes new writes (a conditional spec edit, a timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_version_migrates_and_reads() {
    use herm_store::*;
    use herm_types::event::{Confirmation, FileChange, McpState, RequestKind};
    use herm_types::*;
    let dir = tempfile::tempdir().unwrap();
    let c = rusqlite::Connection::open(dir.path().join("herm.db")).unwrap();
    c.execute_batch(include_str!("fixtures/v1.sql")).unwrap();
    drop(c);
    let f = fixture(&dir);
    let dep = DeploymentId::parse("dep_0000000000000000000001").unwrap();
    let d = f.store.get_deployment(&dep).await.unwrap().unwrap();
    assert_eq!((d.revision, d.spec.name.as_str()), (1, "old"));
    let log = f.store.run_log(&d.default_thread_id).await.unwrap();
    assert_eq!(log.len(), 7);
    assert!(matches!(log[2].kind, EventKind::SteeringRequest { kind: RequestKind::Approval, .. }));
    assert!(matches!(log[3].kind, EventKind::SteeringResponse { result: Some(Confirmation::Deny), .. }));
    assert!(matches!(log[4].kind, EventKind::Filesystem { change: FileChange::Created, .. }));
    assert!(matches!(log[5].kind, EventKind::McpStatus { status: McpState::Unavailable, .. }));
    let run = f.store.get_run(&RunId::parse("run_0000000000000000000001").unwrap()).await.unwrap().unwrap();
    assert_eq!((run.kind, run.trigger), (RunKind::User, None));
    assert_eq!(f.store.update_deployment_spec(&dep, &d.spec, 1).await.unwrap(), 2);
    f.store
        .set_timer(NewTimer { key: "k".into(), kind: "t".into(), due_at: now(), payload: serde_json::json!({}) })
        .await
        .unwrap();
    // Memories (migration 4) work on the migrated database.
    let m = f
        .store
        .write_memory(MemoryWrite {
            deployment_id: dep.clone(),
            memory_id: MemoryId::new(),
            path: "facts/a.md".into(),
            content: Some("a".into()),
            source: herm_types::memory::MemorySource::Api,
            run_id: None,
            expected: Expected::Absent,
            file_sha: None,
        })
        .await
        .unwrap();
    assert_eq!(m.version, 1);
    let v: i64 = rusqlite::Connection::open(dir.path().join("herm.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 11);
    // Migration 11 kept every event in a table in commit order, each thread's positions
    // still unique.
    {
        let c = rusqlite::Connection::open(dir.path().join("herm.db")).unwrap();
        let sql: String = c.query_row("SELECT sql FROM sqlite_master WHERE name='events'", [], |r| r.get(0)).unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        let (n, distinct): (i64, i64) =
            c.query_row("SELECT COUNT(*), COUNT(DISTINCT id) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((n, distinct), (7, 7));
        let again = c.execute(
            "INSERT INTO events (thread_id, seq, deployment_id, dseq, id, run_id, type, v, data, created_at)
             SELECT thread_id, seq, deployment_id, 1000, 'evt_again', run_id, type, v, data, created_at
             FROM events LIMIT 1",
            [],
        );
        assert!(again.is_err(), "a thread's position was taken twice");
    }
    // Migration 9 found each thread's active run.
    let (idle, waiting) = (d.default_thread_id.clone(), ThreadId::parse("thr_0000000000000000000002").unwrap());
    assert!(f.store.active_run(&idle).await.unwrap().is_none());
    let active = f.store.active_run(&waiting).await.unwrap().unwrap();
    assert_eq!((active.id.as_str(), active.status), ("run_0000000000000000000003", RunStatus::WaitingOnHuman));
    let end = |want: Option<RunId>| {
        let kind = EventKind::RunStatus {
            status: RunStatus::Completed,
            kind: RunKind::User,
            trigger: None,
            error: None,
            usage: None,
        };
        let mut a = Append::new(waiting.clone(), vec![NewEvent::new(Some(active.id.clone()), kind)]);
        a.conditions = vec![Condition::ActiveRunIs(want)];
        a
    };
    assert!(matches!(f.store.append(end(None)).await, Err(Error::Conflict(_))));
    // Migration 10 dropped migration 7's outbox trigger: the append fills the outbox, once.
    let spec = herm_types::webhook::WebhookSpec {
        url: "http://127.0.0.1:9/hook".into(),
        events: vec![herm_types::webhook::WebhookEvent::RunCompleted],
        secret: SecretId::new(),
        deployment_id: None,
        customer_id: None,
        description: None,
    };
    f.store
        .insert_webhook(herm_types::webhook::Webhook { id: WebhookId::new(), spec, created_at: now() })
        .await
        .unwrap();
    let ended = f.store.append(end(Some(active.id.clone()))).await.unwrap();
    assert!(f.store.active_run(&waiting).await.unwrap().is_none());
    let outbox = f.store.outbox(10).await.unwrap();
    assert_eq!(outbox.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), vec![ended[0].id.clone()]);
    // The tables of the latest migration work on a migrated database.
    f.store
        .put_customer_limits("c", &herm_types::webhook::CustomerLimits { max_daily_cost_usd: Some(1.0) })
        .await
        .unwrap();
    assert_eq!(f.store.list_webhooks().await.unwrap().len(), 1);
    let doc = Document { kind: "agent".into(), id: "a".into(), version: 1, body: serde_json::json!({}) };
    f.store.put_document(doc, History::Keep).await.unwrap();
}

/// Bytes a crash left without a committed record, and temporary files, are removed when the
/// store opens; bytes a record holds stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_files_no_record_holds_are_removed_at_open() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let bytes = b"\x89PNG\r\n\x1a\n kept".to_vec();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let d = {
        let f = fixture(&dir);
        let d = suite::deployment(f.store.as_ref()).await;
        let rec = herm_store::AttachmentRecord {
            deployment_id: d.id.clone(),
            thread_id: Some(d.default_thread_id.clone()),
            reference: herm_types::attachment::Attachment {
                kind: herm_types::attachment::AttachmentKind::Image,
                media_type: "image/png".into(),
                size: bytes.len() as u64,
                sha256: sha.clone(),
                name: None,
                attachment_id: Some(herm_types::AttachmentId::new()),
                url: None,
                width: None,
                height: None,
            },
            created_at: herm_types::now(),
        };
        f.store.put_attachment(rec, bytes.clone()).await.unwrap();
        d
    };
    let blobs = dir.path().join("blobs").join(d.id.to_string());
    let orphan = blobs.join("ab".repeat(32));
    std::fs::write(&orphan, b"never committed").unwrap();
    std::fs::write(blobs.join(format!(".{sha}.123.tmp")), b"half written").unwrap();
    let f = fixture(&dir);
    assert!(!orphan.exists());
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 1);
    assert_eq!(f.store.blob(&d.id, &sha).await.unwrap(), Some(bytes));
}

/// Usage, a thread's log, a deployment's log and an event by id are each read through an
/// index, not by scanning the events.
#[test]
fn event_reads_go_through_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let _f = fixture(&dir);
    let c = rusqlite::Connection::open(dir.path().join("herm.db")).unwrap();
    let plan = |sql: &str| -> String {
        c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let cases = [
        (
            "SELECT COUNT(*) FROM events WHERE deployment_id='d'
             AND type IN ('model_call', 'compaction') AND created_at >= 1 AND created_at < 2",
            "events_usage",
        ),
        ("SELECT data FROM events WHERE thread_id='t' AND seq > 3 ORDER BY seq LIMIT 10", "events_thread"),
        ("SELECT data FROM events WHERE deployment_id='d' AND dseq > 3 ORDER BY dseq LIMIT 10", "events_deployment"),
        ("SELECT data FROM events WHERE id='e'", "sqlite_autoindex_events_1"),
    ];
    for (sql, index) in cases {
        let p = plan(sql);
        assert!(p.contains(index) && !p.contains("TEMP B-TREE"), "{sql}: {p}");
    }
}

/// The SQLite store knows each thread's end without reading once an append to it committed
/// (a worker then skips its fold's read): exact after appends, unknown after a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_knows_where_a_thread_ends_after_its_appends() {
    use herm_store::*;
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(&dir);
    let d = suite::deployment(f.store.as_ref()).await;
    let t = d.default_thread_id.clone();
    assert_eq!(f.store.thread_head(&t), None, "nothing appended through this store yet");
    let run = suite::start_run(f.store.as_ref(), &t).await;
    assert_eq!(f.store.thread_head(&t), Some(2));
    let mut a = Append::new(t.clone(), vec![suite::user(&run, "x")]);
    a.conditions.push(Condition::LastSequenceIs(1));
    assert!(f.store.append(a).await.is_err());
    assert_eq!(f.store.thread_head(&t), Some(2), "a refused append moves nothing");
    f.store.append(Append::new(t.clone(), vec![suite::user(&run, "y"), suite::user(&run, "z")])).await.unwrap();
    assert_eq!(f.store.thread_head(&t), Some(4));
    assert!(f.store.delete_thread(&t).await.unwrap());
    assert_eq!(f.store.thread_head(&t), None);
}
