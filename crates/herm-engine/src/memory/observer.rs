//! The observer: when a thread has been idle for `memory.observe_after` after a run, an
//! observer run (kind `observer`, journaled and resumable like any run) reads what was said
//! since the last observation and records durable observations with the memory tools,
//! merged into existing memories rather than appended as near-duplicates. Memory runs live
//! in the deployment's memory thread; each sees only its own run's log.
//!
//! Idleness is a durable timer per thread (`observe:<thread>`), set when a run ends there
//! and none is pending; when it fires it waits on until the thread's last event is
//! `observe_after` old. An observation is started once per (thread, last sequence) and
//! skipped while a run is active on the thread.

use crate::submit::Origin;
use crate::timers::{Fired, TimerKind};
use crate::{Engine, Error, Result};
use chrono::Duration;
use herm_store::{ClaimedTimer, NewThread, Once};
use herm_types::config::BusyPolicy;
use herm_types::event::Role;
use herm_types::*;

/// Characters of conversation an observer reads at most (the most recent).
const MAX_TRANSCRIPT: usize = 48_000;
/// Characters of existing memory shown to the observer at most.
const MAX_EXISTING: usize = 24_000;

impl Engine {
    /// A run ended in `thread` (not a memory run): the thread is observed once it stays idle,
    /// and the deployment may dream once it does.
    pub(crate) async fn work_ended(&self, dep: &herm_store::DeploymentRecord, thread: &ThreadId) {
        if !dep.spec.features.memory {
            return;
        }
        let now = self.now();
        let opts = &self.options().memory;
        let key = format!("observe:{thread}");
        // A timer due later than any claim could have taken it is left alone (a read, not a
        // durable write per run): when it fires it waits on until the thread's last event is
        // `observe_after` old.
        let armed = matches!(self.store().get_timer(&key).await, Ok(Some(t)) if t.due_at > now + Duration::seconds(1));
        if !armed {
            let observe_at = now + Duration::from_std(opts.observe_after).unwrap_or_default();
            let payload = serde_json::json!({ "deployment_id": dep.id });
            if let Err(e) = self.set_timer(key, TimerKind::Observe, observe_at, payload).await {
                tracing::warn!(thread = %thread, error = %e, "could not arm the observer");
            }
        }
        if dep.spec.features.dreaming {
            self.arm_dream(&dep.id, now + Duration::from_std(opts.dream_after).unwrap_or_default()).await;
        }
    }

    /// The deployment's memory thread (made on first use).
    pub(crate) async fn memory_thread(&self, dep: &DeploymentId) -> Result<ThreadId> {
        let key = format!("memory_thread:{dep}");
        if let Some(t) = self.store().get_mark(&key).await?.and_then(|t| ThreadId::parse(&t).ok()) {
            return Ok(t);
        }
        let id = ThreadId::new();
        let t = NewThread {
            id: id.clone(),
            deployment_id: dep.clone(),
            title: Some("Memory (observer and dreams)".into()),
        };
        self.store().create_thread(t).await?;
        let kept = self.store().mark_once(&key, id.as_str()).await?;
        ThreadId::parse(&kept).map_err(|_| Error::Validation("corrupt memory thread mark".into()))
    }

