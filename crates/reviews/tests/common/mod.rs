//! Shared set-up: a real SQLite store in a temp dir and the policies of a
//! small `warden.toml`.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;
use warden_core::config::{Config, PolicyConfig};
use warden_core::reviews::{ReviewEngine, ReviewKind, ReviewOutcome, ReviewRequest, ReviewTicket};
use warden_core::{Identity, IdentityKind, Operation};
use warden_reviews::{ReviewOptions, ReviewService, Webhook};
use warden_store::SqliteStore;

pub const POLICIES: &str = r#"
[[policy]]
name = "agents write with one approval"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]

[[policy]]
name = "agents ddl with two approvals"
subjects = ["group:agents"]
targets = ["orders"]
review = ["ddl"]
approvers = ["group:dba", "sub:carol"]
min_approvals = 2

[[policy]]
name = "agents delete once per session"
subjects = ["group:agents"]
targets = ["orders"]
review = ["write"]
approvers = ["group:dba"]
approval_scope = "session"

[[policy]]
name = "oncall break glass"
subjects = ["group:oncall"]
targets = ["orders*"]
review = ["connect"]
approvers = ["group:dba"]
"#;

pub fn policies() -> Vec<PolicyConfig> {
    Config::parse(POLICIES, "test.toml").unwrap().policies
}

pub fn oidc(sub: &str, groups: &[&str]) -> Identity {
    Identity {
        subject: sub.into(),
        kind: IdentityKind::Oidc {
            issuer: "https://idp.example".into(),
        },
        groups: groups.iter().map(|g| g.to_string()).collect(),
        email: Some(format!("{sub}@example.com")),
        claims: serde_json::Map::new(),
    }
}

pub fn agent() -> Identity {
    Identity {
        subject: "key:agent".into(),
        kind: IdentityKind::AccessKey {
            key_id: "00aa11bb22cc33dd".into(),
            name: "agent".into(),
        },
        groups: vec!["agents".into()],
        email: None,
        claims: serde_json::Map::new(),
    }
}

pub fn statement(rule: &str, session: &str, sql: &str) -> ReviewRequest {
    ReviewRequest {
        kind: ReviewKind::Statement,
        session_id: Some(session.into()),
        target: "orders".into(),
        requester: agent(),
        statement: Some(sql.into()),
        statement_hash: Some(warden_core::reviews::statement_hash(sql, &[])),
        operation: Operation::Write,
        tables: vec!["public.orders".into()],
        rule: Some(rule.into()),
        reason: None,
        duration: None,
    }
}

/// A node: its own store handle on the shared file and its own service.
pub struct Node {
    pub path: std::path::PathBuf,
    pub store: Arc<SqliteStore>,
    pub service: ReviewService,
}

pub async fn node(dir: &tempfile::TempDir, webhooks: Vec<Webhook>, options: ReviewOptions) -> Node {
    let path = dir.path().join("warden.db");
    let store = Arc::new(SqliteStore::open_path(&path).await.unwrap());
    let service = ReviewService::new(store.clone(), store.clone(), policies(), webhooks, options);
    Node {
        path,
        store,
        service,
    }
}

impl Node {
    /// Submits a statement review (see [`statement`]) and returns its ticket.
    pub async fn hold(&self, rule: &str, session: &str, sql: &str) -> ReviewTicket {
        self.service
            .submit(statement(rule, session, sql))
            .await
            .unwrap()
    }

    /// A task waiting (up to [`LONG`]) for the review's outcome, as a held
    /// statement does.
    pub fn waiter(&self, id: &str) -> tokio::task::JoinHandle<ReviewOutcome> {
        let service = self.service.clone();
        let id = id.to_string();
        tokio::spawn(async move { service.wait(&id, LONG).await })
    }
}

pub async fn plain_node(dir: &tempfile::TempDir) -> Node {
    node(dir, Vec::new(), ReviewOptions::default()).await
}

/// Audit kinds, oldest first.
pub async fn audit_kinds(store: &SqliteStore) -> Vec<String> {
    use warden_store::Store;
    let mut kinds: Vec<String> = store
        .list_audit(1000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    kinds.reverse();
    kinds
}

pub const LONG: Duration = Duration::from_secs(60);
