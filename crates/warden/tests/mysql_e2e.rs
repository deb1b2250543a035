//! MySQL/MariaDB through the real `warden` binary: the `mariadb` CLI with an
//! OIDC token (cleartext, loopback and TLS), access keys over
//! `mysql_native_password`, PyMySQL with parameters, statement policy with
//! error 1142 and recorded decisions, multi-statement batches, and masking of
//! text- and binary-protocol rows.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::mysql::*;
use common::{APP_USER, binary};

#[test]
fn mariadb_cli_with_token_over_cleartext_on_loopback_and_tls() {
    let env = start(true);
    let token = env.token("agent-1", &["agents"]);
    let sql = "SELECT CURRENT_USER(); SELECT name FROM items ORDER BY id;";

    // Loopback, no TLS (this client uses TLS whenever offered unless told
    // not to): the cleartext token is accepted.
    let out = env.mariadb(
        "agent",
        &token,
        &["--enable-cleartext-plugin", "--skip-ssl"],
        sql,
    );
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    assert_eq!(
        rows(&out.stdout),
        ["app@%", "apple", "pear", "plum"],
        "{}",
        out.stderr
    );
    let plain = env.last_session_id();

    // TLS, verifying Warden's certificate.
    let cert = env.cert.as_ref().unwrap().to_str().unwrap().to_string();
    let ssl_ca = format!("--ssl-ca={cert}");
    let out = env.mariadb(
        "agent",
        &token,
        &[
            "--enable-cleartext-plugin",
            "--ssl",
            &ssl_ca,
            "--ssl-verify-server-cert",
        ],
        "SELECT CURRENT_USER()",
    );
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    assert_eq!(rows(&out.stdout), ["app@%"], "{}", out.stdout);
    let tls_session = env.last_session_id();
    assert_ne!(plain, tls_session);

    // The client really checks Warden's certificate: another CA fails.
    let (other, _) = warden_test_support::tls::self_signed(env._certs.path(), "other").unwrap();
    let other_ca = format!("--ssl-ca={}", other.display());
    let out = env.mariadb(
        "agent",
        &token,
        &["--ssl", &other_ca, "--ssl-verify-server-cert"],
        "SELECT 1",
    );
    assert!(!out.ok, "{}", out.stdout);
    assert!(out.stderr.contains("ERROR 2026"), "{}", out.stderr);

    // The recordings say who came in, over what, as whom upstream.
    for (id, tls) in [(&plain, false), (&tls_session, true)] {
        let events = env.events(id);
        let start = events.iter().find(|e| e["type"] == "start").unwrap();
        assert_eq!(start["client_tls"], tls, "{start}");
        assert_eq!(start["upstream_user"], APP_USER, "{start}");
        assert_eq!(start["protocol"], "mysql", "{start}");
        assert!(start["identity"].to_string().contains("agent-1"), "{start}");
    }

    // A token that is not valid is refused with 1045.
    let out = env.mariadb(
        "agent",
        &env.issuer.expired_token(),
        &["--enable-cleartext-plugin"],
        "SELECT 1",
    );
    assert!(!out.ok);
    assert!(out.stderr.contains("ERROR 1045"), "{}", out.stderr);
}

