//! The upstream client: connects to the real MySQL/MariaDB server, upgrades to
//! TLS per `upstream_tls`, and logs in with the target's credential through
//! whichever plugin the server asks for (`mysql_native_password`,
//! `caching_sha2_password` fast/full/RSA, `client_ed25519`,
//! `mysql_clear_password` over TLS only).
//!
//! It asks the server for exactly the wire-format capabilities the client
//! chose, so results can be relayed untouched (see `handshake::mirrored_caps`).

use crate::codec::{CodecError, PacketStream};
use crate::handshake::mirrored_caps;
use crate::packets::{self, parse_err};
use crate::stream::BoxStream;
use crate::tls;
use mysql_common::auth::plugins::{AuthProc, ChallengeResponsePlugin, Context};
use mysql_common::constants::CapabilityFlags as Caps;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse, SslRequest,
};
use mysql_common::proto::{MyDeserialize, MySerialize};
use secrecy::ExposeSecret;
use std::sync::Arc;
use tokio::net::TcpStream;
use warden_core::admission::ConnectGrant;
use warden_core::config::{TargetConfig, UpstreamTls};
use warden_core::engines::UpstreamCredential;

/// Largest packet Warden accepts from an upstream during login.
const LOGIN_LIMIT: usize = 1 << 20;
/// What Warden tells the upstream it can receive (the server's own limit still applies).
const MAX_PACKET: u32 = 1 << 30;
/// More rounds than any plugin needs: stops a hostile server from looping us.
const MAX_AUTH_ROUNDS: usize = 8;

