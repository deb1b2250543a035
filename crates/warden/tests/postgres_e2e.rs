//! psql, tokio-postgres and psycopg through the real `warden` binary to a real
//! PostgreSQL: identity, injected credentials, relay features and recording.

#![allow(clippy::unwrap_used)]

mod common;

use common::APP_USER;
use std::io::Write;
use std::process::{Command, Stdio};
use warden_test_support::warden::psql;

/// The session the issue asks for: SELECT, \d, a transaction, COPY FROM STDIN
/// and a prepared statement — with an access key — then its replay.
#[test]
fn psql_session_with_access_key_is_relayed_and_recorded() {
    let env = common::start();
    let key = env.warden.create_key("bot", &["agents"]).unwrap();
    let script = env.warden.dir().join("session.sql");
    std::fs::write(
        &script,
        "SELECT current_user;\n\
         \\d\n\
         BEGIN;\n\
         INSERT INTO items (name, qty) VALUES ('fig', 11);\n\
         COMMIT;\n\
         COPY items (name, qty) FROM STDIN;\n\
         kiwi\t13\n\
         lime\t17\n\
         \\.\n\
         PREPARE by_name(text) AS SELECT qty FROM items WHERE name = $1;\n\
         EXECUTE by_name('kiwi');\n\
         SELECT count(*) AS total FROM items;\n\
         COPY (SELECT name FROM items WHERE qty = 17) TO STDOUT;\n",
    )
    .unwrap();
    let (ok, out, err) = psql(
        &env.conninfo(),
        &key,
        &["-v", "ON_ERROR_STOP=1", "-f", script.to_str().unwrap()],
    );
    assert!(ok, "psql failed: {err}\n{out}");
    assert!(
        out.contains(APP_USER),
        "current_user is the injected user: {out}"
    );
    assert!(out.contains("items"), "\\d lists the table: {out}");
    assert!(
        out.contains("INSERT 0 1") && out.contains("COMMIT"),
        "{out}"
    );
    assert!(out.contains("COPY 2"), "{out}");
    assert!(out.contains("13"), "prepared statement result: {out}");
    assert!(out.contains(" 6\n"), "3 seeded + fig + kiwi + lime: {out}");
    assert!(out.trim_end().ends_with("lime"), "COPY TO STDOUT: {out}");

    let id = env.last_session_id();
    let replay = env.replay(&id);
    for statement in [
        "SELECT current_user",
        "BEGIN",
        "INSERT INTO items",
        "COMMIT",
        "COPY items",
        "PREPARE by_name",
        "EXECUTE by_name",
        "SELECT count(*)",
    ] {
        assert!(
            replay.contains(statement),
            "replay lacks {statement}:\n{replay}"
        );
    }
    for outcome in ["INSERT 0 1", "COPY 2", "SELECT 1"] {
        assert!(
            replay.contains(outcome),
            "replay lacks outcome {outcome}:\n{replay}"
        );
    }
    let shown = env.warden.cli(&["sessions", "show", &id[..8]]).unwrap();
    assert!(
        shown.contains("key:bot") && shown.contains("orders"),
        "{shown}"
    );
}

#[test]
fn psql_with_oidc_token_sees_injected_user() {
    let env = common::start();
    let token = env.token("agent-7", &["agents"]);
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &["-At", "-c", "SELECT current_user, current_database()"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("{APP_USER}|orders"));
    let rows = env.warden.cli(&["sessions", "list", "--json"]).unwrap();
    assert!(rows.contains("agent-7"), "{rows}");
}

