//! The last sequence of each thread appended to since the store opened, so a worker can tell
//! that a thread holds nothing it has not read without reading it.
//!
//! Exact where it answers: every event enters the log through an append, appends commit on
//! the one writer thread, and the writer sets the head after each commit, before the
//! appender hears of it. Bounded: when full the map is emptied, and a thread it does not
//! hold is unknown (the caller reads).

use herm_types::ThreadId;
use parking_lot::Mutex;
use std::collections::HashMap;

/// Threads remembered at most (about 100 bytes each).
const CAPACITY: usize = 65_536;

#[derive(Default)]
pub(crate) struct Heads {
    map: Mutex<HashMap<ThreadId, i64>>,
}

impl Heads {
    /// Records that `thread`'s log now ends at `last` (called in commit order).
    pub(crate) fn set(&self, thread: &ThreadId, last: i64) {
        let mut map = self.map.lock();
        if map.len() >= CAPACITY && !map.contains_key(thread) {
            map.clear();
        }
        map.insert(thread.clone(), last);
    }

    /// The last sequence of `thread`, if an append to it committed since the map last
    /// emptied.
    pub(crate) fn get(&self, thread: &ThreadId) -> Option<i64> {
        self.map.lock().get(thread).copied()
    }

    /// Forgets `thread` (deleted).
    pub(crate) fn forget(&self, thread: &ThreadId) {
        self.map.lock().remove(thread);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_the_last_set_and_a_full_map_forgets_rather_than_guesses() {
        let h = Heads::default();
        let a = ThreadId::new();
        assert_eq!(h.get(&a), None);
        h.set(&a, 3);
        h.set(&a, 7);
        assert_eq!(h.get(&a), Some(7));
        for _ in 1..CAPACITY {
            h.set(&ThreadId::new(), 1);
        }
        assert_eq!(h.get(&a), Some(7), "full, but nothing evicted yet");
        let b = ThreadId::new();
        h.set(&b, 2);
        assert_eq!(h.get(&a), None, "a thread the map let go of is unknown, never stale");
        assert_eq!(h.get(&b), Some(2));
        h.forget(&b);
        assert_eq!(h.get(&b), None);
    }
}
