//! The server side of the MySQL connection phase: Warden's HandshakeV10, the
//! optional TLS upgrade, the client's HandshakeResponse, and the switch to
//! `mysql_clear_password` when Warden needs the token itself.

use crate::codec::{CodecError, PacketStream, frame};
use crate::errors::ClientError;
use crate::stream::BoxStream;
use mysql_common::constants::{CapabilityFlags as Caps, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use rand::Rng;
use secrecy::SecretString;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// What Warden tells clients it is. The `5.7` prefix keeps drivers on the
/// protocol paths every server speaks.
pub const SERVER_VERSION: &str = "5.7.99-Warden";
/// utf8mb4_general_ci.
pub const DEFAULT_COLLATION: u8 = 45;
/// A handshake response is small; anything near this is hostile.
const HANDSHAKE_LIMIT: usize = 64 * 1024;
pub const SCRAMBLE_LEN: usize = 20;
/// A client that does not read its error is not waited for.
const TELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Capabilities whose effect on the wire format Warden relays by asking the
/// upstream for exactly what the client chose (see `upstream`).
pub fn mirrored_caps() -> Caps {
    Caps::CLIENT_LONG_PASSWORD
        | Caps::CLIENT_FOUND_ROWS
        | Caps::CLIENT_LONG_FLAG
        | Caps::CLIENT_NO_SCHEMA
        | Caps::CLIENT_ODBC
        | Caps::CLIENT_IGNORE_SPACE
        | Caps::CLIENT_INTERACTIVE
        | Caps::CLIENT_TRANSACTIONS
        | Caps::CLIENT_MULTI_STATEMENTS
        | Caps::CLIENT_MULTI_RESULTS
        | Caps::CLIENT_PS_MULTI_RESULTS
        | Caps::CLIENT_SESSION_TRACK
        | Caps::CLIENT_DEPRECATE_EOF
        // LOAD DATA LOCAL INFILE: only for the file the statement names
        // (see `local_infile`).
        | Caps::CLIENT_LOCAL_FILES
}

/// Warden's own capability set. Not offered: zstd compression,
/// query attributes, optional metadata and MariaDB's extensions (the
/// `CLIENT_LONG_PASSWORD` bit tells MariaDB clients there are none).
pub fn server_caps(tls: bool) -> Caps {
    let mut caps = mirrored_caps()
        | Caps::CLIENT_CONNECT_WITH_DB
        | Caps::CLIENT_PROTOCOL_41
        | Caps::CLIENT_SECURE_CONNECTION
        | Caps::CLIENT_PLUGIN_AUTH
        | Caps::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Caps::CLIENT_CONNECT_ATTRS
        // Spoken to the client only; upstream stays uncompressed.
        | Caps::CLIENT_COMPRESS;
    if tls {
        caps |= Caps::CLIENT_SSL;
    }
    caps
}

/// How the client presented its secret in the handshake response.
pub enum ClientCredential {
    /// `mysql_clear_password`: the token or key itself.
    Cleartext(SecretString),
    /// `mysql_native_password`: SHA1 scramble of the password over Warden's nonce.
    Native(Vec<u8>),
    /// Another plugin's answer (e.g. `caching_sha2_password`) or none at all.
    Other,
}

/// The client's handshake response, checked.
pub struct ClientHello {
    pub user: String,
    pub database: Option<String>,
    /// Client capabilities intersected with Warden's.
    pub caps: Caps,
    pub collation: u8,
    pub tls: bool,
    pub scramble: [u8; SCRAMBLE_LEN],
    pub credential: ClientCredential,
    /// Sequence id for Warden's next packet in the connection phase.
    pub next_seq: u8,
}

impl ClientHello {
    /// The Warden target the client asks for: the handshake's database
    /// (`-D TARGET`) or, for clients that send none (`mariadb-dump`,
    /// `mariadb -e` without `-D`), what follows the last `@` of the user name
    /// (`-u agent@TARGET`). Empty when neither names one.
    pub fn target_name(&self) -> &str {
        match &self.database {
            Some(database) => database,
            None => self.user.rsplit_once('@').map_or("", |(_, target)| target),
        }
    }

    /// The user name without an `@TARGET` suffix naming the session's
    /// target (an access key's id for `mysql_native_password`). Clients
    /// that repeat the target as database (`-u KEY_ID@orders -D orders`) get
    /// the same; any other `@` stays part of the name.
    pub fn login_user(&self) -> &str {
        match self.user.rsplit_once('@') {
            Some((user, target)) if !target.is_empty() && target == self.target_name() => user,
            _ => &self.user,
        }
    }
}

/// Runs the connection phase up to (not including) authentication, within
/// `deadline`. On failure the client has already been told why (when it can be).
pub async fn accept(
    mut tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    connection_id: u32,
    deadline: Instant,
) -> Result<(PacketStream<BoxStream>, ClientHello), HandshakeError> {
    let scramble = new_scramble();
    let caps = server_caps(tls.is_some());
    let first = match within(deadline, greet(&mut tcp, caps, connection_id, &scramble)).await {
        Ok(first) => first,
        Err(error) => {
            tell(&mut tcp, 1, &error).await;
            return Err(error);
        }
    };
    let first_caps = match peek_caps(&first) {
        Ok(caps) => caps,
        Err(error) => {
            tell(&mut tcp, 2, &error).await;
            return Err(error);
        }
    };
    if first_caps.contains(Caps::CLIENT_SSL) && first.len() == 32 {
        let Some(acceptor) = tls else {
            let error = bad("TLS was requested but this listener has no [tls] configured");
            tell(&mut tcp, 2, &error).await;
            return Err(error);
        };
        let tls_stream = tokio::time::timeout_at(deadline, acceptor.accept(tcp))
            .await
            .map_err(|_| HandshakeError::Tls("timed out".into()))?
            .map_err(|error| HandshakeError::Tls(error.to_string()))?;
        let mut stream = PacketStream::new(Box::new(tls_stream) as BoxStream);
        let parsed = match within(deadline, stream.read_packet(Some(2), HANDSHAKE_LIMIT)).await {
            Ok(packet) => parse_response(&packet.payload, caps, true, scramble, 3),
            Err(error) => Err(error),
        };
        match parsed {
            Ok(hello) => Ok((stream, hello)),
            Err(error) => {
                tell_stream(&mut stream, 3, &error).await;
                Err(error)
            }
        }
    } else {
        match parse_response(&first, caps, false, scramble, 2) {
            Ok(hello) => Ok((PacketStream::new(Box::new(tcp) as BoxStream), hello)),
            Err(error) => {
                tell(&mut tcp, 2, &error).await;
                Err(error)
            }
        }
    }
}

/// Best effort: tells the client on a framed stream why the connection phase failed.
pub async fn tell_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut PacketStream<S>,
    seq: u8,
    error: &HandshakeError,
) {
    if let HandshakeError::Client(client) = error {
        stream.queue_packet(seq, &client.packet());
        let _ = tokio::time::timeout(TELL_TIMEOUT, stream.close()).await;
    }
}

