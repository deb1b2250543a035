//! The store on a real PostgreSQL (started per test in a temp dir): the
//! shared suite (`suite/mod.rs`) plus what only a shared database has —
//! several nodes, heartbeats and the node-aware interruption sweep.
#![allow(clippy::unwrap_used)]

mod suite;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use warden_core::engines::SessionLog;
use warden_store::node::Liveness;
use warden_store::{PostgresOptions, PostgresStore, Store};
use warden_test_support::postgres::{PgOptions, Postgres};

struct PgFixture {
    url: String,
}

impl PgFixture {
    /// A fresh database on `pg`.
    fn new(pg: &Postgres, name: &str) -> Self {
        pg.psql(&format!("create database \"{name}\"")).unwrap();
        PgFixture { url: pg.url(name) }
    }

    async fn node(&self, node: &str, liveness: Liveness) -> PostgresStore {
        PostgresStore::open_with(
            &self.url,
            PostgresOptions {
                node_id: Some(node.into()),
                liveness,
                ..PostgresOptions::default()
            },
        )
        .await
        .unwrap()
    }
}

#[async_trait]
impl suite::Fixture for PgFixture {
    async fn open(&self) -> Arc<dyn Store> {
        warden_store::open_store(&self.url).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

/// Every case of the suite, each in its own database, concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_suite_passes_on_postgres() {
    let pg = Postgres::start().unwrap();
    let mut tasks = Vec::new();
    for (i, name) in suite::CASES.iter().enumerate() {
        let fixture = PgFixture::new(&pg, &format!("case{i}"));
        tasks.push((
            *name,
            tokio::spawn(async move { suite::run(name, &fixture).await }),
        ));
    }
    let mut failed = Vec::new();
    for (name, task) in tasks {
        if task.await.is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed on PostgreSQL: {failed:?}");
}

/// The scheme picks the backend, and the migrations ran under their lock
/// once even when several nodes open at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_opening_at_once_migrate_once() {
    let pg = Postgres::start().unwrap();
    let fixture = PgFixture::new(&pg, "warden");
    let postgresql_url = fixture.url.replacen("postgres://", "postgresql://", 1);
    let opens = (0..4).map(|i| {
        let url = if i % 2 == 0 {
            fixture.url.clone()
        } else {
            postgresql_url.clone()
        };
        tokio::spawn(async move { warden_store::open_store(&url).await })
    });
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let versions = pg
        .psql_db(
            "warden",
            "select string_agg(version::text, ',' order by version) from _sqlx_migrations where success",
        )
        .unwrap();
    assert_eq!(versions.trim(), migration_versions("postgres").join(","));
    let store = PostgresStore::open(&fixture.url).await.unwrap();
    store.migrate().await.unwrap();
}

/// The versions of the migration files in `migrations/{backend}`, sorted.
fn migration_versions(backend: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut versions: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| name.split('_').next().unwrap().to_string())
        .collect();
    versions.sort();
    versions
}

/// Both backends have the same migration versions (and so the same schema
/// history), as `lib.rs` promises.
#[test]
fn both_backends_have_the_same_migration_versions() {
    let postgres = migration_versions("postgres");
    assert!(postgres.len() >= 4, "{postgres:?}");
    assert_eq!(postgres, migration_versions("sqlite"));
}

/// At start-up a node ends the sessions of dead nodes (stale heartbeat or
/// none) and of its own previous run, and leaves live nodes' sessions open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_interrupts_only_dead_nodes_sessions() {
    let pg = Postgres::start().unwrap();
    let fixture = PgFixture::new(&pg, "warden");
    // No periodic sweep runs during the test (the first comes after an
    // hour), and no live node goes stale however slow the machine is: only
    // the start-up sweeps below end sessions.
    let liveness = Liveness {
        heartbeat: Duration::from_secs(3600),
        stale_after: Duration::from_secs(3600),
    };

    let live = fixture.node("node-live", liveness).await;
    assert_eq!(live.mark_interrupted_sessions("start").await.unwrap(), 0);
    let on_live = suite::session("alice", "orders");
    live.session_started(&on_live).await.unwrap();

    // A node that crashed: its heartbeat is long past.
    let dead = fixture.node("node-dead", liveness).await;
    let on_dead = suite::session("bob", "orders");
    dead.session_started(&on_dead).await.unwrap();
    dead.close().await;
    suite::Fixture::exec(
        &fixture,
        "UPDATE nodes SET last_seen = '2000-01-01T00:00:00.000000Z' WHERE id = 'node-dead'",
    )
    .await;

    // A node with no heartbeat row at all.
    let ghost = fixture.node("node-ghost", liveness).await;
    let on_ghost = suite::session("carol", "orders");
    ghost.session_started(&on_ghost).await.unwrap();
    ghost.close().await;
    suite::Fixture::exec(&fixture, "DELETE FROM nodes WHERE id = 'node-ghost'").await;

    // A node restarted under a fixed id: its heartbeat is fresh, but the
    // session is from the previous run.
    let before = fixture.node("node-fixed", liveness).await;
    let on_before = suite::session("dave", "orders");
    before.session_started(&on_before).await.unwrap();
    before.close().await;

    let after = fixture.node("node-fixed", liveness).await;
    assert_eq!(
        after
            .mark_interrupted_sessions("interrupted at start-up")
            .await
            .unwrap(),
        3
    );
    for id in [&on_dead.id, &on_ghost.id, &on_before.id] {
        let row = live.get_session(id).await.unwrap().unwrap();
        assert_eq!(
            row.end_reason.as_deref(),
            Some("interrupted at start-up"),
            "{id}"
        );
        assert!(row.ended_at.is_some());
    }
    let row = after.get_session(&on_live.id).await.unwrap().unwrap();
    assert!(row.is_open(), "a live node's session was ended");
    assert_eq!(row.node.as_deref(), Some("node-live"));
    assert_eq!(
        live.get_session(&on_dead.id)
            .await
            .unwrap()
            .unwrap()
            .node
            .as_deref(),
        Some("node-dead")
    );

    // The restarted node's new sessions and the live node's are safe from
    // yet another node starting.
    let on_after = suite::session("erin", "orders");
    after.session_started(&on_after).await.unwrap();
    let third = fixture.node("node-third", liveness).await;
    assert_eq!(third.mark_interrupted_sessions("start").await.unwrap(), 0);
    assert!(
        third
            .get_session(&on_after.id)
            .await
            .unwrap()
            .unwrap()
            .is_open()
    );
}

