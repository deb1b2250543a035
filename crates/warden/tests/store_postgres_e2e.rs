//! Two `warden serve` processes sharing one PostgreSQL store: a session on
//! node A is listed by node B's CLI, survives B's start-up sweep, and its end
//! is seen too.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use warden_test_support::oidc::{Algorithm, TestIssuer};
use warden_test_support::warden::{Warden, WardenConfig};

/// `warden sessions list --json` rows for `subject`, via `node`'s config.
fn sessions_of(node: &Warden, subject: &str) -> Vec<serde_json::Value> {
    let out = node.cli(&["sessions", "list", "--json"]).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .filter(|row| row["subject"] == subject)
        .collect()
}

/// Polls (up to 20 s) until `done` holds for the sessions of `subject`.
fn wait_for(
    node: &Warden,
    subject: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut rows = sessions_of(node, subject);
    for _ in 0..200 {
        if done(&rows) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        rows = sessions_of(node, subject);
    }
    rows
}

#[test]
fn two_nodes_share_sessions_through_one_postgres_store() {
    let (pg, app_password) = common::upstream();
    pg.create_database("warden_state", "postgres").unwrap();
    let issuer = TestIssuer::start().unwrap();
    let body = format!(
        "{}\n[store]\nurl = \"{}\"\n",
        common::target_config(&pg, &issuer, common::DEFAULT_POLICIES, ""),
        pg.url("warden_state")
    );
    let config = || WardenConfig {
        body: body.clone(),
        env: vec![("ORDERS_PASSWORD".into(), app_password.clone())],
        ..WardenConfig::default()
    };
    let node_a = Warden::start(common::binary(), config()).unwrap();

    // A psql session through node A, held open.
    let token = issuer.mint(
        Algorithm::RS256,
        issuer.default_claims("agent-on-a", &["agents"]),
    );
    let mut psql = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
        .arg(node_a.conninfo("orders"))
        .env("PGPASSWORD", &token)
        .env_remove("PGSERVICE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = psql.stdin.take().unwrap();
    let mut stdout = BufReader::new(psql.stdout.take().unwrap());
    writeln!(stdin, "SELECT sum(qty) FROM items;").unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "15", "psql through node A");

    // Node B starts while A's session is open: its start-up sweep must
    // leave the session of a live node alone.
    let node_b = Warden::start(common::binary(), config()).unwrap();
    let rows = wait_for(&node_b, "agent-on-a", |rows| !rows.is_empty());
    assert_eq!(rows.len(), 1, "node B lists node A's session: {rows:?}");
    let session = &rows[0];
    assert!(session["ended_at"].is_null(), "{session}");
    assert_eq!(session["target"], "orders");
    let node_of_a = session["node"].as_str().unwrap().to_string();
    assert!(!node_of_a.is_empty());
    assert!(
        !node_b.logs().contains("marked interrupted"),
        "{}",
        node_b.logs()
    );

    // Both nodes registered a heartbeat (the CLI does not).
    let nodes = pg
        .psql_db("warden_state", "select count(*) from nodes")
        .unwrap();
    assert_eq!(nodes.trim(), "2");

    // The session ends on A; B sees it ended, with A's summary.
    writeln!(stdin, "\\q").unwrap();
    drop(stdin);
    assert!(psql.wait().unwrap().success());
    let rows = wait_for(&node_b, "agent-on-a", |rows| {
        rows.first().is_some_and(|row| !row["ended_at"].is_null())
    });
    let ended = &rows[0];
    assert!(!ended["ended_at"].is_null(), "{ended}");
    assert!(ended["statements"].as_u64().unwrap() >= 1, "{ended}");
    assert_eq!(ended["node"].as_str(), Some(node_of_a.as_str()));
    let reason = ended["end_reason"].as_str().unwrap_or_default();
    assert!(!reason.contains("interrupted"), "{reason}");

    // `sessions show` through B finds it by prefix too.
    let id = ended["id"].as_str().unwrap();
    let shown = node_b.cli(&["sessions", "show", &id[..13]]).unwrap();
    assert!(shown.contains(id), "{shown}");
}
