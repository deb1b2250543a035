//! A statement prepared under one policy is judged again at execution after
//! a reload: rules that stop allowing writes stop a prepared DELETE too, on
//! both protocols, and the upstream keeps its rows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

mod common;

const WRITE_ALLOWED: &str = "allow = [\"read\", \"write\", \"ddl\"]\n";
const READ_ONLY: &str = "allow = [\"read\"]\n";

/// Rewrites the agents' rule to read-only and waits until Warden has
/// reloaded it.
fn revoke_writes(warden: &warden_test_support::warden::Warden) {
    let path = warden.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    assert!(original.contains(WRITE_ALLOWED), "{original}");
    let reloads = warden.logs().matches("policy reloaded").count();
    std::fs::write(&path, original.replacen(WRITE_ALLOWED, READ_ONLY, 1)).unwrap();
    for _ in 0..200 {
        if warden.logs().matches("policy reloaded").count() > reloads {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the policy was not reloaded:\n{}", warden.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prepared_statement_is_judged_again_after_a_reload() {
    let env = common::start();
    let key = env.warden.create_key("preparer", &["agents"]).unwrap();
    let (client, connection) = env
        .pg_config(&key)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let delete = client
        .prepare("DELETE FROM items WHERE name = $1")
        .await
        .unwrap();
    let removed = client.execute(&delete, &[&"nothing"]).await.unwrap();
    assert_eq!(removed, 0);

    let warden = &env.warden;
    tokio::task::block_in_place(|| revoke_writes(warden));
    let error = client
        .execute(&delete, &[&"plum"])
        .await
        .expect_err("a write after the reload");
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501", "{db:?}");
    assert!(db.message().contains("write"), "{}", db.message());
    // The session goes on, and the upstream kept the row.
    let rows = client
        .query_one("SELECT count(*) FROM items WHERE name = 'plum'", &[])
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_prepared_statement_is_judged_again_after_a_reload() {
    use mysql_async::prelude::Queryable;
    let env = common::mysql::start(false);
    let key = env.warden.create_key("preparer", &["agents"]).unwrap();
    let mut conn = common::mysql::key_conn(env.mysql_port, &key).await;
    let delete = conn.prep("DELETE FROM items WHERE name = ?").await.unwrap();
    conn.exec_drop(&delete, ("nothing",)).await.unwrap();

    let warden = &env.warden;
    tokio::task::block_in_place(|| revoke_writes(warden));
    let error = conn
        .exec_drop(&delete, ("plum",))
        .await
        .expect_err("a write after the reload");
    match error {
        mysql_async::Error::Server(server) => {
            assert_eq!(server.code, 1142, "{server:?}");
            assert!(server.message.contains("write"), "{}", server.message);
        }
        other => panic!("not a server error: {other}"),
    }
    // The session goes on, and the upstream kept the row.
    let left: Option<i64> = conn
        .query_first("SELECT count(*) FROM items WHERE name = 'plum'")
        .await
        .unwrap();
    assert_eq!(left, Some(1));
    let direct = env
        .db
        .sql_db(
            Some("orders"),
            "SELECT count(*) FROM items WHERE name = 'plum'",
        )
        .unwrap();
    assert_eq!(direct.trim(), "1");
}
