//! Real MySQL clients through Warden, compared with the same client direct:
//! `mariadb-dump` and a restore of its output, a client that sends no
//! database (the target in the user name), PyMySQL moving 20 MiB packets
//! both ways, and `KILL QUERY` of one's own session (Connector/J's query
//! timeout) next to one of someone else's.

#![allow(clippy::unwrap_used)]

use std::process::Command;

mod common;

use common::assert_same;
use common::mysql::*;

/// `agents` dump, restore and kill their own queries; `readers` only read.
const POLICIES: &str = r#"
[[target]]
name = "restore"
protocol = "mysql"
address = "@ADDRESS@"
database = "restored"
credentials = { mode = "static", user = "app", password = "env:ORDERS_PASSWORD" }

[[policy]]
name = "agents work on both"
subjects = ["group:agents"]
targets = ["orders", "restore"]
allow = ["read", "write", "ddl"]

[[policy]]
name = "readers read orders"
subjects = ["group:readers"]
targets = ["orders"]
allow = ["read"]
"#;

/// What the fixture adds to `orders`, created by `app` itself (so the
/// routines and triggers carry `app` as definer and restore as `app`).
const RICH_SCHEMA: &str = r#"
CREATE TABLE kinds (
  id INT AUTO_INCREMENT PRIMARY KEY,
  label ENUM('small', 'large') NOT NULL,
  price DECIMAL(10, 2),
  seen DATETIME(3),
  doc JSON,
  raw VARBINARY(16),
  note TEXT CHARACTER SET utf8mb4
);
INSERT INTO kinds (label, price, seen, doc, raw, note) VALUES
  ('small', 1.50, '2026-01-02 03:04:05.678', '{"a": [1, 2]}', X'00FF10', 'it''s ünïcode ✓'),
  ('large', NULL, NULL, NULL, NULL, 'back\\slash');
CREATE VIEW big_items AS SELECT name, qty FROM items WHERE qty > 4;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50));
CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (what) VALUES (NEW.name);
CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE PROCEDURE restock(IN amount INT) MODIFIES SQL DATA UPDATE items SET qty = qty + amount;
"#;

/// Direct `mariadb` as `app`.
fn direct_sql(env: &Env, database: &str, sql: &str) -> Output {
    direct_sql_with(env, database, &[], sql)
}

/// Direct `mariadb` as `app`, with more client options.
fn direct_sql_with(env: &Env, database: &str, extra: &[&str], sql: &str) -> Output {
    output(
        Command::new("mariadb")
            .arg("--no-defaults")
            .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
            .arg(env.db.port().to_string())
            .args([
                "-u",
                "app",
                "-D",
                database,
                "--batch",
                "--skip-column-names",
            ])
            .args(extra)
            .args(["-e", sql])
            .env("MYSQL_PWD", &env.app_password),
    )
}

/// `mariadb-dump` of database `database` at `port` as `user`.
fn dump(port: u16, user: &str, password: &str, database: &str) -> Output {
    output(
        Command::new("mariadb-dump")
            .arg("--no-defaults")
            .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .args(["-u", user, "--routines", "--triggers", "--skip-dump-date"])
            .arg(database)
            .env("MYSQL_PWD", password),
    )
}

