//! The server side of MySQL's `mysql_native_password` check, for access keys.
//!
//! The client sends `SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))`. Knowing
//! only `SHA1(SHA1(pw))` (the key's `mysql_native_password` exchange verifier), the server recovers
//! the candidate `SHA1(pw)` by XOR and checks that its SHA1 is the stored hash.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use warden_core::engines::AccessKeyRecord;

/// The key of this exchange's verifier in [`AccessKeyRecord::exchange_verifiers`].
pub const MECHANISM: &str = "mysql_native_password";

/// Length of a SHA1 digest, of the scramble, and of the client's response.
pub const NATIVE_SCRAMBLE_LEN: usize = 20;

/// True when `client_response` proves knowledge of the key behind `record`
/// for this `scramble` (the 20 random bytes the server sent, without the
/// trailing NUL). Wrong lengths and a corrupt stored hash are simply `false`.
pub fn verify_mysql_native_password(
    record: &AccessKeyRecord,
    scramble: &[u8],
    client_response: &[u8],
) -> bool {
    let stage2 = record.exchange_verifier(MECHANISM).unwrap_or_default();
    verify_against_stage2_hex(stage2, scramble, client_response)
}

fn verify_against_stage2_hex(stage2_hex: &str, scramble: &[u8], client_response: &[u8]) -> bool {
    if scramble.len() != NATIVE_SCRAMBLE_LEN || client_response.len() != NATIVE_SCRAMBLE_LEN {
        return false;
    }
    let Ok(stage2) = hex::decode(stage2_hex) else {
        return false;
    };
    if stage2.len() != NATIVE_SCRAMBLE_LEN {
        return false;
    }
    let mask = Sha1::new()
        .chain_update(scramble)
        .chain_update(&stage2)
        .finalize();
    let stage1: Vec<u8> = client_response
        .iter()
        .zip(mask.iter())
        .map(|(response, mask)| response ^ mask)
        .collect();
    let candidate: [u8; NATIVE_SCRAMBLE_LEN] = Sha1::digest(&stage1).into();
    candidate.ct_eq(stage2.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_key::mysql_native_hash_hex;

    /// The vector from mysql_common's `should_compute_scrambled_password`
    /// test (password "G!ider27").
    const SCRAMBLE: [u8; 20] = [
        0x4e, 0x52, 0x33, 0x48, 0x50, 0x3a, 0x71, 0x49, 0x59, 0x61, 0x5f, 0x39, 0x3d, 0x64, 0x62,
        0x3f, 0x53, 0x64, 0x7b, 0x60,
    ];
    const RESPONSE: [u8; 20] = [
        0x09, 0xcf, 0xf8, 0x85, 0x5e, 0x9e, 0x70, 0x53, 0x40, 0xff, 0x22, 0x70, 0xd8, 0xfb, 0x9f,
        0xad, 0xba, 0x90, 0x6b, 0x70,
    ];

    fn record_for(password: &str) -> AccessKeyRecord {
        let now = time::OffsetDateTime::now_utc();
        AccessKeyRecord {
            id: "0123456789abcdef".into(),
            name: "t".into(),
            groups: vec![],
            key_sha256: String::new(),
            exchange_verifiers: [(MECHANISM.to_string(), mysql_native_hash_hex(password))].into(),
            created_at: now,
            expires_at: now,
            revoked_at: None,
        }
    }

    #[test]
    fn accepts_the_published_vector() {
        assert!(verify_mysql_native_password(
            &record_for("G!ider27"),
            &SCRAMBLE,
            &RESPONSE
        ));
    }

    #[test]
    fn accepts_an_independently_computed_access_key_response() {
        // Computed with Python's hashlib for this key text and scramble 1..=20.
        let key = format!("wdn_0123456789abcdef_{}", "a".repeat(64));
        let record = record_for(&key);
        assert_eq!(
            record.exchange_verifier(MECHANISM),
            Some("ac8ac6a54a5596719c1828b3627e44eb14e0ee9d")
        );
        let scramble: Vec<u8> = (1..=20).collect();
        let response = hex::decode("bf68617beb5465ce1a8392bea3884682061d90c3").unwrap();
        assert!(verify_mysql_native_password(&record, &scramble, &response));
    }

    #[test]
    fn rejects_wrong_password_scramble_or_response() {
        assert!(!verify_mysql_native_password(
            &record_for("G!ider28"),
            &SCRAMBLE,
            &RESPONSE
        ));
        let mut scramble = SCRAMBLE;
        scramble[0] ^= 1;
        assert!(!verify_mysql_native_password(
            &record_for("G!ider27"),
            &scramble,
            &RESPONSE
        ));
        let mut response = RESPONSE;
        response[19] ^= 0x80;
        assert!(!verify_mysql_native_password(
            &record_for("G!ider27"),
            &SCRAMBLE,
            &response
        ));
    }

    #[test]
    fn rejects_bad_lengths_and_corrupt_hashes() {
        let record = record_for("G!ider27");
        assert!(!verify_mysql_native_password(&record, &SCRAMBLE, &[]));
        assert!(!verify_mysql_native_password(
            &record,
            &SCRAMBLE,
            &RESPONSE[..19]
        ));
        assert!(!verify_mysql_native_password(
            &record,
            &SCRAMBLE[..19],
            &RESPONSE
        ));
        let mut with_nul = SCRAMBLE.to_vec();
        with_nul.push(0);
        assert!(!verify_mysql_native_password(&record, &with_nul, &RESPONSE));
        let mut corrupt = record.clone();
        corrupt
            .exchange_verifiers
            .insert(MECHANISM.into(), "zz".into());
        assert!(!verify_mysql_native_password(
            &corrupt, &SCRAMBLE, &RESPONSE
        ));
        corrupt.exchange_verifiers.clear();
        assert!(!verify_mysql_native_password(
            &corrupt, &SCRAMBLE, &RESPONSE
        ));
    }
}
