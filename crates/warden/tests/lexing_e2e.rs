//! Warden judges exactly what PostgreSQL will execute: statements, startup
//! parameters and `options` that would change how the server lexes are
//! refused; the read-only wall cannot be lifted by a "read"; a session that
//! reaches an unsupported lexing state anyway is ended; and SQL `PREPARE`
//! shares one namespace with protocol Parse. Every smuggling attempt is
//! checked against the upstream directly: the table is unchanged.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The default rules (agents read, write and run DDL; readers read) plus a
/// group whose writes are reviewed.
fn policies() -> String {
    format!(
        r#"{}
[[policy]]
name = "reviewed writers"
subjects = ["group:reviewed"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]
review_timeout = "2s"
"#,
        common::DEFAULT_POLICIES
    )
}

/// psql through Warden with extra environment (PGOPTIONS, PGCLIENTENCODING …).
fn psql_env(
    env: &common::Env,
    key: &str,
    vars: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let output = Command::new("psql")
        .arg("-X")
        .arg(env.conninfo())
        .args(args)
        .env("PGPASSWORD", key)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The upstream's own view of the table, bypassing Warden.
fn upstream_names(env: &common::Env) -> String {
    env.pg
        .psql_db(
            "orders",
            "select string_agg(name, ',' order by id) from items",
        )
        .unwrap()
        .trim()
        .to_string()
}

const ORIGINAL: &str = "apple,pear,plum";

#[test]
fn statements_that_change_lexing_are_refused_and_smuggling_fails() {
    let env = common::start_with(&policies(), "", "info", "");
    let reader = env.warden.create_key("reader", &["readers"]).unwrap();
    let agent = env.warden.create_key("agent", &["agents"]).unwrap();

    for (key, statement) in [
        (&reader, "SET standard_conforming_strings = off"),
        (&agent, "SET standard_conforming_strings TO 0"),
        (&agent, "SET LOCAL standard_conforming_strings = false"),
        (&agent, "SET standard_conforming_strings = DEFAULT"),
        (
            &agent,
            "SELECT set_config('standard_conforming_strings', 'off', false)",
        ),
        (&reader, "SET client_encoding = 'SJIS'"),
        (&agent, "SET NAMES 'GBK'"),
        (&agent, "SET client_encoding TO big5"),
        (&agent, "SELECT set_config('client_encoding', 'UHC', false)"),
    ] {
        // The refusal, then the same session goes on under the old rules.
        let (_, out, err) = psql_env(
            &env,
            key,
            &[],
            &[
                "-At",
                "-c",
                statement,
                "-c",
                "SHOW standard_conforming_strings",
                "-c",
                "SHOW client_encoding",
            ],
        );
        assert!(
            err.contains("Warden refuses this statement"),
            "{statement}: {err}"
        );
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("on"), "{statement}: {out} {err}");
        let encoding = lines.next().unwrap_or_default().to_ascii_uppercase();
        assert!(
            ["UTF8", "SQL_ASCII", "LATIN1"].contains(&encoding.as_str()),
            "{statement}: {out}"
        );
    }

    // The smuggled INSERT stays inside one string literal, as on the server.
    let (ok, out, err) = psql_env(
        &env,
        &reader,
        &[],
        &[
            "-At",
            "-c",
            r"select 'x\'' ; insert into items (name, qty) values (chr(115), 1); -- '",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("insert into items"), "{out}");
    assert_eq!(upstream_names(&env), ORIGINAL);
}

#[test]
fn startup_parameters_and_options_are_read_as_the_server_reads_them() {
    let env = common::start_with(&policies(), "", "info", "");
    let reader = env.warden.create_key("reader", &["readers"]).unwrap();
    for vars in [
        [("PGOPTIONS", "-c standard_conforming_strings=off")],
        [("PGOPTIONS", r"--session_replication_rol\e=replica")],
        [("PGOPTIONS", r"-c default_transaction_read_onl\y=off")],
        [("PGOPTIONS", "-c client_encoding=SJIS")],
        [("PGOPTIONS", "-P")],
        [("PGCLIENTENCODING", "SJIS")],
        [("PGCLIENTENCODING", "BIG5")],
    ] {
        let (ok, _, err) = psql_env(&env, &reader, &vars, &["-At", "-c", "select 1"]);
        assert!(!ok, "{vars:?} was accepted");
        assert!(
            err.contains("is not allowed through Warden"),
            "{vars:?}: {err}"
        );
    }
    // Ordinary settings still work.
    let (ok, out, err) = psql_env(
        &env,
        &reader,
        &[
            ("PGOPTIONS", "-c search_path=public --statement-timeout=5s"),
            ("PGCLIENTENCODING", "LATIN1"),
        ],
        &["-At", "-c", "show statement_timeout"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "5s");
}

#[test]
fn read_write_modes_are_writes_and_the_wall_holds() {
    let env = common::start_with(&policies(), "", "info", "");
    let reader = env.warden.create_key("reader", &["readers"]).unwrap();
    for statement in [
        "BEGIN READ WRITE",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "SET default_transaction_read_only = off",
        "SELECT set_config('transaction_read_only', 'off', false)",
    ] {
        let (_, _, err) = psql_env(
            &env,
            &reader,
            &[],
            &[
                "-At",
                "-c",
                statement,
                "-c",
                "delete from items where name = 'pear'",
            ],
        );
        assert!(
            err.contains("42501") || err.contains("denies") || err.contains("no rule allows"),
            "{statement}: {err}"
        );
    }
    assert_eq!(upstream_names(&env), ORIGINAL);
}

#[test]
fn a_session_that_reaches_an_unsupported_lexing_state_is_ended() {
    let env = common::start_with(&policies(), "", "info", "");
    let agent = env.warden.create_key("agent", &["agents"]).unwrap();
    // A function body is not a statement Warden sees: the server's report of
    // the new setting is what ends the session.
    let (ok, _, err) = psql_env(
        &env,
        &agent,
        &[],
        &[
            "-c",
            "create function lex_off() returns text language sql as \
             $$ select set_config('standard_conforming_strings', 'off', false) $$",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = psql_env(
        &env,
        &agent,
        &[],
        &["-At", "-c", "select lex_off()", "-c", "select 'still here'"],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("Warden cannot judge statements in"), "{err}");
    assert!(!out.contains("still here"), "{out}");
}

// ---- the prepared-statement namespace, over the raw protocol ----

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// Reads messages until ReadyForQuery; returns their tags and the SQLSTATEs
/// of any errors.
fn until_ready(stream: &mut TcpStream) -> (Vec<u8>, Vec<String>) {
    let mut tags = Vec::new();
    let mut states = Vec::new();
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).unwrap();
        tags.push(header[0]);
        if header[0] == b'E' {
            let mut fields = body.split(|b| *b == 0);
            for field in fields.by_ref() {
                if let Some((b'C', code)) = field.split_first() {
                    states.push(String::from_utf8_lossy(code).into_owned());
                }
            }
        }
        if header[0] == b'Z' {
            return (tags, states);
        }
    }
}

fn raw_session(env: &common::Env, key: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", env.warden.pg_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut body = 196608u32.to_be_bytes().to_vec();
    body.extend(cstr(&["user", "agent", "database", "orders", ""]));
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(body);
    stream.write_all(&packet).unwrap();
    // AuthenticationCleartextPassword, then the key.
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[0], b'R');
    stream.write_all(&message(b'p', &cstr(&[key]))).unwrap();
    let (_, states) = until_ready(&mut stream);
    assert!(states.is_empty(), "login failed: {states:?}");
    stream
}

fn simple(stream: &mut TcpStream, sql: &str) -> (Vec<u8>, Vec<String>) {
    stream.write_all(&message(b'Q', &cstr(&[sql]))).unwrap();
    until_ready(stream)
}

#[test]
fn sql_prepare_and_protocol_parse_share_one_namespace() {
    let env = common::start_with(&policies(), "", "info", "");
    let key = env.warden.create_key("reviewed", &["reviewed"]).unwrap();
    let mut s = raw_session(&env, &key);

    // SQL PREPARE of a read, then a protocol Close and Parse of the same name
    // as a DELETE: SQL EXECUTE must be judged as the DELETE (held, then timed out).
    let (_, states) = simple(&mut s, "PREPARE s AS SELECT 1");
    assert!(states.is_empty(), "{states:?}");
    let mut batch = message(b'C', &[b"S".as_slice(), &cstr(&["s"])].concat());
    batch.extend(message(b'S', &[]));
    s.write_all(&batch).unwrap();
    until_ready(&mut s);
    let mut parse = cstr(&["s", "DELETE FROM items WHERE name = 'pear'"]);
    parse.extend_from_slice(&0i16.to_be_bytes());
    let mut batch = message(b'P', &parse);
    batch.extend(message(b'S', &[]));
    s.write_all(&batch).unwrap();
    let (_, states) = until_ready(&mut s);
    assert!(states.is_empty(), "the Parse itself is allowed: {states:?}");
    let (_, states) = simple(&mut s, "EXECUTE s");
    assert_eq!(states, vec!["57014".to_string()], "EXECUTE s was not held");
    assert_eq!(upstream_names(&env), ORIGINAL);

    // The other way round: a protocol Bind of a name SQL PREPARE defined.
    let (_, states) = simple(&mut s, "DEALLOCATE s");
    assert!(states.is_empty(), "{states:?}");
    let (_, states) = simple(&mut s, "PREPARE r AS SELECT name FROM items");
    assert!(states.is_empty(), "{states:?}");
    let mut bind = cstr(&["", "r"]);
    bind.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut batch = message(b'B', &bind);
    batch.extend(message(
        b'E',
        &[&cstr(&[""])[..], &0i32.to_be_bytes()].concat(),
    ));
    batch.extend(message(b'S', &[]));
    s.write_all(&batch).unwrap();
    let (tags, states) = until_ready(&mut s);
    assert!(states.is_empty(), "{states:?}");
    assert_eq!(tags.iter().filter(|t| **t == b'D').count(), 3);
    // A name nobody prepared is refused by Warden before the server sees it.
    let mut bind = cstr(&["", "nope"]);
    bind.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut batch = message(b'B', &bind);
    batch.extend(message(b'S', &[]));
    s.write_all(&batch).unwrap();
    let (_, states) = until_ready(&mut s);
    assert_eq!(states, vec!["42501".to_string()]);
    assert_eq!(upstream_names(&env), ORIGINAL);
}
