//! The store conformance suite, generic over `Arc<dyn Store>`: every implementation
//! (SQLite now, PostgreSQL next) must pass it unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use herm_store::bus::Bus;
use herm_store::*;
use herm_types::config::DeploymentSpec;
use herm_types::event::{LiveFrame, Role};
use herm_types::*;
use std::sync::Arc;
use std::time::Duration;

/// Calls `$m!` with the name of every conformance test: each store's test file runs them all.
#[macro_export]
macro_rules! every_suite_test {
    ($m:ident) => {
        $m!(
            sequences_are_contiguous_and_published_in_commit_order,
            conditions_refuse_atomically,
            projections_follow_the_log,
            leases_fence_stale_writers,
            idempotency_keys,
            deleting_a_deployment_stops_its_runs,
            secrets_keys_and_providers,
            spec_updates_are_conditional_on_the_revision,
            timers_fire_once_per_claim,
            memories_change_conditionally_and_purge_completely,
            run_kinds_and_costs,
            proactive_records_fire_once_and_change_conditionally,
            attachments_are_stored_once_and_leave_with_their_thread,
            webhooks_keep_an_outbox_and_record_attempts_once,
            documents_are_versioned_and_conditional,
        );
    };
}

pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub bus: Bus,
}

pub async fn deployment(store: &dyn Store) -> DeploymentRecord {
    let spec: DeploymentSpec =
        serde_json::from_value(serde_json::json!({"customer_id": "c", "name": "n", "system_prompt": "s"})).unwrap();
    let d = DeploymentRecord {
        id: DeploymentId::new(),
        status: DeploymentStatus::Ready,
        error: None,
        spec,
        default_thread_id: ThreadId::new(),
        created_at: now(),
        updated_at: now(),
        revision: 1,
    };
    store.create_deployment(d.clone()).await.unwrap();
    d
}

pub fn user(run: &RunId, text: &str) -> NewEvent {
    NewEvent::new(Some(run.clone()), EventKind::Message { role: Role::User, content: text.into(), attachments: vec![] })
}

pub fn status(run: &RunId, s: RunStatus) -> NewEvent {
    NewEvent::new(
        Some(run.clone()),
        EventKind::RunStatus { status: s, kind: RunKind::User, trigger: None, error: None, usage: None },
    )
}

pub async fn start_run(store: &dyn Store, thread: &ThreadId) -> RunId {
    let run = RunId::new();
    let mut a = Append::new(thread.clone(), vec![user(&run, "hi"), status(&run, RunStatus::Running)]);
    a.new_run = Some(NewRun::user(run.clone(), RunStatus::Running));
    store.append(a).await.unwrap();
    run
}

