//! The recording keys: an ed25519 seed that signs manifests and an
//! XChaCha20-Poly1305 key that encrypts chunks. Both are 32 bytes given as
//! hex or base64 secrets; neither is ever printed.

use crate::error::RecordingError;
use base64::Engine as _;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use ed25519_dalek::{SigningKey, VerifyingKey};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The keys a recorder or reader works with. Cheap to clone.
#[derive(Clone, Default)]
pub struct RecordingKeys {
    signing: Option<Arc<SigningKey>>,
    /// Verifies signatures; derived from the signing seed, or given alone.
    verifying: Option<VerifyingKey>,
    encryption: Option<Arc<XChaCha20Poly1305>>,
}

impl std::fmt::Debug for RecordingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingKeys")
            .field("signing", &self.signing.is_some())
            .field("public_key", &self.public_key_hex())
            .field("encryption", &self.encryption.is_some())
            .finish()
    }
}

impl RecordingKeys {
    /// Parses the configured secrets (`None`: not configured).
    pub fn new(
        signing_seed: Option<&SecretString>,
        encryption_key: Option<&SecretString>,
    ) -> Result<RecordingKeys, RecordingError> {
        let signing = signing_seed
            .map(|seed| parse_key32("signing_key", seed))
            .transpose()?
            .map(|seed| SigningKey::from_bytes(&seed));
        let encryption = encryption_key
            .map(|key| parse_key32("encryption_key", key))
            .transpose()?
            .map(|key| XChaCha20Poly1305::new(key.as_ref().into()));
        Ok(RecordingKeys {
            verifying: signing.as_ref().map(SigningKey::verifying_key),
            signing: signing.map(Arc::new),
            encryption: encryption.map(Arc::new),
        })
    }

    /// Replaces the key signatures are checked with (e.g. a public key
    /// given on its own to an auditor).
    pub fn with_verifying_key(mut self, key: VerifyingKey) -> RecordingKeys {
        self.verifying = Some(key);
        self
    }

    /// Lowercase hex of the ed25519 public key, when one is known.
    pub fn public_key_hex(&self) -> Option<String> {
        self.verifying.map(|k| hex::encode(k.as_bytes()))
    }

    pub fn has_encryption(&self) -> bool {
        self.encryption.is_some()
    }

    pub(crate) fn signing(&self) -> Option<&SigningKey> {
        self.signing.as_deref()
    }

    pub(crate) fn verifying(&self) -> Option<&VerifyingKey> {
        self.verifying.as_ref()
    }

    pub(crate) fn cipher(&self) -> Option<&XChaCha20Poly1305> {
        self.encryption.as_deref()
    }
}

/// 32 bytes from 64 hex digits or base64 (standard or URL-safe, padded or
/// not). Errors never contain the secret.
pub(crate) fn parse_key32(
    which: &'static str,
    secret: &SecretString,
) -> Result<Zeroizing<[u8; 32]>, RecordingError> {
    let text = secret.expose_secret().trim();
    let bad = |message: &str| RecordingError::BadKey {
        which,
        message: message.to_string(),
    };
    let bytes: Zeroizing<Vec<u8>> =
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(hex::decode(text).map_err(|_| bad("not valid hex"))?)
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let decoded = engines.iter().find_map(|engine| engine.decode(text).ok());
            Zeroizing::new(decoded.ok_or_else(|| {
                bad("must be 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)")
            })?)
        };
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        bad(&format!(
            "decodes to {} bytes; it must be exactly 32 (e.g. `openssl rand -hex 32`)",
            bytes.len()
        ))
    })?;
    Ok(Zeroizing::new(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    #[test]
    fn hex_and_base64_keys() {
        let hex_key = "00".repeat(31) + "01";
        let a = parse_key32("k", &secret(&hex_key)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(*a);
        let b = parse_key32("k", &secret(&b64)).unwrap();
        assert_eq!(*a, *b);
        assert_eq!(a[31], 1);
    }

    #[test]
    fn bad_keys_are_errors_without_the_secret() {
        for bad in ["", "abc", "zz".repeat(32).as_str(), &"00".repeat(31)] {
            let err = parse_key32("signing_key", &secret(bad)).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("signing_key"), "{text}");
            if bad.len() > 4 {
                assert!(!text.contains(bad), "{text}");
            }
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let seed = "11".repeat(32);
        let keys = RecordingKeys::new(Some(&secret(&seed)), Some(&secret(&seed))).unwrap();
        let text = format!("{keys:?}");
        assert!(!text.contains(&seed));
        assert!(text.contains("public_key"));
    }
}