/// Sends the greeting and reads the client's first packet exactly, so that
/// TLS bytes sent right behind an SSL request are not swallowed by a buffer.
async fn greet(
    tcp: &mut TcpStream,
    caps: Caps,
    connection_id: u32,
    scramble: &[u8; SCRAMBLE_LEN],
) -> Result<Vec<u8>, HandshakeError> {
    let greeting = HandshakePacket::new(
        10,
        SERVER_VERSION.as_bytes(),
        connection_id,
        scramble[..8].try_into().unwrap_or([0; 8]),
        Some(scramble_tail(scramble)),
        caps,
        DEFAULT_COLLATION,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(AuthPlugin::MysqlNativePassword.as_bytes()),
    );
    let mut body = Vec::new();
    greeting.serialize(&mut body);
    tcp.write_all(&frame(0, &body))
        .await
        .map_err(|error| HandshakeError::Codec(CodecError::Io(error)))?;
    let (seq, first) = read_exact_packet(tcp).await?;
    if seq != 1 {
        return Err(HandshakeError::Client(ClientError::OutOfOrder));
    }
    Ok(first)
}

/// Runs a connection-phase step within the handshake deadline.
pub async fn within<T>(
    deadline: Instant,
    step: impl Future<Output = Result<T, impl Into<HandshakeError>>>,
) -> Result<T, HandshakeError> {
    match tokio::time::timeout_at(deadline, step).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(HandshakeError::Client(ClientError::Timeout)),
    }
}

