//! The queries both backends run as written, expanded once per backend.
//!
//! sqlx infers the database from the pool, so the same source compiles for
//! SQLite and PostgreSQL; writing it once keeps the two stores from
//! drifting. What differs (transaction start, the start-up sweep, the
//! chain lock) lives in `sqlite.rs`/`sessions.rs` and `postgres/`.

macro_rules! portable_queries {
    ($pool:ty, $conn:ty) => {
        use crate::chain::{
            ChainFields, ChainVerifier, ChainedRow, GENESIS, VERIFY_BATCH, AuditChainReport,
        };
        use crate::keys::key_row;
        use crate::rows::{SessionFilter, SessionRow, session_row};
        use crate::sql::{self, select_audit, select_chained_audit, select_keys, select_sessions};
        use crate::timefmt::to_db;
        use crate::{StoreError, audit::audit_row, db_err, to_i64};
        use time::OffsetDateTime;
        use warden_core::engines::AccessKeyRecord;
        use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};

        pub(crate) async fn session_started(
            pool: &$pool,
            node: &str,
            session: &SessionInfo,
        ) -> Result<(), StoreError> {
            let identity = serde_json::to_string(&session.identity)
                .map_err(|e| StoreError::Encode {
                    what: "the identity".into(),
                    source: Some(Box::new(e)),
                })?;
            sqlx::query(sql::INSERT_SESSION)
                .bind(&session.id)
                .bind(&session.identity.subject)
                .bind(identity)
                .bind(&session.target)
                .bind(session.protocol.to_string())
                .bind(session.client_addr.to_string())
                .bind(session.client_tls)
                .bind(to_db(session.started_at)?)
                .bind(node)
                .execute(pool)
                .await
                .map_err(|e| db_err(&format!("cannot index session {}", session.id), e))?;
            Ok(())
        }

        /// Overwrites an interruption mark: the node that served the
        /// session knows best how it ended.
        pub(crate) async fn session_ended(
            pool: &$pool,
            session_id: &str,
            summary: &SessionSummary,
        ) -> Result<(), StoreError> {
            let done = sqlx::query(sql::END_SESSION)
                .bind(to_db(OffsetDateTime::now_utc())?)
                .bind(to_i64(summary.bytes_from_client))
                .bind(to_i64(summary.bytes_to_client))
                .bind(to_i64(summary.statements))
                .bind(&summary.reason)
                .bind(session_id)
                .execute(pool)
                .await
                .map_err(|e| db_err(&format!("cannot end session {session_id}"), e))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::SessionNotIndexed {
                    session_id: session_id.to_string(),
                });
            }
            Ok(())
        }

        pub(crate) async fn list_sessions(
            pool: &$pool,
            filter: &SessionFilter,
        ) -> Result<Vec<SessionRow>, StoreError> {
            let limit = i64::from(filter.limit);
            let query = match (&filter.target, filter.open_only) {
                (None, false) => sqlx::query(select_sessions!(
                    "ORDER BY started_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit),
                (None, true) => sqlx::query(select_sessions!(
                    "WHERE ended_at IS NULL ORDER BY started_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit),
                (Some(target), false) => sqlx::query(select_sessions!(
                    "WHERE target = $2 ORDER BY started_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .bind(target.clone()),
                (Some(target), true) => sqlx::query(select_sessions!(
                    "WHERE target = $2 AND ended_at IS NULL ORDER BY started_at DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .bind(target.clone()),
            };
            let rows = query
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot list sessions", e))?;
            rows.iter().map(session_row).collect()
        }

        /// Sets or clears a session's legal hold; false when no such session.
        pub(crate) async fn set_session_hold(
            pool: &$pool,
            id: &str,
            held: bool,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE sessions SET held = $1 WHERE id = $2")
                .bind(held)
                .bind(id)
                .execute(pool)
                .await
                .map_err(|e| db_err(&format!("cannot change the hold of session {id}"), e))?;
            Ok(done.rows_affected() > 0)
        }

        /// Ids of the sessions on legal hold.
        pub(crate) async fn held_sessions(pool: &$pool) -> Result<Vec<String>, StoreError> {
            use sqlx::Row;
            let rows = sqlx::query("SELECT id FROM sessions WHERE held = $1 ORDER BY id")
                .bind(true)
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot list held sessions", e))?;
            rows.iter()
                .map(|row| {
                    row.try_get::<String, _>(0)
                        .map_err(|e| db_err("cannot read a held session", e))
                })
                .collect()
        }

        /// Removes a session from the index (its recording expired); false when absent.
        pub(crate) async fn forget_session(pool: &$pool, id: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND held = $2")
                .bind(id)
                .bind(false)
                .execute(pool)
                .await
                .map_err(|e| db_err(&format!("cannot remove session {id}"), e))?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn get_session(
            pool: &$pool,
            id_or_prefix: &str,
        ) -> Result<Option<SessionRow>, StoreError> {
            let exact = sqlx::query(select_sessions!("WHERE id = $1"))
                .bind(id_or_prefix)
                .fetch_optional(pool)
                .await
                .map_err(|e| db_err("cannot look up the session", e))?;
            if let Some(row) = exact {
                return session_row(&row).map(Some);
            }
            // Only id characters may form a prefix: this also keeps LIKE's
            // wildcards out of the pattern. Ids are lowercase and LIKE is
            // case-sensitive in PostgreSQL, so the prefix is lowercased.
            let prefix = id_or_prefix.to_ascii_lowercase();
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                return Ok(None);
            }
            let rows = sqlx::query(select_sessions!("WHERE id LIKE $1 ORDER BY id LIMIT 2"))
                .bind(format!("{prefix}%"))
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot look up the session", e))?;
            match rows.as_slice() {
                [] => Ok(None),
                [row] => session_row(row).map(Some),
                _ => Err(StoreError::AmbiguousSessionPrefix {
                    prefix: id_or_prefix.to_string(),
                }),
            }
        }

        pub(crate) async fn insert_key(
            pool: &$pool,
            key: &AccessKeyRecord,
        ) -> Result<(), StoreError> {
            let groups = serde_json::to_string(&key.groups)
                .map_err(|e| StoreError::Encode {
                    what: "key groups".into(),
                    source: Some(Box::new(e)),
                })?;
            sqlx::query(sql::INSERT_KEY)
                .bind(&key.id)
                .bind(&key.name)
                .bind(groups)
                .bind(&key.key_sha256)
                .bind(
                    key.exchange_verifier(crate::keys::MYSQL_NATIVE)
                        .unwrap_or_default(),
                )
                .bind(to_db(key.created_at)?)
                .bind(to_db(key.expires_at)?)
                .bind(key.revoked_at.map(to_db).transpose()?)
                .execute(pool)
                .await
                .map_err(|e| db_err(&format!("cannot store access key {}", key.id), e))?;
            Ok(())
        }

        pub(crate) async fn find_key(
            pool: &$pool,
            id: &str,
        ) -> Result<Option<AccessKeyRecord>, StoreError> {
            let row = sqlx::query(select_keys!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(|e| db_err("cannot look up the access key", e))?;
            row.as_ref().map(key_row).transpose()
        }

        pub(crate) async fn list_keys(pool: &$pool) -> Result<Vec<AccessKeyRecord>, StoreError> {
            let rows = sqlx::query(select_keys!("ORDER BY created_at, id"))
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot list access keys", e))?;
            rows.iter().map(key_row).collect()
        }

        /// Keeps the first revocation time when a key is revoked twice.
        pub(crate) async fn revoke_key(pool: &$pool, id: &str) -> Result<bool, StoreError> {
            let done = sqlx::query(sql::REVOKE_KEY)
                .bind(to_db(OffsetDateTime::now_utc())?)
                .bind(id)
                .execute(pool)
                .await
                .map_err(|e| db_err(&format!("cannot revoke access key {id}"), e))?;
            Ok(done.rows_affected() > 0)
        }

        /// Newest first (by insertion order, which is what `id` records).
        pub(crate) async fn list_audit(
            pool: &$pool,
            limit: u32,
            session_id: Option<&str>,
        ) -> Result<Vec<AuditEvent>, StoreError> {
            let limit = i64::from(limit);
            let query = match session_id {
                None => sqlx::query(select_audit!("ORDER BY id DESC LIMIT $1")).bind(limit),
                Some(id) => sqlx::query(select_audit!(
                    "WHERE session_id = $2 ORDER BY id DESC LIMIT $1"
                ))
                .bind(limit)
                .bind(id.to_string()),
            };
            let rows = query
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot list audit events", e))?;
            rows.iter().map(audit_row).collect()
        }

        /// Appends an event to the chain. The caller holds a transaction
        /// that no other writer of the chain can enter at the same time.
        pub(crate) async fn append_audit(
            conn: &mut $conn,
            event: &AuditEvent,
        ) -> Result<(), StoreError> {
            let head: Option<Option<String>> = sqlx::query_scalar(sql::CHAIN_HEAD)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| db_err("cannot read the audit chain head", e))?;
            let prev = head.flatten().unwrap_or_else(|| GENESIS.to_string());
            let fields = ChainFields::of(event, to_db(event.at)?);
            let hash = fields.hash(&prev)?;
            sqlx::query(sql::INSERT_AUDIT)
                .bind(&fields.at)
                .bind(&fields.kind)
                .bind(&fields.actor)
                .bind(&fields.target)
                .bind(&fields.session_id)
                .bind(&fields.client_addr)
                .bind(&fields.detail)
                .bind(&prev)
                .bind(&hash)
                .execute(&mut *conn)
                .await
                .map_err(|e| db_err(&format!("cannot write audit event {}", event.kind), e))?;
            Ok(())
        }

        /// Walks the whole chain in id order, a batch at a time.
        pub(crate) async fn verify_audit_chain(
            pool: &$pool,
        ) -> Result<AuditChainReport, StoreError> {
            let mut verifier = ChainVerifier::new();
            loop {
                let rows = sqlx::query(select_chained_audit!(
                    "WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(verifier.last_id())
                .bind(VERIFY_BATCH)
                .fetch_all(pool)
                .await
                .map_err(|e| db_err("cannot read the audit chain", e))?;
                for row in &rows {
                    verifier.push(&ChainedRow::read(row)?)?;
                }
                if i64::try_from(rows.len()).unwrap_or(i64::MAX) < VERIFY_BATCH {
                    return Ok(verifier.finish());
                }
            }
        }
    };
}

pub(crate) mod sqlite {
    portable_queries!(sqlx::SqlitePool, sqlx::SqliteConnection);
}

pub(crate) mod postgres {
    portable_queries!(sqlx::PgPool, sqlx::PgConnection);
}
