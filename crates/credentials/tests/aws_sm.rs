//! `aws-sm:` references against a real local AWS API (`moto_server`), with
//! the secrets created through the AWS SDK.
#![allow(clippy::unwrap_used)]

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};
use secrecy::ExposeSecret;
use std::time::Duration;
use warden_core::SecretRef;
use warden_core::config::{AwsSecretsConfig, SecretsConfig};
use warden_credentials::{AwsCredentials, SecretError, SecretResolver};
use warden_test_support::moto::MotoServer;

const REGION: &str = "eu-west-1";
const PASSWORD: &str = "moto-pw-never-shown";

fn credentials() -> AwsCredentials {
    // moto checks no signatures; fixed credentials keep the process env out.
    AwsCredentials::new("test", "test", None, None, "warden-test")
}

fn config(moto: &MotoServer, ttl: Duration) -> SecretsConfig {
    SecretsConfig {
        cache_ttl: ttl,
        vault: None,
        aws: Some(AwsSecretsConfig {
            region: Some(REGION.into()),
            endpoint: Some(moto.endpoint()),
        }),
    }
}

fn admin_client(moto: &MotoServer) -> Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(credentials())
        .build();
    Client::from_conf(config)
}

fn reference(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

fn assert_clean_error(error: &SecretError, reference: &str, expected: &str) {
    let text = error.to_string();
    eprintln!("error as shown: {text}");
    assert!(text.contains(reference), "{text}");
    assert!(text.contains(expected), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!text.contains("plain-value-never-shown"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_fields_and_whole_secrets_from_secrets_manager() {
    warden_test_support::init();
    let moto = MotoServer::start().expect("moto_server must start (run scripts/setup.sh)");
    let admin = admin_client(&moto);
    let json_secret = format!(r#"{{"username":"app","password":"{PASSWORD}","port":5432}}"#);
    admin
        .create_secret()
        .name("prod/orders")
        .secret_string(&json_secret)
        .send()
        .await
        .unwrap();
    admin
        .create_secret()
        .name("plain")
        .secret_string("plain-value-never-shown")
        .send()
        .await
        .unwrap();

    let resolver = SecretResolver::with_aws_credentials(
        &config(&moto, Duration::from_secs(300)),
        credentials(),
    )
    .unwrap();
    let password = reference("aws-sm:prod/orders#password");
    assert_eq!(
        resolver.resolve(&password).await.unwrap().expose_secret(),
        PASSWORD
    );
    let port = resolver
        .resolve(&reference("aws-sm:prod/orders#port"))
        .await
        .unwrap();
    assert_eq!(port.expose_secret(), "5432");
    let whole = resolver
        .resolve(&reference("aws-sm:prod/orders"))
        .await
        .unwrap();
    assert_eq!(whole.expose_secret(), json_secret);
    let plain = resolver.resolve(&reference("aws-sm:plain")).await.unwrap();
    assert_eq!(plain.expose_secret(), "plain-value-never-shown");

    // Rotated in Secrets Manager: the cache serves the old value within the
    // TTL; a resolver without a cache sees the new one.
    admin
        .put_secret_value()
        .secret_id("prod/orders")
        .secret_string(r#"{"password":"rotated"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resolver.resolve(&password).await.unwrap().expose_secret(),
        PASSWORD
    );
    let uncached =
        SecretResolver::with_aws_credentials(&config(&moto, Duration::ZERO), credentials())
            .unwrap();
    assert_eq!(
        uncached.resolve(&password).await.unwrap().expose_secret(),
        "rotated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_errors_name_the_reference() {
    warden_test_support::init();
    let moto = MotoServer::start().expect("moto_server must start (run scripts/setup.sh)");
    let admin = admin_client(&moto);
    admin
        .create_secret()
        .name("prod/orders")
        .secret_string(format!(r#"{{"password":"{PASSWORD}"}}"#))
        .send()
        .await
        .unwrap();
    admin
        .create_secret()
        .name("plain")
        .secret_string("plain-value-never-shown")
        .send()
        .await
        .unwrap();
    let resolver = SecretResolver::with_aws_credentials(
        &config(&moto, Duration::from_secs(300)),
        credentials(),
    )
    .unwrap();

    let error = resolver
        .resolve(&reference("aws-sm:prod/missing#password"))
        .await
        .unwrap_err();
    assert_clean_error(
        &error,
        "secret aws-sm:prod/missing#password",
        "no such secret",
    );

    let error = resolver
        .resolve(&reference("aws-sm:prod/orders#nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SecretError::MissingField { .. }),
        "{error:?}"
    );
    assert_clean_error(&error, "aws-sm:prod/orders#nope", "no field \"nope\"");

    let error = resolver
        .resolve(&reference("aws-sm:plain#password"))
        .await
        .unwrap_err();
    assert_clean_error(&error, "aws-sm:plain#password", "not a JSON object");

    // Another region holds no such secret: the configured region is used.
    let mut elsewhere = config(&moto, Duration::ZERO);
    if let Some(aws) = elsewhere.aws.as_mut() {
        aws.region = Some("ap-south-1".into());
    }
    let elsewhere = SecretResolver::with_aws_credentials(&elsewhere, credentials()).unwrap();
    let error = elsewhere
        .resolve(&reference("aws-sm:prod/orders#password"))
        .await
        .unwrap_err();
    assert_clean_error(&error, "aws-sm:prod/orders#password", "no such secret");
}

#[test]
fn rejects_an_unusable_endpoint_at_start() {
    let config = SecretsConfig {
        cache_ttl: Duration::ZERO,
        vault: None,
        aws: Some(AwsSecretsConfig {
            region: None,
            endpoint: Some("not a url".into()),
        }),
    };
    let error = SecretResolver::new(&config).unwrap_err().to_string();
    assert!(error.contains("[secrets.aws] endpoint"), "{error}");
}
