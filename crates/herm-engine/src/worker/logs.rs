//! Thread logs kept between a thread's worker sessions, so a thread's next run reads only
//! what was committed since (a conversation's next message would otherwise read and decode
//! the whole conversation again), each with the settled part of its conversation (so the
//! next run's first request does not rebuild it either). A worker takes its thread's log out when it starts and puts
//! it back when it stops, so a log is held by one worker or by the cache, never both. Logs
//! are append-only and a worker reads everything after the last event it holds, so a cached
//! log is a correct prefix even when other writers (another node) appended since.
//! Bounded by an estimate of the bytes held and by the number of threads; the least recently
//! put logs go first. A deleted thread's or deployment's logs are dropped at once.

use crate::history::Settled;
use herm_types::event::EventKind;
use herm_types::{DeploymentId, Event, ThreadId};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

/// The most bytes (estimated) of logs the cache holds.
const MAX_BYTES: usize = 64 << 20;
/// The most threads whose logs it holds.
const MAX_THREADS: usize = 4096;

#[derive(Default)]
pub(crate) struct LogCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    logs: HashMap<ThreadId, Entry>,
    /// Threads in the order their logs were put, with the put's tick (older ticks are stale).
    order: VecDeque<(ThreadId, u64)>,
    bytes: usize,
    tick: u64,
}

struct Entry {
    kept: Kept,
    bytes: usize,
    tick: u64,
}

/// A thread's log (its events from its first, without gaps) and the settled part of its
/// conversation built from that log.
#[derive(Default)]
pub(crate) struct Kept {
    pub(crate) log: Vec<Event>,
    pub(crate) conversation: Settled,
}

impl LogCache {
    /// The thread's cached log (empty when none), which leaves the cache.
    pub(crate) fn take(&self, thread: &ThreadId) -> Kept {
        let mut s = self.state.lock();
        match s.logs.remove(thread) {
            Some(e) => {
                s.bytes -= e.bytes;
                e.kept
            }
            None => Kept::default(),
        }
    }

    /// Keeps `kept` for the thread's next worker.
    pub(crate) fn put(&self, thread: &ThreadId, kept: Kept) {
        let bytes = kept.log.iter().map(approx_bytes).sum::<usize>() + kept.conversation.approx_bytes();
        if kept.log.is_empty() || bytes > MAX_BYTES / 4 {
            return;
        }
        let mut s = self.state.lock();
        s.tick += 1;
        let tick = s.tick;
        if let Some(old) = s.logs.insert(thread.clone(), Entry { kept, bytes, tick }) {
            s.bytes -= old.bytes;
        }
        s.bytes += bytes;
        s.order.push_back((thread.clone(), tick));
        while s.bytes > MAX_BYTES || s.logs.len() > MAX_THREADS {
            let Some((t, tick)) = s.order.pop_front() else { break };
            if s.logs.get(&t).is_some_and(|e| e.tick == tick)
                && let Some(e) = s.logs.remove(&t)
            {
                s.bytes -= e.bytes;
            }
        }
        // Stale order entries (logs taken or put again) are dropped when they reach the front;
        // keep the queue from growing past what it refers to.
        if s.order.len() > 2 * MAX_THREADS {
            let State { logs, order, .. } = &mut *s;
            order.retain(|(t, tick)| logs.get(t).is_some_and(|e| e.tick == *tick));
        }
    }

    /// Drops a deleted thread's log.
    pub(crate) fn forget_thread(&self, thread: &ThreadId) {
        drop(self.take(thread));
    }

    /// Drops the logs of a deleted deployment's threads.
    pub(crate) fn forget_deployment(&self, dep: &DeploymentId) {
        let mut s = self.state.lock();
        let gone: Vec<ThreadId> = s
            .logs
            .iter()
            .filter(|(_, e)| e.kept.log.first().is_some_and(|ev| &ev.deployment_id == dep))
            .map(|(t, _)| t.clone())
            .collect();
        for t in gone {
            if let Some(e) = s.logs.remove(&t) {
                s.bytes -= e.bytes;
            }
        }
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.logs.len(), s.bytes)
    }
}

