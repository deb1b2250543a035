//! Why an authentication failed, and the boxed source core's engine errors
//! keep (core does not depend on the engines' own error types).

use crate::engines::StoreError;

/// A boxed error from an engine crate core does not depend on (sqlx, the
/// secret providers, the recorder), kept as the `source` of core's errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why authentication failed. Goes to the log and the audit trail only: the
/// client always gets one generic message. Displays as its [`AuthReason`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AuthError {
    #[from]
    pub reason: AuthReason,
}

/// What failed in authentication: one variant per refusal so the audit trail
/// and tests can tell them apart; the texts are the ones operators search
/// their logs for. Never holds the credential or a signature, and the ids,
/// kids and issuers in it come pre-sanitised (`printable`) from the identity
/// crate.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuthReason {
    // The presented text itself.
    #[error("empty credential")]
    EmptyCredential,
    #[error("credential too long ({len} bytes, limit {limit})")]
    CredentialTooLong { len: usize, limit: usize },
    #[error("credential is neither a Warden access key (wdn_…) nor a JWT")]
    UnrecognisedCredential,

    // Access keys.
    #[error("access keys are disabled")]
    AccessKeysDisabled,
    #[error("malformed access key")]
    MalformedAccessKey,
    #[error("no such access key {id}")]
    UnknownAccessKey { id: String },
    #[error("access key {id}: secret mismatch")]
    AccessKeyMismatch { id: String },
    #[error("access key {id}: mysql_native_password response mismatch")]
    NativePasswordMismatch { id: String },
    #[error("access key {id} ({name}) revoked")]
    AccessKeyRevoked { id: String, name: String },
    #[error("access key {id} ({name}) expired")]
    AccessKeyExpired { id: String, name: String },
    /// The key store failed, so the key could be neither accepted nor refused.
    #[error("access key store unavailable: {0}")]
    KeyStoreUnavailable(#[source] std::sync::Arc<StoreError>),

    // JWTs before verification.
    /// `detail` says which part, e.g. "header has no alg"; `None` when the
    /// verifier only knows the token did not parse.
    #[error("malformed token{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    MalformedToken { detail: Option<String> },
    #[error("the ID token is not a JWT")]
    IdTokenNotJwt,
    #[error("unknown issuer {issuer}")]
    UnknownIssuer { issuer: String },
    #[error("alg {alg} not allowed")]
    AlgorithmNotAllowed { alg: String },
    /// The issuer's key set could not be fetched and none is cached.
    #[error("JWKS of {issuer} unavailable: {reason}")]
    JwksUnavailable { issuer: String, reason: String },

    // Finding the key.
    #[error("unknown kid {kid} after JWKS refresh")]
    UnknownKid { kid: String },
    /// The kid is unknown and the JWKS was re-fetched too recently to try again.
    #[error("unknown kid {kid} (JWKS re-fetched less than {min_refetch:?} ago)")]
    UnknownKidRateLimited {
        kid: String,
        min_refetch: std::time::Duration,
    },
    /// `kind` is e.g. "an EC key", `algorithm` the algorithm's name.
    #[error("key {kid} is {kind}, cannot verify {algorithm}")]
    KeyCannotVerify {
        kid: String,
        kind: &'static str,
        algorithm: String,
    },
    #[error("token has no kid and the JWKS has no key for {algorithm}")]
    NoKeyForAlgorithm { algorithm: String },
    #[error("JWKS key cannot be loaded")]
    UnusableJwk,

    // Verification.
    #[error("signature invalid")]
    BadSignature,
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("issuer mismatch")]
    IssuerMismatch,
    /// `expected` is the audience when the verifier names it.
    #[error("audience mismatch{}", expected.as_ref().map(|a| format!(" (expected {a})")).unwrap_or_default())]
    AudienceMismatch { expected: Option<String> },
    #[error("token has no {claim} claim")]
    MissingClaim { claim: String },
    #[error("malformed {claim} claim")]
    MalformedClaim { claim: String },
    /// Another verifier failure; `what` is a short fixed phrase.
    #[error("token rejected: {what}")]
    Rejected { what: &'static str },

    // Claims Warden maps to an identity.
    #[error("token's sub starts with \"key:\", which Warden reserves for access keys")]
    ReservedSubject,
    #[error("groups claim {claim} holds a non-string entry")]
    GroupsNotStrings { claim: String },
    #[error("groups claim {claim} is neither a list nor a string")]
    GroupsWrongType { claim: String },
}

impl AuthReason {
    /// A malformed token, saying which part.
    pub fn malformed(detail: impl Into<String>) -> Self {
        AuthReason::MalformedToken {
            detail: Some(detail.into()),
        }
    }
}

/// The reason's text, for audit events built from `error.reason`.
impl From<AuthReason> for String {
    fn from(reason: AuthReason) -> String {
        reason.to_string()
    }
}