#[test]
fn real_oidc_provider_token_is_accepted() {
    use warden_test_support::oidc::{OidcClient, RealOidcProvider};
    let (pg, app_password) = common::upstream();
    let provider =
        RealOidcProvider::start_with("warden", vec![OidcClient::new("ci-agent", &["agents"])])
            .expect("start the node oidc-provider (scripts/setup.sh installs it)");
    let body = common::config_for_issuer(&pg, provider.issuer_url(), common::DEFAULT_POLICIES, "");
    let warden = warden_test_support::warden::Warden::start(
        common::binary(),
        warden_test_support::warden::WardenConfig {
            body,
            env: vec![("ORDERS_PASSWORD".into(), app_password)],
            ..Default::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = runtime.block_on(provider.token("ci-agent")).unwrap();
    let (ok, out, err) = psql(
        &warden.conninfo("orders"),
        &token,
        &["-At", "-c", "SELECT 42"],
    );
    assert!(ok, "{err}\n{}", warden.logs());
    assert_eq!(out.trim(), "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_extended_protocol_pipelining_copy_notify_and_cancel() {
    let env = common::start();
    let key = env.warden.create_key("driver", &["agents"]).unwrap();
    let client = env.connect(&key).await;

    // Extended protocol with parameters, a named prepared statement.
    let statement = client
        .prepare("SELECT name, qty FROM items WHERE qty > $1 ORDER BY qty")
        .await
        .unwrap();
    let rows = client.query(&statement, &[&4i32]).await.unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["pear", "plum"]);

    // Pipelining: several queries in flight at once on one connection.
    let futures: Vec<_> = (0..20)
        .map(|i| {
            let client = &client;
            async move {
                let row = client.query_one("SELECT $1::int * 2", &[&i]).await.unwrap();
                row.get::<_, i32>(0)
            }
        })
        .collect();
    let results = futures::future::join_all(futures).await;
    assert_eq!(results, (0..20).map(|i| i * 2).collect::<Vec<_>>());

    // COPY FROM STDIN and COPY TO STDOUT.
    use futures::SinkExt;
    let sink = client
        .copy_in("COPY items (name, qty) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"melon\t21\nquince\t23\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let count: i64 = client
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5);

    // An error mid-pipeline does not desynchronise the session.
    let error = client.query("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "22012");
    assert_eq!(
        client
            .query_one("SELECT 7", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );

    // LISTEN/NOTIFY across two sessions.
    let (listener, mut connection) = env
        .pg_config(&key)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures::StreamExt;
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    listener
        .batch_execute("LISTEN orders_events")
        .await
        .unwrap();
    client
        .batch_execute("NOTIFY orders_events, 'shipped'")
        .await
        .unwrap();
    let payload = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("notification within 10 s")
        .unwrap();
    assert_eq!(payload, "shipped");

    // Cancel: Warden maps its own key to the upstream's.
    let cancel = client.cancel_token();
    let sleeper = tokio::spawn({
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            cancel.cancel_query(tokio_postgres::NoTls).await
        }
    });
    let started = std::time::Instant::now();
    let error = client.query("SELECT pg_sleep(30)", &[]).await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "57014", "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(25));
    sleeper.await.unwrap().unwrap();
    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[test]
fn psycopg_extended_protocol_with_parameters() {
    let env = common::start();
    let key = env.warden.create_key("py", &["agents"]).unwrap();
    let script = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1], password=sys.argv[2]) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM items WHERE qty = %s", (5,), prepare=True)
        print(cur.fetchone()[0])
        cur.execute("INSERT INTO items (name, qty) VALUES (%s, %s) RETURNING id", ("py", 99), prepare=True)
        print("inserted", cur.fetchone()[0] > 0)
        cur.executemany("INSERT INTO items (name, qty) VALUES (%s, %s)", [("a", 1), ("b", 2)])
        cur.execute("SELECT count(*) FROM items")
        print("count", cur.fetchone()[0])
        cur.execute("SELECT current_user")
        print("user", cur.fetchone()[0])
"#;
    let mut child = Command::new(warden_test_support::tools::python3())
        .args(["-c", script, &env.conninfo(), &key])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().map(|mut s| s.flush());
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "psycopg failed: {}\n{out}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["pear", "inserted True", "count 6", "user app"]
    );
}

#[test]
fn metrics_and_health_are_served() {
    let env = common::start();
    let key = env.warden.create_key("m", &["agents"]).unwrap();
    let (ok, _, err) = psql(&env.conninfo(), &key, &["-c", "SELECT 1"]);
    assert!(ok, "{err}");
    let (ok, _, _) = psql(&env.conninfo(), "wdn_bogus_key", &["-c", "SELECT 1"]);
    assert!(!ok);
    let health = http_get(env.warden.admin_port, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(env.warden.admin_port, "/metrics");
    for name in [
        "warden_sessions_open",
        "warden_sessions_total",
        "warden_bytes_from_clients_total",
        "warden_statements_total",
        "warden_auth_failures_total 1",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
