//! Ephemeral users against a real MariaDB started by each test.
#![allow(clippy::unwrap_used)]

mod ephemeral_common;

use ephemeral_common::{Fixture, eventually, grant, session, target};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use secrecy::ExposeSecret;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use warden_core::config::{Protocol, TargetConfig};
use warden_core::engines::CredentialSource;
use warden_core::leases::{LeaseRecord, LeaseStore};
use warden_test_support::mariadb::MariaDb;

const ADMIN_PASSWORD: &str = "admin-pw-7";

/// A server with database `shop` (`orders` readable through role
/// `orders_read`, `items`, `secrets`) and an admin that is not root: it may
/// create users, grant that role and SELECT on `shop`, see and kill
/// connections, and read `mysql.user` for the sweeper.
fn server() -> MariaDb {
    let db = MariaDb::start().unwrap();
    db.sql(&format!(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.orders (id INT, item TEXT); INSERT INTO shop.orders VALUES (1, 'book'); \
         CREATE TABLE shop.items (id INT); INSERT INTO shop.items VALUES (7); \
         CREATE TABLE shop.secrets (x INT); \
         CREATE ROLE orders_read; GRANT SELECT ON shop.orders TO orders_read; \
         CREATE USER 'warden_admin'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}'; \
         GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO 'warden_admin'@'%'; \
         GRANT SELECT ON shop.* TO 'warden_admin'@'%' WITH GRANT OPTION; \
         GRANT SELECT ON mysql.user TO 'warden_admin'@'%'; \
         GRANT orders_read TO 'warden_admin'@'%' WITH ADMIN OPTION;"
    ))
    .unwrap();
    db
}

fn my_target(db: &MariaDb, grants: &str) -> TargetConfig {
    target(&format!(
        "name = \"shop\"\nprotocol = \"mysql\"\naddress = \"{}\"\n\
         credentials = {{ mode = \"ephemeral\", admin_user = \"warden_admin\", admin_password = \"{ADMIN_PASSWORD}\", grant = [{grants}], ttl = \"10m\", max_ttl = \"1h\" }}",
        db.address()
    ))
}

async fn connect(db: &MariaDb, user: &str, password: &str) -> Result<Conn, mysql_async::Error> {
    let options = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(db.port())
        .user(Some(user))
        .pass(Some(password))
        .db_name(Some("shop"))
        .prefer_socket(false);
    Conn::new(options).await
}

fn user_count(db: &MariaDb, user: &str) -> String {
    db.sql(&format!(
        "SELECT COUNT(*) FROM mysql.user WHERE User = '{user}'"
    ))
    .unwrap()
    .trim()
    .to_string()
}

fn connections_of(db: &MariaDb, user: &str) -> String {
    db.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
    ))
    .unwrap()
    .trim()
    .to_string()
}

/// MySQL error code of a failed statement.
fn code(error: &mysql_async::Error) -> Option<u16> {
    match error {
        mysql_async::Error::Server(server) => Some(server.code),
        _ => None,
    }
}

#[tokio::test]
async fn user_has_exactly_the_grants_and_is_dropped_on_release() {
    let db = server();
    let fx = Fixture::new().await;
    let target = my_target(&db, "\"orders_read\", \"SELECT ON shop.items\"");
    let credential = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Mysql))
        .await
        .unwrap();
    let user = credential.user.clone();
    let lease = credential.lease.as_ref().unwrap();
    assert_eq!(user_count(&db, &user), "1");

    let mut conn = connect(&db, &user, credential.password.expose_secret())
        .await
        .unwrap();
    let item: Option<String> = conn.query_first("SELECT item FROM orders").await.unwrap();
    assert_eq!(item.as_deref(), Some("book"), "the default role is active");
    let id: Option<i32> = conn.query_first("SELECT id FROM items").await.unwrap();
    assert_eq!(id, Some(7));
    for denied in [
        "INSERT INTO orders VALUES (2, 'pen')",
        "SELECT * FROM secrets",
        "DELETE FROM items",
    ] {
        let error = conn.query_drop(denied).await.unwrap_err();
        assert!(
            matches!(code(&error), Some(1142) | Some(1143)),
            "{denied}: {error:?}"
        );
    }
    assert_eq!(connections_of(&db, &user), "1");

    lease.release().await;
    assert_eq!(user_count(&db, &user), "0");
    assert_eq!(connections_of(&db, &user), "0");
    assert!(
        conn.query_drop("SELECT 1").await.is_err(),
        "the user's connection was killed"
    );
    let record = fx.store.get_lease(lease.id()).await.unwrap().unwrap();
    assert_eq!(record.revoke_reason.as_deref(), Some("session ended"));
    assert_eq!(fx.audit.kinds(), vec!["lease.issued", "lease.revoked"]);
    assert!(
        !fx.audit
            .all_text()
            .contains(credential.password.expose_secret())
    );
}

