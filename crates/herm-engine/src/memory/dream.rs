//! Dreaming: with `features.dreaming`, a deployment idle for `memory.dream_after` that has new
//! memory material since its last dream (versions written by anything but a dream) starts a
//! dream run (kind `dream`, in the memory thread) that consolidates its memory: merge,
//! dedupe, prune, rewrite. The run's memory versions are the dream's reviewable change set.
//! A dream never starts while other work is active in the deployment, and yields (ends as
//! `interrupted`, `yielded`) at its next step if some starts; the timer then looks again.
//! Operators start one with `POST …/dreams`.

use crate::submit::Origin;
use crate::timers::{Fired, TimerKind};
use crate::{Engine, Error, Result};
use chrono::Duration;
use herm_store::{ClaimedTimer, DreamRecord};
use herm_types::memory::{Dream, DreamChange, DreamStatus, MemoryOperation};
use herm_types::*;

/// Characters of memory a dream is shown at most (the rest it finds with `memory_search`).
const MAX_MEMORY: usize = 96_000;
/// After finding other work active, look again this much later.
const BUSY_RETRY_MINUTES: i64 = 10;

/// A dream's status from its run's.
pub fn status(run: Option<RunStatus>) -> DreamStatus {
    match run {
        None | Some(RunStatus::Queued) => DreamStatus::Pending,
        Some(RunStatus::Running | RunStatus::WaitingOnHuman) => DreamStatus::Running,
        Some(RunStatus::Completed) => DreamStatus::Completed,
        Some(RunStatus::Error) => DreamStatus::Failed,
        Some(RunStatus::Interrupted) => DreamStatus::Cancelled,
    }
}

fn view(d: DreamRecord, changes: Option<Vec<DreamChange>>) -> Dream {
    Dream {
        dream_id: d.id,
        status: status(d.run.as_ref().map(|r| r.1)),
        run_id: d.run.map(|r| r.0),
        reason: d.reason,
        created_at: d.created_at,
        changes,
    }
}

impl Engine {
    /// (Re)arms the deployment's dream timer.
    pub(crate) async fn arm_dream(&self, dep: &DeploymentId, at: chrono::DateTime<chrono::Utc>) {
        let payload = serde_json::json!({ "deployment_id": dep });
        if let Err(e) = self.set_timer(format!("dream:{dep}"), TimerKind::Dream, at, payload).await {
            tracing::warn!(deployment = %dep, error = %e, "could not arm the dream timer");
        }
    }

    /// `POST …/dreams`: dream now (409 while other work is active in the deployment).
    pub async fn start_dream(&self, dep: &DeploymentId) -> Result<Dream> {
        self.start_dream_with(dep, &Brief::default()).await
    }

    /// Dreams now with a brief: guidance and conversations to learn from besides the memory.
    pub async fn start_dream_with(&self, dep: &DeploymentId, brief: &Brief) -> Result<Dream> {
        let d = self.deployment(dep).await?;
        if !d.spec.features.memory {
            return Err(Error::Conflict("memory is off for this deployment (`features.memory`)".into()));
        }
        if self.store().work_active(dep).await? {
            return Err(Error::Conflict(
                "a run is active in this deployment; a dream runs only when it is idle".into(),
            ));
        }
        Ok(view(self.dream(dep, "api", false, brief).await?, None))
    }

    pub async fn list_dreams(&self, dep: &DeploymentId, before: Option<DreamId>, limit: usize) -> Result<Vec<Dream>> {
        self.deployment(dep).await?;
        Ok(self.store().list_dreams(dep, before, limit).await?.into_iter().map(|d| view(d, None)).collect())
    }

