//! Session recordings end to end with a real S3-compatible server (`s3s-fs`,
//! which checks request signatures): a psql session lands in the bucket,
//! replays and verifies; a long session uploads chunks while it is live; an
//! outage of the server loses nothing; `kill -9` of Warden mid-session leaves
//! a recording sealed as interrupted at the next start; a flipped byte is caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../recording/tests/common/mod.rs"]
mod s3;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden_test_support::warden::{Warden, WardenConfig, psql};

const BUCKET: &str = "warden-recordings";
const SIGNING_KEY: &str = "4c6f6e672d6c69766564207369676e696e67206b657920666f72207465737473";

struct Env {
    pg: warden_test_support::postgres::Postgres,
    issuer: warden_test_support::oidc::TestIssuer,
    app_password: String,
    warden: Warden,
    s3: s3::S3Server,
    runtime: tokio::runtime::Runtime,
}

fn recording_section(s3: &s3::S3Server) -> String {
    format!(
        r#"
[recording]
sink = "s3"
bucket = "{BUCKET}"
endpoint = "{endpoint}"
chunk_size = "64KiB"
chunk_interval = "1s"
signing_key = "env:SIGNING_KEY"
capture_results = true
"#,
        endpoint = s3.endpoint()
    )
}

fn warden_config(
    pg: &warden_test_support::postgres::Postgres,
    issuer: &warden_test_support::oidc::TestIssuer,
    app_password: &str,
    s3: &s3::S3Server,
) -> WardenConfig {
    WardenConfig {
        body: common::target_config(pg, issuer, common::DEFAULT_POLICIES, "")
            + &recording_section(s3),
        env: vec![
            ("ORDERS_PASSWORD".into(), app_password.to_string()),
            ("SIGNING_KEY".into(), SIGNING_KEY.into()),
            ("AWS_ACCESS_KEY_ID".into(), s3::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), s3::SECRET_KEY.into()),
        ],
        ..WardenConfig::default()
    }
}

fn start() -> Env {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(async {
        let s3 = s3::S3Server::start().await;
        s3.bucket(BUCKET, "").await;
        s3
    });
    let (pg, app_password) = common::upstream();
    let issuer = warden_test_support::oidc::TestIssuer::start().unwrap();
    let warden = Warden::start(
        common::binary(),
        warden_config(&pg, &issuer, &app_password, &s3),
    )
    .unwrap();
    Env {
        pg,
        issuer,
        app_password,
        warden,
        s3,
        runtime,
    }
}

impl Env {
    fn token(&self) -> String {
        self.issuer.mint(
            warden_test_support::oidc::Algorithm::RS256,
            self.issuer.default_claims("recorded-agent", &["agents"]),
        )
    }

    fn conninfo(&self) -> String {
        self.warden.conninfo("orders")
    }

    fn last_session_id(&self) -> String {
        self.warden.last_session_id().unwrap()
    }

    /// Objects of a session in the bucket (files in s3s-fs's directory).
    fn objects(&self, session_id: &str) -> Vec<PathBuf> {
        s3::files_under(&self.s3.data_dir().join(BUCKET).join(session_id))
    }

