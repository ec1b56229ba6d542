//! A least-recently-used map under a byte cap: the node's caches of materialised datasets
//! and of loaded models.

use std::collections::HashMap;
use std::hash::Hash;

/// Values with a size, the least recently used evicted when a new one would pass the cap
/// (a value larger than the cap is still kept, alone).
#[derive(Debug)]
pub struct Lru<K, V> {
    cap: u64,
    used: u64,
    tick: u64,
    entries: HashMap<K, (V, u64, u64)>,
}

impl<K: Eq + Hash + Clone, V: Clone> Lru<K, V> {
    /// An empty map holding at most `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Self {
            cap,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// The value of `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let t = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.2 = t;
            e.0.clone()
        })
    }

    /// Inserts `value` of `bytes`; returns what was evicted to make room.
    pub fn put(&mut self, key: K, value: V, bytes: u64) -> Vec<V> {
        let mut evicted = Vec::new();
        if let Some((_, b, _)) = self.entries.remove(&key) {
            self.used -= b;
        }
        while self.used + bytes > self.cap && !self.entries.is_empty() {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.2)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            if let Some((v, b, _)) = self.entries.remove(&oldest) {
                self.used -= b;
                evicted.push(v);
            }
        }
        self.tick += 1;
        self.used += bytes;
        self.entries.insert(key, (value, bytes, self.tick));
        evicted
    }

    /// Drops `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(v, b, _)| {
            self.used -= b;
            v
        })
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|e| &e.0)
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The cap.
    pub fn cap(&self) -> u64 {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first_and_the_cap_holds() {
        let mut c: Lru<&str, u32> = Lru::new(3500);
        assert!(c.put("a", 1, 1600).is_empty());
        c.put("b", 2, 1600);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.put("c", 3, 1600), vec![2], "b was least recently used");
        assert_eq!(c.get(&"b"), None);
        assert!(c.get(&"a").is_some() && c.get(&"c").is_some());
        assert!(c.used() <= c.cap());
        // Replacing a key does not count it twice.
        c.put("a", 4, 1600);
        assert_eq!(c.used(), 3200);
    }
}
