//! Ephemeral roles on PostgreSQL.
//!
//! The admin connection starts with `search_path=pg_catalog` (a startup
//! option, which beats `ALTER ROLE … SET search_path`) and every internal
//! query names `pg_catalog` objects and operators explicitly, so a schema
//! planted by someone who can create objects cannot capture Warden's calls.
//! The password is sent as a SCRAM-SHA-256 verifier computed here, so the
//! plain password never reaches the server's logs.

use super::SecretFetch;
use super::backend::{NewRole, RoleBackend, RoleError};
use super::template::{
    Placeholders, check_pg_role, is_generated_role_name, pg_ident, pg_literal, redact, render,
};
use async_trait::async_trait;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use warden_core::config::{EphemeralCredentials as EphemeralConfig, TargetConfig, UpstreamTls};

/// How long `revoke` waits for terminated backends to exit.
const TERMINATE_WAIT: Duration = Duration::from_secs(5);

/// Idle admin connections kept per target, so a new session's role costs
/// statements, not a login.
const IDLE_ADMIN_CONNECTIONS: usize = 4;

/// PBKDF2 rounds of the per-session role's SCRAM verifier. Rounds slow down
/// guessing a human password from a stolen verifier; these passwords are 32
/// random bytes, which no number of guesses reaches, so the rounds would
/// only add milliseconds to every connect (here and in Warden's own login).
const EPHEMERAL_SCRAM_ITERATIONS: u32 = 64;

/// Roles on one PostgreSQL target.
pub struct PgRoles {
    target: Arc<TargetConfig>,
    settings: EphemeralConfig,
    secrets: Arc<dyn SecretFetch>,
    idle: std::sync::Mutex<Vec<Client>>,
}

/// A SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>`).
fn scram_verifier(password: &[u8], iterations: u32) -> Result<String, RoleError> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    type HmacSha256 = Hmac<Sha256>;
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let mac = |key: &[u8], data: &[&[u8]]| {
        let mut mac = HmacSha256::new_from_slice(key).map_err(RoleError::Scram)?;
        for part in data {
            mac.update(part);
        }
        Ok::<_, RoleError>(mac.finalize().into_bytes())
    };
    // Hi() of RFC 5802: PBKDF2-HMAC-SHA-256 with one output block.
    let mut block = mac(password, &[&salt, &1u32.to_be_bytes()])?;
    let mut salted = block;
    for _ in 1..iterations {
        block = mac(password, &[&block])?;
        for (out, byte) in salted.iter_mut().zip(block.iter()) {
            *out ^= byte;
        }
    }
    let client_key = mac(&salted, &[b"Client Key"])?;
    let stored_key = Sha256::digest(client_key);
    let server_key = mac(&salted, &[b"Server Key"])?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    ))
}

impl PgRoles {
    pub fn new(
        target: Arc<TargetConfig>,
        settings: EphemeralConfig,
        secrets: Arc<dyn SecretFetch>,
    ) -> Self {
        PgRoles {
            target,
            settings,
            secrets,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// An idle admin connection, or a new one. Callers hand it back with
    /// [`PgRoles::give_back`] after a success; after an error it is dropped.
    async fn connect(&self) -> Result<Client, RoleError> {
        let reused = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::iter::from_fn(|| idle.pop()).find(|client| !client.is_closed())
        };
        match reused {
            Some(client) => Ok(client),
            None => self.login().await,
        }
    }

    /// Keeps a healthy admin connection for the next session.
    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE_ADMIN_CONNECTIONS {
            idle.push(client);
        }
    }

