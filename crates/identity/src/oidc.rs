//! Verifying an OIDC JWT for one configured issuer and turning its claims
//! into an [`Identity`].

use crate::jwks::{JwksSource, KeySet, KidLookup};
use crate::jwt::{UnverifiedHeader, printable};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use warden_core::config::OidcConfig;
use warden_core::engines::{AuthError, AuthReason};
use warden_core::{Identity, IdentityKind};

/// One `[[identity.oidc]]` issuer, ready to verify its tokens.
pub struct IssuerVerifier {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    jwks: JwksSource,
}

impl IssuerVerifier {
    pub fn new(config: OidcConfig, algorithms: Vec<Algorithm>, jwks: JwksSource) -> Self {
        IssuerVerifier {
            config,
            algorithms,
            jwks,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Fetches the JWKS now (for a warm-up at start); failures are logged by the source.
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        self.jwks.keys().await.map(|_| ())
    }

    /// Verifies `token` (whose unverified `iss` named this issuer).
    pub async fn verify(
        &self,
        token: &str,
        header: &UnverifiedHeader,
    ) -> Result<Identity, AuthError> {
        let audience = self.config.audience.clone();
        self.verify_for_audience(token, header, &audience).await
    }

    /// [`verify`](Self::verify) with another audience: the reviewer UI's ID
    /// tokens are addressed to its OIDC client id, not to the gateway.
    pub async fn verify_for_audience(
        &self,
        token: &str,
        header: &UnverifiedHeader,
        audience: &str,
    ) -> Result<Identity, AuthError> {
        let algorithm = self.allowed_algorithm(&header.alg)?;
        let keys = self.jwks.keys().await?;
        let claims = match &header.kid {
            Some(kid) => {
                self.verify_with_kid(token, algorithm, kid, keys, audience)
                    .await?
            }
            None => self.verify_without_kid(token, algorithm, &keys, audience)?,
        };
        self.identity_from(claims, audience)
    }

    /// The token's `alg`, if the configuration allows it. Runs before any
    /// key is looked at, so HS*/none never reach a verifier.
    fn allowed_algorithm(&self, alg: &str) -> Result<Algorithm, AuthError> {
        let refuse = || {
            AuthError::from(AuthReason::AlgorithmNotAllowed {
                alg: printable(alg),
            })
        };
        if alg.eq_ignore_ascii_case("none") || alg.to_ascii_uppercase().starts_with("HS") {
            return Err(refuse());
        }
        let algorithm: Algorithm = alg.parse().map_err(|_| refuse())?;
        if self.algorithms.contains(&algorithm) {
            Ok(algorithm)
        } else {
            Err(refuse())
        }
    }

    async fn verify_with_kid(
        &self,
        token: &str,
        algorithm: Algorithm,
        kid: &str,
        keys: KeySet,
        audience: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let keys = if has_kid(&keys, kid) {
            keys
        } else {
            match self.jwks.refresh_for_unknown_kid(kid, &keys).await? {
                KidLookup::Refreshed(fresh) if has_kid(&fresh, kid) => fresh,
                KidLookup::Refreshed(_) => {
                    return Err(AuthReason::UnknownKid {
                        kid: printable(kid),
                    }
                    .into());
                }
                KidLookup::RateLimited => {
                    return Err(AuthReason::UnknownKidRateLimited {
                        kid: printable(kid),
                        min_refetch: self.config.jwks_min_refetch,
                    }
                    .into());
                }
            }
        };
        let named: Vec<&Jwk> = keys
            .iter()
            .filter(|key| key.common.key_id.as_deref() == Some(kid))
            .collect();
        let usable: Vec<&Jwk> = named
            .iter()
            .copied()
            .filter(|key| key_fits(key, algorithm))
            .collect();
        if usable.is_empty() {
            let kind = named.first().map_or("unusable", |key| key_kind(key));
            return Err(AuthReason::KeyCannotVerify {
                kid: printable(kid),
                kind,
                algorithm: format!("{algorithm:?}"),
            }
            .into());
        }
        self.try_keys(token, algorithm, &usable, audience)
    }

    fn verify_without_kid(
        &self,
        token: &str,
        algorithm: Algorithm,
        keys: &KeySet,
        audience: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let usable: Vec<&Jwk> = keys.iter().filter(|key| key_fits(key, algorithm)).collect();
        if usable.is_empty() {
            return Err(AuthReason::NoKeyForAlgorithm {
                algorithm: format!("{algorithm:?}"),
            }
            .into());
        }
        self.try_keys(token, algorithm, &usable, audience)
    }

    /// Verifies against each candidate key until one's signature matches.
    /// A claim failure after a matching signature is final.
    fn try_keys(
        &self,
        token: &str,
        algorithm: Algorithm,
        candidates: &[&Jwk],
        audience: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let validation = self.validation(algorithm, audience);
        let mut last = AuthReason::BadSignature;
        for key in candidates {
            let decoding = match DecodingKey::from_jwk(key) {
                Ok(decoding) => decoding,
                Err(_) => {
                    last = AuthReason::UnusableJwk;
                    continue;
                }
            };
            match jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) if signature_problem(error.kind()) => {
                    last = AuthReason::BadSignature;
                }
                Err(error) => return Err(explain(error.kind(), audience)),
            }
        }
        Err(last.into())
    }

    fn validation(&self, algorithm: Algorithm, audience: &str) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation
    }

    /// Maps verified claims to an identity, re-checking what policy relies on.
    fn identity_from(
        &self,
        claims: Map<String, Value>,
        audience: &str,
    ) -> Result<Identity, AuthError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(AuthReason::IssuerMismatch.into());
        }
        if !audience_contains(claims.get("aud"), audience) {
            return Err(AuthReason::AudienceMismatch { expected: None }.into());
        }
        let subject = match claims.get("sub") {
            // `key:` names access keys in audit trails and approver lists.
            Some(Value::String(sub)) if sub.starts_with("key:") => {
                return Err(AuthReason::ReservedSubject.into());
            }
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => {
                return Err(AuthReason::MissingClaim {
                    claim: "sub".into(),
                }
                .into());
            }
        };
        let groups = groups_from(&claims, &self.config.groups_claim)?;
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Identity {
            subject,
            kind: IdentityKind::Oidc {
                issuer: self.config.issuer.clone(),
            },
            groups,
            email,
            claims,
        })
    }
}

