//! Masking strategies: what replaces a detected value.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a detected value becomes.
#[derive(Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Replace with the fixed mask [`REDACTED`].
    Redact,
    /// Keep the last `keep_last` characters, replace the rest with `*`.
    /// A value no longer than `keep_last` is masked entirely.
    Partial {
        /// How many trailing characters stay visible.
        keep_last: usize,
    },
    /// Keyed HMAC-SHA-256 pseudonym: equal inputs give equal outputs under one
    /// key, so joins and group-bys still line up, but the value cannot be
    /// recovered or brute-forced without the key.
    Hash {
        /// The HMAC key, supplied by the caller (never logged).
        key: Vec<u8>,
    },
    /// The whole value becomes SQL NULL ([`crate::Scanner::mask_value`]);
    /// in free text ([`crate::Scanner::mask`]) the match is removed.
    Null,
}

/// The fixed mask used by [`Strategy::Redact`].
pub const REDACTED: &str = "[REDACTED]";

/// Bytes of the HMAC kept in a pseudonym (hex-encoded: twice as many chars).
const HASH_BYTES: usize = 12;

impl std::fmt::Debug for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::Redact => f.write_str("Redact"),
            Strategy::Partial { keep_last } => f
                .debug_struct("Partial")
                .field("keep_last", keep_last)
                .finish(),
            Strategy::Hash { .. } => f.write_str("Hash { key: <redacted> }"),
            Strategy::Null => f.write_str("Null"),
        }
    }
}

impl Strategy {
    /// Append the replacement for `matched` to `out`.
    pub fn apply(&self, matched: &str, out: &mut String) {
        match self {
            Strategy::Redact => out.push_str(REDACTED),
            Strategy::Partial { keep_last } => {
                let n = matched.chars().count();
                let hidden = if *keep_last >= n { n } else { n - keep_last };
                out.extend(std::iter::repeat_n('*', hidden));
                out.extend(matched.chars().skip(hidden));
            }
            Strategy::Hash { key } => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(matched.as_bytes());
                    let tag = mac.finalize().into_bytes();
                    for b in tag.iter().take(HASH_BYTES) {
                        out.push(char::from(HEX[usize::from(b >> 4)]));
                        out.push(char::from(HEX[usize::from(b & 0x0f)]));
                    }
                }
                // HMAC accepts any key length; fail closed if that ever changes.
                Err(_) => out.push_str(REDACTED),
            },
            Strategy::Null => {}
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &Strategy, v: &str) -> String {
        let mut out = String::new();
        s.apply(v, &mut out);
        out
    }

    #[test]
    fn redact_and_null() {
        assert_eq!(run(&Strategy::Redact, "secret"), REDACTED);
        assert_eq!(run(&Strategy::Null, "secret"), "");
    }

    #[test]
    fn partial_keeps_last_chars() {
        let p = Strategy::Partial { keep_last: 4 };
        assert_eq!(run(&p, "4111111111111111"), "************1111");
        assert_eq!(run(&p, "abc"), "***");
        assert_eq!(run(&p, "ééééé"), "*éééé");
    }

    #[test]
    fn hash_is_keyed_and_stable() {
        let a = Strategy::Hash {
            key: b"k1".to_vec(),
        };
        let b = Strategy::Hash {
            key: b"k2".to_vec(),
        };
        assert_eq!(run(&a, "x@y.com"), run(&a, "x@y.com"));
        assert_ne!(run(&a, "x@y.com"), run(&a, "z@y.com"));
        assert_ne!(run(&a, "x@y.com"), run(&b, "x@y.com"));
        assert_eq!(run(&a, "x@y.com").len(), HASH_BYTES * 2);
        assert!(!format!("{a:?}").contains("k1"));
    }
}