#[test]
fn access_key_via_native_password_and_wrong_key_gets_1045() {
    let env = start(false);
    let key = env.warden.create_key("native", &["agents"]).unwrap();
    let id = key_id(&key);

    let out = env.mariadb(id, &key, &[], "SELECT CURRENT_USER(), COUNT(*) FROM items");
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    assert_eq!(out.stdout.trim(), "app@%\t3");

    // The key id without the `wdn_` prefix names the same key.
    let out = env.mariadb(&id[4..], &key, &[], "SELECT 40 + 2");
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "42");

    // Writes are allowed for agents and reach the upstream.
    let out = env.mariadb(
        id,
        &key,
        &[],
        "INSERT INTO items (name, qty) VALUES ('fig', 11)",
    );
    assert!(out.ok, "{}", out.stderr);
    let count = env
        .db
        .sql_db(
            Some("orders"),
            "SELECT COUNT(*) FROM items WHERE name = 'fig'",
        )
        .unwrap();
    assert_eq!(count.trim(), "1");

    // Same id, another secret.
    let mut wrong = key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    let out = env.mariadb(id, &wrong, &[], "SELECT 1");
    assert!(!out.ok);
    assert!(out.stderr.contains("ERROR 1045"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // A key id that does not exist.
    let out = env.mariadb("wdn_0123456789abcdef", &key, &[], "SELECT 1");
    assert!(!out.ok);
    assert!(out.stderr.contains("ERROR 1045"), "{}", out.stderr);
}

#[test]
fn pymysql_with_parameters() {
    let env = start(false);
    let key = env.warden.create_key("pymysql", &["agents"]).unwrap();
    let token = env.token("agent-py", &["agents"]);
    let script = r#"
import json, os, sys, pymysql
port = int(sys.argv[1])
out = {}
conn = pymysql.connect(host="127.0.0.1", port=port, user=os.environ["KEY_ID"],
                       password=os.environ["KEY"], database="orders", connect_timeout=10)
with conn.cursor() as cur:
    cur.execute("SELECT name, qty FROM items WHERE qty > %s AND name <> %s ORDER BY id", (4, "plum"))
    out["rows"] = [list(r) for r in cur.fetchall()]
    cur.execute("INSERT INTO items (name, qty) VALUES (%s, %s)", ("o'brien \"quoted\"", 9))
    conn.commit()
    cur.execute("SELECT qty FROM items WHERE name = %s", ("o'brien \"quoted\"",))
    out["quoted"] = cur.fetchall()[0][0]
    cur.executemany("INSERT INTO items (name, qty) VALUES (%s, %s)", [("a", 1), ("b", 2)])
    conn.commit()
    cur.execute("SELECT COUNT(*) FROM items")
    out["count"] = cur.fetchone()[0]
conn.close()
conn = pymysql.connect(host="127.0.0.1", port=port, user="agent-py",
                       password=os.environ["TOKEN"], database="orders", connect_timeout=10)
with conn.cursor() as cur:
    cur.execute("SELECT CURRENT_USER(), %s", ("token",))
    out["token_user"] = list(cur.fetchone())
conn.close()
print(json.dumps(out))
"#;
    let out = output(
        Command::new(warden_test_support::tools::python3())
            .args(["-c", script, &env.mysql_port.to_string()])
            .env("KEY_ID", key_id(&key))
            .env("KEY", &key)
            .env("TOKEN", &token),
    );
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    let value: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(value["rows"], serde_json::json!([["pear", 5]]), "{value}");
    assert_eq!(value["quoted"], 9);
    assert_eq!(value["count"], 6);
    assert_eq!(value["token_user"], serde_json::json!(["app@%", "token"]));
    let upstream = env
        .db
        .sql_db(
            Some("orders"),
            "SELECT qty FROM items WHERE name LIKE 'o''brien%'",
        )
        .unwrap();
    assert_eq!(upstream.trim(), "9");
}

#[test]
fn reader_gets_rows_then_1142_for_delete_then_rows_again() {
    let env = start(false);
    let key = env.warden.create_key("reader", &["readers"]).unwrap();
    // `-e` turns `--force` off, so the script comes on stdin.
    let out = env.mariadb_stdin(
        key_id(&key),
        &key,
        &["--batch", "--skip-column-names", "--force"],
        "SELECT name FROM items WHERE qty = 3;\nDELETE FROM items;\nSELECT COUNT(*) FROM items;\n",
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["apple", "3"], "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.matches("ERROR").count(), 1, "{}", out.stderr);
    let logs = env.warden.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("statement denied") && l.contains("DELETE FROM items"))
        .unwrap_or_else(|| panic!("no denial line:\n{logs}"));
    assert!(line.contains("INFO") && line.contains("write"), "{line}");
    assert!(out.stderr.contains("ERROR 1142"), "{}", out.stderr);
    assert!(
        out.stderr.contains("readers read orders") || out.stderr.contains("no matching rule"),
        "the error names the rule: {}",
        out.stderr
    );
    assert!(out.stderr.contains("write"), "{}", out.stderr);

    // Nothing was deleted upstream.
    let count = env
        .db
        .sql_db(Some("orders"), "SELECT COUNT(*) FROM items")
        .unwrap();
    assert_eq!(count.trim(), "3");

    let events = env.events(&env.last_session_id());
    let decisions: Vec<_> = events.iter().filter(|e| e["type"] == "decision").collect();
    assert_eq!(decisions.len(), 3, "{decisions:?}");
    let denied: Vec<_> = decisions.iter().filter(|e| e["action"] == "deny").collect();
    assert_eq!(denied.len(), 1, "{decisions:?}");
    assert!(
        denied[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("DELETE FROM items"),
        "{}",
        denied[0]
    );
    assert_eq!(denied[0]["operation"], "write", "{}", denied[0]);
    let allowed = decisions.iter().filter(|e| e["action"] == "allow").count();
    assert_eq!(allowed, 2, "{decisions:?}");
}

#[test]
fn multi_statement_batch_returns_every_result_set() {
    let env = start(false);
    let key = env.warden.create_key("batch", &["agents"]).unwrap();
    let out = env.mariadb(
        key_id(&key),
        &key,
        &["--comments"],
        "select '', 'marker'; show schemas;",
    );
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["\tmarker", "information_schema", "orders"],
        "{}",
        out.stdout
    );

    // Piped into the CLI (batch mode from stdin), with a comment in front.
    let out = env.mariadb_stdin(
        key_id(&key),
        &key,
        &["--comments", "--batch"],
        "/* first */ select '', 'marker'; show schemas;\nselect 7 as seven;\n",
    );
    assert!(out.ok, "{}", out.stderr);
    let stdout = out.stdout;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "\tmarker",
            "\tmarker",
            "Database",
            "information_schema",
            "orders",
            "seven",
            "7"
        ],
        "{stdout}"
    );
}

