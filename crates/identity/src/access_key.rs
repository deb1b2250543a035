//! Warden access keys: `wdn_{id}_{secret}`.
//!
//! The id (16 lowercase hex characters) is public and names the stored record;
//! the secret (32 bytes from the OS RNG, lowercase hex) never leaves the
//! caller. Only hashes of the whole key text are stored, so a leaked store
//! does not leak usable keys.

use rand::TryRngCore;
use secrecy::SecretString;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use warden_core::engines::{AccessKeyRecord, AccessKeyStore, AuthError, AuthReason};
use warden_core::{Identity, IdentityKind};

/// Every access key starts with this.
pub const ACCESS_KEY_PREFIX: &str = "wdn_";
/// Length of the public id part, in hex characters.
pub const KEY_ID_LEN: usize = 16;
/// Length of the secret part, in hex characters (32 bytes).
pub const KEY_SECRET_LEN: usize = 64;

/// Makes a new key valid for `ttl` from now. Returns the key text (show it
/// once, never store it) and the record to store.
pub fn generate_access_key(
    name: &str,
    groups: &[String],
    ttl: Duration,
) -> (SecretString, AccessKeyRecord) {
    let mut id = [0u8; KEY_ID_LEN / 2];
    let mut secret = [0u8; KEY_SECRET_LEN / 2];
    // An OS RNG failure leaves no safe way to make a key; `unwrap_err` turns
    // the fallible OsRng into one that panics on such a failure.
    let mut rng = rand::rngs::OsRng.unwrap_err();
    rand::RngCore::fill_bytes(&mut rng, &mut id);
    rand::RngCore::fill_bytes(&mut rng, &mut secret);
    let id = hex::encode(id);
    let text = format!("{ACCESS_KEY_PREFIX}{id}_{}", hex::encode(secret));
    let created_at = OffsetDateTime::now_utc();
    let record = AccessKeyRecord {
        id,
        name: name.to_string(),
        groups: groups.to_vec(),
        key_sha256: key_sha256_hex(&text),
        exchange_verifiers: [(
            crate::mysql_native::MECHANISM.to_string(),
            mysql_native_hash_hex(&text),
        )]
        .into(),
        created_at,
        expires_at: expiry(created_at, ttl),
        revoked_at: None,
    };
    (SecretString::from(text), record)
}

/// `created_at + ttl`, saturating at the largest representable time.
fn expiry(created_at: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    time::Duration::try_from(ttl)
        .ok()
        .and_then(|ttl| created_at.checked_add(ttl))
        .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc())
}

/// Lowercase hex SHA-256 of the whole key text.
pub fn key_sha256_hex(key_text: &str) -> String {
    hex::encode(Sha256::digest(key_text.as_bytes()))
}

/// Lowercase hex SHA1(SHA1(key text)): what `mysql_native_password` checks against.
pub fn mysql_native_hash_hex(key_text: &str) -> String {
    hex::encode(Sha1::digest(Sha1::digest(key_text.as_bytes())))
}

