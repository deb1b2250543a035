//! OIDC verification against the in-process test issuer (real HTTP, real
//! signatures, real JWKS).

mod common;

use common::{MemoryKeys, auth, identity_config, oidc_config, refused, service};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use warden_core::IdentityKind;
use warden_identity::{IdentityOptions, IdentityService};
use warden_test_support::oidc::{Algorithm, Header, IssuerBehavior, TestIssuer};

fn issuer() -> TestIssuer {
    warden_test_support::init();
    TestIssuer::start().expect("test issuer starts")
}

#[tokio::test]
async fn good_tokens_of_every_algorithm_are_accepted() {
    let issuer = issuer();
    let service = service(vec![oidc_config(issuer.issuer_url(), None)]).await;
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let mut claims = issuer.default_claims("alice", &["agents", "readers"]);
        claims["email"] = json!("alice@example.test");
        claims["team"] = json!("payments");
        let identity = auth(&service, &issuer.mint(alg, claims))
            .await
            .unwrap_or_else(|e| panic!("{alg:?} refused: {e}"));
        assert_eq!(identity.subject, "alice");
        assert_eq!(identity.groups, ["agents", "readers"]);
        assert_eq!(identity.email.as_deref(), Some("alice@example.test"));
        assert_eq!(
            identity.kind,
            IdentityKind::Oidc {
                issuer: issuer.issuer_url().to_string()
            }
        );
        assert_eq!(identity.claims["team"], "payments");
        assert_eq!(identity.claims["sub"], "alice");
    }
}

#[tokio::test]
async fn tokens_without_kid_are_tried_against_compatible_keys() {
    let issuer = issuer();
    let service = service(vec![oidc_config(issuer.issuer_url(), None)]).await;
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let token = issuer.mint_without_kid(alg, issuer.default_claims("bob", &[]));
        let identity = auth(&service, &token).await.expect("accepted without kid");
        assert_eq!(identity.subject, "bob");
        assert!(identity.groups.is_empty());
        assert_eq!(identity.email, None);
    }
}

#[tokio::test]
async fn hostile_tokens_are_refused_with_precise_reasons() {
    let issuer = issuer();
    let service = service(vec![oidc_config(issuer.issuer_url(), None)]).await;
    let cases = [
        ("expired", issuer.expired_token(), "token expired"),
        (
            "not yet valid",
            issuer.not_yet_valid_token(),
            "token not yet valid",
        ),
        (
            "wrong audience",
            issuer.wrong_audience_token(),
            "audience mismatch",
        ),
        (
            "wrong issuer",
            issuer.wrong_issuer_token(),
            "unknown issuer https://evil.example",
        ),
        (
            "bad signature",
            issuer.bad_signature_token(),
            "signature invalid",
        ),
        ("alg none", issuer.alg_none_token(), "alg none not allowed"),
        (
            "HS256 key confusion",
            issuer.hs256_confusion_token(),
            "alg HS256 not allowed",
        ),
        (
            "unknown kid",
            issuer.unknown_kid_token(),
            "after JWKS refresh",
        ),
        (
            "sub in the access keys' namespace",
            issuer.mint(Algorithm::RS256, issuer.default_claims("key:dana", &[])),
            "reserves for access keys",
        ),
    ];
    for (name, token, expected) in cases {
        let reason = refused(&service, &token).await;
        assert!(
            reason.contains(expected),
            "{name}: expected {expected:?}, got {reason:?}"
        );
    }
}