/// Best effort: tells the client why the connection phase failed.
pub async fn tell<S: AsyncWrite + Unpin>(io: &mut S, seq: u8, error: &HandshakeError) {
    if let HandshakeError::Client(client) = error {
        let packet = frame(seq, &client.packet());
        let write = async {
            io.write_all(&packet).await?;
            io.flush().await?;
            io.shutdown().await
        };
        let _ = tokio::time::timeout(TELL_TIMEOUT, write).await;
    }
}

/// Asks the client for its password in clear (`mysql_clear_password`) and returns it.
pub async fn request_cleartext(
    stream: &mut PacketStream<BoxStream>,
    hello: &mut ClientHello,
) -> Result<SecretString, HandshakeError> {
    if !hello.caps.contains(Caps::CLIENT_PLUGIN_AUTH) {
        return Err(HandshakeError::Client(ClientError::BadHandshake(
            "the client cannot switch authentication plugins (no CLIENT_PLUGIN_AUTH)".into(),
        )));
    }
    let mut data = hello.scramble.to_vec();
    data.push(0);
    let switch = AuthSwitchRequest::new(AuthPlugin::MysqlClearPassword.as_bytes(), data);
    let mut body = Vec::new();
    switch.serialize(&mut body);
    let seq = stream.send_packet(hello.next_seq, &body).await?;
    let answer = stream.read_packet(Some(seq), HANDSHAKE_LIMIT).await?;
    hello.next_seq = answer.last_seq.wrapping_add(1);
    Ok(cleartext(&answer.payload))
}

/// Why the connection phase failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client can be told (and is, before closing).
    #[error("{0}")]
    Client(ClientError),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("{0}")]
    Codec(CodecError),
}

impl From<CodecError> for HandshakeError {
    fn from(error: CodecError) -> Self {
        match ClientError::from_codec(&error) {
            Some(client) => HandshakeError::Client(client),
            None => HandshakeError::Codec(error),
        }
    }
}

fn new_scramble() -> [u8; SCRAMBLE_LEN] {
    // Printable, never NUL: clients treat the scramble as a C string.
    let mut rng = rand::rng();
    std::array::from_fn(|_| rng.random_range(0x21u8..0x7f))
}

/// The second scramble part, NUL-terminated as servers send it.
fn scramble_tail(scramble: &[u8; SCRAMBLE_LEN]) -> Vec<u8> {
    let mut tail = scramble[8..].to_vec();
    tail.push(0);
    tail
}

async fn read_exact_packet(tcp: &mut TcpStream) -> Result<(u8, Vec<u8>), HandshakeError> {
    let mut header = [0u8; 4];
    read_exact(tcp, &mut header).await?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len > HANDSHAKE_LIMIT {
        return Err(HandshakeError::Client(ClientError::PacketTooLarge(
            HANDSHAKE_LIMIT,
        )));
    }
    let mut body = vec![0u8; len];
    read_exact(tcp, &mut body).await?;
    Ok((header[3], body))
}

