//! Signed cookies: the reviewer's login and the OIDC login-in-progress live
//! in the browser, HMAC-SHA256-signed with the `[web] session_key`, so any
//! node sharing the key accepts them and nothing is kept server-side.
//!
//! A value is `base64url(json).base64url(mac)`; the MAC also covers the
//! cookie's name, so one kind of cookie cannot be replayed as another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Browsers drop cookies over 4096 bytes; stay clear of that.
pub const MAX_COOKIE_VALUE: usize = 3800;

/// The key cookies are signed with.
#[derive(Clone)]
pub struct CookieKey([u8; 32]);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(…)")
    }
}

impl CookieKey {
    /// A key derived from configured secret text (any length).
    pub fn from_secret(secret: &str) -> CookieKey {
        let mut hasher = Sha256::new();
        hasher.update(b"warden-web-cookie-key\0");
        hasher.update(secret.as_bytes());
        CookieKey(hasher.finalize().into())
    }

    /// A key of this process only: logins end when it stops.
    pub fn random() -> CookieKey {
        CookieKey(rand::random())
    }

    fn mac(&self, name: &str, payload: &str) -> HmacSha256 {
        // Invariant, not input: HMAC accepts keys of any length (RFC 2104
        // hashes long keys and pads short ones), so `new_from_slice` has no
        // error case for `Hmac<Sha256>`; the key is ours, never a client's.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(name.as_bytes());
        mac.update(b"\0");
        mac.update(payload.as_bytes());
        mac
    }

    /// Serializes and signs `value` for the cookie `name`; `None` when it
    /// would be too large for a browser to keep.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Option<String> {
        let json = serde_json::to_vec(value).ok()?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = URL_SAFE_NO_PAD.encode(self.mac(name, &payload).finalize().into_bytes());
        let sealed = format!("{payload}.{tag}");
        (sealed.len() <= MAX_COOKIE_VALUE).then_some(sealed)
    }

    /// The value of a cookie sealed by [`seal`](Self::seal) under the same
    /// name and key; `None` for anything forged, altered or malformed.
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        if sealed.len() > MAX_COOKIE_VALUE {
            return None;
        }
        let (payload, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(name, payload).verify_slice(&tag).ok()?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// A random token (256 bits) in URL-safe base64: CSRF tokens, OIDC `state`,
/// `nonce` and PKCE verifiers.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn read_cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Payload {
        who: String,
    }

    fn payload() -> Payload {
        Payload { who: "dana".into() }
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_name_only() {
        let key = CookieKey::from_secret("s3cret");
        let sealed = key.seal("session", &payload()).unwrap();
        assert_eq!(key.open::<Payload>("session", &sealed), Some(payload()));
        assert_eq!(key.open::<Payload>("login", &sealed), None);
        assert_eq!(
            CookieKey::from_secret("other").open::<Payload>("session", &sealed),
            None
        );
    }

    #[test]
    fn an_altered_value_does_not_open() {
        let key = CookieKey::random();
        let sealed = key.seal("session", &payload()).unwrap();
        let (body, tag) = sealed.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"who":"admin"}"#);
        assert_eq!(
            key.open::<Payload>("session", &format!("{forged}.{tag}")),
            None
        );
        assert_eq!(key.open::<Payload>("session", body), None);
        assert_eq!(key.open::<Payload>("session", ""), None);
        assert_eq!(key.open::<Payload>("session", "..."), None);
    }

    #[test]
    fn oversized_values_are_refused() {
        let key = CookieKey::random();
        let big = Payload {
            who: "x".repeat(MAX_COOKIE_VALUE),
        };
        assert_eq!(key.seal("session", &big), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=1; __Host-warden_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(read_cookie(&headers, "__Host-warden_session"), Some("xyz"));
        assert_eq!(read_cookie(&headers, "warden_session"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert_ne!(random_token(), random_token());
    }
}