#[tokio::test]
async fn claims_and_algorithm_rules() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), None);
    config.algorithms = vec!["RS256".into(), "ES256".into()];
    let service = service(vec![config]).await;

    // An algorithm the config does not list.
    let ed = issuer.mint(Algorithm::EdDSA, issuer.default_claims("a", &[]));
    assert_eq!(refused(&service, &ed).await, "alg EdDSA not allowed");

    // An RSA key's kid on an ES256 token: the key type must match the alg.
    let rsa_kid = issuer.kid(Algorithm::RS256);
    let confused =
        issuer.mint_with_kid(Algorithm::ES256, &rsa_kid, issuer.default_claims("a", &[]));
    let reason = refused(&service, &confused).await;
    assert!(
        reason.contains("is an RSA key, cannot verify ES256"),
        "{reason}"
    );

    // exp and sub are required.
    let mut no_exp = issuer.default_claims("a", &[]);
    no_exp.as_object_mut().expect("object").remove("exp");
    let reason = refused(&service, &issuer.mint(Algorithm::RS256, no_exp)).await;
    assert_eq!(reason, "token has no exp claim");
    let mut no_sub = issuer.default_claims("a", &[]);
    no_sub.as_object_mut().expect("object").remove("sub");
    let reason = refused(&service, &issuer.mint(Algorithm::RS256, no_sub)).await;
    assert_eq!(reason, "token has no sub claim");

    // aud may be an array that contains the audience.
    let mut many = issuer.default_claims("a", &[]);
    many["aud"] = json!(["other", "warden"]);
    assert!(
        auth(&service, &issuer.mint(Algorithm::RS256, many))
            .await
            .is_ok()
    );

    // A space-separated groups string.
    let mut spaced = issuer.default_claims("a", &[]);
    spaced["groups"] = json!("ops  dba");
    let identity = auth(&service, &issuer.mint(Algorithm::ES256, spaced))
        .await
        .expect("accepted");
    assert_eq!(identity.groups, ["ops", "dba"]);

    // Leeway: expired 5 s ago is within the configured 30 s.
    let mut recent = issuer.default_claims("a", &[]);
    let now = recent["iat"].as_u64().expect("iat");
    recent["exp"] = json!(now - 5);
    assert!(
        auth(&service, &issuer.mint(Algorithm::RS256, recent))
            .await
            .is_ok()
    );

    // The same claims with a future nbf inside the leeway pass too.
    let mut soon = issuer.default_claims("a", &[]);
    soon["nbf"] = json!(now + 5);
    assert!(
        auth(&service, &issuer.mint(Algorithm::RS256, soon))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn custom_groups_claim() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), None);
    config.groups_claim = "roles".into();
    let service = service(vec![config]).await;
    let mut claims = issuer.default_claims("a", &["ignored"]);
    claims["roles"] = json!(["dba"]);
    let identity = auth(&service, &issuer.mint(Algorithm::RS256, claims))
        .await
        .expect("accepted");
    assert_eq!(identity.groups, ["dba"]);
}

#[tokio::test]
async fn garbage_credentials_are_refused() {
    let issuer = issuer();
    let service = service(vec![oidc_config(issuer.issuer_url(), None)]).await;
    assert_eq!(refused(&service, "").await, "empty credential");
    assert!(refused(&service, "hunter2").await.contains("neither"));
    let huge = format!("{}.{}.sig", "a".repeat(10_000), "b".repeat(10_000));
    assert!(
        refused(&service, &huge)
            .await
            .starts_with("credential too long")
    );
    assert!(refused(&service, "e30.e30.").await.contains("no alg"));
    assert!(
        refused(&service, "bm90LWpzb24.e30.")
            .await
            .contains("not a JSON object")
    );
}

#[tokio::test]
async fn explicit_jwks_url_skips_discovery_and_keys_are_cached() {
    let issuer = issuer();
    let service = service(vec![oidc_config(
        issuer.issuer_url(),
        Some(issuer.jwks_url()),
    )])
    .await;
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::RS256] {
        let token = issuer.mint(alg, issuer.default_claims("a", &[]));
        auth(&service, &token).await.expect("accepted");
    }
    assert_eq!(issuer.discovery_fetches(), 0);
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let issuer = issuer();
    let service = service(vec![oidc_config(issuer.issuer_url(), None)]).await;
    for _ in 0..3 {
        let token = issuer.mint(Algorithm::EdDSA, issuer.default_claims("a", &[]));
        auth(&service, &token).await.expect("accepted");
    }
    assert_eq!(issuer.discovery_fetches(), 1);
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn issuer_is_selected_by_iss_among_several() {
    let first = issuer();
    let second = issuer();
    let service = service(vec![
        oidc_config(first.issuer_url(), None),
        oidc_config(second.issuer_url(), None),
    ])
    .await;
    let from_second = second.mint(Algorithm::RS256, second.default_claims("s", &[]));
    let identity = auth(&service, &from_second).await.expect("accepted");
    assert_eq!(
        identity.kind,
        IdentityKind::Oidc {
            issuer: second.issuer_url().to_string()
        }
    );
    // A token claiming the first issuer but signed by the second's key.
    let mut claims = second.default_claims("s", &[]);
    claims["iss"] = json!(first.issuer_url());
    let forged = second.mint_without_kid(Algorithm::RS256, claims);
    assert_eq!(refused(&service, &forged).await, "signature invalid");
}