const MASKING_POLICIES: &str = r#"
[[policy]]
name = "agents read orders, masked"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
mask = ["email", "secret"]
mask_columns = ["customers.secret_code", "orders.customers.pin"]

[recording]
capture_results = true
"#;

const MASKED_RAW: [&str; 4] = [
    "carol@example.com",
    "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    "plain-value-42",
    "4321",
];

#[test]
fn rows_are_masked_in_text_and_binary_protocols() {
    let env = start_with(false, MASKING_POLICIES);
    env.db
        .sql_db(
            Some("orders"),
            "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(100), secret_code VARCHAR(50), \
             pin INT, notes TEXT); \
             INSERT INTO customers VALUES (1, 'carol@example.com', 'plain-value-42', 4321, \
             'token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R here');",
        )
        .unwrap();
    let direct = env
        .db
        .sql_db(Some("orders"), "SELECT * FROM customers")
        .unwrap();
    for raw in MASKED_RAW {
        assert!(direct.contains(raw), "direct output lacks {raw}: {direct}");
    }
    let token = env.token("agent-mask", &["agents"]);
    let out = env.mariadb(
        "agent-mask",
        &token,
        &["--enable-cleartext-plugin"],
        "SELECT id, email, secret_code, pin, notes FROM customers; \
         SELECT secret_code AS x, LOWER(email) AS e FROM customers;",
    );
    assert!(out.ok, "{}", out.stderr);
    let lines = rows(&out.stdout);
    assert_eq!(
        lines,
        vec![
            "1\t[REDACTED]\t[REDACTED]\tNULL\ttoken [REDACTED] here",
            "[REDACTED]\t[REDACTED]",
        ],
        "{}",
        out.stdout
    );

    // A covered column through any expression, UNION, derived table, CTE,
    // subquery, aggregate or window is masked whole (red-team finding);
    // plain columns of the same table are not.
    let out = env.mariadb(
        "agent-mask",
        &token,
        &["--enable-cleartext-plugin"],
        "SELECT LOWER(secret_code) FROM customers; \
         SELECT CONCAT(secret_code, '') FROM customers; \
         SELECT HEX(secret_code) FROM customers; \
         SELECT secret_code FROM customers UNION SELECT 'x'; \
         SELECT * FROM (SELECT secret_code FROM customers) t; \
         WITH c AS (SELECT secret_code FROM customers) SELECT * FROM c; \
         SELECT (SELECT secret_code FROM customers LIMIT 1) AS x; \
         SELECT GROUP_CONCAT(secret_code) FROM customers; \
         SELECT MAX(secret_code) OVER () FROM customers; \
         SELECT id, pin + 0 AS p FROM customers;",
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(!out.stdout.contains("plain-value-42"), "{}", out.stdout);
    assert!(
        !out.stdout.contains(&hex_upper("plain-value-42")),
        "{}",
        out.stdout
    );
    assert!(rows(&out.stdout).contains(&"1\tNULL"), "{}", out.stdout);

    // Binary protocol (server-side prepared statement) through an access key.
    let key = env.warden.create_key("masked-driver", &["agents"]).unwrap();
    let port = env.mysql_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        use mysql_async::prelude::Queryable;
        let mut conn = key_conn(port, &key).await;
        type Customer = (i32, String, Option<String>, Option<i32>, String);
        let row: Option<Customer> = conn
            .exec_first(
                "SELECT id, email, secret_code, pin, notes FROM customers WHERE id = ?",
                (1,),
            )
            .await
            .unwrap();
        let (id, email, code, pin, notes) = row.unwrap();
        assert_eq!(id, 1);
        assert_eq!(email, "[REDACTED]");
        assert_eq!(code.as_deref(), Some("[REDACTED]"));
        assert_eq!(pin, None, "a covered INT in a binary row becomes NULL");
        assert_eq!(notes, "token [REDACTED] here");
        conn.disconnect().await.unwrap();
    });

    // The CLI session's recording captured its rows, masked.
    let sessions: serde_json::Value =
        serde_json::from_str(&env.warden.cli(&["sessions", "list", "--json"]).unwrap()).unwrap();
    let cli_session = sessions[2]["id"].as_str().unwrap().to_string();
    let cli_events = env.events(&cli_session);
    let results: Vec<&serde_json::Value> = cli_events
        .iter()
        .filter(|e| e["type"] == "result")
        .collect();
    assert_eq!(results.len(), 2, "{cli_events:?}");
    assert_eq!(results[0]["rows"][0][1], "[REDACTED]", "{:?}", results[0]);
    let cli_text = serde_json::to_string(&cli_events).unwrap();
    for raw in MASKED_RAW.iter().take(3) {
        assert!(!cli_text.contains(raw), "recording holds {raw}: {cli_text}");
    }

    let session = env.last_session_id();
    let events = env.events(&session);
    let text = serde_json::to_string(&events).unwrap();
    for raw in MASKED_RAW.iter().take(3) {
        assert!(!text.contains(raw), "recording holds {raw}: {text}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "masked" && e["column"] == "pin" && e["detector"] == "column"),
        "{text}"
    );

    // Errors and warnings that quote a covered value are withheld (no
    // detector would find "plain-value-42").
    for sql in [
        "SELECT CAST(secret_code AS DOUBLE) + 0 FROM customers WHERE secret_code + 0 = 1 AND 0 = (SELECT 1 FROM customers WHERE secret_code = 1)",
        "SELECT * FROM customers WHERE id = 1 AND secret_code = 0",
    ] {
        let script = format!("{sql};\nSHOW WARNINGS;\n");
        let out = env.mariadb_stdin(
            "agent-mask",
            &token,
            &["--enable-cleartext-plugin", "--force"],
            &script,
        );
        for raw in MASKED_RAW {
            assert!(
                !out.stdout.contains(raw) && !out.stderr.contains(raw),
                "{sql}: {} {}",
                out.stdout,
                out.stderr
            );
        }
        assert!(
            out.stderr
                .contains("warnings and diagnostics are not available"),
            "{}",
            out.stderr
        );
    }
    let out = env.mariadb(
        "agent-mask",
        &token,
        &["--enable-cleartext-plugin"],
        "SELECT CAST(secret_code AS INT) FROM customers WHERE 1 = (SELECT secret_code FROM customers FOR UPDATE)",
    );
    for raw in MASKED_RAW {
        assert!(!out.stderr.contains(raw), "{}", out.stderr);
    }
    // Error-based extraction through generic errors (1105 XPATH syntax
    // error and the like): only fixed-template messages pass.
    for sql in [
        "SELECT EXTRACTVALUE(1, CONCAT('~', (SELECT secret_code FROM customers LIMIT 1)))",
        "SELECT UPDATEXML(1, CONCAT('~', secret_code), 1) FROM customers",
    ] {
        let out = env.mariadb("agent-mask", &token, &["--enable-cleartext-plugin"], sql);
        assert!(!out.ok, "{sql}: {}", out.stdout);
        for raw in MASKED_RAW {
            assert!(!out.stderr.contains(raw), "{sql}: {}", out.stderr);
        }
    }
    // A typo keeps its message: it names only what the statement names.
    let out = env.mariadb(
        "agent-mask",
        &token,
        &["--enable-cleartext-plugin"],
        "SELECT no_such_column FROM customers",
    );
    assert!(out.stderr.contains("no_such_column"), "{}", out.stderr);
}

