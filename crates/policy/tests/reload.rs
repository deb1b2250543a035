//! Hot reload: a changed file is picked up, an invalid one is refused with
//! file:line and the old rules stay; SIGHUP forces a reload.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_core::Action;
use warden_core::config::Config;
use warden_core::engines::PolicyEngine;
use warden_core::request::{Dialect, Request};
use warden_policy::{ReloadablePolicy, identity_from_claims, spawn_reloader};

fn config_text(allow: &str) -> String {
    format!(
        r#"
[[target]]
name = "orders"
protocol = "postgres"
address = "127.0.0.1:5432"
credentials = {{ mode = "static", user = "app", password = "env:X" }}

[[policy]]
name = "agents"
subjects = ["group:agents"]
targets = ["orders"]
allow = [{allow}]
"#
    )
}

async fn wait_for(policy: &ReloadablePolicy, version: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if policy.version() >= version {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn reload_from_refuses_invalid_file_and_keeps_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config_text("\"read\"")).expect("write");
    let config = Config::load(&path).expect("load");
    let policy = ReloadablePolicy::from_config(&config).expect("compile");
    assert_eq!(policy.version(), 1);
    let agent = identity_from_claims(json!({"sub": "a", "groups": ["agents"]}));
    let check = |p: &ReloadablePolicy| {
        p.check_statement(
            &agent,
            "orders",
            &Request::sql(Dialect::Postgres, "DELETE FROM t"),
        )
        .action()
    };
    assert_eq!(check(&policy), Action::Deny);

    std::fs::write(&path, config_text("\"read\", \"wirte\"")).expect("write");
    let error = policy
        .reload_from(&path)
        .expect_err("invalid file refused")
        .to_string();
    assert!(error.contains("warden.toml:"), "{error}");
    assert!(error.contains("unknown operation \"wirte\""), "{error}");
    let line: usize = error
        .split(':')
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a line number");
    assert_eq!(line, 12, "{error}");
    assert_eq!(policy.version(), 1);

    std::fs::write(&path, config_text("\"read\", \"write\"")).expect("write");
    assert_eq!(policy.reload_from(&path).expect("reload"), 2);
    assert_eq!(check(&policy), Action::Allow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloader_follows_file_changes_and_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config_text("\"read\"")).expect("write");
    let policy = Arc::new(
        ReloadablePolicy::from_config(&Config::load(&path).expect("load")).expect("compile"),
    );
    let task = spawn_reloader(path.clone(), policy.clone());
    let agent = identity_from_claims(json!({"sub": "a", "groups": ["agents"]}));

    // A file change is picked up by polling.
    std::fs::write(&path, config_text("\"read\", \"write\"")).expect("write");
    assert!(wait_for(&policy, 2).await, "file change not picked up");
    assert!(
        policy
            .check_statement(
                &agent,
                "orders",
                &Request::sql(Dialect::Postgres, "DELETE FROM t")
            )
            .is_allowed()
    );

    // An invalid file is refused; the rules in force stay.
    std::fs::write(&path, config_text("\"bogus\"")).expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(policy.version(), 2);
    assert!(
        policy
            .check_statement(
                &agent,
                "orders",
                &Request::sql(Dialect::Postgres, "DELETE FROM t")
            )
            .is_allowed()
    );

    std::fs::write(&path, config_text("\"read\"")).expect("write");
    assert!(wait_for(&policy, 3).await, "fixed file not picked up");
    assert!(
        !policy
            .check_statement(
                &agent,
                "orders",
                &Request::sql(Dialect::Postgres, "DELETE FROM t")
            )
            .is_allowed()
    );

    // SIGHUP reloads although the file did not change (the poller alone
    // would not): the version moves on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(policy.version(), 3);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(wait_for(&policy, 4).await, "no reload after SIGHUP");
    task.abort();
}
