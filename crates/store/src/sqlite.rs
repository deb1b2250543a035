//! Opening the embedded SQLite database: WAL, a busy timeout, migrations.

use crate::error::{StoreOpenError, redact_url};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long a writer waits for another connection's write lock before
/// failing with "database is locked". Writes are single short statements,
/// so this is only reached when the disk stalls.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite serializes writers; a few connections serve concurrent readers
/// without piling up writers waiting on the lock.
const MAX_CONNECTIONS: u32 = 8;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The state database in one SQLite file. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// Recorded with each session; see [`crate::node`].
    pub(crate) node: Arc<str>,
}

impl SqliteStore {
    /// Opens (and creates, with `mode=rwc`) the database at a `sqlite:` URL,
    /// e.g. `sqlite:///var/lib/warden/warden.db?mode=rwc`, creating its
    /// directory, and applies pending migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreOpenError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreOpenError::NotSqlite {
                url: redact_url(url),
            });
        }
        let options =
            SqliteConnectOptions::from_str(url).map_err(|source| StoreOpenError::BadUrl {
                url: redact_url(url),
                source,
            })?;
        Self::open_with(options).await
    }

    /// Opens (creating it if missing) the database file at `path`.
    pub async fn open_path(path: &Path) -> Result<SqliteStore, StoreOpenError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<SqliteStore, StoreOpenError> {
        let path = options.get_filename().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !is_memory(&path)
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreOpenError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreOpenError::Connect {
                path: path.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreOpenError::Migrate { path, source })?;
        crate::audit::seal_unchained(&pool)
            .await
            .map_err(StoreOpenError::Prepare)?;
        Ok(SqliteStore {
            pool,
            node: crate::node::node_id().into(),
        })
    }

    /// Applies pending migrations (already done by `open`; idempotent).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// The node id written with each session this store starts.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn is_memory(path: &Path) -> bool {
    path.as_os_str() == ":memory:"
}
