//! The review rules end to end on a real SQLite store: votes, scopes,
//! timeouts, access grants, the audit trail, and two "nodes" sharing a file.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;
use warden_core::review_store::{ReviewState, ReviewStore};
use warden_core::reviews::{ReviewEngine, ReviewOutcome};
use warden_reviews::{ReviewError, ReviewOptions};

const ONE: &str = "agents write with one approval";
const TWO: &str = "agents ddl with two approvals";
const SESSION: &str = "agents delete once per session";

#[tokio::test]
async fn the_requester_cannot_approve_or_deny_their_own_review() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let ticket = n.hold(ONE, "s1", "DELETE FROM orders").await;
    // Even when the requester is in an approver group.
    let mut requester = agent();
    requester.groups.push("dba".into());
    for approve in [true, false] {
        let err = n
            .service
            .decide(&ticket.id, &requester, approve, None)
            .await
            .unwrap_err();
        assert!(matches!(err, ReviewError::SelfReview { .. }), "{err}");
    }
    let review = n.store.get_review(&ticket.id).await.unwrap().unwrap();
    assert_eq!(review.state, ReviewState::Pending);
    assert!(n.store.list_votes(&ticket.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn non_approvers_and_unknown_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let ticket = n.hold(ONE, "s1", "UPDATE orders SET x = 1").await;
    let err = n
        .service
        .decide(&ticket.id, &oidc("mallory", &["agents"]), true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::NotApprover { .. }), "{err}");
    assert!(err.to_string().contains("group:dba"), "{err}");
    let err = n
        .service
        .decide("no-such-review", &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn two_approvals_need_two_distinct_approvers() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let ticket = n.hold(TWO, "s1", "DROP TABLE orders").await;
    let waiter = n.waiter(&ticket.id);
    let bob = oidc("bob", &["dba"]);
    let state = n
        .service
        .decide(&ticket.id, &bob, true, Some("looks fine".into()))
        .await
        .unwrap();
    assert_eq!(state, ReviewState::Pending);
    let err = n
        .service
        .decide(&ticket.id, &bob, true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::AlreadyVoted { .. }), "{err}");
    assert!(!waiter.is_finished());
    // carol is an approver by subject, not by group.
    let carol = oidc("carol", &[]);
    let state = n
        .service
        .decide(&ticket.id, &carol, true, Some("ok".into()))
        .await
        .unwrap();
    assert_eq!(state, ReviewState::Approved);
    match waiter.await.unwrap() {
        ReviewOutcome::Approved { approvers, comment } => {
            assert_eq!(
                approvers,
                vec![
                    "bob <bob@example.com>".to_string(),
                    "carol <carol@example.com>".to_string()
                ]
            );
            assert_eq!(comment.as_deref(), Some("ok"));
        }
        other => panic!("{other:?}"),
    }
    let kinds = audit_kinds(&n.store).await;
    assert_eq!(
        kinds,
        vec!["review.requested", "review.vote", "review.approved"]
    );
}

#[tokio::test]
async fn a_deny_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let ticket = n.hold(TWO, "s1", "DROP TABLE orders").await;
    let bob = oidc("bob", &["dba"]);
    let dave = oidc("dave", &["dba"]);
    assert_eq!(
        n.service
            .decide(&ticket.id, &bob, true, None)
            .await
            .unwrap(),
        ReviewState::Pending
    );
    assert_eq!(
        n.service
            .decide(
                &ticket.id,
                &dave,
                false,
                Some("not during business hours".into())
            )
            .await
            .unwrap(),
        ReviewState::Denied
    );
    let err = n
        .service
        .decide(&ticket.id, &oidc("carol", &[]), true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReviewError::AlreadyDecided {
                state: ReviewState::Denied,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        n.service.wait(&ticket.id, LONG).await,
        ReviewOutcome::Denied {
            reviewer: "dave <dave@example.com>".into(),
            comment: Some("not during business hours".into())
        }
    );
    assert!(
        audit_kinds(&n.store)
            .await
            .contains(&"review.denied".to_string())
    );
}

