//! OIDC issuers for tests.
//!
//! - [`TestIssuer`]: an in-process HTTP server on 127.0.0.1 serving discovery
//!   and a JWKS with an RSA (RS256), an EC P-256 (ES256) and an Ed25519
//!   (EdDSA) key. It mints good and hostile tokens and counts JWKS fetches.
//! - [`RealOidcProvider`]: the npm `oidc-provider` package run by Node
//!   (`oidc-provider/provider.mjs`), issuing client-credentials access tokens.

use crate::process::{KillOnDrop, run};
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use jsonwebtoken::{Algorithm, Header};

/// The audience [`TestIssuer::default_claims`] puts in tokens.
pub const TEST_AUDIENCE: &str = "warden";

/// How the issuer's HTTP endpoints behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerBehavior {
    /// Serve discovery and the JWKS.
    Normal,
    /// Answer every request with 503.
    Unavailable,
    /// Accept requests and never answer (to exercise client timeouts).
    Hang,
}

/// A signing key of the test issuer.
struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    jwk: Value,
    /// The public key as SPKI PEM (the HMAC secret of the key-confusion attack).
    public_pem: String,
}

/// State shared with the HTTP handlers.
struct Shared {
    issuer: String,
    /// Keys whose public halves the JWKS serves; the last one per alg signs.
    keys: Mutex<Vec<Arc<TestKey>>>,
    behavior: Mutex<IssuerBehavior>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An OIDC issuer on `127.0.0.1:PORT`, served from its own thread and
/// runtime so it works from sync tests and any `#[tokio::test]` flavour.
/// Stops on drop.
pub struct TestIssuer {
    shared: Arc<Shared>,
    keydir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestIssuer {
    /// Generates keys (with `openssl`, quick even in debug builds) and starts serving.
    pub fn start() -> Result<TestIssuer> {
        let keydir = tempfile::Builder::new()
            .prefix("warden-issuer-")
            .tempdir()?;
        let keys = vec![
            Arc::new(generate_key(keydir.path(), Algorithm::RS256, "rsa-1")?),
            Arc::new(generate_key(keydir.path(), Algorithm::ES256, "ec-1")?),
            Arc::new(generate_key(keydir.path(), Algorithm::EdDSA, "ed-1")?),
        ];
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            issuer,
            keys: Mutex::new(keys),
            behavior: Mutex::new(IssuerBehavior::Normal),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("test-oidc-issuer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    // Returning drops the runtime, which aborts open connections too.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stop => {}
                    }
                });
            })?;
        Ok(TestIssuer {
            shared,
            keydir,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash); the `iss` of minted tokens.
    pub fn issuer_url(&self) -> &str {
        &self.shared.issuer
    }

    /// Where the JWKS is served (also advertised by discovery).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// How many times `/jwks` was requested.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was requested.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn set_behavior(&self, behavior: IssuerBehavior) {
        *lock(&self.shared.behavior) = behavior;
    }

    /// The kid currently signing for `alg`.
    pub fn kid(&self, alg: Algorithm) -> String {
        self.signer(alg).kid.clone()
    }

    /// Publishes a new key for `alg` (a rotation); it signs from now on. Returns its kid.
    pub fn add_key(&self, alg: Algorithm) -> Result<String> {
        let count = lock(&self.shared.keys).len();
        let kid = format!("{}-{}", kid_prefix(alg), count + 1);
        let key = generate_key(self.keydir.path(), alg, &kid)?;
        lock(&self.shared.keys).push(Arc::new(key));
        Ok(kid)
    }

    /// Stops publishing (and signing with) the key named `kid`.
    pub fn remove_key(&self, kid: &str) {
        lock(&self.shared.keys).retain(|key| key.kid != kid);
    }

    /// Claims for `sub` in `groups`: `iss`, `aud` "warden", `iat`, `exp` in 5 minutes.
    pub fn default_claims(&self, sub: &str, groups: &[&str]) -> Value {
        let now = unix_now();
        json!({
            "iss": self.shared.issuer,
            "aud": TEST_AUDIENCE,
            "sub": sub,
            "groups": groups,
            "iat": now,
            "exp": now + 300,
        })
    }

    /// Signs `claims` with the current key for `alg`, naming its kid.
    pub fn mint(&self, alg: Algorithm, claims: Value) -> String {
        let key = self.signer(alg);
        sign(&key, Some(key.kid.clone()), &claims)
    }

    /// Signs with the current key for `alg` but leaves `kid` out of the header.
    pub fn mint_without_kid(&self, alg: Algorithm, claims: Value) -> String {
        sign(&self.signer(alg), None, &claims)
    }

    /// Signs with the current key for `alg` but puts `kid` in the header
    /// (e.g. an RSA key's kid on an ES256 token).
    pub fn mint_with_kid(&self, alg: Algorithm, kid: &str, claims: Value) -> String {
        sign(&self.signer(alg), Some(kid.to_string()), &claims)
    }

    /// Signs with the current key for `header.alg`, with `header` exactly as
    /// given (e.g. carrying `jku`, `x5u` or an embedded `jwk`).
    pub fn mint_with_header(&self, header: &Header, claims: Value) -> String {
        let key = self.signer(header.alg);
        jsonwebtoken::encode(header, &claims, &key.encoding).expect("signing with a test key")
    }

    /// The published JWK named `kid`, if any.
    pub fn public_jwk(&self, kid: &str) -> Option<Value> {
        lock(&self.shared.keys)
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| key.jwk.clone())
    }

    /// Claims of the hostile tokens below.
    fn hostile_claims(&self) -> Value {
        self.default_claims("mallory", &["admins"])
    }

    /// RS256, `exp` ten minutes ago (beyond any sane leeway).
    pub fn expired_token(&self) -> String {
        let mut claims = self.hostile_claims();
        let now = unix_now();
        claims["iat"] = json!(now - 1200);
        claims["exp"] = json!(now - 600);
        self.mint(Algorithm::RS256, claims)
    }

    /// RS256, `nbf` ten minutes from now.
    pub fn not_yet_valid_token(&self) -> String {
        let mut claims = self.hostile_claims();
        claims["nbf"] = json!(unix_now() + 600);
        self.mint(Algorithm::RS256, claims)
    }

    /// RS256 for audience `not-warden`.
    pub fn wrong_audience_token(&self) -> String {
        let mut claims = self.hostile_claims();
        claims["aud"] = json!(["not-warden", "other"]);
        self.mint(Algorithm::RS256, claims)
    }

    /// RS256 signed by this issuer's key but claiming `iss` `https://evil.example`.
    pub fn wrong_issuer_token(&self) -> String {
        let mut claims = self.hostile_claims();
        claims["iss"] = json!("https://evil.example");
        self.mint(Algorithm::RS256, claims)
    }

    /// A good RS256 token with one signature byte flipped.
    pub fn bad_signature_token(&self) -> String {
        let token = self.mint(Algorithm::RS256, self.hostile_claims());
        let (signed, signature) = token.rsplit_once('.').expect("a JWT has three parts");
        let mut signature = URL_SAFE_NO_PAD
            .decode(signature)
            .expect("jsonwebtoken writes base64url");
        if let Some(byte) = signature.get_mut(10) {
            *byte ^= 0x01;
        }
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// `alg: none`, empty signature.
    pub fn alg_none_token(&self) -> String {
        let header = json!({"alg": "none", "typ": "JWT"});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(self.hostile_claims().to_string())
        )
    }

    /// The key-confusion attack: HS256 with the RSA public key PEM as the
    /// HMAC secret and the RSA key's kid.
    pub fn hs256_confusion_token(&self) -> String {
        let rsa = self.signer(Algorithm::RS256);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rsa.kid.clone());
        let secret = EncodingKey::from_secret(rsa.public_pem.as_bytes());
        jsonwebtoken::encode(&header, &self.hostile_claims(), &secret)
            .expect("HS256 signing cannot fail")
    }

    /// RS256 signed by a fresh key that the JWKS does not publish, under a new kid.
    pub fn unknown_kid_token(&self) -> String {
        let n = rand::random::<u32>();
        let key = generate_key(
            self.keydir.path(),
            Algorithm::RS256,
            &format!("unpublished-{n}"),
        )
        .expect("openssl makes a key");
        sign(&key, Some(key.kid.clone()), &self.hostile_claims())
    }

    /// A token naming a kid the JWKS does not have, without making a new key
    /// (the signature is the real RSA key's; only the kid is unknown). Cheap, for floods.
    pub fn unknown_kid_token_named(&self, kid: &str) -> String {
        self.mint_with_kid(Algorithm::RS256, kid, self.hostile_claims())
    }

    fn signer(&self, alg: Algorithm) -> Arc<TestKey> {
        lock(&self.shared.keys)
            .iter()
            .rev()
            .find(|key| key.alg == alg)
            .cloned()
            .unwrap_or_else(|| panic!("the test issuer has no {alg:?} key"))
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(refusal) = misbehave(&shared).await {
        return refusal;
    }
    axum::Json(json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/jwks", shared.issuer),
        "token_endpoint": format!("{}/token", shared.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(refusal) = misbehave(&shared).await {
        return refusal;
    }
    let keys: Vec<Value> = lock(&shared.keys)
        .iter()
        .map(|key| key.jwk.clone())
        .collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

/// A 503, a hang, or `None` to serve normally.
async fn misbehave(shared: &Shared) -> Option<Response> {
    let behavior = *lock(&shared.behavior);
    match behavior {
        IssuerBehavior::Normal => None,
        IssuerBehavior::Unavailable => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response())
        }
        IssuerBehavior::Hang => std::future::pending().await,
    }
}

fn kid_prefix(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => "ec",
        Algorithm::EdDSA => "ed",
        _ => "rsa",
    }
}