fn has_kid(keys: &KeySet, kid: &str) -> bool {
    keys.iter()
        .any(|key| key.common.key_id.as_deref() == Some(kid))
}

/// Whether a JWK may verify `algorithm`: the key type and curve must match,
/// a declared `alg` must be the same, and a declared `use` must be `sig`.
pub fn key_fits(key: &Jwk, algorithm: Algorithm) -> bool {
    if matches!(
        key.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return false;
    }
    if let Some(declared) = key.common.key_algorithm
        && declared != key_algorithm_of(algorithm)
    {
        return false;
    }
    match (&key.algorithm, algorithm) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// The JWK `alg` value naming a signature algorithm.
fn key_algorithm_of(algorithm: Algorithm) -> KeyAlgorithm {
    match algorithm {
        Algorithm::HS256 => KeyAlgorithm::HS256,
        Algorithm::HS384 => KeyAlgorithm::HS384,
        Algorithm::HS512 => KeyAlgorithm::HS512,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::ES384 => KeyAlgorithm::ES384,
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::RS384 => KeyAlgorithm::RS384,
        Algorithm::RS512 => KeyAlgorithm::RS512,
        Algorithm::PS256 => KeyAlgorithm::PS256,
        Algorithm::PS384 => KeyAlgorithm::PS384,
        Algorithm::PS512 => KeyAlgorithm::PS512,
        Algorithm::EdDSA => KeyAlgorithm::EdDSA,
        _ => KeyAlgorithm::UNKNOWN_ALGORITHM,
    }
}

/// A JWK's type, for error reasons.
fn key_kind(key: &Jwk) -> &'static str {
    match &key.algorithm {
        AlgorithmParameters::RSA(_) => "an RSA key",
        AlgorithmParameters::EllipticCurve(_) => "an EC key",
        AlgorithmParameters::OctetKeyPair(_) => "an OKP key",
        AlgorithmParameters::OctetKey(_) => "a symmetric key",
        _ => "an unsupported key",
    }
}

/// Errors that mean "this key did not sign this token".
fn signature_problem(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
    )
}

