//! Per-session database roles ("just-in-time credentials").
//!
//! For a target with `credentials = { mode = "ephemeral", … }` each session
//! gets its own role, created with the admin secret and the configured
//! grants, valid for `ttl` and renewed up to `max_ttl`, and dropped when the
//! session ends. The lease row is written before the role exists and marked
//! revoked after it is gone, so [`EphemeralCredentials::sweep`] can always
//! find and drop roles a crash left behind.

mod backend;
mod lease;
mod mysql;
mod pg_tls;
mod postgres;
mod sweeper;
pub mod template;

pub use backend::{NewRole, RoleBackend, RoleError};
pub use lease::EphemeralLease;
pub use sweeper::SweepReport;
pub use template::TemplateError;

use async_trait::async_trait;
use lease::{LeaseInner, WatchTiming};
use rand::TryRngCore;
use secrecy::SecretString;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use warden_core::SecretRef;
use warden_core::admission::ConnectGrant;
use warden_core::config::{
    CredentialsConfig, EphemeralCredentials as EphemeralConfig, Protocol, TargetConfig,
};
use warden_core::engines::{
    CredentialError, CredentialSource, SessionLog, StoreError, UpstreamCredential,
};
use warden_core::events::{AuditEvent, SessionInfo};
use warden_core::leases::{LeaseRecord, LeaseStore};

