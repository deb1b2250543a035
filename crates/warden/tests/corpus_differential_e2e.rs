//! Differential test driven by the policy corpus
//! (`crates/policy/tests/corpus.toml`): every statement there, of every
//! class, is mutated with quotes, backslashes, comments and executable
//! comments that would hide a write to `items` from a lexer that got the
//! server's rules wrong, and sent through Warden by an identity that may
//! write only to `scratch` (so no read-only wall upstream). An audit
//! trigger on `items` records any change that lands; one fails the test.

#![allow(clippy::unwrap_used)]

mod common;

const CORPUS: &str = include_str!("../../policy/tests/corpus.toml");

/// The corpus statements of one dialect.
fn corpus(dialect: &str) -> Vec<String> {
    let corpus: toml::Value = toml::from_str(CORPUS).unwrap();
    corpus["case"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|case| case["dialect"].as_str() == Some(dialect))
        .filter_map(|case| case["sql"].as_str().map(str::to_string))
        .collect()
}

/// Each way of wrapping `sql` so that `payload` looks like part of a string
/// or comment to a lexer with the wrong rules.
fn mutations(sql: &str, payload: &str, mysql: bool) -> Vec<String> {
    let mut out = vec![
        format!("{sql} ; {payload}"),
        format!("{sql} /* ' */ ; {payload}; -- '"),
        format!("{sql} /* /* */ ; {payload}; -- */"),
        format!("{sql} -- '\n; {payload}"),
        format!("{} ; {payload}; -- '", sql.replacen('\'', "'\\'", 1)),
        format!("{} ; {payload}; -- \"", sql.replacen('"', "\"\\\"", 1)),
    ];
    if mysql {
        out.extend([
            format!("{sql} /*!99999 ' */ ; {payload}; -- '"),
            format!("{sql} /*M!999999 /* */ ' */ ; {payload}; -- '"),
            format!("{sql} # '\n; {payload}"),
            format!("{sql} --\u{a0}'\n; {payload}"),
        ]);
    } else {
        out.extend([
            format!("{sql} ; select $$ ; {payload}; -- $$"),
            format!("{} ; {payload}; -- '", sql.replacen('\'', "E'\\'", 1)),
        ]);
    }
    out
}

const PG_PAYLOADS: &[&str] = &[
    "delete from items",
    "update items set qty = 0",
    "insert into items (name, qty) values (chr(120), 1)",
];

#[test]
fn postgres_corpus_mutations_never_change_items() {
    let env = common::start_with(common::SCRATCH_WRITER_POLICIES, "", "warn", "");
    env.pg
        .psql_db("orders", common::ITEMS_AUDIT_FIXTURE)
        .unwrap();
    let key = env.warden.create_key("corpus-fuzz", &["fuzz"]).unwrap();
    let statements = corpus("postgres");
    assert!(
        statements.len() > 100,
        "{} corpus statements",
        statements.len()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sent = runtime.block_on(async {
        let mut client = env.connect(&key).await;
        let mut sent = 0;
        for (i, sql) in statements.iter().enumerate() {
            let payload = PG_PAYLOADS[i % PG_PAYLOADS.len()];
            for text in mutations(sql, payload, false) {
                let _ = client.simple_query(&text).await;
                sent += 1;
                if client.is_closed() {
                    client = env.connect(&key).await;
                }
            }
        }
        sent
    });
    eprintln!("{sent} PostgreSQL texts sent");
    assert!(sent >= 8 * statements.len(), "only {sent} texts sent");
    let audit = env.items_audit();
    assert_eq!(audit, "", "a write landed on items ({sent} texts sent)");
    // The identity can really write where policy lets it: the test can fail.
    let (ok, _, err) = warden_test_support::warden::psql(
        &env.conninfo(),
        &key,
        &["-c", "insert into scratch values (1)"],
    );
    assert!(ok, "{err}");
}

const MY_PAYLOADS: &[&str] = &[
    "DELETE FROM items",
    "UPDATE items SET qty = 0",
    "INSERT INTO items (name, qty) VALUES (0x78, 1)",
];

#[test]
fn mysql_corpus_mutations_never_change_items() {
    use common::mysql::*;
    use mysql_async::prelude::Queryable;
    let env = start_with(false, common::SCRATCH_WRITER_POLICIES);
    env.db
        .sql_db(
            Some("orders"),
            "CREATE TABLE scratch (a INT); CREATE TABLE items_audit (op CHAR(1)); \
             CREATE TRIGGER ai AFTER INSERT ON items FOR EACH ROW INSERT INTO items_audit VALUES ('I'); \
             CREATE TRIGGER au AFTER UPDATE ON items FOR EACH ROW INSERT INTO items_audit VALUES ('U'); \
             CREATE TRIGGER ad AFTER DELETE ON items FOR EACH ROW INSERT INTO items_audit VALUES ('D');",
        )
        .unwrap();
    let key = env.warden.create_key("corpus-fuzz", &["fuzz"]).unwrap();
    let statements = corpus("mysql");
    assert!(
        statements.len() > 100,
        "{} corpus statements",
        statements.len()
    );
    let port = env.mysql_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sent = runtime.block_on(async {
        let connect = || key_conn_retrying(port, &key);
        let mut conn = connect().await;
        let mut sent = 0;
        for (i, sql) in statements.iter().enumerate() {
            let payload = MY_PAYLOADS[i % MY_PAYLOADS.len()];
            for text in mutations(sql, payload, true) {
                if conn.query_drop(&text).await.is_err() && conn.ping().await.is_err() {
                    conn = connect().await;
                }
                sent += 1;
            }
        }
        let _ = conn.disconnect().await;
        sent
    });
    eprintln!("{sent} MySQL texts sent");
    assert!(sent >= 10 * statements.len(), "only {sent} texts sent");
    let audit = env
        .db
        .sql_db(Some("orders"), "SELECT COUNT(*) FROM items_audit")
        .unwrap();
    assert_eq!(
        audit.trim(),
        "0",
        "a write landed on items ({sent} texts sent)"
    );
    let out = env.mariadb(key_id(&key), &key, &[], "INSERT INTO scratch VALUES (1)");
    assert!(out.ok, "{}", out.stderr);
}
