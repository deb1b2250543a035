//! The `warden.toml` model and its loader.
//!
//! Every table rejects unknown keys, so a typo is an error with file and line
//! rather than a silently ignored setting. Semantic checks (a policy naming a
//! name used twice, an operation that does not exist …) run after parsing and
//! also point at the line they are about.

use crate::secret::SecretRef;
use crate::units::ByteSize;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetConfig>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    #[serde(default)]
    pub classifier: ClassifierConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub masking: MaskingConfig,
    #[serde(default)]
    pub reviews: ReviewsConfig,
    #[serde(default)]
    pub web: WebConfig,
    /// Where the file was read from; set by the loader.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[server]`: process-wide settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// SQLite state and local recordings. Relative paths are relative to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `/healthz`, `/metrics` (and later the API and web UI). Omit to disable.
    pub admin_listen: Option<SocketAddr>,
    /// The URL people use to reach `admin_listen` (for links in notices).
    pub public_url: Option<String>,
    /// Most client connections open at once, over all listeners.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long sessions may finish on SIGTERM before they are closed.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Largest message a client may send (Postgres messages, MySQL packets).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// Time allowed for a client to finish the handshake and authenticate.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Threads relaying sessions; half the CPU cores (at least one) when omitted.
    /// With one, every session runs on a single event loop, as pgbouncer does.
    pub worker_threads: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: default_data_dir(),
            admin_listen: None,
            public_url: None,
            max_connections: default_max_connections(),
            shutdown_grace: default_shutdown_grace(),
            max_message_size: default_max_message_size(),
            handshake_timeout: default_handshake_timeout(),
            worker_threads: None,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./warden-data")
}
fn default_max_connections() -> usize {
    1000
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_max_message_size() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(15)
}

/// `[tls]`: the certificate Warden presents to clients.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[identity]`: how callers prove who they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
    #[serde(default)]
    pub access_keys: AccessKeyConfig,
}

/// `[[identity.oidc]]`: one trusted OIDC issuer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Must equal the token's `iss` exactly.
    pub issuer: String,
    /// The token's `aud` must contain this.
    pub audience: String,
    /// Claim holding the caller's groups (a list or a space-separated string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// JWKS location; discovered from `{issuer}/.well-known/openid-configuration` when omitted.
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms. HS* and `none` are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// How long a fetched JWKS is trusted before it is fetched again.
    #[serde(default = "default_jwks_ttl", with = "humantime_serde")]
    pub jwks_cache_ttl: Duration,
    /// At most one re-fetch per this interval when a token names an unknown `kid`.
    #[serde(default = "default_jwks_refetch", with = "humantime_serde")]
    pub jwks_min_refetch: Duration,
}

fn default_groups_claim() -> String {
    "groups".into()
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_jwks_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_jwks_refetch() -> Duration {
    Duration::from_secs(10)
}

/// `[identity.access_keys]`: Warden's own keys (`warden keys create`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Lifetime of a key when `warden keys create` is given no `--ttl`.
    #[serde(default = "default_key_ttl", with = "humantime_serde")]
    pub default_ttl: Duration,
    /// Longest lifetime a key may be given.
    #[serde(default = "default_key_max_ttl", with = "humantime_serde")]
    pub max_ttl: Duration,
}