/// A running node notices a node that dies later and ends its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_sweeps_a_node_that_died() {
    let pg = Postgres::start().unwrap();
    let fixture = PgFixture::new(&pg, "warden");
    let fast = Liveness {
        heartbeat: Duration::from_millis(200),
        stale_after: Duration::from_secs(30),
    };
    let live = fixture.node("node-live", fast).await;
    live.mark_interrupted_sessions("start").await.unwrap();
    let on_live = suite::session("alice", "orders");
    live.session_started(&on_live).await.unwrap();

    let dead = fixture.node("node-dead", Liveness::default()).await;
    let on_dead = suite::session("bob", "orders");
    dead.session_started(&on_dead).await.unwrap();
    dead.close().await;
    suite::Fixture::exec(
        &fixture,
        "UPDATE nodes SET last_seen = '2000-01-01T00:00:00.000000Z' WHERE id = 'node-dead'",
    )
    .await;

    // Wait (bounded) for one of the live node's periodic sweeps.
    let mut row = live.get_session(&on_dead.id).await.unwrap().unwrap();
    for _ in 0..300 {
        if !row.is_open() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        row = live.get_session(&on_dead.id).await.unwrap().unwrap();
    }
    assert!(!row.is_open(), "the dead node's session was never swept");
    assert!(
        row.end_reason
            .as_deref()
            .is_some_and(|r| r.contains("heartbeats")),
        "{row:?}"
    );
    assert!(
        live.get_session(&on_live.id)
            .await
            .unwrap()
            .unwrap()
            .is_open()
    );
    // The live node's heartbeat row is fresh (written by the database clock).
    let last_seen = pg
        .psql_db(
            "warden",
            "select last_seen from nodes where id = 'node-live'",
        )
        .unwrap();
    assert!(last_seen.trim() > "2000-01-01", "{last_seen}");
    assert!(
        last_seen.trim().ends_with('Z') && last_seen.trim().len() == 27,
        "{last_seen}"
    );
}

/// `sslmode=verify-full` with the server's CA: the store's connections use
/// TLS; without the CA the server is not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_connects_with_verified_tls() {
    let pg = Postgres::start_with(PgOptions { ssl: true }).unwrap();
    let fixture = PgFixture::new(&pg, "warden");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        fixture.url,
        pg.cert_path().display()
    );
    let store = warden_store::open_store(&url).await.unwrap();
    store
        .session_started(&suite::session("alice", "orders"))
        .await
        .unwrap();
    // The review change feed's own connection uses the same TLS settings.
    let _feed = store.review_changes().await.unwrap().unwrap();
    let tls = pg
        .psql_db(
            "warden",
            "select count(distinct a.application_name) || ' ' || bool_and(s.ssl) \
             from pg_stat_ssl s join pg_stat_activity a using (pid) \
             where a.application_name in ('warden', 'warden-listen')",
        )
        .unwrap();
    assert_eq!(tls.trim(), "2 true");

    let untrusted = PostgresStore::open_with(
        &format!("{}?sslmode=verify-full", fixture.url),
        PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..PostgresOptions::default()
        },
    )
    .await;
    let Err(error) = untrusted else {
        panic!("a server signed by an unknown CA was trusted");
    };
    assert!(error.to_string().contains("certificate"), "{error}");
}