/// About how much memory an event holds: a fixed part and its text.
fn approx_bytes(e: &Event) -> usize {
    use crate::compaction::json_len;
    let text = match &e.kind {
        EventKind::Message { content, attachments, .. } => content.len() + attachments.len() * 256,
        EventKind::AgentMessage { content } => content.len(),
        EventKind::ToolCall { arguments, .. } => json_len(arguments),
        EventKind::ToolResult { result, attachments, .. } => result.len() + attachments.len() * 256,
        EventKind::ModelCall { tool_calls, .. } => tool_calls.iter().map(|c| 64 + json_len(&c.arguments)).sum(),
        EventKind::SteeringRequest { summary, arguments, question, .. } => {
            summary.len() + arguments.as_ref().map_or(0, json_len) + question.as_ref().map_or(0, String::len)
        }
        EventKind::SteeringResponse { answer, message, input, .. } => {
            answer.as_ref().map_or(0, String::len)
                + message.as_ref().map_or(0, String::len)
                + input.as_ref().map_or(0, json_len)
        }
        EventKind::Steer { message } => message.len(),
        EventKind::Compaction { summary, .. } => summary.len(),
        _ => 0,
    };
    256 + text
}

#[cfg(test)]
mod tests {
    use super::*;
    use herm_types::event::Role;
    use herm_types::{DeploymentSeq, EventId, Sequence};

    fn log(dep: &DeploymentId, thread: &ThreadId, n: usize, text: usize) -> Kept {
        let log = (1..=n as i64)
            .map(|i| Event {
                id: EventId::new(),
                sequence: Sequence(i),
                deployment_sequence: DeploymentSeq(i),
                deployment_id: dep.clone(),
                thread_id: thread.clone(),
                run_id: None,
                created_at: herm_types::now(),
                kind: EventKind::Message { role: Role::User, content: "x".repeat(text), attachments: vec![] },
            })
            .collect();
        Kept { log, conversation: Settled::default() }
    }

    #[test]
    fn a_log_is_held_by_the_cache_or_by_one_worker() {
        let (c, dep, t) = (LogCache::default(), DeploymentId::new(), ThreadId::new());
        assert!(c.take(&t).log.is_empty());
        c.put(&t, log(&dep, &t, 3, 10));
        assert_eq!(c.held(), (1, 3 * (256 + 10)));
        let taken = c.take(&t);
        assert_eq!(taken.log.len(), 3);
        assert!(c.take(&t).log.is_empty(), "taken once");
        assert_eq!(c.held(), (0, 0));
        c.put(&t, taken);
        c.put(&t, log(&dep, &t, 4, 10));
        assert_eq!(c.take(&t).log.len(), 4, "the later put replaces the earlier");
    }

    #[test]
    fn the_oldest_logs_go_first_past_the_bound_and_huge_ones_are_not_kept() {
        let (c, dep) = (LogCache::default(), DeploymentId::new());
        let threads: Vec<ThreadId> = (0..5).map(|_| ThreadId::new()).collect();
        // Each a quarter of the bound (the largest kept): the fifth put evicts the first.
        let size = MAX_BYTES / 4 - 256;
        for t in &threads {
            c.put(t, log(&dep, t, 1, size));
        }
        assert!(c.take(&threads[0]).log.is_empty());
        assert_eq!(c.take(&threads[4]).log.len(), 1);
        let big = ThreadId::new();
        c.put(&big, log(&dep, &big, 1, MAX_BYTES / 2));
        assert!(c.take(&big).log.is_empty());
        let (_, bytes) = c.held();
        assert!(bytes <= MAX_BYTES);
    }

    #[test]
    fn deleting_drops_the_logs() {
        let (c, a, b) = (LogCache::default(), DeploymentId::new(), DeploymentId::new());
        let (t1, t2, t3) = (ThreadId::new(), ThreadId::new(), ThreadId::new());
        c.put(&t1, log(&a, &t1, 2, 1));
        c.put(&t2, log(&a, &t2, 2, 1));
        c.put(&t3, log(&b, &t3, 2, 1));
        c.forget_deployment(&a);
        assert_eq!(c.held().0, 1);
        c.forget_thread(&t3);
        assert_eq!(c.held(), (0, 0));
    }

    #[test]
    fn the_order_queue_stays_bounded_when_logs_come_and_go() {
        let (c, dep, t) = (LogCache::default(), DeploymentId::new(), ThreadId::new());
        for _ in 0..(3 * MAX_THREADS) {
            c.put(&t, log(&dep, &t, 1, 1));
            let _ = c.take(&t);
        }
        assert!(c.state.lock().order.len() <= 2 * MAX_THREADS + 1);
    }
}
