//! Accepting a user message into a thread: start a run, or apply the deployment's
//! `busy_policy` when one is active. The decision and the append are one conditional write,
//! retried if the thread changed in between, so every outcome is exact. Steering guidance
//! goes the same way.

use crate::conditional::Reads;
use crate::interrupt::interruption;
use crate::{Engine, Error, Result};
use herm_store::DeploymentRecord;
use herm_store::{Append, Condition, NewRun, Once};
use herm_types::api::Disposition;
use herm_types::attachment::AttachmentInput;
use herm_types::config::BusyPolicy;
use herm_types::event::{Attachment, Role};
use herm_types::*;

/// Who a run works for: its kind and what started it.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub kind: RunKind,
    pub trigger: Option<RunTrigger>,
    /// Submitted by a timer handler: the worker is started when the timer loop's batch is
    /// fired (a thousand slots due at once are all started first, then worked on).
    pub from_timer: bool,
}

/// What became of a submitted message.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub run_id: RunId,
    pub status: RunStatus,
    pub disposition: Disposition,
}

impl Engine {
    /// Accepts a user's message with its attachments (checked against the deployment's
    /// model, obtained and stored first; removed again if the message is refused).
    pub async fn submit_message(
        &self,
        dep: &DeploymentRecord,
        thread: &ThreadId,
        content: String,
        attachments: Vec<AttachmentInput>,
    ) -> Result<Submitted> {
        let refs = self.take_attachments(dep, thread, attachments).await?;
        let out = self.submit(thread, dep.spec.busy_policy, content, refs.clone(), &Origin::default(), None).await;
        if out.is_err() {
            self.forget_attachments(dep, &refs).await;
        }
        out
    }

    /// Accepts a text-only message under `policy` (benchmarks, which hold no deployment record).
    pub async fn submit_text(&self, thread: &ThreadId, policy: BusyPolicy, content: String) -> Result<Submitted> {
        self.submit(thread, policy, content, Vec::new(), &Origin::default(), None).await
    }

    /// Accepts a message for a run of `origin`'s kind. With `once`, the append records that
    /// mark in the same transaction (its run and thread filled in), so a second submission
    /// with the same mark is refused with the store's `Duplicate`, whatever the busy policy
    /// did with the first.
    pub(crate) async fn submit(
        &self,
        thread: &ThreadId,
        policy: BusyPolicy,
        content: String,
        attachments: Vec<Attachment>,
        origin: &Origin,
        once: Option<Once>,
    ) -> Result<Submitted> {
        let interrupting = policy == BusyPolicy::Interrupt;
        let msg = |run: &RunId| {
            NewEvent::new(
                Some(run.clone()),
                EventKind::Message { role: Role::User, content: content.clone(), attachments: attachments.clone() },
            )
        };
        let status_event = |run: &RunId, s: RunStatus| {
            NewEvent::new(
                Some(run.clone()),
                EventKind::RunStatus {
                    status: s,
                    kind: origin.kind,
                    trigger: origin.trigger.clone(),
                    error: None,
                    usage: None,
                },
            )
        };
        let new_run = |run: &RunId, status: RunStatus| NewRun {
            id: run.clone(),
            status,
            kind: origin.kind,
            trigger: origin.trigger.clone(),
        };
        let mark = |a: &mut Append, run: &RunId| {
            a.once = once.clone().map(|o| match o {
                Once::Firing(mut f) => {
                    f.run_id = Some(run.clone());
                    f.thread_id = Some(thread.clone());
                    Once::Firing(f)
                }
                Once::Key { key, .. } => Once::Key { key, run_id: Some(run.clone()) },
            });
        };
        let out = self
            .append_planned(thread, if interrupting { Reads::ActiveRunAndLog } else { Reads::ActiveRun }, |seen| {
                Ok(match (&seen.active, policy) {
                    (None, _) => {
                        let run = RunId::new();
                        let mut a =
                            Append::new(thread.clone(), vec![msg(&run), status_event(&run, RunStatus::Running)]);
                        a.new_run = Some(new_run(&run, RunStatus::Running));
                        a.conditions.push(Condition::ActiveRunIs(None));
                        mark(&mut a, &run);
                        (a, Submitted { run_id: run, status: RunStatus::Running, disposition: Disposition::Started })
                    }
                    (Some(_), BusyPolicy::Reject) => return Err(Error::ThreadBusy),
                    (Some(r), BusyPolicy::Steer) => {
                        let mut a = Append::new(thread.clone(), vec![msg(&r.id)]);
                        a.conditions.push(Condition::ActiveRunIs(Some(r.id.clone())));
                        mark(&mut a, &r.id);
                        (a, Submitted { run_id: r.id.clone(), status: r.status, disposition: Disposition::Steered })
                    }
                    (Some(r), BusyPolicy::Queue) => {
                        let run = RunId::new();
                        let mut a = Append::new(thread.clone(), vec![msg(&run), status_event(&run, RunStatus::Queued)]);
                        a.new_run = Some(new_run(&run, RunStatus::Queued));
                        a.conditions.push(Condition::ActiveRunIs(Some(r.id.clone())));
                        mark(&mut a, &run);
                        (a, Submitted { run_id: run, status: RunStatus::Queued, disposition: Disposition::Queued })
                    }
                    (Some(r), BusyPolicy::Interrupt) => {
                        // The active run stops here (its worker's next write is refused because the
                        // run is no longer active), and the new one starts at once.
                        let run = RunId::new();
                        let mut events = interruption(&seen.log, &r.id, Some("superseded by a new message".into()));
                        events.push(msg(&run));
                        events.push(status_event(&run, RunStatus::Running));
                        let mut a = Append::new(thread.clone(), events);
                        a.new_run = Some(new_run(&run, RunStatus::Running));
                        a.conditions.push(Condition::ActiveRunIs(Some(r.id.clone())));
                        mark(&mut a, &run);
                        (
                            a,
                            Submitted {
                                run_id: run,
                                status: RunStatus::Running,
                                disposition: Disposition::Interrupted,
                            },
                        )
                    }
                })
            })
            .await?;
        if out.disposition == Disposition::Interrupted {
            self.cancel_worker(thread);
        }
        if origin.from_timer {
            // The timer loop starts the workers once its batch is fired.
            self.inner.deferred_wakes.lock().push(thread.clone());
        } else {
            self.wake(thread.clone());
        }
        Ok(out)
    }

    /// Folds guidance into the thread's active run at its next step boundary.
    pub async fn steer(&self, thread: &ThreadId, message: String) -> Result<RunId> {
        let run = self
            .append_planned(thread, Reads::ActiveRun, |seen| {
                let Some(run) = &seen.active else { return Err(Error::NoActiveRun) };
                let ev = NewEvent::new(Some(run.id.clone()), EventKind::Steer { message: message.clone() });
                let mut a = Append::new(thread.clone(), vec![ev]);
                a.conditions.push(Condition::ActiveRunIs(Some(run.id.clone())));
                Ok((a, run.id.clone()))
            })
            .await?;
        self.wake(thread.clone());
        Ok(run)
    }
}