    fn wait_manifest(&self, session_id: &str, limit: Duration) {
        let started = Instant::now();
        while !self
            .objects(session_id)
            .iter()
            .any(|p| p.ends_with("manifest.json"))
        {
            assert!(
                started.elapsed() < limit,
                "no manifest of {session_id} in the bucket after {limit:?}: {:?}\n{}",
                self.objects(session_id),
                self.warden.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new(common::binary())
            .args(args)
            .args(["--config"])
            .arg(self.warden.config_path())
            .env("SIGNING_KEY", SIGNING_KEY)
            .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY)
            .env("ORDERS_PASSWORD", &self.app_password)
            .current_dir(self.warden.dir())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Env {
    /// `warden replay ID --json` with the S3 credentials the CLI needs.
    fn events(&self, session_id: &str) -> Vec<serde_json::Value> {
        let (ok, out) = self.cli(&["replay", session_id, "--json"]);
        assert!(ok, "{out}");
        out.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

fn chunk_files(objects: &[PathBuf]) -> Vec<&PathBuf> {
    objects
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("chunk-"))
        })
        .collect()
}

#[test]
fn psql_session_lands_in_the_bucket_replays_and_verifies() {
    let env = start();
    let (ok, _, err) = psql(
        &env.conninfo(),
        &env.token(),
        &[
            "-c",
            "select name from items order by id",
            "-c",
            "select 42 as answer",
        ],
    );
    assert!(ok, "{err}");
    let id = env.last_session_id();
    env.wait_manifest(&id, Duration::from_secs(20));
    let (ok, out) = env.cli(&["replay", &id]);
    assert!(ok, "{out}");
    assert!(out.contains("select name from items order by id"), "{out}");
    assert!(out.contains("select 42 as answer"), "{out}");
    // Captured rows replay as tables.
    assert!(
        out.contains("apple") && out.contains("plum") && out.contains("42"),
        "{out}"
    );
    let (ok, out) = env.cli(&["recordings", "verify", &id]);
    assert!(ok, "verify failed on an intact recording: {out}");

    // One flipped byte in a chunk in the bucket: verify names that chunk.
    let objects = env.objects(&id);
    let chunk = chunk_files(&objects)
        .into_iter()
        .min()
        .expect("a chunk object")
        .clone();
    let mut bytes = std::fs::read(&chunk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&chunk, bytes).unwrap();
    let (ok, out) = env.cli(&["recordings", "verify", &id]);
    let name = chunk.file_name().unwrap().to_str().unwrap();
    assert!(
        !ok && out.contains(name),
        "verify should name {name}: {out}"
    );
}

#[test]
fn a_long_session_uploads_chunks_while_it_is_live() {
    let env = start();
    let script = env.warden.dir().join("many.sql");
    let mut sql = String::with_capacity(50_000 * 12);
    for i in 0..50_000 {
        sql.push_str(&format!("select {i};\n"));
    }
    sql.push_str("select pg_sleep(6);\n");
    std::fs::write(&script, sql).unwrap();
    let conninfo = env.conninfo();
    let token = env.token();
    let script_arg = script.display().to_string();
    let client = std::thread::spawn(move || psql(&conninfo, &token, &["-q", "-f", &script_arg]));
    // While psql sleeps at the end, the session is live: chunks are already in the bucket.
    let id = loop {
        if let Ok(id) = env.warden.last_session_id() {
            break id;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let started = Instant::now();
    let live_chunks = loop {
        let objects = env.objects(&id);
        let chunks = chunk_files(&objects).len();
        if chunks >= 3 || client.is_finished() {
            break chunks;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no chunks uploaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        live_chunks >= 3 && !client.is_finished(),
        "only {live_chunks} chunk(s) uploaded while the session was live"
    );
    let (ok, _, err) = client.join().unwrap();
    assert!(ok, "{err}");
    env.wait_manifest(&id, Duration::from_secs(30));
    let events = env.events(&id);
    let statements = events.iter().filter(|e| e["type"] == "statement").count();
    assert!(statements >= 50_001, "recorded {statements} statements");
}

#[test]
fn an_s3_outage_loses_nothing() {
    let mut env = start();
    let outage = std::env::var("WARDEN_TEST_S3_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64);
    env.s3.stop();
    let stopped = Instant::now();
    let mut ids = Vec::new();
    for round in 0..3 {
        let (ok, _, err) = psql(
            &env.conninfo(),
            &env.token(),
            &[
                "-c",
                &format!("select {round} as round"),
                "-c",
                "select count(*) from items",
            ],
        );
        assert!(ok, "sessions go on while the sink is down: {err}");
        ids.push(env.last_session_id());
    }
    std::thread::sleep(Duration::from_secs(outage).saturating_sub(stopped.elapsed()));
    for id in &ids {
        assert!(
            env.objects(id).is_empty(),
            "nothing can have reached a stopped server"
        );
    }
    env.runtime.block_on(env.s3.restart());
    for (round, id) in ids.iter().enumerate() {
        env.wait_manifest(id, Duration::from_secs(60));
        let (ok, out) = env.cli(&["recordings", "verify", id]);
        assert!(ok, "{out}");
        let (ok, out) = env.cli(&["replay", id]);
        assert!(
            ok && out.contains(&format!("select {round} as round")),
            "{out}"
        );
    }
}

#[test]
fn kill_9_mid_session_is_sealed_as_interrupted_and_uploaded_at_restart() {
    let mut env = start();
    let conninfo = env.conninfo();
    let token = env.token();
    let client = std::thread::spawn(move || {
        psql(
            &conninfo,
            &token,
            &[
                "-c",
                "select 'before the kill' as marker",
                "-c",
                "select pg_sleep(30)",
            ],
        )
    });
    let id = loop {
        if let Ok(id) = env.warden.last_session_id() {
            break id;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let the first statement reach the spool (the writer collects every 20 ms).
    std::thread::sleep(Duration::from_millis(1500));
    let config = warden_config(&env.pg, &env.issuer, &env.app_password, &env.s3);
    env.warden.kill_and_restart(&config).unwrap();
    let (ok, _, _) = client.join().unwrap();
    assert!(!ok, "the client's connection died with Warden");
    env.wait_manifest(&id, Duration::from_secs(30));
    let events = env.events(&id);
    let text = serde_json::to_string(&events).unwrap();
    assert!(text.contains("before the kill"), "{text}");
    let end = events.last().unwrap();
    assert_eq!(end["type"], "end", "{text}");
    assert!(
        end["reason"].as_str().unwrap().contains("interrupted"),
        "{end}"
    );
    let (ok, out) = env.cli(&["recordings", "verify", &id]);
    assert!(ok, "{out}");
}

#[test]
fn retention_deletes_expired_recordings_and_keeps_held_ones() {
    // Local sink: retention works the same on every sink.
    let (pg, app_password) = common::upstream();
    let issuer = warden_test_support::oidc::TestIssuer::start().unwrap();
    let warden = Warden::start(
        common::binary(),
        WardenConfig {
            body: common::target_config(&pg, &issuer, common::DEFAULT_POLICIES, "")
                + "\n[recording]\nretention = \"1s\"\nretention_interval = \"1s\"\nchunk_interval = \"1s\"\n",
            env: vec![("ORDERS_PASSWORD".into(), app_password)],
            ..WardenConfig::default()
        },
    )
    .unwrap();
    let token = issuer.mint(
        warden_test_support::oidc::Algorithm::RS256,
        issuer.default_claims("retained-agent", &["agents"]),
    );
    // The held session is put on hold while it is still running.
    let conninfo = warden.conninfo("orders");
    let held_token = token.clone();
    let held_client = std::thread::spawn(move || {
        psql(
            &conninfo,
            &held_token,
            &["-c", "select 'held' as which", "-c", "select pg_sleep(2)"],
        )
    });
    let held = loop {
        if let Ok(id) = warden.last_session_id() {
            break id;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    warden.cli(&["sessions", "hold", &held]).unwrap();
    let (ok, _, err) = held_client.join().unwrap();
    assert!(ok, "{err}");
    let (ok, _, err) = psql(
        &warden.conninfo("orders"),
        &token,
        &["-c", "select 'expiring' as which"],
    );
    assert!(ok, "{err}");
    let expiring = warden.last_session_id().unwrap();
    assert_ne!(held, expiring);

    let started = Instant::now();
    while warden.cli(&["sessions", "show", &expiring]).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "retention did not delete {expiring}:\n{}",
            warden.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        warden.cli(&["replay", &expiring]).is_err(),
        "its recording is gone too"
    );
    // Several more retention runs later, the held session is intact.
    std::thread::sleep(Duration::from_secs(3));
    let replay = warden.cli(&["replay", &held]).unwrap();
    assert!(replay.contains("select 'held' as which"), "{replay}");
    let audit = warden.cli(&["sessions", "show", &held, "--json"]).unwrap();
    assert!(audit.contains("hold.placed"), "{audit}");
}