/// A dump without the lines that name the host or the server's version.
fn comparable(dump: &str) -> String {
    dump.lines()
        .filter(|line| !line.starts_with("-- Host:") && !line.starts_with("-- Server version"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn mariadb_dump_through_warden_matches_direct_and_restores() {
    let env = start_with(false, POLICIES);
    env.db
        .sql("CREATE DATABASE restored; GRANT ALL PRIVILEGES ON restored.* TO 'app'@'%';")
        .unwrap();
    let created = direct_sql(&env, "orders", RICH_SCHEMA);
    assert!(created.ok, "{}", created.stderr);

    let reader = env.warden.create_key("reader", &["readers"]).unwrap();
    let direct = dump(env.db.port(), "app", &env.app_password, "orders");
    assert!(direct.ok, "direct dump: {}", direct.stderr);
    // mariadb-dump sends no database at connect: the target is in the user name.
    let through = dump(
        env.mysql_port,
        &format!("{}@orders", key_id(&reader)),
        &reader,
        "orders",
    );
    assert!(
        through.ok,
        "dump through Warden: {}\n{}",
        through.stderr,
        env.warden.logs()
    );
    assert_same(&comparable(&through.stdout), &comparable(&direct.stdout));
    assert!(
        direct.stdout.contains("TRIGGER items_audit"),
        "{}",
        direct.stdout
    );
    assert!(
        direct.stdout.contains("PROCEDURE `restock`"),
        "{}",
        direct.stdout
    );

    // Restore the dump through Warden into the other target, as a DBA.
    let dba = env.warden.create_key("dba", &["agents"]).unwrap();
    let restored = restore(
        &env,
        &format!("{}@restore", key_id(&dba)),
        &dba,
        &through.stdout,
    );
    assert!(
        restored.ok,
        "restore through Warden: {}\n{}",
        restored.stderr,
        env.warden.logs()
    );
    let again = dump(env.db.port(), "app", &env.app_password, "restored");
    assert!(again.ok, "{}", again.stderr);
    // The restored database dumps like the original.
    assert_same(
        &comparable(&again.stdout).replace("restored", "orders"),
        &comparable(&direct.stdout),
    );
    let audit = direct_sql(&env, "restored", "SELECT doubled(21), COUNT(*) FROM kinds");
    assert_eq!(audit.stdout.trim(), "42\t2", "{}", audit.stderr);
}

/// `mariadb` reading `script` on stdin, through Warden, with no `-D`.
fn restore(env: &Env, user: &str, password: &str, script: &str) -> Output {
    mariadb_piped(env.mysql_port, user, password, &[], script)
}

#[test]
fn a_client_without_a_database_names_the_target_in_its_user_name() {
    let env = start_with(false, POLICIES);
    let reader = env.warden.create_key("reader", &["readers"]).unwrap();
    let run = |user: &str, sql: &str| {
        output(
            Command::new("mariadb")
                .arg("--no-defaults")
                .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
                .arg(env.mysql_port.to_string())
                .args(["-u", user, "--batch", "--skip-column-names", "-e", sql])
                .env("MYSQL_PWD", &reader),
        )
    };
    let out = run(
        &format!("{}@orders", key_id(&reader)),
        "SELECT DATABASE(), COUNT(*) FROM items",
    );
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    assert_eq!(rows(&out.stdout), ["orders\t3"]);
    // A target the reader may not use, and no target at all, look alike.
    for user in [
        format!("{}@restore", key_id(&reader)),
        key_id(&reader).to_string(),
    ] {
        let out = run(&user, "SELECT 1");
        assert!(!out.ok, "{user}: {}", out.stdout);
        assert!(out.stderr.contains("1045"), "{user}: {}", out.stderr);
    }
}

/// PyMySQL through Warden: a 20 MiB value in, the same value out, and
/// `KILL QUERY` by thread id from a second connection.
const PY_BIG: &str = r#"
import hashlib, json, os, sys, pymysql
port, user, key = int(sys.argv[1]), sys.argv[2], os.environ["KEY"]
conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=key,
                       database="orders", connect_timeout=10, max_allowed_packet=64 << 20)
blob = os.urandom(20 << 20)
with conn.cursor() as cur:
    cur.execute("CREATE TABLE blobs (id INT PRIMARY KEY, body LONGBLOB)")
    cur.execute("INSERT INTO blobs VALUES (1, %s)", (blob,))
    conn.commit()
    cur.execute("SELECT body, LENGTH(body) FROM blobs WHERE id = 1")
    body, length = cur.fetchone()
    cur.execute("SELECT 'still in step'")
    after = cur.fetchone()[0]
print(json.dumps({"sent": hashlib.sha256(blob).hexdigest(),
                  "got": hashlib.sha256(body).hexdigest(),
                  "length": length, "after": after}))
"#;

#[test]
fn pymysql_moves_20_mib_packets_both_ways() {
    let env = start_with(false, POLICIES);
    // The server's own limit (16 MiB by default) must not be what fails.
    env.db
        .sql("SET GLOBAL max_allowed_packet = 67108864")
        .unwrap();
    let dba = env.warden.create_key("dba", &["agents"]).unwrap();
    let out = output(
        Command::new(warden_test_support::tools::python3())
            .args(["-c", PY_BIG, &env.mysql_port.to_string(), key_id(&dba)])
            .env("KEY", &dba),
    );
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    let value: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(value["sent"], value["got"], "{value}");
    assert_eq!(value["length"], 20 << 20);
    assert_eq!(value["after"], "still in step");
}

/// Session A sleeps; B kills A's query by the thread id A's greeting gave.
/// Prints how A's sleep ended: `1` (interrupted), `0` (ran out) or the error.
const PY_KILL: &str = r#"
import os, sys, threading, pymysql
port, victim_user, killer_user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def connect(user, key):
    return pymysql.connect(host="127.0.0.1", port=port, user=user, password=key,
                           database="orders", connect_timeout=10)
a = connect(victim_user, os.environ["VICTIM_KEY"])
outcome = {}
def sleep():
    try:
        with a.cursor() as cur:
            cur.execute("SELECT SLEEP(%s)" % sys.argv[4])
            outcome["a"] = str(cur.fetchone()[0])
    except pymysql.MySQLError as e:
        outcome["a"] = "error %d" % e.args[0]
t = threading.Thread(target=sleep)
t.start()
import time; time.sleep(1)
b = connect(killer_user, os.environ["KILLER_KEY"])
try:
    with b.cursor() as cur:
        cur.execute("KILL QUERY %d" % a.thread_id())
        outcome["b"] = "ok"
except pymysql.MySQLError as e:
    outcome["b"] = "error %d" % e.args[0]
t.join()
print(outcome["a"], "|", outcome["b"])
"#;

fn kill(env: &Env, victim: &str, killer: &str, seconds: &str) -> String {
    let out = output(
        Command::new(warden_test_support::tools::python3())
            .args(["-c", PY_KILL, &env.mysql_port.to_string()])
            .args([key_id(victim), key_id(killer), seconds])
            .env("VICTIM_KEY", victim)
            .env("KILLER_KEY", killer),
    );
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    out.stdout.trim().to_string()
}

#[test]
fn kill_query_reaches_only_the_callers_own_session() {
    let env = start_with(false, POLICIES);
    let reader = env.warden.create_key("reader", &["readers"]).unwrap();
    let other = env.warden.create_key("other", &["readers"]).unwrap();
    // The reader interrupts its own query (no admin rights needed).
    let own = kill(&env, &reader, &reader, "30");
    assert!(
        own.starts_with("1 |") || own.starts_with("error 1317 |"),
        "{own}\n{}",
        env.warden.logs()
    );
    assert!(own.ends_with("| ok"), "{own}");
    // Another identity's KILL is policy's question (admin: denied), and the
    // sleep runs to its end.
    let foreign = kill(&env, &reader, &other, "3");
    assert!(foreign.starts_with("0 |"), "{foreign}");
    assert!(foreign.contains("error 1227"), "{foreign}");
}

#[test]
fn policy_explain_classifies_a_mysql_target_as_mysql() {
    let env = start_with(false, POLICIES);
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "explain",
            "--identity-claims",
            r#"{"sub":"bot","groups":["readers"]}"#,
            "--target",
            "orders",
            "--sql",
            "SELECT 1--1; DELETE FROM items",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = env.warden.cli(&args).unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    // `--1` is no comment to MySQL: the DELETE runs, so it is a write.
    let mysql = explain(&[]);
    assert_eq!(mysql["dialect"], "mysql", "{mysql}");
    assert_eq!(mysql["operation"], "write", "{mysql}");
    // Asked for explicitly, the PostgreSQL reading differs.
    let postgres = explain(&["--dialect", "postgres"]);
    assert_eq!(postgres["dialect"], "postgres", "{postgres}");
    assert_eq!(postgres["operation"], "read", "{postgres}");
}

/// mysql-connector-python, pure Python and C extension: parameters, a
/// server-side prepared cursor, a transaction rolled back. Prints JSON.
const CONNECTOR: &str = r#"
import json, os, sys, mysql.connector
port, user, pure = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "pure"
conn = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=os.environ["PW"],
                               database="orders", use_pure=pure, ssl_disabled=True)
out = {"pure": pure}
cur = conn.cursor()
cur.execute("SELECT name, qty FROM items WHERE qty > %s ORDER BY id", (4,))
out["rows"] = [list(r) for r in cur.fetchall()]
prepared = conn.cursor(prepared=True)
prepared.execute("SELECT name FROM items WHERE id = ?", (2,))
out["prepared"] = prepared.fetchone()[0]
if isinstance(out["prepared"], (bytes, bytearray)):
    out["prepared"] = out["prepared"].decode()
cur.execute("INSERT INTO items (name, qty) VALUES (%s, %s)", ("kiwi", 1))
conn.rollback()
cur.execute("SELECT COUNT(*) FROM items")
out["count_after_rollback"] = cur.fetchone()[0]
conn.close()
print(json.dumps(out))
"#;

#[test]
fn mysql_connector_python_pure_and_c_through_warden_match_direct() {
    let env = start_with(false, POLICIES);
    let dba = env.warden.create_key("connector", &["agents"]).unwrap();
    for flavour in ["pure", "c"] {
        let run = |port: u16, user: &str, password: &str| {
            let out = output(
                Command::new(warden_test_support::tools::python3())
                    .args(["-c", CONNECTOR, &port.to_string(), user, flavour])
                    .env("PW", password),
            );
            assert!(
                out.ok,
                "{flavour} on {port}: {}\n{}",
                out.stderr,
                env.warden.logs()
            );
            serde_json::from_str::<serde_json::Value>(out.stdout.trim()).unwrap()
        };
        let want = run(env.db.port(), "app", &env.app_password);
        let got = run(env.mysql_port, key_id(&dba), &dba);
        assert_eq!(got, want, "{flavour}");
        assert_eq!(want["count_after_rollback"], 3);
    }
}

#[test]
fn load_data_local_infile_is_a_write_judged_by_policy() {
    let env = start_with(false, POLICIES);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("more.csv");
    let rows: String = (0..2000).map(|i| format!("fig{i},{i}\n")).collect();
    std::fs::write(&csv, rows).unwrap();
    let sql = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE items FIELDS TERMINATED BY ',' (name, qty)",
        csv.display()
    );
    let reader = env.warden.create_key("reader", &["readers"]).unwrap();
    let out = env.mariadb(key_id(&reader), &reader, &["--local-infile=1"], &sql);
    assert!(!out.ok && out.stderr.contains("1142"), "{}", out.stderr);
    let dba = env.warden.create_key("dba", &["agents"]).unwrap();
    let out = env.mariadb(key_id(&dba), &dba, &["--local-infile=1"], &sql);
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    let count = direct_sql(
        &env,
        "orders",
        "SELECT COUNT(*), SUM(qty) FROM items WHERE name LIKE 'fig%'",
    );
    assert_eq!(count.stdout.trim(), "2000\t1999000", "{}", count.stderr);
}

