//! `vault:` references against a local HTTP server that answers like Vault's
//! documented API: KV v2 (and v1) reads and AppRole login, enforcing
//! `X-Vault-Token`. No Vault server can be installed on this machine.
#![allow(clippy::unwrap_used)]

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_core::SecretRef;
use warden_core::config::{SecretsConfig, VaultAppRole, VaultConfig};
use warden_credentials::{SecretError, SecretResolver};

const ROOT_TOKEN: &str = "hvs.root-token-never-shown";
const ROLE_ID: &str = "db5cd0f7-d1b0-1f1c-31f4-d4f4d4b8a1e2";
const SECRET_ID: &str = "secret-id-never-shown-84a1";
const PASSWORD: &str = "orders-pw-never-shown";

/// How stored secrets are answered.
#[derive(Clone, Copy, PartialEq)]
enum Kv {
    V1,
    V2,
}

#[derive(Default)]
struct FakeState {
    tokens: Mutex<HashSet<String>>,
    secrets: Mutex<HashMap<String, (Kv, Value)>>,
    /// Answer every read with 503 (Vault sealed).
    sealed: Mutex<bool>,
    /// `auth.lease_duration` of AppRole logins.
    login_lease: Mutex<u64>,
    reads: AtomicUsize,
    logins: AtomicUsize,
    namespaces: Mutex<Vec<Option<String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct FakeVault {
    state: Arc<FakeState>,
    address: String,
}

/// Serves the fake over TLS; failed handshakes are skipped, as a real
/// server would.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl FakeVault {
    async fn start() -> FakeVault {
        Self::start_with(None).await
    }

