//! The MySQL side of admission: logging in upstream for core's
//! [`warden_core::admission::admit`], and rendering its refusals as MySQL
//! errors.

use crate::errors::ClientError;
use crate::upstream::{self, Upstream, UpstreamError};
use mysql_common::constants::CapabilityFlags as Caps;
use warden_core::admission::{ConnectGrant, DialCause, DialFailure, Dialer, Refusal};
use warden_core::config::TargetConfig;
use warden_core::engines::UpstreamCredential;

/// Logs in upstream with the client's capabilities and character set.
pub struct MyDialer {
    pub caps: Caps,
    pub collation: u8,
}

impl Dialer for MyDialer {
    type Upstream = Upstream;

    async fn dial(
        self,
        grant: &ConnectGrant,
        credential: &UpstreamCredential,
    ) -> Result<Upstream, DialFailure> {
        let target = grant.target();
        if let Some(charset) =
            warden_core::lexing::mysql_collation_refused_charset(self.collation.into())
        {
            return Err(DialFailure::new(
                DialCause::UnsupportedSession,
                format!(
                    "client character set {charset} (collation {}) is refused by Warden: a backslash or \
                     quote can hide inside its multibyte characters; connect with utf8mb4",
                    self.collation
                ),
            ));
        }
        let connect = upstream::connect(grant, credential, self.caps, self.collation);
        let mut upstream = match tokio::time::timeout(target.connect_timeout, connect).await {
            Ok(Ok(upstream)) => upstream,
            Ok(Err(error)) => return Err(login_failure(target, &error)),
            Err(_) => {
                return Err(DialFailure::new(
                    DialCause::Timeout,
                    format!(
                        "Warden cannot reach target \"{}\" ({}): no answer within {:?}",
                        target.name, target.address, target.connect_timeout
                    ),
                ));
            }
        };
        check_lexing_state(target, &mut upstream).await?;
        if grant.read_only() {
            let raise = upstream.raise_read_only_wall();
            match tokio::time::timeout(target.connect_timeout, raise).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    return Err(DialFailure::new(
                        DialCause::Failed,
                        format!(
                            "Warden cannot make the session read-only on target \"{}\": {error}",
                            target.name
                        ),
                    ));
                }
                Err(_) => {
                    return Err(DialFailure::new(
                        DialCause::Timeout,
                        format!(
                            "Warden cannot make the session read-only on target \"{}\": no answer within {:?}",
                            target.name, target.connect_timeout
                        ),
                    ));
                }
            }
        }
        Ok(upstream)
    }
}

fn login_failure(target: &TargetConfig, error: &UpstreamError) -> DialFailure {
    let (cause, upstream_code) = match error {
        UpstreamError::Connect { .. } => (DialCause::Unreachable, None),
        UpstreamError::Tls(_)
        | UpstreamError::TlsConfig(_)
        | UpstreamError::NoTls
        | UpstreamError::ClearWithoutTls => (DialCause::Tls, None),
        UpstreamError::Refused { code, .. } => (DialCause::LoginRefused, Some(code.to_string())),
        UpstreamError::Plugin(_) | UpstreamError::Protocol(_) | UpstreamError::Codec(_) => {
            (DialCause::Failed, None)
        }
    };
    DialFailure {
        cause,
        detail: format!(
            "Warden cannot reach target \"{}\" ({}): {error}",
            target.name, target.address
        ),
        upstream_code,
    }
}

/// Refuses an upstream session that starts in a lexing state Warden does not
/// model (see `warden_core::lexing`).
async fn check_lexing_state(
    target: &TargetConfig,
    upstream: &mut Upstream,
) -> Result<(), DialFailure> {
    let unsupported = |detail: String| DialFailure::new(DialCause::UnsupportedSession, detail);
    let read = tokio::time::timeout(target.connect_timeout, upstream.lexing_state()).await;
    let (mode, charset) = match read {
        Ok(Ok(state)) => state,
        Ok(Err(error)) => {
            return Err(DialFailure::new(
                DialCause::Failed,
                format!(
                    "Warden cannot read the session's sql_mode on target \"{}\": {error}",
                    target.name
                ),
            ));
        }
        Err(_) => {
            return Err(DialFailure::new(
                DialCause::Timeout,
                format!(
                    "Warden cannot read the session's sql_mode on target \"{}\": no answer within {:?}",
                    target.name, target.connect_timeout
                ),
            ));
        }
    };
    if let Some(refusal) = warden_core::lexing::mysql_sql_mode_refusal(&mode) {
        return Err(unsupported(format!(
            "target \"{}\" cannot be used through Warden: its sessions start with {refusal}",
            target.name
        )));
    }
    if !warden_core::lexing::mysql_charset_is_safe(&charset) {
        return Err(unsupported(format!(
            "target \"{}\" cannot be used through Warden: its sessions start with client character set {charset}",
            target.name
        )));
    }
    Ok(())
}

/// The connection-phase error a refused client gets.
pub fn refusal_error(refusal: &Refusal) -> ClientError {
    match refusal {
        // One message for both, so a client cannot probe which targets exist.
        Refusal::UnknownOrForbiddenTarget { .. } => ClientError::AccessDenied,
        Refusal::NeedsAccessApproval { target } => ClientError::NeedsAccessRequest(format!(
            "{refusal}: run warden access request --target {target} --for 1h --reason \"…\", \
             and connect again once it is approved"
        )),
        Refusal::LimitReached { .. } => ClientError::TargetBusy(refusal.to_string()),
        Refusal::CredentialFailure { .. } => ClientError::UpstreamUnavailable(format!(
            "{refusal}; this is a Warden configuration problem and the Warden log names the secret reference"
        )),
        Refusal::Unavailable { failure, .. } => {
            ClientError::UpstreamUnavailable(failure.detail.clone())
        }
        Refusal::StoreFailure | Refusal::RecordingUnavailable => {
            ClientError::UpstreamUnavailable(format!("{refusal}; try again later"))
        }
    }
}