/// A logged-in upstream connection.
pub struct Upstream {
    pub stream: PacketStream<BoxStream>,
    /// The capabilities in force on this connection.
    pub caps: Caps,
    pub server_version: String,
    pub tls: bool,
    /// The server's id for this connection (what `KILL` names upstream).
    pub thread_id: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    /// The TLS handshake with the server failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The target's TLS settings cannot be used (same text as a handshake failure).
    #[error("TLS: {0}")]
    TlsConfig(#[source] warden_core::upstream_tls::UpstreamTlsError),
    #[error("the server does not offer TLS, but upstream_tls requires it")]
    NoTls,
    #[error("the server refused the login: error {code}: {message}")]
    Refused { code: u16, message: String },
    #[error("the server asks for authentication plugin `{0}`, which Warden does not speak")]
    Plugin(String),
    #[error("the server asks for mysql_clear_password without TLS; set upstream_tls")]
    ClearWithoutTls,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    Codec(#[from] CodecError),
}

impl Upstream {
    /// The session's `sql_mode` and `character_set_client` as the server
    /// starts it (global defaults, the account's settings): one query at
    /// login, so a server configured with `ANSI_QUOTES` or a multibyte client
    /// set is refused before any statement is judged under the wrong rules.
    pub async fn lexing_state(&mut self) -> Result<(String, String), UpstreamError> {
        let rows = self
            .text_rows(
                "SELECT @@SESSION.sql_mode, @@SESSION.character_set_client",
                2,
            )
            .await?;
        let [row] = rows.as_slice() else {
            return Err(UpstreamError::Protocol(
                "reading the session's sql_mode: not one row".into(),
            ));
        };
        Ok((row[0].clone(), row[1].clone()))
    }

    /// A second wall behind statement policy for read-only identities: the
    /// server itself refuses writes, including those a view or stored
    /// function makes. Lifting it (`SET TRANSACTION READ WRITE` and the like)
    /// is classified as a write. Run at login and after every reset.
    pub async fn raise_read_only_wall(&mut self) -> Result<(), UpstreamError> {
        self.execute("SET SESSION TRANSACTION READ ONLY").await
    }

    /// Runs one statement of Warden's own that returns no rows (an OK).
    pub async fn execute(&mut self, sql: &str) -> Result<(), UpstreamError> {
        let mut query = vec![0x03];
        query.extend_from_slice(sql.as_bytes());
        self.stream.send_packet(0, &query).await?;
        let reply = self.stream.read_packet(None, 1 << 20).await?;
        match reply.payload.first() {
            Some(&crate::packets::OK) => Ok(()),
            Some(&crate::packets::ERR) => {
                let error = crate::packets::parse_err(&reply.payload).ok_or_else(|| {
                    UpstreamError::Protocol(format!("running `{sql}`: bad error"))
                })?;
                Err(UpstreamError::Refused {
                    code: error.code,
                    message: error.message,
                })
            }
            _ => Err(UpstreamError::Protocol(format!(
                "running `{sql}`: not an OK"
            ))),
        }
    }

    /// Runs one query of Warden's own and returns its rows as text, each of
    /// exactly `columns` values (NULL reads as empty).
    pub async fn text_rows(
        &mut self,
        sql: &str,
        columns: usize,
    ) -> Result<Vec<Vec<String>>, UpstreamError> {
        const LIMIT: usize = 1 << 20;
        let bad = |what: &str| UpstreamError::Protocol(format!("reading `{sql}`: {what}"));
        let mut query = vec![0x03];
        query.extend_from_slice(sql.as_bytes());
        self.stream.send_packet(0, &query).await?;
        let first = self.stream.read_packet(None, LIMIT).await?;
        if first.payload.first() == Some(&crate::packets::ERR) {
            let error =
                crate::packets::parse_err(&first.payload).ok_or_else(|| bad("bad error"))?;
            return Err(UpstreamError::Refused {
                code: error.code,
                message: error.message,
            });
        }
        let (count, _) =
            crate::packets::read_lenenc(&first.payload).ok_or_else(|| bad("no column count"))?;
        if usize::try_from(count).ok() != Some(columns) {
            return Err(bad("unexpected column count"));
        }
        for _ in 0..columns {
            self.stream.read_packet(None, LIMIT).await?;
        }
        if !self.caps.contains(Caps::CLIENT_DEPRECATE_EOF) {
            self.stream.read_packet(None, LIMIT).await?;
        }
        let mut rows = Vec::new();
        loop {
            let row = self.stream.read_packet(None, LIMIT).await?;
            if crate::packets::is_terminator(&row.payload) {
                return Ok(rows);
            }
            if row.payload.first() == Some(&crate::packets::ERR) || rows.len() >= 10_000 {
                return Err(bad("an error or too many rows"));
            }
            let mut values = Vec::with_capacity(columns);
            let mut rest: &[u8] = &row.payload;
            for _ in 0..columns {
                if rest.first() == Some(&0xfb) {
                    values.push(String::new());
                    rest = &rest[1..];
                    continue;
                }
                let (len, used) =
                    crate::packets::read_lenenc(rest).ok_or_else(|| bad("short row"))?;
                let len = usize::try_from(len).map_err(|_| bad("long value"))?;
                let value = rest.get(used..used + len).ok_or_else(|| bad("short row"))?;
                values.push(String::from_utf8_lossy(value).into_owned());
                rest = rest.get(used + len..).unwrap_or_default();
            }
            rows.push(values);
        }
    }
}

/// Connects to the granted target and logs in. The caller applies the
/// target's connect timeout.
pub async fn connect(
    grant: &ConnectGrant,
    credential: &UpstreamCredential,
    client_caps: Caps,
    collation: u8,
) -> Result<Upstream, UpstreamError> {
    connect_target(grant.target(), credential, client_caps, collation).await
}

/// [`connect`] without a session: `warden check`'s probe logs in as the
/// operator's configured credential, and unit tests dial fakes.
pub(crate) async fn connect_target(
    target: &TargetConfig,
    credential: &UpstreamCredential,
    client_caps: Caps,
    collation: u8,
) -> Result<Upstream, UpstreamError> {
    let tcp = TcpStream::connect(&target.address)
        .await
        .map_err(|source| UpstreamError::Connect {
            address: target.address.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let mut plain = PacketStream::new(tcp);
    let greeting = plain.read_packet(Some(0), LOGIN_LIMIT).await?;
    if let Some(err) = parse_err(&greeting.payload) {
        return Err(UpstreamError::Refused {
            code: err.code,
            message: err.message,
        });
    }
    let handshake = HandshakePacket::deserialize((), &mut ParseBuf(&greeting.payload))
        .map_err(|error| UpstreamError::Protocol(format!("bad server greeting: {error}")))?;
    if handshake.protocol_version() != 10 {
        return Err(UpstreamError::Protocol(format!(
            "unsupported protocol version {}",
            handshake.protocol_version()
        )));
    }
    let server_caps = handshake.capabilities();
    let wanted = (client_caps & mirrored_caps())
        | Caps::CLIENT_PROTOCOL_41
        | Caps::CLIENT_SECURE_CONNECTION
        | Caps::CLIENT_PLUGIN_AUTH
        | Caps::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Caps::CLIENT_CONNECT_WITH_DB;
    let mut caps = wanted & server_caps;
    if !caps.contains(Caps::CLIENT_PROTOCOL_41) {
        return Err(UpstreamError::Protocol(
            "the server does not speak protocol 4.1".into(),
        ));
    }
    let mode = target.effective_upstream_tls();
    let mut seq = 1u8;
    let (mut stream, tls) = if mode == UpstreamTls::Disable {
        (
            PacketStream::new(Box::new(plain.into_inner()) as BoxStream),
            false,
        )
    } else {
        if !server_caps.contains(Caps::CLIENT_SSL) {
            return Err(UpstreamError::NoTls);
        }
        caps |= Caps::CLIENT_SSL;
        let mut request = Vec::new();
        SslRequest::new(caps, MAX_PACKET, collation).serialize(&mut request);
        seq = plain.send_packet(seq, &request).await?;
        let config = tls::client_config(target, mode).map_err(UpstreamError::TlsConfig)?;
        let name = tls::server_name(target).map_err(UpstreamError::TlsConfig)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls_stream = connector
            .connect(name, plain.into_inner())
            .await
            .map_err(|error| UpstreamError::Tls(error.to_string()))?;
        (PacketStream::new(Box::new(tls_stream) as BoxStream), true)
    };

    let password = credential.password.expose_secret().as_bytes();
    let mut nonce = handshake.nonce();
    let plugin = handshake
        .auth_plugin()
        .map(|p| p.into_owned())
        .unwrap_or(AuthPlugin::MysqlNativePassword);
    let mut proc = init_plugin(&plugin, tls)?;
    let first = proc
        .run(Ctx::new(password, tls, &nonce), &nonce)
        .map_err(|error| UpstreamError::Protocol(format!("{plugin:?}: {error}")))?;
    let response = HandshakeResponse::new(
        Some(first.data().unwrap_or_default().to_vec()),
        (8, 0, 0),
        Some(credential.user.as_bytes().to_vec()),
        Some(target.upstream_database().as_bytes().to_vec()),
        Some(plugin.clone()),
        caps,
        None,
        MAX_PACKET,
    );
    let mut body = Vec::new();
    response.serialize(&mut body);
    if let Some(byte) = body.get_mut(8) {
        *byte = collation;
    }
    seq = stream.send_packet(seq, &body).await?;

    for _ in 0..MAX_AUTH_ROUNDS {
        let packet = stream.read_packet(Some(seq), LOGIN_LIMIT).await?;
        seq = packet.last_seq.wrapping_add(1);
        let payload = packet.payload.as_ref();
        let answer = match payload.first() {
            Some(&packets::OK) => {
                return Ok(Upstream {
                    stream,
                    caps,
                    server_version: String::from_utf8_lossy(handshake.server_version_ref())
                        .into_owned(),
                    tls,
                    thread_id: handshake.connection_id(),
                });
            }
            Some(&packets::ERR) => {
                let err = parse_err(payload).unwrap_or(packets::ErrInfo {
                    code: 0,
                    message: "malformed error packet".into(),
                });
                return Err(UpstreamError::Refused {
                    code: err.code,
                    message: err.message,
                });
            }
            Some(&packets::EOF) => {
                let switch = AuthSwitchRequest::deserialize((), &mut ParseBuf(payload)).map_err(
                    |error| UpstreamError::Protocol(format!("bad auth switch request: {error}")),
                )?;
                let plugin = switch.auth_plugin().into_owned();
                nonce = switch.plugin_data().to_vec();
                proc = init_plugin(&plugin, tls)?;
                proc.run(Ctx::new(password, tls, &nonce), &nonce)
            }
            Some(0x01) => proc.run(Ctx::new(password, tls, &nonce), &payload[1..]),
            _ => {
                return Err(UpstreamError::Protocol(
                    "unexpected packet during login".into(),
                ));
            }
        }
        .map_err(|error| UpstreamError::Protocol(format!("authentication: {error}")))?;
        if let Some(data) = answer.data() {
            seq = stream.send_packet(seq, data).await?;
        }
    }
    Err(UpstreamError::Protocol(
        "the server did not finish authentication".into(),
    ))
}

fn init_plugin(plugin: &AuthPlugin<'_>, tls: bool) -> Result<AuthProc, UpstreamError> {
    match plugin {
        AuthPlugin::MysqlClearPassword if !tls => Err(UpstreamError::ClearWithoutTls),
        AuthPlugin::MysqlOldPassword | AuthPlugin::Parsec | AuthPlugin::Other(_) => Err(
            UpstreamError::Plugin(String::from_utf8_lossy(plugin.as_bytes()).into_owned()),
        ),
        _ => AuthProc::init(plugin).map_err(|error| UpstreamError::Plugin(error.to_string())),
    }
}

/// What the auth plugins need to know about this login.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    pass: &'a [u8],
    tls: bool,
    scramble: &'a [u8],
}

impl<'a> Ctx<'a> {
    fn new(pass: &'a [u8], tls: bool, scramble: &'a [u8]) -> Self {
        Ctx {
            pass,
            tls,
            scramble,
        }
    }
}

impl Context for Ctx<'_> {
    fn pass(&self) -> &[u8] {
        self.pass
    }
    fn is_ipc_transport(&self) -> bool {
        false
    }
    fn is_tls_transport(&self) -> bool {
        self.tls
    }
    fn scramble(&self) -> &[u8] {
        self.scramble
    }
    fn server_key_pem(&self) -> Option<&[u8]> {
        None
    }
}

#[cfg(test)]
mod tests;
