//! Test gateway: simple engines (fixed tokens, keyword policy, static
//! credential, in-memory session log and recorder) around a real
//! `MysqlHandler` served by the real broker on 127.0.0.1:0.
#![allow(dead_code, clippy::unwrap_used)]

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use tokio::io::AsyncWriteExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_core::broker::{Broker, ConnectionHandler};
use warden_core::config::{Config, Protocol, TlsConfig};
use warden_core::engines::{
    AuthContext, AuthError, AuthReason, Authenticator, CredentialError, CredentialSource,
    PolicyEngine, Recorder, SessionRecording, StoreError, UpstreamCredential,
};
use warden_core::events::{EventKind, SessionInfo, SessionSummary};
use warden_core::gateway::Shutdown;
use warden_core::metrics::Metrics;
use warden_core::request::{Dialect, Request};
use warden_core::{Action, Decision, Gateway, Identity, IdentityKind, Operation};
use warden_mysql::{MysqlHandler, NativePasswordVerifier};

pub const TOKEN: &str = "tok-alice-0123456789";
/// Authenticates but policy refuses every connect.
pub const TOKEN_MALLORY: &str = "tok-mallory-0123456789";
pub const TARGET: &str = "shop";

pub fn identity(subject: &str) -> Identity {
    Identity {
        subject: subject.to_string(),
        kind: IdentityKind::Oidc {
            issuer: "https://test-issuer".into(),
        },
        groups: vec!["agents".into()],
        email: None,
        claims: Default::default(),
    }
}

/// Accepts two fixed tokens.
pub struct TestAuthenticator;

#[async_trait]
impl Authenticator for TestAuthenticator {
    async fn authenticate(
        &self,
        credential: &SecretString,
        _context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        match credential.expose_secret() {
            TOKEN => Ok(identity("alice")),
            TOKEN_MALLORY => Ok(identity("mallory")),
            _ => Err(AuthReason::UnrecognisedCredential.into()),
        }
    }
}

/// Denies connects by `mallory`, DELETE by keyword (write) and admin keywords.
pub struct KeywordPolicy;

fn decision(action: Action, operation: Operation, rule: &str, reason: &str) -> Decision {
    Decision::new(
        action,
        operation,
        Some(rule.to_string()),
        Vec::new(),
        reason.to_string(),
    )
}

impl PolicyEngine for KeywordPolicy {
    fn check_connect(&self, identity: &Identity, _target: &str) -> Decision {
        if identity.subject == "mallory" {
            decision(
                Action::Deny,
                Operation::Connect,
                "no mallory",
                "mallory may not connect",
            )
        } else {
            decision(
                Action::Allow,
                Operation::Connect,
                "agents connect",
                "agents may connect",
            )
        }
    }

    fn check_statement(
        &self,
        _identity: &Identity,
        _target: &str,
        request: &Request<'_>,
    ) -> Decision {
        let Request::Sql { dialect, text: sql } = *request;
        assert_eq!(dialect, Dialect::Mysql);
        let upper = sql.to_uppercase();
        if upper.contains("DELETE") {
            decision(
                Action::Deny,
                Operation::Write,
                "no deletes",
                "deletes are denied",
            )
        } else if ["GRANT", "SHUTDOWN", "SET GLOBAL", "KILL"]
            .iter()
            .any(|k| upper.contains(k))
        {
            decision(
                Action::Deny,
                Operation::Admin,
                "no admin",
                "admin is denied",
            )
        } else if upper.contains("LOAD DATA") {
            // Let it through so the protocol-level refusal is what is tested.
            decision(Action::Allow, Operation::Write, "agents write", "test")
        } else {
            decision(
                Action::Allow,
                Operation::Read,
                "agents read",
                "reads are allowed",
            )
        }
    }
}

/// Always the same upstream user and password.
pub struct StaticCredential {
    pub user: String,
    pub password: String,
}

