//! What a database must do for ephemeral roles; one implementation per
//! protocol. Every call opens its own admin connection (fetching the admin
//! secret again, so a rotated secret takes effect).

use super::template::TemplateError;
use crate::SecretError;
use async_trait::async_trait;
use secrecy::SecretString;
use std::time::Duration;
use time::OffsetDateTime;

/// A role about to be created.
pub struct NewRole {
    /// Validated by [`super::template::is_valid_role_name`].
    pub name: String,
    pub password: SecretString,
    pub expires_at: OffsetDateTime,
}

/// Why a role could not be created, renewed, listed or dropped. Shown in the
/// log and the audit trail, so no variant ever holds a secret: server texts
/// that could quote one are redacted before they are stored here.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("admin password: {0}")]
    AdminPassword(#[source] SecretError),
    #[error("address {0:?} is not host:port")]
    Address(String),
    #[error("no answer from {address} within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("cannot reach {address}: {source}")]
    Unreachable {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The target's upstream TLS settings are unusable (core's text).
    #[error("{0}")]
    Tls(#[source] warden_core::upstream_tls::UpstreamTlsError),
    /// Logging in with the admin secret failed (why, in `source`).
    #[error("admin login as {user:?}: {source}")]
    AdminLogin {
        user: String,
        #[source]
        source: Box<RoleError>,
    },
    /// A name, grant or template from the config cannot become SQL.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A config setting (`grant`, `reassign_to`) is unusable.
    #[error("{setting}: {source}")]
    Setting {
        setting: &'static str,
        #[source]
        source: TemplateError,
    },
    #[error("owned_objects = {0:?}: use \"reassign\" or \"drop\"")]
    OwnedObjects(String),
    #[error("{0:?} is not a valid ephemeral role name")]
    RoleName(String),
    #[error("{0:?} is not a valid ephemeral user name")]
    UserName(String),
    #[error("cannot format {what}: {source}")]
    FormatTime {
        what: String,
        #[source]
        source: time::error::Format,
    },
    #[error("cannot compute the SCRAM verifier: {0}")]
    Scram(#[source] hmac::digest::InvalidLength),
    /// PostgreSQL's message and SQLSTATE (tokio-postgres' own `Display`
    /// says only "db error"), redacted where a statement held a secret.
    #[error("{0}")]
    Postgres(String),
    #[error("{left} backend(s) of {name} still running after pg_terminate_backend")]
    StillRunning { name: String, left: i64 },
    /// The admin connection to MySQL failed.
    #[error("{0}")]
    Mysql(#[source] mysql_async::Error),
    #[error(
        "ephemeral credentials for MySQL targets over TLS are not yet supported; \
         set upstream_tls = \"disable\" (loopback or a trusted network only) or use static credentials"
    )]
    MysqlTls,
    #[error(
        "MariaDB activates one default role per user: grant one role (which may \
         itself hold others) or privilege specs like \"SELECT ON orders.*\""
    )]
    MariadbDefaultRoles,
    #[error("cannot read the server version: {0}")]
    ServerVersion(#[source] mysql_async::Error),
    #[error("no answer from {0} as the new user")]
    NewUserTimeout(String),
    #[error("cannot log in as the new user to set its default role: {0}")]
    NewUserLogin(#[source] mysql_async::Error),
    #[error("cannot set the default role {role}: {source}")]
    DefaultRole {
        role: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("cannot list connections of {name}: {source}")]
    ListConnections {
        name: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("{count} connection(s) of {name} still open after KILL")]
    StillOpen { name: String, count: usize },
    #[error("cannot lock {name}: {source}")]
    Lock {
        name: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("cannot drop {name}: {source}")]
    Drop {
        name: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("cannot list users (the admin needs SELECT on mysql.user): {0}")]
    ListUsers(#[source] mysql_async::Error),
    /// A failure whose text could quote the new role's password, as text
    /// with the password replaced.
    #[error("{0}")]
    Redacted(String),
}

/// Creates, renews and removes ephemeral roles on one target.
#[async_trait]
pub trait RoleBackend: Send + Sync {
    /// Creates the role with the configured grants. On failure nothing is
    /// left behind (a transaction, or a clean-up of what was created).
    async fn create(&self, role: &NewRole) -> Result<(), RoleError>;

    /// Moves the role's expiry (PostgreSQL `VALID UNTIL`); a no-op where the
    /// database has no such thing and Warden's watcher enforces it.
    async fn renew(&self, name: &str, until: OffsetDateTime) -> Result<(), RoleError>;

    /// Blocks new logins, ends the role's connections, then drops it (and
    /// what it owns, per `owned_objects`). Succeeds when the role is gone
    /// already.
    async fn revoke(&self, name: &str) -> Result<(), RoleError>;

    /// Roles on the server that look like Warden's (`warden_` + 12 hex).
    async fn list_roles(&self) -> Result<Vec<String>, RoleError>;
}
