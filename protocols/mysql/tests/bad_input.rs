//! Hostile and broken clients, over raw TCP: each gets a clear error (when one
//! can be sent), its connection is closed, and Warden keeps serving others.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// A harness whose upstream does not matter (these clients never get that far).
async fn harness() -> Harness {
    let mut options = Options::new("127.0.0.1:1".into(), "shop", "app", "pw");
    options.handshake_timeout = "1s";
    Harness::start(options).await
}

/// Connects and reads the greeting; returns the scramble.
async fn greeted(h: &Harness) -> (Raw, Vec<u8>) {
    let mut raw = Raw::connect(h.addr).await;
    let (seq, greeting) = raw.read().await.expect("greeting");
    assert_eq!(seq, 0);
    assert_eq!(greeting[0], 10, "protocol version 10");
    let version_end = greeting.iter().position(|&b| b == 0).unwrap();
    let scramble_1 = &greeting[version_end + 5..version_end + 13];
    let rest = &greeting[version_end + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10..];
    let mut scramble = scramble_1.to_vec();
    scramble.extend_from_slice(&rest[..12]);
    (raw, scramble)
}

/// Warden still greets and authenticates a well-behaved client (up to the upstream).
async fn still_serving(h: &Harness) {
    let (mut raw, _) = greeted(h).await;
    raw.send(1, &handshake_response(RAW_CAPS, "agent", &[], Some(TARGET)))
        .await;
    let (seq, switch) = raw.read().await.expect("auth switch");
    assert_eq!(seq, 2);
    assert_eq!(switch[0], 0xFE, "AuthSwitchRequest");
    assert!(switch[1..].starts_with(b"mysql_clear_password\0"));
    raw.send(3, format!("{TOKEN}\0").as_bytes()).await;
    // The upstream (port 1) is down: a clear error naming the target.
    let (_, err) = raw.read().await.expect("error");
    assert_eq!(err_code(&err), Some(1429), "{}", err_message(&err));
    assert!(
        err_message(&err).contains(&format!("\"{TARGET}\"")),
        "{}",
        err_message(&err)
    );
    assert!(raw.closed().await);
}

#[tokio::test]
async fn garbage_before_the_handshake_response() {
    let h = harness().await;
    let (mut raw, _) = greeted(&h).await;
    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (_, err) = raw.read().await.expect("an error packet");
    assert_eq!(err_code(&err), Some(1153), "{}", err_message(&err));
    assert!(raw.closed().await);

    let (mut raw, _) = greeted(&h).await;
    raw.send(1, &[0x5a; 40]).await;
    let (_, err) = raw.read().await.expect("an error packet");
    assert_eq!(err_code(&err), Some(1043), "{}", err_message(&err));
    assert!(raw.closed().await);
    still_serving(&h).await;
}

#[tokio::test]
async fn truncated_packet() {
    let h = harness().await;
    let (mut raw, _) = greeted(&h).await;
    raw.send_bytes(&[100, 0, 0, 1, 1, 2, 3]).await;
    raw.stream.shutdown().await.unwrap();
    assert!(raw.closed().await);
    still_serving(&h).await;
}

#[tokio::test]
async fn length_that_lies_times_out() {
    let h = harness().await;
    let (mut raw, _) = greeted(&h).await;
    // Announces 200 bytes, sends 50, then waits.
    raw.send_bytes(&[200, 0, 0, 1]).await;
    raw.send_bytes(&[0; 50]).await;
    let (_, err) = raw.read().await.expect("a timeout error");
    assert_eq!(err_code(&err), Some(1159), "{}", err_message(&err));
    assert!(raw.closed().await);
    still_serving(&h).await;
}

#[tokio::test]
async fn sequence_id_out_of_order() {
    let h = harness().await;
    let (mut raw, _) = greeted(&h).await;
    raw.send(5, &handshake_response(RAW_CAPS, "agent", &[], Some(TARGET)))
        .await;
    let (_, err) = raw.read().await.expect("an error packet");
    assert_eq!(err_code(&err), Some(1156), "{}", err_message(&err));
    assert!(raw.closed().await);
    still_serving(&h).await;
}