/// Why an ephemeral target's settings are unusable or a session's role could
/// not be issued. Names settings and roles, never the password.
#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    #[error("the target is not configured for ephemeral credentials")]
    NotEphemeral,
    #[error("ephemeral credentials are not available for {0} targets")]
    Protocol(Protocol),
    #[error("admin_user is empty")]
    EmptyAdminUser,
    #[error("{0} must be between 1s and 10 years")]
    Ttl(&'static str),
    #[error("owned_objects = {0:?}: use \"reassign\" or \"drop\"")]
    OwnedObjects(String),
    /// A setting (`grant`, `creation_statements`, …) cannot become SQL.
    #[error("{setting}: {source}")]
    Setting {
        setting: &'static str,
        #[source]
        source: TemplateError,
    },
    /// A MySQL grant item or the role name; the message names it already.
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("a lease of {0:?} is out of range")]
    LeaseRange(Duration),
    #[error("the OS random generator failed: {0}")]
    Random(#[source] rand::rand_core::OsError),
    #[error("cannot record the lease: {0}")]
    RecordLease(#[source] StoreError),
    #[error("cannot create the session role: {0}")]
    CreateRole(#[source] RoleError),
}

/// Fetches the admin password a target's config refers to.
#[async_trait]
pub trait SecretFetch: Send + Sync {
    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, crate::SecretError>;
}

/// [`SecretFetch`] over [`crate::secrets::resolve`] (`env:`, `file:`, literals).
#[derive(Clone, Copy, Debug, Default)]
pub struct ResolveSecrets;

#[async_trait]
impl SecretFetch for ResolveSecrets {
    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, crate::SecretError> {
        crate::secrets::resolve(reference).await
    }
}

/// Tuning of the lease watchers.
#[derive(Clone, Copy, Debug)]
pub struct EphemeralOptions {
    /// How often each lease is read back from the store (operator revocation).
    pub poll_interval: Duration,
    /// After a lease ended (max_ttl, revocation), how long the session has to
    /// call `release` before the watcher drops the role itself.
    pub release_grace: Duration,
}

impl Default for EphemeralOptions {
    fn default() -> Self {
        EphemeralOptions {
            poll_interval: Duration::from_secs(1),
            release_grace: Duration::from_secs(5),
        }
    }
}

/// The longest `ttl` / `max_ttl` accepted (keeps time arithmetic in range).
const LONGEST_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// Issues per-session roles for ephemeral targets; see the module docs.
pub struct EphemeralCredentials {
    store: Arc<dyn LeaseStore>,
    audit: Arc<dyn SessionLog>,
    secrets: Arc<dyn SecretFetch>,
    options: EphemeralOptions,
    live: LiveUsers,
}

impl EphemeralCredentials {
    pub fn new(
        store: Arc<dyn LeaseStore>,
        audit: Arc<dyn SessionLog>,
        secrets: Arc<dyn SecretFetch>,
    ) -> Self {
        EphemeralCredentials {
            store,
            audit,
            secrets,
            options: EphemeralOptions::default(),
            live: LiveUsers::default(),
        }
    }

    pub fn with_options(mut self, options: EphemeralOptions) -> Self {
        self.options = options;
        self
    }

    /// The role backend for an ephemeral target.
    fn backend(&self, target: &TargetConfig) -> Result<Arc<dyn RoleBackend>, EphemeralError> {
        let settings = ephemeral_settings(target)?;
        let target = Arc::new(target.clone());
        match target.protocol {
            Protocol::Postgres => Ok(Arc::new(postgres::PgRoles::new(
                target,
                settings,
                self.secrets.clone(),
            ))),
            Protocol::Mysql => Ok(Arc::new(mysql::MyRoles::new(
                target,
                settings,
                self.secrets.clone(),
            ))),
            other => Err(EphemeralError::Protocol(other)),
        }
    }

    async fn issue(
        &self,
        target: &TargetConfig,
        session: &SessionInfo,
    ) -> Result<UpstreamCredential, EphemeralError> {
        validate_target(target)?;
        let settings = ephemeral_settings(target)?;
        let backend = self.backend(target)?;
        let name = template::role_name_for(&session.id)?;
        let password = random_password()?;
        let now = OffsetDateTime::now_utc();
        let ttl = settings.ttl.min(settings.max_ttl);
        let expires_at = add(now, ttl)?;
        let max_expires_at = add(now, settings.max_ttl)?;
        let record = LeaseRecord {
            id: uuid::Uuid::now_v7().to_string(),
            session_id: session.id.clone(),
            target: target.name.clone(),
            protocol: target.protocol,
            upstream_user: name.clone(),
            created_at: now,
            expires_at,
            max_expires_at,
            revoked_at: None,
            revoke_reason: None,
        };
        let audit = Audit {
            sink: self.audit.clone(),
            actor: session.identity.subject.clone(),
            target: target.name.clone(),
            session_id: Some(session.id.clone()),
        };
        // The sweeper must not take the role while it is being created.
        self.live.insert(&name);
        if let Err(error) = self.store.insert_lease(&record).await {
            self.live.remove(&name);
            return Err(EphemeralError::RecordLease(error));
        }
        let role = backend::NewRole {
            name: name.clone(),
            password: password.clone(),
            expires_at,
        };
        if let Err(error) = backend.create(&role).await {
            if let Err(store_error) = self
                .store
                .mark_lease_revoked(&record.id, "role creation failed")
                .await
            {
                tracing::warn!(lease = %record.id, %store_error, "cannot close the lease of a failed role");
            }
            self.live.remove(&name);
            audit
                .lease("failed", &record.id, &name, &error.to_string())
                .await;
            return Err(EphemeralError::CreateRole(error));
        }
        // Written beside the session's login rather than before it (one
        // store write less on the connect path); the lease's later events
        // wait for it, so the trail keeps their order.
        let issued_event = {
            let audit = audit.clone();
            let (id, user) = (record.id.clone(), name.clone());
            let detail = format!("valid until {expires_at}, at most until {max_expires_at}");
            tokio::spawn(async move { audit.lease("issued", &id, &user, &detail).await })
        };
        let inner = Arc::new(
            LeaseInner::new(
                record.id.clone(),
                name.clone(),
                backend,
                self.store.clone(),
                audit,
                self.live.clone(),
                max_expires_at,
            )
            .after_issued(issued_event),
        );
        let timing = WatchTiming {
            ttl,
            max_ttl: settings.max_ttl,
            poll_interval: self.options.poll_interval,
            release_grace: self.options.release_grace,
        };
        let lease = EphemeralLease::start(inner, expires_at, timing);
        Ok(UpstreamCredential {
            user: name,
            password,
            lease: Some(Box::new(lease)),
        })
    }
}

#[async_trait]
impl CredentialSource for EphemeralCredentials {
    async fn acquire(
        &self,
        grant: &ConnectGrant,
        session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError> {
        let target = grant.target();
        self.issue(target, session)
            .await
            .map_err(|error| CredentialError::Ephemeral {
                target: target.name.clone(),
                source: Box::new(error),
            })
    }
}

/// Checks an ephemeral target's settings (for `warden check` and before
/// each role): protocol, grants, `owned_objects`, TTLs, template placeholders.
pub fn validate_target(target: &TargetConfig) -> Result<(), EphemeralError> {
    let settings = ephemeral_settings(target)?;
    if settings.admin_user.is_empty() {
        return Err(EphemeralError::EmptyAdminUser);
    }
    for (key, ttl) in [("ttl", settings.ttl), ("max_ttl", settings.max_ttl)] {
        if ttl.is_zero() || ttl > LONGEST_TTL {
            return Err(EphemeralError::Ttl(key));
        }
    }
    let in_setting = |setting| move |source| EphemeralError::Setting { setting, source };
    match target.protocol {
        Protocol::Postgres => {
            for grant in &settings.grant {
                template::check_pg_role(grant).map_err(in_setting("grant"))?;
            }
            if let Some(to) = &settings.reassign_to {
                template::check_pg_role(to).map_err(in_setting("reassign_to"))?;
            }
        }
        Protocol::Mysql => {
            for grant in &settings.grant {
                template::parse_my_grant(grant)?;
            }
        }
        other => return Err(EphemeralError::Protocol(other)),
    }
    if !matches!(settings.owned_objects.as_str(), "reassign" | "drop") {
        return Err(EphemeralError::OwnedObjects(settings.owned_objects));
    }
    let sample = template::Placeholders {
        name: "n",
        password: Some("p"),
        expiration: Some("e"),
        grants: Some("g"),
    };
    for statement in &settings.creation_statements {
        template::render(statement, &sample).map_err(in_setting("creation_statements"))?;
    }
    let name_only = template::Placeholders {
        name: "n",
        ..template::Placeholders::default()
    };
    for statement in &settings.revocation_statements {
        template::render(statement, &name_only).map_err(in_setting("revocation_statements"))?;
    }
    Ok(())
}

fn ephemeral_settings(target: &TargetConfig) -> Result<EphemeralConfig, EphemeralError> {
    match &target.credentials {
        CredentialsConfig::Ephemeral(settings) => Ok(settings.clone()),
        CredentialsConfig::Static { .. } => Err(EphemeralError::NotEphemeral),
    }
}

fn add(at: OffsetDateTime, duration: Duration) -> Result<OffsetDateTime, EphemeralError> {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|duration| at.checked_add(duration))
        .ok_or(EphemeralError::LeaseRange(duration))
}

/// 32 bytes from the operating system's RNG, hex-encoded (64 characters:
/// nothing to escape in any SQL dialect).
fn random_password() -> Result<SecretString, EphemeralError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(EphemeralError::Random)?;
    Ok(SecretString::from(hex::encode(bytes)))
}

/// Upstream users of leases held by this process (being created or
/// watched): the sweeper never takes those.
#[derive(Clone, Default)]
pub(crate) struct LiveUsers(Arc<Mutex<HashSet<String>>>);

impl LiveUsers {
    fn insert(&self, user: &str) {
        if let Ok(mut users) = self.0.lock() {
            users.insert(user.to_string());
        }
    }

    pub(crate) fn remove(&self, user: &str) {
        if let Ok(mut users) = self.0.lock() {
            users.remove(user);
        }
    }

    pub(crate) fn contains(&self, user: &str) -> bool {
        self.0.lock().is_ok_and(|users| users.contains(user))
    }
}

/// Writes `lease.*` audit events for one target (and session).
#[derive(Clone)]
pub(crate) struct Audit {
    pub sink: Arc<dyn SessionLog>,
    pub actor: String,
    pub target: String,
    pub session_id: Option<String>,
}

impl Audit {
    /// `lease.{action}`; a failure to write is logged, never fatal.
    pub(crate) async fn lease(&self, action: &str, lease_id: &str, user: &str, detail: &str) {
        let mut event = AuditEvent::new(
            &format!("lease.{action}"),
            &self.actor,
            format!("lease {lease_id} user {user}: {detail}"),
        );
        event.target = Some(self.target.clone());
        event.session_id = self.session_id.clone();
        if let Err(error) = self.sink.audit(&event).await {
            tracing::warn!(%error, kind = %event.kind, "cannot write a lease audit event");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn target(protocol: &str, credentials: &str) -> TargetConfig {
        let text = format!(
            "[[target]]\nname = \"t\"\nprotocol = \"{protocol}\"\naddress = \"127.0.0.1:1\"\ncredentials = {credentials}\n"
        );
        warden_core::config::Config::parse(&text, "t.toml")
            .unwrap()
            .targets
            .remove(0)
    }

    #[test]
    fn passwords_are_random_hex() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.expose_secret().len(), 64);
        assert!(a.expose_secret().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = target(
            "postgres",
            r#"{ mode = "ephemeral", admin_user = "a", admin_password = "env:X", grant = ["orders_read"] }"#,
        );
        validate_target(&ok).unwrap();
        let hostile = target(
            "postgres",
            r#"{ mode = "ephemeral", admin_user = "a", admin_password = "env:X", grant = ['a"; DROP TABLE x; --'] }"#,
        );
        assert!(
            validate_target(&hostile)
                .unwrap_err()
                .to_string()
                .contains("grant")
        );
        let owned = target(
            "postgres",
            r#"{ mode = "ephemeral", admin_user = "a", admin_password = "env:X", owned_objects = "keep" }"#,
        );
        assert!(
            validate_target(&owned)
                .unwrap_err()
                .to_string()
                .contains("owned_objects")
        );
        let template = target(
            "postgres",
            r#"{ mode = "ephemeral", admin_user = "a", admin_password = "env:X", creation_statements = ["CREATE ROLE {{user}}"] }"#,
        );
        assert!(
            validate_target(&template)
                .unwrap_err()
                .to_string()
                .contains("{{user}}")
        );
        let mysql = target(
            "mysql",
            r#"{ mode = "ephemeral", admin_user = "a", admin_password = "env:X", grant = ["SELECT ON shop.*; DROP USER root"] }"#,
        );
        assert!(validate_target(&mysql).is_err());
        let fixed = target(
            "postgres",
            r#"{ mode = "static", user = "a", password = "env:X" }"#,
        );
        assert!(validate_target(&fixed).is_err());
        let ttl = target(
            "postgres",
            r#"{ mode = "ephemeral", admin_user = "a", admin_password = "env:X", ttl = "0s" }"#,
        );
        assert!(
            validate_target(&ttl)
                .unwrap_err()
                .to_string()
                .contains("ttl")
        );
    }
}
