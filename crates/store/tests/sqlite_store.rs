//! The SQLite store against a real database file in a temp dir.
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
async fn session_start_end_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut first = session("alice", "orders");
    first.started_at -= Duration::seconds(10);
    let second = session("bob", "billing");
    store.session_started(&first).await.unwrap();
    store.session_started(&second).await.unwrap();

    let all = store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [second.id.as_str(), first.id.as_str()],
        "newest first"
    );
    let row = &all[1];
    assert_eq!(row.subject, "alice");
    assert_eq!(row.identity, first.identity);
    assert_eq!(row.protocol, Protocol::Postgres);
    assert_eq!(row.client_addr, "127.0.0.1:40000");
    assert!(row.client_tls);
    assert!(row.is_open());
    assert_eq!(
        row.started_at.unix_timestamp_nanos() / 1000,
        first.started_at.unix_timestamp_nanos() / 1000
    );

    store
        .session_ended(&first.id, &summary(7, "client closed"))
        .await
        .unwrap();
    let ended = store.get_session(&first.id).await.unwrap().unwrap();
    assert!(ended.ended_at.is_some());
    assert_eq!(ended.statements, 7);
    assert_eq!(ended.bytes_from_client, 100);
    assert_eq!(ended.bytes_to_client, 2000);
    assert_eq!(ended.end_reason.as_deref(), Some("client closed"));

    let open_only = store
        .list_sessions(&SessionFilter {
            open_only: true,
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open_only.len(), 1);
    assert_eq!(open_only[0].id, second.id);

    let orders = store
        .list_sessions(&SessionFilter {
            target: Some("orders".into()),
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].id, first.id);

    let none = store
        .list_sessions(&SessionFilter {
            target: Some("orders".into()),
            open_only: true,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    let limited = store
        .list_sessions(&SessionFilter {
            limit: 1,
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);

    // The row is what `--json` prints.
    let json = serde_json::to_value(&ended).unwrap();
    assert_eq!(json["protocol"], "postgres");
    assert_eq!(json["identity"]["subject"], "alice");
    assert!(json["ended_at"].is_string());
    let back: warden_store::SessionRow = serde_json::from_value(json).unwrap();
    assert_eq!(back, ended);
}

#[tokio::test]
async fn ending_an_unknown_session_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let err = store
        .session_ended("no-such-session", &summary(0, "x"))
        .await
        .unwrap_err();
    assert!(err.message.contains("not in the sessions index"), "{err}");
}

#[tokio::test]
async fn duplicate_session_id_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let s = session("a", "t");
    store.session_started(&s).await.unwrap();
    assert!(store.session_started(&s).await.is_err());
}

#[tokio::test]
async fn prefix_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut a = session("a", "t");
    let mut b = session("b", "t");
    a.id = "0192aaaa-0000-7000-8000-000000000001".into();
    b.id = "0192aaab-0000-7000-8000-000000000002".into();
    store.session_started(&a).await.unwrap();
    store.session_started(&b).await.unwrap();

    assert_eq!(store.get_session(&a.id).await.unwrap().unwrap().id, a.id);
    assert_eq!(
        store.get_session("0192aaaa").await.unwrap().unwrap().id,
        a.id
    );
    assert_eq!(
        store.get_session("0192AAAB").await.unwrap().unwrap().id,
        b.id
    );
    let err = store.get_session("0192aaa").await.unwrap_err();
    assert!(err.message.contains("several sessions"), "{err}");
    assert!(store.get_session("0193").await.unwrap().is_none());
    assert!(store.get_session("").await.unwrap().is_none());
    // LIKE wildcards are not prefixes.
    assert!(store.get_session("%").await.unwrap().is_none());
    assert!(store.get_session("0192_").await.unwrap().is_none());
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
        mysql_native_hash: "cd".repeat(20),
        created_at: now,
        expires_at: now + Duration::hours(24),
        revoked_at: None,
    }
}

#[tokio::test]
async fn access_keys_insert_find_revoke_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let k1 = key("k1", "ci-bot");
    let mut k2 = key("k2", "etl");
    k2.created_at += Duration::seconds(1);
    store.insert_key(&k1).await.unwrap();
    store.insert_key(&k2).await.unwrap();
    assert!(store.insert_key(&k1).await.is_err(), "duplicate id");

    let found = store.find_key("k1").await.unwrap().unwrap();
    assert_eq!(found.name, "ci-bot");
    assert_eq!(found.groups, ["agents", "readers"]);
    assert_eq!(found.key_sha256, k1.key_sha256);
    assert_eq!(found.mysql_native_hash, k1.mysql_native_hash);
    assert_eq!(
        found.expires_at.unix_timestamp_nanos() / 1000,
        k1.expires_at.unix_timestamp_nanos() / 1000
    );
    assert!(found.revoked_at.is_none());
    assert!(store.find_key("nope").await.unwrap().is_none());

    assert!(store.revoke_key("k1").await.unwrap());
    let first_revocation = store.find_key("k1").await.unwrap().unwrap().revoked_at;
    assert!(first_revocation.is_some());
    assert!(store.revoke_key("k1").await.unwrap(), "still exists");
    assert_eq!(
        store.find_key("k1").await.unwrap().unwrap().revoked_at,
        first_revocation,
        "the first revocation time is kept"
    );
    assert!(!store.revoke_key("nope").await.unwrap());

    let all = store.list_keys().await.unwrap();
    assert_eq!(
        all.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    assert!(all[1].revoked_at.is_none());
}

#[tokio::test]
async fn audit_events_are_listed_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut login = AuditEvent::new("auth.success", "alice", "oidc");
    login.session_id = Some("s1".into());
    login.client_addr = Some("127.0.0.1:5000".into());
    login.target = Some("orders".into());
    store.audit(&login).await.unwrap();
    store
        .audit(&AuditEvent::new("auth.failure", "-", "bad token"))
        .await
        .unwrap();
    let mut denied = AuditEvent::new("statement.denied", "alice", "DROP TABLE");
    denied.session_id = Some("s1".into());
    store.audit(&denied).await.unwrap();

    let all = store.list_audit(10, None).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["statement.denied", "auth.failure", "auth.success"]
    );
    let s1 = store.list_audit(10, Some("s1")).await.unwrap();
    assert_eq!(s1.len(), 2);
    let first = &s1[1];
    assert_eq!(first.kind, "auth.success");
    assert_eq!(first.actor, "alice");
    assert_eq!(first.target.as_deref(), Some("orders"));
    assert_eq!(first.client_addr.as_deref(), Some("127.0.0.1:5000"));
    assert_eq!(first.detail, "oidc");
    assert_eq!(store.list_audit(1, None).await.unwrap().len(), 1);
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
