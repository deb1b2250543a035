//! What a database must do for ephemeral roles; one implementation per
//! protocol. Every call opens its own admin connection (fetching the admin
//! secret again, so a rotated secret takes effect).

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

/// A role about to be created.
pub struct NewRole {
    /// Validated by [`super::template::is_valid_role_name`].
    pub name: String,
    pub password: SecretString,
    pub expires_at: OffsetDateTime,
}

/// Creates, renews and removes ephemeral roles on one target. Errors are
/// texts for the log and audit trail; they never contain a secret.
#[async_trait]
pub trait RoleBackend: Send + Sync {
    /// Creates the role with the configured grants. On failure nothing is
    /// left behind (a transaction, or a clean-up of what was created).
    async fn create(&self, role: &NewRole) -> Result<(), String>;

    /// Moves the role's expiry (PostgreSQL `VALID UNTIL`); a no-op where the
    /// database has no such thing and Warden's watcher enforces it.
    async fn renew(&self, name: &str, until: OffsetDateTime) -> Result<(), String>;

    /// Blocks new logins, ends the role's connections, then drops it (and
    /// what it owns, per `owned_objects`). Succeeds when the role is gone
    /// already.
    async fn revoke(&self, name: &str) -> Result<(), String>;

    /// Roles on the server that look like Warden's (`warden_` + 12 hex).
    async fn list_roles(&self) -> Result<Vec<String>, String>;
}
