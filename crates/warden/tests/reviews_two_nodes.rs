//! Two `warden serve` nodes on one PostgreSQL store. psql runs a DELETE
//! through node A that policy holds for review; a DBA approves it through
//! node B's REST API, and A releases it as soon as the decision commits.
//! Both nodes poll only every 30 s (`[reviews] poll_interval`), so a release
//! within seconds can only come from the store's push (LISTEN/NOTIFY). A
//! deny on B gives psql 42501 on A the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};
use warden_test_support::oidc::{Algorithm, TestIssuer};
use warden_test_support::warden::{Warden, WardenConfig, psql};

const POLICIES: &str = r#"
[[policy]]
name = "agents read, writes reviewed"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]
review_timeout = "2m"
"#;

/// Far longer than the release may take: only the push path is fast.
const POLL: &str = "30s";

/// The issue asks for 1 s; the bound is generous for a loaded CI machine
/// and still far below `POLL`.
const RELEASE_BOUND: Duration = Duration::from_secs(5);

/// Waits until `node` logs that the store pushes review changes.
fn wait_feed_live(node: &Warden) {
    let started = Instant::now();
    while !node
        .logs()
        .contains("review changes are pushed by the store")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the review change feed did not come up:\n{}",
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small client of one node's REST API, as one caller.
struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn new(node: &Warden, key: &str) -> Api {
        Api {
            base: format!("http://127.0.0.1:{}", node.admin_port),
            key: key.to_string(),
            http: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// The pending review of `statement`, once it appears (within 20 s).
    fn pending(&self, statement: &str) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let list: Vec<serde_json::Value> = self.rt.block_on(async {
                let response = self
                    .http
                    .get(format!("{}/api/v1/reviews?state=pending", self.base))
                    .bearer_auth(&self.key)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                response.json().await.unwrap()
            });
            if let Some(review) = list.into_iter().find(|r| r["statement"] == statement) {
                return review;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no pending review of {statement:?} appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `POST /api/v1/reviews/{id}/{verb}` (approve or deny) with a comment;
    /// returns the review after the vote and when the response arrived.
    fn decide(&self, id: &str, verb: &str, comment: &str) -> (serde_json::Value, Instant) {
        self.rt.block_on(async {
            let response = self
                .http
                .post(format!("{}/api/v1/reviews/{id}/{verb}", self.base))
                .bearer_auth(&self.key)
                .json(&serde_json::json!({ "comment": comment }))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap();
            let answered = Instant::now();
            assert!(status.is_success(), "{verb}: {status} {body}");
            (body, answered)
        })
    }
}

/// psql through `node` runs `sql` on a thread; the thread returns psql's
/// result and when psql finished.
fn held_psql(
    node: &Warden,
    token: &str,
    sql: &str,
) -> std::thread::JoinHandle<((bool, String, String), Instant)> {
    let conninfo = node.conninfo("orders");
    let token = token.to_string();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let result = psql(&conninfo, &token, &["-v", "VERBOSITY=verbose", "-c", &sql]);
        (result, Instant::now())
    })
}

/// `to - from` in milliseconds; negative when psql on A was done before
/// B's HTTP response arrived (A hears the commit while B still audits).
fn signed_ms(from: Instant, to: Instant) -> i128 {
    if to >= from {
        i128::try_from(to.duration_since(from).as_millis()).unwrap_or(i128::MAX)
    } else {
        -i128::try_from(from.duration_since(to).as_millis()).unwrap_or(i128::MAX)
    }
}

#[test]
fn an_approval_on_node_b_releases_the_statement_held_on_node_a() {
    let (pg, app_password) = common::upstream();
    pg.create_database("warden_state", "postgres").unwrap();
    let issuer = TestIssuer::start().unwrap();
    let body = format!(
        "{}\n[store]\nurl = \"{}\"\n\n[reviews]\npoll_interval = \"{POLL}\"\n",
        common::target_config(&pg, &issuer, POLICIES, ""),
        pg.url("warden_state")
    );
    let config = || WardenConfig {
        body: body.clone(),
        env: vec![("ORDERS_PASSWORD".into(), app_password.clone())],
        ..WardenConfig::default()
    };
    let node_a = Warden::start(common::binary(), config()).unwrap();
    let node_b = Warden::start(common::binary(), config()).unwrap();
    wait_feed_live(&node_a);
    wait_feed_live(&node_b);
    // Keys live in the shared store: made through B, good on both.
    let dba = node_b.create_key("dana", &["dba"]).unwrap();
    let api_b = Api::new(&node_b, &dba);
    let agent = issuer.mint(
        Algorithm::RS256,
        issuer.default_claims("agent-7", &["agents"]),
    );

    // Approve on B: A runs exactly the held DELETE.
    let sql = "delete from items where name = 'pear'";
    let client = held_psql(&node_a, &agent, sql);
    let review = api_b.pending(sql);
    let id = review["id"].as_str().unwrap().to_string();
    assert!(review["session_id"].is_string(), "{review}");
    // Let A's waiter settle into its 30 s nap first.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    let (decided, answered) = api_b.decide(&id, "approve", "ok for INC-7");
    assert_eq!(decided["state"], "approved", "{decided}");
    let ((ok, out, err), finished) = client.join().unwrap();
    assert!(ok, "psql on A failed: {err}\nA:\n{}", node_a.logs());
    assert!(out.contains("DELETE 1"), "{out}");
    assert!(err.contains("held for review"), "{err}");
    let release = finished.saturating_duration_since(answered);
    eprintln!(
        "CROSS-NODE RELEASE TIME (approve response on B -> psql on A done): {} ms \
         (from sending the approve: {} ms; [reviews] poll_interval = {POLL})",
        signed_ms(answered, finished),
        finished.saturating_duration_since(sent).as_millis()
    );
    assert!(
        finished.saturating_duration_since(sent) < RELEASE_BOUND,
        "released {release:?} after the approval response: not pushed"
    );
    let pears = pg
        .psql_db("orders", "select count(*) from items where name = 'pear'")
        .unwrap();
    assert_eq!(pears.trim(), "0", "the DELETE ran");

    // Deny on B: psql on A gets 42501 with the reviewer's comment.
    let sql = "delete from items where name = 'plum'";
    let client = held_psql(&node_a, &agent, sql);
    let id = api_b.pending(sql)["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    let (decided, answered) = api_b.decide(&id, "deny", "not during the freeze");
    assert_eq!(decided["state"], "denied", "{decided}");
    let ((ok, _, err), finished) = client.join().unwrap();
    assert!(!ok, "a denied DELETE ran");
    assert!(err.contains("42501"), "{err}");
    assert!(err.contains("not during the freeze"), "{err}");
    eprintln!(
        "CROSS-NODE DENY TIME (deny response on B -> psql on A done): {} ms \
         (from sending the deny: {} ms)",
        signed_ms(answered, finished),
        finished.saturating_duration_since(sent).as_millis()
    );
    assert!(finished.saturating_duration_since(sent) < RELEASE_BOUND);
    let plums = pg
        .psql_db("orders", "select count(*) from items where name = 'plum'")
        .unwrap();
    assert_eq!(plums.trim(), "1", "the denied DELETE did not run");
}
