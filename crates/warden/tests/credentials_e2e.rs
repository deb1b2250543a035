//! Just-in-time credentials end to end: every session through Warden runs as
//! a fresh `warden_…` role with exactly the configured grants, which is
//! dropped when the session ends, when its max_ttl passes, when an operator
//! revokes its lease, or — after `kill -9` — by the sweeper at restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};
use warden_test_support::mariadb::MariaDb;
use warden_test_support::postgres::Postgres;
use warden_test_support::warden::{Warden, WardenConfig, psql};

const POLICIES: &str = r#"
[[policy]]
name = "agents work on orders"
subjects = ["group:agents"]
targets = ["orders", "broken"]
allow = ["read", "write"]
"#;

struct Env {
    pg: Postgres,
    issuer: warden_test_support::oidc::TestIssuer,
    warden: Warden,
    admin_password: String,
    config: fn(&Env) -> WardenConfig,
    body: String,
}

/// PostgreSQL with an admin that may create roles, a role `orders_read`
/// that may only read `items`, and a trap schema `evil`.
fn upstream() -> (Postgres, String) {
    let (pg, _app_password) = common::upstream();
    let admin_password = format!("admin-pw-{}", common::rand_suffix());
    pg.psql_db(
        "orders",
        &format!(
            "create role warden_admin login createrole password '{admin_password}'; \
             create role orders_read nologin; \
             grant connect on database orders to orders_read; \
             grant usage on schema public to orders_read; \
             grant select on items to orders_read; \
             grant orders_read to warden_admin with admin option; \
             create table evil_calls (what text); grant insert on evil_calls to public; \
             create schema evil; grant usage on schema evil to public; \
             create function evil.pg_terminate_backend(int) returns boolean language sql as \
               $$ insert into public.evil_calls values ('terminate'); select true $$; \
             create function evil.now() returns timestamptz language sql as \
               $$ insert into public.evil_calls values ('now'); select pg_catalog.now() $$; \
             alter role warden_admin set search_path = evil, pg_catalog, public;"
        ),
    )
    .unwrap();
    (pg, admin_password)
}

fn body(pg: &Postgres, issuer: &warden_test_support::oidc::TestIssuer) -> String {
    format!(
        r#"
[[identity.oidc]]
issuer = "{issuer}"
audience = "warden"

[[target]]
name = "orders"
protocol = "postgres"
address = "{address}"
credentials = {{ mode = "ephemeral", admin_user = "warden_admin", admin_password = "env:ADMIN_PASSWORD", grant = ["orders_read"], ttl = "2s", max_ttl = "6s" }}

[[target]]
name = "broken"
protocol = "postgres"
address = "{address}"
database = "orders"
credentials = {{ mode = "ephemeral", admin_user = "warden_admin", admin_password = "file:/nonexistent/warden-admin-password", grant = ["orders_read"] }}
{POLICIES}
"#,
        issuer = issuer.issuer_url(),
        address = pg.address(),
    )
}

fn warden_config(env: &Env) -> WardenConfig {
    WardenConfig {
        body: env.body.clone(),
        env: vec![("ADMIN_PASSWORD".into(), env.admin_password.clone())],
        ..WardenConfig::default()
    }
}

fn start() -> Env {
    let (pg, admin_password) = upstream();
    let issuer = warden_test_support::oidc::TestIssuer::start().unwrap();
    let body = body(&pg, &issuer);
    let warden = Warden::start(
        common::binary(),
        WardenConfig {
            body: body.clone(),
            env: vec![("ADMIN_PASSWORD".into(), admin_password.clone())],
            ..WardenConfig::default()
        },
    )
    .unwrap();
    Env {
        pg,
        issuer,
        warden,
        admin_password,
        config: warden_config,
        body,
    }
}

impl Env {
    fn token(&self) -> String {
        self.issuer.mint(
            warden_test_support::oidc::Algorithm::RS256,
            self.issuer.default_claims("jit-agent", &["agents"]),
        )
    }

