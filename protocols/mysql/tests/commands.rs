//! The command phase over raw TCP and real clients, against a real MariaDB:
//! every command Warden handles itself, hostile command packets, native
//! password access keys, LOAD DATA LOCAL INFILE, and ed25519 upstream users.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use warden_core::events::EventKind;
use warden_test_support::mariadb::MariaDb;

struct Db {
    db: MariaDb,
    database: String,
    user: String,
    password: String,
}

fn mariadb() -> Db {
    warden_test_support::init();
    let db = start_mariadb();
    let s = format!("{:08x}", rand::random::<u32>());
    let database = format!("shop_{s}");
    let user = format!("app_{s}");
    let password = format!("pw-{s}");
    db.sql(&format!("create database {database}")).unwrap();
    db.create_user(&user, &password, Some(&format!("{database}.*")))
        .unwrap();
    db.sql(&format!(
        "create table {database}.items (id int primary key, name varchar(50)); \
         insert into {database}.items values (1, 'apple'), (2, 'pear');"
    ))
    .unwrap();
    Db {
        db,
        database,
        user,
        password,
    }
}

fn options(db: &Db) -> Options {
    Options::new(db.db.address(), &db.database, &db.user, &db.password)
}

#[tokio::test]
async fn commands_warden_handles_and_hostile_command_packets() {
    let db = mariadb();
    let mut opts = options(&db);
    opts.max_message_size = 1 << 20;
    let h = Harness::start(opts).await;

    let mut raw = Raw::login(h.addr, TOKEN).await;
    // COM_PING, COM_STATISTICS.
    assert_eq!(raw.command(&[0x0e]).await[0], 0x00);
    let stats = raw.command(&[0x09]).await;
    assert!(
        stats.starts_with(b"Uptime"),
        "{}",
        String::from_utf8_lossy(&stats)
    );
    // An empty command: an error, and the session goes on.
    assert_eq!(err_code(&raw.command(&[]).await), Some(1835));
    // A command Warden does not relay (COM_SHUTDOWN): refused, session goes on.
    assert_eq!(err_code(&raw.command(&[0x08]).await), Some(1047));
    // COM_INIT_DB: the target's name maps to its database; another target is refused.
    let mut init = vec![0x02];
    init.extend_from_slice(TARGET.as_bytes());
    assert_eq!(raw.command(&init).await[0], 0x00);
    let refused = raw.command(b"\x02other").await;
    assert_eq!(err_code(&refused), Some(1044), "{}", err_message(&refused));
    // COM_FIELD_LIST: column definitions then a terminator.
    raw.send(0, b"\x04items\0").await;
    let fields = raw.read_until_end().await;
    assert_eq!(fields.len(), 3, "two columns and a terminator");
    // A prepared-statement id Warden never saw.
    let unknown = raw.command(&[0x17, 9, 9, 9, 9, 0, 1, 0, 0, 0]).await;
    assert_eq!(err_code(&unknown), Some(1243));
    // A COM_QUERY with a multi-statement and a denied statement in it.
    let denied = raw.command(b"\x03select 1; delete from items").await;
    assert_eq!(err_code(&denied), Some(1142));
    assert!(err_message(&denied).contains("no deletes"));
    let result = {
        raw.send(0, b"\x03select name from items order by id").await;
        raw.read_until_end().await
    };
    assert_eq!(result.len(), 5, "count, column, two rows, terminator");
    // A command bigger than max_message_size: error, then closed.
    raw.send_bytes(&[0x00, 0x00, 0x20, 0x00, 0x03]).await;
    let (_, too_big) = raw.read().await.expect("error");
    assert_eq!(err_code(&too_big), Some(1153));
    assert!(raw.closed().await);

    // Out-of-order sequence id.
    let mut raw = Raw::login(h.addr, TOKEN).await;
    raw.send(3, b"\x03select 1").await;
    let (_, order) = raw.read().await.expect("error");
    assert_eq!(err_code(&order), Some(1156));
    assert!(raw.closed().await);

    // Truncated command: the client goes away mid-packet.
    let mut raw = Raw::login(h.addr, TOKEN).await;
    raw.send_bytes(&[50, 0, 0, 0, 0x03, b's']).await;
    raw.stream.shutdown().await.unwrap();
    assert!(raw.closed().await);

    // A malformed COM_CHANGE_USER (no database field) ends the session.
    let mut raw = Raw::login(h.addr, TOKEN).await;
    let change = raw.command(b"\x11root\0\0").await;
    assert_eq!(err_code(&change), Some(1835));
    assert!(raw.closed().await);

    // Warden keeps serving others.
    let (ok, out, err) = h
        .cli(TOKEN, TARGET, &["--skip-ssl"], "select count(*) from items")
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "2\n");
    let ended = h.wait_ended(5).await;
    let reasons: Vec<&str> = ended.iter().map(|(_, s)| s.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("exceeds the limit")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("sequence id")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"malformed COM_CHANGE_USER"),
        "{reasons:?}"
    );
    assert_eq!(h.count(&h.gateway.metrics.sessions_open), 0);
}