#[tokio::test]
async fn rotated_key_is_picked_up_with_one_refetch() {
    let issuer = issuer();
    let service = service(vec![oidc_config(issuer.issuer_url(), None)]).await;
    let old = issuer.mint(Algorithm::RS256, issuer.default_claims("a", &[]));
    auth(&service, &old).await.expect("accepted");
    assert_eq!(issuer.jwks_fetches(), 1);

    let new_kid = issuer.add_key(Algorithm::RS256).expect("new key");
    let new = issuer.mint(Algorithm::RS256, issuer.default_claims("a", &[]));
    assert!(new_kid != "rsa-1");
    auth(&service, &new)
        .await
        .expect("new kid accepted after a re-fetch");
    assert_eq!(issuer.jwks_fetches(), 2);
    auth(&service, &new).await.expect("still accepted");
    auth(&service, &old).await.expect("old key still published");
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_at_most_one_refetch() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), Some(issuer.jwks_url()));
    // Long enough that no second interval can start during the test.
    config.jwks_min_refetch = Duration::from_secs(3600);
    let service = Arc::new(service(vec![config]).await);
    let good = issuer.mint(Algorithm::RS256, issuer.default_claims("a", &[]));
    auth(&service, &good).await.expect("accepted");
    assert_eq!(issuer.jwks_fetches(), 1);

    let tokens: Vec<String> = (0..50)
        .map(|n| issuer.unknown_kid_token_named(&format!("bogus-{n}")))
        .collect();
    let results = futures::future::join_all(tokens.iter().map(|token| {
        let service = service.clone();
        async move { auth(&service, token).await }
    }))
    .await;
    for result in results {
        let reason = result.expect_err("unknown kid refused").to_string();
        assert!(reason.contains("unknown kid bogus-"), "{reason}");
    }
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "exactly one re-fetch for the whole flood"
    );

    // Good tokens keep working from the cache.
    auth(&service, &good).await.expect("accepted");
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_cold_flood_shares_one_fetch() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), Some(issuer.jwks_url()));
    config.jwks_min_refetch = Duration::from_secs(3600);
    let service = Arc::new(service(vec![config]).await);
    let tokens: Vec<String> = (0..20)
        .map(|_| issuer.mint(Algorithm::ES256, issuer.default_claims("a", &[])))
        .collect();
    let spawned: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let service = service.clone();
            tokio::spawn(async move { auth(&service, &token).await.map(|i| i.subject) })
        })
        .collect();
    for handle in spawned {
        assert_eq!(handle.await.expect("task").expect("accepted"), "a");
    }
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn idp_down_fails_clearly_and_recovers() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), Some(issuer.jwks_url()));
    config.jwks_min_refetch = Duration::ZERO;
    let service = service(vec![config]).await;
    let token = issuer.mint(Algorithm::RS256, issuer.default_claims("a", &[]));

    issuer.set_behavior(IssuerBehavior::Unavailable);
    let reason = refused(&service, &token).await;
    assert!(reason.contains("JWKS of"), "{reason}");
    assert!(reason.contains("503"), "{reason}");

    issuer.set_behavior(IssuerBehavior::Normal);
    auth(&service, &token)
        .await
        .expect("accepted once the IdP is back");
}

#[tokio::test]
async fn failed_fetch_is_not_retried_within_the_interval() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), Some(issuer.jwks_url()));
    config.jwks_min_refetch = Duration::from_secs(3600);
    let service = service(vec![config]).await;
    let token = issuer.mint(Algorithm::RS256, issuer.default_claims("a", &[]));
    issuer.set_behavior(IssuerBehavior::Unavailable);
    for _ in 0..5 {
        let reason = refused(&service, &token).await;
        assert!(reason.contains("503"), "{reason}");
    }
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn unreachable_idp_is_a_clear_failure() {
    warden_test_support::init();
    let port = warden_test_support::free_port();
    let issuer_url = format!("http://127.0.0.1:{port}");
    let service = service(vec![oidc_config(&issuer_url, None)]).await;
    // Any validly shaped token naming that issuer.
    let signer = issuer();
    let mut claims = signer.default_claims("a", &[]);
    claims["iss"] = json!(issuer_url);
    let token = signer.mint(Algorithm::RS256, claims);
    let reason = refused(&service, &token).await;
    assert!(reason.contains("cannot connect"), "{reason}");
    assert!(reason.contains("openid-configuration"), "{reason}");
}