impl Default for AccessKeyConfig {
    fn default() -> Self {
        AccessKeyConfig {
            enabled: true,
            default_ttl: default_key_ttl(),
            max_ttl: default_key_max_ttl(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_key_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_key_max_ttl() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}

/// `[store]`: where state lives. Omit for SQLite in `data_dir`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH?mode=rwc` (one node) or `postgres://USER:PASSWORD@HOST/DB`
    /// (`postgresql://` too; several nodes share it).
    pub url: Option<String>,
}

/// `[recording]`: session recordings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `local` (the default): files under `dir`; `s3`: an S3-compatible bucket.
    #[serde(default = "default_sink")]
    pub sink: String,
    /// The `local` sink's directory. Defaults to `{data_dir}/recordings`.
    pub dir: Option<PathBuf>,
    /// Where chunks are written before the sink has them. Defaults to `{data_dir}/spool`.
    pub spool_dir: Option<PathBuf>,
    /// Record statement texts (the default).
    #[serde(default = "default_true")]
    pub capture_statements: bool,
    /// Record result rows (masked) as well as their summaries.
    #[serde(default)]
    pub capture_results: bool,
    /// Record result values before masking. Needs `encryption_key`.
    #[serde(default)]
    pub capture_raw: bool,
    /// A chunk is closed (and becomes uploadable) at this size of events…
    #[serde(default = "default_chunk_size")]
    pub chunk_size: ByteSize,
    /// …or after this long, whichever comes first.
    #[serde(default = "default_chunk_interval", with = "humantime_serde")]
    pub chunk_interval: Duration,
    /// How often the open chunk is fsync'd.
    #[serde(default = "default_fsync_interval", with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// `refuse`: new sessions are refused while the spool disk is full.
    #[serde(default = "default_on_spool_full")]
    pub on_spool_full: String,
    /// How long recordings are kept (`90d`); per-target `retention` overrides it.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// How often expired recordings are looked for.
    #[serde(default = "default_retention_interval", with = "humantime_serde")]
    pub retention_interval: Duration,
    /// Signs each session's manifest (ed25519 seed, 32 bytes, hex or base64 secret).
    pub signing_key: Option<SecretRef>,
    /// Encrypts chunks at rest (32-byte key, hex or base64 secret).
    pub encryption_key: Option<SecretRef>,
    /// `s3` sink: the bucket, endpoint and addressing.
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Key prefix inside the bucket.
    #[serde(default)]
    pub prefix: String,
    /// Path-style addressing (most self-hosted S3 servers need it).
    #[serde(default = "default_true")]
    pub path_style: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: true,
            sink: default_sink(),
            dir: None,
            spool_dir: None,
            capture_statements: true,
            capture_results: false,
            capture_raw: false,
            chunk_size: default_chunk_size(),
            chunk_interval: default_chunk_interval(),
            fsync_interval: default_fsync_interval(),
            on_spool_full: default_on_spool_full(),
            retention: None,
            retention_interval: default_retention_interval(),
            signing_key: None,
            encryption_key: None,
            bucket: None,
            endpoint: None,
            region: None,
            prefix: String::new(),
            path_style: true,
        }
    }
}

fn default_chunk_size() -> ByteSize {
    ByteSize(8 * 1024 * 1024)
}

fn default_chunk_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_fsync_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_retention_interval() -> Duration {
    Duration::from_secs(600)
}

fn default_on_spool_full() -> String {
    "refuse".into()
}

fn default_sink() -> String {
    "local".into()
}

/// The wire protocols Warden speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
    Mysql,
    Ssh,
    Http,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Ssh => "ssh",
            Protocol::Http => "http",
        })
    }
}

/// `[[listener]]`: a port clients connect to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: Protocol,
    pub listen: SocketAddr,
    /// Accept clients that do not use TLS from non-loopback addresses. Off by
    /// default: outside loopback a token must never cross the network in clear.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// How Warden talks TLS to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plain TCP.
    Disable,
    /// TLS, but any certificate is accepted (protects only against passive sniffing).
    Require,
    /// TLS, the certificate chain and host name are verified.
    VerifyFull,
}

