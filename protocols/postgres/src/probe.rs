//! `warden check`'s look at a PostgreSQL target's static login: is it a
//! superuser, and how many tables and views does it own? Read over Warden's
//! own upstream client, so the target's `upstream_tls` and CA apply.

use crate::catalog::{CatalogError, run_query};
use crate::upstream::{self, Login};
use secrecy::SecretString;
use warden_core::config::TargetConfig;

/// What the login can do that policy cannot take away.
const QUERY: &str = "SELECT r.rolsuper::pg_catalog.text, (SELECT count(*) FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p', 'v', 'm') \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema'))::pg_catalog.text \
     FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/// Why the login's powers could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Login(#[source] upstream::UpstreamError),
    #[error("{0}")]
    Query(#[source] CatalogError),
    #[error("unexpected answer to the role query")]
    Answer,
}

/// The static login's powers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPowers {
    pub superuser: bool,
    /// Tables, views and materialized views outside the system schemas it owns.
    pub owned: u64,
}

/// Logs in as `user` and reads its powers (within the target's connect timeout).
pub async fn static_login_powers(
    target: &TargetConfig,
    user: &str,
    password: &SecretString,
) -> Result<LoginPowers, ProbeError> {
    let parameters = [("application_name".to_string(), "warden check".to_string())];
    let login = Login {
        user,
        password,
        database: target.upstream_database(),
        parameters: &parameters,
    };
    let mut connection = upstream::connect_target(target, login)
        .await
        .map_err(ProbeError::Login)?;
    let rows = run_query(&mut connection, QUERY)
        .await
        .map_err(ProbeError::Query)?;
    let [row] = rows.as_slice() else {
        return Err(ProbeError::Answer);
    };
    match row.as_slice() {
        [Some(superuser), Some(owned)] => Ok(LoginPowers {
            superuser: superuser == "true",
            owned: owned.parse().map_err(|_| ProbeError::Answer)?,
        }),
        _ => Err(ProbeError::Answer),
    }
}