    /// `warden_…` roles that exist upstream.
    fn session_roles(&self) -> Vec<String> {
        self.pg
            .psql_db(
                "orders",
                "select rolname from pg_roles where rolname ~ '^warden_[0-9a-f]{12}$' order by 1",
            )
            .unwrap()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| l.starts_with("warden_"))
            .collect()
    }

    /// Waits until no session role is left; returns how long it took.
    fn wait_roles_gone(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        while !self.session_roles().is_empty() {
            assert!(
                started.elapsed() < limit,
                "roles still there after {limit:?}: {:?}\n{}",
                self.session_roles(),
                self.warden.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        started.elapsed()
    }

    fn evil_calls(&self) -> String {
        self.pg
            .psql_db("orders", "select count(*) from evil_calls")
            .unwrap()
    }
}

#[test]
fn each_session_gets_its_own_role_with_exactly_its_grants() {
    let env = start();
    let token = env.token();
    let (ok, out, err) = psql(
        &env.conninfo_opts("options=-csearch_path=evil,public"),
        &token,
        &[
            "-At",
            "-c",
            "select current_user",
            "-c",
            "select count(*) from items",
        ],
    );
    assert!(ok, "psql failed: {err}\n{}", env.warden.logs());
    let lines: Vec<&str> = out.lines().collect();
    let role = lines[0];
    assert!(
        role.starts_with("warden_") && role.len() == "warden_".len() + 12,
        "{out}"
    );
    assert_eq!(lines[1], "3");

    // Policy allows writes; the database itself refuses them: the role has only its grants.
    let (ok, _, err) = psql(
        &env.conninfo(),
        &token,
        &["-c", "insert into items (name, qty) values ('fig', 1)"],
    );
    assert!(
        !ok && err.contains("permission denied for table items"),
        "{err}"
    );

    let took = env.wait_roles_gone(Duration::from_secs(5));
    eprintln!("roles dropped {took:?} after the last disconnect");
    assert!(
        env.evil_calls().trim().starts_with('0'),
        "a hostile search_path reached Warden's internal queries: {}",
        env.evil_calls()
    );

    // The recording says which role the session used and that it was dropped.
    let events = env
        .warden
        .session_events(&env.warden.last_session_id().unwrap())
        .unwrap();
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "lease")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["issued", "revoked"], "{events:?}");
    // Lease events reach the audit trail too; the admin password reaches no log.
    let leases: serde_json::Value = serde_json::from_str(
        &env.warden
            .cli(&["leases", "list", "--all", "--json"])
            .unwrap(),
    )
    .unwrap();
    assert!(leases.as_array().unwrap().len() >= 2, "{leases}");
    assert!(!env.warden.logs().contains(&env.admin_password));
}

#[test]
fn max_ttl_ends_the_session_with_a_notice_and_drops_the_role() {
    let env = start();
    let (ok, out, err) = psql(
        &env.conninfo(),
        &env.token(),
        &[
            "-c",
            "select 1 as before",
            "-c",
            "select pg_sleep(20)",
            "-c",
            "select 2",
        ],
    );
    assert!(!ok, "the session outlived its max_ttl: {out}");
    assert!(err.contains("max_ttl"), "{err}");
    env.wait_roles_gone(Duration::from_secs(5));
}

