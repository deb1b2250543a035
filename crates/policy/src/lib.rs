//! Warden's policy engine: `[[policy]]` rules compiled into a [`PolicySet`],
//! SQL statement classification ([`classify()`]), a hot-reloadable engine
//! ([`ReloadablePolicy`], [`spawn_reloader`]), per-session `PREPARE` state
//! ([`SessionClassifier`]) and `warden policy explain` ([`explain()`]).
//! See docs/policy.md.

pub mod classify;
mod derived;
pub mod explain;
pub mod reload;
pub mod rules;
pub mod session;

pub use classify::{Classification, Classifier, StatementClass, TableRef, classify};
pub use explain::{Explanation, explain, identity_from_claims};
pub use reload::{POLL_INTERVAL, PolicySnapshot, ReloadError, ReloadablePolicy, spawn_reloader};
pub use rules::{PolicyError, PolicySet};
pub use session::SessionClassifier;
