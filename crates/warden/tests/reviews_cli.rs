//! `warden access request` and `warden reviews list|show|approve|deny`
//! against a running `warden serve` (real binary, real SQLite store, access
//! keys from `warden keys create`), the URL found from `--config`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use warden_test_support::warden::{Warden, WardenConfig};

const POLICIES: &str = r#"
[[policy]]
name = "oncall break glass"
subjects = ["group:oncall"]
targets = ["orders"]
review = ["connect"]
approvers = ["group:dba"]
"#;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// Runs `warden ARGS --config C` as the holder of `key`; (success, stdout, stderr).
fn as_user(warden: &Warden, key: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(binary());
    command
        .args(args)
        .arg("--config")
        .arg(warden.config_path())
        .env_remove("WARDEN_URL")
        .env_remove("WARDEN_KEY");
    if let Some(key) = key {
        command.env("WARDEN_KEY", key);
    }
    let out = command.output().expect("run warden");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn access_request_is_listed_refused_to_its_requester_and_approved_by_a_dba() {
    warden_test_support::init();
    let warden = Warden::start(
        binary(),
        WardenConfig {
            body: POLICIES.into(),
            ..WardenConfig::default()
        },
    )
    .expect("start warden");
    let olga = warden.create_key("olga", &["oncall"]).unwrap();
    let bob = warden.create_key("bob", &["dba"]).unwrap();

    let (ok, _, err) = as_user(&warden, None, &["reviews", "list"]);
    assert!(!ok);
    assert!(err.contains("WARDEN_KEY"), "{err}");

    let (ok, out, err) = as_user(
        &warden,
        Some(&olga),
        &[
            "access", "request", "--target", "orders", "--for", "1h", "--reason", "INC-42",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let ticket: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = ticket["id"].as_str().unwrap().to_string();
    assert_eq!(ticket["state"], "pending");

    let (ok, out, err) = as_user(&warden, Some(&bob), &["reviews", "list", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["reason"], "INC-42");
    let (ok, out, _) = as_user(&warden, Some(&bob), &["reviews", "list"]);
    assert!(ok);
    assert!(
        out.contains(&id) && out.contains("access for 1h: INC-42"),
        "{out}"
    );

    let (ok, _, err) = as_user(&warden, Some(&olga), &["reviews", "approve", &id]);
    assert!(!ok, "the requester approved her own request");
    assert!(
        err.contains("requested by you") && err.contains("403"),
        "{err}"
    );

    let (ok, _, err) = as_user(
        &warden,
        Some(&bob),
        &["reviews", "approve", &id, "--comment", "go ahead"],
    );
    assert!(ok, "{err}");
    assert!(err.contains("is now approved"), "{err}");

    let (ok, out, err) = as_user(&warden, Some(&bob), &["reviews", "show", &id, "--json"]);
    assert!(ok, "{err}");
    let review: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["state"], "approved");
    assert_eq!(review["decision_comment"], "go ahead");
    assert_eq!(review["votes"][0]["reviewer"], "key:bob");

    let (ok, _, err) = as_user(&warden, Some(&bob), &["reviews", "deny", &id]);
    assert!(!ok);
    assert!(
        err.contains("already approved") && err.contains("409"),
        "{err}"
    );

    let (ok, _, err) = as_user(
        &warden,
        Some(
            "wdn_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000",
        ),
        &["reviews", "list"],
    );
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
}