/// Makes a key pair with `openssl genpkey` (fast in any build) and loads it.
fn generate_key(dir: &Path, alg: Algorithm, kid: &str) -> Result<TestKey> {
    let private = dir.join(format!("{kid}.pem"));
    let mut genpkey = Command::new("openssl");
    genpkey.arg("genpkey");
    match alg {
        Algorithm::RS256 => genpkey.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        Algorithm::ES256 => {
            genpkey.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        }
        Algorithm::EdDSA => genpkey.args(["-algorithm", "ED25519"]),
        other => bail!("the test issuer makes RS256, ES256 and EdDSA keys, not {other:?}"),
    };
    run(genpkey.arg("-out").arg(&private)).context("openssl genpkey (is openssl installed?)")?;
    let public_pem = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private))?;
    let private_pem = std::fs::read(&private)?;
    let encoding = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&private_pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&private_pem),
        _ => EncodingKey::from_ed_pem(&private_pem),
    }
    .context("jsonwebtoken cannot load the openssl key")?;
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg)?)?;
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    Ok(TestKey {
        kid: kid.to_string(),
        alg,
        encoding,
        jwk,
        public_pem,
    })
}

fn sign(key: &TestKey, kid: Option<String>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid;
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("signing with a test key")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A client of the [`RealOidcProvider`]: its access tokens carry `groups`
/// (and `email` when set).
#[derive(Clone, Debug)]
pub struct OidcClient {
    pub client_id: String,
    pub client_secret: String,
    pub groups: Vec<String>,
    pub email: Option<String>,
}

impl OidcClient {
    /// A client with a random secret.
    pub fn new(client_id: &str, groups: &[&str]) -> OidcClient {
        OidcClient {
            client_id: client_id.to_string(),
            client_secret: format!("secret-{:032x}", rand::random::<u128>()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            email: None,
        }
    }
}

/// A confidential web client of the [`RealOidcProvider`] that logs people
/// in with the authorization code flow.
#[derive(Clone, Debug)]
pub struct WebLoginClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
}

impl WebLoginClient {
    /// A client with a random secret.
    pub fn new(client_id: &str, redirect_uri: &str) -> WebLoginClient {
        WebLoginClient {
            client_id: client_id.to_string(),
            client_secret: format!("secret-{:032x}", rand::random::<u128>()),
            redirect_uri: redirect_uri.to_string(),
        }
    }
}

/// A person who can log in at the provider's login page.
#[derive(Clone, Debug)]
pub struct Account {
    pub login: String,
    pub email: String,
    pub groups: Vec<String>,
}

/// A real OIDC provider (node-oidc-provider) on a random loopback port,
/// killed on drop. Needs `node` and `npm ci --prefix crates/test-support/oidc-provider`.
pub struct RealOidcProvider {
    issuer: String,
    audience: String,
    clients: Vec<OidcClient>,
    _dir: tempfile::TempDir,
    _process: KillOnDrop,
}

/// The directory holding `provider.mjs` and its `node_modules`.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

impl RealOidcProvider {
    /// Audience "warden"; one client `agent-1` in group `agents` with email `agent-1@example.test`.
    pub fn start() -> Result<RealOidcProvider> {
        let mut client = OidcClient::new("agent-1", &["agents"]);
        client.email = Some("agent-1@example.test".into());
        RealOidcProvider::start_with(TEST_AUDIENCE, vec![client])
    }

    pub fn start_with(audience: &str, clients: Vec<OidcClient>) -> Result<RealOidcProvider> {
        RealOidcProvider::start_full(audience, clients, None, &[])
    }

    /// Also a web login client (authorization code + PKCE, redirecting to
    /// `web.redirect_uri`) and the people who can log in through the
    /// provider's login page (any password).
    pub fn start_with_login(
        audience: &str,
        clients: Vec<OidcClient>,
        web: &WebLoginClient,
        accounts: &[Account],
    ) -> Result<RealOidcProvider> {
        RealOidcProvider::start_full(audience, clients, Some(web), accounts)
    }

    fn start_full(
        audience: &str,
        clients: Vec<OidcClient>,
        web: Option<&WebLoginClient>,
        accounts: &[Account],
    ) -> Result<RealOidcProvider> {
        let dir = provider_dir();
        if !dir.join("node_modules/oidc-provider").is_dir() {
            bail!(
                "the OIDC provider's npm packages are missing; run `npm ci --prefix crates/test-support/oidc-provider`"
            );
        }
        let config = json!({
            "audience": audience,
            "clients": clients.iter().map(|c| json!({
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "groups": c.groups,
                "email": c.email,
            })).collect::<Vec<_>>(),
            "web_clients": web.iter().map(|w| json!({
                "client_id": w.client_id,
                "client_secret": w.client_secret,
                "redirect_uri": w.redirect_uri,
            })).collect::<Vec<_>>(),
            "accounts": accounts.iter().map(|a| (a.login.clone(), json!({
                "email": a.email,
                "groups": a.groups,
            }))).collect::<serde_json::Map<String, Value>>(),
        });
        let logdir = tempfile::Builder::new()
            .prefix("warden-oidc-provider-")
            .tempdir()?;
        let log_path = logdir.path().join("provider.log");
        let mut child = KillOnDrop(
            Command::new(crate::tools::node())
                .arg(dir.join("provider.mjs"))
                .arg(config.to_string())
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log_path)?)
                .spawn()
                .context("cannot run `node` (install Node.js 20+)")?,
        );
        let stdout = child
            .0
            .stdout
            .take()
            .context("the provider's stdout is not piped")?;
        // The script prints {"issuer": ...} once it listens; read it on a
        // thread so a silent process cannot hang the test.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = std::io::BufReader::new(stdout);
            let _ = sender.send(reader.read_line(&mut line).map(|_| line));
            // Keep the pipe open so later writes cannot fail with EPIPE.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            outcome => {
                let _ = child.0.kill();
                let _ = child.0.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("the OIDC provider did not start ({outcome:?}): {log}");
            }
        };
        let started: Value = serde_json::from_str(line.trim())
            .with_context(|| format!("unexpected provider output: {line}"))?;
        let issuer = started["issuer"]
            .as_str()
            .context("the provider did not print its issuer")?
            .to_string();
        Ok(RealOidcProvider {
            issuer,
            audience: audience.to_string(),
            clients,
            _dir: logdir,
            _process: child,
        })
    }

    /// `http://127.0.0.1:PORT`: the `iss` of its tokens.
    pub fn issuer_url(&self) -> &str {
        &self.issuer
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn clients(&self) -> &[OidcClient] {
        &self.clients
    }

    /// A fresh access token (an RS256 JWT) for `client_id` from the
    /// `client_credentials` grant.
    pub async fn token(&self, client_id: &str) -> Result<String> {
        let client = self
            .clients
            .iter()
            .find(|c| c.client_id == client_id)
            .with_context(|| format!("the provider has no client {client_id}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let response = http
            .post(format!("{}/token", self.issuer))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body("grant_type=client_credentials")
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("token request failed ({status}): {body}");
        }
        body["access_token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no access_token in {body}"))
    }
}
