//! Every error Warden itself sends a Postgres client, as one enum mapped to
//! severity, SQLSTATE, message, detail and hint in a match with no catch-all
//! arm (the MySQL side's `ClientError` is its twin). Upstream errors are
//! relayed as the server sent them and are not here.

use crate::errors::{PgError, sqlstate};
use std::time::Duration;
use warden_core::Decision;
use warden_core::admission::{DialCause, Refusal};
use warden_core::hold::short_duration;

#[derive(Debug, thiserror::Error)]
pub enum PgClientError {
    // --- before the session: FATAL ------------------------------------------
    /// Every authentication failure looks the same to the client.
    #[error("authentication failed")]
    AuthFailed,
    #[error("TLS is required for connections from outside this host")]
    TlsRequired,
    /// A startup packet or message that breaks the protocol.
    #[error("{0}")]
    StartupViolation(String),
    /// A protocol version Warden does not speak.
    #[error("{0}")]
    UnsupportedVersion(String),
    #[error("replication connections are not allowed through Warden")]
    Replication,
    #[error("startup parameter {0} is not allowed through Warden")]
    StartupParameter(String),
    /// The broker's connection limit.
    #[error("sorry, too many clients already")]
    TooManyConnections,
    #[error("Warden is shutting down")]
    ShuttingDown,
    /// The catalog lookup a session with table or column rules needs failed.
    #[error("{0}")]
    CatalogUnavailable(String),
    /// Admission refused the session.
    #[error("{0}")]
    NotAdmitted(Refusal),

    // --- during the session -------------------------------------------------
    /// Policy denied the statement.
    #[error("{}", .0.reason())]
    StatementDenied(Decision),
    #[error("prepared statement \"{0}\" is not known to Warden")]
    UnknownStatement(String),
    #[error("malformed Bind message: {0}")]
    MalformedBind(String),
    #[error(
        "Warden's policy changed since this portal was bound and it now needs a review; bind it again"
    )]
    PolicyChangedNeedsReview,
    /// A fast-path function call Warden refuses (why).
    #[error("{0}")]
    FastPathRefused(String),
    #[error("this statement needs a human review, and Warden cannot open one right now")]
    ReviewUnavailable,
    #[error("review {review_id} denied this statement{}", .comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default())]
    ReviewDenied {
        review_id: String,
        reviewer: String,
        comment: Option<String>,
    },
    #[error("review {review_id} was not decided within {}; the statement did not run", short_duration(*.waited))]
    ReviewTimedOut { review_id: String, waited: Duration },
    #[error("canceling statement held for review: {0}")]
    ReviewWithdrawn(String),
    #[error("COPY TO is not available while masking rules apply to you on this target")]
    CopyOutMasked,
    #[error("Warden could not read the result's column descriptions")]
    UnreadableRowDescription,
    #[error("column \"{0}\" is masked and cannot be sent in binary format")]
    BinaryMaskedColumn(String),
    /// The session's credential lease ended (the text says why).
    #[error("{0}")]
    SessionEnded(String),
    #[error("terminating connection because Warden is shutting down")]
    Terminating,
    /// A client message the relay cannot judge ends the session.
    #[error("{0}")]
    RelayViolation(String),
}

