//! The change signal: it moves on this node's own review changes (SQLite,
//! no feed) and, with PostgreSQL's feed, on changes made by another node,
//! waking a waiter long before its (deliberately slow) poll would.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_core::review_store::ReviewState;
use warden_core::reviews::{ReviewEngine, ReviewOutcome};
use warden_reviews::{ReviewOptions, ReviewService};
use warden_store::PostgresStore;
use warden_test_support::postgres::Postgres;

/// Polls so rarely that only the signal can wake a waiter within a test.
fn slow_poll() -> ReviewOptions {
    ReviewOptions {
        poll_interval: Duration::from_secs(30),
        feed_poll_interval: Duration::from_secs(30),
        ..ReviewOptions::default()
    }
}

/// Waits (up to 5 s) for the signal to move.
async fn moved(changes: &mut watch::Receiver<u64>) {
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the change signal did not move within 5 s")
        .unwrap();
}

#[tokio::test]
async fn local_changes_move_the_signal_and_wake_waiters_without_a_feed() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(&dir, Vec::new(), slow_poll()).await;
    let mut changes = n.service.subscribe_changes();
    let feed = n.service.spawn_change_feed(CancellationToken::new());
    tokio::time::timeout(Duration::from_secs(5), feed)
        .await
        .expect("without a feed the task ends")
        .unwrap();
    assert!(!n.service.feed_live());

    let sql = "ALTER TABLE orders ADD COLUMN note text";
    let ticket = n.hold("agents ddl with two approvals", "s1", sql).await;
    moved(&mut changes).await;
    let waiter = {
        let service = n.service.clone();
        let id = ticket.id.clone();
        tokio::spawn(async move { service.wait(&id, Duration::from_secs(120)).await })
    };
    assert_eq!(
        n.service
            .decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
            .await
            .unwrap(),
        ReviewState::Pending
    );
    moved(&mut changes).await;
    assert!(!waiter.is_finished());
    let before = *changes.borrow_and_update();
    assert_eq!(
        n.service
            .decide(&ticket.id, &oidc("carol", &[]), true, None)
            .await
            .unwrap(),
        ReviewState::Approved
    );
    assert_ne!(*changes.borrow(), before, "the decision moved the signal");
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("a local decision woke the waiter (its poll is 30 s)")
        .unwrap();
    assert!(
        matches!(outcome, ReviewOutcome::Approved { .. }),
        "{outcome:?}"
    );
}

async fn pg_node(url: &str) -> (Arc<PostgresStore>, ReviewService) {
    let store = Arc::new(PostgresStore::open(url).await.unwrap());
    let service = ReviewService::new(
        store.clone(),
        store.clone(),
        policies(),
        Vec::new(),
        slow_poll(),
    );
    (store, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_feed_carries_another_nodes_changes() {
    warden_test_support::init();
    let pg = Postgres::start().unwrap();
    pg.psql("create database reviews").unwrap();
    let url = pg.url("reviews");
    let (store_a, a) = pg_node(&url).await;
    let (_store_b, b) = pg_node(&url).await;
    let stop = CancellationToken::new();
    let feed = a.spawn_change_feed(stop.clone());
    let started = tokio::time::Instant::now();
    while !a.feed_live() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the feed did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut changes = a.subscribe_changes();

    // A review created on B moves A's signal (a live pending list on A).
    let sql = "DELETE FROM orders WHERE id = 7";
    let ticket = b
        .submit(statement("agents write with one approval", "s1", sql))
        .await
        .unwrap();
    moved(&mut changes).await;

    // A waits for it; B's approval releases A's waiter (poll: 30 s).
    let waiter = {
        let a = a.clone();
        let id = ticket.id.clone();
        tokio::spawn(async move { a.wait(&id, Duration::from_secs(120)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    let approved_at = tokio::time::Instant::now();
    b.decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("B's approval did not reach A's waiter")
        .unwrap();
    assert!(
        matches!(outcome, ReviewOutcome::Approved { .. }),
        "{outcome:?}"
    );
    eprintln!(
        "service-level cross-node release: {} ms",
        approved_at.elapsed().as_millis()
    );

    // Closing A's store ends its feed: waiters fall back to polling, and
    // stopping the task ends it.
    store_a.close().await;
    let started = tokio::time::Instant::now();
    while a.feed_live() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the feed still counts as live after the store closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), feed)
        .await
        .expect("the feed task stops when told")
        .unwrap();
}
