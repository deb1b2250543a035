//! Hostile and broken clients: each gets a protocol-correct error (or a clean
//! close) — never a panic, a hang or a leaked detail — and Warden keeps serving.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use warden_test_support::warden::psql;

/// Reads whatever the server sends until it closes (bounded by a timeout).
fn read_until_close(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("no close within the timeout ({e}); got {out:?}"),
        }
    }
}

/// The SQLSTATE of the first ErrorResponse in `bytes`.
fn sqlstate(bytes: &[u8]) -> Option<String> {
    let start = bytes.iter().position(|&b| b == b'E')?;
    let body = bytes.get(start + 5..)?;
    let mut pos = 0;
    while pos < body.len() && body[pos] != 0 {
        let kind = body[pos];
        let end = pos + 1 + body[pos + 1..].iter().position(|&b| b == 0)?;
        if kind == b'C' {
            return Some(String::from_utf8_lossy(&body[pos + 1..end]).into_owned());
        }
        pos = end + 1;
    }
    None
}

fn startup(params: &[(&str, &[u8])], version: u32) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v);
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

fn connect(env: &common::Env) -> TcpStream {
    TcpStream::connect(("127.0.0.1", env.warden.pg_port)).unwrap()
}

/// Warden still serves a normal client.
fn assert_still_serving(env: &common::Env, key: &str) {
    let (ok, out, err) = psql(&env.conninfo(), key, &["-At", "-c", "SELECT 'alive'"]);
    assert!(ok && out.trim() == "alive", "warden stopped serving: {err}");
}

#[test]
fn malformed_packets_get_protocol_errors_and_warden_keeps_serving() {
    let env = common::start();
    let key = env.warden.create_key("ok", &["agents"]).unwrap();

    // Random bytes before startup: an impossible length.
    let mut s = connect(&env);
    s.write_all(b"\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(
        sqlstate(&read_until_close(&mut s)).as_deref(),
        Some("08P01")
    );

    // A startup length of 2^31-1: refused without allocating it.
    let mut s = connect(&env);
    s.write_all(&0x7fff_ffffu32.to_be_bytes()).unwrap();
    s.write_all(&196608u32.to_be_bytes()).unwrap();
    assert_eq!(
        sqlstate(&read_until_close(&mut s)).as_deref(),
        Some("08P01")
    );

    // Truncated startup packet, then the client goes away: clean close.
    let mut s = connect(&env);
    s.write_all(&[0, 0, 0, 40, 0, 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_until_close(&mut s).is_empty());

    // Unknown protocol version.
    let mut s = connect(&env);
    s.write_all(&startup(&[("user", b"a")], 0x0004_0000))
        .unwrap();
    assert_eq!(
        sqlstate(&read_until_close(&mut s)).as_deref(),
        Some("0A000")
    );

    // Non-UTF-8 startup parameters.
    let mut s = connect(&env);
    s.write_all(&startup(
        &[("user", b"\xff\xfe"), ("database", b"orders")],
        196608,
    ))
    .unwrap();
    assert_eq!(
        sqlstate(&read_until_close(&mut s)).as_deref(),
        Some("08P01")
    );

    // Replication connections are refused.
    let mut s = connect(&env);
    s.write_all(&startup(
        &[
            ("user", b"a"),
            ("database", b"orders"),
            ("replication", b"true"),
        ],
        196608,
    ))
    .unwrap();
    assert_eq!(
        sqlstate(&read_until_close(&mut s)).as_deref(),
        Some("0A000")
    );

    // An oversized password message (length 2^31-1) after the startup.
    let mut s = connect(&env);
    s.write_all(&startup(&[("user", b"a"), ("database", b"orders")], 196608))
        .unwrap();
    let mut request = [0u8; 9];
    s.read_exact(&mut request).unwrap();
    assert_eq!(request[0], b'R', "cleartext password request");
    s.write_all(b"p\x7f\xff\xff\xff").unwrap();
    assert_eq!(
        sqlstate(&read_until_close(&mut s)).as_deref(),
        Some("08P01")
    );

    // An oversized message after login: 2^31-1 declared, refused with a FATAL.
    let mut s = connect(&env);
    s.write_all(&startup(&[("user", b"a"), ("database", b"orders")], 196608))
        .unwrap();
    s.read_exact(&mut request).unwrap();
    let mut password = b"p".to_vec();
    password.extend_from_slice(&((key.len() + 5) as u32).to_be_bytes());
    password.extend_from_slice(key.as_bytes());
    password.push(0);
    s.write_all(&password).unwrap();
    // Wait for ReadyForQuery, then send the lying frame.
    let mut greeting = Vec::new();
    let mut buf = [0u8; 4096];
    while !greeting.windows(6).any(|w| w == b"Z\0\0\0\x05I") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before ReadyForQuery: {greeting:?}");
        greeting.extend_from_slice(&buf[..n]);
    }
    s.write_all(b"Q\x7f\xff\xff\xffSELECT 1").unwrap();
    assert_eq!(
        sqlstate(&read_until_close(&mut s)).as_deref(),
        Some("08P01")
    );

    // Protocol 3.2: Warden's own cancel key is 32 bytes long.
    let mut s = connect(&env);
    s.write_all(&startup(
        &[("user", b"a"), ("database", b"orders")],
        0x0003_0002,
    ))
    .unwrap();
    s.read_exact(&mut request).unwrap();
    s.write_all(&password).unwrap();
    let mut greeting = Vec::new();
    while !greeting.windows(6).any(|w| w == b"Z\0\0\0\x05I") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before ReadyForQuery: {greeting:?}");
        greeting.extend_from_slice(&buf[..n]);
    }
    let key_data = greeting
        .windows(5)
        .position(|w| w[0] == b'K' && w[1..5] == (4u32 + 4 + 32).to_be_bytes())
        .expect("a BackendKeyData with a 32-byte key");
    assert!(key_data > 0);
    drop(s);

    // A GSSENCRequest is declined with 'N' and the connection goes on.
    let mut s = connect(&env);
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]).unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"N");

    assert_still_serving(&env, &key);
}

