//! Shared fixture for the end-to-end tests: a real PostgreSQL with an `orders`
//! database, an in-process OIDC issuer, and the `warden` binary in front.
#![allow(dead_code)]

pub mod mysql;

use std::path::Path;
use warden_test_support::oidc::{Algorithm, TestIssuer};
use warden_test_support::postgres::Postgres;
use warden_test_support::warden::{Warden, WardenConfig};

/// The upstream role Warden logs in as.
pub const APP_USER: &str = "app";

/// Default rules: `agents` may read, write and run DDL; `readers` may only read.
pub const DEFAULT_POLICIES: &str = r#"
[[policy]]
name = "agents work on orders"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read", "write", "ddl"]

[[policy]]
name = "readers read orders"
subjects = ["group:readers"]
targets = ["orders"]
allow = ["read"]
"#;

/// The differential tests' identity (`group:fuzz`): it may read anything
/// and write only `scratch`, so no read-only wall stands behind Warden's
/// judgement of what touches `items`.
pub const SCRATCH_WRITER_POLICIES: &str = r#"
[[policy]]
name = "read anything"
subjects = ["group:fuzz"]
targets = ["orders"]
allow = ["read"]

[[policy]]
name = "write only scratch"
subjects = ["group:fuzz"]
targets = ["orders"]
tables = ["scratch"]
allow = ["write"]
"#;

/// `scratch` for the scratch writer, and an audit trigger that records every
/// statement changing `items` in `items_audit`.
#[allow(dead_code)]
pub const ITEMS_AUDIT_FIXTURE: &str = "set role app; create table scratch (a int); \
     create table items_audit (op text, at timestamptz default now()); \
     create function items_audited() returns trigger language plpgsql as \
     $$ begin insert into items_audit (op) values (tg_op); return null; end $$; \
     create trigger items_audit after insert or update or delete on items \
     for each statement execute function items_audited();";

pub struct Env {
    pub pg: Postgres,
    pub issuer: TestIssuer,
    pub warden: Warden,
    pub app_password: String,
}

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// A PostgreSQL with role `app` owning database `orders` and a table `items`.
pub fn upstream() -> (Postgres, String) {
    warden_test_support::init();
    let pg = Postgres::start().expect("start postgres");
    let app_password = format!("app-pw-{}", rand_suffix());
    pg.create_user(APP_USER, &app_password, false).unwrap();
    pg.create_database("orders", APP_USER).unwrap();
    pg.psql_db(
        "orders",
        "set role app; create table items (id serial primary key, name text not null, qty int not null); \
         insert into items (name, qty) values ('apple', 3), ('pear', 5), ('plum', 7);",
    )
    .unwrap();
    (pg, app_password)
}

pub fn rand_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The config body for target `orders` on `pg`, trusting `issuer`.
pub fn target_config(pg: &Postgres, issuer: &TestIssuer, policies: &str, extra: &str) -> String {
    config_for_issuer(pg, issuer.issuer_url(), policies, extra)
}

/// The config body for target `orders` on `pg`, trusting the issuer at `issuer_url`.
pub fn config_for_issuer(pg: &Postgres, issuer_url: &str, policies: &str, extra: &str) -> String {
    format!(
        r#"
[[identity.oidc]]
issuer = "{issuer}"
audience = "warden"

[[target]]
name = "orders"
protocol = "postgres"
address = "{address}"
credentials = {{ mode = "static", user = "{APP_USER}", password = "env:ORDERS_PASSWORD" }}
{extra}
{policies}
"#,
        issuer = issuer_url,
        address = pg.address(),
    )
}

pub fn start_with(policies: &str, extra: &str, log_level: &str, server_extra: &str) -> Env {
    let (pg, app_password) = upstream();
    let issuer = TestIssuer::start().expect("start issuer");
    let warden = Warden::start(
        binary(),
        WardenConfig {
            body: target_config(&pg, &issuer, policies, extra),
            server_extra: server_extra.to_string(),
            env: vec![("ORDERS_PASSWORD".into(), app_password.clone())],
            log_level: log_level.into(),
        },
    )
    .expect("start warden");
    Env {
        pg,
        issuer,
        warden,
        app_password,
    }
}

pub fn start() -> Env {
    start_with(DEFAULT_POLICIES, "", "info", "")
}

impl Env {
    /// What `ITEMS_AUDIT_FIXTURE`'s trigger recorded (empty: nothing changed `items`).
    #[allow(dead_code)]
    pub fn items_audit(&self) -> String {
        self.pg
            .psql_db(
                "orders",
                "select coalesce(string_agg(op, ','), '') from items_audit",
            )
            .unwrap()
            .trim()
            .to_string()
    }

    /// An RS256 token for `sub` in `groups`.
    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        self.issuer
            .mint(Algorithm::RS256, self.issuer.default_claims(sub, groups))
    }

    pub fn conninfo(&self) -> String {
        self.warden.conninfo("orders")
    }

    /// `tokio_postgres` config for target `orders` with `password`.
    pub fn pg_config(&self, password: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.warden.pg_port)
            .user("agent")
            .dbname("orders")
            .password(password)
            .connect_timeout(std::time::Duration::from_secs(10));
        config
    }

    pub async fn connect(&self, password: &str) -> tokio_postgres::Client {
        let (client, connection) = self
            .pg_config(password)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect through warden");
        tokio::spawn(connection);
        client
    }

    /// The id of the newest session.
    pub fn last_session_id(&self) -> String {
        self.warden.last_session_id().unwrap()
    }

    /// `warden replay ID` output once the session has ended and its recording is flushed.
    pub fn replay(&self, session_id: &str) -> String {
        self.events(session_id);
        self.warden.cli(&["replay", session_id]).unwrap()
    }

    /// Recorded events of a session as JSON values (waits for the `end` event).
    pub fn events(&self, session_id: &str) -> Vec<serde_json::Value> {
        self.warden.session_events(session_id).unwrap()
    }
}

/// Equal texts, or a failure naming the first line that differs.
pub fn assert_same(got: &str, want: &str) {
    if got == want {
        return;
    }
    let (got_lines, want_lines): (Vec<&str>, Vec<&str>) =
        (got.lines().collect(), want.lines().collect());
    let at = got_lines
        .iter()
        .zip(&want_lines)
        .position(|(a, b)| a != b)
        .unwrap_or(got_lines.len().min(want_lines.len()));
    panic!(
        "texts differ at line {} ({} vs {} lines):\n  got:  {:?}\n  want: {:?}",
        at + 1,
        got_lines.len(),
        want_lines.len(),
        got_lines.get(at),
        want_lines.get(at)
    );
}

/// A Java program from `tests/clients`, run from source with a Debian jar
/// (installed by scripts/setup.sh); the password goes in `PW`.
pub fn java(program: &str, jar: &str, password: &str) -> std::process::Command {
    let mut command = std::process::Command::new("java");
    command
        .arg("-cp")
        .arg(jar)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/clients")
                .join(program),
        )
        .env("PW", password);
    command
}
