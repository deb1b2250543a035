//! Choosing the backend from the store URL.

use crate::Store;
use crate::error::{StoreOpenError, redact_url};
use crate::postgres::{PostgresStore, is_postgres_url};
use crate::sqlite::SqliteStore;
use std::sync::Arc;

/// Opens the store a URL names: `sqlite:…` for the embedded database (one
/// node), `postgres://…` or `postgresql://…` for a database several Warden
/// nodes share. Applies pending migrations either way.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreOpenError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if is_postgres_url(url) {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreOpenError::UnknownScheme {
            url: redact_url(url),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_the_password() {
        let Err(err) = open_store("mysql://warden:hunter2@db/w").await else {
            panic!("a mysql url opened a store");
        };
        let message = err.to_string();
        assert!(message.contains("sqlite://"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[tokio::test]
    async fn sqlite_urls_open_the_embedded_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let store = open_store(&url).await.unwrap();
        assert!(store.list_keys().await.unwrap().is_empty());
        assert!(dir.path().join("w.db").is_file());
    }

    #[tokio::test]
    async fn a_postgres_url_that_cannot_connect_is_a_clear_error() {
        // Port 1 on loopback: nothing listens there.
        let options = crate::PostgresOptions {
            connect_timeout: std::time::Duration::from_secs(1),
            ..crate::PostgresOptions::default()
        };
        let Err(err) =
            PostgresStore::open_with("postgres://warden:hunter2@127.0.0.1:1/w", options).await
        else {
            panic!("connected to port 1");
        };
        let message = err.to_string();
        assert!(message.contains("PostgreSQL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let Err(err) = PostgresStore::open("sqlite:///tmp/x.db").await else {
            panic!("a sqlite url opened a PostgreSQL store");
        };
        assert!(err.to_string().contains("not a postgres:// url"), "{err}");
    }
}
