//! Connecting to the upstream PostgreSQL as the target's user: optional TLS,
//! startup, and SCRAM-SHA-256 / MD5 / cleartext authentication.

use crate::client_stream::MaybeTls;
use crate::frame::{self, backend, peek_header, read_cstr, read_i32};
use bytes::{Buf, BufMut, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_core::admission::ConnectGrant;
use warden_core::config::{TargetConfig, UpstreamTls};

/// Largest message accepted from an upstream during startup.
const MAX_STARTUP_MESSAGE: usize = 1 << 20;

/// A logged-in upstream connection, ready for queries.
pub struct Upstream {
    pub stream: MaybeTls,
    /// ParameterStatus values in the order the server sent them.
    pub parameters: Vec<(String, String)>,
    pub process_id: i32,
    pub secret_key: Vec<u8>,
    /// The ReadyForQuery frame that ended startup (forwarded to the client as is).
    pub ready_for_query: BytesMut,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("no answer from {0} within the connect timeout")]
    Timeout(String),
    #[error("TLS to the upstream failed: {0}")]
    Tls(String),
    /// The target's TLS settings cannot be used (same text as a handshake failure).
    #[error("TLS to the upstream failed: {0}")]
    TlsConfig(#[source] warden_core::upstream_tls::UpstreamTlsError),
    #[error("the upstream refused the connection: {code} {message}")]
    Refused { code: String, message: String },
    #[error("the upstream asked for an authentication method Warden does not speak ({0})")]
    UnsupportedAuth(String),
    #[error("authentication exchange with the upstream failed: {0}")]
    Auth(String),
    #[error("the upstream broke the protocol: {0}")]
    Protocol(String),
    #[error("i/o error talking to the upstream: {0}")]
    Io(#[from] std::io::Error),
}

impl UpstreamError {
    /// The upstream's own SQLSTATE when it answered with an error.
    pub fn upstream_code(&self) -> Option<&str> {
        match self {
            UpstreamError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What to log in with.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a SecretString,
    pub database: &'a str,
    /// Startup parameters forwarded from the client.
    pub parameters: &'a [(String, String)],
}

/// Connects to the granted target and logs in, all within its `connect_timeout`.
pub async fn connect(grant: &ConnectGrant, login: Login<'_>) -> Result<Upstream, UpstreamError> {
    connect_target(grant.target(), login).await
}

/// [`connect`] for a target the caller already holds a grant for: the
/// masking catalog's side connection, with its session's own credential.
pub(crate) async fn connect_target(
    target: &TargetConfig,
    login: Login<'_>,
) -> Result<Upstream, UpstreamError> {
    match tokio::time::timeout(target.connect_timeout, connect_inner(target, login)).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout(target.address.clone())),
    }
}

async fn connect_inner(target: &TargetConfig, login: Login<'_>) -> Result<Upstream, UpstreamError> {
    let mut stream = open_transport(target).await?;
    let tls = stream.is_tls();
    send_startup(&mut stream, &login).await?;
    let mut buf = BytesMut::with_capacity(8192);
    let mut parameters = Vec::new();
    let mut process_id = 0;
    let mut secret_key = Vec::new();
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (tag, body) = read_message(&mut stream, &mut buf).await?;
        match tag {
            backend::AUTHENTICATION => {
                authenticate_step(&mut stream, &login, &body, &mut scram, tls, target).await?;
            }
            backend::PARAMETER_STATUS => {
                let mut pos = 0;
                let name = read_cstr(&body, &mut pos);
                let value = read_cstr(&body, &mut pos);
                if let (Some(name), Some(value)) = (name, value) {
                    parameters.push((
                        String::from_utf8_lossy(name).into_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                }
            }
            backend::BACKEND_KEY_DATA => {
                let mut pos = 0;
                process_id = read_i32(&body, &mut pos)
                    .ok_or_else(|| UpstreamError::Protocol("short BackendKeyData".into()))?;
                secret_key = body[pos..].to_vec();
            }
            backend::ERROR_RESPONSE => {
                let fields = frame::parse_error_fields(&body);
                return Err(UpstreamError::Refused {
                    code: fields.code,
                    message: fields.message,
                });
            }
            backend::NOTICE_RESPONSE | backend::NEGOTIATE_PROTOCOL_VERSION => {}
            backend::READY_FOR_QUERY => {
                let mut ready_for_query = BytesMut::new();
                frame::put_message(&mut ready_for_query, tag, &body);
                return Ok(Upstream {
                    stream,
                    parameters,
                    process_id,
                    secret_key,
                    ready_for_query,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message '{}' during startup",
                    other as char
                )));
            }
        }
    }
}

/// TCP, then TLS when the target asks for it.
pub async fn open_transport(target: &TargetConfig) -> Result<MaybeTls, UpstreamError> {
    let tcp = TcpStream::connect(&target.address)
        .await
        .map_err(|source| UpstreamError::Connect {
            address: target.address.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let mode = target.effective_upstream_tls();
    if mode == UpstreamTls::Disable {
        return Ok(MaybeTls::Plain(tcp));
    }
    let mut tcp = tcp;
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != b'S' {
        return Err(UpstreamError::Tls(format!(
            "{} does not accept TLS (upstream_tls = \"{}\")",
            target.address,
            if mode == UpstreamTls::Require {
                "require"
            } else {
                "verify-full"
            }
        )));
    }
    let config =
        warden_core::upstream_tls::client_config(target, mode).map_err(UpstreamError::TlsConfig)?;
    let server_name =
        warden_core::upstream_tls::server_name(target).map_err(UpstreamError::TlsConfig)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    Ok(MaybeTls::ClientTls(Box::new(tls)))
}

async fn send_startup(stream: &mut MaybeTls, login: &Login<'_>) -> Result<(), UpstreamError> {
    let mut body = BytesMut::new();
    body.put_i32(196608); // protocol 3.0
    for (key, value) in [("user", login.user), ("database", login.database)]
        .into_iter()
        .chain(
            login
                .parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    {
        body.put_slice(key.as_bytes());
        body.put_u8(0);
        body.put_slice(value.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut packet = BytesMut::with_capacity(body.len() + 4);
    packet.put_u32(body.len() as u32 + 4);
    packet.put_slice(&body);
    stream.write_all(&packet).await?;
    Ok(())
}

/// Reads one whole tagged message during startup.
pub(crate) async fn read_message(
    stream: &mut MaybeTls,
    buf: &mut BytesMut,
) -> Result<(u8, BytesMut), UpstreamError> {
    loop {
        if let Some((tag, len)) =
            peek_header(buf).map_err(|e| UpstreamError::Protocol(e.to_string()))?
        {
            if len > MAX_STARTUP_MESSAGE {
                return Err(UpstreamError::Protocol(format!(
                    "startup message of {len} bytes"
                )));
            }
            if buf.len() >= len {
                let mut message = buf.split_to(len);
                message.advance(frame::HEADER_LEN);
                return Ok((tag, message));
            }
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(UpstreamError::Protocol(
                "the upstream closed the connection during startup".into(),
            ));
        }
    }
}

async fn send_password_message(stream: &mut MaybeTls, body: &[u8]) -> Result<(), UpstreamError> {
    let mut out = BytesMut::new();
    frame::put_message(&mut out, frame::frontend::PASSWORD, body);
    stream.write_all(&out).await?;
    Ok(())
}

async fn authenticate_step(
    stream: &mut MaybeTls,
    login: &Login<'_>,
    body: &[u8],
    scram: &mut Option<ScramSha256>,
    tls: bool,
    target: &TargetConfig,
) -> Result<(), UpstreamError> {
    let mut pos = 0;
    let code = read_i32(body, &mut pos)
        .ok_or_else(|| UpstreamError::Protocol("short Authentication message".into()))?;
    let rest = &body[pos..];
    let password = login.password.expose_secret().as_bytes();
    match code {
        0 => Ok(()),
        3 => {
            if !tls && !target.is_loopback() {
                tracing::warn!(
                    target = %target.name,
                    "the upstream asked for a cleartext password over an unencrypted connection"
                );
            }
            let mut message = password.to_vec();
            message.push(0);
            send_password_message(stream, &message).await
        }
        5 => {
            let salt: [u8; 4] = rest
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| UpstreamError::Protocol("short MD5 salt".into()))?;
            let hash =
                postgres_protocol::authentication::md5_hash(login.user.as_bytes(), password, salt);
            let mut message = hash.into_bytes();
            message.push(0);
            send_password_message(stream, &message).await
        }
        10 => {
            let mut mechanisms = Vec::new();
            let mut pos = 0;
            while let Some(name) = read_cstr(rest, &mut pos) {
                if name.is_empty() {
                    break;
                }
                mechanisms.push(String::from_utf8_lossy(name).into_owned());
            }
            if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                return Err(UpstreamError::UnsupportedAuth(mechanisms.join(", ")));
            }
            let client = ScramSha256::new(password, ChannelBinding::unsupported());
            let initial = client.message();
            let mut message = BytesMut::new();
            message.put_slice(SCRAM_SHA_256.as_bytes());
            message.put_u8(0);
            message.put_i32(initial.len() as i32);
            message.put_slice(initial);
            *scram = Some(client);
            send_password_message(stream, &message).await
        }
        11 => {
            let client = scram
                .as_mut()
                .ok_or_else(|| UpstreamError::Protocol("SASLContinue without SASL".into()))?;
            client
                .update(rest)
                .map_err(|e| UpstreamError::Auth(e.to_string()))?;
            let message = client.message().to_vec();
            send_password_message(stream, &message).await
        }
        12 => {
            let client = scram
                .as_mut()
                .ok_or_else(|| UpstreamError::Protocol("SASLFinal without SASL".into()))?;
            client
                .finish(rest)
                .map_err(|e| UpstreamError::Auth(format!("server signature: {e}")))
        }
        other => Err(UpstreamError::UnsupportedAuth(format!(
            "method code {other}"
        ))),
    }
}

/// Sends a CancelRequest for an upstream backend (over TLS when the target uses it).
pub async fn send_cancel(
    target: &TargetConfig,
    process_id: i32,
    secret_key: &[u8],
) -> Result<(), UpstreamError> {
    let mut stream = tokio::time::timeout(target.connect_timeout, open_transport(target))
        .await
        .map_err(|_| UpstreamError::Timeout(target.address.clone()))??;
    let mut packet = BytesMut::new();
    packet.put_u32(12 + secret_key.len() as u32);
    packet.put_i32(80877102);
    packet.put_i32(process_id);
    packet.put_slice(secret_key);
    stream.write_all(&packet).await?;
    stream.flush().await?;
    // The server closes the connection once it has the request.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut sink)).await;
    Ok(())
}
