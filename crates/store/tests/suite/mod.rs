//! The store test-suite, written once over `Arc<dyn Store>` and run against
//! both backends (`sqlite_suite.rs`, `postgres_store.rs`).
#![allow(clippy::unwrap_used, dead_code)]

use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use warden_core::config::Protocol;
use warden_core::engines::AccessKeyRecord;
use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};
use warden_core::leases::LeaseRecord;
use warden_core::{Identity, IdentityKind};
use warden_store::{SessionFilter, Store};

/// One empty database of one backend.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// Opens another store on the database (another node / process).
    async fn open(&self) -> Arc<dyn Store>;
    /// Runs SQL directly on the database, around Warden (to tamper).
    async fn exec(&self, sql: &str);
}

/// Every case, by name, for the runners.
pub const CASES: &[&str] = &[
    "sessions_start_end_and_list",
    "unknown_and_duplicate_sessions_are_errors",
    "prefix_lookup",
    "access_keys_insert_find_revoke_list",
    "leases_insert_renew_revoke_list",
    "audit_events_are_listed_newest_first",
    "audit_chain_verifies_and_finds_tampering",
    "two_stores_see_each_others_sessions",
    "concurrent_audit_from_two_stores_keeps_one_chain",
];

/// Runs the case called `name`.
pub async fn run(name: &str, fixture: &dyn Fixture) {
    match name {
        "sessions_start_end_and_list" => sessions_start_end_and_list(fixture).await,
        "unknown_and_duplicate_sessions_are_errors" => {
            unknown_and_duplicate_sessions_are_errors(fixture).await
        }
        "prefix_lookup" => prefix_lookup(fixture).await,
        "access_keys_insert_find_revoke_list" => access_keys_insert_find_revoke_list(fixture).await,
        "leases_insert_renew_revoke_list" => leases_insert_renew_revoke_list(fixture).await,
        "audit_events_are_listed_newest_first" => {
            audit_events_are_listed_newest_first(fixture).await
        }
        "audit_chain_verifies_and_finds_tampering" => {
            audit_chain_verifies_and_finds_tampering(fixture).await
        }
        "two_stores_see_each_others_sessions" => two_stores_see_each_others_sessions(fixture).await,
        "concurrent_audit_from_two_stores_keeps_one_chain" => {
            concurrent_audit_from_two_stores_keeps_one_chain(fixture).await
        }
        other => panic!("no such case {other}"),
    }
}

pub fn identity(subject: &str) -> Identity {
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

pub fn session(subject: &str, target: &str) -> SessionInfo {
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    SessionInfo::new(identity(subject), target, Protocol::Postgres, addr, true)
}

pub fn summary(statements: u64, reason: &str) -> SessionSummary {
    SessionSummary {
        bytes_from_client: 100,
        bytes_to_client: 2000,
        statements,
        reason: reason.into(),
    }
}

/// Times as the store keeps them (microseconds), for equality checks.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.microsecond() * 1000).unwrap()
}

async fn sessions_start_end_and_list(fixture: &dyn Fixture) {
    let store = fixture.open().await;
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
    assert!(row.node.as_deref().is_some_and(|n| !n.is_empty()));
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

    let json = serde_json::to_value(&ended).unwrap();
    assert_eq!(json["protocol"], "postgres");
    let back: warden_store::SessionRow = serde_json::from_value(json).unwrap();
    assert_eq!(back, ended);
}