#[tokio::test]
async fn access_key_with_native_password() {
    let db = mariadb();
    let mut opts = options(&db);
    opts.native = true;
    let h = Harness::start(opts).await;
    let login = |user: &str, pass: &str| {
        mysql_async::Opts::from(
            mysql_async::OptsBuilder::default()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(h.port())
                .user(Some(user))
                .pass(Some(pass))
                .db_name(Some(TARGET)),
        )
    };
    // No cleartext plugin needed: the key is checked with mysql_native_password.
    let mut conn = mysql_async::Conn::new(login(KEY_USER, KEY_SECRET))
        .await
        .unwrap();
    let n: Option<i64> =
        mysql_async::prelude::Queryable::query_first(&mut conn, "select count(*) from items")
            .await
            .unwrap();
    assert_eq!(n, Some(2));
    conn.disconnect().await.unwrap();
    let wrong = mysql_async::Conn::new(login(KEY_USER, "wdn_ci_wrong"))
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("1045"), "{wrong}");
    let started = h.wait_ended(1).await;
    assert_eq!(started.len(), 1);
    assert_eq!(h.count(&h.gateway.metrics.auth_failures), 1);
}

#[tokio::test]
async fn load_data_local_infile_allowed_by_policy_is_relayed() {
    let db = mariadb();
    let h = Harness::start(options(&db)).await;
    let secret = h.dir.path().join("agent-secret.txt");
    std::fs::write(&secret, "3\tloaded\n").unwrap();
    let (_, _, err) = h
        .cli(
            TOKEN,
            TARGET,
            &["--skip-ssl", "--local-infile=1"],
            &format!(
                "load data local infile '{}' into table items",
                secret.display()
            ),
        )
        .await;
    // Policy allows it (a write): the server's request for exactly that file
    // reaches the client and its rows land.
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        db.db
            .sql(&format!("select count(*) from {}.items", db.database))
            .unwrap()
            .trim(),
        "3"
    );
}

#[tokio::test]
async fn ed25519_upstream_user() {
    let db = mariadb();
    db.db.sql("install soname 'auth_ed25519'").unwrap();
    db.db
        .sql(&format!(
            "create user 'ed'@'%' identified via ed25519 using PASSWORD('ed-pw'); grant all on {}.* to 'ed'@'%'",
            db.database
        ))
        .unwrap();
    let opts = Options::new(db.db.address(), &db.database, "ed", "ed-pw");
    let h = Harness::start(opts).await;
    let (ok, out, err) = h
        .cli(TOKEN, TARGET, &["--skip-ssl"], "select current_user()")
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "ed@%\n");
    h.wait_ended(1).await;
    let start = h.events().into_iter().find_map(|(_, e)| match e {
        EventKind::Start { upstream_user, .. } => Some(upstream_user),
        _ => None,
    });
    assert_eq!(start.as_deref(), Some("ed"));
}

#[tokio::test]
async fn old_eof_framing_client_gets_eof_packets() {
    let db = mariadb();
    let h = Harness::start(options(&db)).await;
    // A client without CLIENT_DEPRECATE_EOF: Warden asks the upstream for the same.
    let mut raw = Raw::login_with(h.addr, TOKEN, RAW_CAPS & !0x0100_0000).await;
    raw.send(0, b"\x03select name from items order by id").await;
    let mut packets = Vec::new();
    for _ in 0..6 {
        packets.push(raw.read().await.expect("a packet").1);
    }
    assert_eq!(packets[0], [1], "one column");
    assert_eq!(packets[2][0], 0xFE, "EOF after the column definitions");
    assert_eq!(packets[2].len(), 5);
    assert_eq!(&packets[3][1..], b"apple");
    assert_eq!(&packets[4][1..], b"pear");
    assert_eq!(packets[5][0], 0xFE);
    assert_eq!(packets[5].len(), 5, "an old-style EOF ends the rows");
}

#[tokio::test]
async fn upstream_gone_mid_session_is_a_clear_error() {
    let db = mariadb();
    let h = Harness::start(options(&db)).await;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(h.port())
        .user(Some("agent"))
        .pass(Some(TOKEN))
        .db_name(Some(TARGET))
        .enable_cleartext_plugin(true);
    let mut conn = mysql_async::Conn::new(opts).await.unwrap();
    let id: Option<u64> =
        mysql_async::prelude::Queryable::query_first(&mut conn, "select connection_id()")
            .await
            .unwrap();
    db.db.sql(&format!("kill {}", id.unwrap())).unwrap();
    let error = mysql_async::prelude::Queryable::query_drop(&mut conn, "select 1")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&format!("target \"{TARGET}\"")), "{text}");
    let ended = h.wait_ended(1).await;
    assert!(
        ended[0].1.reason.starts_with("upstream"),
        "{}",
        ended[0].1.reason
    );
}
