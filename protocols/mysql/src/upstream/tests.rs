//! The upstream login against scripted servers, with published test vectors
//! (go-sql-driver/mysql `auth_test.go`) for the scrambles: no MySQL 8 server
//! can be installed here, so `caching_sha2_password` is covered this way.

use super::*;
use mysql_common::auth::plugins::caching_sha2_password::scramble_sha256;
use mysql_common::auth::plugins::mysql_native_password::scramble_native;
use mysql_common::constants::StatusFlags;
use secrecy::SecretString;
use std::time::Duration;
use tokio::net::TcpListener;
use warden_core::config::{CredentialsConfig, Protocol};
use warden_core::secret::SecretRef;

const NATIVE_NONCE: [u8; 20] = [
    70, 114, 92, 94, 1, 38, 11, 116, 63, 114, 23, 101, 126, 103, 26, 95, 81, 17, 24, 21,
];
const NATIVE_SECRET: [u8; 20] = [
    53, 177, 140, 159, 251, 189, 127, 53, 109, 252, 172, 50, 211, 192, 240, 164, 26, 48, 207, 45,
];
const SHA2_NONCE: [u8; 20] = [
    6, 81, 96, 114, 14, 42, 50, 30, 76, 47, 1, 95, 126, 81, 62, 94, 83, 80, 52, 85,
];
const SHA2_SECRET: [u8; 32] = [
    171, 201, 138, 146, 89, 159, 11, 170, 0, 67, 165, 49, 175, 94, 218, 68, 177, 109, 110, 86, 34,
    33, 44, 190, 67, 240, 70, 110, 40, 139, 124, 41,
];
const TEST_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAol0Z8G8U+25Btxk/g/fm
UAW/wEKjQCTjkibDE4B+qkuWeiumg6miIRhtilU6m9BFmLQSy1ltYQuu4k17A4tQ
rIPpOQYZges/qsDFkZh3wyK5jL5WEFVdOasf6wsfszExnPmcZS4axxoYJfiuilrN
hnwinBAqfi3S0sw5MpSI4Zl1AbOrHG4zDI62Gti2PKiMGyYDZTS9xPrBLbN95Kby
FFclQLEzA9RJcS1nHFsWtRgHjGPhhjCQxEm9NQ1nePFhCfBfApyfH1VM2VCOQum6
Ci9bMuHWjTjckC84mzF99kOxOWVU7mwS6gnJqBzpuz8t3zq8/iQ2y7QrmZV+jTJP
WQIDAQAB
-----END PUBLIC KEY-----
";

#[test]
fn scramble_vectors() {
    let scramble = [
        10, 47, 74, 111, 75, 73, 34, 48, 88, 76, 114, 74, 37, 13, 3, 80, 82, 2, 23, 21,
    ];
    let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(scramble_sha256(&scramble, b"secret").unwrap()),
        "f490e76f66d9d86665ce54d98c78d0acfe2fb0b08b423da807144873d30b312c"
    );
    assert_eq!(
        hex(scramble_sha256(&scramble, b"secret2").unwrap()),
        "abc3934a012cf342e876071c8ee202de51785b430258a7a0138bc79c4d800bc6"
    );
    assert_eq!(
        scramble_sha256(&SHA2_NONCE, b"secret").unwrap(),
        SHA2_SECRET
    );
    assert_eq!(
        scramble_native(&NATIVE_NONCE, b"secret").unwrap(),
        NATIVE_SECRET
    );
}

fn target(address: String) -> TargetConfig {
    TargetConfig {
        name: "fake".into(),
        protocol: Protocol::Mysql,
        address,
        database: Some("db".into()),
        databases: Vec::new(),
        upstream_tls: Some(UpstreamTls::Disable),
        upstream_ca: None,
        upstream_server_name: None,
        connect_timeout: Duration::from_secs(5),
        credentials: CredentialsConfig::Static {
            user: "app".into(),
            password: SecretRef::Env("UNUSED".into()),
        },
        retention: None,
        max_sessions: None,
    }
}