async fn read_exact(tcp: &mut TcpStream, buf: &mut [u8]) -> Result<(), HandshakeError> {
    match tcp.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(HandshakeError::Codec(CodecError::Truncated))
        }
        Err(error) => Err(HandshakeError::Codec(CodecError::Io(error))),
    }
}

fn bad(message: &str) -> HandshakeError {
    HandshakeError::Client(ClientError::BadHandshake(message.to_string()))
}

fn peek_caps(payload: &[u8]) -> Result<Caps, HandshakeError> {
    let bytes: [u8; 4] = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the handshake response is too short"))?;
    Ok(Caps::from_bits_truncate(u32::from_le_bytes(bytes)))
}

/// Parses and checks a HandshakeResponse41.
fn parse_response(
    payload: &[u8],
    offered: Caps,
    tls: bool,
    scramble: [u8; SCRAMBLE_LEN],
    next_seq: u8,
) -> Result<ClientHello, HandshakeError> {
    if payload.len() < 32 {
        return Err(bad("the handshake response is too short"));
    }
    let raw = peek_caps(payload)?;
    let raw_bits = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    if !raw.contains(Caps::CLIENT_PROTOCOL_41) {
        return Err(bad("the client does not speak protocol 4.1"));
    }
    if !raw.contains(Caps::CLIENT_SECURE_CONNECTION)
        && !raw.contains(Caps::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)
    {
        return Err(bad("pre-4.1 password authentication is not supported"));
    }
    if raw.contains(Caps::CLIENT_SSL) && !tls {
        return Err(bad("CLIENT_SSL is set but no TLS was negotiated"));
    }
    // Bits that mean nothing (or change the framing, like compression) and
    // were never offered: a client that sets them is not a real client.
    let unknown = raw_bits & !(Caps::all().bits());
    if unknown != 0
        || (raw.contains(Caps::CLIENT_COMPRESS) && !offered.contains(Caps::CLIENT_COMPRESS))
        // zstd compression changes the framing and is never offered.
        || raw.contains(Caps::CLIENT_ZSTD_COMPRESSION_ALGORITHM)
    {
        return Err(bad("capability flags the server never offered"));
    }
    let response = HandshakeResponse::deserialize((), &mut ParseBuf(payload))
        .map_err(|error| bad(&format!("malformed handshake response: {error}")))?;
    let caps = response.capabilities() & offered;
    let user = String::from_utf8_lossy(response.user()).into_owned();
    let database = match response.db_name() {
        Some(name) if !name.is_empty() => Some(
            String::from_utf8(name.to_vec()).map_err(|_| bad("the database name is not UTF-8"))?,
        ),
        _ => None,
    };
    let data = response.scramble_buf();
    let credential = match response.auth_plugin() {
        Some(AuthPlugin::MysqlClearPassword) => ClientCredential::Cleartext(cleartext(data)),
        Some(AuthPlugin::MysqlNativePassword) | None if data.len() == SCRAMBLE_LEN => {
            ClientCredential::Native(data.to_vec())
        }
        _ => ClientCredential::Other,
    };
    Ok(ClientHello {
        user,
        database,
        caps,
        collation: response.collation(),
        tls,
        scramble,
        credential,
        next_seq,
    })
}

