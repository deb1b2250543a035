//! The read-only oracle against a real PostgreSQL: every corpus statement
//! classified `read` must run in a READ ONLY transaction without SQLSTATE
//! 25006, and every statement classified `write` must fail there with 25006.
//! ddl/admin/unknown statements and `oracle_skip` cases are counted, not run.

mod common;

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use warden_core::Operation;
use warden_core::request::Dialect;
use warden_policy::classify;
use warden_test_support::postgres::Postgres;

const FIXTURE: &str = "
CREATE TABLE t (a int, b text);
CREATE TABLE orders (id int, total numeric);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id int, amount numeric);
CREATE SEQUENCE s;
CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (1, ''b'') RETURNING 1';
INSERT INTO t VALUES (1, 'x');
INSERT INTO orders VALUES (1, 10);
INSERT INTO billing.invoices VALUES (1, 10);
";

/// `COPY … TO STDOUT` needs the copy-out sub-protocol.
async fn copy_out(client: &tokio_postgres::Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    use futures::StreamExt;
    let stream = client.copy_out(sql).await?;
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        chunk?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_runs_and_write_fails_in_a_read_only_transaction() {
    warden_test_support::init();
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.psql(FIXTURE).expect("fixture");
    let url = pg.url("postgres");

    let (mut reads, mut writes, mut skipped, mut other_errors) = (0, 0, 0, Vec::new());
    let mut failures = Vec::new();
    for case in common::load()
        .into_iter()
        .filter(|c| c.dialect() == Dialect::Postgres)
    {
        let operation = classify(Dialect::Postgres, &case.sql).operation;
        if case.oracle_skip.is_some() || !matches!(operation, Operation::Read | Operation::Write) {
            skipped += 1;
            continue;
        }
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
        let driver = tokio::spawn(connection);
        client
            .batch_execute("BEGIN READ ONLY")
            .await
            .expect("begin");
        let result = if operation == Operation::Read
            && case
                .sql
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("COPY")
        {
            copy_out(&client, &case.sql).await
        } else {
            client.batch_execute(&case.sql).await
        };
        let _ = client.batch_execute("ROLLBACK").await;
        drop(client);
        let _ = driver.await;

        let code = result.as_ref().err().and_then(|e| e.code().cloned());
        let read_only_error = code.as_ref() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION);
        match operation {
            Operation::Read => {
                reads += 1;
                if read_only_error {
                    failures.push(format!(
                        "classified read but PostgreSQL refused it as a write: {}",
                        case.sql
                    ));
                } else if let Err(error) = &result {
                    other_errors.push(format!("{} -> {error:?}", case.sql));
                }
            }
            _ => {
                writes += 1;
                if !read_only_error {
                    failures.push(format!(
                        "classified write but did not fail with 25006 ({:?}): {}",
                        result.err().map(|e| e.to_string()),
                        case.sql
                    ));
                }
            }
        }
    }
    println!(
        "postgres oracle: {reads} reads, {writes} writes checked; {skipped} skipped (ddl/admin/unknown or oracle_skip)"
    );
    for error in &other_errors {
        println!("  read with a non-read-only error (allowed): {error}");
    }
    assert!(reads >= 20 && writes >= 15, "too few statements checked");
    // Reads are expected to run: only a few (named) may fail for other reasons.
    assert!(other_errors.len() <= 3, "reads failing: {other_errors:#?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