#[test]
fn ssl_request_with_pipelined_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key_path) = warden_test_support::tls::self_signed(dir.path(), "warden").unwrap();
    let (pg, app_password) = common::upstream();
    let issuer = warden_test_support::oidc::TestIssuer::start().unwrap();
    let extra = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key_path.display()
    );
    let warden = warden_test_support::warden::Warden::start(
        common::binary(),
        warden_test_support::warden::WardenConfig {
            body: format!(
                "{extra}\n{}",
                common::target_config(&pg, &issuer, common::DEFAULT_POLICIES, "")
            ),
            env: vec![("ORDERS_PASSWORD".into(), app_password)],
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", warden.pg_port)).unwrap();
    let mut packet = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    packet.extend_from_slice(&startup(&[("user", b"a"), ("database", b"orders")], 196608));
    s.write_all(&packet).unwrap();
    let reply = read_until_close(&mut s);
    assert_eq!(
        sqlstate(&reply).as_deref(),
        Some("08P01"),
        "Warden must refuse, in clear, bytes pipelined after SSLRequest: {reply:?}"
    );

    // TLS clients work: sslmode=require through Warden.
    let key = warden.create_key("tls", &["agents"]).unwrap();
    let conninfo = format!(
        "host=127.0.0.1 port={} user=a dbname=orders sslmode=require",
        warden.pg_port
    );
    let (ok, out, err) = psql(
        &conninfo,
        &key,
        &[
            "-At",
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ],
    );
    assert!(ok, "{err}");
    // The upstream leg is plain on loopback; the client leg is TLS (checked by psql's sslmode).
    assert_eq!(out.trim(), "f");
}

#[test]
fn bad_tokens_and_keys_get_one_generic_error() {
    let env = common::start();
    let key = env.warden.create_key("ok", &["agents"]).unwrap();
    let revoked = env.warden.create_key("revoked", &["agents"]).unwrap();
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    env.warden.cli(&["keys", "revoke", &revoked_id]).unwrap();
    let expired = env
        .warden
        .cli(&[
            "keys", "create", "--name", "short", "--groups", "agents", "--ttl", "1s", "--json",
        ])
        .unwrap();
    let expired: serde_json::Value = serde_json::from_str(&expired).unwrap();
    let expired = expired["key"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1500));

    let issuer = &env.issuer;
    let cases = [
        ("expired token", issuer.expired_token()),
        ("not yet valid", issuer.not_yet_valid_token()),
        ("wrong audience", issuer.wrong_audience_token()),
        ("wrong issuer", issuer.wrong_issuer_token()),
        ("bad signature", issuer.bad_signature_token()),
        ("alg none", issuer.alg_none_token()),
        ("HS256 with the public key", issuer.hs256_confusion_token()),
        ("unknown kid", issuer.unknown_kid_token()),
        ("revoked key", revoked.clone()),
        ("expired key", expired.clone()),
        ("garbage", "not-a-token".to_string()),
    ];
    for (name, credential) in &cases {
        let (ok, _, err) = psql(&env.conninfo(), credential, &["-c", "SELECT 1"]);
        assert!(!ok, "{name} was accepted");
        assert!(
            err.contains("authentication failed"),
            "{name}: expected the generic message, got {err}"
        );
        for leak in [
            "expired",
            "audience",
            "signature",
            "kid",
            "revoked",
            "issuer",
        ] {
            assert!(
                !err.to_lowercase().contains(leak),
                "{name}: the client learned why ({leak}): {err}"
            );
        }
    }
    // The reasons are in the log (and audit trail) for operators.
    let logs = env.warden.logs();
    for reason in [
        "token expired",
        "audience mismatch",
        "signature invalid",
        "not allowed",
        "revoked",
    ] {
        assert!(
            logs.contains(reason),
            "the log lacks the reason {reason:?}:\n{logs}"
        );
    }
    assert_still_serving(&env, &key);
}

#[test]
fn unknown_and_forbidden_targets_look_the_same_and_upstream_down_is_clear() {
    let env = common::start();
    let agent = env.warden.create_key("agent", &["agents"]).unwrap();
    let stranger = env.warden.create_key("stranger", &["nobody"]).unwrap();
    let unknown = format!(
        "host=127.0.0.1 port={} user=a dbname=nosuchdb sslmode=disable",
        env.warden.pg_port
    );
    let (ok, _, unknown_err) = psql(&unknown, &agent, &["-c", "SELECT 1"]);
    assert!(!ok);
    let (ok, _, forbidden_err) = psql(&env.conninfo(), &stranger, &["-c", "SELECT 1"]);
    assert!(!ok);
    let strip = |e: &str| e.replace("nosuchdb", "T").replace("orders", "T");
    assert!(unknown_err.contains("is not permitted"), "{unknown_err}");
    assert_eq!(
        strip(&unknown_err).lines().skip(1).collect::<Vec<_>>(),
        strip(&forbidden_err).lines().skip(1).collect::<Vec<_>>(),
        "unknown and forbidden targets must be indistinguishable"
    );

    // Upstream down: stop PostgreSQL, expect a clear error naming the target, fast.
    drop(env.pg);
    let started = std::time::Instant::now();
    let (ok, _, err) = psql(&env.warden.conninfo("orders"), &agent, &["-c", "SELECT 1"]);
    assert!(!ok);
    assert!(
        err.contains("target \"orders\" is unavailable"),
        "unclear upstream error: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}