/// `[[target]]`: a resource agents reach through Warden.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// What clients name (Postgres `dbname`).
    pub name: String,
    pub protocol: Protocol,
    /// `host:port` of the upstream.
    pub address: String,
    /// Upstream database name; defaults to `name`.
    pub database: Option<String>,
    /// MySQL: other databases a session on this target may use (`USE`,
    /// `db.table`); without them the session is confined to `database`.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Defaults to `verify-full`, or `disable` for loopback addresses.
    pub upstream_tls: Option<UpstreamTls>,
    /// PEM CA bundle for `verify-full`; the system roots when omitted.
    pub upstream_ca: Option<PathBuf>,
    /// Name checked against the upstream certificate; the address' host when omitted.
    pub upstream_server_name: Option<String>,
    /// Time allowed to reach and log in to the upstream.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    pub credentials: CredentialsConfig,
    /// How long this target's recordings are kept; `[recording] retention` when unset.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TargetConfig {
    /// The database to open upstream.
    pub fn upstream_database(&self) -> &str {
        self.database.as_deref().unwrap_or(&self.name)
    }

    /// MySQL: may a session on this target use database `name`? Its own
    /// database, the listed `databases` and `information_schema` (which shows
    /// only what the login may see); `mysql`, `performance_schema`, `sys` and
    /// any other database only when listed.
    pub fn allows_database(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.upstream_database())
            || name.eq_ignore_ascii_case("information_schema")
            || self.databases.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// The host part of `address`.
    pub fn host(&self) -> &str {
        split_host_port(&self.address).map_or(self.address.as_str(), |(host, _)| host)
    }

    /// True when the address is a loopback IP or `localhost`.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// `upstream_tls` with its default applied.
    pub fn effective_upstream_tls(&self) -> UpstreamTls {
        self.upstream_tls.unwrap_or(if self.is_loopback() {
            UpstreamTls::Disable
        } else {
            UpstreamTls::VerifyFull
        })
    }
}

/// Splits `host:port` and `[v6]:port`.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
}

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

    fn secret_mut(&mut self) -> &mut SecretRef {
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

/// `[masking]`: how masked values are rewritten (rules live in `[[policy]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// `redact` (default), `partial`, `hash` or `null`.
    #[serde(default = "default_mask_strategy")]
    pub strategy: String,
    /// Characters kept at the end by `partial`.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Key for `hash` (a secret reference); required by that strategy.
    pub hash_key: Option<SecretRef>,
    /// A covered value that cannot be rewritten in place (binary format of a
    /// non-text type): `null` sends NULL, `refuse` fails the statement.
    #[serde(default = "default_unmaskable")]
    pub unmaskable: String,
    /// User-defined detectors: `[[masking.detector]] name = "order_id", regex = "ORD-[0-9]{8}"`.
    #[serde(default, rename = "detector")]
    pub detectors: Vec<CustomDetector>,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            strategy: default_mask_strategy(),
            keep_last: default_keep_last(),
            hash_key: None,
            unmaskable: default_unmaskable(),
            detectors: Vec::new(),
        }
    }
}

fn default_mask_strategy() -> String {
    "redact".into()
}

fn default_keep_last() -> usize {
    4
}

fn default_unmaskable() -> String {
    "null".into()
}

/// A named regex detector.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    pub name: String,
    pub regex: String,
}

/// `[[policy]]`: who may do what on which targets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    /// `group:G`, `sub:S`, `email:E`, `claim:NAME=VALUE`, `key:NAME`, or `*`.
    pub subjects: Vec<String>,
    /// Target names or globs (`orders-*`).
    pub targets: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub review: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    /// Limit the rule to statements touching these tables (`schema.table` globs).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Limit the rule to statements touching these schemas (globs).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Who may approve reviews this rule asks for (subject patterns as in `subjects`).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Approvals a review needs (distinct approvers, never the requester).
    #[serde(default = "default_min_approvals")]
    pub min_approvals: u32,
    /// `statement`: an approval releases exactly that statement once;
    /// `session`: the same statement may run again in that session without a new review.
    #[serde(default = "default_approval_scope")]
    pub approval_scope: String,
    /// How long a held statement waits for a decision (then `57014`).
    #[serde(default = "default_review_timeout", with = "humantime_serde")]
    pub review_timeout: Duration,
    #[serde(default)]
    pub mask: Vec<String>,
    #[serde(default)]
    pub mask_columns: Vec<String>,
}

fn default_min_approvals() -> u32 {
    1
}

fn default_approval_scope() -> String {
    "statement".into()
}

fn default_review_timeout() -> Duration {
    Duration::from_secs(600)
}

/// `[reviews]`: human approval of held statements and access requests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewsConfig {
    /// `[[reviews.webhook]]`: told when a review is requested and decided.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// Longest access a `warden access request` may ask for.
    #[serde(default = "default_max_access", with = "humantime_serde")]
    pub max_access_duration: Duration,
    /// How often a held statement re-reads its review. Unset: 250ms, or
    /// 1s while the PostgreSQL store pushes changes (then polling is only a
    /// safety net). See docs/reviews.md.
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
}