const REVIEW_POLICIES: &str = r#"
[[policy]]
name = "agents read, writes reviewed"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]
"#;

#[test]
fn a_held_update_is_released_by_an_approval_from_the_cli() {
    let env = start_with(false, REVIEW_POLICIES);
    let dba = env.warden.create_key("dana", &["dba"]).unwrap();
    let token = env.token("agent-mysql", &["agents"]);
    let port = env.mysql_port;
    let client = std::thread::spawn(move || {
        output(
            Command::new("mariadb")
                .arg("--no-defaults")
                .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
                .arg(port.to_string())
                .args([
                    "-u",
                    "agent-mysql",
                    "-D",
                    "orders",
                    "--enable-cleartext-plugin",
                ])
                .args(["-e", "UPDATE items SET qty = 42 WHERE name = 'apple'"])
                .env("MYSQL_PWD", token),
        )
    });
    let cli = |args: &[&str]| {
        let out = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(env.warden.config_path())
            .env("WARDEN_KEY", &dba)
            .env_remove("WARDEN_URL")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let started = Instant::now();
    let id = loop {
        let (ok, out) = cli(&["reviews", "list", "--state", "pending", "--json"]);
        assert!(ok, "{out}");
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        if let Some(id) = list[0]["id"].as_str() {
            assert_eq!(
                list[0]["statement"],
                "UPDATE items SET qty = 42 WHERE name = 'apple'"
            );
            break id.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no review:\n{}",
            env.warden.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (ok, out) = cli(&["reviews", "approve", &id]);
    assert!(ok, "{out}");
    let result = client.join().unwrap();
    assert!(result.ok, "{}", result.stderr);
    let qty = env
        .db
        .sql_db(Some("orders"), "SELECT qty FROM items WHERE name = 'apple'")
        .unwrap();
    assert!(qty.contains("42"), "{qty}");
}

/// Warden lexes as the MariaDB upstream does, and refuses the states where it
/// could not: every attempt below fails, the session goes on, and the table
/// is unchanged when read directly.
#[test]
fn lexing_desyncs_are_refused_and_smuggled_writes_never_land() {
    use mysql_async::prelude::Queryable;
    let env = start(false);
    let reader = env.warden.create_key("lex-reader", &["readers"]).unwrap();
    let port = env.mysql_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let mut conn = key_conn(port, &reader).await;
        for sql in [
            // Version comments the server skips hide nothing from Warden.
            "SELECT 1 /*!99999 , 'x */ ; DELETE FROM items; -- '",
            "SELECT 1 /*!50700 , 'x */ ; DELETE FROM items; -- '",
            "SELECT 1 /*M!999999 , 'x */ ; DELETE FROM items; -- '",
            "SELECT 1 /*!1234 , 2 */",
            // MariaDB ends a skipped comment holding a nested one at its
            // second `*/`; sqlparser takes `--` + U+00A0 for a comment, the
            // server for `- -` and a name (red-team findings).
            "select 1 /*!99999 /* */ , ' */ ; delete from items; -- '",
            "select 1 /*M!999999 /* */ , ' */ ; delete from items; -- '",
            // sql_mode and character sets Warden does not lex under, in every form.
            "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
            "SET @@local.sql_mode = 'ANSI_QUOTES'",
            "SET @@session.sql_mode = 'ANSI'",
            "SET SESSION sql_mode = 'ORACLE'",
            "SET sql_mode = 1048576",
            "SET sql_mode = DEFAULT",
            "SET autocommit = 1, sql_mode = 'POSTGRESQL'",
            "SET sql_mode = concat(@@sql_mode, ',MSSQL')",
            "SET sql_mode = @nothing_saved",
            "SET NAMES gbk",
            "SET CHARACTER SET sjis",
            "SET CHARSET big5",
            "SET @@local.character_set_client = 'cp932'",
            "SET character_set_client = @x, autocommit = 1",
            // PREPARE from an expression, adjacent literals, EXECUTE IMMEDIATE.
            "PREPARE s FROM REPLACE('SELECT 1', 'SELECT 1', 'DELETE FROM items')",
            "PREPARE s FROM 'SELECT 1' ' ; DELETE FROM items'",
            "PREPARE s FROM @q",
            "EXECUTE IMMEDIATE CONCAT('DELETE ', 'FROM items')",
            "EXECUTE IMMEDIATE 'DELETE FROM items'",
            "PREPARE s FROM 'DELETE FROM items'",
        ] {
            assert!(conn.query_drop(sql).await.is_err(), "{sql} was accepted");
        }
        // A saved value overwritten however the server spells it is no
        // longer a saved value: restoring from it is refused.
        for overwrite in [
            "SELECT 'NO_BACKSLASH_ESCAPES' INTO@s",
            "SELECT 'ANSI_QUOTES' INTO @`s`",
            "SET @s := 'ANSI'",
        ] {
            conn.query_drop("SET @s = @@sql_mode").await.unwrap();
            let _ = conn.query_drop(overwrite).await;
            assert!(
                conn.query_drop("SET sql_mode = @s").await.is_err(),
                "restore after {overwrite} was accepted"
            );
        }
        let mode: String = conn
            .query_first("SELECT @@sql_mode")
            .await
            .unwrap()
            .unwrap();
        assert!(
            !mode.contains("ANSI") && !mode.contains("BACKSLASH"),
            "{mode}"
        );
        let charset: String = conn
            .query_first("SELECT @@character_set_client")
            .await
            .unwrap()
            .unwrap();
        assert!(
            charset.starts_with("utf8") || charset == "latin1",
            "{charset}"
        );

        // What real clients send still works: Connector/J's connect, mysqldump's
        // save and restore, version comments the server runs, a literal PREPARE.
        for sql in [
            "SET autocommit=1, sql_mode = concat(@@sql_mode, ',STRICT_TRANS_TABLES')",
            "/*!40101 SET @saved_cs_client = @@character_set_client */",
            "/*!40101 SET character_set_client = utf8mb4 */",
            "/*!40101 SET character_set_client = @saved_cs_client */",
            "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */",
            "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */",
            "/*M!999999\\- enable the sandbox mode */",
            "SET NAMES utf8mb4",
            "PREPARE p FROM 'SELECT name FROM items'",
            "EXECUTE p",
        ] {
            conn.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        // Executable comments are judged as this server runs them.
        let two: i64 = conn
            .query_first("SELECT 1 /*!40101 + 1 */")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(two, 2);
        let one: i64 = conn
            .query_first("SELECT 1 /*!50700 + 1 */")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one, 1, "MariaDB skips MySQL 5.7+ versioned comments");
        conn.disconnect().await.unwrap();
    });
    assert_eq!(env.item_names(), "apple,pear,plum");
}

/// A read-only identity's upstream session is read-only too: a view whose
/// column calls a writing function (made by a DBA) cannot delete through a
/// plain SELECT, the statements that lift the mode are writes, and the mode
/// survives COM_RESET_CONNECTION.
#[test]
fn the_read_only_wall_stops_writes_hidden_in_views() {
    use mysql_async::prelude::Queryable;
    let env = start(false);
    env.db
        .sql_db(
            Some("orders"),
            "DELIMITER //\nCREATE FUNCTION del_items() RETURNS INT MODIFIES SQL DATA \
             BEGIN DELETE FROM items; RETURN 1; END//",
        )
        .unwrap();
    env.db
        .sql_db(
            Some("orders"),
            "CREATE VIEW v_del AS SELECT del_items() AS x",
        )
        .unwrap();
    let reader = env.warden.create_key("wall-reader", &["readers"]).unwrap();
    let port = env.mysql_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let mut conn = key_conn(port, &reader).await;
        let mode: i64 = conn
            .query_first("SELECT @@tx_read_only")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mode, 1);
        for round in ["at login", "after COM_RESET_CONNECTION"] {
            let error = conn.query_drop("SELECT * FROM v_del").await.unwrap_err();
            assert!(error.to_string().contains("READ ONLY"), "{round}: {error}");
            for lift in [
                "SET TRANSACTION READ WRITE",
                "SET SESSION TRANSACTION READ WRITE",
                "START TRANSACTION READ WRITE",
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
                "SET @@session.tx_read_only = 0",
                "SET STATEMENT tx_read_only = 0 FOR SELECT * FROM v_del",
            ] {
                let error = conn.query_drop(lift).await.unwrap_err();
                assert!(
                    error.to_string().contains("1142"),
                    "{round}: {lift}: {error}"
                );
            }
            conn.reset().await.unwrap();
        }
        // mysqldump --single-transaction still starts its snapshot.
        conn.query_drop("START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */")
            .await
            .unwrap();
        conn.query_drop("COMMIT").await.unwrap();
        conn.disconnect().await.unwrap();
    });
    assert_eq!(env.item_names(), "apple,pear,plum");
}

