//! The manifest sealing a session: every chunk's size and SHA-256, the
//! chain head, the event count and how the session ended, signed with
//! ed25519 when a signing key is configured.
//!
//! `manifest.json` is `{"manifest":{…},"signature":{…}|null}`; the signature
//! covers the exact bytes of the `manifest` value as stored, so verifying
//! never depends on re-serializing JSON.

use crate::keys::RecordingKeys;
use ed25519_dalek::{Signature, Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

pub const MANIFEST_NAME: &str = "manifest.json";
pub(crate) const SIGNATURE_ALG: &str = "ed25519";

/// Why a manifest cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("bad manifest file: {0}")]
    BadFile(#[source] serde_json::Error),
    #[error("bad manifest: {0}")]
    Bad(#[source] serde_json::Error),
    #[error(
        "manifest format {format:?} v{v} is not supported (this Warden reads warden-recording v1)"
    )]
    Format { format: String, v: u64 },
}

/// One sealed chunk, as listed in the manifest (and the spool's ledger).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub index: u32,
    pub name: String,
    /// Bytes of the chunk file.
    pub size: u64,
    /// Lowercase hex SHA-256 of the chunk file.
    pub sha256: String,
    pub events: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `warden-recording`.
    pub format: String,
    /// 1.
    pub v: u64,
    pub session_id: String,
    pub target: String,
    pub protocol: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the manifest was sealed.
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
    /// The session did not end normally: Warden was killed (sealed at the
    /// next start-up) or the relay dropped the recording.
    pub interrupted: bool,
    pub end_reason: String,
    pub events: u64,
    pub encrypted: bool,
    pub chunks: Vec<ChunkEntry>,
    /// SHA-256 of the last chunk (the genesis hash when there is none).
    pub chain_head: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestSignature {
    /// `ed25519`.
    pub alg: String,
    /// Hex of the 32-byte public key that signed (informational: verifiers
    /// use the key they trust, not this one).
    pub public_key: String,
    /// Hex of the 64-byte signature over the `manifest` value's bytes.
    pub value: String,
}

#[derive(Serialize)]
struct FileOut<'a> {
    manifest: &'a RawValue,
    signature: Option<ManifestSignature>,
}

#[derive(Deserialize)]
struct FileIn {
    manifest: Box<RawValue>,
    signature: Option<ManifestSignature>,
}

/// A manifest as read: the parsed value plus the exact bytes signed.
#[derive(Clone, Debug)]
pub struct SignedManifest {
    pub manifest: Manifest,
    pub signature: Option<ManifestSignature>,
    signed_bytes: String,
}

/// What checking a manifest's signature found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum SignatureCheck {
    /// Signed and the signature verifies with the configured key.
    Valid,
    /// Signed, but it does not verify with the configured key (or is
    /// malformed): the manifest was altered or signed by another key.
    Invalid(String),
    /// Not signed although a key is configured.
    Missing,
    /// Signed; no key is configured to check it with.
    NotChecked,
    /// Not signed and no key configured.
    Unsigned,
}

impl SignatureCheck {
    pub fn is_failure(&self) -> bool {
        matches!(self, SignatureCheck::Invalid(_) | SignatureCheck::Missing)
    }
}

/// The bytes of `manifest.json` for `manifest`, signed when `keys` can.
pub(crate) fn seal_manifest(
    manifest: &Manifest,
    keys: &RecordingKeys,
) -> Result<Vec<u8>, ManifestError> {
    let body = serde_json::to_string(manifest).map_err(ManifestError::Encode)?;
    let signature = keys.signing().map(|key| ManifestSignature {
        alg: SIGNATURE_ALG.into(),
        public_key: hex::encode(key.verifying_key().as_bytes()),
        value: hex::encode(key.sign(body.as_bytes()).to_bytes()),
    });
    let raw = RawValue::from_string(body).map_err(ManifestError::Encode)?;
    let mut out = serde_json::to_vec(&FileOut {
        manifest: &raw,
        signature,
    })
    .map_err(ManifestError::Encode)?;
    out.push(b'\n');
    Ok(out)
}