impl Default for ReviewsConfig {
    fn default() -> Self {
        ReviewsConfig {
            webhooks: Vec::new(),
            max_access_duration: default_max_access(),
            poll_interval: None,
        }
    }
}

fn default_max_access() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// `[[reviews.webhook]]`: an HTTP endpoint reviews are POSTed to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Signs each body: `X-Warden-Signature: sha256=<hex HMAC-SHA256>`.
    pub secret: Option<SecretRef>,
    /// `cloudevents` (the default, JSON in structured mode) or `slack`
    /// (an incoming-webhook `{"text", "blocks"}` message).
    #[serde(default)]
    pub format: WebhookFormat,
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Cloudevents,
    Slack,
}

/// `[web]`: the reviewer web UI on `admin_listen` (see docs/web-ui.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the UI (`/`, `/reviews`, `/sessions`, `/login`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long a web login lasts (for OIDC too: the IdP vouched for the
    /// reviewer at login; sign in again after this).
    #[serde(default = "default_web_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Signs the session cookie. Every node behind one URL needs the same
    /// key; without one each process makes its own (logins end on restart).
    pub session_key: Option<SecretRef>,
    /// Offer signing in with a Warden access key (small set-ups).
    #[serde(default = "default_true")]
    pub access_key_login: bool,
    /// `[web.oidc]`: sign reviewers in with the IdP (authorization code + PKCE).
    pub oidc: Option<WebOidcConfig>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            session_ttl: default_web_session_ttl(),
            session_key: None,
            access_key_login: true,
            oidc: None,
        }
    }
}

fn default_web_session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}

/// `[web.oidc]`: the UI's OIDC client. Its `issuer` must also be an
/// `[[identity.oidc]]` issuer (keys, algorithms and groups claim come from there).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebOidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// Confidential clients only; PKCE is used either way.
    pub client_secret: Option<SecretRef>,
    #[serde(default = "default_web_scopes")]
    pub scopes: Vec<String>,
    /// The button's label on the login page.
    #[serde(default = "default_web_oidc_label")]
    pub label: String,
}

fn default_web_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

fn default_web_oidc_label() -> String {
    "Sign in with single sign-on".into()
}

/// `[classifier]`: tuning of SQL statement classification (see docs/policy.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Functions that may be called in a read (`name` or `schema.name`);
    /// other user-defined or volatile functions make a statement a write.
    #[serde(default)]
    pub safe_functions: Vec<String>,
    /// Extra settings whose `SET` is a read (e.g. `app.tenant`); by default
    /// only PostgreSQL's ordinary per-session settings are.
    #[serde(default)]
    pub safe_settings: Vec<String>,
}

