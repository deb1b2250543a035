//! Real clients (the `mysql` CLI and `mysql_async`) through a real
//! `MysqlHandler` to a real MariaDB.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mysql_async::prelude::*;
use std::time::Duration;
use warden_core::events::EventKind;
use warden_core::request::StatementProtocol;
use warden_core::{Action, Operation};
use warden_test_support::mariadb::MariaDb;

/// A MariaDB (started for this test) with database `shop_*`, table
/// `items`, and user `app_*` who owns it.
struct Upstream {
    db: MariaDb,
    password: String,
}

/// A recorded statement: text, sub-protocol, tags, rows, error code.
type Recorded = (
    String,
    StatementProtocol,
    Vec<String>,
    Option<u64>,
    Option<String>,
);

/// A row of the `typed` table.
type TypedRow = (i32, i64, f64, String, Vec<u8>, String, Option<i32>);

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

impl Upstream {
    fn start() -> (Upstream, String, String) {
        warden_test_support::init();
        let db = start_mariadb();
        let s = suffix();
        let database = format!("shop_{s}");
        let user = format!("app_{s}");
        let password = format!("pw-{s}");
        db.sql(&format!("create database {database}")).unwrap();
        db.create_user(&user, &password, Some(&format!("{database}.*")))
            .unwrap();
        db.sql(&format!(
            "create table {database}.items (id int primary key auto_increment, name varchar(50) not null, qty int not null); \
             insert into {database}.items (name, qty) values ('apple', 3), ('pear', 5), ('plum', 7);"
        ))
        .unwrap();
        (Upstream { db, password }, database, user)
    }
}

async fn setup() -> (Harness, Upstream, String) {
    let (up, database, user) = Upstream::start();
    let options = Options::new(up.db.address(), &database, &user, &up.password);
    (Harness::start(options).await, up, database)
}

async fn setup_tls() -> (Harness, Upstream, String) {
    let (up, database, user) = Upstream::start();
    let mut options = Options::new(up.db.address(), &database, &user, &up.password);
    options.tls = true;
    (Harness::start(options).await, up, database)
}

fn pool_url(h: &Harness, token: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(h.port())
        .user(Some("agent"))
        .pass(Some(token))
        .db_name(Some(TARGET))
        .enable_cleartext_plugin(true)
        .into()
}

