//! The state database on PostgreSQL, shared by several Warden nodes.
//!
//! Same tables and queries as SQLite (`portable.rs`); what is PostgreSQL's
//! own: migrations under an advisory lock (sqlx's migrator takes it), the
//! audit chain serialized by `pg_advisory_xact_lock`, and node heartbeats so
//! that only the sessions of dead nodes are marked interrupted
//! (`nodes.rs`), and review changes pushed with LISTEN/NOTIFY
//! (`listen.rs`).

mod leases;
mod listen;
mod nodes;
mod store;

pub use listen::{LISTENER_APPLICATION_NAME, REVIEW_CHANNEL};

use crate::error::{StoreOpenError, redact_url};
use crate::node::Liveness;
use crate::timefmt::to_db;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How [`PostgresStore::open_with`] sets up the store.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// This node's id; [`crate::node::node_id`] when `None`.
    pub node_id: Option<String>,
    pub liveness: Liveness,
    pub max_connections: u32,
    /// How long to wait for a connection (at open: for the server to
    /// accept one, retrying) before failing.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            node_id: None,
            liveness: Liveness::default(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// The state database on a PostgreSQL server. Cheap to clone; the node's
/// heartbeat stops when the last clone is dropped or [`close`](Self::close)d.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) node: String,
    /// When this store was opened, as stored text: sessions of this node id
    /// that started earlier belong to a previous run.
    pub(crate) opened_at: String,
    pub(crate) liveness: Liveness,
    /// Set once this store serves sessions: the node is registered and its
    /// heartbeat runs.
    pub(crate) serving: tokio::sync::OnceCell<()>,
    pub(crate) heartbeat: Mutex<Option<tokio::task::AbortHandle>>,
    /// When this node's heartbeat was last written.
    pub(crate) last_beat: Mutex<Option<Instant>>,
    /// Where review change feeds connect (their own connections).
    pub(crate) listen: listen::ListenTarget,
    /// The tasks of open review change feeds, stopped with the store.
    pub(crate) feeds: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Inner {
    fn stop_tasks(&self) {
        if let Ok(mut task) = self.heartbeat.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
        if let Ok(mut feeds) = self.feeds.lock() {
            for feed in feeds.drain(..) {
                feed.abort();
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

impl PostgresStore {
    /// Connects to `postgres://USER:PASSWORD@HOST:PORT/DB` (or
    /// `postgresql://…`, libpq parameters such as `sslmode` included) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreOpenError> {
        Self::open_with(url, PostgresOptions::default()).await
    }

    pub async fn open_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, StoreOpenError> {
        if !is_postgres_url(url) {
            return Err(StoreOpenError::NotPostgres {
                url: redact_url(url),
            });
        }
        let connect = PgConnectOptions::from_str(url).map_err(|source| StoreOpenError::BadUrl {
            url: redact_url(url),
            source,
        })?;
        let connect = connect.application_name("warden");
        let listen = listen::ListenTarget::new(connect.clone(), options.connect_timeout);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(|source| StoreOpenError::PgConnect {
                url: redact_url(url),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreOpenError::PgMigrate {
                url: redact_url(url),
                source,
            })?;
        let opened_at = to_db(OffsetDateTime::now_utc()).map_err(StoreOpenError::Prepare)?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                node: options.node_id.unwrap_or_else(crate::node::node_id),
                opened_at,
                liveness: options.liveness,
                serving: tokio::sync::OnceCell::new(),
                heartbeat: Mutex::new(None),
                last_beat: Mutex::new(None),
                listen,
                feeds: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Applies pending migrations (already done by `open`; idempotent).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.inner.pool).await
    }

    /// The node id written with each session this store starts.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// Stops the heartbeat and the review change feeds (they end) and
    /// closes every connection, waiting for running queries. The node's
    /// sessions are then left to be marked interrupted by the other nodes
    /// once its heartbeat goes stale.
    pub async fn close(&self) {
        self.inner.stop_tasks();
        self.inner.pool.close().await;
    }
}

/// `postgres://` or `postgresql://`, as libpq accepts.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
