//! The executor: drives one thread's runs under a lease. Each step folds the log, asks the
//! machine what to do, performs that one action, and appends its result. A lost lease, a
//! cancelled token or a refused append ends the step; the fold tells the next one what is left.

mod compact;
mod limits;
pub(crate) mod logs;
mod model;
mod person;

use crate::machine::records;
use crate::machine::{self, Gate, Next};
use crate::tools::source::CallContext;
use crate::tools::{Tool, ToolOutput, ToolSet};
use crate::{Engine, Result};
use herm_store::{Append, Condition, DeploymentRecord, Lease};
use herm_types::event::{RequestedToolCall, RunError, ToolOutcome};
use herm_types::*;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const UNKNOWN_OUTCOME: &str = "This tool call was in flight when the agent's worker stopped (crash or restart). \
The tool is not safe to repeat, so it was not called again: it may or may not have taken effect. \
Check its effect before calling it again.";

pub(crate) async fn run(engine: Engine, thread: ThreadId, mut cancel: CancellationToken) {
    loop {
        if let Err(e) = session(&engine, &thread, &cancel).await {
            tracing::warn!(thread = %thread, error = %e, "worker stopped");
        }
        match engine.worker_should_continue(&thread) {
            Some(c) => cancel = c,
            None => return,
        }
    }
}

/// Holds the lease (with a heartbeat) while driving the thread.
async fn session(engine: &Engine, thread: &ThreadId, cancel: &CancellationToken) -> Result<()> {
    let store = engine.store();
    let ttl = engine.options().lease_ttl;
    let ttl_ms = ttl.as_millis() as i64;
    let Some(lease) = store.acquire_lease(thread, &engine.inner.owner, ttl_ms).await? else {
        // Another worker holds it; it will see the new work when it folds the log again.
        return Ok(());
    };
    let work = cancel.child_token();
    let heartbeat = {
        let (store, lease, work) = (store.clone(), lease.clone(), work.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = work.cancelled() => return,
                    _ = tokio::time::sleep(ttl / 3) => {}
                }
                if !matches!(store.renew_lease(&lease, ttl_ms).await, Ok(true)) {
                    tracing::warn!(thread = %lease.thread_id, "lease lost; stopping the worker");
                    work.cancel();
                    return;
                }
            }
        })
    };
    let kept = engine.inner.logs.take(thread);
    let mut driver = Driver {
        engine,
        thread,
        lease: &lease,
        work: &work,
        log: kept.log,
        conversation: parking_lot::Mutex::new(kept.conversation),
        current: None,
        redactor: Default::default(),
        system: Default::default(),
        tools: Default::default(),
        appended: Default::default(),
    };
    let out = driver.drive().await;
    driver.take_appended();
    // Kept for the thread's next run, unless the thread was deleted meanwhile.
    if matches!(store.get_thread(thread).await, Ok(Some(_))) {
        let log = std::mem::take(&mut driver.log);
        let conversation = std::mem::take(driver.conversation.get_mut());
        engine.inner.logs.put(thread, logs::Kept { log, conversation });
    }
    work.cancel();
    let _ = heartbeat.await;
    if let Err(e) = store.release_lease(&lease).await {
        tracing::warn!(thread = %thread, error = %e, "could not release lease; it will expire");
    }
    out
}

struct Driver<'a> {
    engine: &'a Engine,
    thread: &'a ThreadId,
    lease: &'a Lease,
    work: &'a CancellationToken,
    log: Vec<Event>,
    /// The settled part of the conversation built from `log` (see [`history::Settled`]):
    /// each request builds only what follows it.
    conversation: parking_lot::Mutex<crate::history::Settled>,
    /// What holds for the current run, read when it is first seen (changes apply from the
    /// next run).
    current: Option<Current>,
    /// The redactor for the current run's deployment, built once per run (it decrypts every
    /// secret the deployment references).
    redactor: parking_lot::Mutex<Option<Arc<crate::redact::Redactor>>>,
    /// The current run's system prompt (file skills are read from the workspace for it).
    system: parking_lot::Mutex<Option<String>>,
    /// The current run's tools, when no source can change them within it (see
    /// [`Driver::tools`]).
    tools: parking_lot::Mutex<Option<Arc<ToolSet>>>,
    /// What this worker's appends committed since the last fold, as the store returned it:
    /// the next fold takes it into `log` instead of reading it back.
    appended: parking_lot::Mutex<Vec<Arc<Event>>>,
}