/// A target confines its sessions to its database: `USE`, COM_INIT_DB and
/// `db.table` names cannot reach another one, even where the upstream login
/// could; information_schema stays readable.
#[test]
fn the_target_database_is_a_boundary() {
    use mysql_async::prelude::Queryable;
    let env = start(false);
    env.db
        .sql(&format!(
            "CREATE DATABASE otherdb; CREATE TABLE otherdb.secrets (a INT); \
             INSERT INTO otherdb.secrets VALUES (42); GRANT ALL PRIVILEGES ON otherdb.* TO '{APP_USER}'@'%';"
        ))
        .unwrap();
    let agent = env.warden.create_key("db-agent", &["agents"]).unwrap();
    let port = env.mysql_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let mut conn = key_conn(port, &agent).await;
        for sql in [
            "SELECT a FROM otherdb.secrets",
            "SELECT * FROM items JOIN `otherdb`.`secrets` s ON true",
            "USE otherdb",
            "DELETE FROM otherdb.secrets",
            "SELECT user FROM mysql.user",
        ] {
            let error = conn.query_drop(sql).await.unwrap_err().to_string();
            assert!(error.contains("confined to database"), "{sql}: {error}");
        }
        // sqlparser would see only `select 1`, the server `- -` and a name
        // (red-team finding): refused before the boundary is even asked.
        let sql = "select 1 --\u{a0}.x, \u{a0}.a from otherdb.secrets \u{a0}";
        let error = conn.query_drop(sql).await.unwrap_err().to_string();
        assert!(error.contains("non-ASCII space"), "{sql}: {error}");
        let tables: Vec<String> = conn
            .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'orders'")
            .await
            .unwrap();
        assert_eq!(tables, vec!["items".to_string()]);
        let current: Option<String> = conn.query_first("SELECT DATABASE()").await.unwrap();
        assert_eq!(current.as_deref(), Some("orders"));
        conn.disconnect().await.unwrap();
    });
    // The CLI's `use` is COM_INIT_DB.
    let key = env.warden.create_key("db-cli", &["agents"]).unwrap();
    let out = env.mariadb(key_id(&key), &key, &[], "use otherdb");
    assert!(!out.ok, "COM_INIT_DB to another database: {}", out.stdout);
    assert!(
        out.stderr.contains("confined to database"),
        "{}",
        out.stderr
    );
    // The login itself could have read it: only Warden stood in the way.
    assert_eq!(
        env.db
            .sql_db(Some("otherdb"), "SELECT a FROM secrets")
            .unwrap()
            .trim(),
        "42"
    );
}

