//! Base64 of recently shown media, so a conversation that carries an image does not read
//! and encode it again for every model call. Bounded by total size; the oldest entry goes
//! first.

use herm_types::DeploymentId;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

type Key = (DeploymentId, String);

pub struct MediaCache {
    max_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Arc<str>>,
    order: VecDeque<Key>,
    bytes: usize,
}

impl MediaCache {
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, inner: Mutex::new(Entries::default()) }
    }

    pub fn get(&self, dep: &DeploymentId, sha: &str) -> Option<Arc<str>> {
        self.inner.lock().map.get(&(dep.clone(), sha.to_owned())).cloned()
    }

    pub fn put(&self, dep: &DeploymentId, sha: &str, b64: Arc<str>) {
        if b64.len() > self.max_bytes {
            return;
        }
        let mut e = self.inner.lock();
        let key = (dep.clone(), sha.to_owned());
        if e.map.contains_key(&key) {
            return;
        }
        while e.bytes + b64.len() > self.max_bytes {
            let Some(old) = e.order.pop_front() else { break };
            if let Some(v) = e.map.remove(&old) {
                e.bytes -= v.len();
            }
        }
        e.bytes += b64.len();
        e.order.push_back(key.clone());
        e.map.insert(key, b64);
    }

    /// Drops a deployment's entries (its attachments were deleted).
    pub fn forget(&self, dep: &DeploymentId) {
        let mut e = self.inner.lock();
        let Entries { map, order, bytes } = &mut *e;
        order.retain(|k| {
            if &k.0 == dep {
                if let Some(v) = map.remove(k) {
                    *bytes -= v.len();
                }
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_size_oldest_first() {
        let c = MediaCache::new(10);
        let d = DeploymentId::new();
        c.put(&d, "a", "1234".into());
        c.put(&d, "b", "5678".into());
        c.put(&d, "c", "90ab".into());
        assert!(c.get(&d, "a").is_none());
        assert!(c.get(&d, "b").is_some() && c.get(&d, "c").is_some());
        c.put(&d, "huge", "x".repeat(11).into());
        assert!(c.get(&d, "huge").is_none());
        c.forget(&d);
        assert!(c.get(&d, "c").is_none());
        assert!(c.get(&DeploymentId::new(), "b").is_none());
    }
}
