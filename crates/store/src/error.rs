//! Why the state database could not be opened.

use std::path::PathBuf;

/// The state database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error(
        "store url {url:?} is not supported; use sqlite:///PATH?mode=rwc (one node) or postgres://USER:PASSWORD@HOST/DB (several nodes)"
    )]
    UnknownScheme { url: String },
    #[error(
        "store url {url:?} is not a sqlite: url (e.g. sqlite:///var/lib/warden/warden.db?mode=rwc)"
    )]
    NotSqlite { url: String },
    #[error(
        "store url {url:?} is not a postgres:// url (e.g. postgres://warden:PASSWORD@db.internal/warden)"
    )]
    NotPostgres { url: String },
    #[error("bad store url {url:?}: {source}")]
    BadUrl {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the state database {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply migrations to the state database {}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("cannot connect to the PostgreSQL state database {url}: {source}")]
    PgConnect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply migrations to the PostgreSQL state database {url}: {source}")]
    PgMigrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("cannot prepare the state database: {0}")]
    Prepare(#[source] crate::StoreError),
}

/// A URL for an error message, without a password (`postgres://u:pw@h/db`).
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.find(':') {
                Some(colon) => format!(
                    "{}{}:[redacted]{}",
                    &url[..scheme + 3],
                    &user_info[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact_url("postgres://warden:s3cret@db/warden"),
            "postgres://warden:[redacted]@db/warden"
        );
        assert_eq!(
            redact_url("postgres://warden@db/w"),
            "postgres://warden@db/w"
        );
        assert_eq!(redact_url("sqlite:///a/b.db"), "sqlite:///a/b.db");
    }
}
