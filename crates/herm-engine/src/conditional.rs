//! The one way the application layer writes to a thread's log on a person's behalf (a
//! message, a steer, an answer, an interrupt, a file change): read what the write depends on,
//! plan an append conditioned on exactly that, and plan again if the thread moved in between.
//! Run workers write under their lease instead (see `worker`); nothing else appends.

use crate::{Engine, Error, Result};
use herm_store::{Append, RunRecord};
use herm_types::{Event, ThreadId};

/// Attempts before giving up with [`Error::Contended`]: a thread that moves this often under
/// one request is being hammered, and the caller is told to retry.
const ATTEMPTS: usize = 8;

/// What a plan needs read before it plans: each read is a query, so a plan asks only for
/// what its conditions depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Nothing (an append with no condition).
    Nothing,
    /// The thread's active run.
    ActiveRun,
    /// The thread's whole log.
    Log,
    /// Both.
    ActiveRunAndLog,
}

/// What a plan sees: the thread's active run and its log, as far as it asked for them.
pub(crate) struct Snapshot {
    pub active: Option<RunRecord>,
    pub log: Vec<Event>,
}

impl Snapshot {
    /// The sequence of the last event read (0 for an empty log).
    pub fn last_sequence(&self) -> i64 {
        self.log.last().map(|e| e.sequence.0).unwrap_or(0)
    }
}

impl Engine {
    /// Appends what `plan` builds from a fresh [`Snapshot`], retrying while the store refuses
    /// the append's conditions. `plan` may refuse with an error, which ends the attempt.
    pub(crate) async fn append_planned<T>(
        &self,
        thread: &ThreadId,
        reads: Reads,
        mut plan: impl FnMut(&Snapshot) -> Result<(Append, T)>,
    ) -> Result<T> {
        let store = self.store();
        for _ in 0..ATTEMPTS {
            let active = match reads {
                Reads::ActiveRun | Reads::ActiveRunAndLog => store.active_run(thread).await?,
                Reads::Nothing | Reads::Log => None,
            };
            let log = match reads {
                Reads::Log | Reads::ActiveRunAndLog => store.run_log(thread).await?,
                Reads::Nothing | Reads::ActiveRun => Vec::new(),
            };
            let (append, out) = plan(&Snapshot { active, log })?;
            match store.append(append).await {
                Ok(_) => return Ok(out),
                Err(herm_store::Error::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contended)
    }
}