async fn unknown_and_duplicate_sessions_are_errors(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let err = store
        .session_ended("no-such-session", &summary(0, "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, warden_store::StoreError::SessionNotIndexed { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("not in the sessions index"),
        "{err}"
    );
    let s = session("a", "t");
    store.session_started(&s).await.unwrap();
    assert!(store.session_started(&s).await.is_err());
}

async fn prefix_lookup(fixture: &dyn Fixture) {
    let store = fixture.open().await;
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
    assert!(
        matches!(err, warden_store::StoreError::AmbiguousSessionPrefix { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("several sessions"), "{err}");
    assert!(store.get_session("0193").await.unwrap().is_none());
    assert!(store.get_session("").await.unwrap().is_none());
    assert!(store.get_session("%").await.unwrap().is_none());
    assert!(store.get_session("0192_").await.unwrap().is_none());
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

async fn access_keys_insert_find_revoke_list(fixture: &dyn Fixture) {
    let store = fixture.open().await;
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
    assert_eq!(found.exchange_verifiers, k1.exchange_verifiers);
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

fn lease(id: &str, user: &str, created_at: OffsetDateTime) -> LeaseRecord {
    LeaseRecord {
        id: id.into(),
        session_id: format!("session-{id}"),
        target: "orders".into(),
        protocol: Protocol::Mysql,
        upstream_user: user.into(),
        created_at,
        expires_at: created_at + Duration::minutes(15),
        max_expires_at: created_at + Duration::hours(8),
        revoked_at: None,
        revoke_reason: None,
    }
}

async fn leases_insert_renew_revoke_list(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let t = now();
    let a = lease("a", "warden_aaaaaaaaaaaa", t);
    let b = lease("b", "warden_bbbbbbbbbbbb", t + Duration::seconds(1));
    store.insert_lease(&a).await.unwrap();
    store.insert_lease(&b).await.unwrap();
    assert!(store.insert_lease(&a).await.is_err(), "ids are unique");
    assert_eq!(store.get_lease("a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_lease("nope").await.unwrap(), None);
    assert_eq!(
        store.list_leases(false).await.unwrap(),
        vec![b.clone(), a.clone()],
        "newest first"
    );

    let later = t + Duration::minutes(30);
    assert!(store.renew_lease("a", later).await.unwrap());
    assert_eq!(
        store.get_lease("a").await.unwrap().unwrap().expires_at,
        later
    );
    assert!(!store.renew_lease("missing", later).await.unwrap());

    // Another process (the CLI) revokes; the first revocation is kept.
    let cli = fixture.open().await;
    assert!(cli.mark_lease_revoked("a", "operator").await.unwrap());
    assert!(!store.mark_lease_revoked("a", "swept").await.unwrap());
    assert!(!store.renew_lease("a", later).await.unwrap());
    let revoked = store.get_lease("a").await.unwrap().unwrap();
    assert_eq!(revoked.revoke_reason.as_deref(), Some("operator"));
    assert!(revoked.revoked_at.is_some());
    let live: Vec<String> = store
        .list_leases(false)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(live, ["b"]);
    assert_eq!(store.list_leases(true).await.unwrap().len(), 2);
}

async fn audit_events_are_listed_newest_first(fixture: &dyn Fixture) {
    let store = fixture.open().await;
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

async fn audit_chain_verifies_and_finds_tampering(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let empty = store.verify_audit_chain().await.unwrap();
    assert_eq!((empty.events, empty.first_bad, empty.head), (0, None, None));
    for i in 0..5 {
        let mut event = AuditEvent::new("statement.denied", "alice", format!("DROP TABLE t{i}"));
        event.session_id = Some("s1".into());
        store.audit(&event).await.unwrap();
    }
    let intact = store.verify_audit_chain().await.unwrap();
    assert_eq!(intact.events, 5);
    assert!(intact.is_intact(), "{intact:?}");
    let head = intact.head.clone().unwrap();
    assert_eq!(head.len(), 64);

    // Someone with database access rewrites what the third event says.
    fixture
        .exec("UPDATE audit_events SET detail = 'SELECT 1' WHERE id = 3")
        .await;
    let edited = store.verify_audit_chain().await.unwrap();
    assert_eq!(edited.first_bad, Some(3), "{edited:?}");
    assert_eq!(edited.events, 5);
    fixture
        .exec("UPDATE audit_events SET detail = 'DROP TABLE t2' WHERE id = 3")
        .await;
    assert!(store.verify_audit_chain().await.unwrap().is_intact());

    // … or deletes an event: the next one's link breaks.
    fixture.exec("DELETE FROM audit_events WHERE id = 2").await;
    let deleted = store.verify_audit_chain().await.unwrap();
    assert_eq!((deleted.events, deleted.first_bad), (4, Some(3)));
    // New events still chain on (from the stored head).
    store
        .audit(&AuditEvent::new("auth.success", "bob", "ok"))
        .await
        .unwrap();
    let after = store.verify_audit_chain().await.unwrap();
    assert_eq!((after.events, after.first_bad), (5, Some(3)));
    assert_ne!(after.head.unwrap(), head);
}

async fn two_stores_see_each_others_sessions(fixture: &dyn Fixture) {
    let a = fixture.open().await;
    let b = fixture.open().await;
    let on_a = session("alice", "orders");
    a.session_started(&on_a).await.unwrap();
    let seen = b.get_session(&on_a.id).await.unwrap().unwrap();
    assert!(seen.is_open());
    let on_b = session("bob", "orders");
    b.session_started(&on_b).await.unwrap();
    let listed = a
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect::<Vec<_>>();
    assert!(listed.contains(&on_a.id) && listed.contains(&on_b.id));
    b.session_ended(&on_a.id, &summary(3, "client closed"))
        .await
        .unwrap();
    let ended = a.get_session(&on_a.id).await.unwrap().unwrap();
    assert_eq!(ended.end_reason.as_deref(), Some("client closed"));
    // Keys written by one are found by the other (the CLI beside a node).
    a.insert_key(&key("shared", "n")).await.unwrap();
    assert!(b.find_key("shared").await.unwrap().is_some());
}

async fn concurrent_audit_from_two_stores_keeps_one_chain(fixture: &dyn Fixture) {
    let stores = [fixture.open().await, fixture.open().await];
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = stores[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let event =
                    AuditEvent::new("auth.success", &format!("agent{task}"), format!("{i}"));
                store.audit(&event).await?;
            }
            Ok::<_, warden_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let report = stores[1].verify_audit_chain().await.unwrap();
    assert_eq!(report.events, 120);
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(stores[0].list_audit(1000, None).await.unwrap().len(), 120);
}