    /// A dream with what it changed: each memory version its run wrote, with the version
    /// before it.
    pub async fn get_dream(&self, dep: &DeploymentId, id: &DreamId) -> Result<Dream> {
        let d = match self.store().get_dream(id).await? {
            Some(d) if &d.deployment_id == dep => d,
            _ => return Err(Error::NotFound("dream")),
        };
        let changes = match &d.run {
            Some((run, _)) => self
                .store()
                .memory_versions_by_run(run)
                .await?
                .into_iter()
                .map(|v| DreamChange {
                    memory_id: v.memory_id,
                    path: v.version.path,
                    operation: v.version.operation,
                    before_version: (v.version.operation != MemoryOperation::Created).then(|| v.version.version - 1),
                    after_version: (v.version.operation != MemoryOperation::Deleted).then_some(v.version.version),
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(view(d, Some(changes)))
    }

    /// Records a dream and starts its run (its worker after the timer batch `from_timer`).
    async fn dream(&self, dep: &DeploymentId, reason: &str, from_timer: bool, brief: &Brief) -> Result<DreamRecord> {
        let rec = DreamRecord {
            id: DreamId::new(),
            deployment_id: dep.clone(),
            reason: reason.into(),
            created_at: now(),
            run: None,
        };
        self.store().insert_dream(rec.clone()).await?;
        let material = self.store().memory_material(dep).await?;
        let content = dream_message(&self.memory_listing(dep, MAX_MEMORY).await?, brief);
        let trigger = RunTrigger { dream_id: Some(rec.id.to_string()), ..Default::default() };
        let origin = Origin { kind: RunKind::Dream, trigger: Some(trigger), from_timer };
        let run = self.start_memory_run(dep, &origin, content, format!("dream:{}", rec.id)).await?;
        self.store().set_mark(&format!("dreamed:{dep}"), &material.to_string()).await?;
        let status = run.map(|r| (r, RunStatus::Queued));
        Ok(DreamRecord { run: status, ..rec })
    }

    /// The dream timer: dream if the deployment is idle and has new material.
    pub(crate) async fn dream_due(&self, t: &ClaimedTimer) -> Fired {
        let Some(dep) = t.key.strip_prefix("dream:").and_then(|s| DeploymentId::parse(s).ok()) else {
            return Fired::Done;
        };
        match self.dream_if_due(&dep).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(deployment = %dep, error = %e, "dreaming failed; trying again in ten minutes");
                Fired::Again(self.now() + Duration::minutes(BUSY_RETRY_MINUTES))
            }
        }
    }

    async fn dream_if_due(&self, dep: &DeploymentId) -> Result<Fired> {
        let d = match self.store().get_deployment(dep).await? {
            Some(d) if d.status != DeploymentStatus::Deleted => d,
            _ => return Ok(Fired::Done),
        };
        if !(d.spec.features.memory && d.spec.features.dreaming) {
            return Ok(Fired::Done);
        }
        if self.store().work_active(dep).await? {
            return Ok(Fired::Again(self.now() + Duration::minutes(BUSY_RETRY_MINUTES)));
        }
        let material = self.store().memory_material(dep).await?;
        let dreamed: i64 =
            self.store().get_mark(&format!("dreamed:{dep}")).await?.and_then(|v| v.parse().ok()).unwrap_or(0);
        if material > dreamed {
            self.dream(dep, "idle", true, &Brief::default()).await?;
        }
        Ok(Fired::Done)
    }

    /// Whether a dream run must yield now: other work started in its deployment.
    pub(crate) async fn dream_must_yield(&self, dep: &DeploymentId) -> bool {
        matches!(self.store().work_active(dep).await, Ok(true))
    }

    /// A dream yielded: look again once the deployment has been idle long enough.
    pub(crate) async fn dream_yielded(&self, dep: &DeploymentId) {
        let later = Duration::from_std(self.options().memory.dream_after).unwrap_or_default();
        self.arm_dream(dep, self.now() + later).await;
    }
}

/// What a dream is given besides the memory: guidance on what to keep and how to organise
/// it, and conversations (transcripts) to learn from.
#[derive(Clone, Debug, Default)]
pub struct Brief {
    pub instructions: Option<String>,
    pub conversations: Option<String>,
}

/// Characters of conversations a dream is given at most (the most recent are kept).
pub const MAX_CONVERSATIONS: usize = 200_000;

fn dream_message(memories: &str, brief: &Brief) -> String {
    let mut extra = String::new();
    if let Some(c) = brief.conversations.as_deref().filter(|c| !c.trim().is_empty()) {
        extra.push_str(
            "\n\nAlso learn from the conversations below: record what they teach that is durable (preferences, \
             corrections, facts), in the same tidy set.",
        );
        let start = c.char_indices().rev().nth(MAX_CONVERSATIONS).map_or(0, |(i, _)| i);
        extra.push_str(&format!("\n\n## Conversations\n{}", &c[start..]));
    }
    if let Some(i) = brief.instructions.as_deref().filter(|i| !i.trim().is_empty()) {
        extra.push_str(&format!("\n\n## Instructions (they take precedence over the guidance above)\n{i}"));
    }
    let base = base_message(memories);
    format!("{base}{extra}")
}

fn base_message(memories: &str) -> String {
    format!(
        "You are this agent's memory, dreaming: consolidate what it has learned about this customer. Below are \
         all its memories (path, version, text). Make them a tidy, true set:\n\
         - merge memories that say the same thing into one (write the merged text to one path with \
         `memory_write`, giving its version as `expected_version`, and `memory_delete` the others);\n\
         - where two contradict, keep the newer one;\n\
         - delete what is stale or no longer useful;\n\
         - rewrite unclear ones short and plain, one observation per file under `preferences/`, `corrections/` \
         or `facts/`.\n\
         Invent nothing, never record credentials, and change nothing that is already right. When done, reply \
         with one line summarising the changes.\n\n## Memories\n{memories}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brief_adds_conversations_and_instructions() {
        let plain = dream_message("m", &Brief::default());
        assert!(plain.ends_with("## Memories\nm") && !plain.contains("## Conversations"), "{plain}");
        let brief =
            Brief { instructions: Some("Only keep tea facts.".into()), conversations: Some("user: I like tea".into()) };
        let m = dream_message("m", &brief);
        assert!(m.contains("## Conversations\nuser: I like tea"), "{m}");
        assert!(m.ends_with("take precedence over the guidance above)\nOnly keep tea facts."), "{m}");
        let long = Brief { instructions: None, conversations: Some(format!("old{}", "x".repeat(MAX_CONVERSATIONS))) };
        assert!(!dream_message("m", &long).contains("old"), "the oldest part is cut");
    }

    #[test]
    fn a_dream_is_where_its_run_is() {
        let table = [
            (None, DreamStatus::Pending),
            (Some(RunStatus::Queued), DreamStatus::Pending),
            (Some(RunStatus::Running), DreamStatus::Running),
            (Some(RunStatus::WaitingOnHuman), DreamStatus::Running),
            (Some(RunStatus::Completed), DreamStatus::Completed),
            (Some(RunStatus::Error), DreamStatus::Failed),
            (Some(RunStatus::Interrupted), DreamStatus::Cancelled),
        ];
        for (run, want) in table {
            assert_eq!(status(run), want, "{run:?}");
        }
    }
}
