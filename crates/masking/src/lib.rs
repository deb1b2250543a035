//! Validated PII and secret detectors and masking strategies.
//!
//! A [`Scanner`] is compiled once from the detectors a policy names
//! ([`parse_detector_names`]) plus user-defined named regexes. It reads text in
//! one pass of a combined regex and then validates each candidate (Luhn,
//! mod-97, SSN ranges, JWT header JSON, …) so look-alikes are not masked.
//! [`Strategy`] decides what a finding becomes.
//!
//! ```
//! use warden_masking::{Scanner, Strategy, parse_detector_names};
//!
//! let kinds = parse_detector_names(&["email".into(), "secret".into()])?;
//! let scanner = Scanner::new(&kinds, &[("order".into(), r"ORD-[0-9]{6}".into())])?;
//! let masked = scanner.mask("mail bob@example.com re ORD-123456", &Strategy::Redact);
//! assert_eq!(masked, "mail [REDACTED] re [REDACTED]");
//! // Clean text comes back borrowed.
//! assert!(matches!(scanner.mask("nothing here", &Strategy::Redact), std::borrow::Cow::Borrowed(_)));
//! # Ok::<(), warden_masking::MaskingError>(())
//! ```

mod engine;
mod error;
mod kind;
mod patterns;
mod scanner;
mod strategy;
pub mod validate;

pub use engine::{MaskingSettings, PolicyMasking, RuleMasker};
pub use error::MaskingError;
pub use kind::{DetectorKind, KNOWN_NAMES, parse_detector_names};
pub use scanner::{Match, MatchKind, Scanner};
pub use strategy::{REDACTED, Strategy};

#[cfg(test)]
mod tests;
