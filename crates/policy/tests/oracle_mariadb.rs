//! The read-only oracle against a real MariaDB: every corpus statement
//! classified `read` must run inside START TRANSACTION READ ONLY without
//! error 1792 (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION), and every statement
//! classified `write` must fail there with 1792.

mod common;

use mysql_async::prelude::Queryable;
use warden_core::Operation;
use warden_core::request::Dialect;
use warden_policy::classify;
use warden_test_support::mariadb::MariaDb;

const ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: u16 = 1792;

const FIXTURE: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE DATABASE billing",
    "CREATE TABLE app.t (a INT, b TEXT)",
    "CREATE TABLE app.orders (id INT, total DECIMAL(10,2))",
    "CREATE TABLE billing.invoices (id INT, amount DECIMAL(10,2))",
    "CREATE FUNCTION app.bump() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO app.t VALUES (1, 'b'); RETURN 1; END",
    "INSERT INTO app.t VALUES (1, 'x')",
    "INSERT INTO app.orders VALUES (1, 10)",
    "INSERT INTO billing.invoices VALUES (1, 10)",
];

async fn connect(db: &MariaDb, database: &str) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(db.port())
        .user(Some("root"))
        .pass(Some(db.root_password()))
        .db_name(Some(database));
    mysql_async::Conn::new(opts)
        .await
        .expect("connect to MariaDB")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_runs_and_write_fails_in_a_read_only_transaction() {
    warden_test_support::init();
    let db = MariaDb::start().expect("start MariaDB");
    let mut admin = connect(&db, "mysql").await;
    for statement in FIXTURE {
        admin.query_drop(*statement).await.expect(statement);
    }
    drop(admin);

    let (mut reads, mut writes, mut skipped, mut other_errors) = (0, 0, 0, Vec::new());
    let mut failures = Vec::new();
    for case in common::load()
        .into_iter()
        .filter(|c| c.dialect() == Dialect::Mysql)
    {
        let operation = classify(Dialect::Mysql, &case.sql).operation;
        if case.oracle_skip.is_some() || !matches!(operation, Operation::Read | Operation::Write) {
            skipped += 1;
            continue;
        }
        let mut conn = connect(&db, "app").await;
        conn.query_drop("START TRANSACTION READ ONLY")
            .await
            .expect("start transaction");
        let result = conn.query_drop(case.sql.as_str()).await;
        let _ = conn.query_drop("ROLLBACK").await;
        let _ = conn.disconnect().await;

        let read_only_error = matches!(
            &result,
            Err(mysql_async::Error::Server(e)) if e.code == ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        );
        match operation {
            Operation::Read => {
                reads += 1;
                if read_only_error {
                    failures.push(format!(
                        "classified read but MariaDB refused it as a write: {}",
                        case.sql
                    ));
                } else if let Err(error) = &result {
                    other_errors.push(format!("{} -> {error}", case.sql));
                }
            }
            _ => {
                writes += 1;
                if !read_only_error {
                    failures.push(format!(
                        "classified write but did not fail with 1792 ({:?}): {}",
                        result.err().map(|e| e.to_string()),
                        case.sql
                    ));
                }
            }
        }
    }
    println!(
        "mariadb oracle: {reads} reads, {writes} writes checked; {skipped} skipped (ddl/admin/unknown or oracle_skip)"
    );
    for error in &other_errors {
        println!("  read with a non-read-only error (allowed): {error}");
    }
    assert!(reads >= 10 && writes >= 8, "too few statements checked");
    assert!(other_errors.len() <= 3, "reads failing: {other_errors:#?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