#[tokio::test]
async fn session_scope_covers_the_same_statement_in_the_same_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let sql = "DELETE FROM orders WHERE id = 7";
    let hash = warden_core::reviews::statement_hash(sql, &[]);
    let session = n.hold(SESSION, "s1", sql).await;
    assert!(!n.service.session_approved("s1", &hash).await, "pending");
    n.service
        .decide(&session.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    assert!(n.service.session_approved("s1", &hash).await);
    assert!(
        !n.service.session_approved("s2", &hash).await,
        "other session"
    );
    let other = warden_core::reviews::statement_hash("DELETE FROM orders WHERE id = 8", &[]);
    assert!(
        !n.service.session_approved("s1", &other).await,
        "other statement"
    );
    // Same text, other parameters: another hash.
    let with_params = warden_core::reviews::statement_hash(sql, &[Some(b"7".to_vec()), None]);
    assert!(!n.service.session_approved("s1", &with_params).await);

    // Statement scope: approved once, never reused.
    let once = n.service.submit(statement(ONE, "s3", sql)).await.unwrap();
    n.service
        .decide(&once.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    assert!(matches!(
        n.service.wait(&once.id, LONG).await,
        ReviewOutcome::Approved { .. }
    ));
    assert!(!n.service.session_approved("s3", &hash).await);
}

#[tokio::test]
async fn an_unanswered_review_times_out_and_stays_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let ticket = n.hold(ONE, "s1", "UPDATE orders SET x = 1").await;
    let outcome = n.service.wait(&ticket.id, Duration::from_millis(300)).await;
    assert_eq!(outcome, ReviewOutcome::TimedOut);
    let review = n.store.get_review(&ticket.id).await.unwrap().unwrap();
    assert_eq!(review.state, ReviewState::TimedOut);
    let err = n
        .service
        .decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::AlreadyDecided { .. }), "{err}");
    assert!(
        audit_kinds(&n.store)
            .await
            .contains(&"review.timed_out".to_string())
    );
}

#[tokio::test]
async fn cancel_releases_the_waiter_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let ticket = n.hold(ONE, "s1", "UPDATE orders SET x = 1").await;
    let waiter = n.waiter(&ticket.id);
    n.service.cancel(&ticket.id, "client disconnected").await;
    assert_eq!(
        waiter.await.unwrap(),
        ReviewOutcome::Cancelled {
            reason: "client disconnected".into()
        }
    );
    assert!(
        audit_kinds(&n.store)
            .await
            .contains(&"review.cancelled".to_string())
    );
}

#[tokio::test]
async fn a_review_for_an_unknown_rule_has_no_approvers() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let ticket = n
        .hold("renamed rule", "s1", "UPDATE orders SET x = 1")
        .await;
    let err = n
        .service
        .decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::NotApprover { .. }), "{err}");
}

#[tokio::test]
async fn an_approved_access_request_grants_time_boxed_access() {
    let dir = tempfile::tempdir().unwrap();
    let n = plain_node(&dir).await;
    let oncall = oidc("olga", &["oncall"]);
    let err = n
        .service
        .request_access(&oncall, "billing", Duration::from_secs(3600), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::NoAccessRule { .. }), "{err}");
    let err = n
        .service
        .request_access(&oncall, "orders", Duration::from_secs(30 * 86400), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::BadRequest(_)), "{err}");
    let ticket = n
        .service
        .request_access(
            &oncall,
            "orders-eu",
            Duration::from_secs(3600),
            Some("INC-42".into()),
        )
        .await
        .unwrap();
    assert!(!n.service.has_access_grant(&oncall, "orders-eu").await);
    n.service
        .decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    assert!(n.service.has_access_grant(&oncall, "orders-eu").await);
    assert!(!n.service.has_access_grant(&oncall, "orders").await);
    assert!(
        !n.service
            .has_access_grant(&oidc("someone", &["oncall"]), "orders-eu")
            .await
    );
    let grants = n.service.grants(false).await.unwrap();
    assert_eq!(grants.len(), 1);
    let lasts = grants[0].expires_at - grants[0].created_at;
    assert_eq!(lasts, time::Duration::hours(1));
    let kinds = audit_kinds(&n.store).await;
    assert_eq!(
        kinds,
        vec!["review.requested", "review.approved", "access.granted"]
    );
}

