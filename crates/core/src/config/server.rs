//! `[server]` and `[tls]`: process-wide settings and the certificate shown to clients.

use crate::units::ByteSize;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[server]`: process-wide settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// SQLite state and local recordings. Relative paths are relative to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `/healthz`, `/metrics` (and later the API and web UI). Omit to disable.
    pub admin_listen: Option<SocketAddr>,
    /// The URL people use to reach `admin_listen` (for links in notices).
    pub public_url: Option<String>,
    /// Most client connections open at once, over all listeners.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long sessions may finish on SIGTERM before they are closed.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Largest message a client may send (Postgres messages, MySQL packets).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// Time allowed for a client to finish the handshake and authenticate.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Threads relaying sessions; half the CPU cores (at least one) when omitted.
    /// With one, every session runs on a single event loop, as pgbouncer does.
    pub worker_threads: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: default_data_dir(),
            admin_listen: None,
            public_url: None,
            max_connections: default_max_connections(),
            shutdown_grace: default_shutdown_grace(),
            max_message_size: default_max_message_size(),
            handshake_timeout: default_handshake_timeout(),
            worker_threads: None,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./warden-data")
}
fn default_max_connections() -> usize {
    1000
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_max_message_size() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(15)
}

/// `[tls]`: the certificate Warden presents to clients.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}