/// A pending statement review, as the review service writes it.
fn review(id: &str) -> warden_core::review_store::ReviewRecord {
    use warden_core::review_store::{ApprovalScope, ReviewRecord, ReviewState, principal};
    let requester = suite::identity("agent");
    let now = time::OffsetDateTime::now_utc();
    ReviewRecord {
        id: id.into(),
        kind: warden_core::reviews::ReviewKind::Statement,
        state: ReviewState::Pending,
        session_id: Some("s-1".into()),
        target: "orders".into(),
        requester_principal: principal(&requester),
        requester,
        statement: Some("DELETE FROM items".into()),
        statement_hash: Some("ab".repeat(32)),
        operation: warden_core::Operation::Write,
        tables: vec!["public.items".into()],
        rule: Some("writes reviewed".into()),
        reason: None,
        duration_secs: None,
        approvers: vec!["group:dba".into()],
        min_approvals: 1,
        approval_scope: ApprovalScope::Statement,
        created_at: now,
        expires_at: now + time::Duration::minutes(10),
        decided_at: None,
        decided_by: None,
        decision_comment: None,
    }
}

/// The next feed item, within 10 s.
async fn next_change(
    feed: &mut warden_core::review_store::ReviewFeed,
) -> warden_core::review_store::ReviewChange {
    tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("no review change within 10 s")
        .expect("the feed ended")
}

/// Nothing on the feed for a while.
async fn quiet(feed: &mut warden_core::review_store::ReviewFeed) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(500), feed.next()).await {
        panic!("unexpected feed item {item:?}");
    }
}

/// Node B's feed hears a review inserted and decided through node A, each
/// once committed (a row B can read at once); an uncommitted change is not
/// sent; after B's listening connection is killed the feed reconnects and
/// says to resync; closing the store ends the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_hears_review_changes_made_through_the_first() {
    use warden_core::review_store::{ReviewChange, ReviewState, ReviewStore};
    let pg = Postgres::start().unwrap();
    let fixture = PgFixture::new(&pg, "warden");
    let node_a = fixture.node("a", Liveness::default()).await;
    let node_b = fixture.node("b", Liveness::default()).await;
    let mut feed = node_b
        .review_changes()
        .await
        .unwrap()
        .expect("PostgreSQL pushes review changes");

    node_a.insert_review(&review("r1")).await.unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        ReviewChange::Changed {
            id: "r1".into(),
            state: Some(ReviewState::Pending)
        }
    );
    let decided_at = time::OffsetDateTime::now_utc();
    assert!(
        node_a
            .finish_review("r1", ReviewState::Approved, decided_at, Some("bob"), None)
            .await
            .unwrap()
    );
    assert_eq!(
        next_change(&mut feed).await,
        ReviewChange::Changed {
            id: "r1".into(),
            state: Some(ReviewState::Approved)
        }
    );
    let seen = node_b.get_review("r1").await.unwrap().unwrap();
    assert_eq!(seen.state, ReviewState::Approved, "visible when heard");
    // A decision that loses (the review is no longer pending) changes
    // nothing and is not announced.
    assert!(
        !node_a
            .finish_review("r1", ReviewState::Denied, decided_at, Some("eve"), None)
            .await
            .unwrap()
    );
    quiet(&mut feed).await;

    // Sent on commit, not before.
    node_a.insert_review(&review("r2")).await.unwrap();
    assert!(matches!(
        next_change(&mut feed).await,
        ReviewChange::Changed { id, .. } if id == "r2"
    ));
    let pool = sqlx::PgPool::connect(&fixture.url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE reviews SET state = 'denied' WHERE id = 'r2'")
        .execute(&mut *tx)
        .await
        .unwrap();
    quiet(&mut feed).await;
    tx.commit().await.unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        ReviewChange::Changed {
            id: "r2".into(),
            state: Some(ReviewState::Denied)
        }
    );
    pool.close().await;

    // The listening connection dies: the feed says so, reconnects, asks
    // for a resync (what was sent in between is lost) and goes on.
    let killed = pg
        .psql_db(
            "warden",
            &format!(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity \
                 where application_name = '{}'",
                warden_store::LISTENER_APPLICATION_NAME
            ),
        )
        .unwrap();
    assert_eq!(killed.trim(), "1", "one listening connection");
    assert_eq!(next_change(&mut feed).await, ReviewChange::Lost);
    assert_eq!(next_change(&mut feed).await, ReviewChange::Resync);
    node_a.insert_review(&review("r3")).await.unwrap();
    assert!(matches!(
        next_change(&mut feed).await,
        ReviewChange::Changed { id, .. } if id == "r3"
    ));
    // A vote (of a review needing more than one) is announced too.
    let vote = warden_core::review_store::ReviewVote {
        review_id: "r3".into(),
        reviewer: "oidc:idp#carol".into(),
        reviewer_name: "carol".into(),
        approve: true,
        comment: None,
        at: time::OffsetDateTime::now_utc(),
    };
    assert!(node_a.insert_vote(&vote).await.unwrap());
    assert_eq!(
        next_change(&mut feed).await,
        ReviewChange::Changed {
            id: "r3".into(),
            state: None
        }
    );

    // The password is in neither the feed nor the store's Debug.
    assert!(!format!("{node_b:?}").contains(pg.password()));

    node_b.close().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("the feed did not end with the store");
    assert_eq!(ended, None);
}