fn credential() -> UpstreamCredential {
    UpstreamCredential::fixed("app", SecretString::from("secret"))
}

fn greeting(plugin: &[u8], nonce: &[u8; 20]) -> Vec<u8> {
    let caps = Caps::CLIENT_PROTOCOL_41
        | Caps::CLIENT_SECURE_CONNECTION
        | Caps::CLIENT_PLUGIN_AUTH
        | Caps::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Caps::CLIENT_CONNECT_WITH_DB
        | Caps::CLIENT_DEPRECATE_EOF;
    let mut tail = nonce[8..].to_vec();
    tail.push(0);
    let packet = HandshakePacket::new(
        10,
        &b"8.0.36-fake"[..],
        7,
        nonce[..8].try_into().unwrap(),
        Some(tail),
        caps,
        45,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(plugin),
    );
    let mut out = Vec::new();
    packet.serialize(&mut out);
    out
}

/// Runs `script` as the server for one connection; returns Warden's login result.
async fn login<F, Fut>(script: F) -> Result<Upstream, UpstreamError>
where
    F: FnOnce(PacketStream<TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(PacketStream::new(stream)).await;
    });
    let result = connect_target(
        &target(address),
        &credential(),
        Caps::CLIENT_DEPRECATE_EOF | Caps::CLIENT_MULTI_STATEMENTS | Caps::CLIENT_LOCAL_FILES,
        45,
    )
    .await;
    server.await.unwrap();
    result
}

/// Reads the HandshakeResponse and returns (caps, user, auth data, database, plugin).
async fn read_response(server: &mut PacketStream<TcpStream>) -> (Caps, Vec<u8>, Vec<u8>, Vec<u8>) {
    let packet = server.read_packet(Some(1), 1 << 16).await.unwrap();
    let response = HandshakeResponse::deserialize((), &mut ParseBuf(&packet.payload)).unwrap();
    assert_eq!(response.collation(), 45);
    (
        response.capabilities(),
        response.scramble_buf().to_vec(),
        response.db_name().unwrap().to_vec(),
        response.auth_plugin().unwrap().as_bytes().to_vec(),
    )
}

#[tokio::test]
async fn native_password_with_a_published_vector() {
    let upstream = login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"mysql_native_password", &NATIVE_NONCE))
            .await
            .unwrap();
        let (caps, auth, db, plugin) = read_response(&mut server).await;
        assert_eq!(auth, NATIVE_SECRET);
        assert_eq!(db, b"db");
        assert_eq!(plugin, b"mysql_native_password");
        assert!(caps.contains(Caps::CLIENT_DEPRECATE_EOF));
        assert!(
            !caps.contains(Caps::CLIENT_MULTI_STATEMENTS),
            "the server did not offer it"
        );
        assert!(
            !caps.contains(Caps::CLIENT_LOCAL_FILES),
            "LOCAL INFILE is never asked for"
        );
        server
            .send_packet(2, &packets::ok_packet(0, 2))
            .await
            .unwrap();
    })
    .await
    .unwrap();
    assert!(upstream.caps.contains(Caps::CLIENT_DEPRECATE_EOF));
    assert_eq!(upstream.server_version, "8.0.36-fake");
}

