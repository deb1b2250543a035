//! End to end against a real OIDC provider (node-oidc-provider): a
//! client-credentials access token validates through discovery and the JWKS.

mod common;

use common::{auth, oidc_config, refused, service};
use warden_core::IdentityKind;
use warden_test_support::oidc::{OidcClient, RealOidcProvider};

#[tokio::test]
async fn client_credentials_token_validates_end_to_end() {
    warden_test_support::init();
    let mut reader = OidcClient::new("reporting-agent", &["agents", "readers"]);
    reader.email = Some("reporting@example.test".into());
    let other = OidcClient::new("batch-job", &[]);
    let provider = RealOidcProvider::start_with("warden", vec![reader, other])
        .expect("the OIDC provider starts (npm ci --prefix crates/test-support/oidc-provider)");
    // Discovery, as an operator would configure it (no jwks_url).
    let service = service(vec![oidc_config(provider.issuer_url(), None)]).await;

    let token = provider.token("reporting-agent").await.expect("token");
    let identity = auth(&service, &token)
        .await
        .expect("provider token accepted");
    assert_eq!(identity.subject, "reporting-agent");
    assert_eq!(identity.groups, ["agents", "readers"]);
    assert_eq!(identity.email.as_deref(), Some("reporting@example.test"));
    assert_eq!(
        identity.kind,
        IdentityKind::Oidc {
            issuer: provider.issuer_url().to_string()
        }
    );
    assert_eq!(identity.claims["client_id"], "reporting-agent");

    let token = provider.token("batch-job").await.expect("token");
    let identity = auth(&service, &token)
        .await
        .expect("provider token accepted");
    assert_eq!(identity.subject, "batch-job");
    assert!(identity.groups.is_empty());

    // The same token is refused by a Warden expecting another audience.
    let mut strict = oidc_config(provider.issuer_url(), Some(provider.jwks_url()));
    strict.audience = "billing".into();
    let strict = common::service(vec![strict]).await;
    let reason = refused(&strict, &token).await;
    assert!(reason.contains("audience mismatch"), "{reason}");
}