#[test]
fn revoking_a_lease_ends_its_session() {
    let env = start();
    let conninfo = env.conninfo();
    let token = env.token();
    let client =
        std::thread::spawn(move || psql(&conninfo, &token, &["-c", "select pg_sleep(20)"]));
    let lease_id = loop {
        let leases: serde_json::Value =
            serde_json::from_str(&env.warden.cli(&["leases", "list", "--json"]).unwrap()).unwrap();
        if let Some(id) = leases[0]["id"].as_str() {
            break id.to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    env.warden.cli(&["leases", "revoke", &lease_id]).unwrap();
    let (ok, _, err) = client.join().unwrap();
    assert!(!ok && err.contains("revoked"), "{err}");
    env.wait_roles_gone(Duration::from_secs(5));
}

#[test]
fn kill_9_then_restart_sweeps_the_orphaned_role_and_its_backend() {
    let mut env = start();
    let conninfo = env.conninfo();
    let token = env.token();
    let client =
        std::thread::spawn(move || psql(&conninfo, &token, &["-c", "select pg_sleep(30)"]));
    while env.session_roles().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = (env.config)(&env);
    env.warden.kill_and_restart(&config).unwrap();
    // The restarted node sweeps at start-up: the role and its backend are gone.
    env.wait_roles_gone(Duration::from_secs(10));
    let backends = env
        .pg
        .psql_db(
            "orders",
            "select count(*) from pg_stat_activity where usename like 'warden\\_%' and usename <> 'warden_admin'",
        )
        .unwrap();
    assert!(backends.trim().starts_with('0'), "{backends}");
    let (ok, _, _) = client.join().unwrap();
    assert!(
        !ok,
        "the killed session's client should see its connection end"
    );
    assert!(env.warden.logs().contains("swept"), "{}", env.warden.logs());
}

#[test]
fn a_secret_that_cannot_be_fetched_names_the_target_not_a_value() {
    let env = start();
    let (ok, _, err) = psql(
        &env.warden.conninfo("broken"),
        &env.token(),
        &["-c", "select 1"],
    );
    assert!(!ok);
    assert!(err.contains("target \"broken\""), "{err}");
    assert!(
        !err.contains("/nonexistent"),
        "the client is not told where secrets live: {err}"
    );
    let logs = env.warden.logs();
    assert!(
        logs.contains("file:/nonexistent/warden-admin-password"),
        "{logs}"
    );
    assert!(env.session_roles().is_empty());
}

impl Env {
    fn conninfo(&self) -> String {
        self.warden.conninfo("orders")
    }

    /// The orders conninfo plus libpq options (e.g. `options=-csearch_path=…`).
    fn conninfo_opts(&self, extra: &str) -> String {
        format!("{} {extra}", self.conninfo())
    }
}

/// MariaDB: a fresh user with the configured privilege, dropped at disconnect.
#[test]
fn mariadb_sessions_get_their_own_user() {
    warden_test_support::init();
    let db = MariaDb::start().expect("start mariadb");
    let admin_password = format!("admin-pw-{}", common::rand_suffix());
    db.sql(&format!(
        "CREATE DATABASE orders; \
         CREATE TABLE orders.items (id INT PRIMARY KEY, name VARCHAR(20)); \
         INSERT INTO orders.items VALUES (1, 'apple'); \
         CREATE USER 'warden_admin'@'%' IDENTIFIED BY '{admin_password}'; \
         GRANT ALL PRIVILEGES ON *.* TO 'warden_admin'@'%' WITH GRANT OPTION;"
    ))
    .unwrap();
    let issuer = warden_test_support::oidc::TestIssuer::start().unwrap();
    let mysql_port = warden_test_support::free_port();
    let warden = Warden::start(
        common::binary(),
        WardenConfig {
            body: format!(
                r#"
[[listener]]
protocol = "mysql"
listen = "127.0.0.1:{mysql_port}"

[[identity.oidc]]
issuer = "{issuer}"
audience = "warden"

[[target]]
name = "orders"
protocol = "mysql"
address = "{address}"
credentials = {{ mode = "ephemeral", admin_user = "warden_admin", admin_password = "env:ADMIN_PASSWORD", grant = ["SELECT ON orders.*"] }}
{POLICIES}
"#,
                issuer = issuer.issuer_url(),
                address = db.address(),
            ),
            env: vec![("ADMIN_PASSWORD".into(), admin_password)],
            ..WardenConfig::default()
        },
    )
    .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", mysql_port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = issuer.mint(
        warden_test_support::oidc::Algorithm::RS256,
        issuer.default_claims("jit-agent", &["agents"]),
    );
    let output = std::process::Command::new("mariadb")
        .arg("--no-defaults")
        .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
        .arg(mysql_port.to_string())
        .args([
            "-u",
            "jit-agent",
            "-D",
            "orders",
            "--batch",
            "--skip-column-names",
        ])
        .args(["--enable-cleartext-plugin", "-e"])
        .arg("SELECT CURRENT_USER(); SELECT name FROM items; INSERT INTO items VALUES (2, 'fig');")
        .env("MYSQL_PWD", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("WARNING"))
        .collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("warden_")),
        "{stdout}{stderr}"
    );
    assert_eq!(lines.get(1), Some(&"apple"), "{stdout}");
    assert!(
        stderr.contains("1142"),
        "the database refuses writes outside the grant: {stderr}"
    );
    let started = Instant::now();
    loop {
        let users = db
            .sql("SELECT COUNT(*) FROM mysql.user WHERE user LIKE 'warden\\_%' AND user <> 'warden_admin'")
            .unwrap();
        if users.trim().ends_with('0') {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "users left: {users}\n{}",
            warden.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
