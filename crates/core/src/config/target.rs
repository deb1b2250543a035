//! `[[listener]]` and `[[target]]`: the ports clients use and the upstreams behind them.

use super::CredentialsConfig;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The wire protocols Warden speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
    Mysql,
    Ssh,
    Http,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Ssh => "ssh",
            Protocol::Http => "http",
        })
    }
}

/// `[[listener]]`: a port clients connect to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: Protocol,
    pub listen: SocketAddr,
    /// Accept clients that do not use TLS from non-loopback addresses. Off by
    /// default: outside loopback a token must never cross the network in clear.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// How Warden talks TLS to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plain TCP.
    Disable,
    /// TLS, but any certificate is accepted (protects only against passive sniffing).
    Require,
    /// TLS, the certificate chain and host name are verified.
    VerifyFull,
}

/// `[[target]]`: a resource agents reach through Warden.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// What clients name (Postgres `dbname`).
    pub name: String,
    pub protocol: Protocol,
    /// `host:port` of the upstream.
    pub address: String,
    /// Upstream database name; defaults to `name`.
    pub database: Option<String>,
    /// MySQL: other databases a session on this target may use (`USE`,
    /// `db.table`); without them the session is confined to `database`.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Defaults to `verify-full`, or `disable` for loopback addresses.
    pub upstream_tls: Option<UpstreamTls>,
    /// PEM CA bundle for `verify-full`; the system roots when omitted.
    pub upstream_ca: Option<PathBuf>,
    /// Name checked against the upstream certificate; the address' host when omitted.
    pub upstream_server_name: Option<String>,
    /// Time allowed to reach and log in to the upstream.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    pub credentials: CredentialsConfig,
    /// How long this target's recordings are kept; `[recording] retention` when unset.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// Most sessions open at once on this target, across all identities
    /// (this node); unlimited when unset. One more is refused at admission.
    #[serde(default)]
    pub max_sessions: Option<usize>,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TargetConfig {
    /// The database to open upstream.
    pub fn upstream_database(&self) -> &str {
        self.database.as_deref().unwrap_or(&self.name)
    }

    /// MySQL: may a session on this target use database `name`? Its own
    /// database, the listed `databases` and `information_schema` (which shows
    /// only what the login may see); `mysql`, `performance_schema`, `sys` and
    /// any other database only when listed.
    pub fn allows_database(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.upstream_database())
            || name.eq_ignore_ascii_case("information_schema")
            || self.databases.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// The host part of `address`.
    pub fn host(&self) -> &str {
        split_host_port(&self.address).map_or(self.address.as_str(), |(host, _)| host)
    }

    /// True when the address is a loopback IP or `localhost`.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// `upstream_tls` with its default applied.
    pub fn effective_upstream_tls(&self) -> UpstreamTls {
        self.upstream_tls.unwrap_or(if self.is_loopback() {
            UpstreamTls::Disable
        } else {
            UpstreamTls::VerifyFull
        })
    }
}

/// Splits `host:port` and `[v6]:port`.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
}