/// A configuration problem, with where it is and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        if let Some(dir) = path.parent() {
            config.resolve_relative_paths(dir);
        }
        Ok(config)
    }

    /// Makes every file path in the config relative to the config file's directory.
    fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.server.data_dir);
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
        if let Some(dir) = &mut self.recording.dir {
            resolve(dir);
        }
        if let Some(dir) = &mut self.recording.spool_dir {
            resolve(dir);
        }
        for target in &mut self.targets {
            if let Some(ca) = &mut target.upstream_ca {
                resolve(ca);
            }
            if let SecretRef::File(path) = target.credentials.secret_mut() {
                resolve(path);
            }
        }
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message: explain_toml_error(error.message()),
            }
        })?;
        config.validate(text, origin)?;
        Ok(config)
    }

    /// Semantic checks that serde cannot express.
    fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let fail = |needle: &str, message: String| {
            let (line, column) = find_line(text, needle);
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message,
            })
        };
        if self.recording.capture_raw && self.recording.encryption_key.is_none() {
            return fail(
                "capture_raw",
                "[recording] capture_raw = true stores result values before masking; it needs \
                 encryption_key (a secret reference to a 32-byte key) so they are encrypted at rest"
                    .into(),
            );
        }
        if let Some(oidc) = &self.web.oidc {
            if !self.identity.oidc.iter().any(|i| i.issuer == oidc.issuer) {
                return fail(
                    "[web.oidc]",
                    format!(
                        "[web.oidc] issuer \"{}\" is not an [[identity.oidc]] issuer; add it there \
                         too (its keys verify the reviewers' ID tokens)",
                        oidc.issuer
                    ),
                );
            }
            if oidc.client_id.is_empty() {
                return fail("client_id", "[web.oidc] client_id is empty".into());
            }
            if self.server.public_url.is_none() {
                return fail(
                    "[web.oidc]",
                    "[web.oidc] needs [server] public_url: the IdP redirects reviewers back to \
                     PUBLIC_URL/auth/callback"
                        .into(),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for target in &self.targets {
            if !names.insert(target.name.as_str()) {
                return fail(
                    &format!("\"{}\"", target.name),
                    format!(
                        "two [[target]] tables are named \"{}\"; give each target a unique name",
                        target.name
                    ),
                );
            }
            if split_host_port(&target.address).is_none() {
                return fail(
                    &format!("\"{}\"", target.address),
                    format!(
                        "target \"{}\": address \"{}\" is not host:port; write e.g. \"db.internal:5432\"",
                        target.name, target.address
                    ),
                );
            }
            if target.effective_upstream_tls() == UpstreamTls::Disable && !target.is_loopback() {
                tracing::warn!(
                    target = %target.name,
                    "upstream_tls = \"disable\" for a non-loopback address: the upstream password crosses the network in clear"
                );
            }
            if let CredentialsConfig::Ephemeral(ephemeral) = &target.credentials
                && ephemeral.max_ttl < ephemeral.ttl
            {
                return fail(
                    "max_ttl",
                    format!(
                        "target \"{}\": max_ttl is shorter than ttl; make max_ttl at least ttl",
                        target.name
                    ),
                );
            }
            if target.credentials.secret().is_literal() {
                tracing::warn!(
                    target = %target.name,
                    "a literal password is written in the config; use env:NAME or file:PATH instead"
                );
            }
        }
        for listener in &self.listeners {
            if !matches!(listener.protocol, Protocol::Postgres | Protocol::Mysql) {
                return fail(
                    &listener.listen.to_string(),
                    format!(
                        "listener on {}: protocol \"{}\" is not available in this build; use \"postgres\" or \"mysql\"",
                        listener.listen, listener.protocol
                    ),
                );
            }
        }
        for target in &self.targets {
            if !matches!(target.protocol, Protocol::Postgres | Protocol::Mysql) {
                return fail(
                    &format!("\"{}\"", target.name),
                    format!(
                        "target \"{}\": protocol \"{}\" is not available in this build; use \"postgres\" or \"mysql\"",
                        target.name, target.protocol
                    ),
                );
            }
        }
        let mut policy_names = std::collections::HashSet::new();
        for policy in &self.policies {
            if !policy_names.insert(policy.name.as_str()) {
                return fail(
                    &format!("\"{}\"", policy.name),
                    format!(
                        "two [[policy]] tables are named \"{}\"; decisions name the rule, so names must be unique",
                        policy.name
                    ),
                );
            }
            for op in policy
                .allow
                .iter()
                .chain(&policy.review)
                .chain(&policy.deny)
            {
                if op != "*" && crate::Operation::parse(op).is_none() {
                    return fail(
                        &format!("\"{op}\""),
                        format!(
                            "policy \"{}\": unknown operation \"{op}\"; use connect, read, write, ddl, admin, unknown or *",
                            policy.name
                        ),
                    );
                }
            }
            if !matches!(policy.approval_scope.as_str(), "statement" | "session") {
                return fail(
                    &format!("\"{}\"", policy.approval_scope),
                    format!(
                        "policy \"{}\": approval_scope \"{}\" is not \"statement\" or \"session\"",
                        policy.name, policy.approval_scope
                    ),
                );
            }
            for subject in policy.subjects.iter().chain(&policy.approvers) {
                if !is_valid_subject(subject) {
                    return fail(
                        &format!("\"{subject}\""),
                        format!(
                            "policy \"{}\": subject \"{subject}\" is not one of group:G, sub:S, email:E, claim:NAME=VALUE, key:NAME or *",
                            policy.name
                        ),
                    );
                }
            }
            for pattern in policy
                .targets
                .iter()
                .chain(&policy.tables)
                .chain(&policy.schemas)
            {
                if let Err(error) = globset::Glob::new(pattern) {
                    return fail(
                        &format!("\"{pattern}\""),
                        format!(
                            "policy \"{}\": bad pattern \"{pattern}\": {error}",
                            policy.name
                        ),
                    );
                }
            }
        }
        let keys = &self.identity.access_keys;
        if keys.default_ttl > keys.max_ttl {
            return fail(
                "default_ttl",
                "[identity.access_keys] default_ttl is longer than max_ttl; lower default_ttl or raise max_ttl".into(),
            );
        }
        if let Some(url) = &self.store.url
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return fail(
                url,
                "[store] url: use sqlite:///PATH?mode=rwc or postgres://USER:PASSWORD@HOST/DB; omit `url` for SQLite in data_dir".into(),
            );
        }
        if let Some(every) = self.reviews.poll_interval
            && !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&every)
        {
            return fail(
                "poll_interval",
                "[reviews] poll_interval must be between 10ms and 1h (e.g. \"250ms\")".into(),
            );
        }
        for webhook in &self.reviews.webhooks {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                return fail(
                    &webhook.url,
                    format!(
                        "[[reviews.webhook]] url \"{}\" is not an http:// or https:// URL",
                        webhook.url
                    ),
                );
            }
        }
        match self.recording.sink.as_str() {
            "local" => {}
            "s3" if self.recording.bucket.is_none() => {
                return fail(
                    "sink",
                    "[recording] sink = \"s3\" needs `bucket` (and usually `endpoint`)".into(),
                );
            }
            "s3" => {}
            other => {
                return fail(
                    &format!("\"{other}\""),
                    format!("[recording] sink: \"{other}\" is not known; use \"local\" or \"s3\""),
                );
            }
        }
        if self.recording.on_spool_full != "refuse" {
            return fail(
                "on_spool_full",
                "[recording] on_spool_full: only \"refuse\" is available (new sessions are refused while the spool is full)".into(),
            );
        }
        Ok(())
    }

    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// `{data_dir}/recordings` unless `[recording] dir` says otherwise.
    pub fn recording_dir(&self) -> PathBuf {
        self.recording
            .dir
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("recordings"))
    }

    /// The store URL with the SQLite default applied.
    pub fn store_url(&self) -> String {
        self.store.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("warden.db").display()
            )
        })
    }
}

