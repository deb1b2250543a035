//! The sessions index and audit trail in memory, for tests that run a
//! protocol front end in-process (no store, no files).

use async_trait::async_trait;
use std::sync::Mutex;
use std::time::Duration;
use warden_core::engines::{SessionLog, StoreError};
use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};

/// Keeps every session start, end and audit event. Optionally refuses to
/// index sessions whose target ends with a suffix (a store that is down).
#[derive(Default)]
pub struct MemoryLog {
    pub started: Mutex<Vec<SessionInfo>>,
    pub ended: Mutex<Vec<(String, SessionSummary)>>,
    pub audit: Mutex<Vec<AuditEvent>>,
    refuse_index_for: Option<&'static str>,
}

impl MemoryLog {
    /// A log whose `session_started` fails for targets ending in `suffix`.
    pub fn refusing_index_for(suffix: &'static str) -> MemoryLog {
        MemoryLog {
            refuse_index_for: Some(suffix),
            ..MemoryLog::default()
        }
    }

    pub fn audit_len(&self) -> usize {
        lock(&self.audit).len()
    }

    /// Audit events written since the log held `from` of them.
    pub fn events_since(&self, from: usize) -> Vec<AuditEvent> {
        lock(&self.audit)[from..].to_vec()
    }

    pub fn kinds_since(&self, from: usize) -> Vec<String> {
        self.events_since(from)
            .into_iter()
            .map(|event| event.kind)
            .collect()
    }

    /// Sessions indexed on `target`.
    pub fn started_on(&self, target: &str) -> usize {
        lock(&self.started)
            .iter()
            .filter(|s| s.target == target)
            .count()
    }

    /// Waits (30 s at most, then panics) until `n` sessions on `target` ended.
    pub async fn wait_ended(&self, target: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ended = {
                let started = lock(&self.started);
                lock(&self.ended)
                    .iter()
                    .filter(|(id, _)| started.iter().any(|s| &s.id == id && s.target == target))
                    .count()
            };
            if ended >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{target}: session did not end"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl SessionLog for MemoryLog {
    async fn session_started(&self, session: &SessionInfo) -> Result<(), StoreError> {
        if self
            .refuse_index_for
            .is_some_and(|suffix| session.target.ends_with(suffix))
        {
            return Err(StoreError::database(
                "cannot index the session",
                "the store is down",
            ));
        }
        lock(&self.started).push(session.clone());
        Ok(())
    }

    async fn session_ended(&self, id: &str, summary: &SessionSummary) -> Result<(), StoreError> {
        lock(&self.ended).push((id.to_string(), summary.clone()));
        Ok(())
    }

    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        lock(&self.audit).push(event.clone());
        Ok(())
    }
}
