//! Webhooks against a real HTTP receiver (axum on a random loopback port):
//! CloudEvents and Slack bodies, the HMAC signature, retries with backoff,
//! and a dead endpoint that never holds up a session.
#![allow(clippy::unwrap_used)]

mod common;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use warden_core::config::WebhookFormat;
use warden_core::reviews::ReviewEngine;
use warden_reviews::webhook::verify_signature;
use warden_reviews::{ReviewOptions, Webhook, WebhookOptions};

const SECRET: &str = "hook-secret-for-tests";

struct Delivery {
    path: String,
    headers: HeaderMap,
    body: bytes::Bytes,
}

#[derive(Clone)]
struct Receiver {
    /// Requests to refuse with 503 before accepting.
    refuse_first: Arc<AtomicUsize>,
    seen: mpsc::UnboundedSender<Delivery>,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> StatusCode {
    let refuse = receiver
        .refuse_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let _ = receiver.seen.send(Delivery {
        path: uri.path().to_string(),
        headers,
        body,
    });
    if refuse {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Starts a receiver; returns its base URL and the deliveries it sees.
async fn receiver(refuse_first: usize) -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (seen, rx) = mpsc::unbounded_channel();
    let state = Receiver {
        refuse_first: Arc::new(AtomicUsize::new(refuse_first)),
        seen,
    };
    let app = Router::new()
        .route("/{*path}", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

fn fast() -> ReviewOptions {
    ReviewOptions {
        public_url: Some("https://warden.example".into()),
        webhook: WebhookOptions {
            attempts: 4,
            first_backoff: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
        },
        ..ReviewOptions::default()
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no webhook delivery")
        .unwrap()
}

#[tokio::test]
async fn cloudevents_are_signed_retried_and_carry_the_review() {
    let (url, mut rx) = receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    let hooks = vec![Webhook {
        url: format!("{url}/ce"),
        secret: Some(SecretString::from(SECRET)),
        format: WebhookFormat::Cloudevents,
    }];
    let n = node(&dir, hooks, fast()).await;
    let ticket = n
        .hold(
            "agents write with one approval",
            "s1",
            "UPDATE orders SET paid = true WHERE id = 7",
        )
        .await;
    // Two refusals, then accepted: three tries of the same delivery.
    let tries = [
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    ];
    let delivery_ids: Vec<_> = tries
        .iter()
        .map(|d| d.headers["x-warden-delivery"].to_str().unwrap().to_string())
        .collect();
    assert!(delivery_ids.iter().all(|id| *id == delivery_ids[0]));
    let requested = &tries[2];
    assert_eq!(requested.path, "/ce");
    let signature = requested.headers["x-warden-signature"].to_str().unwrap();
    assert!(verify_signature(
        SECRET.as_bytes(),
        &requested.body,
        signature
    ));
    assert!(!verify_signature(b"wrong", &requested.body, signature));
    assert_eq!(
        requested.headers["content-type"],
        "application/cloudevents+json; charset=utf-8"
    );
    let event: serde_json::Value = serde_json::from_slice(&requested.body).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "dev.warden.review.requested");
    assert_eq!(event["source"], "https://warden.example");
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(event["time"].as_str().is_some());
    let data = &event["data"];
    assert_eq!(data["review_id"], ticket.id.as_str());
    assert_eq!(
        data["statement"],
        "UPDATE orders SET paid = true WHERE id = 7"
    );
    assert_eq!(data["requester"], "key:agent");
    assert_eq!(data["target"], "orders");
    assert_eq!(data["operation"], "write");
    assert_eq!(data["tables"], serde_json::json!(["public.orders"]));
    assert_eq!(
        data["links"]["review"],
        format!("https://warden.example/reviews/{}", ticket.id)
    );
    assert_eq!(
        data["links"]["approve"],
        format!(
            "https://warden.example/api/v1/reviews/{}/approve",
            ticket.id
        )
    );
    assert_eq!(
        ticket.url,
        data["links"]["review"].as_str().map(str::to_string)
    );

    n.service
        .decide(&ticket.id, &oidc("bob", &["dba"]), false, Some("no".into()))
        .await
        .unwrap();
    let decided = next(&mut rx).await;
    let signature = decided.headers["x-warden-signature"].to_str().unwrap();
    assert!(verify_signature(
        SECRET.as_bytes(),
        &decided.body,
        signature
    ));
    let event: serde_json::Value = serde_json::from_slice(&decided.body).unwrap();
    assert_eq!(event["type"], "dev.warden.review.decided");
    assert_eq!(event["data"]["state"], "denied");
    assert_eq!(event["data"]["decided_by"], "bob <bob@example.com>");
    assert_eq!(event["data"]["comment"], "no");
}

#[tokio::test]
async fn slack_messages_have_text_and_blocks_and_no_signature_without_a_secret() {
    let (url, mut rx) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let hooks = vec![Webhook {
        url: format!("{url}/slack"),
        secret: None,
        format: WebhookFormat::Slack,
    }];
    let n = node(&dir, hooks, fast()).await;
    let oncall = oidc("olga", &["oncall"]);
    let ticket = n
        .service
        .request_access(
            &oncall,
            "orders",
            Duration::from_secs(5400),
            Some("INC-7".into()),
        )
        .await
        .unwrap();
    let delivery = next(&mut rx).await;
    assert!(!delivery.headers.contains_key("x-warden-signature"));
    let message: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    let text = message["text"].as_str().unwrap();
    assert!(text.contains("access to *orders* for 1h30m"), "{text}");
    assert!(text.contains("olga"), "{text}");
    let blocks = message["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty());
    let detail = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(detail.contains("Reason: INC-7"), "{detail}");
    assert!(
        detail.contains(&format!("https://warden.example/reviews/{}", ticket.id)),
        "{detail}"
    );
}

#[tokio::test]
async fn a_dead_webhook_never_holds_up_the_session() {
    // A port nothing listens on: bind, note it, close.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let options = ReviewOptions {
        webhook: WebhookOptions {
            attempts: 3,
            first_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        },
        ..ReviewOptions::default()
    };
    let hooks = vec![Webhook {
        url: format!("http://{dead}/hook"),
        secret: Some(SecretString::from(SECRET)),
        format: WebhookFormat::Cloudevents,
    }];
    let n = node(&dir, hooks, options).await;
    // Retries would take a minute; submit and decide return at once anyway.
    let ticket = tokio::time::timeout(
        Duration::from_secs(20),
        n.service.submit(statement(
            "agents write with one approval",
            "s1",
            "UPDATE orders SET x = 1",
        )),
    )
    .await
    .expect("submit waited for the webhook")
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        n.service
            .decide(&ticket.id, &oidc("bob", &["dba"]), true, None),
    )
    .await
    .expect("decide waited for the webhook")
    .unwrap();
}