    /// Starts a memory run (observer or dream) in the deployment's memory thread, once per
    /// `once_key`; `origin` says its kind and trigger.
    pub(crate) async fn start_memory_run(
        &self,
        dep: &DeploymentId,
        origin: &Origin,
        content: String,
        once_key: String,
    ) -> Result<Option<RunId>> {
        let thread = self.memory_thread(dep).await?;
        let once = Once::Key { key: once_key, run_id: None };
        match self.submit(&thread, BusyPolicy::Queue, content, Vec::new(), origin, Some(once)).await {
            Ok(s) => Ok(Some(s.run_id)),
            Err(Error::Store(herm_store::Error::Duplicate)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The observer timer: observe the thread if it is idle and has something new.
    pub(crate) async fn observe_due(&self, t: &ClaimedTimer) -> Fired {
        let Some(thread) = t.key.strip_prefix("observe:").and_then(|s| ThreadId::parse(s).ok()) else {
            return Fired::Done;
        };
        match self.observe(&thread).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(thread = %thread, error = %e, "observing a thread failed; trying again in a minute");
                Fired::Again(self.now() + Duration::minutes(1))
            }
        }
    }

    async fn observe(&self, thread: &ThreadId) -> Result<Fired> {
        let Some(th) = self.store().get_thread(thread).await? else { return Ok(Fired::Done) };
        let dep = match self.store().get_deployment(&th.deployment_id).await? {
            Some(d) if d.spec.features.memory && d.status != DeploymentStatus::Deleted => d,
            _ => return Ok(Fired::Done),
        };
        if self.store().active_run(thread).await?.is_some() {
            // Not idle: a run is active. Its end arms the timer again; look later regardless.
            let later = Duration::from_std(self.options().memory.observe_after).unwrap_or_default();
            return Ok(Fired::Again(self.now() + later));
        }
        let mark_key = format!("observed:{thread}");
        let seen: i64 = self.store().get_mark(&mark_key).await?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let events = self.store().thread_events(thread, seen, 1 << 20).await?;
        let Some(last_event) = events.last() else { return Ok(Fired::Done) };
        let quiet_at =
            last_event.created_at + Duration::from_std(self.options().memory.observe_after).unwrap_or_default();
        if quiet_at > self.now() {
            // Something happened since the timer was set: idle is counted from it.
            return Ok(Fired::Again(quiet_at));
        }
        let last = last_event.sequence.0;
        let transcript = transcript(&events);
        if !transcript.is_empty() {
            let existing = self.memory_listing(&dep.id, MAX_EXISTING).await?;
            let trigger =
                RunTrigger { thread_id: Some(thread.to_string()), through_sequence: Some(last), ..Default::default() };
            let origin = Origin { kind: RunKind::Observer, trigger: Some(trigger), from_timer: true };
            let content = observer_message(&transcript, &existing);
            self.start_memory_run(&dep.id, &origin, content, format!("observe:{thread}:{last}")).await?;
        }
        self.store().set_mark(&mark_key, &last.to_string()).await?;
        Ok(Fired::Done)
    }

    /// The deployment's live memories as text (path, version, content), newest first, cut
    /// at `max` characters.
    pub(crate) async fn memory_listing(&self, dep: &DeploymentId, max: usize) -> Result<String> {
        let mut all = self.store().memory_texts(dep).await?;
        all.sort_by_key(|m| std::cmp::Reverse(m.updated_at));
        let mut out = String::new();
        for (i, m) in all.iter().enumerate() {
            let entry = format!("### {} (version {})\n{}\n\n", m.path, m.version, m.content);
            if out.len() + entry.len() > max {
                out.push_str(&format!("({} more memories not shown: use memory_search)\n", all.len() - i));
                break;
            }
            out.push_str(&entry);
        }
        Ok(if out.is_empty() { "(none yet)\n".into() } else { out })
    }
}

/// What the people and the agent said in `events`, the most recent [`MAX_TRANSCRIPT`]
/// characters of it (pure).
pub fn transcript(events: &[Event]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::Message { role: Role::User, content, .. } => lines.push(format!("User: {content}")),
            EventKind::Steer { message } => lines.push(format!("User (steering): {message}")),
            EventKind::AgentMessage { content } if !content.trim().is_empty() => {
                lines.push(format!("Agent: {content}"))
            }
            EventKind::SteeringResponse { answer: Some(a), .. } => lines.push(format!("User (answer): {a}")),
            _ => {}
        }
    }
    let mut out = String::new();
    for l in lines.iter().rev() {
        if out.len() + l.len() + 1 > MAX_TRANSCRIPT {
            break;
        }
        out.insert_str(0, &format!("{l}\n"));
    }
    out
}

fn observer_message(transcript: &str, existing: &str) -> String {
    format!(
        "You are this agent's memory observer. Read the conversation below and record what is worth remembering \
         in later conversations with this customer: preferences (tone, format, style), corrections the customer \
         made, and durable facts about the customer and their work. Skip small talk, one-off requests and anything \
         already recorded.\n\nUse the memory tools: one short observation per file under `preferences/`, \
         `corrections/` or `facts/` (for example `preferences/brand-voice.md`). If an existing memory covers the \
         same thing, rewrite that memory with `memory_write` (giving its version as `expected_version`) instead \
         of adding a near-duplicate; delete one the conversation shows is wrong. Never record credentials. \
         When done, reply with one line saying what you recorded.\n\n## Existing memories\n{existing}\n\
         ## Conversation\n{transcript}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64, kind: EventKind) -> Event {
        Event {
            id: EventId::new(),
            deployment_id: DeploymentId::new(),
            thread_id: ThreadId::new(),
            run_id: None,
            sequence: Sequence(seq),
            deployment_sequence: DeploymentSeq(seq),
            created_at: now(),
            kind,
        }
    }

    #[test]
    fn the_transcript_keeps_words_not_machinery() {
        let events = vec![
            ev(
                1,
                EventKind::Message {
                    role: Role::User,
                    content: "never use exclamation marks".into(),
                    attachments: vec![],
                },
            ),
            ev(2, EventKind::AgentMessage { content: "Noted.".into() }),
            ev(
                3,
                EventKind::ToolResult {
                    tool_use_id: "t".into(),
                    tool: "shell".into(),
                    result: "lots of output".into(),
                    is_error: false,
                    duration_ms: 1,
                    attachments: Vec::new(),
                    outcome: herm_types::event::ToolOutcome::Ok,
                },
            ),
            ev(4, EventKind::Steer { message: "dates as DD/MM".into() }),
        ];
        let t = transcript(&events);
        assert_eq!(t, "User: never use exclamation marks\nAgent: Noted.\nUser (steering): dates as DD/MM\n");
        let long: Vec<Event> = (0..2000)
            .map(|i| ev(i, EventKind::Message { role: Role::User, content: format!("{i:050}"), attachments: vec![] }))
            .collect();
        let t = transcript(&long);
        assert!(t.len() <= MAX_TRANSCRIPT && t.ends_with(&format!("{:050}\n", 1999)));
    }
}