fn is_valid_subject(subject: &str) -> bool {
    if subject == "*" {
        return true;
    }
    match subject.split_once(':') {
        Some(("group" | "sub" | "email" | "key", value)) => !value.is_empty(),
        Some(("claim", rest)) => rest
            .split_once('=')
            .is_some_and(|(name, _)| !name.is_empty()),
        _ => false,
    }
}

/// Adds a hint to serde's terse messages for the mistakes people make most.
fn explain_toml_error(message: &str) -> String {
    let message = message.trim().to_string();
    if message.starts_with("unknown field") {
        format!("{message} (check the spelling; every key is listed in docs/config.md)")
    } else if message.starts_with("missing field") {
        format!("{message} (this key is required here; see docs/config.md)")
    } else {
        message
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// Line and column of the first occurrence of `needle`, or 1:1.
fn find_line(text: &str, needle: &str) -> (usize, usize) {
    text.find(needle)
        .map_or((1, 1), |offset| line_column(text, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[listener]]
protocol = "postgres"
listen = "127.0.0.1:15432"

[[target]]
name = "orders"
protocol = "postgres"
address = "127.0.0.1:5432"
credentials = { mode = "static", user = "app", password = "env:ORDERS_PASSWORD" }

[[policy]]
name = "agents read orders"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
"#;

    #[test]
    fn parses_minimal_config() {
        let config = Config::parse(MINIMAL, "warden.toml").unwrap();
        assert_eq!(config.targets[0].upstream_database(), "orders");
        assert_eq!(
            config.targets[0].effective_upstream_tls(),
            UpstreamTls::Disable
        );
        assert_eq!(config.server.max_message_size.0, 64 << 20);
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let text = MINIMAL.replace("allow = [\"read\"]", "alow = [\"read\"]");
        let error = Config::parse(&text, "warden.toml").unwrap_err().to_string();
        assert!(error.starts_with("warden.toml:16:"), "{error}");
        assert!(error.contains("unknown field `alow`"), "{error}");
    }

    #[test]
    fn bad_operation_names_line_and_fix() {
        let text = MINIMAL.replace("allow = [\"read\"]", "allow = [\"reed\"]");
        let error = Config::parse(&text, "w.toml").unwrap_err().to_string();
        assert!(error.starts_with("w.toml:16:"), "{error}");
        assert!(error.contains("use connect, read"), "{error}");
    }

    #[test]
    fn duplicate_target_is_refused() {
        let text = format!(
            "{MINIMAL}\n[[target]]\nname = \"orders\"\nprotocol = \"postgres\"\naddress = \"h:1\"\ncredentials = {{ mode = \"static\", user = \"a\", password = \"env:X\" }}\n"
        );
        let error = Config::parse(&text, "w.toml").unwrap_err().to_string();
        assert!(error.contains("two [[target]] tables"), "{error}");
    }

    #[test]
    fn reviews_section_and_approver_settings() {
        let text = format!(
            "{MINIMAL}review = [\"write\"]\napprovers = [\"group:dba\"]\nmin_approvals = 2\n\
             approval_scope = \"session\"\n\n[reviews]\nmax_access_duration = \"4h\"\n\n\
             [[reviews.webhook]]\nurl = \"https://hooks.example/warden\"\nsecret = \"env:HOOK_SECRET\"\n\
             format = \"slack\"\n"
        );
        let config = Config::parse(&text, "w.toml").unwrap();
        assert_eq!(config.policies[0].min_approvals, 2);
        assert_eq!(
            config.reviews.max_access_duration,
            Duration::from_secs(4 * 3600)
        );
        assert_eq!(config.reviews.webhooks[0].format, WebhookFormat::Slack);
        assert!(config.reviews.webhooks[0].secret.is_some());
        let defaults = Config::parse(MINIMAL, "w.toml").unwrap();
        assert!(defaults.reviews.webhooks.is_empty());
        assert_eq!(defaults.reviews.poll_interval, None);
        let polled = text.replace("[reviews]\n", "[reviews]\npoll_interval = \"30s\"\n");
        let config = Config::parse(&polled, "w.toml").unwrap();
        assert_eq!(config.reviews.poll_interval, Some(Duration::from_secs(30)));
        let too_fast = text.replace("[reviews]\n", "[reviews]\npoll_interval = \"0s\"\n");
        let error = Config::parse(&too_fast, "w.toml").unwrap_err().to_string();
        assert!(error.contains("[reviews] poll_interval"), "{error}");
        let bad_scope = text.replace("\"session\"", "\"forever\"");
        let error = Config::parse(&bad_scope, "w.toml").unwrap_err().to_string();
        assert!(error.contains("approval_scope"), "{error}");
        let bad_url = text.replace("https://hooks.example/warden", "ftp://x");
        let error = Config::parse(&bad_url, "w.toml").unwrap_err().to_string();
        assert!(error.contains("[[reviews.webhook]]"), "{error}");
        let bad_approver = text.replace("group:dba", "dba");
        let error = Config::parse(&bad_approver, "w.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("subject \"dba\""), "{error}");
    }

    #[test]
    fn remote_targets_default_to_verify_full() {
        let text = MINIMAL.replace("127.0.0.1:5432", "db.internal:5432");
        let config = Config::parse(&text, "w.toml").unwrap();
        assert_eq!(
            config.targets[0].effective_upstream_tls(),
            UpstreamTls::VerifyFull
        );
    }
}