/// A reason for a failure after the signature checked out (or a malformed
/// token). Never includes claim values or the token.
fn explain(kind: &ErrorKind, audience: &str) -> AuthError {
    AuthError::from(match kind {
        ErrorKind::ExpiredSignature => AuthReason::Expired,
        ErrorKind::ImmatureSignature => AuthReason::NotYetValid,
        ErrorKind::InvalidAudience => AuthReason::AudienceMismatch {
            expected: Some(audience.to_string()),
        },
        ErrorKind::InvalidIssuer => AuthReason::IssuerMismatch,
        ErrorKind::MissingRequiredClaim(claim) => AuthReason::MissingClaim {
            claim: claim.clone(),
        },
        ErrorKind::InvalidClaimFormat(claim) => AuthReason::MalformedClaim {
            claim: claim.clone(),
        },
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthReason::AlgorithmMismatch,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthReason::MalformedToken { detail: None },
        other => AuthReason::Rejected {
            what: short_kind(other),
        },
    })
}

fn short_kind(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::UnsupportedAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "unsupported algorithm"
        }
        ErrorKind::InvalidSubject => "subject mismatch",
        _ => "verification error",
    }
}

/// `aud` is a string or an array of strings; one of them must be `audience`.
fn audience_contains(aud: Option<&Value>, audience: &str) -> bool {
    match aud {
        Some(Value::String(single)) => single == audience,
        Some(Value::Array(many)) => many.iter().any(|v| v.as_str() == Some(audience)),
        _ => false,
    }
}

/// Groups from `claim`: a list of strings, or one space-separated string.
/// A missing (or null) claim means no groups. A dotted name such as
/// `realm_access.roles` walks nested objects when no top-level claim has that name.
pub fn groups_from(claims: &Map<String, Value>, claim: &str) -> Result<Vec<String>, AuthError> {
    let value = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.get(part))
    });
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(text.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| {
                    AuthError::from(AuthReason::GroupsNotStrings {
                        claim: claim.to_string(),
                    })
                })
            })
            .collect(),
        Some(_) => Err(AuthReason::GroupsWrongType {
            claim: claim.to_string(),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn groups_from_list_string_missing_and_nested() {
        let c = claims(json!({"groups": ["a", "b"], "roles": "x  y z", "nested": {"r": ["n"]}}));
        assert_eq!(groups_from(&c, "groups").unwrap(), ["a", "b"]);
        assert_eq!(groups_from(&c, "roles").unwrap(), ["x", "y", "z"]);
        assert!(groups_from(&c, "absent").unwrap().is_empty());
        assert_eq!(groups_from(&c, "nested.r").unwrap(), ["n"]);
        let bad = claims(json!({"groups": 7, "mixed": ["a", 1]}));
        assert!(groups_from(&bad, "groups").is_err());
        assert!(groups_from(&bad, "mixed").is_err());
    }

    #[test]
    fn audience_string_or_array() {
        assert!(audience_contains(Some(&json!("warden")), "warden"));
        assert!(audience_contains(Some(&json!(["x", "warden"])), "warden"));
        assert!(!audience_contains(Some(&json!(["x"])), "warden"));
        assert!(!audience_contains(Some(&json!(5)), "warden"));
        assert!(!audience_contains(None, "warden"));
    }

    #[test]
    fn key_type_must_match_algorithm() {
        let rsa: Jwk =
            serde_json::from_value(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})).unwrap();
        let ec: Jwk =
            serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}))
                .unwrap();
        let ed: Jwk =
            serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"})).unwrap();
        let enc: Jwk =
            serde_json::from_value(json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}))
                .unwrap();
        let declared: Jwk =
            serde_json::from_value(json!({"kty": "RSA", "alg": "RS512", "n": "AQAB", "e": "AQAB"}))
                .unwrap();
        assert!(key_fits(&rsa, Algorithm::RS256));
        assert!(!key_fits(&rsa, Algorithm::ES256));
        assert!(!key_fits(&rsa, Algorithm::EdDSA));
        assert!(key_fits(&ec, Algorithm::ES256));
        assert!(!key_fits(&ec, Algorithm::ES384));
        assert!(!key_fits(&ec, Algorithm::RS256));
        assert!(key_fits(&ed, Algorithm::EdDSA));
        assert!(!key_fits(&ed, Algorithm::ES256));
        assert!(!key_fits(&enc, Algorithm::RS256));
        assert!(!key_fits(&declared, Algorithm::RS256));
        assert!(key_fits(&declared, Algorithm::RS512));
    }
}
