//! TLS towards the upstream: shared with every protocol in `warden_core`.

pub use warden_core::upstream_tls::{client_config, server_name};