#[tokio::test]
async fn a_hostile_grant_is_refused_before_anything_is_created() {
    let db = server();
    let fx = Fixture::new().await;
    let target = my_target(&db, "\"SELECT ON shop.*; DROP DATABASE shop; --\"");
    let error = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Mysql))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("grant"), "{error}");
    assert_eq!(db.sql("SHOW DATABASES LIKE 'shop'").unwrap().trim(), "shop");
    assert!(fx.store.list_leases(true).await.unwrap().is_empty());
}

#[tokio::test]
async fn max_ttl_ends_the_lease_and_the_watcher_drops_the_user() {
    let db = server();
    let fx = Fixture::new().await;
    let mut target = my_target(&db, "\"orders_read\"");
    if let warden_core::config::CredentialsConfig::Ephemeral(settings) = &mut target.credentials {
        settings.ttl = Duration::from_secs(2);
        settings.max_ttl = Duration::from_secs(4);
    }
    let started = Instant::now();
    let credential = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Mysql))
        .await
        .unwrap();
    let lease = credential.lease.as_ref().unwrap();
    let mut conn = connect(&db, &credential.user, credential.password.expose_secret())
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(30), lease.ended())
        .await
        .expect("ended() resolves after max_ttl");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "ended before max_ttl"
    );
    assert!(text.contains("max_ttl of 4s"), "{text}");
    assert!(fx.audit.kinds().iter().any(|k| k == "lease.renewed"));
    let user = credential.user.clone();
    eventually("the watcher drops the user", || {
        user_count(&db, &user) == "0"
    })
    .await;
    assert!(conn.query_drop("SELECT 1").await.is_err());
    lease.release().await;
}

#[tokio::test]
async fn the_sweeper_drops_users_left_by_a_dead_process() {
    let db = server();
    let fx = Fixture::new().await;
    let target = my_target(&db, "\"orders_read\"");
    db.create_user("warden_0000000000aa", "pw-a", Some("shop.*"))
        .unwrap();
    db.create_user("warden_keepme", "pw-k", None).unwrap();
    let now = OffsetDateTime::now_utc();
    let dead = LeaseRecord {
        id: uuid::Uuid::now_v7().to_string(),
        session_id: uuid::Uuid::now_v7().to_string(),
        target: "shop".into(),
        protocol: Protocol::Mysql,
        upstream_user: "warden_0000000000aa".into(),
        created_at: now,
        expires_at: now + time::Duration::minutes(10),
        max_expires_at: now + time::Duration::hours(1),
        revoked_at: None,
        revoke_reason: None,
    };
    fx.store.insert_lease(&dead).await.unwrap();
    let mut orphan = connect(&db, "warden_0000000000aa", "pw-a").await.unwrap();
    let live = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Mysql))
        .await
        .unwrap();

    // Periodic: the lease has not expired (another node could hold it).
    let report = fx.issuer.sweep(std::slice::from_ref(&target), false).await;
    assert_eq!(report.dropped, 0, "{report:?}");
    // Start-up: every unrevoked lease of a previous run is dead.
    let report = fx.issuer.sweep(std::slice::from_ref(&target), true).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.dropped, report.leases_closed), (1, 1), "{report:?}");
    assert_eq!(user_count(&db, "warden_0000000000aa"), "0");
    assert!(orphan.query_drop("SELECT 1").await.is_err());
    assert_eq!(user_count(&db, "warden_keepme"), "1");
    assert_eq!(user_count(&db, "warden_admin"), "1");
    assert_eq!(user_count(&db, &live.user), "1");
    let closed = fx.store.get_lease(&dead.id).await.unwrap().unwrap();
    assert_eq!(closed.revoke_reason.as_deref(), Some("swept"));
    assert!(fx.audit.kinds().iter().any(|k| k == "lease.swept"));
    live.lease.as_ref().unwrap().release().await;
    assert_eq!(user_count(&db, &live.user), "0");
}