    /// Over HTTPS with this certificate and key.
    async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> FakeVault {
        let acceptor = warden_core::tls::acceptor(&warden_core::config::TlsConfig {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
        .unwrap();
        Self::start_with(Some(acceptor)).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> FakeVault {
        let state = Arc::new(FakeState::default());
        lock(&state.tokens).insert(ROOT_TOKEN.to_string());
        *lock(&state.login_lease) = 1200;
        let app = Router::new()
            .route("/v1/auth/approle/login", post(login))
            .route("/v1/{*path}", get(read))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let address = match tls {
            None => {
                tokio::spawn(async move { axum::serve(listener, app).await });
                format!("http://{local}")
            }
            Some(acceptor) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor,
                };
                tokio::spawn(async move { axum::serve(listener, app).await });
                format!("https://localhost:{}", local.port())
            }
        };
        FakeVault { state, address }
    }

    fn put(&self, path: &str, kv: Kv, data: Value) {
        lock(&self.state.secrets).insert(path.to_string(), (kv, data));
    }

    fn reads(&self) -> usize {
        self.state.reads.load(Ordering::SeqCst)
    }

    fn logins(&self) -> usize {
        self.state.logins.load(Ordering::SeqCst)
    }

    fn revoke_all_tokens(&self) {
        lock(&self.state.tokens).clear();
    }
}

fn vault_error(status: StatusCode, errors: &[&str]) -> Response {
    (status, Json(json!({ "errors": errors }))).into_response()
}

/// `GET /v1/:path`, answered like Vault's KV v2 "Read secret version" (or
/// the KV v1 read) endpoint.
async fn read(
    State(state): State<Arc<FakeState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.reads.fetch_add(1, Ordering::SeqCst);
    lock(&state.namespaces).push(
        headers
            .get("x-vault-namespace")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    let token = headers.get("x-vault-token").and_then(|v| v.to_str().ok());
    if *lock(&state.sealed) {
        return vault_error(StatusCode::SERVICE_UNAVAILABLE, &["Vault is sealed"]);
    }
    if !token.is_some_and(|token| lock(&state.tokens).contains(token)) {
        return vault_error(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    let Some((kv, data)) = lock(&state.secrets).get(&path).cloned() else {
        return vault_error(StatusCode::NOT_FOUND, &[]);
    };
    let body = match kv {
        Kv::V2 => json!({
            "request_id": "f4a1c2e0-57a6-5b3c-a7a6-8b2f2c1d7e11",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": {
                "data": data,
                "metadata": {
                    "created_time": "2018-03-22T02:24:06.945319214Z",
                    "custom_metadata": {"owner": "jdoe"},
                    "deletion_time": "",
                    "destroyed": false,
                    "version": 2
                }
            },
            "wrap_info": null,
            "warnings": null,
            "auth": null
        }),
        Kv::V1 => json!({
            "request_id": "0b0d8f6a-1c43-4d4b-9a1b-7c35f1f5b9c2",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 2764800,
            "data": data,
            "wrap_info": null,
            "warnings": null,
            "auth": null
        }),
    };
    Json(body).into_response()
}

/// `POST /v1/auth/approle/login`, answered like Vault's AppRole login.
async fn login(State(state): State<Arc<FakeState>>, Json(body): Json<Value>) -> Response {
    let number = state.logins.fetch_add(1, Ordering::SeqCst) + 1;
    if body["role_id"] != ROLE_ID || body["secret_id"] != SECRET_ID {
        return vault_error(StatusCode::BAD_REQUEST, &["invalid role or secret ID"]);
    }
    let token = format!("hvs.approle-login-{number}");
    lock(&state.tokens).insert(token.clone());
    let lease = *lock(&state.login_lease);
    Json(json!({
        "request_id": "7a5e2c3a-8e0d-2b56-9c7e-3f1d24a0c7b9",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": null,
        "wrap_info": null,
        "warnings": null,
        "auth": {
            "client_token": token,
            "accessor": "8b6d8c5c-44a9-6a2b-0b5e-12a9a6d2f2a1",
            "policies": ["default", "orders"],
            "token_policies": ["default", "orders"],
            "metadata": {"role_name": "orders"},
            "lease_duration": lease,
            "renewable": true,
            "entity_id": "c8f1f4e2-6d1b-4a8e-9d53-0e6f4c7f1b2a",
            "token_type": "service",
            "orphan": true
        }
    }))
    .into_response()
}

fn token_config(address: &str, token: &str, ttl: Duration) -> SecretsConfig {
    SecretsConfig {
        cache_ttl: ttl,
        vault: Some(VaultConfig {
            address: address.to_string(),
            token: Some(SecretRef::Literal(SecretString::from(token.to_string()))),
            approle: None,
            namespace: None,
            ca: None,
        }),
        aws: None,
    }
}

fn approle_config(address: &str, secret_id: &str, ttl: Duration) -> SecretsConfig {
    SecretsConfig {
        cache_ttl: ttl,
        vault: Some(VaultConfig {
            address: address.to_string(),
            token: None,
            approle: Some(VaultAppRole {
                role_id: ROLE_ID.into(),
                secret_id: SecretRef::Literal(SecretString::from(secret_id.to_string())),
                mount: "approle".into(),
            }),
            namespace: None,
            ca: None,
        }),
        aws: None,
    }
}

fn reference(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

/// The error names the reference and leaks no secret value or credential.
fn assert_clean_error(error: &SecretError, reference: &str, expected: &str) {
    let text = error.to_string();
    eprintln!("error as shown: {text}");
    assert!(text.contains(reference), "{text}");
    assert!(text.contains(expected), "{text}");
    for leak in [PASSWORD, ROOT_TOKEN, SECRET_ID, "hvs.approle-login"] {
        assert!(!text.contains(leak), "{text} leaks {leak}");
    }
    let debug = format!("{error:?}");
    for leak in [PASSWORD, ROOT_TOKEN, SECRET_ID] {
        assert!(!debug.contains(leak), "{debug} leaks {leak}");
    }
}

#[tokio::test]
async fn token_auth_reads_kv_v2_with_namespace_and_caches() {
    let vault = FakeVault::start().await;
    vault.put(
        "secret/data/orders",
        Kv::V2,
        json!({"username": "app", "password": PASSWORD}),
    );
    // The token comes through a reference: a file, as `vault agent` writes it.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{ROOT_TOKEN}\n")).unwrap();
    let mut config = token_config(&vault.address, "unused", Duration::from_secs(300));
    if let Some(settings) = config.vault.as_mut() {
        settings.token = Some(SecretRef::File(token_file));
        settings.namespace = Some("team-a".into());
    }
    let resolver = SecretResolver::new(&config).unwrap();
    assert_eq!(
        vault.reads(),
        0,
        "building the resolver must not contact Vault"
    );

    let password = reference("vault:secret/data/orders#password");
    let value = resolver.resolve(&password).await.unwrap();
    assert_eq!(value.expose_secret(), PASSWORD);
    assert_eq!(vault.reads(), 1);

    // Within the TTL: served from the cache, even after Vault changed.
    vault.put(
        "secret/data/orders",
        Kv::V2,
        json!({"username": "app", "password": "rotated"}),
    );
    let again = resolver.resolve(&password).await.unwrap();
    assert_eq!(again.expose_secret(), PASSWORD);
    assert_eq!(
        vault.reads(),
        1,
        "two resolves within the TTL are one fetch"
    );

    let user = resolver
        .resolve(&reference("vault:secret/data/orders#username"))
        .await
        .unwrap();
    assert_eq!(user.expose_secret(), "app");
    assert_eq!(vault.reads(), 2);
    assert!(
        lock(&vault.state.namespaces)
            .iter()
            .all(|namespace| namespace.as_deref() == Some("team-a"))
    );

    // env:/file:/literal still go through the same resolver.
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file\n").unwrap();
    let from_file = resolver
        .resolve(&SecretRef::File(file.clone()))
        .await
        .unwrap();
    assert_eq!(from_file.expose_secret(), "from-file");
    std::fs::write(&file, "rotated-file\n").unwrap();
    let from_file = resolver.resolve(&SecretRef::File(file)).await.unwrap();
    assert_eq!(
        from_file.expose_secret(),
        "rotated-file",
        "files are not cached"
    );
}

#[tokio::test]
async fn reads_kv_v1_answers() {
    let vault = FakeVault::start().await;
    vault.put(
        "kv/orders",
        Kv::V1,
        json!({"password": PASSWORD, "port": 5432}),
    );
    let resolver =
        SecretResolver::new(&token_config(&vault.address, ROOT_TOKEN, Duration::ZERO)).unwrap();
    let value = resolver
        .resolve(&reference("vault:kv/orders#password"))
        .await
        .unwrap();
    assert_eq!(value.expose_secret(), PASSWORD);
    let port = resolver
        .resolve(&reference("vault:kv/orders#port"))
        .await
        .unwrap();
    assert_eq!(port.expose_secret(), "5432");
    // A TTL of zero disables the cache.
    assert_eq!(vault.reads(), 2);
}

#[tokio::test]
async fn approle_logs_in_reads_and_logs_in_again_when_refused() {
    let vault = FakeVault::start().await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": PASSWORD}));
    let resolver =
        SecretResolver::new(&approle_config(&vault.address, SECRET_ID, Duration::ZERO)).unwrap();
    let password = reference("vault:secret/data/orders#password");

    let value = resolver.resolve(&password).await.unwrap();
    assert_eq!(value.expose_secret(), PASSWORD);
    assert_eq!(vault.logins(), 1);
    resolver.resolve(&password).await.unwrap();
    assert_eq!(
        vault.logins(),
        1,
        "the login token is reused within its lease"
    );
    assert_eq!(vault.reads(), 2);

    // The token was revoked: Vault answers 403, the resolver logs in again.
    vault.revoke_all_tokens();
    let value = resolver.resolve(&password).await.unwrap();
    assert_eq!(value.expose_secret(), PASSWORD);
    assert_eq!(vault.logins(), 2);
    assert_eq!(vault.reads(), 4, "one refused read, one retried read");
}

#[tokio::test]
async fn approle_logs_in_again_near_the_end_of_the_lease() {
    let vault = FakeVault::start().await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": PASSWORD}));
    *lock(&vault.state.login_lease) = 1;
    let resolver =
        SecretResolver::new(&approle_config(&vault.address, SECRET_ID, Duration::ZERO)).unwrap();
    let password = reference("vault:secret/data/orders#password");
    resolver.resolve(&password).await.unwrap();
    assert_eq!(vault.logins(), 1);
    // Past 3/4 of the 1 s lease, the token is renewed by a new login.
    tokio::time::sleep(Duration::from_millis(800)).await;
    resolver.resolve(&password).await.unwrap();
    assert_eq!(vault.logins(), 2);
}

#[tokio::test]
async fn approle_login_failure_names_the_reference_not_the_secret_id() {
    let vault = FakeVault::start().await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": PASSWORD}));
    let wrong = format!("{SECRET_ID}-wrong");
    let resolver =
        SecretResolver::new(&approle_config(&vault.address, &wrong, Duration::ZERO)).unwrap();
    let error = resolver
        .resolve(&reference("vault:secret/data/orders#password"))
        .await
        .unwrap_err();
    assert_clean_error(
        &error,
        "vault:secret/data/orders#password",
        "vault AppRole login answered 400 invalid role or secret ID",
    );
    assert!(!error.to_string().contains(&wrong));
    assert_eq!(vault.reads(), 0);
}

#[tokio::test]
async fn errors_name_the_reference_and_leak_nothing() {
    let vault = FakeVault::start().await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": PASSWORD}));
    let ttl = Duration::from_secs(300);

    let wrong_token = SecretResolver::new(&token_config(&vault.address, "hvs.wrong", ttl)).unwrap();
    let error = wrong_token
        .resolve(&reference("vault:secret/data/orders#password"))
        .await
        .unwrap_err();
    assert_clean_error(
        &error,
        "secret vault:secret/data/orders#password",
        "vault answered 403 permission denied",
    );

    let resolver = SecretResolver::new(&token_config(&vault.address, ROOT_TOKEN, ttl)).unwrap();
    let error = resolver
        .resolve(&reference("vault:secret/data/missing#password"))
        .await
        .unwrap_err();
    assert_clean_error(
        &error,
        "vault:secret/data/missing#password",
        "vault answered 404 not found",
    );

    let error = resolver
        .resolve(&reference("vault:secret/data/orders#nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SecretError::MissingField { .. }),
        "{error:?}"
    );
    assert_clean_error(&error, "vault:secret/data/orders#nope", "no field \"nope\"");

    // Nothing listens on this port any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let dead = SecretResolver::new(&token_config(&closed, ROOT_TOKEN, ttl)).unwrap();
    let error = dead
        .resolve(&reference("vault:secret/data/orders#password"))
        .await
        .unwrap_err();
    assert_clean_error(
        &error,
        "vault:secret/data/orders#password",
        "cannot reach vault",
    );
    assert!(
        error.to_string().to_lowercase().contains("refused"),
        "{error}"
    );

    // No [secrets.vault] at all.
    let unconfigured = SecretResolver::new(&SecretsConfig::default()).unwrap();
    let error = unconfigured
        .resolve(&reference("vault:secret/data/orders#password"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SecretError::NotConfigured { .. }),
        "{error:?}"
    );
    assert_clean_error(
        &error,
        "vault:secret/data/orders#password",
        "[secrets.vault]",
    );
}

#[test]
fn rejects_unusable_vault_settings_at_start() {
    let mut config = token_config("vault.internal:8200", ROOT_TOKEN, Duration::ZERO);
    let error = SecretResolver::new(&config).unwrap_err().to_string();
    assert!(error.contains("address"), "{error}");

    if let Some(settings) = config.vault.as_mut() {
        settings.address = "https://vault.internal:8200".into();
        settings.token = None;
    }
    let error = SecretResolver::new(&config).unwrap_err().to_string();
    assert!(error.contains("`token` or `approle`"), "{error}");

    if let Some(settings) = config.vault.as_mut() {
        settings.token = Some(SecretRef::Env("VAULT_TOKEN".into()));
        settings.ca = Some("/nonexistent/ca.pem".into());
    }
    let error = SecretResolver::new(&config).unwrap_err().to_string();
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");
}

#[tokio::test]
async fn refetches_after_the_ttl() {
    let vault = FakeVault::start().await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": "first"}));
    let ttl = Duration::from_millis(300);
    let resolver = SecretResolver::new(&token_config(&vault.address, ROOT_TOKEN, ttl)).unwrap();
    let password = reference("vault:secret/data/orders#password");
    assert_eq!(
        resolver.resolve(&password).await.unwrap().expose_secret(),
        "first"
    );
    vault.put("secret/data/orders", Kv::V2, json!({"password": "second"}));
    // Whatever the refresher did meanwhile, everything fetched before the
    // change has expired a TTL after it.
    let changed = Instant::now();
    tokio::time::sleep(ttl).await;
    assert!(Instant::now() >= changed + ttl);
    let value = resolver.resolve(&password).await.unwrap();
    assert_eq!(value.expose_secret(), "second");
    assert!(vault.reads() >= 2);
}

#[tokio::test]
async fn refreshes_in_the_background_before_expiry() {
    let vault = FakeVault::start().await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": "first"}));
    let ttl = Duration::from_secs(3);
    let resolver = SecretResolver::new(&token_config(&vault.address, ROOT_TOKEN, ttl)).unwrap();
    let password = reference("vault:secret/data/orders#password");
    let before_fetch = Instant::now();
    assert_eq!(
        resolver.resolve(&password).await.unwrap().expose_secret(),
        "first"
    );
    vault.put("secret/data/orders", Kv::V2, json!({"password": "second"}));

    // No session resolves meanwhile: only the refresher can fetch.
    let deadline = Instant::now() + Duration::from_secs(30);
    while vault.reads() < 2 {
        assert!(Instant::now() < deadline, "the refresher never fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The refreshed value is served from the cache (no further fetch) as
    // long as it is fresh: it was fetched at or after 2/3 of the first TTL.
    let value = resolver.resolve(&password).await.unwrap();
    assert_eq!(value.expose_secret(), "second");
    if Instant::now() < before_fetch + ttl * 5 / 3 {
        assert_eq!(vault.reads(), 2, "the refreshed value was fetched again");
    }
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_value_until_expiry_then_fails_closed() {
    let vault = FakeVault::start().await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": PASSWORD}));
    let ttl = Duration::from_secs(3);
    let resolver = SecretResolver::new(&token_config(&vault.address, ROOT_TOKEN, ttl)).unwrap();
    let password = reference("vault:secret/data/orders#password");
    let before_fetch = Instant::now();
    resolver.resolve(&password).await.unwrap();
    let after_fetch = Instant::now();
    *lock(&vault.state.sealed) = true;

    let deadline = Instant::now() + Duration::from_secs(30);
    while vault.reads() < 2 {
        assert!(Instant::now() < deadline, "the refresher never tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The refresh failed; the cached value stays in use while it is fresh.
    let checked = Instant::now();
    let value = resolver.resolve(&password).await;
    if checked < before_fetch + ttl {
        assert_eq!(value.unwrap().expose_secret(), PASSWORD);
    }
    // Past the TTL of the only good fetch, resolving fails closed.
    let expired = after_fetch + ttl;
    tokio::time::sleep(expired.saturating_duration_since(Instant::now())).await;
    let error = resolver.resolve(&password).await.unwrap_err();
    assert_clean_error(
        &error,
        "vault:secret/data/orders#password",
        "vault answered 503 Vault is sealed",
    );
}

#[tokio::test]
async fn verifies_vault_tls_with_the_configured_ca() {
    warden_test_support::init();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca_and_leaf(dir.path());
    let vault = FakeVault::start_tls(&cert, &key).await;
    vault.put("secret/data/orders", Kv::V2, json!({"password": PASSWORD}));
    let password = reference("vault:secret/data/orders#password");

    // Without `ca`, the self-signed certificate is not trusted.
    let config = token_config(&vault.address, ROOT_TOKEN, Duration::ZERO);
    let untrusting = SecretResolver::new(&config).unwrap();
    let error = untrusting.resolve(&password).await.unwrap_err();
    assert_clean_error(
        &error,
        "vault:secret/data/orders#password",
        "cannot reach vault",
    );
    assert_eq!(vault.reads(), 0);

    let mut config = config;
    if let Some(settings) = config.vault.as_mut() {
        settings.ca = Some(ca);
    }
    let trusting = SecretResolver::new(&config).unwrap();
    let value = trusting.resolve(&password).await.unwrap();
    assert_eq!(value.expose_secret(), PASSWORD);
    assert_eq!(vault.reads(), 1);
}

/// A private CA and a `localhost` server certificate it signed, as a Vault
/// deployment typically has; returns (CA, certificate, key).
fn private_ca_and_leaf(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use std::process::Command;
    use warden_test_support::process::run;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = dir.join("ca.pem");
    let cert = dir.join("vault.pem");
    let key = dir.join("vault-key.pem");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "2", "-subj", "/CN=warden test CA"])
        .arg("-keyout")
        .arg(dir.join("ca-key.pem"))
        .arg("-out")
        .arg(&ca))
    .unwrap();
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(dir.join("vault.csr")))
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
        .arg("-in")
        .arg(dir.join("vault.csr"))
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(dir.join("ca-key.pem"))
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert))
    .unwrap();
    (ca, cert, key)
}
