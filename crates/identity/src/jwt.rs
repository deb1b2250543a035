//! Looking at a JWT before it is verified: its shape, its header and its
//! issuer. Nothing read here is trusted; it only selects which issuer and
//! which key will verify the token, and gives early, precise refusals.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::str::FromStr;
use warden_core::engines::{AuthError, AuthReason};

/// True for `header.payload.signature` made of base64url characters (the
/// signature may be empty, as in `alg: none` tokens, which are refused later
/// with a clear reason).
pub fn looks_like_jwt(text: &str) -> bool {
    let mut parts = text.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !header.is_empty()
        && !payload.is_empty()
        && [header, payload, signature]
            .iter()
            .all(|part| part.bytes().all(is_base64url))
}

fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// The header fields that matter for choosing a key. `jku`, `x5u` and `jwk`
/// are deliberately not read: keys only ever come from the configured JWKS.
#[derive(Debug)]
pub struct UnverifiedHeader {
    pub alg: String,
    pub kid: Option<String>,
}

/// Decodes the header of a token that [`looks_like_jwt`].
pub fn peek_header(token: &str) -> Result<UnverifiedHeader, AuthError> {
    let header = decode_segment(token, 0, "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        Some(_) => return Err(AuthReason::malformed("alg is not a string").into()),
        None => return Err(AuthReason::malformed("header has no alg").into()),
    };
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthReason::malformed("kid is not a string").into()),
    };
    Ok(UnverifiedHeader { alg, kid })
}

/// The `iss` claim of an unverified token, used only to pick the issuer config.
pub fn peek_issuer(token: &str) -> Result<String, AuthError> {
    let claims = decode_segment(token, 1, "payload")?;
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        Some(_) => Err(AuthReason::malformed("iss is not a string").into()),
        None => Err(AuthReason::MissingClaim {
            claim: "iss".into(),
        }
        .into()),
    }
}

fn decode_segment(token: &str, index: usize, what: &str) -> Result<Map<String, Value>, AuthError> {
    let segment = token
        .split('.')
        .nth(index)
        .ok_or_else(|| AuthReason::malformed(format!("no {what}")))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthReason::malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthReason::malformed(format!("{what} is not a JSON object")).into())
}

/// A configured algorithm name that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AlgorithmError {
    /// `none` or a symmetric (HS*) algorithm.
    #[error("algorithm {0} is never accepted; use asymmetric ones such as RS256, ES256, EdDSA")]
    Refused(String),
    #[error(
        "unknown algorithm {0}; supported: RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA"
    )]
    Unknown(String),
}

/// Parses a configured algorithm name. Symmetric algorithms (HS*) would let
/// anyone holding the public key mint tokens, and `none` is no signature at
/// all: both are refused here, at start-up.
pub fn parse_allowed_algorithm(name: &str) -> Result<Algorithm, AlgorithmError> {
    if name.eq_ignore_ascii_case("none") || name.to_ascii_uppercase().starts_with("HS") {
        return Err(AlgorithmError::Refused(name.to_string()));
    }
    let algorithm =
        Algorithm::from_str(name).map_err(|_| AlgorithmError::Unknown(name.to_string()))?;
    Ok(algorithm)
}

/// A header `alg` cleaned for a log line (it is attacker-controlled).
pub fn printable(text: &str) -> String {
    const LIMIT: usize = 64;
    let mut out: String = text
        .chars()
        .take(LIMIT)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > LIMIT {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(value: &str) -> String {
        URL_SAFE_NO_PAD.encode(value)
    }

    #[test]
    fn recognises_jwt_shape() {
        assert!(looks_like_jwt("aGk.aGk.c2ln"));
        assert!(looks_like_jwt("aGk.aGk."));
        assert!(!looks_like_jwt("aGk.aGk"));
        assert!(!looks_like_jwt("aGk.aGk.c2ln.eA"));
        assert!(!looks_like_jwt(".aGk.c2ln"));
        assert!(!looks_like_jwt("aGk..c2ln"));
        assert!(!looks_like_jwt("a+b.aGk.c2ln"));
        assert!(!looks_like_jwt("aGk=.aGk.c2ln"));
        assert!(!looks_like_jwt("hunter2"));
    }

    #[test]
    fn peeks_header_and_issuer() {
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"RS256","kid":"k1","jku":"http://evil"}"#),
            b64(r#"{"iss":"https://idp","sub":"a"}"#)
        );
        let header = peek_header(&token).unwrap();
        assert_eq!(header.alg, "RS256");
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(peek_issuer(&token).unwrap(), "https://idp");
    }

    #[test]
    fn precise_reasons_for_malformed_parts() {
        let no_alg = format!("{}.{}.", b64(r#"{"kid":"k"}"#), b64("{}"));
        assert!(
            peek_header(&no_alg)
                .unwrap_err()
                .to_string()
                .contains("no alg")
        );
        let bad_json = format!("{}.{}.", b64("[1]"), b64("{}"));
        assert!(
            peek_header(&bad_json)
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
        let no_iss = format!("{}.{}.", b64(r#"{"alg":"RS256"}"#), b64(r#"{"sub":"a"}"#));
        assert_eq!(
            peek_issuer(&no_iss).unwrap_err().to_string(),
            "token has no iss claim"
        );
        let numeric_kid = format!("{}.{}.", b64(r#"{"alg":"RS256","kid":3}"#), b64("{}"));
        assert!(
            peek_header(&numeric_kid)
                .unwrap_err()
                .to_string()
                .contains("kid")
        );
    }

    #[test]
    fn refuses_symmetric_and_none_algorithms() {
        for name in ["HS256", "HS384", "HS512", "hs256", "none", "None"] {
            assert!(parse_allowed_algorithm(name).is_err(), "{name}");
        }
        assert!(parse_allowed_algorithm("RS257").is_err());
        assert_eq!(parse_allowed_algorithm("ES256").unwrap(), Algorithm::ES256);
        assert_eq!(parse_allowed_algorithm("EdDSA").unwrap(), Algorithm::EdDSA);
    }

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(printable("a\nb"), "a\\nb");
        assert!(printable(&"x".repeat(100)).ends_with('…'));
    }
}
