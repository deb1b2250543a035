//! MariaDB's own test suite through Warden: `mariadb-test-run --extern` runs
//! a set of `main` tests against a server started with the suite's options,
//! once direct and once through Warden (an identity every operation is
//! allowed to, so what is compared is the wire: results, errors, warnings,
//! multi-statement texts, prepared statements). Both runs must pass.
//!
//! Tests of the set that fail through Warden on purpose, and why:
//! `main.bool` and `main.type_float` send `SET sql_mode=DEFAULT` and
//! `main.func_time` `SET NAMES DEFAULT` (the server's default is not known in
//! advance, so Warden refuses it: docs/security.md); `main.func_like` sends
//! koi8r bytes after `SET NAMES koi8r` (Warden reads statements as UTF-8).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use warden_test_support::mariadb::MariaDb;
use warden_test_support::warden::{Warden, WardenConfig};

mod common;

const MTR: &str = "/usr/share/mysql/mysql-test/mariadb-test-run";

/// `main` tests that pass against a server started with the options below
/// (with a login from localhost; some differ from 127.0.0.1).
const TESTS: &[&str] = &[
    "main.win",
    "main.func_concat",
    "main.func_if",
    "main.func_regexp",
    "main.limit",
    "main.null",
    "main.select_found",
];

/// What mariadb-test-run's own server configuration sets that these tests rely on.
const SERVER_OPTIONS: &[&str] = &[
    "--default-storage-engine=MyISAM",
    "--character-set-server=latin1",
    "--max-heap-table-size=1M",
    "--sort-buffer-size=256K",
    "--key-buffer-size=1M",
    "--log-bin-trust-function-creators=1",
    "--sql-mode=",
];

/// Runs the set against `port` as `user`; the names of the tests that passed.
fn mtr(vardir: &Path, port: u16, user: &str, password: &str) -> (Vec<String>, String) {
    assert!(
        Path::new(MTR).exists(),
        "{MTR} is missing: run scripts/setup.sh"
    );
    let out = Command::new(MTR)
        .current_dir(Path::new(MTR).parent().unwrap())
        .args(["--extern", "host=127.0.0.1"])
        .args(["--extern", &format!("port={port}")])
        .args(["--extern", &format!("user={user}")])
        .args(["--extern", &format!("password={password}")])
        .arg(format!("--vardir={}", vardir.display()))
        .args(["--force", "--nocheck-testcases", "--max-test-fail=0"])
        .args(TESTS)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let passed = text
        .lines()
        .filter(|line| line.contains("[ pass ]"))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    (passed, text)
}

#[test]
fn mariadb_test_run_main_tests_pass_through_warden_as_direct() {
    warden_test_support::init();
    let db = MariaDb::start_with(SERVER_OPTIONS).expect("start mariadb");
    db.sql("CREATE DATABASE test").unwrap();
    let scratch = tempfile::tempdir().unwrap();

    let (direct, log) = mtr(
        &scratch.path().join("direct"),
        db.port(),
        "root",
        db.root_password(),
    );
    // Some results depend on the login's host (DEFINER=root@127.0.0.1 here):
    // what matters is that Warden changes nothing, so the sets must match.
    assert!(direct.len() >= 4, "too few tests pass direct:\n{log}");

    let mysql_port = warden_test_support::free_port();
    let body = format!(
        r#"
[[listener]]
protocol = "mysql"
listen = "127.0.0.1:{mysql_port}"

[[target]]
name = "test"
protocol = "mysql"
address = "{address}"
database = "test"
databases = ["mysql"]
credentials = {{ mode = "static", user = "root", password = "env:ROOT_PASSWORD" }}

[[policy]]
name = "the suite runs everything"
subjects = ["group:mtr"]
targets = ["test"]
allow = ["read", "write", "ddl", "admin", "unknown"]
"#,
        address = db.address(),
    );
    let warden = Warden::start(
        common::binary(),
        WardenConfig {
            body,
            env: vec![("ROOT_PASSWORD".into(), db.root_password().to_string())],
            ..WardenConfig::default()
        },
    )
    .expect("start warden");
    common::mysql::wait_port(mysql_port, &warden);
    let key = warden.create_key("mtr", &["mtr"]).unwrap();
    // mariadb-test-run first connects without a database: the target rides
    // in the user name.
    let user = format!("{}@test", common::mysql::key_id(&key));
    let (through, log) = mtr(&scratch.path().join("warden"), mysql_port, &user, &key);
    assert_eq!(through, direct, "through Warden:\n{log}\n{}", warden.logs());
    eprintln!(
        "mariadb-test-run: {} of {} pass direct and through Warden: {direct:?}",
        direct.len(),
        TESTS.len()
    );
}
