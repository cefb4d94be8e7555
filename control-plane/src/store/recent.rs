//! The state machine's memory of the objects it wrote last.
//!
//! Many writes change an object soon after it was written: the scheduler
//! binds a Pod just created, the node agent reports the status of a Pod
//! just bound, controllers update what they just created. Each such op
//! reads the stored object first, and reading it from RocksDB means a
//! lookup and a JSON decode of the whole object: 16% of a follower's CPU
//! in the scheduler benchmark. The state machine keeps the objects of its
//! last writes decoded (the same `Arc`s the watch feed carries, so on the
//! leader they mostly cost no memory of their own) and looks here first.
//!
//! The memory is bounded by the encoded size of what it holds, in two
//! generations: writes go to the young one; when it is full it becomes the
//! old one, and the old one is dropped. A deletion is remembered too, as
//! "absent", so that an older write of the same key in the old generation
//! is never found. Events are not kept: they are written once and hardly
//! ever read back by a write.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What a write left at a key: the object, or `None` when it deleted it.
pub type Written = Option<Arc<Value>>;

pub struct RecentObjects {
    young: HashMap<String, Written>,
    old: HashMap<String, Written>,
    /// Encoded bytes of what `young` holds (a deletion counts its key).
    young_bytes: usize,
    /// When `young` holds this many bytes it becomes `old`.
    generation_bytes: usize,
}

impl RecentObjects {
    /// A memory of at most about `2 * generation_bytes` of encoded objects.
    pub fn new(generation_bytes: usize) -> Self {
        RecentObjects {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            generation_bytes,
        }
    }

    /// What the last remembered write left at `key`: `Some(None)` if it
    /// deleted the object, `None` if no write of it is remembered (read the
    /// store then).
    pub fn get(&self, key: &str) -> Option<Written> {
        self.young.get(key).or_else(|| self.old.get(key)).cloned()
    }

    /// Remembers a committed write: `object` (`None` for a deletion) whose
    /// encoding took `encoded_len` bytes.
    pub fn remember(&mut self, key: String, object: Written, encoded_len: usize) {
        if key.starts_with("events/") {
            // Never kept, so no older write of it is either.
            return;
        }
        if self.young_bytes >= self.generation_bytes {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += encoded_len.max(key.len());
        self.young.insert(key, object);
    }

    /// Forgets everything (the store was replaced by a snapshot).
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }

    /// How many keys are remembered (young and old, overlaps counted twice).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(n: u64) -> Written {
        Some(Arc::new(json!({"metadata": {"resourceVersion": n.to_string()}})))
    }

    #[test]
    fn the_last_write_of_a_key_wins_and_a_deletion_is_remembered_as_absent() {
        let mut recent = RecentObjects::new(1 << 20);
        assert_eq!(recent.get("pods/d/a"), None, "never written: unknown");
        recent.remember("pods/d/a".into(), obj(1), 100);
        recent.remember("pods/d/a".into(), obj(2), 100);
        assert_eq!(recent.get("pods/d/a"), Some(obj(2)));
        recent.remember("pods/d/a".into(), None, 0);
        assert_eq!(recent.get("pods/d/a"), Some(None), "deleted: known absent");
    }

    #[test]
    fn memory_is_bounded_to_two_generations_and_keeps_the_newest() {
        let mut recent = RecentObjects::new(1000);
        for i in 0..100u64 {
            recent.remember(format!("pods/d/p{i}"), obj(i), 100);
        }
        // Generations of 10 writes of 100 bytes: the young one (full or
        // filling) and the one before it.
        assert!(recent.len() <= 20, "holds {} keys", recent.len());
        assert_eq!(recent.get("pods/d/p99"), Some(obj(99)));
        assert_eq!(recent.get("pods/d/p90"), Some(obj(90)));
        assert_eq!(recent.get("pods/d/p50"), None, "long gone: read the store");
    }

    #[test]
    fn a_deletion_hides_an_older_write_kept_in_the_old_generation() {
        let mut recent = RecentObjects::new(250);
        recent.remember("pods/d/a".into(), obj(1), 100);
        recent.remember("pods/d/b".into(), obj(2), 100);
        recent.remember("pods/d/c".into(), obj(3), 100);
        // The young generation is full: the next write starts a new one.
        recent.remember("pods/d/a".into(), None, 0);
        assert_eq!(recent.get("pods/d/a"), Some(None));
        assert_eq!(
            recent.get("pods/d/b"),
            Some(obj(2)),
            "still in the old generation"
        );
    }

    #[test]
    fn events_are_not_kept_and_clearing_forgets_everything() {
        let mut recent = RecentObjects::new(1 << 20);
        recent.remember("events/d/e".into(), obj(1), 100);
        assert_eq!(recent.get("events/d/e"), None);
        recent.remember("pods/d/a".into(), obj(1), 100);
        recent.clear();
        assert_eq!(recent.get("pods/d/a"), None);
    }
}
