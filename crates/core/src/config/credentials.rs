//! A target's upstream credentials, and `[secrets]`: where secret references are fetched from.

use crate::secret::SecretRef;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A target's upstream credentials.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum CredentialsConfig {
    /// One fixed upstream user whose password is a secret reference.
    Static { user: String, password: SecretRef },
    /// A role created for each session with the admin secret and dropped after.
    Ephemeral(EphemeralCredentials),
}

impl CredentialsConfig {
    /// The secret reference Warden needs to log in upstream (or to create roles).
    pub fn secret(&self) -> &SecretRef {
        match self {
            CredentialsConfig::Static { password, .. } => password,
            CredentialsConfig::Ephemeral(ephemeral) => &ephemeral.admin_password,
        }
    }

    pub(super) fn secret_mut(&mut self) -> &mut SecretRef {
        match self {
            CredentialsConfig::Static { password, .. } => password,
            CredentialsConfig::Ephemeral(ephemeral) => &mut ephemeral.admin_password,
        }
    }
}

/// `credentials = { mode = "ephemeral", … }`: per-session database roles.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralCredentials {
    /// The upstream user that may create and drop roles.
    pub admin_user: String,
    pub admin_password: SecretRef,
    /// Roles (Postgres `IN ROLE`, MariaDB roles) or privileges granted to each session's role.
    #[serde(default)]
    pub grant: Vec<String>,
    /// How long a role is valid before it must be renewed.
    #[serde(default = "default_lease_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// The longest a session's role may live, renewals included.
    #[serde(default = "default_lease_max_ttl", with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Statements that create the role, replacing the built-in ones. Placeholders:
    /// `{{name}}`, `{{password}}`, `{{expiration}}`, `{{grants}}` (quoted safely).
    #[serde(default)]
    pub creation_statements: Vec<String>,
    /// Statements that remove the role, replacing the built-in ones (`{{name}}`).
    #[serde(default)]
    pub revocation_statements: Vec<String>,
    /// What to do with objects the role created: `reassign` them to
    /// `reassign_to` (default: the admin user) or `drop` them.
    #[serde(default = "default_owned_objects")]
    pub owned_objects: String,
    pub reassign_to: Option<String>,
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_lease_max_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}

fn default_owned_objects() -> String {
    "reassign".into()
}

/// `[secrets]`: where `vault:` and `aws-sm:` references are fetched from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// How long a fetched secret is reused before it is fetched again.
    #[serde(default = "default_secret_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    pub vault: Option<VaultConfig>,
    pub aws: Option<AwsSecretsConfig>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            cache_ttl: default_secret_cache_ttl(),
            vault: None,
            aws: None,
        }
    }
}

fn default_secret_cache_ttl() -> Duration {
    Duration::from_secs(300)
}

/// `[secrets.vault]`: HashiCorp Vault (KV v2).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// e.g. `https://vault.internal:8200`.
    pub address: String,
    /// Token auth: a reference to the token (`env:VAULT_TOKEN`).
    pub token: Option<SecretRef>,
    /// AppRole auth, used when `token` is not set.
    pub approle: Option<VaultAppRole>,
    /// Enterprise namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// PEM CA bundle for the Vault server's certificate.
    pub ca: Option<PathBuf>,
}

/// `[secrets.vault.approle]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultAppRole {
    pub role_id: String,
    pub secret_id: SecretRef,
    /// Where the AppRole auth method is mounted.
    #[serde(default = "default_approle_mount")]
    pub mount: String,
}

fn default_approle_mount() -> String {
    "approle".into()
}

/// `[secrets.aws]`: AWS Secrets Manager. Credentials come from the usual AWS
/// environment (variables, profile, instance role).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSecretsConfig {
    pub region: Option<String>,
    /// Overrides the service endpoint (e.g. a local test server).
    pub endpoint: Option<String>,
}
