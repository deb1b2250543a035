//! Operational behaviour: secrets stay out of logs, graceful shutdown, upstream
//! TLS and every upstream authentication method, config errors, compose file.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;
use warden_test_support::oidc::TestIssuer;
use warden_test_support::postgres::{PgOptions, Postgres};
use warden_test_support::warden::{Warden, WardenConfig, psql};

#[test]
fn secrets_never_reach_the_log_or_the_recording_at_debug_level() {
    let env = common::start_with(common::DEFAULT_POLICIES, "", "debug", "");
    let key = env.warden.create_key("leaky", &["agents"]).unwrap();
    let token = env.token("agent-x", &["agents"]);
    for credential in [&key, &token] {
        let (ok, _, err) = psql(
            &env.conninfo(),
            credential,
            &["-c", "SELECT 1", "-c", "SELECT current_user"],
        );
        assert!(ok, "{err}");
    }
    // A failed login with a real-looking token must not log it either.
    let (ok, _, _) = psql(
        &env.conninfo(),
        &env.issuer.expired_token(),
        &["-c", "SELECT 1"],
    );
    assert!(!ok);
    let id = env.last_session_id();
    env.events(&id); // wait until the recording is complete

    let logs = env.warden.logs();
    assert!(logs.contains("DEBUG"), "the test must run at debug level");
    let key_secret = key.rsplit('_').next().unwrap();
    let token_signature = token.rsplit('.').next().unwrap();
    for (name, secret) in [
        ("upstream password", env.app_password.as_str()),
        ("access key", key.as_str()),
        ("access key secret part", key_secret),
        ("token", token.as_str()),
        ("token signature", token_signature),
    ] {
        assert!(!logs.contains(secret), "the {name} is in the log");
        for entry in walk(&env.warden.dir().join("data")) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(secret),
                "the {name} is in {}",
                entry.display()
            );
        }
    }
}