impl PgClientError {
    /// The ErrorResponse fields the client gets.
    pub fn to_wire(&self) -> PgError {
        let message = self.to_string();
        match self {
            PgClientError::AuthFailed => PgError::fatal(sqlstate::INVALID_PASSWORD, message)
                .with_hint("Present an OIDC token or a Warden access key (wdn_…) as the password."),
            PgClientError::TlsRequired => PgError::fatal(sqlstate::INVALID_AUTHORIZATION, message)
                .with_hint("Connect with sslmode=require (or verify-full)."),
            PgClientError::StartupViolation(_) | PgClientError::RelayViolation(_) => {
                PgError::fatal(sqlstate::PROTOCOL_VIOLATION, message)
            }
            PgClientError::UnsupportedVersion(_) | PgClientError::Replication => {
                PgError::fatal(sqlstate::FEATURE_NOT_SUPPORTED, message)
            }
            PgClientError::StartupParameter(_) => {
                PgError::fatal(sqlstate::INSUFFICIENT_PRIVILEGE, message).with_hint(
                    "Session identity and read-only settings are set by Warden's policy.",
                )
            }
            PgClientError::TooManyConnections => {
                PgError::fatal(sqlstate::TOO_MANY_CONNECTIONS, message)
            }
            PgClientError::ShuttingDown | PgClientError::CatalogUnavailable(_) => {
                PgError::fatal(sqlstate::CANNOT_CONNECT_NOW, message)
            }
            PgClientError::NotAdmitted(refusal) => refusal_error(refusal),
            PgClientError::StatementDenied(decision) => PgError::error(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                message,
            )
            .with_detail(format!(
                "Warden policy rule: {}; operation: {}",
                decision.rule_name(),
                decision.operation()
            ))
            .with_hint(
                "Ask an administrator to change the Warden policy if this access is needed.",
            ),
            PgClientError::UnknownStatement(_)
            | PgClientError::PolicyChangedNeedsReview
            | PgClientError::CopyOutMasked
            | PgClientError::BinaryMaskedColumn(_) => {
                let error = PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, message);
                match self {
                    PgClientError::CopyOutMasked => {
                        error.with_hint("Use SELECT: its results are masked.")
                    }
                    PgClientError::BinaryMaskedColumn(_) => {
                        error.with_hint("Request the column in text format, or cast it to text.")
                    }
                    _ => error,
                }
            }
            PgClientError::MalformedBind(_) | PgClientError::UnreadableRowDescription => {
                PgError::error(sqlstate::PROTOCOL_VIOLATION, message)
            }
            PgClientError::FastPathRefused(_) => {
                PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, message)
                    .with_hint("Call the function with a SELECT statement instead.")
            }
            PgClientError::ReviewUnavailable => {
                PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, message)
                    .with_hint("Try again later, or ask an administrator.")
            }
            PgClientError::ReviewDenied { reviewer, .. } => {
                PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, message)
                    .with_detail(format!("reviewer: {reviewer}"))
            }
            PgClientError::ReviewTimedOut { .. } | PgClientError::ReviewWithdrawn(_) => {
                PgError::error(sqlstate::QUERY_CANCELED, message)
            }
            PgClientError::SessionEnded(_) | PgClientError::Terminating => {
                PgError::fatal(sqlstate::ADMIN_SHUTDOWN, message)
            }
        }
    }

    /// The encoded ErrorResponse.
    pub fn encode(&self) -> bytes::BytesMut {
        self.to_wire().encode()
    }
}

/// The FATAL error a client admission refused gets.
fn refusal_error(refusal: &Refusal) -> PgError {
    let message = refusal.to_string();
    match refusal {
        Refusal::UnknownOrForbiddenTarget { target } => PgError::target_refused(target),
        Refusal::NeedsAccessApproval { target } => PgError::fatal(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            message,
        )
        .with_hint(format!(
            "Run: warden access request --target {target} --for 1h --reason \"…\", and connect again once it is approved."
        )),
        Refusal::LimitReached { .. } => PgError::fatal(sqlstate::TOO_MANY_CONNECTIONS, message)
            .with_hint("Try again when one of the target's sessions has ended."),
        Refusal::CredentialFailure { .. } => PgError::fatal(sqlstate::CANNOT_CONNECT, message)
            .with_hint("This is a Warden configuration problem; the Warden log names the secret reference."),
        Refusal::Unavailable { target, failure } => {
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
        Refusal::StoreFailure | Refusal::RecordingUnavailable => {
            PgError::fatal(sqlstate::SYSTEM_ERROR, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_fatal_and_session_errors_are_not() {
        let fatal = [
            PgClientError::AuthFailed,
            PgClientError::TlsRequired,
            PgClientError::TooManyConnections,
            PgClientError::NotAdmitted(Refusal::StoreFailure),
            PgClientError::Terminating,
        ];
        for error in fatal {
            assert_eq!(
                error.to_wire().severity,
                crate::errors::Severity::Fatal,
                "{error}"
            );
        }
        let error = PgClientError::ReviewTimedOut {
            review_id: "r1".into(),
            waited: Duration::from_secs(120),
        };
        let wire = error.to_wire();
        assert_eq!(wire.severity, crate::errors::Severity::Error);
        assert_eq!(wire.code, sqlstate::QUERY_CANCELED);
        assert_eq!(
            wire.message,
            "review r1 was not decided within 2 min; the statement did not run"
        );
    }

    #[test]
    fn unknown_and_forbidden_targets_read_the_same() {
        let wire = PgClientError::NotAdmitted(Refusal::UnknownOrForbiddenTarget {
            target: "orders".into(),
        })
        .to_wire();
        assert_eq!(wire.code, sqlstate::INVALID_AUTHORIZATION);
        assert_eq!(wire.message, "access to target \"orders\" is not permitted");
    }
}