pub async fn sequences_are_contiguous_and_published_in_commit_order(f: Fixture) {
    let d = deployment(f.store.as_ref()).await;
    let mut threads = vec![d.default_thread_id.clone()];
    for _ in 0..3 {
        let t = ThreadId::new();
        f.store.create_thread(NewThread { id: t.clone(), deployment_id: d.id.clone(), title: None }).await.unwrap();
        threads.push(t);
    }
    let mut sub = f.bus.subscribe(&d.id);
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let (s, t) = (f.store.clone(), threads[i % 4].clone());
        tasks.push(tokio::spawn(async move {
            let ev = || NewEvent::new(None, EventKind::Steer { message: format!("m{i}") });
            s.append(Append::new(t, vec![ev(), ev()])).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The bus saw every event once, in deployment-sequence order with no gap.
    let mut seen = Vec::new();
    while seen.len() < 400 {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.unwrap().unwrap() {
            LiveFrame::Committed(e) => seen.push(e.deployment_sequence.0),
            LiveFrame::Ephemeral(_) => {}
        }
    }
    assert_eq!(seen, (1..=400).collect::<Vec<i64>>());
    // Each thread's log is contiguous from 1; the deployment's is too. A head the store
    // knows without reading is the log's end, whatever order the appends committed in.
    for t in &threads {
        let log = f.store.thread_events(t, 0, 1000).await.unwrap();
        assert_eq!(log.iter().map(|e| e.sequence.0).collect::<Vec<_>>(), (1..=100).collect::<Vec<i64>>());
        assert!(matches!(f.store.thread_head(t), None | Some(100)), "head {:?}", f.store.thread_head(t));
    }
    let all = f.store.deployment_events(&d.id, 0, 1000, &EventFilter::default()).await.unwrap();
    assert_eq!(all.len(), 400);
    let page = f.store.deployment_events(&d.id, 390, 5, &EventFilter::default()).await.unwrap();
    assert_eq!(page.iter().map(|e| e.deployment_sequence.0).collect::<Vec<_>>(), vec![391, 392, 393, 394, 395]);
    let only = f
        .store
        .deployment_events(&d.id, 0, 1000, &EventFilter { thread_id: Some(threads[1].clone()), run_id: None })
        .await
        .unwrap();
    assert_eq!(only.len(), 100);
}

pub async fn conditions_refuse_atomically(f: Fixture) {
    let d = deployment(f.store.as_ref()).await;
    let t = d.default_thread_id.clone();
    let run = start_run(f.store.as_ref(), &t).await;
    // Another run may not start while one is active.
    let other = RunId::new();
    let mut a = Append::new(t.clone(), vec![user(&other, "x"), status(&other, RunStatus::Running)]);
    a.new_run = Some(NewRun::user(other.clone(), RunStatus::Running));
    a.conditions.push(Condition::ActiveRunIs(None));
    assert!(matches!(f.store.append(a).await, Err(Error::Conflict(_))));
    assert!(f.store.get_run(&other).await.unwrap().is_none(), "a refused append creates nothing");
    assert_eq!(f.store.thread_events(&t, 0, 100).await.unwrap().len(), 2);
    let mut a = Append::new(t.clone(), vec![user(&run, "y")]);
    a.conditions.push(Condition::LastSequenceIs(1));
    assert!(matches!(f.store.append(a).await, Err(Error::Conflict(_))));
    let mut a = Append::new(t.clone(), vec![user(&run, "y")]);
    a.conditions = vec![Condition::LastSequenceIs(2), Condition::ActiveRunIs(Some(run.clone()))];
    f.store.append(a).await.unwrap();
    // Ephemeral kinds are never written.
    let a = Append::new(t.clone(), vec![NewEvent::new(None, EventKind::Token { delta: "x".into(), message_id: None })]);
    assert!(f.store.append(a).await.is_err());
    // An append failing after it wrote (its run created, its second event's id taken) leaves
    // nothing behind, and the next append finds the thread as it was.
    let taken = f.store.thread_events(&t, 0, 100).await.unwrap()[0].id.clone();
    let other = RunId::new();
    let mut dup = user(&other, "w");
    dup.id = taken;
    let mut a = Append::new(t.clone(), vec![user(&other, "v"), dup]);
    a.new_run = Some(NewRun::user(other.clone(), RunStatus::Queued));
    assert!(f.store.append(a).await.is_err());
    assert!(f.store.get_run(&other).await.unwrap().is_none(), "a failed append creates no run");
    assert_eq!(f.store.thread_events(&t, 0, 100).await.unwrap().len(), 3);
    assert!(matches!(f.store.thread_head(&t), None | Some(3)));
    let next = f.store.append(Append::new(t.clone(), vec![user(&run, "u")])).await.unwrap();
    assert_eq!(next[0].sequence.0, 4);
    // Unknown thread.
    assert!(matches!(f.store.append(Append::new(ThreadId::new(), vec![user(&run, "z")])).await, Err(Error::NotFound)));
}

pub async fn projections_follow_the_log(f: Fixture) {
    let d = deployment(f.store.as_ref()).await;
    let t = d.default_thread_id.clone();
    let run = start_run(f.store.as_ref(), &t).await;
    let th = f.store.get_thread(&t).await.unwrap().unwrap();
    assert_eq!((th.status, th.message_count, th.last_sequence), (ThreadStatus::Running, 1, 2));
    let mc = || {
        NewEvent::new(
            Some(run.clone()),
            EventKind::ModelCall {
                model: "p/m".into(),
                input_tokens: 10,
                output_tokens: 4,
                cost_usd: 0.25,
                duration_ms: 1,
                tool_calls: vec![],
                stop_reason: None,
                context_sequence: None,
                estimated: false,
            },
        )
    };
    f.store.append(Append::new(t.clone(), vec![mc(), mc()])).await.unwrap();
    assert_eq!(f.store.active_run(&t).await.unwrap().unwrap().id, run);
    f.store.append(Append::new(t.clone(), vec![status(&run, RunStatus::Completed)])).await.unwrap();
    let r = f.store.get_run(&run).await.unwrap().unwrap();
    assert_eq!((r.status, r.steps, r.usage.input_tokens, r.usage.output_tokens), (RunStatus::Completed, 2, 20, 8));
    assert!((r.usage.cost_usd - 0.5).abs() < 1e-12);
    assert!(r.ended_at.is_some());
    assert!(f.store.active_run(&t).await.unwrap().is_none());
    assert_eq!(f.store.get_thread(&t).await.unwrap().unwrap().status, ThreadStatus::Idle);
}

pub async fn leases_fence_stale_writers(f: Fixture) {
    let d = deployment(f.store.as_ref()).await;
    let t = d.default_thread_id.clone();
    let run = start_run(f.store.as_ref(), &t).await;
    assert_eq!(f.store.runnable_threads(10).await.unwrap(), vec![t.clone()]);
    let a = f.store.acquire_lease(&t, "node-a:1", 60_000).await.unwrap().unwrap();
    assert!(f.store.runnable_threads(10).await.unwrap().is_empty(), "a leased thread is not runnable");
    assert!(f.store.acquire_lease(&t, "node-b:1", 60_000).await.unwrap().is_none());
    let mut ap = Append::new(t.clone(), vec![user(&run, "from a")]);
    ap.lease = Some(a.clone());
    f.store.append(ap).await.unwrap();
    assert!(f.store.renew_lease(&a, 60_000).await.unwrap());
    // A node restart frees its own leases; a new holder fences the old epoch out.
    assert_eq!(f.store.release_leases_with_prefix("node-a:").await.unwrap(), 1);
    let b = f.store.acquire_lease(&t, "node-b:1", 60_000).await.unwrap().unwrap();
    assert!(b.epoch > a.epoch);
    let mut stale = Append::new(t.clone(), vec![user(&run, "stale")]);
    stale.lease = Some(a.clone());
    assert!(matches!(f.store.append(stale).await, Err(Error::LeaseLost)));
    assert!(!f.store.renew_lease(&a, 60_000).await.unwrap());
    f.store.release_lease(&b).await.unwrap();
    // Expiry: a short lease lapses and another owner takes over.
    let c = f.store.acquire_lease(&t, "node-c:1", 30).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(f.store.runnable_threads(10).await.unwrap(), vec![t.clone()]);
    let e = f.store.acquire_lease(&t, "node-e:1", 60_000).await.unwrap().unwrap();
    assert!(e.epoch > c.epoch);
    let mut late = Append::new(t.clone(), vec![user(&run, "late")]);
    late.lease = Some(c);
    assert!(matches!(f.store.append(late).await, Err(Error::LeaseLost)));
}

pub async fn idempotency_keys(f: Fixture) {
    assert_eq!(f.store.idempotency_begin("k1:r", "a", "fp1").await.unwrap(), IdemBegin::Fresh);
    assert_eq!(f.store.idempotency_begin("k1:r", "a", "fp1").await.unwrap(), IdemBegin::InProgress);
    f.store.idempotency_finish("k1:r", "a", 201, b"{}").await.unwrap();
    assert_eq!(
        f.store.idempotency_begin("k1:r", "a", "fp1").await.unwrap(),
        IdemBegin::Replay { status: 201, body: b"{}".to_vec() }
    );
    assert_eq!(f.store.idempotency_begin("k1:r", "a", "fp2").await.unwrap(), IdemBegin::Mismatch);
    assert_eq!(f.store.idempotency_begin("k2:r", "a", "fp2").await.unwrap(), IdemBegin::Fresh, "keys are scoped");
    f.store.idempotency_abort("k2:r", "a").await.unwrap();
    assert_eq!(f.store.idempotency_begin("k2:r", "a", "fp3").await.unwrap(), IdemBegin::Fresh);
}

pub async fn deleting_a_deployment_stops_its_runs(f: Fixture) {
    let d = deployment(f.store.as_ref()).await;
    let t = d.default_thread_id.clone();
    let run = start_run(f.store.as_ref(), &t).await;
    f.store.set_deployment_status(&d.id, DeploymentStatus::Deleted, None).await.unwrap();
    assert!(f.store.get_deployment(&d.id).await.unwrap().is_none());
    assert_eq!(f.store.get_run(&run).await.unwrap().unwrap().status, RunStatus::Interrupted);
    assert!(f.store.runnable_threads(10).await.unwrap().is_empty());
    assert!(matches!(f.store.append(Append::new(t, vec![user(&run, "x")])).await, Err(Error::NotFound)));
}

pub async fn secrets_keys_and_providers(f: Fixture) {
    let s = SecretRecord {
        id: SecretId::new(),
        name: "A".into(),
        description: None,
        nonce: vec![1; 24],
        ciphertext: vec![2; 40],
        created_at: now(),
    };
    f.store.insert_secret(s.clone()).await.unwrap();
    assert_eq!(f.store.get_secret(&s.id).await.unwrap().unwrap().ciphertext, vec![2; 40]);
    assert!(f.store.delete_secret(&s.id).await.unwrap());
    assert!(f.store.get_secret(&s.id).await.unwrap().is_none());
    assert!(!f.store.delete_secret(&s.id).await.unwrap());
    let k = ApiKeyRecord {
        id: ApiKeyId::new(),
        name: "k".into(),
        hash: "h1".into(),
        scopes: vec!["admin".into()],
        created_at: now(),
        revoked_at: None,
    };
    f.store.insert_api_key(k.clone()).await.unwrap();
    assert!(f.store.api_key_by_hash("h1").await.unwrap().unwrap().revoked_at.is_none());
    // The only admin key cannot be revoked; with a second one it can, and then not the second.
    assert_eq!(f.store.revoke_api_key(&k.id).await.unwrap(), Revocation::LastAdmin);
    let k2 = ApiKeyRecord { id: ApiKeyId::new(), hash: "h2".into(), ..k.clone() };
    f.store.insert_api_key(k2.clone()).await.unwrap();
    assert_eq!(f.store.revoke_api_key(&k.id).await.unwrap(), Revocation::Revoked);
    assert!(f.store.api_key_by_hash("h1").await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(f.store.revoke_api_key(&k.id).await.unwrap(), Revocation::NotFound);
    assert_eq!(f.store.revoke_api_key(&k2.id).await.unwrap(), Revocation::LastAdmin);
    // Ensuring a revoked key's hash brings it back (an operator's HERM_ADMIN_KEY after a lockout).
    f.store.ensure_api_key(ApiKeyRecord { id: ApiKeyId::new(), ..k.clone() }).await.unwrap();
    assert!(f.store.api_key_by_hash("h1").await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(f.store.list_api_keys().await.unwrap().len(), 2);
    let p: herm_types::config::ProviderSpec = serde_json::from_value(serde_json::json!({"kind": "anthropic"})).unwrap();
    f.store.put_provider("a", &p).await.unwrap();
    f.store.put_provider("a", &p).await.unwrap();
    assert_eq!(f.store.list_providers().await.unwrap().len(), 1);
    assert!(f.store.delete_provider("a").await.unwrap());
}

pub async fn spec_updates_are_conditional_on_the_revision(f: Fixture) {
    let d = deployment(f.store.as_ref()).await;
    let got = f.store.get_deployment(&d.id).await.unwrap().unwrap();
    assert_eq!(got.revision, 1);
    let mut spec = got.spec.clone();
    spec.name = "first".into();
    assert_eq!(f.store.update_deployment_spec(&d.id, &spec, 1).await.unwrap(), 2);
    spec.name = "stale".into();
    assert!(matches!(f.store.update_deployment_spec(&d.id, &spec, 1).await, Err(Error::Stale)));
    assert_eq!(f.store.get_deployment(&d.id).await.unwrap().unwrap().spec.name, "first");
    // Many writers racing from the same revision: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, id, mut spec) = (f.store.clone(), d.id.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            spec.name = format!("w{i}");
            store.update_deployment_spec(&id, &spec, 2).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r, 3);
                won += 1;
            }
            Err(Error::Stale) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    // A delete names the revision it saw, too.
    assert!(matches!(f.store.delete_deployment(&d.id, Some(2)).await, Err(Error::Stale)));
    f.store.delete_deployment(&d.id, Some(3)).await.unwrap();
    assert!(matches!(f.store.update_deployment_spec(&d.id, &spec, 3).await, Err(Error::NotFound)));
    assert!(matches!(f.store.delete_deployment(&d.id, None).await, Err(Error::NotFound)));
}

pub async fn timers_fire_once_per_claim(f: Fixture) {
    let at = now();
    let t = |key: &str, secs: i64| NewTimer {
        key: key.into(),
        kind: "test".into(),
        due_at: at + chrono::Duration::seconds(secs),
        payload: serde_json::json!({"k": key}),
    };
    f.store.set_timer(t("a", -5)).await.unwrap();
    f.store.set_timer(t("b", -1)).await.unwrap();
    f.store.set_timer(t("later", 3600)).await.unwrap();
    // Two nodes claim at once: each due timer goes to exactly one of them.
    let (x, y) = tokio::join!(
        f.store.claim_due_timers("node-x", at, 60_000, 10),
        f.store.claim_due_timers("node-y", at, 60_000, 10)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut keys: Vec<_> = x.iter().chain(y.iter()).map(|t| t.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, vec!["a", "b"]);
    let a = x.iter().chain(y.iter()).find(|t| t.key == "a").unwrap().clone();
    assert_eq!(a.payload, serde_json::json!({"k": "a"}));
    // Held claims are not handed out again until they expire.
    assert!(f.store.claim_due_timers("node-z", at, 60_000, 10).await.unwrap().is_empty());
    let after_expiry = at + chrono::Duration::seconds(61);
    let retaken = f.store.claim_due_timers("node-z", after_expiry, 60_000, 10).await.unwrap();
    assert_eq!(retaken.len(), 2);
    // The first claim of `a` expired and was retaken: it can no longer finish the timer.
    assert!(matches!(f.store.finish_timer(&a, None).await, Err(Error::Stale)));
    let a2 = retaken.iter().find(|t| t.key == "a").unwrap();
    f.store.finish_timer(a2, None).await.unwrap();
    assert!(f.store.get_timer("a").await.unwrap().is_none());
    // Rescheduling moves the due time and frees the claim.
    let b2 = retaken.iter().find(|t| t.key == "b").unwrap();
    f.store.finish_timer(b2, Some(at + chrono::Duration::seconds(30))).await.unwrap();
    assert!(f.store.claim_due_timers("node-z", after_expiry, 60_000, 10).await.unwrap().iter().any(|t| t.key == "b"));
    // Setting a timer again drops a claim in progress.
    f.store.set_timer(t("later", -1)).await.unwrap();
    let c = f.store.claim_due_timers("node-x", after_expiry, 60_000, 10).await.unwrap();
    let l = c.iter().find(|t| t.key == "later").unwrap().clone();
    f.store.set_timer(t("later", 100)).await.unwrap();
    assert!(matches!(f.store.finish_timer(&l, None).await, Err(Error::Stale)));
    assert!(f.store.cancel_timer("later").await.unwrap());
    assert!(!f.store.cancel_timer("later").await.unwrap());
    // A node that restarts drops the claims of its earlier incarnation: the timer is
    // claimable at once, and the dead incarnation's finish is refused.
    f.store.set_timer(t("crashed", -1)).await.unwrap();
    let held = f.store.claim_due_timers("node_a:1", after_expiry, 60_000, 10).await.unwrap();
    let held = held.iter().find(|t| t.key == "crashed").unwrap().clone();
    assert!(f.store.claim_due_timers("node_a:2", after_expiry, 60_000, 10).await.unwrap().is_empty());
    assert_eq!(f.store.release_timer_claims_with_prefix("nodeXa:").await.unwrap(), 0, "`_` is not a wildcard");
    assert_eq!(f.store.release_timer_claims_with_prefix("node_a:").await.unwrap(), 1);
    assert_eq!(f.store.next_due_at().await.unwrap(), Some(held.due_at));
    let again = f.store.claim_due_timers("node_a:2", after_expiry, 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(matches!(f.store.finish_timer(&held, None).await, Err(Error::Stale)));
    f.store.finish_timer(&again[0], None).await.unwrap();
    assert_eq!(f.store.next_due_at().await.unwrap(), None);
}

pub async fn run_kinds_and_costs(f: Fixture) {
    let d = deployment(f.store.as_ref()).await;
    let run = RunId::new();
    let trigger = RunTrigger {
        automation_id: Some("auto_1".into()),
        slot: Some("2026-12-07T09:00:00Z".into()),
        ..Default::default()
    };
    let mut a = Append::new(d.default_thread_id.clone(), vec![user(&run, "go"), status(&run, RunStatus::Running)]);
    a.new_run = Some(NewRun {
        id: run.clone(),
        status: RunStatus::Running,
        kind: RunKind::Automation,
        trigger: Some(trigger.clone()),
    });
    f.store.append(a).await.unwrap();
    let ev = NewEvent::new(
        Some(run.clone()),
        EventKind::ModelCall {
            model: "m".into(),
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: 0.25,
            duration_ms: 1,
            stop_reason: None,
            tool_calls: vec![],
            context_sequence: None,
            estimated: false,
        },
    );
    f.store.append(Append::new(d.default_thread_id.clone(), vec![ev])).await.unwrap();
    let r = f.store.get_run(&run).await.unwrap().unwrap();
    assert_eq!((r.kind, r.trigger), (RunKind::Automation, Some(trigger)));
    let day = now() - chrono::Duration::hours(1);
    assert!((f.store.deployment_cost_since(&d.id, day).await.unwrap() - 0.25).abs() < 1e-9);
    let later = now() + chrono::Duration::hours(1);
    assert_eq!(f.store.deployment_cost_since(&d.id, later).await.unwrap(), 0.0);
    // The customer's day sums its deployments; the gauges count runs in progress.
    let other = deployment(f.store.as_ref()).await;
    start_run(f.store.as_ref(), &other.default_thread_id).await;
    assert!((f.store.customer_cost_since("c", day).await.unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(f.store.customer_cost_since("nobody", day).await.unwrap(), 0.0);
    assert_eq!(f.store.active_run_counts().await.unwrap(), [0, 2, 0]);
    // Customer limits: none until set, replaced whole, removed when empty.
    use herm_types::webhook::CustomerLimits;
    assert_eq!(f.store.customer_limits("c").await.unwrap(), CustomerLimits::default());
    let l = CustomerLimits { max_daily_cost_usd: Some(2.5) };
    f.store.put_customer_limits("c", &l).await.unwrap();
    assert_eq!(f.store.customer_limits("c").await.unwrap(), l);
    f.store.put_customer_limits("c", &CustomerLimits::default()).await.unwrap();
    assert_eq!(f.store.customer_limits("c").await.unwrap(), CustomerLimits::default());
}

/// Events a webhook may want reach the outbox with their commit, only while a webhook
/// exists; an entry becomes deliveries once (one per webhook and event), an attempt is
/// recorded only on the attempt count it read, and deleting a webhook takes its deliveries.
pub async fn webhooks_keep_an_outbox_and_record_attempts_once(f: Fixture) {
    use herm_types::webhook::*;
    let d = deployment(f.store.as_ref()).await;
    let t = &d.default_thread_id;
    // No webhook yet: nothing is kept.
    let before = start_run(f.store.as_ref(), t).await;
    f.store.append(Append::new(t.clone(), vec![status(&before, RunStatus::Completed)])).await.unwrap();
    assert!(f.store.outbox(10).await.unwrap().is_empty());

    let spec = WebhookSpec {
        url: "http://127.0.0.1:9/hook".into(),
        events: vec![WebhookEvent::RunCompleted],
        secret: SecretId::new(),
        deployment_id: None,
        customer_id: None,
        description: None,
    };
    let hook = Webhook { id: WebhookId::new(), spec, created_at: now() };
    f.store.insert_webhook(hook.clone()).await.unwrap();
    assert_eq!(f.store.list_webhooks().await.unwrap(), vec![hook.clone()]);
    assert_eq!(f.store.get_webhook(&hook.id).await.unwrap(), Some(hook.clone()));
    let run = start_run(f.store.as_ref(), t).await;
    let done = f.store.append(Append::new(t.clone(), vec![status(&run, RunStatus::Completed)])).await.unwrap();
    let outbox = f.store.outbox(10).await.unwrap();
    // The running status of `start_run` and the completion: both run_status events.
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert!(outbox.iter().all(|(_, e)| e.is_some()));
    let done_id = done[0].id.clone();
    let delivery = |id: DeliveryId| Delivery {
        id,
        webhook_id: hook.id.clone(),
        event_id: done_id.clone(),
        event: WebhookEvent::RunCompleted,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(now() - chrono::Duration::seconds(1)),
        last_status: None,
        last_error: None,
        created_at: now(),
        delivered_at: None,
        payload: serde_json::json!({"id": done_id}),
    };
    for (id, _) in &outbox {
        let ds = if *id == done_id { vec![delivery(DeliveryId::new())] } else { vec![] };
        f.store.enqueue_deliveries(id, ds).await.unwrap();
    }
    assert!(f.store.outbox(10).await.unwrap().is_empty());
    // The same event again (a crash before the outbox entry went): still one delivery.
    f.store.enqueue_deliveries(&done_id, vec![delivery(DeliveryId::new())]).await.unwrap();
    let due = f.store.due_deliveries(now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(f.store.next_delivery_at().await.unwrap().is_some());
    let mut tried = due[0].clone();
    tried.attempts = 1;
    tried.last_status = Some(500);
    tried.next_attempt_at = Some(now() + chrono::Duration::hours(1));
    assert!(f.store.record_attempt(&tried, 0).await.unwrap());
    assert!(!f.store.record_attempt(&tried, 0).await.unwrap(), "a second sender's record is refused");
    assert!(f.store.due_deliveries(now(), 10).await.unwrap().is_empty(), "not due before its retry time");
    let mut ok = tried.clone();
    ok.attempts = 2;
    ok.status = DeliveryStatus::Delivered;
    ok.last_status = Some(204);
    ok.next_attempt_at = None;
    ok.delivered_at = Some(now());
    assert!(f.store.record_attempt(&ok, 1).await.unwrap());
    let listed = f.store.list_deliveries(&hook.id, None, 10).await.unwrap();
    assert_eq!((listed.len(), listed[0].status, listed[0].attempts), (1, DeliveryStatus::Delivered, 2));
    assert_eq!(listed[0].payload, serde_json::json!({"id": done_id}));
    // Deleting the webhook takes its deliveries, and with no webhook left the outbox stops.
    assert!(f.store.delete_webhook(&hook.id).await.unwrap());
    assert!(!f.store.delete_webhook(&hook.id).await.unwrap());
    assert!(f.store.list_deliveries(&hook.id, None, 10).await.unwrap().is_empty());
    let run = start_run(f.store.as_ref(), t).await;
    f.store.append(Append::new(t.clone(), vec![status(&run, RunStatus::Completed)])).await.unwrap();
    assert!(f.store.outbox(10).await.unwrap().is_empty());
}

/// A firing is recorded with the append that starts its run, once: the same key again is
/// refused as a duplicate and nothing of that second append is written. Automations and
/// goals change only at the revision they were read at.
pub async fn proactive_records_fire_once_and_change_conditionally(f: Fixture) {
    use herm_types::proactive::*;
    let d = deployment(f.store.as_ref()).await;
    let at = now();
    let auto = AutomationRecord {
        id: AutomationId::new(),
        deployment_id: d.id.clone(),
        spec: AutomationSpec {
            name: "n".into(),
            instructions: "i".into(),
            schedule: Some("hourly".into()),
            cron: Some("0 * * * *".into()),
            timezone: "UTC".into(),
            thread_id: None,
            missed_policy: MissedPolicy::Latest,
            webhook: false,
            max_consecutive_failures: 3,
        },
        enabled: true,
        paused_reason: None,
        token_hash: None,
        revision: 1,
        created_at: at,
        updated_at: at,
    };
    f.store.insert_automation(auto.clone()).await.unwrap();
    let firing = |skipped: bool| NewFiring {
        automation_id: auto.id.clone(),
        key: "2030-01-01T00:00:00Z".into(),
        slot_at: Some(at),
        source: FiringSource::Schedule,
        skipped,
        run_id: None,
        thread_id: None,
        reason: None,
    };
    let thread = d.default_thread_id.clone();
    let start = |run: &RunId| {
        let mut a = Append::new(thread.clone(), vec![user(run, "tick"), status(run, RunStatus::Running)]);
        a.new_run =
            Some(NewRun { id: run.clone(), status: RunStatus::Running, kind: RunKind::Automation, trigger: None });
        let mut fr = firing(false);
        fr.run_id = Some(run.clone());
        a.once = Some(Once::Firing(fr));
        a
    };
    let (r1, r2) = (RunId::new(), RunId::new());
    f.store.append(start(&r1)).await.unwrap();
    assert!(matches!(f.store.append(start(&r2)).await, Err(Error::Duplicate)));
    assert!(f.store.get_run(&r2).await.unwrap().is_none(), "the duplicate wrote nothing");
    assert_eq!(f.store.thread_events(&thread, 0, 100).await.unwrap().len(), 2);
    assert!(!f.store.insert_firing(firing(true)).await.unwrap(), "a skip cannot overwrite a firing");
    let got = f.store.get_firing(&auto.id, "2030-01-01T00:00:00Z").await.unwrap().unwrap();
    assert_eq!((got.firing.run_id, got.run_status), (Some(r1.clone()), Some(RunStatus::Running)));
    assert_eq!(f.store.list_firings(&auto.id, 10).await.unwrap().len(), 1);

    let mut paused = auto.clone();
    paused.enabled = false;
    assert_eq!(f.store.update_automation(&paused, 1).await.unwrap(), 2);
    assert!(matches!(f.store.update_automation(&paused, 1).await, Err(Error::Stale)));
    assert!(!f.store.get_automation(&auto.id).await.unwrap().unwrap().enabled);
    assert!(matches!(f.store.delete_automation(&auto.id, Some(1)).await, Err(Error::Stale)));
    f.store.delete_automation(&auto.id, Some(2)).await.unwrap();
    assert!(matches!(f.store.delete_automation(&auto.id, None).await, Err(Error::NotFound)));
    assert!(f.store.list_firings(&auto.id, 10).await.unwrap().is_empty());

    let goal = GoalRecord {
        id: GoalId::new(),
        deployment_id: d.id.clone(),
        thread_id: thread.clone(),
        spec: GoalSpec {
            objective: "o".into(),
            done_criteria: None,
            max_runs: 3,
            max_cost_usd: None,
            check_every_secs: 60,
            deadline_at: None,
        },
        status: GoalStatus::Active,
        state: GoalState::default(),
        revision: 1,
        created_at: at,
        updated_at: at,
    };
    f.store.insert_goal(goal.clone()).await.unwrap();
    let mut done = goal.clone();
    done.status = GoalStatus::Done;
    assert_eq!(f.store.update_goal(&done, 1).await.unwrap(), 2);
    assert!(matches!(f.store.update_goal(&done, 1).await, Err(Error::Stale)));
    // A goal's runs are found by their trigger; a Once::Key is recorded once.
    let g_run = RunId::new();
    f.store.append(Append::new(thread.clone(), vec![status(&r1, RunStatus::Completed)])).await.unwrap();
    let mut a = Append::new(thread.clone(), vec![user(&g_run, "work"), status(&g_run, RunStatus::Running)]);
    a.new_run = Some(NewRun {
        id: g_run.clone(),
        status: RunStatus::Running,
        kind: RunKind::Goal,
        trigger: Some(RunTrigger { goal_id: Some(goal.id.to_string()), ..Default::default() }),
    });
    a.once = Some(Once::Key { key: format!("goal:{}:run:1", goal.id), run_id: Some(g_run.clone()) });
    f.store.append(a.clone()).await.unwrap();
    assert!(matches!(f.store.append(a).await, Err(Error::Duplicate)));
    assert_eq!(
        f.store.goal_runs(&goal.id).await.unwrap().iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![g_run.clone()]
    );
    assert_eq!(f.store.once_run(&format!("goal:{}:run:1", goal.id)).await.unwrap(), Some(Some(g_run)));
    assert_eq!(f.store.once_run("goal:none").await.unwrap(), None);
}

pub async fn memories_change_conditionally_and_purge_completely(f: Fixture) {
    use herm_types::memory::{MemoryOperation, MemorySource};
    let store = f.store.as_ref();
    let d = deployment(store).await;
    let write = |id: &MemoryId, path: &str, content: Option<&str>, expected: Expected| MemoryWrite {
        deployment_id: d.id.clone(),
        memory_id: id.clone(),
        path: path.into(),
        content: content.map(Into::into),
        source: MemorySource::Api,
        run_id: None,
        expected,
        file_sha: None,
    };
    let (a, b) = (MemoryId::new(), MemoryId::new());
    let m = store.write_memory(write(&a, "p/a.md", Some("one"), Expected::Absent)).await.unwrap();
    assert_eq!(m.version, 1);
    // A second create of the same id, a stale version, a taken path: refused, nothing written.
    assert!(matches!(store.write_memory(write(&a, "p/a.md", Some("x"), Expected::Absent)).await, Err(Error::Stale)));
    assert!(matches!(
        store.write_memory(write(&a, "p/a.md", Some("x"), Expected::Version(7))).await,
        Err(Error::Stale)
    ));
    assert!(matches!(
        store.write_memory(write(&b, "p/a.md", Some("x"), Expected::Absent)).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(store.write_memory(write(&b, "p/b.md", None, Expected::Version(1))).await, Err(Error::NotFound)));
    let m = store.write_memory(write(&a, "p/a.md", Some("two"), Expected::Version(1))).await.unwrap();
    assert_eq!((m.version, m.content.as_deref()), (2, Some("two")));
    // A deletion keeps the history and frees the path.
    let m = store.write_memory(write(&a, "p/a.md", None, Expected::Version(2))).await.unwrap();
    assert_eq!((m.version, m.content), (3, None));
    assert!(store.memory_at(&d.id, "p/a.md").await.unwrap().is_none());
    store.write_memory(write(&b, "p/a.md", Some("new"), Expected::Absent)).await.unwrap();
    let ops: Vec<MemoryOperation> =
        store.memory_versions(&a).await.unwrap().into_iter().map(|v| v.version.operation).collect();
    assert_eq!(ops, [MemoryOperation::Created, MemoryOperation::Modified, MemoryOperation::Deleted]);
    // Filters see live memories only.
    let q = |q: &str, prefix: &str| MemoryQuery {
        q: Some(q.into()).filter(|s: &String| !s.is_empty()),
        prefix: Some(prefix.into()),
        before: None,
        limit: 10,
    };
    assert_eq!(store.list_memories(&d.id, q("NEW", "p/")).await.unwrap().len(), 1);
    assert_eq!(store.list_memories(&d.id, q("two", "")).await.unwrap().len(), 0);
    assert_eq!(store.list_memories(&d.id, q("", "q/")).await.unwrap().len(), 0);
    // Redaction clears one version; a purge removes the memory and its history.
    assert!(store.redact_memory_version(&a, 1).await.unwrap());
    assert!(store.memory_versions(&a).await.unwrap()[0].version.content.is_none());
    assert!(store.purge_memory(&a).await.unwrap());
    assert!(store.get_memory(&a).await.unwrap().is_none());
    assert!(store.memory_versions(&a).await.unwrap().is_empty());
    assert!(!store.purge_memory(&a).await.unwrap());
    // The file agreement is recorded only at the version it was seen.
    assert!(!store.set_memory_file(&b, 9, Some("h".into())).await.unwrap());
    assert!(store.set_memory_file(&b, 1, Some("h".into())).await.unwrap());
    // Marks: the first writer's value stays.
    assert_eq!(store.mark_once("k", "first").await.unwrap(), "first");
    assert_eq!(store.mark_once("k", "second").await.unwrap(), "first");
    assert!(store.memory_material(&d.id).await.unwrap() > 0);
    assert!(!store.work_active(&d.id).await.unwrap());
}

fn attachment(d: &DeploymentRecord, thread: Option<&ThreadId>, bytes: &[u8]) -> AttachmentRecord {
    use sha2::Digest;
    AttachmentRecord {
        deployment_id: d.id.clone(),
        thread_id: thread.cloned(),
        reference: herm_types::attachment::Attachment {
            kind: herm_types::attachment::AttachmentKind::Image,
            media_type: "image/png".into(),
            size: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
            name: Some("a.png".into()),
            attachment_id: Some(AttachmentId::new()),
            url: None,
            width: None,
            height: None,
        },
        created_at: now(),
    }
}

pub async fn attachments_are_stored_once_and_leave_with_their_thread(f: Fixture) {
    let s = f.store.as_ref();
    let d = deployment(s).await;
    let other = deployment(s).await;
    let t2 = ThreadId::new();
    s.create_thread(NewThread { id: t2.clone(), deployment_id: d.id.clone(), title: None }).await.unwrap();
    let bytes = b"\x89PNG\r\n\x1a\n same picture".to_vec();
    let a1 = attachment(&d, Some(&d.default_thread_id), &bytes);
    let a2 = attachment(&d, Some(&t2), &bytes);
    let sha = a1.reference.sha256.clone();
    s.put_attachment(a1.clone(), bytes.clone()).await.unwrap();
    s.put_attachment(a2.clone(), bytes.clone()).await.unwrap();
    let id1 = a1.reference.attachment_id.clone().unwrap();
    assert_eq!(s.get_attachment(&d.id, &id1).await.unwrap(), Some(a1.clone()));
    assert_eq!(s.blob(&d.id, &sha).await.unwrap().as_deref(), Some(&bytes[..]));
    // Another deployment reaches neither the record nor the bytes.
    assert_eq!(s.get_attachment(&other.id, &id1).await.unwrap(), None);
    assert_eq!(s.blob(&other.id, &sha).await.unwrap(), None);
    // A name that is not a hash reads nothing.
    assert_eq!(s.blob(&d.id, "../herm.db").await.unwrap(), None);

    // Both threads hold the bytes: deleting one keeps them, deleting the other removes them.
    assert!(s.delete_thread(&d.default_thread_id).await.unwrap());
    assert_eq!(s.get_attachment(&d.id, &id1).await.unwrap(), None);
    assert!(s.blob(&d.id, &sha).await.unwrap().is_some());
    assert!(s.delete_thread(&t2).await.unwrap());
    assert_eq!(s.blob(&d.id, &sha).await.unwrap(), None);

    // A refused message's attachments are removed with their bytes.
    let a3 = attachment(&d, None, b"%PDF-1.4 other");
    s.put_attachment(a3.clone(), b"%PDF-1.4 other".to_vec()).await.unwrap();
    s.remove_attachments(&d.id, &[a3.reference.attachment_id.clone().unwrap()]).await.unwrap();
    assert_eq!(s.blob(&d.id, &a3.reference.sha256).await.unwrap(), None);

    // A deleted deployment keeps no attachment.
    let a4 = attachment(&other, None, b"GIF89a kept until the end");
    s.put_attachment(a4.clone(), b"GIF89a kept until the end".to_vec()).await.unwrap();
    s.delete_deployment(&other.id, None).await.unwrap();
    assert_eq!(s.blob(&other.id, &a4.reference.sha256).await.unwrap(), None);
    assert_eq!(s.get_attachment(&other.id, &a4.reference.attachment_id.clone().unwrap()).await.unwrap(), None);
}

pub async fn documents_are_versioned_and_conditional(f: Fixture) {
    let s = f.store.as_ref();
    let doc = |id: &str, version: i64, n: i64| Document {
        kind: "agent".into(),
        id: id.into(),
        version,
        body: serde_json::json!({"n": n}),
    };
    s.put_document(doc("a1", 1, 1), History::Keep).await.unwrap();
    // A second version 1, or a version that skips one, is refused and writes nothing.
    assert!(matches!(s.put_document(doc("a1", 1, 9), History::Keep).await, Err(Error::Stale)));
    assert!(matches!(s.put_document(doc("a1", 3, 9), History::Keep).await, Err(Error::Stale)));
    s.put_document(doc("a1", 2, 2), History::Keep).await.unwrap();
    // Two writers that read version 2: one lands.
    let (x, y) =
        tokio::join!(s.put_document(doc("a1", 3, 3), History::Keep), s.put_document(doc("a1", 3, 4), History::Keep));
    assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
    assert_eq!(s.get_document("agent", "a1", None).await.unwrap().unwrap().version, 3);
    assert_eq!(s.get_document("agent", "a1", Some(1)).await.unwrap().unwrap().body["n"], 1);
    let versions = s.document_versions("agent", "a1", 1, 10).await.unwrap();
    assert_eq!(versions.iter().map(|d| d.version).collect::<Vec<_>>(), vec![2, 3]);
    // A rewrite changes the latest in place, and only while it is the latest.
    s.put_document(doc("a1", 3, 30), History::Rewrite).await.unwrap();
    assert_eq!(s.get_document("agent", "a1", None).await.unwrap().unwrap().body["n"], 30);
    assert!(matches!(s.put_document(doc("a1", 2, 20), History::Rewrite).await, Err(Error::Stale)));
    // Dropping history keeps the latest only.
    s.put_document(doc("e1", 1, 1), History::Drop).await.unwrap();
    s.put_document(doc("e1", 2, 2), History::Drop).await.unwrap();
    assert!(s.get_document("agent", "e1", Some(1)).await.unwrap().is_none());
    // Lists give the latest of each, by id, both ways, from a cursor; kinds are apart.
    s.put_document(Document { kind: "session".into(), ..doc("s1", 1, 1) }, History::Drop).await.unwrap();
    let ids = |v: Vec<Document>| v.into_iter().map(|d| (d.id, d.version)).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_documents("agent", None, false, 10).await.unwrap()),
        vec![("a1".into(), 3), ("e1".into(), 2)]
    );
    assert_eq!(ids(s.list_documents("agent", None, true, 1).await.unwrap()), vec![("e1".into(), 2)]);
    assert_eq!(ids(s.list_documents("agent", Some("a1".into()), false, 10).await.unwrap()), vec![("e1".into(), 2)]);
    assert_eq!(ids(s.list_documents("agent", Some("e1".into()), true, 10).await.unwrap()), vec![("a1".into(), 3)]);
    assert!(s.delete_document("agent", "a1").await.unwrap());
    assert!(!s.delete_document("agent", "a1").await.unwrap());
    assert!(s.get_document("agent", "a1", Some(1)).await.unwrap().is_none());
    assert_eq!(s.list_documents("session", None, false, 10).await.unwrap().len(), 1);
}
