//! Accepting a user message into a thread: start a run, or apply the deployment's
//! `busy_policy` when one is active. The decision and the append are one conditional write,
//! retried if the thread changed in between, so every outcome is exact.

use crate::interrupt::interruption;
use crate::{Engine, Error, Result};
use herm_store::{Append, Condition};
use herm_types::api::Disposition;
use herm_types::config::BusyPolicy;
use herm_types::event::{Attachment, Role};
use herm_types::*;

/// What became of a submitted message.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub run_id: RunId,
    pub status: RunStatus,
    pub disposition: Disposition,
}

impl Engine {
    pub async fn submit_message(
        &self,
        thread: &ThreadId,
        policy: BusyPolicy,
        content: String,
        attachments: Vec<Attachment>,
    ) -> Result<Submitted> {
        let store = self.store();
        for _ in 0..8 {
            let active = store.active_run(thread).await?;
            let msg = |run: &RunId| {
                NewEvent::new(
                    Some(run.clone()),
                    EventKind::Message { role: Role::User, content: content.clone(), attachments: attachments.clone() },
                )
            };
            let status_event = |run: &RunId, s: RunStatus| {
                NewEvent::new(Some(run.clone()), EventKind::RunStatus { status: s, error: None, usage: None })
            };
            let (append, out) = match (&active, policy) {
                (None, _) => {
                    let run = RunId::new();
                    let mut a = Append::new(thread.clone(), vec![msg(&run), status_event(&run, RunStatus::Running)]);
                    a.new_run = Some((run.clone(), RunStatus::Running));
                    a.conditions.push(Condition::ActiveRunIs(None));
                    (a, Submitted { run_id: run, status: RunStatus::Running, disposition: Disposition::Started })
                }
                (Some(_), BusyPolicy::Reject) => return Err(Error::ThreadBusy),
                (Some(r), BusyPolicy::Steer) => {
                    let mut a = Append::new(thread.clone(), vec![msg(&r.id)]);
                    a.conditions.push(Condition::ActiveRunIs(Some(r.id.clone())));
                    (a, Submitted { run_id: r.id.clone(), status: r.status, disposition: Disposition::Steered })
                }
                (Some(r), BusyPolicy::Queue) => {
                    let run = RunId::new();
                    let mut a = Append::new(thread.clone(), vec![msg(&run), status_event(&run, RunStatus::Queued)]);
                    a.new_run = Some((run.clone(), RunStatus::Queued));
                    a.conditions.push(Condition::ActiveRunIs(Some(r.id.clone())));
                    (a, Submitted { run_id: run, status: RunStatus::Queued, disposition: Disposition::Queued })
                }
                (Some(r), BusyPolicy::Interrupt) => {
                    // The active run stops here (its worker's next write is refused because the
                    // run is no longer active), and the new one starts at once.
                    let run = RunId::new();
                    let log = store.run_log(thread).await?;
                    let mut events = interruption(&log, &r.id, Some("superseded by a new message".into()));
                    events.push(msg(&run));
                    events.push(status_event(&run, RunStatus::Running));
                    let mut a = Append::new(thread.clone(), events);
                    a.new_run = Some((run.clone(), RunStatus::Running));
                    a.conditions.push(Condition::ActiveRunIs(Some(r.id.clone())));
                    (a, Submitted { run_id: run, status: RunStatus::Running, disposition: Disposition::Interrupted })
                }
            };
            match store.append(append).await {
                Ok(_) => {
                    if out.disposition == Disposition::Interrupted {
                        self.cancel_worker(thread);
                    }
                    self.wake(thread.clone());
                    return Ok(out);
                }
                Err(herm_store::Error::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contended)
    }
}