/// A cleartext password packet: the text, NUL-terminated by most clients.
pub(crate) fn cleartext(data: &[u8]) -> SecretString {
    let text = data.strip_suffix(&[0]).unwrap_or(data);
    SecretString::from(String::from_utf8_lossy(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::packets::HandshakeResponse;
    use secrecy::ExposeSecret;

    fn response(caps: Caps, plugin: AuthPlugin<'_>, data: &[u8], db: Option<&str>) -> Vec<u8> {
        let packet = HandshakeResponse::new(
            Some(data.to_vec()),
            (8, 0, 0),
            Some(b"agent".to_vec()),
            db.map(|d| d.as_bytes().to_vec()),
            Some(plugin),
            caps,
            None,
            1 << 24,
        );
        let mut out = Vec::new();
        packet.serialize(&mut out);
        out
    }

    fn client_caps() -> Caps {
        Caps::CLIENT_PROTOCOL_41
            | Caps::CLIENT_SECURE_CONNECTION
            | Caps::CLIENT_PLUGIN_AUTH
            | Caps::CLIENT_DEPRECATE_EOF
            | Caps::CLIENT_LOCAL_FILES
    }

    #[test]
    fn parses_a_native_response_and_masks_unoffered_caps() {
        let payload = response(
            client_caps(),
            AuthPlugin::MysqlNativePassword,
            &[1; 20],
            Some("orders"),
        );
        let hello = parse_response(&payload, server_caps(false), false, [b'a'; 20], 2).unwrap();
        assert_eq!(hello.user, "agent");
        assert_eq!(hello.database.as_deref(), Some("orders"));
        assert_eq!(hello.target_name(), "orders");
        assert!(hello.caps.contains(Caps::CLIENT_DEPRECATE_EOF));
        assert!(hello.caps.contains(Caps::CLIENT_LOCAL_FILES));
        assert!(matches!(hello.credential, ClientCredential::Native(ref r) if r.len() == 20));
    }

    #[test]
    fn the_target_is_the_database_else_the_user_names_suffix() {
        let hello = |user: &str, database: Option<&str>| ClientHello {
            user: user.into(),
            database: database.map(Into::into),
            caps: Caps::empty(),
            collation: 45,
            tls: false,
            scramble: [0; SCRAMBLE_LEN],
            credential: ClientCredential::Other,
            next_seq: 2,
        };
        assert_eq!(hello("agent@orders", None).target_name(), "orders");
        assert_eq!(
            hello("alice@example.com@orders", None).target_name(),
            "orders"
        );
        assert_eq!(
            hello("alice@example.com", Some("orders")).target_name(),
            "orders"
        );
        assert_eq!(hello("agent", None).target_name(), "");
        assert_eq!(hello("wdn_abc@orders", None).login_user(), "wdn_abc");
        assert_eq!(hello("a@b.com", Some("orders")).login_user(), "a@b.com");
        assert_eq!(
            hello("wdn_abc@orders", Some("orders")).login_user(),
            "wdn_abc"
        );
        assert_eq!(hello("agent@", None).target_name(), "");
    }

    #[test]
    fn parses_a_cleartext_response() {
        let payload = response(
            client_caps(),
            AuthPlugin::MysqlClearPassword,
            b"token\0",
            Some("orders"),
        );
        let hello = parse_response(&payload, server_caps(false), false, [b'a'; 20], 2).unwrap();
        let ClientCredential::Cleartext(secret) = hello.credential else {
            panic!("expected cleartext");
        };
        assert_eq!(secret.expose_secret(), "token");
    }

    #[test]
    fn rejects_absurd_capabilities() {
        let mut payload = response(
            client_caps(),
            AuthPlugin::MysqlNativePassword,
            &[1; 20],
            None,
        );
        payload[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_response(&payload, server_caps(false), false, [b'a'; 20], 2).is_err());
        payload[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(parse_response(&payload, server_caps(false), false, [b'a'; 20], 2).is_err());
        let zstd = (client_caps() | Caps::CLIENT_ZSTD_COMPRESSION_ALGORITHM).bits();
        payload[..4].copy_from_slice(&zstd.to_le_bytes());
        assert!(parse_response(&payload, server_caps(false), false, [b'a'; 20], 2).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let mut with_caps = bytes.clone();
            if with_caps.len() >= 4 {
                with_caps[..4].copy_from_slice(&client_caps().bits().to_le_bytes());
            }
            let _ = parse_response(&bytes, server_caps(true), true, [b'a'; 20], 2);
            let _ = parse_response(&with_caps, server_caps(true), true, [b'a'; 20], 2);
        }
    }
}
