//! Human-friendly units in the config: byte sizes such as `64MiB`.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A size in bytes, written in the config as `65536`, `"64KiB"`, `"16MiB"` or `"1GiB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Why a size in the config cannot be read. The text is what the config
/// loader shows next to the key, so it says how to write a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    /// No leading digits (or too many for a u64).
    #[error("`{text}` is not a size; write e.g. \"64MiB\"")]
    NotANumber { text: String },
    /// A unit other than B, KiB, MiB, GiB, KB, MB, GB.
    #[error("unknown size unit `{unit}`; use B, KiB, MiB or GiB")]
    UnknownUnit { unit: String },
    /// The number times the unit does not fit in 64 bits.
    #[error("size `{text}` is too large")]
    TooLarge { text: String },
}

impl ByteSize {
    /// Parses `123`, `64KiB`, `16MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of 1000).
    pub fn parse(text: &str) -> Result<Self, ByteSizeError> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits.parse().map_err(|_| ByteSizeError::NotANumber {
            text: text.to_string(),
        })?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(ByteSizeError::UnknownUnit {
                    unit: other.to_string(),
                });
            }
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| ByteSizeError::TooLarge {
                text: text.to_string(),
            })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
            write!(f, "{}GiB", n >> 30)
        } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", n >> 10)
        } else {
            write!(f, "{n}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(ByteSize::parse("64MiB").unwrap().0, 64 << 20);
        assert_eq!(ByteSize::parse("10").unwrap().0, 10);
        assert_eq!(ByteSize::parse("2KB").unwrap().0, 2000);
        assert_eq!(
            ByteSize::parse("12 parsecs"),
            Err(ByteSizeError::UnknownUnit {
                unit: "parsecs".into()
            })
        );
        assert!(matches!(
            ByteSize::parse("99999999999999GiB"),
            Err(ByteSizeError::TooLarge { .. })
        ));
        assert_eq!(
            ByteSize::parse("MiB").unwrap_err().to_string(),
            "`MiB` is not a size; write e.g. \"64MiB\""
        );
        assert_eq!(ByteSize(16 << 20).to_string(), "16MiB");
    }
}