#[tokio::test]
async fn caching_sha2_fast_path() {
    login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"caching_sha2_password", &SHA2_NONCE))
            .await
            .unwrap();
        let (_, auth, _, plugin) = read_response(&mut server).await;
        assert_eq!(plugin, b"caching_sha2_password");
        assert_eq!(auth, SHA2_SECRET);
        server.send_packet(2, &[0x01, 0x03]).await.unwrap();
        server
            .send_packet(3, &packets::ok_packet(0, 2))
            .await
            .unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn caching_sha2_full_authentication_with_rsa_without_tls() {
    login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"caching_sha2_password", &SHA2_NONCE))
            .await
            .unwrap();
        read_response(&mut server).await;
        server.send_packet(2, &[0x01, 0x04]).await.unwrap();
        // No TLS: the client must ask for the public key, never send the password.
        let ask = server.read_packet(Some(3), 1024).await.unwrap();
        assert_eq!(ask.payload.as_ref(), &[0x02]);
        let mut key = vec![0x01];
        key.extend_from_slice(TEST_PUBLIC_KEY.as_bytes());
        server.send_packet(4, &key).await.unwrap();
        let encrypted = server.read_packet(Some(5), 1024).await.unwrap();
        assert_eq!(encrypted.payload.len(), 256, "one RSA-2048 OAEP block");
        assert!(!encrypted.payload.windows(6).any(|w| w == b"secret"));
        server
            .send_packet(6, &packets::ok_packet(0, 2))
            .await
            .unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn switch_to_cleartext_without_tls_is_refused() {
    let result = login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"mysql_native_password", &NATIVE_NONCE))
            .await
            .unwrap();
        read_response(&mut server).await;
        let switch = AuthSwitchRequest::new(&b"mysql_clear_password"[..], &b""[..]);
        let mut body = Vec::new();
        switch.serialize(&mut body);
        server.send_packet(2, &body).await.unwrap();
        // Whatever happens, the password must not arrive.
        if let Ok(packet) = server.read_packet(Some(3), 1024).await {
            assert!(!packet.payload.windows(6).any(|w| w == b"secret"));
        }
    })
    .await;
    assert!(
        matches!(result, Err(UpstreamError::ClearWithoutTls)),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn switch_to_ed25519() {
    login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"mysql_native_password", &NATIVE_NONCE))
            .await
            .unwrap();
        read_response(&mut server).await;
        let switch = AuthSwitchRequest::new(&b"client_ed25519"[..], &[7u8; 32][..]);
        let mut body = Vec::new();
        switch.serialize(&mut body);
        server.send_packet(2, &body).await.unwrap();
        let signature = server.read_packet(Some(3), 1024).await.unwrap();
        assert_eq!(signature.payload.len(), 64);
        server
            .send_packet(4, &packets::ok_packet(0, 2))
            .await
            .unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refused_login_and_hostile_servers() {
    let refused = login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"mysql_native_password", &NATIVE_NONCE))
            .await
            .unwrap();
        read_response(&mut server).await;
        server
            .send_packet(
                2,
                &packets::err_packet(1045, "28000", "Access denied for user 'app'"),
            )
            .await
            .unwrap();
    })
    .await;
    assert!(matches!(
        refused,
        Err(UpstreamError::Refused { code: 1045, .. })
    ));

    let garbage = login(|mut server| async move {
        server.send_packet(0, &[10, b'x']).await.unwrap();
    })
    .await;
    assert!(
        matches!(garbage, Err(UpstreamError::Protocol(_))),
        "{:?}",
        garbage.err()
    );

    let endless = login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"caching_sha2_password", &SHA2_NONCE))
            .await
            .unwrap();
        read_response(&mut server).await;
        // "Fast auth success" forever: the plugin refuses a second round.
        for seq in 2..22u8 {
            if server.send_packet(seq, &[0x01, 0x03]).await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        matches!(endless, Err(UpstreamError::Protocol(_))),
        "{:?}",
        endless.err()
    );

    let unknown_plugin = login(|mut server| async move {
        server
            .send_packet(0, &greeting(b"auth_gssapi_client", &NATIVE_NONCE))
            .await
            .unwrap();
    })
    .await;
    assert!(
        matches!(unknown_plugin, Err(UpstreamError::Plugin(_))),
        "{:?}",
        unknown_plugin.err()
    );
}

