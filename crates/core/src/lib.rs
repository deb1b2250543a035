//! Warden's core: the configuration model, the types every engine and protocol
//! crate speaks (identity, target, operation, decision), the small traits that
//! protocol crates call engines through, and the TCP connection broker.
//!
//! Protocol crates depend on this crate only; engines implement its traits and
//! the `warden` binary wires them together into a [`Gateway`].

pub mod admission;
pub mod auth_error;
pub mod broker;
pub mod config;
pub mod engines;
pub mod events;
pub mod gateway;
pub mod grant;
pub mod hold;
pub mod identity;
pub mod leases;
pub mod lexing;
pub mod masking;
pub mod metrics;
pub mod operation;
pub mod request;
pub mod review_store;
pub mod reviews;
pub mod secret;
pub mod tls;
pub mod units;
pub mod upstream_tls;

pub use gateway::Gateway;
pub use identity::{Identity, IdentityKind};
pub use operation::{Action, Decision, Operation};
pub use secret::SecretRef;