/// The current run's settings: its deployment, its customer's limits, and its trace id (for
/// the log lines of its steps).
struct Current {
    run: RunId,
    /// What started the run (its first `run_status` says; read once, not on every fold).
    kind: RunKind,
    dep: DeploymentRecord,
    customer: herm_types::webhook::CustomerLimits,
    trace_id: String,
}

/// Whether to keep driving after a step.
enum Flow {
    Continue,
    Stop,
}

/// What became of an append.
enum Appended {
    Written,
    /// A condition failed (the run was stopped or the log moved on): fold again.
    Refused,
    /// The lease is gone: another worker owns the thread now.
    LeaseLost,
}

impl From<Appended> for Flow {
    fn from(a: Appended) -> Flow {
        match a {
            Appended::Written | Appended::Refused => Flow::Continue,
            Appended::LeaseLost => Flow::Stop,
        }
    }
}

impl Driver<'_> {
    async fn drive(&mut self) -> Result<()> {
        let store = self.engine.store().clone();
        loop {
            if self.work.is_cancelled() {
                return Ok(());
            }
            self.take_appended();
            let last = self.log.last().map(|e| e.sequence.0).unwrap_or(0);
            // Read only what the log may lack: a store that knows the thread ends here
            // (nobody else appended since this worker's own commit) spares the read.
            if store.thread_head(self.thread) != Some(last) {
                self.log.extend(store.thread_events(self.thread, last, 1 << 20).await?);
            }
            // The runs the settled conversation covers have all ended.
            let ended = self.conversation.lock().events().min(self.log.len());
            let Some(run) = machine::active_run(&self.log[ended..]) else { return Ok(()) };
            if self.current.as_ref().map(|c| &c.run) != Some(&run) {
                let Some(thread) = store.get_thread(self.thread).await? else { return Ok(()) };
                let Some(dep) = store.get_deployment(&thread.deployment_id).await? else { return Ok(()) };
                let customer = store.customer_limits(&dep.spec.customer_id).await?;
                let trace_id = herm_types::trace::hex(&herm_types::trace::trace_id(run.as_str()));
                let kind = machine::run_origin(&self.log, &run).0;
                self.current = Some(Current { run: run.clone(), kind, dep, customer, trace_id });
                *self.redactor.lock() = None;
                *self.system.lock() = None;
                *self.tools.lock() = None;
            }
            let Some(current) = self.current.as_ref() else { return Ok(()) };
            let dep = &current.dep;
            let limits = self.limits(dep, &current.customer).await?;
            // One look at the tools per fold: the gate, the model's offer and the call agree.
            let (tools, outages) = self.tools(current).await;
            // Log lines of the step carry the run's trace id (JSON logs show the span's fields).
            let span = tracing::info_span!("run", run_id = %run, trace_id = %current.trace_id);
            let Some(flow) = self.act(&run, dep, limits, &tools, outages).instrument(span).await? else {
                return Ok(());
            };
            if let Flow::Stop = flow {
                return Ok(());
            }
        }
    }

    /// What started `run`: the current run's kind as read when it was first seen, else from
    /// the log.
    fn run_kind(&self, run: &RunId) -> RunKind {
        match &self.current {
            Some(c) if &c.run == run => c.kind,
            _ => machine::run_origin(&self.log, run).0,
        }
    }

    /// Takes this worker's own committed events into the log while they follow it without a
    /// gap; from the first that does not (another writer's event came between), the log is
    /// read from the store instead.
    fn take_appended(&mut self) {
        let appended = std::mem::take(self.appended.get_mut());
        for e in appended {
            let last = self.log.last().map(|e| e.sequence.0).unwrap_or(0);
            if e.sequence.0 != last + 1 {
                return;
            }
            // Copied only if a reader still holds it (the bus's tap, a live stream).
            self.log.push(Arc::try_unwrap(e).unwrap_or_else(|e| Event::clone(&e)));
        }
    }

    /// Performs what the machine says the run must do next; `None` when it needs nothing.
    async fn act(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        limits: machine::RunLimits,
        tools: &ToolSet,
        outages: Vec<(String, String)>,
    ) -> Result<Option<Flow>> {
        let run = run.clone();
        Ok(Some(match machine::decide(&self.log, &run, limits, &|n| tools.gate(n)) {
            Next::Idle => return Ok(None),
            Next::AskPerson(asks) => self.ask(&run, asks).await?,
            Next::Denied { call, message } => self.denied(&run, call, message).await?,
            Next::Answered { call, answer } => self.answered(&run, call, answer).await?,
            Next::Start => {
                self.append(&run, vec![status(&self.log, &run, RunStatus::Running, None, None)], vec![]).await?
            }
            Next::CallModel => self.call_model(&run, dep, tools, outages).await?,
            Next::RunTool(c) => self.call_tool(&run, dep, tools, c).await?,
            Next::InFlight(c) => self.resolve_in_flight(&run, dep, tools, c).await?,
            Next::Complete => {
                let usage = machine::run_usage(&self.log, &run);
                let last = self.log.last().map(|e| e.sequence.0).unwrap_or(0);
                let ev = status(&self.log, &run, RunStatus::Completed, None, Some(usage));
                let flow = self.append(&run, vec![ev], vec![Condition::LastSequenceIs(last)]).await?;
                self.ended(&run).await;
                flow
            }
            Next::Fail { code, message } => self.fail(&run, code, message).await?,
            Next::OverBudget(stop) => self.over_budget(&run, stop).await?,
        }))
    }

    /// The tools the current run is offered and the parts of sources that offer none right
    /// now. Looked at once per run when every source's offer is fixed by the run's spec and
    /// kind (both fixed for the run), else on every fold (an MCP server's listing can change).
    async fn tools(&self, current: &Current) -> (Arc<ToolSet>, Vec<(String, String)>) {
        if let Some(t) = self.tools.lock().clone() {
            return (t, Vec::new());
        }
        let dep = &current.dep;
        let offered = self.engine.tools_and_outages(&dep.id, &dep.spec, Some(current.kind)).await;
        let tools = Arc::new(offered.tools);
        if !offered.live {
            *self.tools.lock() = Some(tools.clone());
        }
        (tools, offered.outages)
    }

    /// The current run's redactor (built on first use in the run).
    async fn redactor(&self, dep: &DeploymentRecord) -> Result<Arc<crate::redact::Redactor>> {
        if let Some(r) = self.redactor.lock().clone() {
            return Ok(r);
        }
        // Built outside the lock (it awaits the store); a concurrent build is harmless.
        let r = Arc::new(self.engine.secrets().redactor(&dep.spec).await?);
        *self.redactor.lock() = Some(r.clone());
        Ok(r)
    }

    /// Appends under the lease, conditioned on `run` still being the active run. A refused
    /// condition is not an error: the next fold sees why.
    async fn append(&self, run: &RunId, events: Vec<NewEvent>, conditions: Vec<Condition>) -> Result<Flow> {
        Ok(self.try_append(run, events, conditions).await?.into())
    }

    async fn try_append(&self, run: &RunId, events: Vec<NewEvent>, mut conditions: Vec<Condition>) -> Result<Appended> {
        conditions.push(Condition::ActiveRunIs(Some(run.clone())));
        let a = Append {
            thread_id: self.thread.clone(),
            lease: Some(self.lease.clone()),
            conditions,
            new_run: None,
            events,
            once: None,
        };
        match self.engine.store().append(a).await {
            Ok(events) => {
                self.appended.lock().extend(events);
                Ok(Appended::Written)
            }
            Err(herm_store::Error::Conflict(_)) => Ok(Appended::Refused),
            Err(herm_store::Error::LeaseLost) => Ok(Appended::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    async fn fail(&self, run: &RunId, code: &str, message: String) -> Result<Flow> {
        tracing::info!(run = %run, code, "run failed");
        let usage = machine::run_usage(&self.log, run);
        let err = RunError { code: code.into(), message };
        let flow =
            self.append(run, vec![status(&self.log, run, RunStatus::Error, Some(err), Some(usage))], vec![]).await?;
        self.ended(run).await;
        Ok(flow)
    }

    /// Tells the proactive loops that one of their runs ended or waits for a person (a
    /// user's run concerns none).
    async fn status_changed(&self, run: &RunId) {
        if self.run_kind(run) != RunKind::User {
            self.engine.run_status_changed(run).await;
        }
    }

    /// A run ended: its proactive loop hears of it, and the thread (unless it is the
    /// memory thread) is observed once it stays idle.
    async fn ended(&self, run: &RunId) {
        self.status_changed(run).await;
        if let Some(Current { dep, .. }) = &self.current
            && !self.run_kind(run).is_memory()
        {
            self.engine.work_ended(dep, self.thread).await;
        }
    }

    /// Runs a tool call the machine found not yet started: write its record, then run it. A
    /// call answered inline commits its record and result together instead.
    async fn call_tool(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tools: &ToolSet,
        c: RequestedToolCall,
    ) -> Result<Flow> {
        if records::inline_run(std::slice::from_ref(&c), tools) == 1 {
            let answered = self.answer(run, dep, tools, c).await?;
            let events = records::answered(vec![answered], tools);
            return self
                .append(run, events.into_iter().map(|k| NewEvent::new(Some(run.clone()), k)).collect(), vec![])
                .await;
        }
        // Write-ahead: the call is durable before it is made. Only a written record lets this
        // worker make the call; from then on, a worker that finds the record without a result
        // knows the call may have happened.
        let record = NewEvent::new(Some(run.clone()), records::tool_call(&c, tools));
        match self.try_append(run, vec![record], vec![]).await? {
            Appended::Written => self.run_chain(run, dep, tools, c, VecDeque::new()).await,
            other => Ok(other.into()),
        }
    }

    /// Executes `current` (whose `tool_call` record is written), then each of `rest` in order.
    /// Each result commits together with the calls after it answered inline and the next
    /// call's write-ahead record.
    async fn run_chain(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tools: &ToolSet,
        mut current: RequestedToolCall,
        mut rest: VecDeque<RequestedToolCall>,
    ) -> Result<Flow> {
        let redactor = self.redactor(dep).await?;
        loop {
            let started = Instant::now();
            let (out, extra) = tokio::select! {
                _ = self.work.cancelled() => return Ok(Flow::Stop),
                o = self.execute(run, dep, tools.get(&current.tool), &current) => o?,
            };
            let result = result_record(current, out, started, &redactor);
            let then = self.answer_inline(run, dep, tools, &mut rest).await?;
            let step = records::after_tool(result, extra, then, tools);
            let events = step.records.into_iter().map(|k| NewEvent::new(Some(run.clone()), k)).collect();
            match (self.try_append(run, events, vec![]).await?, step.chained) {
                (Appended::Written, Some(n)) => current = n,
                (a, _) => return Ok(a.into()),
            }
        }
    }

    /// Answers the calls at the front of `calls` that are answered inline (see
    /// [`records::inline_run`]), in order, and takes the call after them: what the step
    /// about to commit leaves to run. Nothing is written yet.
    async fn answer_inline(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tools: &ToolSet,
        calls: &mut VecDeque<RequestedToolCall>,
    ) -> Result<records::Then> {
        let n = records::inline_run(calls.make_contiguous(), tools);
        let mut answered = Vec::with_capacity(n);
        for c in calls.drain(..n) {
            answered.push(self.answer(run, dep, tools, c).await?);
        }
        Ok(records::Then { answered, next: calls.pop_front() })
    }

    /// Runs one call answered inline: its result and what it changed.
    async fn answer(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tools: &ToolSet,
        c: RequestedToolCall,
    ) -> Result<records::Answered> {
        let started = Instant::now();
        let (out, extra) = self.execute(run, dep, tools.get(&c.tool), &c).await?;
        let redactor = self.redactor(dep).await?;
        let mut wrote = vec![result_record(c.clone(), out, started, &redactor)];
        wrote.extend(extra);
        Ok((c, wrote))
    }

    /// Runs one tool call through its source's runner; returns its output and the records to
    /// commit with its result.
    async fn execute(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tool: Option<&Tool>,
        c: &RequestedToolCall,
    ) -> Result<(ToolOutput, Vec<EventKind>)> {
        let Some(tool) = tool else {
            return Ok((ToolOutput::error(format!("there is no tool named `{}`", c.tool)), Vec::new()));
        };
        if !c.arguments.is_object() {
            return Ok((ToolOutput::error("tool arguments must be a JSON object"), Vec::new()));
        }
        // Arguments the model made up are checked before anything runs.
        if !tool.checks_own_input {
            let errors = tool.check_input(&c.arguments);
            if !errors.is_empty() {
                let list: Vec<String> = errors.into_iter().map(|(p, m)| format!("{p}: {m}")).collect();
                let msg = format!("invalid arguments for `{}` (the call was not made): {}", tool.name, list.join("; "));
                return Ok((ToolOutput::error(msg), Vec::new()));
            }
        }
        let redactor = self.redactor(dep).await?;
        let cx = CallContext {
            engine: self.engine,
            dep,
            thread: self.thread,
            run: Some(run),
            tool_use_id: &c.tool_use_id,
            redactor: &redactor,
        };
        let ran = tool.runner.run(&cx, &c.arguments).await?;
        Ok((ran.output, ran.records))
    }

    /// A call the log shows as started but unfinished: repeat it only if it is safe to.
    async fn resolve_in_flight(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tools: &ToolSet,
        c: RequestedToolCall,
    ) -> Result<Flow> {
        let repeat_safe = tools.get(&c.tool).is_some_and(|t| t.repeat_safe);
        if repeat_safe && tools.gate(&c.tool) == Gate::Approval {
            // Safe to repeat, but a person approved one execution, and it was used.
            return self.ask(run, vec![machine::Ask { call: c, gate: Gate::Approval }]).await;
        }
        if repeat_safe {
            return self.run_chain(run, dep, tools, c, VecDeque::new()).await;
        }
        tracing::info!(run = %run, tool = %c.tool, "tool call interrupted with unknown outcome");
        let ev = EventKind::ToolResult {
            tool_use_id: c.tool_use_id,
            tool: c.tool,
            result: UNKNOWN_OUTCOME.into(),
            is_error: true,
            duration_ms: 0,
            attachments: Vec::new(),
            outcome: ToolOutcome::InterruptedUnknown,
        };
        self.append(run, vec![NewEvent::new(Some(run.clone()), ev)], vec![]).await
    }
}

/// The `tool_result` of `c`, its output redacted, timed from `started`.
fn result_record(
    c: RequestedToolCall,
    out: ToolOutput,
    started: Instant,
    redactor: &crate::redact::Redactor,
) -> EventKind {
    EventKind::ToolResult {
        tool_use_id: c.tool_use_id,
        tool: c.tool,
        result: redactor.redact(&out.content),
        is_error: out.is_error,
        duration_ms: started.elapsed().as_millis() as u64,
        attachments: out.attachments,
        outcome: if out.is_error { ToolOutcome::Error } else { ToolOutcome::Ok },
    }
}

/// A `run_status` of `run`, repeating the kind and trigger its first one carried.
fn status(log: &[Event], run: &RunId, s: RunStatus, error: Option<RunError>, usage: Option<Usage>) -> NewEvent {
    let (kind, trigger) = machine::run_origin(log, run);
    NewEvent::new(Some(run.clone()), EventKind::RunStatus { status: s, kind, trigger, error, usage })
}
