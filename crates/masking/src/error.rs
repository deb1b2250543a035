//! Errors raised while building a scanner from configuration.

/// Why a masking configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum MaskingError {
    /// A detector name in the config is not one we know.
    #[error("unknown detector `{0}` (known: {known})", known = crate::kind::KNOWN_NAMES.join(", "))]
    UnknownDetector(String),
    /// A user-defined detector has an empty name.
    #[error("a custom detector needs a non-empty name")]
    EmptyName,
    /// A user-defined detector's regex does not compile.
    #[error("custom detector `{name}`: invalid regex: {source}")]
    InvalidRegex {
        /// The detector's name.
        name: String,
        /// The compiler's complaint.
        #[source]
        source: regex::Error,
    },
    /// The combined detector set could not be compiled (too large, usually).
    #[error("cannot compile detector set: {0}")]
    Compile(#[source] regex::Error),
    /// A `[masking]` setting or rule is not valid.
    #[error("{0}")]
    Config(String),
}