/// Differential test on MariaDB (which has no read-only wall behind Warden):
/// mutated smuggling texts, in sessions first put through mode and character
/// set changes, sent by an identity that may write only to `scratch`. Any
/// change to `items` is a text Warden misjudged.
#[test]
fn mutated_smuggling_texts_never_change_items() {
    use mysql_async::prelude::Queryable;
    const PAYLOADS: &[&str] = &[
        "INSERT INTO items (name, qty) VALUES (0x78, 1)",
        "DELETE FROM items",
        "UPDATE items SET qty = 0",
    ];
    const TEMPLATES: &[&str] = &[
        "SELECT 1 /*!99999 , 'x */ ; {p}; -- '",
        "SELECT 1 /*!50700 , 'x */ ; {p}; -- '",
        "SELECT 1 /*M!999999 , 'x */ ; {p}; -- '",
        "SELECT 1 /*!100000 , 'x */ ; {p}; -- '",
        "SELECT 1 /*!1000000 , 'x */ ; {p}; -- '",
        "SELECT 'x\\' ; {p}; -- '",
        "SELECT \"x\\\" ; {p}; -- \"",
        "SELECT * FROM items WHERE name = 'a\\'' ; {p}; -- '",
        "SELECT 1 --x\n; {p}",
        "SELECT 1 -- x\n; {p}",
        "SELECT 1 # x\n; {p}",
        "SELECT 1 /* ; */ ; {p}",
        "/*!40101 {p} */",
        "SELECT 1; /*! {p} */",
        "PREPARE s FROM '{p}'",
        "PREPARE s FROM 'SELECT 1' '; {p}'",
        "PREPARE s FROM CONCAT('{p}', '')",
        "EXECUTE IMMEDIATE CONCAT('{p}', '')",
        "EXECUTE IMMEDIATE '{p}'",
        "SET @q = '{p}'; PREPARE s FROM @q; EXECUTE s",
    ];
    const SETUPS: &[&str] = &[
        "",
        "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
        "SET @@local.sql_mode = 'ANSI'",
        "SET sql_mode = 1048576",
        "SET NAMES gbk",
        "SET autocommit = 1, sql_mode = concat(@@sql_mode, ',ANSI_QUOTES')",
    ];
    let env = start_with(false, common::SCRATCH_WRITER_POLICIES);
    env.db
        .sql_db(Some("orders"), "CREATE TABLE scratch (a INT)")
        .unwrap();
    let key = env.warden.create_key("fuzz", &["fuzz"]).unwrap();
    let port = env.mysql_port;
    let state = || {
        env.db
            .sql_db(
                Some("orders"),
                "SELECT GROUP_CONCAT(CONCAT(name, qty) ORDER BY id) FROM items",
            )
            .unwrap()
            .trim()
            .to_string()
    };
    let before = state();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut sent = 0;
    for setup in SETUPS {
        runtime.block_on(async {
            let connect = || key_conn_retrying(port, &key);
            let mut conn = connect().await;
            if !setup.is_empty() {
                let _ = conn.query_drop(*setup).await;
            }
            for template in TEMPLATES {
                for payload in PAYLOADS {
                    let text = template.replace("{p}", payload);
                    if conn.query_drop(&text).await.is_err() && conn.ping().await.is_err() {
                        conn = connect().await;
                    }
                    sent += 1;
                }
            }
            let _ = conn.disconnect().await;
        });
        assert_eq!(state(), before, "items changed after set-up {setup:?}");
    }
    assert!(sent >= 300, "only {sent} texts sent");
    // The identity can write where policy lets it: the test can fail.
    runtime.block_on(async {
        let mut conn = key_conn(port, &key).await;
        conn.query_drop("INSERT INTO scratch VALUES (1)")
            .await
            .unwrap();
    });
}

/// A server whose sessions start in a lexing state Warden does not model
/// (here a global ANSI_QUOTES) is refused at login, before any statement.
#[test]
fn a_server_that_starts_sessions_with_ansi_quotes_is_refused() {
    let env = start(false);
    let key = env.warden.create_key("ansi", &["agents"]).unwrap();
    let out = env.mariadb(key_id(&key), &key, &[], "SELECT 1");
    assert!(out.ok, "{}", out.stderr);
    env.db.sql("SET GLOBAL sql_mode = 'ANSI_QUOTES'").unwrap();
    let out = env.mariadb(key_id(&key), &key, &[], "SELECT 1");
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("cannot be used through Warden") && out.stderr.contains("ANSI_QUOTES"),
        "{}",
        out.stderr
    );
}

fn hex_upper(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}
