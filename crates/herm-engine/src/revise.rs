//! The rules of a revision-conditional change (a deployment's spec, an automation, a goal):
//! read the record, refuse if `If-Match` names another revision ([`check_if_match`]),
//! compute the change, write it only at the revision read ([`written`]), and start over after
//! [`Retries::lost`] (a short random pause, longer the more attempts were lost) if another
//! write landed first. With `If-Match`, losing the race is [`Error::PreconditionFailed`]
//! instead: the caller asked for that revision only.

use crate::{Error, Result};
use std::time::Duration;

/// Attempts of one change under contention. Each lost attempt means another change landed,
/// so this bounds how many changes can overtake one request, not how long it waits.
const ATTEMPTS: usize = 100;

/// What one attempt came to.
pub(crate) enum Attempt<T> {
    Landed(T),
    /// Another write landed first: read and compute again.
    Lost,
}

/// `If-Match` against the revision just read.
pub(crate) fn check_if_match(if_match: Option<i64>, current: i64) -> Result<()> {
    if if_match.is_some_and(|r| r != current) { Err(Error::PreconditionFailed) } else { Ok(()) }
}

/// The store's answer to a conditional write (the new revision, or `Stale`).
pub(crate) fn written(r: herm_store::Result<i64>, if_match: Option<i64>) -> Result<Attempt<i64>> {
    match r {
        Ok(revision) => Ok(Attempt::Landed(revision)),
        Err(herm_store::Error::Stale) if if_match.is_none() => Ok(Attempt::Lost),
        Err(e) => Err(stale_is_precondition(e)),
    }
}

/// A conditional write or delete that lost: the caller's revision is not the current one.
pub(crate) fn stale_is_precondition(e: herm_store::Error) -> Error {
    match e {
        herm_store::Error::Stale => Error::PreconditionFailed,
        other => other.into(),
    }
}

/// Lost attempts of one change so far.
#[derive(Default)]
pub(crate) struct Retries(usize);

impl Retries {
    /// After a lost attempt: a short pause before the next (so a burst of changes spreads
    /// out instead of all re-reading at once), or [`Error::Contended`] when too many were lost.
    pub(crate) async fn lost(&mut self) -> Result<()> {
        self.0 += 1;
        if self.0 >= ATTEMPTS {
            return Err(Error::Contended);
        }
        let spread = rand::random_range(0..=(self.0 as u64).min(20));
        tokio::time::sleep(Duration::from_millis(spread)).await;
        Ok(())
    }
}