/// A self-signed certificate for 127.0.0.1 (openssl CLI) and a TLS acceptor for it.
fn tls_fixture(dir: &std::path::Path) -> (std::path::PathBuf, tokio_rustls::TlsAcceptor) {
    let cert = dir.join("up.crt");
    let key = dir.join("up.key");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // An end-entity certificate (webpki refuses a CA as the server's own).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    warden_core::tls::install_crypto_provider();
    let acceptor = warden_core::tls::acceptor(&warden_core::config::TlsConfig {
        cert: cert.clone(),
        key,
    })
    .unwrap();
    (cert, acceptor)
}

/// A TLS upstream that switches to mysql_clear_password; returns the login result.
async fn tls_login(
    mode: UpstreamTls,
    ca: Option<std::path::PathBuf>,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Result<Upstream, UpstreamError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut plain = PacketStream::new(stream);
        let mut hello = greeting(b"mysql_native_password", &NATIVE_NONCE);
        // Offer TLS: CLIENT_SSL is in the lower capability half (offset after version).
        let caps_at = hello.iter().position(|&b| b == 0).unwrap() + 1 + 4 + 8 + 1;
        hello[caps_at + 1] |= 0x08;
        plain.send_packet(0, &hello).await.unwrap();
        // Read the SSL request exactly: the TLS ClientHello follows at once.
        let mut tcp = plain.into_inner();
        let mut request = [0u8; 36];
        tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut request)
            .await
            .unwrap();
        assert_eq!(request[..4], [32, 0, 0, 1], "an SSL request");
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut server = PacketStream::new(tls);
        let response = server.read_packet(Some(2), 1 << 16).await.unwrap();
        assert!(!response.payload.windows(6).any(|w| w == b"secret"));
        let switch = AuthSwitchRequest::new(&b"mysql_clear_password"[..], &b""[..]);
        let mut body = Vec::new();
        switch.serialize(&mut body);
        server.send_packet(3, &body).await.unwrap();
        let password = server.read_packet(Some(4), 1024).await.unwrap();
        assert_eq!(password.payload.as_ref(), b"secret\0");
        server
            .send_packet(5, &packets::ok_packet(0, 2))
            .await
            .unwrap();
    });
    let mut target = target(address);
    target.upstream_tls = Some(mode);
    target.upstream_ca = ca;
    let result = connect_target(&target, &credential(), Caps::CLIENT_DEPRECATE_EOF, 45).await;
    server.await.unwrap();
    result
}

#[tokio::test]
async fn upstream_tls_verify_full_then_cleartext_password() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, acceptor) = tls_fixture(dir.path());
    let upstream = tls_login(UpstreamTls::VerifyFull, Some(cert), acceptor)
        .await
        .unwrap();
    assert!(upstream.tls);
    assert!(upstream.caps.contains(Caps::CLIENT_SSL));
}

#[tokio::test]
async fn upstream_tls_require_accepts_any_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_, acceptor) = tls_fixture(dir.path());
    let upstream = tls_login(UpstreamTls::Require, None, acceptor)
        .await
        .unwrap();
    assert!(upstream.tls);
}

#[tokio::test]
async fn upstream_tls_verify_full_rejects_an_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (_, acceptor) = tls_fixture(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = tls_fixture(other.path());
    let result = tls_login(UpstreamTls::VerifyFull, Some(other_ca), acceptor).await;
    assert!(
        matches!(result, Err(UpstreamError::Tls(_))),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn upstream_without_tls_when_required() {
    let result = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut plain = PacketStream::new(stream);
            plain
                .send_packet(0, &greeting(b"mysql_native_password", &NATIVE_NONCE))
                .await
                .unwrap();
        });
        let mut target = target(address);
        target.upstream_tls = Some(UpstreamTls::Require);
        let result = connect_target(&target, &credential(), Caps::empty(), 45).await;
        server.await.unwrap();
        result
    };
    assert!(
        matches!(result, Err(UpstreamError::NoTls)),
        "{:?}",
        result.err()
    );
}