#[tokio::test]
async fn hanging_idp_times_out() {
    let issuer = issuer();
    let service = IdentityService::with_options(
        &identity_config(vec![oidc_config(issuer.issuer_url(), None)]),
        Arc::new(MemoryKeys::default()),
        IdentityOptions {
            http_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
        },
    )
    .expect("valid config");
    issuer.set_behavior(IssuerBehavior::Hang);
    let token = issuer.mint(Algorithm::RS256, issuer.default_claims("a", &[]));
    let outcome = tokio::time::timeout(Duration::from_secs(60), auth(&service, &token))
        .await
        .expect("authentication must not hang");
    let reason = outcome.expect_err("refused").to_string();
    assert!(reason.contains("timed out"), "{reason}");
}

#[tokio::test]
async fn stale_keys_are_used_while_the_idp_is_down() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), Some(issuer.jwks_url()));
    config.jwks_cache_ttl = Duration::ZERO;
    let service = service(vec![config]).await;
    let token = issuer.mint(Algorithm::EdDSA, issuer.default_claims("a", &[]));
    auth(&service, &token).await.expect("accepted");
    issuer.set_behavior(IssuerBehavior::Unavailable);
    auth(&service, &token)
        .await
        .expect("accepted with the keys fetched before the outage");
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn removed_key_is_refused_after_ttl() {
    let issuer = issuer();
    let mut config = oidc_config(issuer.issuer_url(), Some(issuer.jwks_url()));
    config.jwks_cache_ttl = Duration::ZERO;
    let service = service(vec![config]).await;
    let token = issuer.mint(Algorithm::ES256, issuer.default_claims("a", &[]));
    auth(&service, &token).await.expect("accepted");
    let kid = issuer.kid(Algorithm::ES256);
    issuer.add_key(Algorithm::ES256).expect("new key");
    issuer.remove_key(&kid);
    let reason = refused(&service, &token).await;
    assert!(reason.contains("unknown kid ec-1"), "{reason}");
}

#[tokio::test]
async fn bad_configs_are_refused_at_start() {
    warden_test_support::init();
    let keys = Arc::new(MemoryKeys::default());
    let mut hs = oidc_config("https://idp.example", None);
    hs.algorithms = vec!["RS256".into(), "HS256".into()];
    let error = IdentityService::new(&identity_config(vec![hs]), keys.clone())
        .await
        .err()
        .expect("HS256 refused");
    assert!(
        error.to_string().contains("HS256 is never accepted"),
        "{error}"
    );

    let twice = vec![
        oidc_config("https://idp.example", None),
        oidc_config("https://idp.example", None),
    ];
    assert!(
        IdentityService::new(&identity_config(twice), keys.clone())
            .await
            .is_err()
    );

    // An unreachable IdP does not stop start-up.
    let down = oidc_config("http://127.0.0.1:9", None);
    assert!(
        IdentityService::new(&identity_config(vec![down]), keys)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn key_location_headers_are_ignored() {
    let trusted = issuer();
    let attacker = issuer();
    let service = service(vec![oidc_config(trusted.issuer_url(), None)]).await;
    // The attacker signs claims for the trusted issuer with its own key and
    // points jku/x5u at its own JWKS, or embeds its public key as `jwk`.
    let claims = || {
        let mut claims = attacker.default_claims("mallory", &["admins"]);
        claims["iss"] = json!(trusted.issuer_url());
        claims
    };
    let attacker_jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(
        attacker
            .public_jwk(&attacker.kid(Algorithm::RS256))
            .expect("published"),
    )
    .expect("a JWK");
    for kid in [attacker.kid(Algorithm::RS256), "attacker-only".to_string()] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.clone());
        header.jku = Some(attacker.jwks_url());
        header.x5u = Some(attacker.jwks_url());
        header.jwk = Some(attacker_jwk.clone());
        let token = attacker.mint_with_header(&header, claims());
        let reason = refused(&service, &token).await;
        assert!(
            reason == "signature invalid" || reason.contains("unknown kid"),
            "{kid}: {reason}"
        );
    }
    assert_eq!(attacker.jwks_fetches(), 0, "jku/x5u must never be fetched");
    assert_eq!(attacker.discovery_fetches(), 0);
}
