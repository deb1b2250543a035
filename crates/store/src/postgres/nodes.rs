//! Node heartbeats and the sweep of dead nodes' sessions.
//!
//! The rule: a serving node upserts `nodes.last_seen` every
//! [`Liveness::heartbeat`](crate::node::Liveness). An open session is taken
//! for interrupted, and ended with a reason, when
//! - its node's heartbeat is older than `stale_after` (or the node has no
//!   heartbeat row at all, or the session has no node), or
//! - at start-up only: it carries this node's own id and started before this
//!   store was opened (a previous run under a fixed `WARDEN_NODE_ID`).
//!
//! Every serving node runs the sweep at start-up and after each heartbeat,
//! so a crashed node's sessions are closed within about
//! `stale_after + heartbeat` by the survivors. Times come from the database
//! server's clock, so clock skew between nodes does not matter.

use super::{Inner, PostgresStore};
use crate::timefmt::to_db;
use crate::{StoreError, db_err};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The database server's current time as stored text.
macro_rules! db_now {
    () => {
        r#"to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#
    };
}

/// The server's time `$n` milliseconds ago, as stored text.
macro_rules! db_ago {
    ($n:literal) => {
        concat!(
            r#"to_char((clock_timestamp() - $"#,
            $n,
            r#"::float8 * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#
        )
    };
}

const REGISTER: &str = concat!(
    "INSERT INTO nodes (id, started_at, last_seen) VALUES ($1, ",
    db_now!(),
    ", ",
    db_now!(),
    ") ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at, ",
    "last_seen = EXCLUDED.last_seen"
);

const BEAT: &str = concat!(
    "INSERT INTO nodes (id, started_at, last_seen) VALUES ($1, ",
    db_now!(),
    ", ",
    db_now!(),
    ") ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen"
);

/// $1 ended_at, $2 reason, $3 this node, $4 opened_at, $5 stale_after (ms).
const SWEEP_AT_START: &str = concat!(
    "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE ended_at IS NULL AND (",
    "node IS NULL OR (node = $3 AND started_at < $4) OR (node <> $3 AND NOT EXISTS (",
    "SELECT 1 FROM nodes WHERE nodes.id = sessions.node AND nodes.last_seen >= ",
    db_ago!("5"),
    ")))"
);

/// $1 ended_at, $2 reason, $3 this node, $4 stale_after (ms).
const SWEEP: &str = concat!(
    "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE ended_at IS NULL AND (",
    "node IS NULL OR (node <> $3 AND NOT EXISTS (",
    "SELECT 1 FROM nodes WHERE nodes.id = sessions.node AND nodes.last_seen >= ",
    db_ago!("4"),
    ")))"
);

/// Forgets nodes silent for $1 ms that have no open session left.
const FORGET: &str = concat!(
    "DELETE FROM nodes WHERE last_seen < ",
    db_ago!("1"),
    " AND NOT EXISTS (SELECT 1 FROM sessions ",
    "WHERE sessions.node = nodes.id AND sessions.ended_at IS NULL)"
);

/// Why the periodic sweep ended a session.
const SWEEP_REASON: &str =
    "interrupted: the Warden node serving the session stopped sending heartbeats";

/// Nodes silent this long are removed from `nodes` (once their sessions
/// are closed); they only matter for the sessions they served.
const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PostgresStore {
    /// Registers this node and starts its heartbeat, once; afterwards
    /// re-writes the heartbeat right away if the background one has not
    /// succeeded lately (so a session is never written under a stale node).
    pub(crate) async fn ensure_serving(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut fresh_start = false;
        inner
            .serving
            .get_or_try_init(|| async {
                inner.write_beat(REGISTER).await?;
                let task = tokio::spawn(heartbeat_loop(
                    Arc::downgrade(&self.inner),
                    inner.liveness.heartbeat,
                ));
                if let Ok(mut slot) = inner.heartbeat.lock() {
                    *slot = Some(task.abort_handle());
                }
                fresh_start = true;
                Ok::<(), StoreError>(())
            })
            .await?;
        if !fresh_start && inner.beat_is_old() {
            inner.write_beat(BEAT).await?;
        }
        Ok(())
    }

    /// The start-up sweep: see the module documentation.
    pub(crate) async fn sweep_at_start(&self, reason: &str) -> Result<u64, StoreError> {
        self.ensure_serving().await?;
        let inner = &self.inner;
        let done = sqlx::query(SWEEP_AT_START)
            .bind(to_db(OffsetDateTime::now_utc())?)
            .bind(reason)
            .bind(&inner.node)
            .bind(&inner.opened_at)
            .bind(millis(inner.liveness.stale_after))
            .execute(&inner.pool)
            .await
            .map_err(|e| db_err("cannot close interrupted sessions", e))?;
        Ok(done.rows_affected())
    }
}

impl Inner {
    async fn write_beat(&self, statement: &'static str) -> Result<(), StoreError> {
        sqlx::query(statement)
            .bind(&self.node)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                db_err(
                    &format!("cannot write the heartbeat of node {}", self.node),
                    e,
                )
            })?;
        if let Ok(mut last) = self.last_beat.lock() {
            *last = Some(Instant::now());
        }
        Ok(())
    }

    /// Older than half the staleness limit: other nodes may soon take this
    /// node for dead.
    fn beat_is_old(&self) -> bool {
        let limit = self.liveness.stale_after / 2;
        match self.last_beat.lock() {
            Ok(last) => last.is_none_or(|at| at.elapsed() > limit),
            Err(_) => true,
        }
    }

    /// Ends the open sessions of dead nodes and forgets long-dead nodes.
    async fn sweep(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(SWEEP)
            .bind(to_db(OffsetDateTime::now_utc())?)
            .bind(SWEEP_REASON)
            .bind(&self.node)
            .bind(millis(self.liveness.stale_after))
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("cannot close the sessions of dead nodes", e))?;
        sqlx::query(FORGET)
            .bind(millis(FORGET_AFTER))
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("cannot forget dead nodes", e))?;
        Ok(done.rows_affected())
    }
}

/// Beats and sweeps until the store is dropped or closed.
async fn heartbeat_loop(inner: Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; registration has just beaten.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(error) = inner.write_beat(BEAT).await {
            tracing::warn!(node = %inner.node, %error, "heartbeat failed");
            continue;
        }
        match inner.sweep().await {
            Ok(0) => {}
            Ok(sessions) => tracing::warn!(
                sessions,
                "sessions of a Warden node that stopped sending heartbeats were marked interrupted"
            ),
            Err(error) => tracing::warn!(%error, "sweep of dead nodes failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_as_bound() {
        assert!(SWEEP_AT_START.contains("$5::float8"));
        assert!(SWEEP.contains("$4::float8"));
        assert!(FORGET.contains("$1::float8"));
        assert!(!SWEEP.contains("$5"));
    }
}