/// The id of a well-formed access key, or why it is not one. Never echoes the key.
pub fn parse_access_key(text: &str) -> Result<&str, AuthError> {
    let malformed = || AuthError::from(AuthReason::MalformedAccessKey);
    let rest = text.strip_prefix(ACCESS_KEY_PREFIX).ok_or_else(malformed)?;
    let (id, secret) = rest.split_once('_').ok_or_else(malformed)?;
    if id.len() != KEY_ID_LEN || !is_lower_hex(id) {
        return Err(malformed());
    }
    if secret.len() != KEY_SECRET_LEN || !is_lower_hex(secret) {
        return Err(malformed());
    }
    Ok(id)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a presented key against the store: known id, matching hash (in
/// constant time), not revoked, not expired.
pub async fn verify_access_key(
    store: &dyn AccessKeyStore,
    key_text: &str,
) -> Result<AccessKeyRecord, AuthError> {
    let id = parse_access_key(key_text)?;
    let record = find_record(store, id).await?;
    let presented = key_sha256_hex(key_text);
    if !bool::from(presented.as_bytes().ct_eq(record.key_sha256.as_bytes())) {
        return Err(AuthReason::AccessKeyMismatch { id: id.to_string() }.into());
    }
    check_usable(&record, OffsetDateTime::now_utc())?;
    Ok(record)
}

/// Looks a key up by id, mapping "absent" and store failures to reasons.
pub(crate) async fn find_record(
    store: &dyn AccessKeyStore,
    id: &str,
) -> Result<AccessKeyRecord, AuthError> {
    match store.find_key(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(AuthReason::UnknownAccessKey { id: id.to_string() }.into()),
        Err(error) => Err(AuthReason::KeyStoreUnavailable(std::sync::Arc::new(error)).into()),
    }
}

/// A key whose secret checked out may still be revoked or expired.
pub(crate) fn check_usable(record: &AccessKeyRecord, now: OffsetDateTime) -> Result<(), AuthError> {
    if record.revoked_at.is_some() {
        return Err(AuthReason::AccessKeyRevoked {
            id: record.id.clone(),
            name: record.name.clone(),
        }
        .into());
    }
    if record.expires_at <= now {
        return Err(AuthReason::AccessKeyExpired {
            id: record.id.clone(),
            name: record.name.clone(),
        }
        .into());
    }
    Ok(())
}

/// The identity an access key stands for.
pub fn access_key_identity(record: &AccessKeyRecord) -> Identity {
    Identity {
        subject: format!("key:{}", record.name),
        kind: IdentityKind::AccessKey {
            key_id: record.id.clone(),
            name: record.name.clone(),
        },
        groups: record.groups.clone(),
        email: None,
        claims: serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_key_has_the_documented_shape() {
        let (key, record) =
            generate_access_key("ci", &["agents".to_string()], Duration::from_secs(60));
        let text = key.expose_secret();
        assert!(text.starts_with("wdn_"));
        assert_eq!(text.len(), 4 + KEY_ID_LEN + 1 + KEY_SECRET_LEN);
        assert_eq!(parse_access_key(text).unwrap(), record.id);
        assert_eq!(record.key_sha256, key_sha256_hex(text));
        assert_eq!(record.key_sha256.len(), 64);
        assert_eq!(
            record
                .exchange_verifier(crate::mysql_native::MECHANISM)
                .map(str::len),
            Some(40)
        );
        assert_eq!(
            record.expires_at - record.created_at,
            time::Duration::seconds(60)
        );
        assert_eq!(record.groups, ["agents"]);
        assert!(record.revoked_at.is_none());
        // Two keys never share an id or a secret.
        let (other, other_record) = generate_access_key("ci", &[], Duration::from_secs(60));
        assert_ne!(other_record.id, record.id);
        assert_ne!(other.expose_secret(), text);
    }

    #[test]
    fn huge_ttl_saturates_instead_of_panicking() {
        let (_, record) = generate_access_key("k", &[], Duration::MAX);
        assert!(record.expires_at > record.created_at);
    }

    #[test]
    fn rejects_malformed_keys() {
        let good = format!("wdn_{}_{}", "0123456789abcdef", "a".repeat(64));
        assert!(parse_access_key(&good).is_ok());
        for bad in [
            "wdn_".to_string(),
            "wdn_0123456789abcdef".to_string(),
            format!("wdn_0123456789ABCDEF_{}", "a".repeat(64)),
            format!("wdn_0123456789abcde_{}", "a".repeat(64)),
            format!("wdn_0123456789abcdef_{}", "a".repeat(63)),
            format!("wdn_0123456789abcdef_{}_", "a".repeat(64)),
            format!("wdn_0123456789abcdef_{}", "g".repeat(64)),
            format!("xdn_0123456789abcdef_{}", "a".repeat(64)),
        ] {
            let error = parse_access_key(&bad).unwrap_err();
            assert!(
                matches!(error.reason, AuthReason::MalformedAccessKey),
                "{bad}"
            );
            assert_eq!(error.to_string(), "malformed access key", "{bad}");
        }
    }

    #[test]
    fn mysql_hash_matches_mysql_password_function() {
        // MySQL: SELECT PASSWORD('password') = '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'
        assert_eq!(
            mysql_native_hash_hex("password"),
            "2470c0c06dee42fd1618bb99005adca2ec9d1e19"
        );
    }

    #[test]
    fn revoked_and_expired_records_are_unusable() {
        let (_, mut record) = generate_access_key("k", &[], Duration::from_secs(60));
        let now = OffsetDateTime::now_utc();
        assert!(check_usable(&record, now).is_ok());
        let later = now + time::Duration::seconds(120);
        assert!(
            check_usable(&record, later)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        record.revoked_at = Some(now);
        assert!(
            check_usable(&record, now)
                .unwrap_err()
                .to_string()
                .contains("revoked")
        );
    }

    #[test]
    fn identity_names_the_key() {
        let (_, record) =
            generate_access_key("deploy-bot", &["ops".into()], Duration::from_secs(1));
        let identity = access_key_identity(&record);
        assert_eq!(identity.subject, "key:deploy-bot");
        assert_eq!(identity.groups, ["ops"]);
        assert!(identity.claims.is_empty());
        assert_eq!(
            identity.kind,
            IdentityKind::AccessKey {
                key_id: record.id.clone(),
                name: "deploy-bot".into()
            }
        );
    }
}
