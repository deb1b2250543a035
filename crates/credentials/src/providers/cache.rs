//! The cache of fetched `vault:`/`aws-sm:` secrets, one slot per reference.
//!
//! A slot's async lock is held while a session fetches a missing or expired
//! value, so concurrent sessions wait for one fetch instead of each fetching.
//! The background refresher fetches without holding it, so sessions keep
//! getting the still-valid value meanwhile.

use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use warden_core::SecretRef;

/// A fetched value and when it was fetched and last handed out.
pub(crate) struct Entry {
    pub(crate) value: SecretString,
    pub(crate) fetched: Instant,
    pub(crate) last_used: Instant,
}

/// What the refresher should do with a slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Keep,
    /// Fetch again: the value is past 2/3 of its lifetime (or expired) and a
    /// session used it within the last TTL.
    Refresh,
    /// Forget the slot: empty, or expired and unused for a TTL.
    Evict,
}

impl Entry {
    pub(crate) fn new(value: SecretString, fetched: Instant) -> Entry {
        Entry {
            value,
            fetched,
            last_used: fetched,
        }
    }

    /// A value is served until `ttl` after it was fetched, and never after.
    pub(crate) fn is_fresh(&self, now: Instant, ttl: Duration) -> bool {
        now.saturating_duration_since(self.fetched) < ttl
    }

    pub(crate) fn action(&self, now: Instant, ttl: Duration) -> Action {
        let age = now.saturating_duration_since(self.fetched);
        let idle = now.saturating_duration_since(self.last_used);
        if idle >= ttl {
            if age >= ttl {
                return Action::Evict;
            }
            return Action::Keep;
        }
        if age >= refresh_age(ttl) {
            return Action::Refresh;
        }
        Action::Keep
    }
}

/// Refresh at 2/3 of the TTL, leaving a third for a slow or failing provider.
pub(crate) fn refresh_age(ttl: Duration) -> Duration {
    ttl.saturating_mul(2) / 3
}

/// How often the refresher looks: often enough to hit the 2/3 mark well
/// before expiry, at most every 30 s.
pub(crate) fn tick(ttl: Duration) -> Duration {
    (ttl / 6).clamp(Duration::from_millis(20), Duration::from_secs(30))
}

/// One reference's cached value.
pub(crate) struct Slot {
    pub(crate) reference: SecretRef,
    pub(crate) state: tokio::sync::Mutex<Option<Entry>>,
}

/// Slots by reference text (`vault:PATH#FIELD`, `aws-sm:NAME#FIELD`).
#[derive(Default)]
pub(crate) struct Cache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Cache {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn slot(&self, reference: &SecretRef) -> Arc<Slot> {
        self.slots()
            .entry(reference.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    reference: reference.clone(),
                    state: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Slot>> {
        self.slots().values().cloned().collect()
    }

    /// Drops `slot` if it is still the one cached for its reference.
    pub(crate) fn remove(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots();
        let key = slot.reference.to_string();
        if slots
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            slots.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn entry_at(start: Instant) -> Entry {
        Entry::new(SecretString::from("v"), start)
    }

    #[test]
    fn fresh_until_the_ttl_and_never_after() {
        let start = Instant::now();
        let entry = entry_at(start);
        assert!(entry.is_fresh(start, TTL));
        assert!(entry.is_fresh(start + TTL - Duration::from_millis(1), TTL));
        assert!(!entry.is_fresh(start + TTL, TTL));
        assert!(!entry.is_fresh(start + TTL * 2, TTL));
        assert!(!entry.is_fresh(start, Duration::ZERO));
    }

    #[test]
    fn refreshes_used_entries_from_two_thirds_of_the_ttl() {
        let start = Instant::now();
        let mut entry = entry_at(start);
        assert_eq!(entry.action(start, TTL), Action::Keep);
        assert_eq!(
            entry.action(start + Duration::from_secs(199), TTL),
            Action::Keep
        );
        assert_eq!(
            entry.action(start + Duration::from_secs(200), TTL),
            Action::Refresh
        );

        // Used recently but already expired (refreshes failed): keep trying.
        entry.last_used = start + Duration::from_secs(250);
        assert_eq!(
            entry.action(start + Duration::from_secs(400), TTL),
            Action::Refresh
        );
    }

    #[test]
    fn unused_entries_are_not_refreshed_and_are_evicted_when_expired() {
        let start = Instant::now();
        let entry = entry_at(start);
        // Not used since the fetch 300 s ago: neither refreshed nor kept.
        assert_eq!(entry.action(start + TTL, TTL), Action::Evict);

        let mut entry = entry_at(start);
        entry.last_used = start + Duration::from_secs(10);
        assert_eq!(
            entry.action(start + Duration::from_secs(309), TTL),
            Action::Refresh
        );
        assert_eq!(
            entry.action(start + Duration::from_secs(310), TTL),
            Action::Evict
        );
    }

    #[test]
    fn ticks_are_bounded() {
        assert_eq!(tick(TTL), Duration::from_secs(30));
        assert_eq!(tick(Duration::from_secs(60)), Duration::from_secs(10));
        assert_eq!(tick(Duration::from_millis(1)), Duration::from_millis(20));
        assert_eq!(
            refresh_age(Duration::from_secs(300)),
            Duration::from_secs(200)
        );
    }

    #[test]
    fn slots_are_shared_per_reference_and_removed_only_if_current() {
        let cache = Cache::default();
        let reference = SecretRef::parse("vault:secret/data/a#pw").unwrap();
        let one = cache.slot(&reference);
        let two = cache.slot(&reference);
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(cache.all().len(), 1);
        cache.remove(&one);
        let three = cache.slot(&reference);
        assert!(!Arc::ptr_eq(&one, &three));
        cache.remove(&one);
        assert_eq!(cache.all().len(), 1);
    }
}
