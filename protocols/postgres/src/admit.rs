//! The Postgres side of admission: logging in upstream for core's
//! [`warden_core::admission::admit`], and rendering its refusals as
//! Postgres errors.

use crate::errors::{PgError, sqlstate};
use crate::upstream::{self, Login, Upstream, UpstreamError};
use warden_core::admission::{ConnectGrant, DialCause, DialFailure, Dialer, Refusal};
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

/// The FATAL error a refused client gets.
pub fn refusal_error(refusal: &Refusal) -> PgError {
    match refusal {
        Refusal::UnknownOrForbiddenTarget { target } => PgError::target_refused(target),
        Refusal::NeedsAccessApproval { target } => PgError::fatal(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            refusal.to_string(),
        )
        .with_hint(format!(
            "Run: warden access request --target {target} --for 1h --reason \"…\", and connect again once it is approved."
        )),
        Refusal::LimitReached { .. } => {
            PgError::fatal(sqlstate::TOO_MANY_CONNECTIONS, refusal.to_string())
                .with_hint("Try again when one of the target's sessions has ended.")
        }
        Refusal::CredentialFailure { .. } => PgError::fatal(
            sqlstate::CANNOT_CONNECT,
            refusal.to_string(),
        )
        .with_hint("This is a Warden configuration problem; the Warden log names the secret reference."),
        Refusal::Unavailable { target, failure } => unavailable_error(target, failure),
        Refusal::StoreFailure | Refusal::RecordingUnavailable => {
            PgError::fatal(sqlstate::SYSTEM_ERROR, refusal.to_string())
        }
    }
}

fn unavailable_error(target: &str, failure: &DialFailure) -> PgError {
    let cause = match failure.cause {
        DialCause::Unreachable => "the database is unreachable",
        DialCause::Timeout => "the database did not answer in time",
        DialCause::Tls => "TLS to the database failed",
        DialCause::LoginRefused => "the database refused Warden's login",
        DialCause::UnsupportedSession => {
            // The detail already says why, in full.
            return PgError::fatal(sqlstate::FEATURE_NOT_SUPPORTED, failure.detail.clone());
        }
        DialCause::Failed => "the connection to the database failed",
    };
    let error = PgError::fatal(
        sqlstate::CANNOT_CONNECT,
        format!("target \"{target}\" is unavailable: {cause}"),
    );
    match &failure.upstream_code {
        Some(code) => error.with_detail(format!("upstream SQLSTATE {code}")),
        None => error,
    }
}