/// The compressed protocol: the `mariadb` client with `--compress` and
/// mysql-connector-python with `compress=True`, small and large results.
#[test]
fn compressed_clients_get_what_they_get_direct() {
    let env = start_with(false, POLICIES);
    let dba = env.warden.create_key("zip", &["agents"]).unwrap();
    let sql = "SELECT name, qty FROM items ORDER BY id; SELECT LENGTH(REPEAT('ab', 3000000)), MD5(REPEAT('ab', 3000000)); SELECT REPEAT('xyz', 100000)";
    let direct = direct_sql_with(&env, "orders", &["--compress"], sql);
    assert!(direct.ok, "{}", direct.stderr);
    let through = env.mariadb(key_id(&dba), &dba, &["--compress"], sql);
    assert!(through.ok, "{}\n{}", through.stderr, env.warden.logs());
    assert_same(&through.stdout, &direct.stdout);

    let script = r#"
import os, sys, mysql.connector
conn = mysql.connector.connect(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2],
    password=os.environ["PW"], database="orders", compress=True, ssl_disabled=True)
cur = conn.cursor()
cur.execute("SELECT COUNT(*), MD5(GROUP_CONCAT(name)) FROM items")
print(cur.fetchone())
cur.execute("SELECT %s", ("z" * 200000,))
print(len(cur.fetchone()[0]))
"#;
    let run = |port: u16, user: &str, password: &str| {
        let out = output(
            Command::new(warden_test_support::tools::python3())
                .args(["-c", script, &port.to_string(), user])
                .env("PW", password),
        );
        assert!(out.ok, "{port}: {}\n{}", out.stderr, env.warden.logs());
        out.stdout
    };
    assert_eq!(
        run(env.mysql_port, key_id(&dba), &dba),
        run(env.db.port(), "app", &env.app_password)
    );
}

