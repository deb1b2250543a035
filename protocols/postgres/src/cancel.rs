//! Cancel keys. Warden hands each client its own BackendKeyData and keeps the
//! map to the upstream's key, so upstream keys never reach a client and a
//! client can cancel only its own session's query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use warden_core::config::TargetConfig;

/// What a Warden key cancels.
#[derive(Clone)]
pub struct UpstreamKey {
    pub target: Arc<TargetConfig>,
    pub process_id: i32,
    pub secret_key: Vec<u8>,
    /// Woken by a cancel request: withdraws a statement held for review.
    pub held: Arc<tokio::sync::Notify>,
}

struct Entry {
    secret: Vec<u8>,
    upstream: UpstreamKey,
}

/// Live sessions' cancel keys, shared by every connection of a listener.
#[derive(Default)]
pub struct CancelRegistry {
    entries: Mutex<HashMap<i32, Entry>>,
}

/// Removes its key from the registry when the session ends.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    process_id: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.registry.entries.lock() {
            entries.remove(&self.process_id);
        }
    }
}

impl CancelRegistry {
    pub fn new() -> Arc<CancelRegistry> {
        Arc::new(CancelRegistry::default())
    }

    /// Issues a fresh key (`secret_len` bytes: 4 for protocol 3.0, 32 for 3.2).
    pub fn register(
        self: &Arc<Self>,
        upstream: UpstreamKey,
        secret_len: usize,
    ) -> (i32, Vec<u8>, Registration) {
        let mut secret = vec![0u8; secret_len];
        rand::fill(&mut secret[..]);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let process_id = loop {
            let candidate = rand::random::<i32>() & 0x7fff_ffff;
            if candidate != 0 && !entries.contains_key(&candidate) {
                break candidate;
            }
        };
        entries.insert(
            process_id,
            Entry {
                secret: secret.clone(),
                upstream,
            },
        );
        (
            process_id,
            secret,
            Registration {
                registry: self.clone(),
                process_id,
            },
        )
    }

    /// The upstream key for a client's cancel request, if the key matches.
    pub fn lookup(&self, process_id: i32, secret: &[u8]) -> Option<UpstreamKey> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get(&process_id)?;
        if entry.secret.len() == secret.len() && bool::from(entry.secret.ct_eq(secret)) {
            Some(entry.upstream.clone())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Arc<TargetConfig> {
        let config = warden_core::config::Config::parse(
            "[[target]]\nname='t'\nprotocol='postgres'\naddress='127.0.0.1:1'\ncredentials={mode='static',user='u',password='env:X'}\n",
            "t.toml",
        )
        .unwrap();
        Arc::new(config.targets[0].clone())
    }

    #[test]
    fn keys_match_only_exactly_and_expire_with_the_session() {
        let registry = CancelRegistry::new();
        let upstream = UpstreamKey {
            target: target(),
            process_id: 42,
            held: Default::default(),
            secret_key: vec![9; 4],
        };
        let (pid, secret, registration) = registry.register(upstream, 32);
        assert_eq!(secret.len(), 32);
        assert_eq!(registry.lookup(pid, &secret).unwrap().process_id, 42);
        let mut wrong = secret.clone();
        wrong[0] ^= 1;
        assert!(registry.lookup(pid, &wrong).is_none());
        assert!(registry.lookup(pid, &secret[..4]).is_none());
        drop(registration);
        assert!(registry.lookup(pid, &secret).is_none());
    }
}