#[tokio::test]
async fn oversized_handshake_packet() {
    let h = harness().await;
    let (mut raw, _) = greeted(&h).await;
    raw.send_bytes(&[0xff, 0xff, 0x0f, 1]).await;
    let (_, err) = raw.read().await.expect("an error packet");
    assert_eq!(err_code(&err), Some(1153), "{}", err_message(&err));
    assert!(raw.closed().await);
    still_serving(&h).await;
}

#[tokio::test]
async fn absurd_capability_bits() {
    let h = harness().await;
    for caps in [
        u32::MAX,
        0,
        RAW_CAPS | 0x0400_0000, /* zstd compression never offered */
    ] {
        let (mut raw, _) = greeted(&h).await;
        raw.send(1, &handshake_response(caps, "agent", &[], Some(TARGET)))
            .await;
        let (_, err) = raw.read().await.expect("an error packet");
        assert_eq!(
            err_code(&err),
            Some(1043),
            "caps {caps:#x}: {}",
            err_message(&err)
        );
        assert!(raw.closed().await);
    }
    still_serving(&h).await;
}

#[tokio::test]
async fn auth_switch_answer_never_comes() {
    let h = harness().await;
    let (mut raw, _) = greeted(&h).await;
    raw.send(1, &handshake_response(RAW_CAPS, "agent", &[], Some(TARGET)))
        .await;
    let (_, switch) = raw.read().await.expect("auth switch");
    assert_eq!(switch[0], 0xFE);
    // Say nothing: the handshake deadline (1 s) ends it.
    let (_, err) = raw.read().await.expect("a timeout error");
    assert_eq!(err_code(&err), Some(1159), "{}", err_message(&err));
    assert!(raw.closed().await);
    still_serving(&h).await;
}

#[tokio::test]
async fn wrong_token_gets_one_generic_error() {
    let h = harness().await;
    let mut messages = Vec::new();
    // A wrong token; a good token for an unknown target; a good token for a
    // Postgres target; a token whose identity policy refuses.
    for (token, target) in [
        ("not-a-token", TARGET),
        (TOKEN, "nope"),
        (TOKEN, "pg"),
        (TOKEN_MALLORY, TARGET),
    ] {
        let (mut raw, _) = greeted(&h).await;
        raw.send(1, &handshake_response(RAW_CAPS, "agent", &[], Some(target)))
            .await;
        raw.read().await.expect("auth switch");
        raw.send(3, format!("{token}\0").as_bytes()).await;
        let (seq, err) = raw.read().await.expect("an error packet");
        assert_eq!(seq, 4);
        assert_eq!(err_code(&err), Some(1045), "{}", err_message(&err));
        messages.push(err_message(&err));
        assert!(raw.closed().await);
    }
    assert!(
        messages.iter().all(|m| m == warden_mysql::ACCESS_DENIED),
        "{messages:?}"
    );
    assert_eq!(h.count(&h.gateway.metrics.auth_failures), 1);
    let audit = h.log.audit.lock().unwrap().clone();
    let kinds: Vec<&str> = audit.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "auth.failure",
            "connect.denied",
            "connect.denied",
            "connect.denied"
        ]
    );
    // The test authenticator's refusal reaches the audit trail.
    assert!(
        audit[0]
            .detail
            .contains(&warden_core::engines::AuthReason::UnrecognisedCredential.to_string()),
        "{}",
        audit[0].detail
    );
    assert!(h.log.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn too_many_connections_is_refused_in_protocol() {
    let mut options = Options::new("127.0.0.1:1".into(), "shop", "app", "pw");
    options.max_connections = 1;
    options.handshake_timeout = "10s";
    let h = Harness::start(options).await;
    let (_held, _) = greeted(&h).await;
    let mut second = Raw::connect(h.addr).await;
    let (seq, err) = second.read().await.expect("an error packet");
    assert_eq!(seq, 0);
    assert_eq!(err_code(&err), Some(1040), "{}", err_message(&err));
    assert!(second.closed().await);
}
