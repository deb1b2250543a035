//! A bounded map for memoising classifications: two generations, so the
//! entries used since the last rotation survive it and memory stays bounded
//! without per-entry bookkeeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct BoundedCache<K, V> {
    capacity: usize,
    inner: Mutex<Generations<K, V>>,
}

struct Generations<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
}

impl<K: Hash + Eq, V: Clone> BoundedCache<K, V> {
    /// Holds at most `2 * capacity` entries.
    pub fn new(capacity: usize) -> Self {
        BoundedCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = guard.current.get(key) {
            return Some(value.clone());
        }
        // Promote an entry that is still in use into the current generation.
        let (key, value) = guard.previous.remove_entry(key)?;
        let out = value.clone();
        Self::put(&mut guard, self.capacity, key, value);
        Some(out)
    }

    pub fn insert(&self, key: K, value: V) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::put(&mut guard, self.capacity, key, value);
    }

    fn put(generations: &mut Generations<K, V>, capacity: usize, key: K, value: V) {
        if generations.current.len() >= capacity {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(key, value);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.current.len() + guard.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_recent_entries() {
        let cache = BoundedCache::new(4);
        for i in 0..100 {
            cache.insert(i, i * 2);
        }
        assert!(cache.len() <= 8);
        assert_eq!(cache.get(&99), Some(198));
        assert_eq!(cache.get(&0), None);
    }

    #[test]
    fn promotes_entries_from_the_previous_generation() {
        let cache = BoundedCache::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3); // rotates: previous = {a, b}
        assert_eq!(cache.get(&"a"), Some(1)); // promoted
        cache.insert("d", 4); // rotates: previous = {c, a}
        assert_eq!(cache.get(&"a"), Some(1));
    }
}