fn statements(h: &Harness) -> Vec<Recorded> {
    h.events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            EventKind::Statement {
                text,
                protocol,
                tags,
                rows,
                error_code,
                ..
            } => Some((text, protocol, tags, rows, error_code)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn cli_select_over_loopback_without_tls() {
    let (h, _up, _) = setup().await;
    let (ok, out, err) = h
        .cli(
            TOKEN,
            TARGET,
            &["--skip-ssl"],
            "select name, qty from items order by id",
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "apple\t3\npear\t5\nplum\t7\n");
    let ended = h.wait_ended(1).await;
    assert_eq!(ended[0].1.statements, 1);
    let events = h.events();
    assert!(matches!(
        &events[0].1,
        EventKind::Start {
            client_tls: false,
            ..
        }
    ));
    assert!(matches!(events.last().unwrap().1, EventKind::End { .. }));
    let recorded = statements(&h);
    let ours = recorded
        .iter()
        .find(|s| s.0 == "select name, qty from items order by id")
        .expect("statement recorded");
    assert_eq!(ours.1, StatementProtocol::Simple);
    assert_eq!(ours.2, vec!["RESULT 3"]);
    assert_eq!(ours.3, Some(3));
    assert!(h.events().iter().any(|(_, e)| matches!(
        e,
        EventKind::Decision {
            action: Action::Allow,
            operation: Operation::Read,
            ..
        }
    )));
    assert!(h.count(&h.gateway.metrics.bytes_to_clients) > 0);
    assert_eq!(h.count(&h.gateway.metrics.sessions_open), 0);
}

#[tokio::test]
async fn cli_over_tls_with_verified_certificate() {
    let (h, _up, _) = setup_tls().await;
    let ca = format!("--ssl-ca={}", h.cert.display());
    let (ok, out, err) = h
        .cli(
            TOKEN,
            TARGET,
            &[&ca, "--ssl-verify-server-cert"],
            "select count(*) from items",
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "3\n");
    h.wait_ended(1).await;
    let started = h.log.started.lock().unwrap().clone();
    assert!(started[0].client_tls);
}

#[tokio::test]
async fn multi_statement_with_several_result_sets() {
    let (h, _up, _) = setup().await;
    let (ok, out, err) = h
        .cli(
            TOKEN,
            TARGET,
            // One COM_QUERY with four statements (`;` is not the CLI's delimiter).
            &["--skip-ssl", "--delimiter=$$"],
            "select 1; select name from items where qty > 4 order by id; update items set qty = qty where id = 1; select 'end'",
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "1\npear\nplum\nend\n");
    h.wait_ended(1).await;
    let recorded = statements(&h);
    let multi = recorded
        .iter()
        .find(|s| s.0.starts_with("select 1;"))
        .unwrap();
    assert_eq!(multi.2, vec!["RESULT 1", "RESULT 2", "OK 0", "RESULT 1"]);
}

#[tokio::test]
async fn empty_first_column_does_not_desync_framing() {
    let (h, _up, _) = setup().await;
    let (ok, out, err) = h
        .cli(
            TOKEN,
            TARGET,
            &["--skip-ssl", "--delimiter=$$"],
            "select '', 'marker'; show schemas;",
        )
        .await;
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("\tmarker"));
    assert!(out.lines().any(|l| l == "information_schema"), "{out}");
    h.wait_ended(1).await;
    let recorded = statements(&h);
    assert_eq!(recorded[0].0, "select '', 'marker'; show schemas;");
    assert_eq!(recorded[0].2[0], "RESULT 1");
    assert_eq!(recorded[0].2.len(), 2);
}

#[tokio::test]
async fn denied_delete_then_select_in_one_session() {
    let (h, _up, _) = setup().await;
    let (_, out, err) = h
        .cli_script(
            TOKEN,
            &["--skip-ssl", "--force"],
            "delete from items;\nselect count(*) from items;\nkill 999999;\nselect 'after';\n",
        )
        .await;
    assert_eq!(out, "3\nafter\n", "{err}");
    assert!(err.contains("ERROR 1142"), "{err}");
    assert!(err.contains("no deletes"), "{err}");
    assert!(err.contains("ERROR 1227"), "{err}");
    assert!(err.contains("no admin"), "{err}");
    h.wait_ended(1).await;
    assert_eq!(h.count(&h.gateway.metrics.statements_denied), 2);
    let recorded = statements(&h);
    let delete = recorded
        .iter()
        .find(|s| s.0 == "delete from items")
        .unwrap();
    assert_eq!(delete.4.as_deref(), Some("1142"));
    assert!(h.events().iter().any(|(_, e)| matches!(e, EventKind::Decision { action: Action::Deny, rule: Some(rule), .. } if rule == "no deletes")));
}

#[tokio::test]
async fn wrong_token_and_unknown_target() {
    let (h, _up, _) = setup().await;
    let (ok, _, err) = h.cli("wrong", TARGET, &["--skip-ssl"], "select 1").await;
    assert!(!ok);
    assert!(err.contains("ERROR 1045"), "{err}");
    assert!(err.contains(warden_mysql::ACCESS_DENIED), "{err}");
    let (ok, _, err_unknown) = h.cli(TOKEN, "nope", &["--skip-ssl"], "select 1").await;
    assert!(!ok);
    assert!(
        err_unknown.contains(warden_mysql::ACCESS_DENIED),
        "{err_unknown}"
    );
}

#[tokio::test]
async fn upstream_down_names_the_target() {
    let port = warden_test_support::free_port();
    let options = Options::new(format!("127.0.0.1:{port}"), "shop", "app", "pw");
    let h = Harness::start(options).await;
    let (ok, _, err) = h.cli(TOKEN, TARGET, &["--skip-ssl"], "select 1").await;
    assert!(!ok);
    assert!(err.contains(&format!("target \"{TARGET}\"")), "{err}");
    assert_eq!(h.count(&h.gateway.metrics.upstream_failures), 1);
}

#[tokio::test]
async fn mysql_async_prepared_statements_and_binary_rows() {
    let (h, up, database) = setup().await;
    up.db.sql(&format!(
        "create table {database}.typed (id int primary key, n bigint, d double, t varchar(20), b blob, dt datetime(3), nul int)"
    ))
    .unwrap();
    let pool = mysql_async::Pool::new(pool_url(&h, TOKEN));
    let mut conn = pool.get_conn().await.unwrap();
    let insert = conn
        .prep("insert into typed (id, n, d, t, b, dt, nul) values (?, ?, ?, ?, ?, ?, ?)")
        .await
        .unwrap();
    for i in 0..3i32 {
        conn.exec_drop(
            &insert,
            (
                i,
                i64::from(i) * 1_000_000_000_000,
                f64::from(i) / 4.0,
                format!("row {i}"),
                vec![i as u8, 0, 255],
                "2024-01-02 03:04:05.678",
                None::<i32>,
            ),
        )
        .await
        .unwrap();
    }
    let rows: Vec<TypedRow> = conn
        .exec(
            "select id, n, d, t, b, cast(dt as char), nul from typed where id >= ? order by id",
            (1,),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1],
        (
            2,
            2_000_000_000_000,
            0.5,
            "row 2".into(),
            vec![2, 0, 255],
            "2024-01-02 03:04:05.678".into(),
            None
        )
    );
    // A denied prepare, then the connection still works.
    let denied = conn.prep("delete from typed").await.unwrap_err();
    assert!(denied.to_string().contains("1142"), "{denied}");
    let count: Option<i64> = conn
        .exec_first("select count(*) from typed", ())
        .await
        .unwrap();
    assert_eq!(count, Some(3));
    conn.close(insert).await.unwrap();
    conn.reset().await.unwrap();
    let ping: Option<i32> = conn.query_first("select 7").await.unwrap();
    assert_eq!(ping, Some(7));
    conn.ping().await.unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
    h.wait_ended(1).await;
    let recorded = statements(&h);
    let executions: Vec<_> = recorded
        .iter()
        .filter(|s| s.1 == StatementProtocol::Extended && s.0.starts_with("insert into typed"))
        .collect();
    assert_eq!(executions.len(), 3);
    assert!(executions.iter().all(|s| s.2 == vec!["OK 1"]));
}

