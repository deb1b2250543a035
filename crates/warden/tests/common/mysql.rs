//! The MySQL end-to-end fixture: a MariaDB with database `orders`, an OIDC
//! issuer, and the `warden` binary with a MySQL listener in front.

use super::{APP_USER, DEFAULT_POLICIES as POLICIES, binary};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warden_test_support::mariadb::MariaDb;
use warden_test_support::oidc::{Algorithm, TestIssuer};
use warden_test_support::warden::{Warden, WardenConfig};

pub struct Env {
    pub db: MariaDb,
    /// The upstream `app` user's password (for direct comparisons).
    pub app_password: String,
    pub issuer: TestIssuer,
    pub warden: Warden,
    pub mysql_port: u16,
    /// The `[tls]` certificate, when Warden has one.
    pub cert: Option<PathBuf>,
    pub _certs: tempfile::TempDir,
}

/// A MariaDB with user `app` owning database `orders` and a table `items`.
pub fn upstream() -> (MariaDb, String) {
    warden_test_support::init();
    let db = MariaDb::start().expect("start mariadb");
    let password = format!("app-pw-{:016x}", rand::random::<u64>());
    db.sql("CREATE DATABASE orders").unwrap();
    db.create_user(APP_USER, &password, Some("orders.*"))
        .unwrap();
    db.sql_db(
        Some("orders"),
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, qty INT NOT NULL); \
         INSERT INTO items (name, qty) VALUES ('apple', 3), ('pear', 5), ('plum', 7);",
    )
    .unwrap();
    (db, password)
}

/// MariaDB, an OIDC issuer and Warden with a MySQL listener (and `[tls]` when asked).
pub fn start(tls: bool) -> Env {
    start_with(tls, POLICIES)
}

/// Like [`start`] with other `[[policy]]` tables (and more `[[target]]`s:
/// `@ADDRESS@` in `policies` becomes the MariaDB's address).
pub fn start_with(tls: bool, policies: &str) -> Env {
    let (db, app_password) = upstream();
    let issuer = TestIssuer::start().expect("start issuer");
    let certs = tempfile::tempdir().unwrap();
    let mysql_port = warden_test_support::free_port();
    let mut cert = None;
    let mut tls_section = String::new();
    if tls {
        let (cert_path, key_path) =
            warden_test_support::tls::self_signed(certs.path(), "warden").unwrap();
        tls_section = format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        );
        cert = Some(cert_path);
    }
    let body = format!(
        r#"
[[listener]]
protocol = "mysql"
listen = "127.0.0.1:{mysql_port}"

{tls_section}
[[identity.oidc]]
issuer = "{issuer}"
audience = "warden"

[[target]]
name = "orders"
protocol = "mysql"
address = "{address}"
credentials = {{ mode = "static", user = "{APP_USER}", password = "env:ORDERS_PASSWORD" }}

{policies}
"#,
        issuer = issuer.issuer_url(),
        address = db.address(),
        policies = policies.replace("@ADDRESS@", &db.address()),
    );
    let warden = Warden::start(
        binary(),
        WardenConfig {
            body,
            env: vec![("ORDERS_PASSWORD".into(), app_password.clone())],
            ..WardenConfig::default()
        },
    )
    .expect("start warden");
    wait_port(mysql_port, &warden);
    let app_password_copy = app_password;
    Env {
        db,
        app_password: app_password_copy,
        issuer,
        warden,
        mysql_port,
        cert,
        _certs: certs,
    }
}

/// `Warden::start` waits for the Postgres listener; the MySQL one binds alongside.
pub fn wait_port(port: u16, warden: &Warden) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the mysql listener did not open:\n{}",
            warden.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a client process did.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn output(command: &mut Command) -> Output {
    let out = command.stdin(Stdio::null()).output().expect("run a client");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Env {
    /// The names in `orders.items`, in id order, read directly upstream
    /// (`apple,pear,plum` when nothing changed them).
    #[allow(dead_code)]
    pub fn item_names(&self) -> String {
        self.db
            .sql_db(
                Some("orders"),
                "SELECT GROUP_CONCAT(name ORDER BY id) FROM items",
            )
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        self.issuer
            .mint(Algorithm::RS256, self.issuer.default_claims(sub, groups))
    }

    /// `mariadb` against Warden's MySQL listener, database `orders`, batch mode
    /// without column names; `extra` goes before `-e SQL`.
    pub fn mariadb(&self, user: &str, password: &str, extra: &[&str], sql: &str) -> Output {
        output(
            Command::new("mariadb")
                .arg("--no-defaults")
                .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
                .arg(self.mysql_port.to_string())
                .args(["-u", user, "-D", "orders", "--connect-timeout=10"])
                .args(["--batch", "--skip-column-names"])
                .args(extra)
                .args(["-e", sql])
                .env("MYSQL_PWD", password),
        )
    }

    /// `mariadb` reading `script` from stdin (batch mode, like a piped file).
    pub fn mariadb_stdin(
        &self,
        user: &str,
        password: &str,
        extra: &[&str],
        script: &str,
    ) -> Output {
        let mut args = vec!["-D", "orders", "--connect-timeout=10"];
        args.extend_from_slice(extra);
        mariadb_piped(self.mysql_port, user, password, &args, script)
    }

    /// The id of the newest session.
    pub fn last_session_id(&self) -> String {
        self.warden.last_session_id().unwrap()
    }

    /// Recorded events of a session (waits for its `end` event).
    pub fn events(&self, session_id: &str) -> Vec<serde_json::Value> {
        self.warden.session_events(session_id).unwrap()
    }
}

/// Output lines without the CLI's own warnings (MariaDB's client prints
/// "option '--enable-cleartext-plugin' is obsolete" on stdout: it always
/// allows the cleartext plugin).
pub fn rows(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| !line.starts_with("WARNING: "))
        .collect()
}

/// The key id part (`wdn_<16 hex>`) of an access key: the MySQL user name.
/// A mysql_async connection through Warden with an access key, database `orders`.
pub async fn key_conn(port: u16, key: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(key_opts(port, key)).await.unwrap()
}

/// Like [`key_conn`], for tests that reconnect after Warden ended a
/// session: a refusal with 1429 ("try again later", Warden could not finish
/// its session-start reads upstream) is retried twice, as a client would.
/// Seen about once in 15 runs of the differential tests: the upstream
/// closed a just-opened connection (cause not found yet).
#[allow(dead_code)]
pub async fn key_conn_retrying(port: u16, key: &str) -> mysql_async::Conn {
    for _ in 0..2 {
        match mysql_async::Conn::new(key_opts(port, key)).await {
            Ok(conn) => return conn,
            Err(mysql_async::Error::Server(error)) if error.code == 1429 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    key_conn(port, key).await
}

pub fn key_opts(port: u16, key: &str) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(key_id(key).to_string()))
        .pass(Some(key.to_string()))
        .db_name(Some("orders"))
}

pub fn key_id(key: &str) -> &str {
    assert!(key.starts_with("wdn_") && key.len() > 20, "a key: {key}");
    &key[..20]
}

/// `mariadb` against `port` as `user`, reading `script` on stdin.
pub fn mariadb_piped(port: u16, user: &str, password: &str, args: &[&str], script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("mariadb")
        .arg("--no-defaults")
        .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .args(["-u", user])
        .args(args)
        .env("MYSQL_PWD", password)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mariadb");
    // The CLI reads all of stdin before it exits; closing it ends the script.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
