//! Statement reviews end to end: `psql` runs a DELETE that policy sends to
//! review; while psql waits, a DBA approves (or denies) it with
//! `warden reviews`; an undecided review times out with 57014. A `mariadb`
//! client's held UPDATE is approved the same way. Access requests open a
//! reviewed connect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};
use warden_test_support::warden::{Warden, psql};

const POLICIES: &str = r#"
[[policy]]
name = "agents read, writes reviewed"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]
review_timeout = "4s"

[[policy]]
name = "oncall connects after review"
subjects = ["group:oncall"]
targets = ["orders"]
allow = ["read"]
review = ["connect"]
approvers = ["group:dba"]
"#;

/// `warden ARGS --config C` as the holder of `key`.
fn as_user(warden: &Warden, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::binary())
        .args(args)
        .arg("--config")
        .arg(warden.config_path())
        .env("WARDEN_KEY", key)
        .env_remove("WARDEN_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for one pending review and returns it.
fn pending_review(warden: &Warden, dba: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (ok, out, err) = as_user(
            warden,
            dba,
            &["reviews", "list", "--state", "pending", "--json"],
        );
        assert!(ok, "{err}");
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        if let Some(first) = list.as_array().and_then(|l| l.first()) {
            return first.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no review appeared:\n{}",
            warden.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_held_delete_is_approved_denied_or_times_out() {
    let env = common::start_with(POLICIES, "", "info", "");
    let dba = env.warden.create_key("dana", &["dba"]).unwrap();
    let token = env.token("agent-7", &["agents"]);

    // Approve: psql waits, then prints the DELETE's own tag.
    let conninfo = env.conninfo();
    let agent = token.clone();
    let client = std::thread::spawn(move || {
        psql(
            &conninfo,
            &agent,
            &["-c", "delete from items where name = 'pear'"],
        )
    });
    let review = pending_review(&env.warden, &dba);
    assert_eq!(
        review["statement"], "delete from items where name = 'pear'",
        "{review}"
    );
    assert_eq!(review["operation"], "write");
    // The requester cannot approve their own statement (nor is an agent an approver).
    let agent_key = env.warden.create_key("agent-7-key", &["agents"]).unwrap();
    let id = review["id"].as_str().unwrap().to_string();
    let (ok, _, err) = as_user(&env.warden, &agent_key, &["reviews", "approve", &id]);
    assert!(!ok, "an agent approved: {err}");
    let (ok, _, err) = as_user(
        &env.warden,
        &dba,
        &["reviews", "approve", &id, "--comment", "ok for INC-7"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = client.join().unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("DELETE 1"), "{out}");
    assert!(
        err.contains("held for review"),
        "psql showed the notice: {err}"
    );
    let remaining = env
        .pg
        .psql_db("orders", "select count(*) from items")
        .unwrap();
    assert!(remaining.trim().starts_with('2'), "{remaining}");

    // Deny: 42501 with the reviewer's comment; the row stays.
    let conninfo = env.conninfo();
    let agent = token.clone();
    let client = std::thread::spawn(move || {
        psql(
            &conninfo,
            &agent,
            &["-c", "delete from items where name = 'plum'"],
        )
    });
    let id = pending_review(&env.warden, &dba)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = as_user(
        &env.warden,
        &dba,
        &["reviews", "deny", &id, "--comment", "not during the freeze"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = client.join().unwrap();
    assert!(!ok && err.contains("not during the freeze"), "{err}");
    let plums = env
        .pg
        .psql_db("orders", "select count(*) from items where name = 'plum'")
        .unwrap();
    assert!(plums.trim().starts_with('1'), "{plums}");

    // Nobody decides: 57014 after review_timeout.
    let (ok, _, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "delete from items where name = 'plum'",
        ],
    );
    assert!(
        !ok && err.contains("57014") && err.contains("not decided"),
        "{err}"
    );

    // The recording tells the story.
    let session = env.last_session_id();
    let events = env.events(&session);
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "review")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["requested", "timed_out"], "{events:?}");
}

#[test]
fn a_reviewed_connect_opens_after_its_access_request_is_approved() {
    let env = common::start_with(POLICIES, "", "info", "");
    let dba = env.warden.create_key("dana", &["dba"]).unwrap();
    let olga = env.warden.create_key("olga", &["oncall"]).unwrap();
    let (ok, _, err) = psql(&env.conninfo(), &olga, &["-c", "select 1"]);
    assert!(
        !ok && err.contains("needs an approved access request"),
        "{err}"
    );
    let (ok, out, err) = as_user(
        &env.warden,
        &olga,
        &[
            "access", "request", "--target", "orders", "--for", "1h", "--reason", "INC-9", "--json",
        ],
    );
    assert!(ok, "{err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = as_user(&env.warden, &dba, &["reviews", "approve", &id]);
    assert!(ok, "{err}");
    let (ok, out, err) = psql(
        &env.conninfo(),
        &olga,
        &["-At", "-c", "select count(*) from items"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3");
}

#[test]
fn a_reloaded_policy_changes_who_approves_new_reviews() {
    let env = common::start_with(POLICIES, "", "info", "");
    let sre = env.warden.create_key("sam", &["sre"]).unwrap();
    let path = env.warden.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("approvers = [\"group:dba\"]", "approvers = [\"group:sre\"]"),
    )
    .unwrap();
    // The policy file is polled every second; give the reload a moment.
    std::thread::sleep(Duration::from_secs(3));
    let conninfo = env.conninfo();
    let token = env.token("agent-8", &["agents"]);
    let client = std::thread::spawn(move || {
        psql(
            &conninfo,
            &token,
            &["-c", "delete from items where name = 'apple'"],
        )
    });
    let id = pending_review(&env.warden, &sre)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = as_user(&env.warden, &sre, &["reviews", "approve", &id]);
    assert!(ok, "the reloaded approver could not approve: {err}");
    let (ok, out, err) = client.join().unwrap();
    assert!(ok && out.contains("DELETE 1"), "{out}{err}");
}
