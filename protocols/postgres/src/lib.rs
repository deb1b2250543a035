//! Warden's PostgreSQL protocol crate: the client-facing front end (TLS,
//! startup, cleartext token exchange, cancel), the upstream client (TLS,
//! SCRAM-SHA-256 / MD5 / cleartext), and the relay that forwards bytes
//! untouched except where policy or recording must look inside.
//!
//! It knows only the wire protocol; identity, policy, credentials, the store
//! and recordings are reached through `warden_core`'s engine traits.

mod admit;
mod binary_text;
mod cancel;
mod capture;
mod catalog;
mod client_error;
mod client_stream;
mod errors;
pub mod fastpath;
mod frame;
mod handler;
mod hold;
mod masking;
pub mod probe;
mod relay;
mod session;
mod session_catalog;
mod startup;
mod upstream;

pub use cancel::CancelRegistry;
pub use handler::PostgresHandler;
