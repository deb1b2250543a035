//! The review service on a real PostgreSQL shared by two "nodes": the
//! portable review queries, the conditional decisions, and a waiter on one
//! node released by a decision on the other.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use warden_core::review_store::{ReviewState, ReviewStore};
use warden_core::reviews::{ReviewEngine, ReviewOutcome};
use warden_reviews::{ReviewError, ReviewOptions, ReviewService};
use warden_store::PostgresStore;
use warden_test_support::postgres::Postgres;

async fn pg_node(url: &str) -> (Arc<PostgresStore>, ReviewService) {
    let store = Arc::new(PostgresStore::open(url).await.unwrap());
    let service = ReviewService::new(
        store.clone(),
        store.clone(),
        policies(),
        Vec::new(),
        ReviewOptions::default(),
    );
    (store, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_work_across_two_nodes_on_postgres() {
    warden_test_support::init();
    let pg = Postgres::start().unwrap();
    pg.psql("create database reviews").unwrap();
    let url = pg.url("reviews");
    let (store_a, a) = pg_node(&url).await;
    let (_store_b, b) = pg_node(&url).await;

    // Two approvals, one on each node; the waiter is on A.
    let sql = "ALTER TABLE orders ADD COLUMN note text";
    let ticket = a
        .submit(statement("agents ddl with two approvals", "s1", sql))
        .await
        .unwrap();
    let waiter = {
        let a = a.clone();
        let id = ticket.id.clone();
        tokio::spawn(async move { a.wait(&id, LONG).await })
    };
    let err = b
        .decide(&ticket.id, &agent(), true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::SelfReview { .. }), "{err}");
    assert_eq!(
        b.decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
            .await
            .unwrap(),
        ReviewState::Pending
    );
    assert!(!waiter.is_finished());
    assert_eq!(
        a.decide(&ticket.id, &oidc("carol", &[]), true, Some("fine".into()))
            .await
            .unwrap(),
        ReviewState::Approved
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, ReviewOutcome::Approved { .. }),
        "{outcome:?}"
    );

    // A waiter on A released by a deny on B (the in-process wake-up does
    // not help here: only polling the shared database can see it).
    let ticket = a
        .submit(statement(
            "agents write with one approval",
            "s2",
            "DELETE FROM orders",
        ))
        .await
        .unwrap();
    let waiter = {
        let a = a.clone();
        let id = ticket.id.clone();
        tokio::spawn(async move { a.wait(&id, LONG).await })
    };
    b.decide(
        &ticket.id,
        &oidc("dave", &["dba"]),
        false,
        Some("no".into()),
    )
    .await
    .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("not released within 1 s of the decision on the other node")
        .unwrap();
    assert_eq!(
        outcome,
        ReviewOutcome::Denied {
            reviewer: "dave <dave@example.com>".into(),
            comment: Some("no".into())
        }
    );

    // Session scope and access grants through PostgreSQL.
    let sql = "DELETE FROM orders WHERE id = 1";
    let ticket = b
        .submit(statement("agents delete once per session", "s3", sql))
        .await
        .unwrap();
    a.decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    let hash = warden_core::reviews::statement_hash(sql, &[]);
    assert!(b.session_approved("s3", &hash).await);
    assert!(!b.session_approved("s4", &hash).await);
    let olga = oidc("olga", &["oncall"]);
    let ticket = b
        .request_access(&olga, "orders", Duration::from_secs(600), None)
        .await
        .unwrap();
    assert!(!a.has_access_grant(&olga, "orders").await);
    a.decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    assert!(b.has_access_grant(&olga, "orders").await);
    let listed = store_a
        .list_reviews(Some(ReviewState::Approved), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        store_a
            .list_grants(false, time::OffsetDateTime::now_utc())
            .await
            .unwrap()
            .len(),
        1
    );
}