#[test]
fn mariadb_connector_j_through_warden_matches_direct() {
    let env = start_with(false, POLICIES);
    let run = |port: u16, user: &str, password: &str| {
        let out = common::java(
            "MariaJ.java",
            "/usr/share/java/mariadb-java-client.jar",
            password,
        )
        .args([&port.to_string(), user])
        .output()
        .expect("java (run scripts/setup.sh)");
        assert!(
            out.status.success(),
            "Connector/J on {port}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            env.warden.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let want = run(env.db.port(), "app", &env.app_password);
    direct_sql(&env, "orders", "DELETE FROM items WHERE name LIKE 'jdbc%'");
    let dba = env.warden.create_key("connector-j", &["agents"]).unwrap();
    let got = run(env.mysql_port, key_id(&dba), &dba);
    assert_same(&got, &want);
    assert!(want.contains("timeout"), "{want}");
}

/// COM_CHANGE_USER (mysql-connector-python's `cmd_change_user`, as pools
/// send it): log in with `PW`, change to the same identity with `PW2`, then
/// to `OTHER_USER` with `OTHER_PW`. With `CA` set the credentials are tokens
/// sent in clear over TLS. Prints what the session saw as JSON.
const CHANGE_USER: &str = r#"
import json, os, sys, mysql.connector
port, user, other = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tls = {"ssl_ca": os.environ["CA"], "auth_plugin": "mysql_clear_password"} if "CA" in os.environ else {"ssl_disabled": True}
conn = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=os.environ["PW"],
                               database="orders", use_pure=True, **tls)
cur = conn.cursor()
cur.execute("SET @left_behind = 1")
conn.cmd_change_user(username=user, password=os.environ["PW2"], database="orders")
cur = conn.cursor()
cur.execute("SELECT @left_behind, COUNT(*) FROM items")
out = {"same": list(cur.fetchone())}
try:
    conn.cmd_change_user(username=other, password=os.environ["OTHER_PW"], database="orders")
    out["other"] = "accepted"
except mysql.connector.Error as e:
    out["other"] = e.errno
print(json.dumps(out))
"#;

/// Runs [`CHANGE_USER`]: `(user, first, second)` credentials of one identity,
/// then `(other user, its credential)`.
fn change_user(env: &Env, same: (&str, &str, &str), other: (&str, &str)) -> serde_json::Value {
    let mut command = Command::new(warden_test_support::tools::python3());
    command
        .args([
            "-c",
            CHANGE_USER,
            &env.mysql_port.to_string(),
            same.0,
            other.0,
        ])
        .env("PW", same.1)
        .env("PW2", same.2)
        .env("OTHER_PW", other.1);
    if let Some(cert) = &env.cert {
        command.env("CA", cert);
    }
    let out = output(&mut command);
    assert!(out.ok, "{}\n{}", out.stderr, env.warden.logs());
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// Re-authentication as the same identity resets the session; another
/// identity is refused and the connection ends.
#[test]
fn change_user_reauthenticates_the_same_identity_only() {
    let env = start_with(false, POLICIES);
    let dba = env.warden.create_key("pool", &["agents"]).unwrap();
    let reader = env.warden.create_key("other", &["readers"]).unwrap();
    let value = change_user(&env, (key_id(&dba), &dba, &dba), (key_id(&reader), &reader));
    assert_eq!(value["same"], serde_json::json!([null, 3]), "{value}");
    assert_eq!(value["other"], 1045, "{value}");
}

/// The same with OIDC tokens in clear (over TLS): a fresh token for the
/// same subject continues the session; another subject's does not.
#[test]
fn change_user_with_tokens_in_clear_keeps_only_the_same_subject() {
    let env = start_with(true, POLICIES);
    let (first, second) = (
        env.token("agent-7", &["agents"]),
        env.token("agent-7", &["agents"]),
    );
    let other = env.token("agent-8", &["agents"]);
    let value = change_user(&env, ("agent", &first, &second), ("agent", &other));
    assert_eq!(value["same"], serde_json::json!([null, 3]), "{value}");
    assert_eq!(value["other"], 1045, "{value}");
}

/// `warden check` reads a MySQL static login's grants: ALL on the target's
/// database (the fixture's `app`) is named; a login with plain grants is not.
#[test]
fn warden_check_warns_about_a_mysql_login_that_holds_all_privileges() {
    let env = start_with(false, POLICIES);
    let check = |path: &std::path::Path, password: &str| {
        let out = Command::new(common::binary())
            .args(["check", "--config"])
            .arg(path)
            .env("ORDERS_PASSWORD", password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = check(&env.warden.config_path(), &env.app_password);
    assert!(
        stderr.contains("static login \"app\" holds ALL PRIVILEGES on `orders`"),
        "{stderr}"
    );
    env.db
        .sql("CREATE USER 'plain'@'%' IDENTIFIED BY 'plain-pw'; GRANT SELECT, INSERT ON orders.* TO 'plain'@'%'")
        .unwrap();
    let text = std::fs::read_to_string(env.warden.config_path()).unwrap();
    let plain = env.warden.dir().join("plain.toml");
    std::fs::write(&plain, text.replace("user = \"app\"", "user = \"plain\"")).unwrap();
    let stderr = check(&plain, "plain-pw");
    assert!(
        !stderr.contains("target \"orders\": static login \"plain\""),
        "{stderr}"
    );
}