#[tokio::test]
async fn the_sweeper_ends_expired_grants_and_abandoned_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let options = ReviewOptions {
        sweep_grace: Duration::ZERO,
        ..ReviewOptions::default()
    };
    let n = node(&dir, Vec::new(), options).await;
    let oncall = oidc("olga", &["oncall"]);
    let ticket = n
        .service
        .request_access(&oncall, "orders", Duration::from_secs(3600), None)
        .await
        .unwrap();
    n.service
        .decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    // Move the grant's expiry into the past, as time passing would.
    let grant = n.service.grants(false).await.unwrap().remove(0);
    let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    expire_grant(&n, &grant.id, past).await;
    assert!(!n.service.has_access_grant(&oncall, "orders").await);

    // A statement review still in its time, and one whose waiter died
    // (its rule's review_timeout is zero, so it is already past expiry).
    let fresh = n.hold(ONE, "s1", "UPDATE orders SET x = 1").await;
    let mut policies = policies();
    for policy in &mut policies {
        policy.review_timeout = Duration::ZERO;
    }
    n.service.set_policies(policies);
    let abandoned = n.hold(ONE, "s2", "UPDATE orders SET x = 2").await;
    let report = n.service.sweep().await.unwrap();
    assert_eq!(report.grants_expired, 1);
    assert_eq!(report.timed_out, 1);
    assert_eq!(
        n.store
            .get_review(&abandoned.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ReviewState::TimedOut
    );
    assert_eq!(
        n.store.get_review(&fresh.id).await.unwrap().unwrap().state,
        ReviewState::Pending
    );
    let again = n.service.sweep().await.unwrap();
    assert_eq!(
        again,
        warden_reviews::SweepReport::default(),
        "each ends once"
    );
    let kinds = audit_kinds(&n.store).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "access.expired").count(),
        1,
        "{kinds:?}"
    );
}

/// Moves a grant's expiry into the past, as time passing would (the store
/// API has no "edit a grant", so through SQL on the same file).
async fn expire_grant(n: &Node, id: &str, at: time::OffsetDateTime) {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&n.path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .unwrap();
    let done = sqlx::query("UPDATE access_grants SET expires_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    pool.close().await;
}

#[tokio::test]
async fn a_decision_on_another_node_releases_the_waiter_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let a = plain_node(&dir).await;
    let b = plain_node(&dir).await;
    let ticket = a.hold(ONE, "s1", "UPDATE orders SET paid = true").await;
    let waiter = a.waiter(&ticket.id);
    // B sees A's review and decides it.
    let pending = b
        .service
        .list(Some(ReviewState::Pending), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, ticket.id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!waiter.is_finished(), "released before any decision");
    b.service
        .decide(&ticket.id, &oidc("bob", &["dba"]), true, None)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("the waiter on node A was not released within 1 s of the decision on node B")
        .unwrap();
    assert!(
        matches!(outcome, ReviewOutcome::Approved { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn racing_approve_and_deny_on_two_nodes_decide_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = plain_node(&dir).await;
    let b = plain_node(&dir).await;
    for round in 0..5 {
        let ticket = a
            .service
            .submit(statement(
                ONE,
                &format!("s{round}"),
                "UPDATE orders SET x = 1",
            ))
            .await
            .unwrap();
        let (bob, dave) = (oidc("bob", &["dba"]), oidc("dave", &["dba"]));
        let (approve, deny) = tokio::join!(
            a.service.decide(&ticket.id, &bob, true, None),
            b.service.decide(&ticket.id, &dave, false, None),
        );
        let state = a.store.get_review(&ticket.id).await.unwrap().unwrap().state;
        match (approve, deny) {
            (Ok(ReviewState::Approved), Err(ReviewError::AlreadyDecided { .. })) => {
                assert_eq!(state, ReviewState::Approved)
            }
            (Err(ReviewError::AlreadyDecided { .. }), Ok(ReviewState::Denied)) => {
                assert_eq!(state, ReviewState::Denied)
            }
            other => panic!("round {round}: both or neither won: {other:?}"),
        }
        // The losing vote is not left behind.
        assert_eq!(a.store.list_votes(&ticket.id).await.unwrap().len(), 1);
    }
}
