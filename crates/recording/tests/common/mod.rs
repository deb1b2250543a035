//! A real S3-compatible server (`s3s-fs`, which checks SigV4 signatures) on
//! a random loopback port with a temp dir, and session helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden_core::config::Protocol;
use warden_core::events::{EventKind, SessionInfo, SessionSummary};
use warden_core::request::StatementProtocol;
use warden_core::{Identity, IdentityKind};
use warden_recording::S3SinkConfig;

pub const ACCESS_KEY: &str = "warden-test-ak";
pub const SECRET_KEY: &str = "warden-test-secret-key";

/// Finds `s3s-fs` on PATH or in cargo's bin directory.
pub fn s3s_fs_binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(home).join("bin/s3s-fs"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/s3s-fs"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs is not installed: run scripts/setup.sh \
             (it runs `cargo install s3s-fs@0.14.1 --features binary --locked`)"
            )
        })
}

pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl S3Server {
    pub async fn start() -> S3Server {
        warden_core::tls::install_crypto_provider();
        let mut server = S3Server {
            child: None,
            port: 0,
            dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn().await {
                return server;
            }
        }
        panic!("s3s-fs did not start");
    }

    /// Starts the binary on `self.port`; `false` if it does not listen.
    async fn spawn(&mut self) -> bool {
        let child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return false;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop();
        false
    }

    /// Kills the server (its data stays in its directory).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.spawn().await {
            assert!(Instant::now() < deadline, "s3s-fs did not restart");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the objects of `bucket` are stored on disk.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A sink config for a server started by another process.
    pub fn config_for_port(port: u16, bucket: &str) -> S3SinkConfig {
        S3SinkConfig {
            bucket: bucket.to_string(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: None,
            prefix: String::new(),
            path_style: true,
            access_key_id: ACCESS_KEY.to_string(),
            secret_access_key: SECRET_KEY.to_string().into(),
        }
    }

    pub fn sink_config(&self, bucket: &str, prefix: &str) -> S3SinkConfig {
        S3SinkConfig {
            bucket: bucket.to_string(),
            endpoint: Some(self.endpoint()),
            region: None,
            prefix: prefix.to_string(),
            path_style: true,
            access_key_id: ACCESS_KEY.to_string(),
            secret_access_key: SECRET_KEY.to_string().into(),
        }
    }

    /// Creates a bucket with the SDK and returns a sink for it.
    pub async fn bucket(&self, bucket: &str, prefix: &str) -> warden_recording::S3Sink {
        let sink = warden_recording::S3Sink::new(&self.sink_config(bucket, prefix));
        sink.client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create the bucket");
        sink
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn identity() -> Identity {
    Identity {
        subject: "alice".into(),
        kind: IdentityKind::Oidc {
            issuer: "https://idp.test".into(),
        },
        groups: vec!["agents".into()],
        email: Some("alice@example.com".into()),
        claims: serde_json::Map::new(),
    }
}

pub fn session(target: &str) -> SessionInfo {
    let addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    SessionInfo::new(identity(), target, Protocol::Postgres, addr, true)
}

pub fn start(session: &SessionInfo) -> EventKind {
    EventKind::Start {
        identity: session.identity.clone(),
        target: session.target.clone(),
        protocol: session.protocol,
        client_addr: session.client_addr,
        client_tls: session.client_tls,
        upstream_user: "app_reader".into(),
    }
}

pub fn statement(text: &str) -> EventKind {
    EventKind::Statement {
        text: text.into(),
        protocol: StatementProtocol::Simple,
        duration_ms: 0.5,
        tags: vec!["SELECT 1".into()],
        rows: Some(1),
        error_code: None,
        error_message: None,
    }
}

pub fn summary(statements: u64) -> SessionSummary {
    SessionSummary {
        bytes_from_client: 10,
        bytes_to_client: 20,
        statements,
        reason: "client closed".into(),
    }
}

/// Polls `check` every 50 ms until it holds; panics after `limit` with `what`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out
}