#[async_trait]
impl CredentialSource for StaticCredential {
    async fn acquire(
        &self,
        _grant: &warden_core::admission::ConnectGrant,
        _session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError> {
        Ok(UpstreamCredential::fixed(
            self.user.clone(),
            SecretString::from(self.password.clone()),
        ))
    }
}

pub use warden_test_support::memory::MemoryLog;

/// Keeps every event of every session in memory.
#[derive(Default)]
pub struct MemoryRecorder {
    pub events: Arc<Mutex<Vec<(String, EventKind)>>>,
}

struct MemoryRecording {
    session: String,
    events: Arc<Mutex<Vec<(String, EventKind)>>>,
}

impl Recorder for MemoryRecorder {
    fn open(&self, session: &SessionInfo) -> Result<Box<dyn SessionRecording>, StoreError> {
        Ok(Box::new(MemoryRecording {
            session: session.id.clone(),
            events: self.events.clone(),
        }))
    }
}

impl SessionRecording for MemoryRecording {
    fn record(&self, event: EventKind) {
        self.events
            .lock()
            .unwrap()
            .push((self.session.clone(), event));
    }
    fn finish(&self, summary: &SessionSummary) {
        self.record(EventKind::End {
            bytes_from_client: summary.bytes_from_client,
            bytes_to_client: summary.bytes_to_client,
            statements: summary.statements,
            reason: summary.reason.clone(),
        });
    }
}

/// Accepts `key_<name>` users whose native-password answer matches `password`.
pub struct TestNativeVerifier {
    pub keys: HashMap<String, String>,
}

#[async_trait]
impl NativePasswordVerifier for TestNativeVerifier {
    async fn verify(
        &self,
        user: &str,
        scramble: &[u8],
        response: &[u8],
        _context: &AuthContext,
    ) -> Result<Option<Identity>, AuthError> {
        let Some(password) = self.keys.get(user) else {
            return Ok(None);
        };
        let expected = mysql_common_scramble(scramble, password.as_bytes()).ok_or(
            AuthReason::NativePasswordMismatch {
                id: user.to_string(),
            },
        )?;
        if expected.as_slice() == response {
            Ok(Some(identity(user)))
        } else {
            Err(AuthReason::NativePasswordMismatch {
                id: user.to_string(),
            }
            .into())
        }
    }
}

/// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))), written out so
/// the test does not trust the code under test.
fn mysql_common_scramble(scramble: &[u8], password: &[u8]) -> Option<Vec<u8>> {
    use sha1::{Digest, Sha1};
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut hasher = Sha1::new();
    hasher.update(scramble);
    hasher.update(stage2);
    let mix = hasher.finalize();
    Some(stage1.iter().zip(mix).map(|(a, b)| a ^ b).collect())
}

/// How to build a harness.
pub struct Options {
    pub upstream: String,
    pub database: String,
    pub user: String,
    pub password: String,
    pub tls: bool,
    pub max_message_size: u64,
    pub handshake_timeout: &'static str,
    pub native: bool,
    pub max_connections: usize,
}

impl Options {
    pub fn new(upstream: String, database: &str, user: &str, password: &str) -> Self {
        Options {
            upstream,
            database: database.to_string(),
            user: user.to_string(),
            password: password.to_string(),
            tls: false,
            max_message_size: 64 << 20,
            handshake_timeout: "3s",
            native: false,
            max_connections: 100,
        }
    }
}

/// Native-password test keys: user → key text.
pub const KEY_USER: &str = "key_ci";
pub const KEY_SECRET: &str = "wdn_ci_secret-key-text";

pub struct Harness {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub recorder: Arc<MemoryRecorder>,
    pub log: Arc<MemoryLog>,
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        warden_test_support::init();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("warden.crt");
        let key = dir.path().join("warden.key");
        if options.tls {
            write_cert(dir.path(), &cert, &key);
        }
        let text = format!(
            r#"
[server]
data_dir = "{data}"
max_message_size = {max}
handshake_timeout = "{handshake}"
max_connections = {max_connections}

[[listener]]
protocol = "mysql"
listen = "127.0.0.1:0"

[[target]]
name = "{TARGET}"
protocol = "mysql"
address = "{upstream}"
database = "{database}"
upstream_tls = "disable"
connect_timeout = "5s"
credentials = {{ mode = "static", user = "unused", password = "env:WARDEN_MYSQL_TEST_UNUSED" }}

[[target]]
name = "other"
protocol = "mysql"
address = "{upstream}"
upstream_tls = "disable"
credentials = {{ mode = "static", user = "unused", password = "env:WARDEN_MYSQL_TEST_UNUSED" }}

[[target]]
name = "pg"
protocol = "postgres"
address = "127.0.0.1:1"
credentials = {{ mode = "static", user = "unused", password = "env:WARDEN_MYSQL_TEST_UNUSED" }}
"#,
            data = dir.path().display(),
            max = options.max_message_size,
            handshake = options.handshake_timeout,
            max_connections = options.max_connections,
            upstream = options.upstream,
            database = options.database,
        );
        let config = Config::parse(&text, "test.toml").expect("test config");
        let tls = options.tls.then(|| {
            warden_core::tls::acceptor(&TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            })
            .expect("tls acceptor")
        });
        let recorder = Arc::new(MemoryRecorder::default());
        let log = Arc::new(MemoryLog::default());
        let gateway = Arc::new(Gateway {
            config: Arc::new(config),
            authenticator: Arc::new(TestAuthenticator),
            policy: Arc::new(KeywordPolicy),
            credentials: Arc::new(StaticCredential {
                user: options.user.clone(),
                password: options.password.clone(),
            }),
            sessions: log.clone(),
            recorder: recorder.clone(),
            masking: Arc::new(warden_core::masking::NoMasking),
            reviews: Arc::new(warden_core::reviews::NoReviews),
            metrics: Arc::new(Metrics::default()),
            session_counts: Default::default(),
            tls,
            shutdown: Shutdown::default(),
        });
        let mut handler = MysqlHandler::new(gateway.clone());
        if options.native {
            handler = handler.with_native_password(Arc::new(TestNativeVerifier {
                keys: HashMap::from([(KEY_USER.to_string(), KEY_SECRET.to_string())]),
            }));
        }
        let handlers: HashMap<Protocol, Arc<dyn ConnectionHandler>> = HashMap::from([(
            Protocol::Mysql,
            Arc::new(handler) as Arc<dyn ConnectionHandler>,
        )]);
        let broker = Broker::bind(gateway.clone(), &handlers)
            .await
            .expect("bind");
        let addr = broker.local_addrs()[0].1;
        tokio::spawn(broker.run());
        Harness {
            addr,
            gateway,
            recorder,
            log,
            dir,
            cert,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Events of every session so far.
    pub fn events(&self) -> Vec<(String, EventKind)> {
        self.recorder.events.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` sessions have ended; returns their summaries.
    pub async fn wait_ended(&self, n: usize) -> Vec<(String, SessionSummary)> {
        for _ in 0..200 {
            let ended = self.log.ended.lock().unwrap().clone();
            if ended.len() >= n {
                return ended;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} sessions ended");
    }

    /// Runs the `mysql` CLI against Warden with `extra` args and `-e sql`;
    /// returns (success, stdout, stderr).
    pub async fn cli(
        &self,
        token: &str,
        database: &str,
        extra: &[&str],
        sql: &str,
    ) -> (bool, String, String) {
        let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        args.push("-e".into());
        args.push(sql.into());
        self.run_cli(token, database, &args, None).await
    }

    /// Runs the `mysql` CLI with `script` on its standard input.
    pub async fn cli_script(
        &self,
        token: &str,
        extra: &[&str],
        script: &str,
    ) -> (bool, String, String) {
        let args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        self.run_cli(token, TARGET, &args, Some(script)).await
    }

    async fn run_cli(
        &self,
        token: &str,
        database: &str,
        args: &[String],
        stdin: Option<&str>,
    ) -> (bool, String, String) {
        let mut command = tokio::process::Command::new("mysql");
        command
            .args(["--no-defaults", "-h", "127.0.0.1"])
            .arg(format!("-P{}", self.port()))
            .args(["-u", "agent"])
            .arg(format!("--password={token}"))
            .arg(format!("-D{database}"))
            .args([
                "--enable-cleartext-plugin",
                "-N",
                "-B",
                "--connect-timeout=10",
            ])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("run mysql CLI");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .await
            .expect("write stdin");
        drop(input);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("mysql CLI finished")
            .expect("mysql CLI output");
        // The MariaDB client allows cleartext without the flag and warns
        // that it is obsolete; MySQL's client needs it.
        let stdout: String = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.starts_with("WARNING: option '--enable-cleartext-plugin'"))
            .map(|line| format!("{line}\n"))
            .collect();
        (
            output.status.success(),
            stdout,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn count(&self, counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.gateway.shutdown.draining.cancel();
        self.gateway.shutdown.terminate.cancel();
    }
}

fn write_cert(dir: &Path, cert: &Path, key: &Path) {
    let status = std::process::Command::new("openssl")
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
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        status.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Raw-TCP helpers for bad-input tests.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    /// Reads one packet (seq, payload); None when the connection is closed.
    pub async fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let mut header = [0u8; 4];
            self.stream.read_exact(&mut header).await.ok()?;
            let len =
                usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).await.ok()?;
            Some((header[3], body))
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("Warden answered or closed in time")
    }

    pub async fn send(&mut self, seq: u8, payload: &[u8]) {
        let len = payload.len();
        let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        out.extend_from_slice(payload);
        let _ = self.stream.write_all(&out).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// True once the peer has closed (reads EOF), bounded.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        let wait = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or(false)
    }
}

/// Error code of an ERR packet.
pub fn err_code(payload: &[u8]) -> Option<u16> {
    (payload.first() == Some(&0xFF) && payload.len() >= 3)
        .then(|| u16::from_le_bytes([payload[1], payload[2]]))
}

pub fn err_message(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload.get(9..).unwrap_or_default()).into_owned()
}

/// A minimal HandshakeResponse41 (native password plugin, no attributes).
pub fn handshake_response(caps: u32, user: &str, auth: &[u8], db: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&caps.to_le_bytes());
    out.extend_from_slice(&(16u32 << 20).to_le_bytes());
    out.push(45);
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.push(auth.len() as u8);
    out.extend_from_slice(auth);
    if let Some(db) = db {
        out.extend_from_slice(db.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(b"mysql_native_password\0");
    out
}

/// CLIENT_PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | CONNECT_WITH_DB | DEPRECATE_EOF | MULTI_*.
pub const RAW_CAPS: u32 =
    0x0200 | 0x8000 | 0x0008_0000 | 0x0008 | 0x0100_0000 | 0x0001_0000 | 0x0002_0000;

impl Raw {
    /// Logs in through the cleartext switch with `token`; returns after Warden's OK.
    pub async fn login(addr: SocketAddr, token: &str) -> Raw {
        Raw::login_with(addr, token, RAW_CAPS).await
    }

    /// Like [`Raw::login`] with chosen client capabilities.
    pub async fn login_with(addr: SocketAddr, token: &str, caps: u32) -> Raw {
        let mut raw = Raw::connect(addr).await;
        let (_, greeting) = raw.read().await.expect("greeting");
        assert_eq!(greeting[0], 10);
        raw.send(1, &handshake_response(caps, "agent", &[], Some(TARGET)))
            .await;
        let (_, switch) = raw.read().await.expect("auth switch");
        assert_eq!(switch[0], 0xFE);
        raw.send(3, format!("{token}\0").as_bytes()).await;
        let (seq, ok) = raw.read().await.expect("login answer");
        assert_eq!(seq, 4);
        assert_eq!(ok[0], 0x00, "login OK, got {}", err_message(&ok));
        raw
    }

    /// Sends a command (sequence 0) and returns the first response packet.
    pub async fn command(&mut self, payload: &[u8]) -> Vec<u8> {
        self.send(0, payload).await;
        self.read().await.expect("a response").1
    }

    /// Reads packets until a terminator (0xFE, short) or an error; returns them all.
    pub async fn read_until_end(&mut self) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        loop {
            let (_, packet) = self.read().await.expect("a packet");
            let end = (packet.first() == Some(&0xFE) && packet.len() < 9)
                || packet.first() == Some(&0xFF);
            packets.push(packet);
            if end {
                return packets;
            }
        }
    }
}

/// Starts a MariaDB, one at a time per test binary (several concurrent
/// `mariadb-install-db` runs on two cores fail now and then), retrying once.
pub fn start_mariadb() -> warden_test_support::mariadb::MariaDb {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    warden_test_support::init();
    match warden_test_support::mariadb::MariaDb::start() {
        Ok(db) => db,
        Err(first) => {
            eprintln!("MariaDB did not start ({first:#}); retrying once");
            warden_test_support::mariadb::MariaDb::start().expect("start MariaDB")
        }
    }
}