pub fn parse_manifest(bytes: &[u8]) -> Result<SignedManifest, ManifestError> {
    let file: FileIn = serde_json::from_slice(bytes).map_err(ManifestError::BadFile)?;
    let manifest: Manifest =
        serde_json::from_str(file.manifest.get()).map_err(ManifestError::Bad)?;
    if manifest.format != "warden-recording" || manifest.v != 1 {
        return Err(ManifestError::Format {
            format: manifest.format,
            v: manifest.v,
        });
    }
    Ok(SignedManifest {
        manifest,
        signature: file.signature,
        signed_bytes: file.manifest.get().to_string(),
    })
}

impl SignedManifest {
    /// Checks the signature with the key `keys` trusts.
    pub fn check_signature(&self, keys: &RecordingKeys) -> SignatureCheck {
        match (&self.signature, keys.verifying()) {
            (None, None) => SignatureCheck::Unsigned,
            (None, Some(_)) => SignatureCheck::Missing,
            (Some(_), None) => SignatureCheck::NotChecked,
            (Some(sig), Some(key)) => {
                if sig.alg != SIGNATURE_ALG {
                    return SignatureCheck::Invalid(format!("algorithm {:?}", sig.alg));
                }
                let Some(bytes) = hex::decode(&sig.value)
                    .ok()
                    .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
                else {
                    return SignatureCheck::Invalid("malformed signature".into());
                };
                match key.verify(self.signed_bytes.as_bytes(), &Signature::from_bytes(&bytes)) {
                    Ok(()) => SignatureCheck::Valid,
                    Err(_) => SignatureCheck::Invalid(
                        "the signature does not match the configured signing key".into(),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn manifest() -> Manifest {
        Manifest {
            format: "warden-recording".into(),
            v: 1,
            session_id: "s1".into(),
            target: "orders".into(),
            protocol: "postgres".into(),
            started_at: OffsetDateTime::UNIX_EPOCH,
            ended_at: OffsetDateTime::UNIX_EPOCH,
            interrupted: false,
            end_reason: "client closed".into(),
            events: 3,
            encrypted: false,
            chunks: vec![],
            chain_head: crate::chunk::GENESIS_SHA256.into(),
        }
    }

    fn keys(seed: &str) -> RecordingKeys {
        RecordingKeys::new(Some(&SecretString::from(seed.to_string())), None).unwrap()
    }

    #[test]
    fn signed_round_trip_and_tamper() {
        let k1 = keys(&"01".repeat(32));
        let k2 = keys(&"02".repeat(32));
        let bytes = seal_manifest(&manifest(), &k1).unwrap();
        let parsed = parse_manifest(&bytes).unwrap();
        assert_eq!(parsed.manifest, manifest());
        assert_eq!(parsed.check_signature(&k1), SignatureCheck::Valid);
        assert!(matches!(
            parsed.check_signature(&k2),
            SignatureCheck::Invalid(_)
        ));
        assert_eq!(
            parsed.check_signature(&RecordingKeys::default()),
            SignatureCheck::NotChecked
        );
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("\"events\":3", "\"events\":4");
        let parsed = parse_manifest(tampered.as_bytes()).unwrap();
        assert!(parsed.check_signature(&k1).is_failure());
    }

    #[test]
    fn unsigned() {
        let bytes = seal_manifest(&manifest(), &RecordingKeys::default()).unwrap();
        let parsed = parse_manifest(&bytes).unwrap();
        assert_eq!(
            parsed.check_signature(&RecordingKeys::default()),
            SignatureCheck::Unsigned
        );
        assert_eq!(
            parsed.check_signature(&keys(&"01".repeat(32))),
            SignatureCheck::Missing
        );
        assert!(parse_manifest(b"{}").is_err());
        assert!(parse_manifest(b"").is_err());
    }
}
