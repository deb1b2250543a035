//! Shared by the ephemeral-role tests: an audit sink that keeps events, a
//! lease store in a temp dir, sessions and target configs.
#![allow(clippy::unwrap_used, dead_code)]

use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden_core::config::{Protocol, TargetConfig};
use warden_core::engines::{SessionLog, StoreError};
use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};
use warden_core::{Identity, IdentityKind};
use warden_credentials::{EphemeralCredentials, EphemeralOptions, ResolveSecrets};
use warden_store::SqliteStore;

/// Keeps audit events in memory.
#[derive(Default)]
pub struct MemoryAudit(pub Mutex<Vec<AuditEvent>>);

impl MemoryAudit {
    pub fn kinds(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.clone())
            .collect()
    }

    pub fn all_text(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| format!("{} {} {}\n", e.kind, e.actor, e.detail))
            .collect()
    }
}

#[async_trait]
impl SessionLog for MemoryAudit {
    async fn session_started(&self, _session: &SessionInfo) -> Result<(), StoreError> {
        Ok(())
    }
    async fn session_ended(&self, _id: &str, _summary: &SessionSummary) -> Result<(), StoreError> {
        Ok(())
    }
    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Everything an issuer needs, on a fresh store.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub audit: Arc<MemoryAudit>,
    pub issuer: Arc<EphemeralCredentials>,
}

pub const FAST: EphemeralOptions = EphemeralOptions {
    poll_interval: Duration::from_millis(200),
    release_grace: Duration::from_secs(1),
};

impl Fixture {
    pub async fn new() -> Fixture {
        warden_test_support::init();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open_path(&dir.path().join("warden.db"))
                .await
                .unwrap(),
        );
        let audit = Arc::new(MemoryAudit::default());
        let issuer = Arc::new(
            EphemeralCredentials::new(store.clone(), audit.clone(), Arc::new(ResolveSecrets))
                .with_options(FAST),
        );
        Fixture {
            dir,
            store,
            audit,
            issuer,
        }
    }

    /// Another process on the same state file (`warden leases revoke`).
    pub async fn second_store(&self) -> SqliteStore {
        SqliteStore::open_path(&self.dir.path().join("warden.db"))
            .await
            .unwrap()
    }
}

pub fn session(target: &str, protocol: Protocol) -> SessionInfo {
    let identity = Identity {
        subject: "agent-7".into(),
        kind: IdentityKind::Oidc {
            issuer: "https://idp.test".into(),
        },
        groups: vec!["agents".into()],
        email: None,
        claims: serde_json::Map::new(),
    };
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    SessionInfo::new(identity, target, protocol, addr, false)
}

/// The connect grant admission would give this test's session on `target`.
pub fn grant(target: &TargetConfig) -> warden_core::admission::ConnectGrant {
    let identity = session(&target.name, target.protocol).identity;
    warden_core::admission::ConnectGrant::for_tests(target.clone(), identity)
}

/// Parses one `[[target]]` table the way `warden.toml` is parsed.
pub fn target(toml: &str) -> TargetConfig {
    warden_core::config::Config::parse(&format!("[[target]]\n{toml}\n"), "test.toml")
        .unwrap()
        .targets
        .remove(0)
}

/// Waits (bounded) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
