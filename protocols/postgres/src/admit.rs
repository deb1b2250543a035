//! The Postgres side of admission: logging in upstream for core's
//! [`warden_core::admission::admit`] (its refusals render in
//! [`crate::client_error`]).

use crate::upstream::{self, Login, Upstream, UpstreamError};
use warden_core::admission::{ConnectGrant, DialCause, DialFailure, Dialer};
use warden_core::engines::UpstreamCredential;

/// Logs in upstream with the client's startup parameters.
pub struct PgDialer {
    /// The client's parameters Warden forwards (application_name, DateStyle …).
    pub parameters: Vec<(String, String)>,
}

impl Dialer for PgDialer {
    type Upstream = Upstream;

    async fn dial(
        self,
        grant: &ConnectGrant,
        credential: &UpstreamCredential,
    ) -> Result<Upstream, DialFailure> {
        let target = grant.target();
        let mut parameters = self.parameters;
        if grant.read_only() {
            // A second wall behind statement policy: the upstream itself refuses writes.
            parameters.push(("default_transaction_read_only".into(), "on".into()));
        }
        let login = Login {
            user: &credential.user,
            password: &credential.password,
            database: target.upstream_database(),
            parameters: &parameters,
        };
        let upstream = upstream::connect(grant, login)
            .await
            .map_err(|error| dial_failure(&target.name, &error))?;
        if let Some(refusal) = upstream
            .parameters
            .iter()
            .find_map(|(name, value)| warden_core::lexing::pg_setting_refusal(name, value))
        {
            // The role's or database's own settings start the session in a
            // lexing state Warden cannot judge under.
            return Err(DialFailure::new(
                DialCause::UnsupportedSession,
                format!(
                    "target \"{}\" cannot be used through Warden: {refusal}",
                    target.name
                ),
            ));
        }
        Ok(upstream)
    }
}

fn dial_failure(target: &str, error: &UpstreamError) -> DialFailure {
    let cause = match error {
        UpstreamError::Connect { .. } => DialCause::Unreachable,
        UpstreamError::Timeout(_) => DialCause::Timeout,
        UpstreamError::Tls(_) | UpstreamError::TlsConfig(_) => DialCause::Tls,
        UpstreamError::Refused { .. } => DialCause::LoginRefused,
        UpstreamError::UnsupportedAuth(_)
        | UpstreamError::Auth(_)
        | UpstreamError::Protocol(_)
        | UpstreamError::Io(_) => DialCause::Failed,
    };
    DialFailure {
        cause,
        detail: format!("target \"{target}\": {error}"),
        upstream_code: error.upstream_code().map(str::to_string),
    }
}