#[tokio::test]
async fn blob_over_16_mib_through_send_long_data() {
    let (h, up, database) = setup().await;
    up.db.sql(&format!(
        "set global max_allowed_packet = 67108864; create table {database}.blobs (id int primary key, data longblob)"
    ))
    .unwrap();
    let pool = mysql_async::Pool::new(pool_url(&h, TOKEN));
    let mut conn = pool.get_conn().await.unwrap();
    let size = (16 << 20) + 12_345;
    let blob: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    conn.exec_drop(
        "insert into blobs (id, data) values (?, ?)",
        (1, blob.clone()),
    )
    .await
    .unwrap();
    let length: Option<i64> = conn
        .query_first("select length(data) from blobs where id = 1")
        .await
        .unwrap();
    assert_eq!(length, Some(size as i64));
    let back: Option<Vec<u8>> = conn
        .exec_first("select data from blobs where id = ?", (1,))
        .await
        .unwrap();
    assert!(
        back.as_deref() == Some(blob.as_slice()),
        "the blob came back changed"
    );
    let text: Option<Vec<u8>> = conn.query_first("select data from blobs").await.unwrap();
    assert!(text.as_deref() == Some(blob.as_slice()));
    drop(conn);
    pool.disconnect().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_sessions_with_an_error() {
    let (h, _up, _) = setup().await;
    let pool = mysql_async::Pool::new(pool_url(&h, TOKEN));
    let mut conn = pool.get_conn().await.unwrap();
    let one: Option<i32> = conn.query_first("select 1").await.unwrap();
    assert_eq!(one, Some(1));
    h.gateway.shutdown.terminate.cancel();
    let ended = h.wait_ended(1).await;
    assert_eq!(ended[0].1.reason, "shutdown");
    assert!(conn.query_first::<i32, _>("select 1").await.is_err());
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(5), pool.disconnect()).await;
}
