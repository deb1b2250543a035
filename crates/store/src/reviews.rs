//! Reviews, votes and access grants ([`ReviewStore`]) for both backends.
//!
//! The statements are portable as written (`$n` parameters, TEXT, BIGINT,
//! BOOLEAN), so one macro expands them for SQLite and PostgreSQL. Every
//! state change is a single conditional statement: two nodes deciding the
//! same review at once cannot both win, without a transaction.

use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use async_trait::async_trait;
use time::OffsetDateTime;
use warden_core::engines::StoreError;
use warden_core::review_store::{AccessGrant, ReviewRecord, ReviewState, ReviewStore, ReviewVote};

/// `SELECT <every column> FROM reviews <tail>` as one static string.
macro_rules! select_reviews {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, state, session_id, target, requester, requester_principal, ",
            "statement, statement_hash, operation, tables, rule, reason, duration_secs, ",
            "approvers, min_approvals, approval_scope, created_at, expires_at, decided_at, ",
            "decided_by, decision_comment FROM reviews ",
            $tail
        )
    };
}

/// `SELECT <every column> FROM access_grants <tail>`.
macro_rules! select_grants {
    ($tail:literal) => {
        concat!(
            "SELECT id, principal, subject, target, created_at, expires_at, ended_at ",
            "FROM access_grants ",
            $tail
        )
    };
}

