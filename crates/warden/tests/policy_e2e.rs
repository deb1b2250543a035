//! Statement policy enforced in the live relay: denied statements get 42501
//! with the rule, the session goes on, and every decision is recorded.

#![allow(clippy::unwrap_used)]

mod common;

use warden_test_support::warden::psql;

#[test]
fn reader_gets_rows_then_42501_for_delete_then_rows_again() {
    let env = common::start();
    let key = env.warden.create_key("reader", &["readers"]).unwrap();
    let script = env.warden.dir().join("reader.sql");
    std::fs::write(
        &script,
        "SELECT name FROM items WHERE qty = 3;\n\
         DELETE FROM items;\n\
         SELECT count(*) FROM items;\n\
         WITH gone AS (DELETE FROM items RETURNING *) SELECT count(*) FROM gone;\n\
         SHOW default_transaction_read_only;\n",
    )
    .unwrap();
    let (ok, out, err) = psql(
        &env.conninfo(),
        &key,
        &["-At", "-f", script.to_str().unwrap()],
    );
    assert!(ok, "psql without ON_ERROR_STOP exits 0: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["apple", "3", "on"], "{out}\n{err}");
    assert_eq!(err.matches("ERROR:").count(), 2, "{err}");
    assert!(
        err.contains("readers read orders") || err.contains("no rule"),
        "{err}"
    );
    assert!(
        err.contains("write"),
        "the error names the operation: {err}"
    );

    // Nothing was deleted upstream.
    let count = env
        .pg
        .psql_db("orders", "select count(*) from items")
        .unwrap();
    assert_eq!(count.trim(), "3");

    let id = env.last_session_id();
    let events = env.events(&id);
    let decisions: Vec<_> = events.iter().filter(|e| e["type"] == "decision").collect();
    assert_eq!(decisions.len(), 5, "{decisions:?}");
    let denied: Vec<_> = decisions
        .iter()
        .filter(|e| e["action"] == "deny")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(denied.len(), 2);
    assert!(denied[0].starts_with("DELETE FROM items"));
    assert!(denied[1].starts_with("WITH gone AS (DELETE"));
    for decision in &decisions {
        assert!(decision["operation"].is_string(), "{decision}");
    }
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "statement" && e["error_code"] == "42501")
        .collect();
    assert_eq!(errors.len(), 2, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_denial_is_answered_in_order_and_session_goes_on() {
    let env = common::start();
    let key = env
        .warden
        .create_key("reader-driver", &["readers"])
        .unwrap();
    let client = env.connect(&key).await;
    // Parse of a denied statement fails with 42501 …
    let error = client
        .execute("UPDATE items SET qty = $1", &[&0i32])
        .await
        .unwrap_err();
    let db_error = error.as_db_error().expect("a database error");
    assert_eq!(db_error.code().code(), "42501", "{db_error}");
    // … pipelined with allowed statements, every answer stays in order.
    let (a, b, c) = tokio::join!(
        client.query_one("SELECT $1::int + 1", &[&1i32]),
        client.execute("DELETE FROM items WHERE qty > $1", &[&0i32]),
        client.query_one("SELECT count(*) FROM items", &[]),
    );
    assert_eq!(a.unwrap().get::<_, i32>(0), 2);
    assert_eq!(b.unwrap_err().code().unwrap().code(), "42501");
    assert_eq!(c.unwrap().get::<_, i64>(0), 3);
    // Privilege escape hatches are refused too.
    for sql in [
        "SET default_transaction_read_only = off",
        "SET ROLE postgres",
        "COPY items TO PROGRAM 'cat'",
    ] {
        let error = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(
            error.code().map(|c| c.code()),
            Some("42501"),
            "{sql}: {error}"
        );
    }
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        3
    );
}

#[test]
fn agents_may_write_but_not_run_ddl_outside_their_rule() {
    let policies = r#"
[[policy]]
name = "agents write orders"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read", "write"]
deny = ["ddl", "admin"]
"#;
    let env = common::start_with(policies, "", "info", "");
    let token = env.token("writer", &["agents"]);
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-At",
            "-c",
            "DELETE FROM items WHERE name = 'apple'",
            "-c",
            "SELECT count(*) FROM items",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("2"), "{out}");
    let (ok, _, err) = psql(&env.conninfo(), &token, &["-c", "DROP TABLE items"]);
    assert!(!ok);
    assert!(
        err.contains("42501") || err.contains("agents write orders"),
        "{err}"
    );
    assert!(
        err.contains("agents write orders"),
        "the rule is named: {err}"
    );
    // Operators see the denial at INFO: rule, class and statement.
    let logs = env.warden.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("statement denied") && l.contains("DROP TABLE items"))
        .unwrap_or_else(|| panic!("no denial line:\n{logs}"));
    assert!(
        line.contains("INFO") && line.contains("agents write orders") && line.contains("ddl"),
        "{line}"
    );
}

#[test]
fn policy_explain_shows_classification_rule_and_action() {
    let env = common::start();
    let out = env
        .warden
        .cli(&[
            "policy",
            "explain",
            "--identity-claims",
            r#"{"sub":"bot","groups":["readers"]}"#,
            "--target",
            "orders",
            "--sql",
            "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d",
            "--json",
        ])
        .unwrap();
    let explanation: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = explanation.to_string();
    assert!(text.contains("write"), "{text}");
    assert!(text.contains("items"), "{text}");
    assert!(text.contains("deny"), "{text}");
}

#[test]
fn policy_file_changes_apply_to_new_statements_and_bad_files_are_refused() {
    let env = common::start();
    let key = env.warden.create_key("reloaded", &["readers"]).unwrap();
    let delete = ["-c", "DELETE FROM items WHERE name = 'plum'"];
    let (ok, _, err) = psql(&env.conninfo(), &key, &delete);
    assert!(!ok && err.contains("no rule allows write"), "{err}");

    let path = env.warden.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    // An invalid edit is refused with file:line and the old rules stay.
    std::fs::write(
        &path,
        original.replace("allow = [\"read\"]\n", "allow = [\"reed\"]\n"),
    )
    .unwrap();
    let mut logged = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if env.warden.logs().contains("unknown operation \"reed\"") {
            logged = true;
            break;
        }
    }
    assert!(logged, "the reload error is logged:\n{}", env.warden.logs());
    assert!(env.warden.logs().contains("warden.toml:"), "with file:line");
    let (ok, out, err) = psql(
        &env.conninfo(),
        &key,
        &["-At", "-c", "SELECT count(*) FROM items"],
    );
    assert!(ok && out.trim() == "3", "old rules still serve: {err}");

    // A valid edit applies to new statements without a restart.
    std::fs::write(
        &path,
        original.replace("allow = [\"read\"]\n", "allow = [\"read\", \"write\"]\n"),
    )
    .unwrap();
    let mut allowed = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (ok, _, _) = psql(&env.conninfo(), &key, &delete);
        if ok {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the new rule applies:\n{}", env.warden.logs());
}
