//! The SQLite store against a real database file in a temp dir.
//! (The cases every backend must pass are in `suite/mod.rs`; this file keeps the SQLite-only ones.)
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use warden_core::config::Protocol;
use warden_core::engines::{AccessKeyRecord, AccessKeyStore, SessionLog};
use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};
use warden_core::{Identity, IdentityKind};
use warden_store::{SessionFilter, SqliteStore, Store};

fn identity(subject: &str) -> Identity {
    Identity {
        subject: subject.to_string(),
        kind: IdentityKind::Oidc {
            issuer: "https://idp.test".into(),
        },
        groups: vec!["agents".into()],
        email: Some(format!("{subject}@example.com")),
        claims: serde_json::Map::new(),
    }
}

fn session(subject: &str, target: &str) -> SessionInfo {
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    SessionInfo::new(identity(subject), target, Protocol::Postgres, addr, true)
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    let path = dir.path().join("nested/state/warden.db");
    SqliteStore::open(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap()
}

fn summary(statements: u64, reason: &str) -> SessionSummary {
    SessionSummary {
        bytes_from_client: 100,
        bytes_to_client: 2000,
        statements,
        reason: reason.into(),
    }
}

#[tokio::test]
async fn open_creates_directory_file_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let db = dir.path().join("nested/state/warden.db");
    assert!(db.is_file());
    store
        .session_started(&session("a", "orders"))
        .await
        .unwrap();
    assert!(dir.path().join("nested/state/warden.db-wal").exists());
}

#[tokio::test]
async fn bad_url_is_a_clear_error() {
    let err = SqliteStore::open("postgres://nope").await.unwrap_err();
    assert!(err.to_string().contains("not a sqlite: url"), "{err}");
    let err = SqliteStore::open("postgres://u:hunter2@db/w")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn interrupted_sessions_are_closed_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let done = session("a", "t");
    let cut1 = session("b", "t");
    let cut2 = session("c", "t");
    for s in [&done, &cut1, &cut2] {
        store.session_started(s).await.unwrap();
    }
    store
        .session_ended(&done.id, &summary(1, "client closed"))
        .await
        .unwrap();
    store.close().await;

    let store = open(&dir).await;
    assert_eq!(
        store
            .mark_interrupted_sessions("warden stopped")
            .await
            .unwrap(),
        2
    );
    let row = store.get_session(&cut1.id).await.unwrap().unwrap();
    assert_eq!(row.end_reason.as_deref(), Some("warden stopped"));
    assert!(row.ended_at.is_some());
    let row = store.get_session(&done.id).await.unwrap().unwrap();
    assert_eq!(row.end_reason.as_deref(), Some("client closed"));
    assert_eq!(store.mark_interrupted_sessions("again").await.unwrap(), 0);
}

fn key(id: &str, name: &str) -> AccessKeyRecord {
    let now = OffsetDateTime::now_utc();
    AccessKeyRecord {
        id: id.into(),
        name: name.into(),
        groups: vec!["agents".into(), "readers".into()],
        key_sha256: "ab".repeat(32),
        exchange_verifiers: [("mysql_native_password".to_string(), "cd".repeat(20))].into(),
        created_at: now,
        expires_at: now + Duration::hours(24),
        revoked_at: None,
    }
}

#[tokio::test]
async fn migrations_twice_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let s = session("a", "t");
    store.session_started(&s).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;

    let again = open(&dir).await;
    again.migrate().await.unwrap();
    assert!(again.get_session(&s.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_do_not_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir).await);
    // A second pool on the same file, as the CLI beside a running server.
    let other = Arc::new(open(&dir).await);
    let mut tasks = Vec::new();
    for task in 0..20 {
        let store = if task % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let s = session(&format!("agent{task}"), "orders");
                store.session_started(&s).await?;
                let mut event = AuditEvent::new("auth.success", &s.identity.subject, "ok");
                event.session_id = Some(s.id.clone());
                store.audit(&event).await?;
                if i % 3 == 0 {
                    store.list_sessions(&SessionFilter::default()).await?;
                }
                store
                    .session_ended(&s.id, &summary(i, "client closed"))
                    .await?;
            }
            Ok::<_, warden_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let all = store
        .list_sessions(&SessionFilter {
            limit: 1000,
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
    assert!(all.iter().all(|s| !s.is_open()));
    assert_eq!(store.list_audit(1000, None).await.unwrap().len(), 200);
}

#[tokio::test]
async fn store_is_usable_as_trait_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(open(&dir).await);
    let log: Arc<dyn SessionLog> = store.clone();
    let keys: Arc<dyn AccessKeyStore> = store.clone();
    log.session_started(&session("a", "t")).await.unwrap();
    keys.insert_key(&key("k", "n")).await.unwrap();
    assert_eq!(
        store
            .list_sessions(&SessionFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// SQLite serves one node: it pushes no review changes (the review service
/// signals its own waiters and polls), and says so rather than failing.
#[tokio::test]
async fn sqlite_has_no_review_change_feed() {
    use warden_core::review_store::ReviewStore;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert!(store.review_changes().await.unwrap().is_none());
}