    /// A new admin connection on the target's database, `search_path` pinned.
    async fn login(&self) -> Result<Client, RoleError> {
        let password = self
            .secrets
            .fetch(&self.settings.admin_password)
            .await
            .map_err(RoleError::AdminPassword)?;
        let (host, port) = warden_core::config::split_host_port(&self.target.address)
            .ok_or_else(|| RoleError::Address(self.target.address.clone()))?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(&self.settings.admin_user)
            .password(password.expose_secret())
            .dbname(self.target.upstream_database())
            .options("-csearch_path=pg_catalog")
            .application_name("warden-ephemeral");
        let target = &self.target;
        let connect = async {
            let tcp = TcpStream::connect((host, port)).await.map_err(|source| {
                RoleError::Unreachable {
                    address: target.address.clone(),
                    source,
                }
            })?;
            let _ = tcp.set_nodelay(true);
            let client = match target.effective_upstream_tls() {
                UpstreamTls::Disable => {
                    config.ssl_mode(SslMode::Disable);
                    let (client, connection) =
                        config.connect_raw(tcp, NoTls).await.map_err(pg_err)?;
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "ephemeral admin connection ended");
                        }
                    });
                    client
                }
                mode => {
                    config.ssl_mode(SslMode::Require);
                    let tls = super::pg_tls::RustlsConnect::new(
                        warden_core::upstream_tls::client_config(target, mode)
                            .map_err(RoleError::Tls)?,
                        warden_core::upstream_tls::server_name(target).map_err(RoleError::Tls)?,
                    );
                    let (client, connection) =
                        config.connect_raw(tcp, tls).await.map_err(pg_err)?;
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "ephemeral admin connection ended");
                        }
                    });
                    client
                }
            };
            Ok::<_, RoleError>(client)
        };
        let client = tokio::time::timeout(target.connect_timeout, connect)
            .await
            .map_err(|_| RoleError::Timeout {
                address: target.address.clone(),
                timeout: target.connect_timeout,
            })?
            .map_err(|source| RoleError::AdminLogin {
                user: self.settings.admin_user.clone(),
                source: Box::new(source),
            })?;
        // The startup option already did this; a second wall costs one round trip.
        client
            .batch_execute("SET search_path TO pg_catalog")
            .await
            .map_err(pg_err)?;
        Ok(client)
    }

    async fn exists(client: &Client, name: &str) -> Result<bool, RoleError> {
        let row = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1",
                &[&name],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.is_some())
    }

    /// Grants from the config, checked and quoted: `"a", "b"`.
    fn grants(&self) -> Result<String, RoleError> {
        let mut quoted = Vec::with_capacity(self.settings.grant.len());
        for grant in &self.settings.grant {
            check_pg_role(grant).map_err(|source| RoleError::Setting {
                setting: "grant",
                source,
            })?;
            quoted.push(pg_ident(grant)?);
        }
        Ok(quoted.join(", "))
    }

    /// Ends every backend of the role and waits (bounded) until they are gone.
    async fn terminate(client: &Client, name: &str) -> Result<(), RoleError> {
        client
            .execute(
                "SELECT pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a \
                 WHERE a.usename OPERATOR(pg_catalog.=) $1",
                &[&name],
            )
            .await
            .map_err(pg_err)?;
        let deadline = tokio::time::Instant::now() + TERMINATE_WAIT;
        loop {
            let row = client
                .query_one(
                    "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a \
                     WHERE a.usename OPERATOR(pg_catalog.=) $1",
                    &[&name],
                )
                .await
                .map_err(pg_err)?;
            let left: i64 = row.try_get(0).map_err(pg_err)?;
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RoleError::StillRunning {
                    name: name.to_string(),
                    left,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The built-in (or configured) statements that drop the role.
    fn drop_statements(&self, name: &str) -> Result<Vec<String>, RoleError> {
        let quoted = pg_ident(name)?;
        if !self.settings.revocation_statements.is_empty() {
            let values = Placeholders {
                name: &quoted,
                ..Placeholders::default()
            };
            return self
                .settings
                .revocation_statements
                .iter()
                .map(|template| render(template, &values).map_err(RoleError::from))
                .collect();
        }
        let mut statements = Vec::new();
        match self.settings.owned_objects.as_str() {
            "reassign" => {
                let to = self
                    .settings
                    .reassign_to
                    .as_deref()
                    .unwrap_or(&self.settings.admin_user);
                check_pg_role(to).map_err(|source| RoleError::Setting {
                    setting: "reassign_to",
                    source,
                })?;
                statements.push(format!("REASSIGN OWNED BY {quoted} TO {}", pg_ident(to)?));
                statements.push(format!("DROP OWNED BY {quoted}"));
            }
            "drop" => statements.push(format!("DROP OWNED BY {quoted}")),
            other => {
                return Err(RoleError::OwnedObjects(other.to_string()));
            }
        }
        statements.push(format!("DROP ROLE IF EXISTS {quoted}"));
        Ok(statements)
    }
}

#[async_trait]
impl RoleBackend for PgRoles {
    async fn create(&self, role: &NewRole) -> Result<(), RoleError> {
        if !super::template::is_valid_role_name(&role.name) {
            return Err(RoleError::RoleName(role.name.clone()));
        }
        let verifier = scram_verifier(
            role.password.expose_secret().as_bytes(),
            EPHEMERAL_SCRAM_ITERATIONS,
        )?;
        let name = pg_ident(&role.name)?;
        let password = pg_literal(&verifier)?;
        let expiration = pg_literal(&rfc3339(role.expires_at)?)?;
        let grants = self.grants()?;
        let statements = if self.settings.creation_statements.is_empty() {
            let mut create = format!(
                "CREATE ROLE {name} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE \
                 NOREPLICATION PASSWORD {password} VALID UNTIL {expiration}"
            );
            if !grants.is_empty() {
                create.push_str(&format!(" IN ROLE {grants}"));
            }
            vec![create]
        } else {
            let values = Placeholders {
                name: &name,
                password: Some(&password),
                expiration: Some(&expiration),
                grants: Some(&grants),
            };
            self.settings
                .creation_statements
                .iter()
                .map(|template| render(template, &values))
                .collect::<Result<Vec<_>, _>>()?
        };
        let client = self.connect().await?;
        // One round trip, one transaction: PostgreSQL runs the statements
        // of a multi-statement Query as a single implicit transaction, so a
        // failing one leaves no role behind, and CREATE ROLE itself refuses
        // a name that exists (42710) without a separate lookup.
        client
            .batch_execute(&statements.join(";\n"))
            .await
            .map_err(|e| RoleError::Postgres(redact(&pg_err(e).to_string(), &[&verifier])))?;
        self.give_back(client);
        Ok(())
    }

    async fn renew(&self, name: &str, until: OffsetDateTime) -> Result<(), RoleError> {
        let client = self.connect().await?;
        client
            .batch_execute(&format!(
                "ALTER ROLE {} VALID UNTIL {}",
                pg_ident(name)?,
                pg_literal(&rfc3339(until)?)?
            ))
            .await
            .map_err(pg_err)?;
        self.give_back(client);
        Ok(())
    }

    async fn revoke(&self, name: &str) -> Result<(), RoleError> {
        let drops = self.drop_statements(name)?;
        let mut client = self.connect().await?;
        if !Self::exists(&client, name).await? {
            self.give_back(client);
            return Ok(());
        }
        let quoted = pg_ident(name)?;
        client
            .batch_execute(&format!("ALTER ROLE {quoted} NOLOGIN"))
            .await
            .map_err(pg_err)?;
        // Signalling a role's backends and REASSIGN/DROP OWNED need the admin
        // to be a member (a superuser is anyway; a CREATEROLE admin may grant it).
        if let Err(error) = client
            .batch_execute(&format!("GRANT {quoted} TO CURRENT_USER"))
            .await
        {
            tracing::debug!(role = name, error = %pg_err(error), "cannot grant the role to the admin");
        }
        Self::terminate(&client, name).await?;
        let transaction = client.transaction().await.map_err(pg_err)?;
        for statement in &drops {
            transaction.batch_execute(statement).await.map_err(pg_err)?;
        }
        transaction.commit().await.map_err(pg_err)?;
        self.give_back(client);
        Ok(())
    }

    async fn list_roles(&self) -> Result<Vec<String>, RoleError> {
        let client = self.connect().await?;
        let rows = client
            .query(
                "SELECT r.rolname FROM pg_catalog.pg_roles r WHERE NOT r.rolsuper",
                &[],
            )
            .await
            .map_err(pg_err)?;
        let mut names = Vec::new();
        for row in rows {
            let name: String = row.try_get(0).map_err(pg_err)?;
            if is_generated_role_name(&name) {
                names.push(name);
            }
        }
        self.give_back(client);
        Ok(names)
    }
}

fn rfc3339(at: OffsetDateTime) -> Result<String, RoleError> {
    at.format(&Rfc3339).map_err(|source| RoleError::FormatTime {
        what: at.to_string(),
        source,
    })
}

/// The server's message and SQLSTATE when there is one; tokio-postgres'
/// own `Display` says only "db error".
fn pg_err(error: tokio_postgres::Error) -> RoleError {
    RoleError::Postgres(match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let source = std::error::Error::source(&error)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{error}{source}")
        }
    })
}