/// The queries, for one backend's pool and row types.
macro_rules! review_queries {
    ($pool:ty, $row:ty) => {
        use crate::timefmt::{from_db, from_db_opt, to_db};
        use crate::{db_err, to_i64, to_u64};
        use sqlx::Row;
        use time::OffsetDateTime;
        use warden_core::Operation;
        use warden_core::engines::StoreError;
        use warden_core::review_store::{
            AccessGrant, ApprovalScope, ReviewRecord, ReviewState, ReviewVote,
        };

        fn json<T: serde::Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
            serde_json::to_string(value)
                .map_err(|e| StoreError::Encode {
                    what: what.to_string(),
                    source: Some(Box::new(e)),
                })
        }

        fn unjson<T: serde::de::DeserializeOwned>(
            text: &str,
            id: &str,
            what: &str,
        ) -> Result<T, StoreError> {
            serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt {
                    what: format!("review {id} has a bad {what}"),
                    source: Some(Box::new(e)),
                })
        }

        fn review_row(row: &$row) -> Result<ReviewRecord, StoreError> {
            let get = |e: sqlx::Error| db_err("cannot read a review row", e);
            let id: String = row.try_get("id").map_err(get)?;
            let kind: String = row.try_get("kind").map_err(get)?;
            let state: String = row.try_get("state").map_err(get)?;
            let operation: String = row.try_get("operation").map_err(get)?;
            let scope: String = row.try_get("approval_scope").map_err(get)?;
            let requester: String = row.try_get("requester").map_err(get)?;
            let tables: String = row.try_get("tables").map_err(get)?;
            let approvers: String = row.try_get("approvers").map_err(get)?;
            let duration: Option<i64> = row.try_get("duration_secs").map_err(get)?;
            let min_approvals: i64 = row.try_get("min_approvals").map_err(get)?;
            let bad = |what: &str, text: &str| {
                StoreError::Corrupt {
                    what: format!("review {id} has a bad {what} {text:?}"),
                    source: None,
                }
            };
            Ok(ReviewRecord {
                kind: serde_json::from_value(serde_json::Value::String(kind.clone()))
                    .map_err(|_| bad("kind", &kind))?,
                state: ReviewState::parse(&state).ok_or_else(|| bad("state", &state))?,
                session_id: row.try_get("session_id").map_err(get)?,
                target: row.try_get("target").map_err(get)?,
                requester: unjson(&requester, &id, "requester")?,
                requester_principal: row.try_get("requester_principal").map_err(get)?,
                statement: row.try_get("statement").map_err(get)?,
                statement_hash: row.try_get("statement_hash").map_err(get)?,
                operation: Operation::parse(&operation)
                    .ok_or_else(|| bad("operation", &operation))?,
                tables: unjson(&tables, &id, "table list")?,
                rule: row.try_get("rule").map_err(get)?,
                reason: row.try_get("reason").map_err(get)?,
                duration_secs: duration.map(to_u64),
                approvers: unjson(&approvers, &id, "approver list")?,
                min_approvals: u32::try_from(to_u64(min_approvals)).unwrap_or(u32::MAX),
                approval_scope: ApprovalScope::parse(&scope)
                    .ok_or_else(|| bad("approval scope", &scope))?,
                created_at: from_db(&row.try_get::<String, _>("created_at").map_err(get)?)?,
                expires_at: from_db(&row.try_get::<String, _>("expires_at").map_err(get)?)?,
                decided_at: from_db_opt(row.try_get("decided_at").map_err(get)?)?,
                decided_by: row.try_get("decided_by").map_err(get)?,
                decision_comment: row.try_get("decision_comment").map_err(get)?,
                id,
            })
        }

        fn vote_row(row: &$row) -> Result<ReviewVote, StoreError> {
            let get = |e: sqlx::Error| db_err("cannot read a review vote", e);
            Ok(ReviewVote {
                review_id: row.try_get("review_id").map_err(get)?,
                reviewer: row.try_get("reviewer").map_err(get)?,
                reviewer_name: row.try_get("reviewer_name").map_err(get)?,
                approve: row.try_get("approve").map_err(get)?,
                comment: row.try_get("comment").map_err(get)?,
                at: from_db(&row.try_get::<String, _>("at").map_err(get)?)?,
            })
        }

        fn grant_row(row: &$row) -> Result<AccessGrant, StoreError> {
            let get = |e: sqlx::Error| db_err("cannot read an access grant", e);
            Ok(AccessGrant {
                id: row.try_get("id").map_err(get)?,
                principal: row.try_get("principal").map_err(get)?,
                subject: row.try_get("subject").map_err(get)?,
                target: row.try_get("target").map_err(get)?,
                created_at: from_db(&row.try_get::<String, _>("created_at").map_err(get)?)?,
                expires_at: from_db(&row.try_get::<String, _>("expires_at").map_err(get)?)?,
                ended_at: from_db_opt(row.try_get("ended_at").map_err(get)?)?,
            })
        }

        pub(crate) async fn insert_review(
            pool: &$pool,
            review: &ReviewRecord,
        ) -> Result<(), StoreError> {
            let kind = match serde_json::to_value(review.kind) {
                Ok(serde_json::Value::String(kind)) => kind,
                _ => {
                    return Err(StoreError::Encode {
                        what: "the review kind".into(),
                        source: None,
                    });
                }
            };
            sqlx::query(
                "INSERT INTO reviews (id, kind, state, session_id, target, requester, \
                 requester_principal, statement, statement_hash, operation, tables, rule, reason, \
                 duration_secs, approvers, min_approvals, approval_scope, created_at, expires_at, \
                 decided_at, decided_by, decision_comment) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
            )
            .bind(&review.id)
            .bind(kind)
            .bind(review.state.as_str())
            .bind(&review.session_id)
            .bind(&review.target)
            .bind(json(&review.requester, "the requester")?)
            .bind(&review.requester_principal)
            .bind(&review.statement)
            .bind(&review.statement_hash)
            .bind(review.operation.as_str())
            .bind(json(&review.tables, "the table list")?)
            .bind(&review.rule)
            .bind(&review.reason)
            .bind(review.duration_secs.map(to_i64))
            .bind(json(&review.approvers, "the approver list")?)
            .bind(i64::from(review.min_approvals))
            .bind(review.approval_scope.as_str())
            .bind(to_db(review.created_at)?)
            .bind(to_db(review.expires_at)?)
            .bind(review.decided_at.map(to_db).transpose()?)
            .bind(&review.decided_by)
            .bind(&review.decision_comment)
            .execute(pool)
            .await
            .map_err(|e| db_err(&format!("cannot store review {}", review.id), e))?;
            Ok(())
        }

        pub(crate) async fn get_review(
            pool: &$pool,
            id: &str,
        ) -> Result<Option<ReviewRecord>, StoreError> {
            let row = sqlx::query(select_reviews!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(|e| db_err("cannot look up the review", e))?;
            row.as_ref().map(review_row).transpose()
        }

        pub(crate) async fn list_reviews(
            pool: &$pool,
            state: Option<ReviewState>,
            limit: u32,
        ) -> Result<Vec<ReviewRecord>, StoreError> {
            let limit = i64::from(limit);
            let query = match state {
                None => sqlx::query(select_reviews!(
                    "ORDER BY created_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit),
                Some(state) => sqlx::query(select_reviews!(
                    "WHERE state = $2 ORDER BY created_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .bind(state.as_str()),
            };
            let rows = query
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot list reviews", e))?;
            rows.iter().map(review_row).collect()
        }

        pub(crate) async fn insert_vote(
            pool: &$pool,
            vote: &ReviewVote,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "INSERT INTO review_votes (review_id, reviewer, reviewer_name, approve, comment, at) \
                 SELECT $1, $2, $3, $4, $5, $6 \
                 WHERE EXISTS (SELECT 1 FROM reviews WHERE id = $1 AND state = 'pending')",
            )
            .bind(&vote.review_id)
            .bind(&vote.reviewer)
            .bind(&vote.reviewer_name)
            .bind(vote.approve)
            .bind(&vote.comment)
            .bind(to_db(vote.at)?)
            .execute(pool)
            .await
            .map_err(|e| db_err(&format!("cannot record a vote on review {}", vote.review_id), e))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn delete_vote(
            pool: &$pool,
            review_id: &str,
            reviewer: &str,
        ) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM review_votes WHERE review_id = $1 AND reviewer = $2")
                .bind(review_id)
                .bind(reviewer)
                .execute(pool)
                .await
                .map_err(|e| db_err(&format!("cannot remove a vote on review {review_id}"), e))?;
            Ok(())
        }

        pub(crate) async fn list_votes(
            pool: &$pool,
            review_id: &str,
        ) -> Result<Vec<ReviewVote>, StoreError> {
            let rows = sqlx::query(
                "SELECT review_id, reviewer, reviewer_name, approve, comment, at \
                 FROM review_votes WHERE review_id = $1 ORDER BY at, reviewer",
            )
            .bind(review_id)
            .fetch_all(pool)
            .await
            .map_err(|e| db_err(&format!("cannot list the votes on review {review_id}"), e))?;
            rows.iter().map(vote_row).collect()
        }

        pub(crate) async fn finish_review(
            pool: &$pool,
            id: &str,
            state: ReviewState,
            decided_at: OffsetDateTime,
            decided_by: Option<&str>,
            comment: Option<&str>,
        ) -> Result<bool, StoreError> {
            if !state.is_final() {
                return Err(StoreError::ReviewNotFinal);
            }
            let done = sqlx::query(
                "UPDATE reviews SET state = $1, decided_at = $2, decided_by = $3, \
                 decision_comment = $4 WHERE id = $5 AND state = 'pending'",
            )
            .bind(state.as_str())
            .bind(to_db(decided_at)?)
            .bind(decided_by)
            .bind(comment)
            .bind(id)
            .execute(pool)
            .await
            .map_err(|e| db_err(&format!("cannot decide review {id}"), e))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn session_approval(
            pool: &$pool,
            session_id: &str,
            statement_hash: &str,
        ) -> Result<bool, StoreError> {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT id FROM reviews WHERE session_id = $1 AND statement_hash = $2 \
                 AND state = 'approved' AND approval_scope = 'session' LIMIT 1",
            )
            .bind(session_id)
            .bind(statement_hash)
            .fetch_optional(pool)
            .await
            .map_err(|e| db_err("cannot look up session approvals", e))?;
            Ok(found.is_some())
        }

        pub(crate) async fn insert_grant(
            pool: &$pool,
            grant: &AccessGrant,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "INSERT INTO access_grants (id, principal, subject, target, created_at, \
                 expires_at, ended_at) SELECT $1, $2, $3, $4, $5, $6, $7 \
                 WHERE NOT EXISTS (SELECT 1 FROM access_grants WHERE id = $1)",
            )
            .bind(&grant.id)
            .bind(&grant.principal)
            .bind(&grant.subject)
            .bind(&grant.target)
            .bind(to_db(grant.created_at)?)
            .bind(to_db(grant.expires_at)?)
            .bind(grant.ended_at.map(to_db).transpose()?)
            .execute(pool)
            .await
            .map_err(|e| db_err(&format!("cannot store access grant {}", grant.id), e))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn live_grant(
            pool: &$pool,
            principal: &str,
            target: &str,
            now: OffsetDateTime,
        ) -> Result<Option<AccessGrant>, StoreError> {
            let row = sqlx::query(select_grants!(
                "WHERE principal = $1 AND target = $2 AND expires_at > $3 AND ended_at IS NULL \
                 ORDER BY expires_at DESC LIMIT 1"
            ))
            .bind(principal)
            .bind(target)
            .bind(to_db(now)?)
            .fetch_optional(pool)
            .await
            .map_err(|e| db_err("cannot look up access grants", e))?;
            row.as_ref().map(grant_row).transpose()
        }

        pub(crate) async fn expired_grants(
            pool: &$pool,
            now: OffsetDateTime,
        ) -> Result<Vec<AccessGrant>, StoreError> {
            let rows = sqlx::query(select_grants!(
                "WHERE ended_at IS NULL AND expires_at <= $1 ORDER BY expires_at LIMIT 1000"
            ))
            .bind(to_db(now)?)
            .fetch_all(pool)
            .await
            .map_err(|e| db_err("cannot list expired access grants", e))?;
            rows.iter().map(grant_row).collect()
        }

        pub(crate) async fn end_grant(
            pool: &$pool,
            id: &str,
            at: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE access_grants SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL",
            )
            .bind(to_db(at)?)
            .bind(id)
            .execute(pool)
            .await
            .map_err(|e| db_err(&format!("cannot end access grant {id}"), e))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn list_grants(
            pool: &$pool,
            include_ended: bool,
            now: OffsetDateTime,
        ) -> Result<Vec<AccessGrant>, StoreError> {
            let query = if include_ended {
                sqlx::query(select_grants!("ORDER BY created_at DESC, id DESC LIMIT 1000"))
            } else {
                sqlx::query(select_grants!(
                    "WHERE ended_at IS NULL AND expires_at > $1 \
                     ORDER BY created_at DESC, id DESC LIMIT 1000"
                ))
                .bind(to_db(now)?)
            };
            let rows = query
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot list access grants", e))?;
            rows.iter().map(grant_row).collect()
        }
    };
}

mod sqlite_q {
    review_queries!(sqlx::SqlitePool, sqlx::sqlite::SqliteRow);
}

mod postgres_q {
    review_queries!(sqlx::PgPool, sqlx::postgres::PgRow);
}

/// Implements [`ReviewStore`] by delegating to one backend's queries.
macro_rules! impl_review_store {
    ($store:ty, $q:ident, |$this:ident| $pool:expr $(, { $($extra:tt)* })?) => {
        #[async_trait]
        impl ReviewStore for $store {
            async fn insert_review(&self, review: &ReviewRecord) -> Result<(), StoreError> {
                let $this = self;
                $q::insert_review($pool, review).await
            }
            async fn get_review(&self, id: &str) -> Result<Option<ReviewRecord>, StoreError> {
                let $this = self;
                $q::get_review($pool, id).await
            }
            async fn list_reviews(
                &self,
                state: Option<ReviewState>,
                limit: u32,
            ) -> Result<Vec<ReviewRecord>, StoreError> {
                let $this = self;
                $q::list_reviews($pool, state, limit).await
            }
            async fn insert_vote(&self, vote: &ReviewVote) -> Result<bool, StoreError> {
                let $this = self;
                $q::insert_vote($pool, vote).await
            }
            async fn delete_vote(&self, review_id: &str, reviewer: &str) -> Result<(), StoreError> {
                let $this = self;
                $q::delete_vote($pool, review_id, reviewer).await
            }
            async fn list_votes(&self, review_id: &str) -> Result<Vec<ReviewVote>, StoreError> {
                let $this = self;
                $q::list_votes($pool, review_id).await
            }
            async fn finish_review(
                &self,
                id: &str,
                state: ReviewState,
                decided_at: OffsetDateTime,
                decided_by: Option<&str>,
                comment: Option<&str>,
            ) -> Result<bool, StoreError> {
                let $this = self;
                $q::finish_review($pool, id, state, decided_at, decided_by, comment).await
            }
            async fn session_approval(
                &self,
                session_id: &str,
                statement_hash: &str,
            ) -> Result<bool, StoreError> {
                let $this = self;
                $q::session_approval($pool, session_id, statement_hash).await
            }
            async fn insert_grant(&self, grant: &AccessGrant) -> Result<bool, StoreError> {
                let $this = self;
                $q::insert_grant($pool, grant).await
            }
            async fn live_grant(
                &self,
                principal: &str,
                target: &str,
                now: OffsetDateTime,
            ) -> Result<Option<AccessGrant>, StoreError> {
                let $this = self;
                $q::live_grant($pool, principal, target, now).await
            }
            async fn expired_grants(
                &self,
                now: OffsetDateTime,
            ) -> Result<Vec<AccessGrant>, StoreError> {
                let $this = self;
                $q::expired_grants($pool, now).await
            }
            async fn end_grant(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
                let $this = self;
                $q::end_grant($pool, id, at).await
            }
            async fn list_grants(
                &self,
                include_ended: bool,
                now: OffsetDateTime,
            ) -> Result<Vec<AccessGrant>, StoreError> {
                let $this = self;
                $q::list_grants($pool, include_ended, now).await
            }
            $($($extra)*)?
        }
    };
}

// SQLite keeps the default `review_changes` (no feed: one node).
impl_review_store!(SqliteStore, sqlite_q, |store| &store.pool);
impl_review_store!(PostgresStore, postgres_q, |store| &store.inner.pool, {
    /// LISTEN/NOTIFY, see `postgres/listen.rs`.
    async fn review_changes(
        &self,
    ) -> Result<Option<warden_core::review_store::ReviewFeed>, StoreError> {
        self.open_review_feed().await
    }
});

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use warden_core::review_store::{ApprovalScope, principal};
    use warden_core::reviews::ReviewKind;
    use warden_core::{Identity, IdentityKind, Operation};

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open_path(&dir.path().join("warden.db"))
            .await
            .unwrap()
    }

    /// Times as the store keeps them (microseconds), for equality checks.
    fn now() -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.microsecond() * 1000).unwrap()
    }

    fn agent() -> Identity {
        Identity {
            subject: "key:agent".into(),
            kind: IdentityKind::AccessKey {
                key_id: "0011223344556677".into(),
                name: "agent".into(),
            },
            groups: vec!["agents".into()],
            email: None,
            claims: serde_json::Map::new(),
        }
    }

    fn review(id: &str, created_at: OffsetDateTime) -> ReviewRecord {
        let requester = agent();
        ReviewRecord {
            id: id.into(),
            kind: ReviewKind::Statement,
            state: ReviewState::Pending,
            session_id: Some("s-1".into()),
            target: "orders".into(),
            requester_principal: principal(&requester),
            requester,
            statement: Some("UPDATE orders SET paid = true WHERE id = 7".into()),
            statement_hash: Some("ab".repeat(32)),
            operation: Operation::Write,
            tables: vec!["public.orders".into()],
            rule: Some("agents write with review".into()),
            reason: None,
            duration_secs: None,
            approvers: vec!["group:dba".into()],
            min_approvals: 2,
            approval_scope: ApprovalScope::Session,
            created_at,
            expires_at: created_at + time::Duration::minutes(10),
            decided_at: None,
            decided_by: None,
            decision_comment: None,
        }
    }

    fn vote(review_id: &str, reviewer: &str, approve: bool) -> ReviewVote {
        ReviewVote {
            review_id: review_id.into(),
            reviewer: reviewer.into(),
            reviewer_name: reviewer.into(),
            approve,
            comment: Some(format!("{reviewer} says so")),
            at: now(),
        }
    }

    #[tokio::test]
    async fn reviews_round_trip_and_list_by_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let t = now();
        let a = review("a", t);
        let mut b = review("b", t + time::Duration::seconds(1));
        b.kind = ReviewKind::Access;
        b.statement = None;
        b.statement_hash = None;
        b.duration_secs = Some(3600);
        b.reason = Some("incident 42".into());
        store.insert_review(&a).await.unwrap();
        store.insert_review(&b).await.unwrap();
        assert_eq!(store.get_review("a").await.unwrap(), Some(a.clone()));
        assert_eq!(store.get_review("b").await.unwrap(), Some(b.clone()));
        assert_eq!(store.get_review("zzz").await.unwrap(), None);
        assert!(store.insert_review(&a).await.is_err(), "ids are unique");
        let all = store.list_reviews(None, 10).await.unwrap();
        assert_eq!(all, vec![b.clone(), a.clone()], "newest first");
        assert!(
            store
                .finish_review("b", ReviewState::Denied, now(), Some("bob"), Some("no"))
                .await
                .unwrap()
        );
        let pending = store
            .list_reviews(Some(ReviewState::Pending), 10)
            .await
            .unwrap();
        assert_eq!(pending, vec![a]);
        let denied = store
            .list_reviews(Some(ReviewState::Denied), 10)
            .await
            .unwrap();
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].decided_by.as_deref(), Some("bob"));
        assert_eq!(denied[0].decision_comment.as_deref(), Some("no"));
        assert!(denied[0].decided_at.is_some());
    }

    #[tokio::test]
    async fn a_review_is_decided_once_and_votes_only_while_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        store.insert_review(&review("r", now())).await.unwrap();
        assert!(store.insert_vote(&vote("r", "alice", true)).await.unwrap());
        assert!(
            store.insert_vote(&vote("r", "alice", true)).await.is_err(),
            "one vote per reviewer"
        );
        assert!(
            !store
                .insert_vote(&vote("nope", "alice", true))
                .await
                .unwrap()
        );
        assert!(
            store
                .finish_review("r", ReviewState::Approved, now(), Some("alice"), None)
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_review("r", ReviewState::Denied, now(), Some("bob"), None)
                .await
                .unwrap(),
            "a decided review cannot change"
        );
        assert!(
            store
                .finish_review("r", ReviewState::Pending, now(), None, None)
                .await
                .is_err()
        );
        assert!(!store.insert_vote(&vote("r", "bob", false)).await.unwrap());
        let votes = store.list_votes("r").await.unwrap();
        assert_eq!(votes.len(), 1);
        assert_eq!(votes[0].reviewer, "alice");
        store.delete_vote("r", "alice").await.unwrap();
        assert!(store.list_votes("r").await.unwrap().is_empty());
        assert_eq!(
            store.get_review("r").await.unwrap().unwrap().state,
            ReviewState::Approved
        );
    }

    #[tokio::test]
    async fn session_approvals_are_bound_to_session_hash_and_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let hash = "ab".repeat(32);
        let session = review("s", now());
        let mut statement_only = review("t", now());
        statement_only.session_id = Some("s-2".into());
        statement_only.approval_scope = ApprovalScope::Statement;
        store.insert_review(&session).await.unwrap();
        store.insert_review(&statement_only).await.unwrap();
        assert!(
            !store.session_approval("s-1", &hash).await.unwrap(),
            "pending"
        );
        for id in ["s", "t"] {
            store
                .finish_review(id, ReviewState::Approved, now(), Some("x"), None)
                .await
                .unwrap();
        }
        assert!(store.session_approval("s-1", &hash).await.unwrap());
        assert!(
            !store
                .session_approval("s-1", &"cd".repeat(32))
                .await
                .unwrap()
        );
        assert!(!store.session_approval("s-9", &hash).await.unwrap());
        assert!(
            !store.session_approval("s-2", &hash).await.unwrap(),
            "statement scope never covers a later statement"
        );
    }

    #[tokio::test]
    async fn grants_are_live_until_they_expire_and_end_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let t = now();
        store.insert_review(&review("g1", t)).await.unwrap();
        store.insert_review(&review("g2", t)).await.unwrap();
        let live = AccessGrant {
            id: "g1".into(),
            principal: "key-id:1".into(),
            subject: "key:agent".into(),
            target: "orders".into(),
            created_at: t,
            expires_at: t + time::Duration::hours(1),
            ended_at: None,
        };
        let past = AccessGrant {
            id: "g2".into(),
            expires_at: t - time::Duration::seconds(1),
            ..live.clone()
        };
        assert!(store.insert_grant(&live).await.unwrap());
        assert!(!store.insert_grant(&live).await.unwrap(), "one per review");
        assert!(store.insert_grant(&past).await.unwrap());
        assert_eq!(
            store.live_grant("key-id:1", "orders", t).await.unwrap(),
            Some(live.clone())
        );
        assert_eq!(
            store.live_grant("key-id:1", "billing", t).await.unwrap(),
            None
        );
        assert_eq!(
            store.live_grant("key-id:2", "orders", t).await.unwrap(),
            None
        );
        let expired = store.expired_grants(t).await.unwrap();
        assert_eq!(expired, vec![past.clone()]);
        assert!(store.end_grant("g2", t).await.unwrap());
        assert!(!store.end_grant("g2", t).await.unwrap());
        assert!(store.expired_grants(t).await.unwrap().is_empty());
        assert_eq!(
            store.list_grants(false, t).await.unwrap(),
            vec![live.clone()]
        );
        assert_eq!(store.list_grants(true, t).await.unwrap().len(), 2);
        assert!(
            store
                .live_grant("key-id:1", "orders", t + time::Duration::hours(2))
                .await
                .unwrap()
                .is_none()
        );
    }
}
