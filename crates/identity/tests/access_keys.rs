//! Warden access keys through the service: generate, store, verify.

mod common;

use common::{MemoryKeys, context, identity_config};
use secrecy::{ExposeSecret, SecretString};
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::Duration;
use warden_core::IdentityKind;
use warden_core::engines::{AccessKeyStore, AuthError, Authenticator};
use warden_identity::{IdentityService, generate_access_key};

async fn setup() -> (Arc<MemoryKeys>, IdentityService) {
    let keys = Arc::new(MemoryKeys::default());
    let service = IdentityService::new(&identity_config(vec![]), keys.clone())
        .await
        .expect("config");
    (keys, service)
}

async fn try_key(service: &IdentityService, key: &str) -> Result<warden_core::Identity, AuthError> {
    let result = service
        .authenticate(&SecretString::from(key.to_string()), &context())
        .await;
    if let Err(error) = &result {
        let secret = key.rsplit('_').next().unwrap_or(key);
        assert!(
            !error.to_string().contains(secret),
            "reason leaks the key: {error}"
        );
    }
    result
}

#[tokio::test]
async fn generated_key_authenticates() {
    let (keys, service) = setup().await;
    let (key, record) = generate_access_key(
        "deploy-bot",
        &["agents".into(), "ops".into()],
        Duration::from_secs(3600),
    );
    keys.insert_key(&record).await.expect("stored");
    let identity = try_key(&service, key.expose_secret())
        .await
        .expect("accepted");
    assert_eq!(identity.subject, "key:deploy-bot");
    assert_eq!(identity.groups, ["agents", "ops"]);
    assert_eq!(
        identity.kind,
        IdentityKind::AccessKey {
            key_id: record.id.clone(),
            name: "deploy-bot".into()
        }
    );
    assert!(identity.claims.is_empty());
    assert_eq!(identity.email, None);
}

#[tokio::test]
async fn tampered_secret_is_refused() {
    let (keys, service) = setup().await;
    let (key, record) = generate_access_key("k", &[], Duration::from_secs(3600));
    keys.insert_key(&record).await.expect("stored");
    let text = key.expose_secret();
    let last = text.chars().last().expect("non-empty");
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &text[..text.len() - 1]);
    let reason = try_key(&service, &tampered)
        .await
        .expect_err("refused")
        .to_string();
    assert!(reason.contains("secret mismatch"), "{reason}");
}

#[tokio::test]
async fn revoked_key_is_refused() {
    let (keys, service) = setup().await;
    let (key, record) = generate_access_key("k", &[], Duration::from_secs(3600));
    keys.insert_key(&record).await.expect("stored");
    try_key(&service, key.expose_secret())
        .await
        .expect("accepted before revocation");
    assert!(keys.revoke_key(&record.id).await.expect("revoke"));
    let reason = try_key(&service, key.expose_secret())
        .await
        .expect_err("refused")
        .to_string();
    assert!(reason.contains("revoked"), "{reason}");
}

#[tokio::test]
async fn expired_key_is_refused() {
    let (keys, service) = setup().await;
    let (key, record) = generate_access_key("k", &[], Duration::ZERO);
    keys.insert_key(&record).await.expect("stored");
    let reason = try_key(&service, key.expose_secret())
        .await
        .expect_err("refused")
        .to_string();
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test]
async fn unknown_and_malformed_keys_are_refused() {
    let (_keys, service) = setup().await;
    let (key, record) = generate_access_key("never-stored", &[], Duration::from_secs(60));
    let reason = try_key(&service, key.expose_secret())
        .await
        .expect_err("refused")
        .to_string();
    assert_eq!(reason, format!("no such access key {}", record.id));
    let reason = try_key(&service, "wdn_nothex_x")
        .await
        .expect_err("refused")
        .to_string();
    assert_eq!(reason, "malformed access key");
}

#[tokio::test]
async fn store_failure_and_disabled_keys() {
    let (keys, service) = setup().await;
    let (key, record) = generate_access_key("k", &[], Duration::from_secs(60));
    keys.insert_key(&record).await.expect("stored");
    keys.broken.store(true, std::sync::atomic::Ordering::SeqCst);
    let reason = try_key(&service, key.expose_secret())
        .await
        .expect_err("refused")
        .to_string();
    assert!(reason.contains("access key store unavailable"), "{reason}");

    let mut config = identity_config(vec![]);
    config.access_keys.enabled = false;
    let disabled = IdentityService::new(&config, keys.clone())
        .await
        .expect("config");
    keys.broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let reason = try_key(&disabled, key.expose_secret())
        .await
        .expect_err("refused")
        .to_string();
    assert_eq!(reason, "access keys are disabled");
}

/// The client side of mysql_native_password, written out independently.
fn native_response(password: &str, scramble: &[u8]) -> Vec<u8> {
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mask = Sha1::new()
        .chain_update(scramble)
        .chain_update(stage2)
        .finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

#[tokio::test]
async fn mysql_native_password_with_an_access_key() {
    let (keys, service) = setup().await;
    let (key, record) =
        generate_access_key("mysql-agent", &["agents".into()], Duration::from_secs(60));
    keys.insert_key(&record).await.expect("stored");
    let scramble: Vec<u8> = (0..20).map(|n| n * 7 + 3).collect();
    let response = native_response(key.expose_secret(), &scramble);
    let identity = service
        .authenticate_mysql_native(&record.id, &scramble, &response)
        .await
        .expect("accepted");
    assert_eq!(identity.subject, "key:mysql-agent");

    let wrong = native_response("wdn_not_the_key", &scramble);
    let reason = service
        .authenticate_mysql_native(&record.id, &scramble, &wrong)
        .await
        .expect_err("refused")
        .to_string();
    assert!(reason.contains("response mismatch"), "{reason}");

    keys.revoke_key(&record.id).await.expect("revoke");
    let reason = service
        .authenticate_mysql_native(&record.id, &scramble, &response)
        .await
        .expect_err("refused")
        .to_string();
    assert!(reason.contains("revoked"), "{reason}");
}