/// Runs `warden check --config PATH`.
fn warden_check(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(common::binary())
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_closes_sessions_with_a_clear_error() {
    let mut env = common::start_with(
        common::DEFAULT_POLICIES,
        "",
        "info",
        "shutdown_grace = \"2s\"",
    );
    let key = env.warden.create_key("drain", &["agents"]).unwrap();
    let (client, connection) = env
        .pg_config(&key)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    env.warden.signal("TERM").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // During the grace period the open session still works …
    let value: i32 = client.query_one("SELECT 5", &[]).await.unwrap().get(0);
    assert_eq!(value, 5);
    // … and new connections are refused.
    assert!(
        env.pg_config(&key)
            .connect(tokio_postgres::NoTls)
            .await
            .is_err()
    );
    // After the grace period the session is closed with 57P01.
    let outcome = tokio::time::timeout(Duration::from_secs(20), connection)
        .await
        .expect("session closed after the grace period")
        .unwrap();
    let error = outcome.expect_err("the connection ends with an error");
    assert_eq!(
        error.code().map(|c| c.code()),
        Some("57P01"),
        "unexpected close: {error}"
    );
    let exited = tokio::task::spawn_blocking(move || env.warden.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap()
        .unwrap();
    assert!(exited, "warden exits 0 after a graceful shutdown");
}

/// verify-full against a server whose CA we give; MD5 and cleartext upstream users.
#[test]
fn upstream_tls_and_every_upstream_auth_method() {
    warden_test_support::init();
    let pg = Postgres::start_with(PgOptions { ssl: true }).unwrap();
    for (user, md5) in [("ssluser", false), ("md5user", true), ("clearuser", false)] {
        pg.create_user(user, &format!("{user}-pw"), md5).unwrap();
    }
    pg.psql("create database shop").unwrap();
    let issuer = TestIssuer::start().unwrap();
    let target = |name: &str, user: &str, tls: &str| {
        format!(
            "[[target]]\nname = \"{name}\"\nprotocol = \"postgres\"\naddress = \"{}\"\ndatabase = \"shop\"\n{tls}\ncredentials = {{ mode = \"static\", user = \"{user}\", password = \"env:PW_{}\" }}\n",
            pg.address(),
            user.to_uppercase()
        )
    };
    let ca = pg.cert_path();
    let body = format!(
        "[[identity.oidc]]\nissuer = \"{}\"\naudience = \"warden\"\n{}{}{}{}{}\n[[policy]]\nname = \"all\"\nsubjects = [\"group:agents\"]\ntargets = [\"*\"]\nallow = [\"read\"]\n",
        issuer.issuer_url(),
        target(
            "verified",
            "ssluser",
            &format!(
                "upstream_tls = \"verify-full\"\nupstream_ca = \"{}\"\nupstream_server_name = \"localhost\"",
                ca.display()
            )
        ),
        target("unverified", "ssluser", "upstream_tls = \"verify-full\""),
        target("required", "ssluser", "upstream_tls = \"require\""),
        target("md5", "md5user", ""),
        target("clear", "clearuser", ""),
    );
    let warden = Warden::start(
        common::binary(),
        WardenConfig {
            body,
            env: ["ssluser", "md5user", "clearuser"]
                .iter()
                .map(|u| (format!("PW_{}", u.to_uppercase()), format!("{u}-pw")))
                .collect(),
            ..Default::default()
        },
    )
    .unwrap();
    let key = warden.create_key("tls", &["agents"]).unwrap();
    let query = "SELECT current_user || ':' || coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), '?')";
    for (target, expected) in [
        ("verified", "ssluser:true"),
        ("required", "ssluser:true"),
        ("md5", "md5user:false"),
        ("clear", "clearuser:false"),
    ] {
        let (ok, out, err) = psql(&warden.conninfo(target), &key, &["-At", "-c", query]);
        assert!(ok, "{target}: {err}\n{}", warden.logs());
        assert_eq!(out.trim(), expected, "{target}");
    }
    // verify-full without the CA: the self-signed certificate is refused.
    let (ok, _, err) = psql(&warden.conninfo("unverified"), &key, &["-c", "SELECT 1"]);
    assert!(!ok);
    assert!(err.contains("TLS to the database failed"), "{err}");

    // `warden check --probe-upstreams` logs in over the target's own TLS
    // settings and warns about a static login that owns tables.
    pg.psql_db(
        "shop",
        "create table owned (a int); alter table owned owner to ssluser",
    )
    .unwrap();
    let check = |extra: &[&str]| {
        let output = std::process::Command::new(common::binary())
            .args(["check", "--config"])
            .arg(warden.config_path())
            .args(extra)
            .envs(
                ["ssluser", "md5user", "clearuser"]
                    .iter()
                    .map(|u| (format!("PW_{}", u.to_uppercase()), format!("{u}-pw"))),
            )
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let probed = check(&["--probe-upstreams"]);
    assert!(
        probed.contains("target \"verified\": static login \"ssluser\" owns 1 table(s)")
            && probed.contains("target \"required\": static login \"ssluser\" owns 1 table(s)"),
        "{probed}"
    );
    assert!(
        probed.contains("target \"unverified\": its static login was not checked"),
        "{probed}"
    );
    let offline = check(&[]);
    assert!(
        offline.contains("target \"verified\": its static login was not checked (only plaintext loopback upstreams are, unless --probe-upstreams is given)"),
        "{offline}"
    );
}

#[test]
fn warden_check_names_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\ndata_dir = \"x\"\n\n[[listener]]\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:15432\"\nallow_plaintxt = true\n",
    )
    .unwrap();
    let output = warden_check(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:7:") && stderr.contains("allow_plaintxt"),
        "{stderr}"
    );
    assert!(stderr.contains("docs/config.md"), "{stderr}");

    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/warden.toml");
    let output = warden_check(&example);
    assert!(
        output.status.success(),
        "examples/warden.toml must be valid: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A protocol that parses but has no handler in this binary is refused by
/// `warden check` and by `warden serve` (before it opens anything), naming
/// the file, line and the protocols that are available.
#[test]
fn protocol_without_a_handler_names_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssh.toml");
    std::fs::write(
        &path,
        "[server]\ndata_dir = \"data\"\n\n[[listener]]\nprotocol = \"ssh\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let expected = format!(
        "{}:6:11: listener on 127.0.0.1:0: protocol \"ssh\" is not available in this build; \
         use \"postgres\" or \"mysql\"",
        path.display()
    );
    let output = warden_check(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&expected), "{stderr}");

    let mut serve = std::process::Command::new(common::binary())
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = serve.kill();
            panic!("warden serve kept running with an ssh listener");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "serve created data_dir before refusing the config"
    );
}

