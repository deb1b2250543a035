//! Ephemeral users on MariaDB / MySQL.
//!
//! There is no `VALID UNTIL` here: the lease watcher and the sweeper end the
//! user's connections and drop it. Grants are role names (`GRANT role TO
//! user` and made the default role) or privilege specs (`SELECT ON orders.*`),
//! parsed strictly and re-quoted.

use super::SecretFetch;
use super::backend::{NewRole, RoleBackend, RoleError};
use super::template::{
    MyGrant, Placeholders, is_generated_role_name, is_valid_role_name, my_ident, my_literal,
    parse_my_grant, redact, render,
};
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_core::config::{EphemeralCredentials as EphemeralConfig, TargetConfig, UpstreamTls};

/// How long `revoke` waits for killed connections to go away.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Users on one MariaDB / MySQL target.
pub struct MyRoles {
    target: Arc<TargetConfig>,
    settings: EphemeralConfig,
    secrets: Arc<dyn SecretFetch>,
}

impl MyRoles {
    pub fn new(
        target: Arc<TargetConfig>,
        settings: EphemeralConfig,
        secrets: Arc<dyn SecretFetch>,
    ) -> Self {
        MyRoles {
            target,
            settings,
            secrets,
        }
    }

    async fn connect(&self) -> Result<Conn, RoleError> {
        if self.target.effective_upstream_tls() != UpstreamTls::Disable {
            return Err(RoleError::MysqlTls);
        }
        let password = self
            .secrets
            .fetch(&self.settings.admin_password)
            .await
            .map_err(RoleError::AdminPassword)?;
        let (host, port) = warden_core::config::split_host_port(&self.target.address)
            .ok_or_else(|| RoleError::Address(self.target.address.clone()))?;
        let options = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(self.settings.admin_user.clone()))
            .pass(Some(password.expose_secret().to_string()))
            .prefer_socket(false);
        tokio::time::timeout(self.target.connect_timeout, Conn::new(options))
            .await
            .map_err(|_| RoleError::Timeout {
                address: self.target.address.clone(),
                timeout: self.target.connect_timeout,
            })?
            .map_err(|e| RoleError::AdminLogin {
                user: self.settings.admin_user.clone(),
                source: Box::new(RoleError::Mysql(e)),
            })
    }

    /// The grants from the config, parsed.
    fn grants(&self) -> Result<Vec<MyGrant>, RoleError> {
        self.settings
            .grant
            .iter()
            .map(|item| parse_my_grant(item).map_err(RoleError::from))
            .collect()
    }

    /// The statements that create `account` (`'name'@'%'`).
    fn create_statements(
        &self,
        account: &str,
        password: &str,
        expiration: &str,
        mariadb: bool,
    ) -> Result<Vec<String>, RoleError> {
        let grants = self.grants()?;
        let roles: Vec<String> = grants
            .iter()
            .filter_map(|grant| match grant {
                MyGrant::Role(role) => Some(my_ident(role)),
                MyGrant::Privileges(_) => None,
            })
            .collect::<Result<_, _>>()?;
        if !self.settings.creation_statements.is_empty() {
            let role_list = roles.join(", ");
            let values = Placeholders {
                name: account,
                password: Some(password),
                expiration: Some(expiration),
                grants: Some(&role_list),
            };
            return self
                .settings
                .creation_statements
                .iter()
                .map(|template| render(template, &values).map_err(RoleError::from))
                .collect();
        }
        let mut statements = vec![format!("CREATE USER {account} IDENTIFIED BY {password}")];
        for grant in &grants {
            match grant {
                MyGrant::Role(role) => {
                    statements.push(format!("GRANT {} TO {account}", my_ident(role)?));
                }
                MyGrant::Privileges(spec) => statements.push(format!("GRANT {spec} TO {account}")),
            }
        }
        match (roles.as_slice(), mariadb) {
            ([], _) => {}
            // Setting another user's default role needs UPDATE on the `mysql`
            // schema in MariaDB (as good as root): the new user sets its own,
            // see `set_own_default_role`.
            ([_], true) => {}
            (_, true) => {
                return Err(RoleError::MariadbDefaultRoles);
            }
            (roles, false) => statements.push(format!(
                "SET DEFAULT ROLE {} TO {account}",
                roles.join(", ")
            )),
        }
        Ok(statements)
    }

    /// MariaDB: logs in once as the new user and makes its one granted role
    /// its default, which a user may do for itself.
    async fn set_own_default_role(&self, role: &NewRole, mariadb: bool) -> Result<(), RoleError> {
        if !mariadb || !self.settings.creation_statements.is_empty() {
            return Ok(());
        }
        let roles: Vec<String> = self
            .grants()?
            .into_iter()
            .filter_map(|grant| match grant {
                MyGrant::Role(name) => Some(name),
                MyGrant::Privileges(_) => None,
            })
            .collect();
        let [default_role] = roles.as_slice() else {
            return Ok(());
        };
        let (host, port) = warden_core::config::split_host_port(&self.target.address)
            .ok_or_else(|| RoleError::Address(self.target.address.clone()))?;
        let options = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(role.name.clone()))
            .pass(Some(role.password.expose_secret().to_string()))
            .prefer_socket(false);
        let mut conn = tokio::time::timeout(self.target.connect_timeout, Conn::new(options))
            .await
            .map_err(|_| RoleError::NewUserTimeout(self.target.address.clone()))?
            .map_err(RoleError::NewUserLogin)?;
        conn.query_drop(format!("SET DEFAULT ROLE {}", my_ident(default_role)?))
            .await
            .map_err(|source| RoleError::DefaultRole {
                role: default_role.clone(),
                source,
            })?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    /// Kills every connection of `name` and waits (bounded) until they are gone.
    async fn kill_connections(conn: &mut Conn, name: &str) -> Result<(), RoleError> {
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        loop {
            let ids: Vec<u64> = conn
                .exec(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
                    (name,),
                )
                .await
                .map_err(|source| RoleError::ListConnections {
                    name: name.to_string(),
                    source,
                })?;
            if ids.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RoleError::StillOpen {
                    name: name.to_string(),
                    count: ids.len(),
                });
            }
            for id in ids {
                // A connection that ended meanwhile is "Unknown thread id".
                if let Err(error) = conn.query_drop(format!("KILL CONNECTION {id}")).await {
                    tracing::debug!(user = name, id, %error, "KILL failed");
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[async_trait]
impl RoleBackend for MyRoles {
    async fn create(&self, role: &NewRole) -> Result<(), RoleError> {
        if !is_valid_role_name(&role.name) {
            return Err(RoleError::UserName(role.name.clone()));
        }
        let account = format!("{}@'%'", my_literal(&role.name)?);
        let secret = role.password.expose_secret();
        let password = my_literal(secret)?;
        let expiration = my_literal(&role.expires_at.format(&Rfc3339).map_err(|source| {
            RoleError::FormatTime {
                what: "the expiry".into(),
                source,
            }
        })?)?;
        let mut conn = self.connect().await?;
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(RoleError::ServerVersion)?;
        let mariadb = version.is_some_and(|v| v.contains("MariaDB"));
        let statements = self.create_statements(&account, &password, &expiration, mariadb)?;
        for (index, statement) in statements.iter().enumerate() {
            if let Err(error) = conn.query_drop(statement).await {
                let message = redact(&error.to_string(), &[secret]);
                // The first statement creates the user: when it fails (e.g. the
                // user exists) there is nothing of ours to clean up.
                if index > 0
                    && let Err(cleanup) = conn
                        .query_drop(format!("DROP USER IF EXISTS {account}"))
                        .await
                {
                    tracing::warn!(user = role.name, %cleanup, "cannot drop a half-created user; the sweeper will");
                }
                return Err(RoleError::Redacted(message));
            }
        }
        let _ = conn.disconnect().await;
        if let Err(error) = self.set_own_default_role(role, mariadb).await {
            let mut conn = self.connect().await?;
            if let Err(cleanup) = conn
                .query_drop(format!("DROP USER IF EXISTS {account}"))
                .await
            {
                tracing::warn!(user = role.name, %cleanup, "cannot drop a half-created user; the sweeper will");
            }
            let _ = conn.disconnect().await;
            return Err(RoleError::Redacted(redact(&error.to_string(), &[secret])));
        }
        Ok(())
    }

    async fn renew(&self, _name: &str, _until: OffsetDateTime) -> Result<(), RoleError> {
        Ok(())
    }

    async fn revoke(&self, name: &str) -> Result<(), RoleError> {
        let account = format!("{}@'%'", my_literal(name)?);
        let drops = if self.settings.revocation_statements.is_empty() {
            vec![format!("DROP USER IF EXISTS {account}")]
        } else {
            let values = Placeholders {
                name: &account,
                ..Placeholders::default()
            };
            self.settings
                .revocation_statements
                .iter()
                .map(|template| render(template, &values))
                .collect::<Result<_, _>>()?
        };
        let mut conn = self.connect().await?;
        conn.query_drop(format!("ALTER USER IF EXISTS {account} ACCOUNT LOCK"))
            .await
            .map_err(|source| RoleError::Lock {
                name: name.to_string(),
                source,
            })?;
        Self::kill_connections(&mut conn, name).await?;
        for statement in &drops {
            conn.query_drop(statement)
                .await
                .map_err(|source| RoleError::Drop {
                    name: name.to_string(),
                    source,
                })?;
        }
        let _ = conn.disconnect().await;
        Ok(())
    }

    async fn list_roles(&self) -> Result<Vec<String>, RoleError> {
        let mut conn = self.connect().await?;
        let users: Vec<String> = conn
            .query("SELECT User FROM mysql.user WHERE Host = '%'")
            .await
            .map_err(RoleError::ListUsers)?;
        let _ = conn.disconnect().await;
        Ok(users
            .into_iter()
            .filter(|user| is_generated_role_name(user))
            .collect())
    }
}