#[test]
fn docker_compose_file_parses_and_describes_the_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    let services = compose["services"].as_mapping().expect("services");
    for name in ["warden", "postgres"] {
        assert!(
            services.contains_key(serde_yaml::Value::from(name)),
            "service {name} missing"
        );
    }
    let warden = &compose["services"]["warden"];
    assert!(warden["depends_on"].is_sequence() || warden["depends_on"].is_mapping());
    let ports = format!("{:?}", warden["ports"]);
    assert!(ports.contains("15432"), "{ports}");
    // The config it mounts is the one the demo uses, and it is valid.
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compose/warden.toml");
    let output = warden_check(&config);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The complete example at the top of docs/config.md is valid.
#[test]
fn config_reference_example_passes_warden_check() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
    let text = std::fs::read_to_string(docs).unwrap();
    let start = text.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let end = start + text[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, &text[start..end]).unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    warden_test_support::tls::self_signed(&certs, "warden").unwrap();
    let output = warden_check(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_with_53300_and_frees_slots() {
    let env = common::start_with(common::DEFAULT_POLICIES, "", "info", "max_connections = 2");
    let key = env.warden.create_key("limit", &["agents"]).unwrap();
    let first = env.connect(&key).await;
    let second = env.connect(&key).await;
    let error = env
        .pg_config(&key)
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("a third connection is refused");
    assert_eq!(error.code().map(|c| c.code()), Some("53300"), "{error}");
    drop(first);
    // The slot frees once the first session has ended.
    let mut third = None;
    for _ in 0..50 {
        if let Ok((client, connection)) = env.pg_config(&key).connect(tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            third = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let third = third.expect("a slot frees after a session ends");
    assert_eq!(
        third
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    assert_eq!(
        second
            .query_one("SELECT 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

/// `warden check` says when a static upstream login is a superuser or owns
/// the tables: policy would then be the only wall.
#[test]
fn warden_check_warns_about_a_superuser_or_owning_static_login() {
    let env = common::start();
    let check = |path: &std::path::Path, password: &str| {
        std::process::Command::new(common::binary())
            .args(["check", "--config"])
            .arg(path)
            .env("ORDERS_PASSWORD", password)
            .output()
            .unwrap()
    };
    // `app` owns `items`.
    let output = check(&env.warden.config_path(), &env.app_password);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("static login \"app\" owns 1 table(s)"),
        "{stderr}"
    );
    // The cluster's superuser.
    let text = std::fs::read_to_string(env.warden.config_path()).unwrap();
    let superuser = env.warden.dir().join("superuser.toml");
    std::fs::write(
        &superuser,
        text.replace(
            &format!("user = \"{}\"", common::APP_USER),
            "user = \"postgres\"",
        ),
    )
    .unwrap();
    let output = check(&superuser, env.pg.password());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("\"postgres\" is a superuser"), "{stderr}");
    // A login that owns nothing gets no warning.
    env.pg
        .psql("create role plain login password 'plain-pw'; grant select on all tables in schema public to plain")
        .unwrap();
    let plain = env.warden.dir().join("plain.toml");
    std::fs::write(
        &plain,
        text.replace(
            &format!("user = \"{}\"", common::APP_USER),
            "user = \"plain\"",
        ),
    )
    .unwrap();
    let output = check(&plain, "plain-pw");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}
