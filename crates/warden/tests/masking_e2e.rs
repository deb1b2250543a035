//! Inline masking end to end: a real PostgreSQL with a table of customers,
//! `psql` and tokio-postgres (binary results) through Warden see masked
//! values, a direct connection sees the raw ones, and no raw value reaches
//! Warden's log or recording.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use warden_test_support::warden::psql;

const EMAILS: [&str; 2] = ["alice.smith@example.com", "bob.jones@example.org"];
const CARDS: [&str; 2] = ["4111 1111 1111 1111", "5500-0000-0000-0004"];
const SSNS: [&str; 2] = ["123-45-6789", "219-09-9999"];
const IBANS: [&str; 2] = ["DE89370400440532013000", "GB82WEST12345698765432"];
const AWS_KEY: &str = "AKIAZ7QW3RT5YU8IOP2L";
const GITHUB_TOKEN: &str = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R";
/// Matches no detector: masked only because a column rule names its column.
const SECRET_CODES: [&str; 2] = ["plain-value-42", "plain-value-43"];

const POLICIES: &str = r#"
[[policy]]
name = "agents work on orders, masked"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read", "write"]
mask = ["email", "credit_card", "us_ssn", "iban", "secret"]
mask_columns = ["customers.secret_code", "public.customers.pin"]
"#;

fn raw_values() -> Vec<&'static str> {
    let mut all = Vec::new();
    all.extend(EMAILS);
    all.extend(CARDS);
    all.extend(SSNS);
    all.extend(IBANS);
    all.extend([AWS_KEY, GITHUB_TOKEN]);
    all.extend(SECRET_CODES);
    all
}

fn fixture(env: &common::Env) {
    let mut sql = String::from(
        "set role app; create table customers (id int primary key, name text, email text unique, \
         card text, ssn text, iban text, notes text, secret_code text, pin int, profile jsonb);",
    );
    for i in 0..2 {
        sql.push_str(&format!(
            "insert into customers values ({id}, 'Customer {id}', '{email}', '{card}', '{ssn}', '{iban}', \
             'aws {aws} and gh {gh}', '{code}', {pin}, '{{\"github\": \"{gh}\", \"plan\": \"pro\"}}');",
            id = i + 1,
            email = EMAILS[i],
            card = CARDS[i],
            ssn = SSNS[i],
            iban = IBANS[i],
            aws = AWS_KEY,
            gh = GITHUB_TOKEN,
            code = SECRET_CODES[i],
            pin = 4321 + i,
        ));
    }
    // A table no column rule covers: only content detectors guard it.
    sql.push_str(&format!(
        "create table contacts (id int, email text, card text); \
         insert into contacts values (1, '{}', '{}');",
        EMAILS[0], CARDS[0]
    ));
    env.pg.psql_db("orders", &sql).unwrap();
}

/// Any binary value, as the bytes the server sent (to look inside values
/// whose type tokio-postgres has no Rust type for: records, arrays).
struct RawValue(Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for RawValue {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw.to_vec()))
    }
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

fn assert_no_raw(what: &str, text: &str) {
    for raw in raw_values() {
        assert!(
            !text.contains(raw),
            "{what} contains the raw value {raw}:\n{text}"
        );
    }
}

#[test]
fn psql_and_driver_see_masked_values_direct_sees_raw() {
    let env = common::start_with(POLICIES, "", "debug", "");
    fixture(&env);
    let token = env.token("masked-agent@example.net", &["agents"]);

    // Direct: raw values are there.
    let direct = env
        .pg
        .psql_db("orders", "select * from customers order by id")
        .unwrap();
    for raw in raw_values() {
        assert!(direct.contains(raw), "direct output lacks {raw}: {direct}");
    }

    // Through Warden with psql (text format), including an expression, an
    // alias of a covered column, a JSON column and a statement that quotes a raw value.
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-c",
            "select * from customers order by id",
            "-c",
            "select lower(email) as e, secret_code as not_a_secret, profile->>'github' as gh from customers",
            "-c",
            "select name from customers where email = 'alice.smith@example.com'",
        ],
    );
    assert!(ok, "psql failed: {err}");
    assert_no_raw("psql output", &out);
    assert!(out.contains("[REDACTED]"), "{out}");
    assert!(
        out.contains("Customer 1") && out.contains("Customer 2"),
        "{out}"
    );
    assert!(
        out.contains("\"plan\": \"pro\""),
        "JSON kept its shape: {out}"
    );

    // COPY TO cannot bypass masking.
    let (ok, _, err) = psql(&env.conninfo(), &token, &["-c", "copy customers to stdout"]);
    assert!(!ok && err.contains("COPY TO is not available"), "{err}");

    // A unique violation's DETAIL quotes the value: masked too.
    let (ok, _, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-c",
            "insert into customers (id, email) values (9, 'alice.smith@example.com')",
        ],
    );
    assert!(
        !ok && (err.contains("23505") || err.contains("duplicate key") || err.contains("withheld")),
        "{err}"
    );
    assert_no_raw("error message", &err);

    // Views launder nothing: every column of a view that reads a covered
    // column is covered, through views of views.
    env.pg
        .psql_db(
            "orders",
            "set role app; create view cust_v as select id, secret_code as code, \
             upper(secret_code) as up from customers; \
             create view cust_vv as select * from cust_v;",
        )
        .unwrap();
    for statement in [
        "select * from cust_v",
        "select code, up from cust_vv",
        "select lower(code) from cust_v",
        "select code || '' from cust_vv",
    ] {
        let (ok, out, err) = psql(&env.conninfo(), &token, &["-At", "-c", statement]);
        assert!(ok, "{statement}: {err}");
        let lowered = out.to_lowercase();
        for raw in SECRET_CODES {
            assert!(!lowered.contains(raw), "{statement}: {out}");
        }
    }

    // Any function of a covered column, a UNION or a derived table: the
    // server names no source for such a column, so it is masked whole.
    for statement in [
        "select lower(secret_code), reverse(secret_code), encode(secret_code::bytea, 'base64') from customers",
        "select secret_code || '' from customers",
        "select secret_code from customers union all select 'x'",
        "select c from (select upper(secret_code) as c from customers) d",
        "select (select string_agg(secret_code, ',') from customers)",
        "with s as (select secret_code::text as c from customers) select c || '!' from s",
    ] {
        let (ok, out, err) = psql(&env.conninfo(), &token, &["-At", "-c", statement]);
        assert!(ok, "{statement}: {err}");
        assert_no_raw(statement, &out);
        let lowered = out.to_lowercase();
        for raw in SECRET_CODES {
            let reversed: String = raw.chars().rev().collect();
            assert!(
                !lowered.contains(&reversed) && !lowered.contains(raw),
                "{statement}: {out}"
            );
        }
        assert!(!out.contains("cGxhaW4t"), "base64 of the value: {out}");
    }

    // NOTIFY payloads and other sessions' statement texts under column rules.
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-c",
            "listen warden_test",
            "-c",
            "select pg_notify('warden_test', secret_code) from customers",
            "-c",
            "select query from pg_stat_activity where query like '%plain-value-%'",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("withheld") || err.contains("withheld"),
        "{out} {err}"
    );
    assert_no_raw("notifications and pg_stat_activity", &format!("{out}{err}"));

    // Computed columns of statements that read nothing covered stay as they are.
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-At",
            "-c",
            "select upper(name) || qty from items order by id",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "APPLE3\nPEAR5\nPLUM7");

    // Values copied into a custom setting stay masked when read back.
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-At",
            "-c",
            "select set_config('warden_test.v', secret_code, false) from customers where id = 1",
            "-c",
            "select current_setting('warden_test.v')",
            "-c",
            "show warden_test.v",
            "-c",
            "select setting from pg_settings where name = 'warden_test.v'",
        ],
    );
    assert!(ok, "{err}");
    for raw in SECRET_CODES {
        assert!(!out.contains(raw), "{out}");
    }

    // Column statistics sample covered values (red-team F6).
    env.pg
        .psql_db("orders", "set role app; analyze customers")
        .unwrap();
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-At",
            "-c",
            "select attname, most_common_vals::text, histogram_bounds::text from pg_stats \
             where tablename = 'customers' and attname = 'secret_code'",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("secret_code"), "{out}");
    for raw in SECRET_CODES {
        assert!(!out.contains(raw), "{out}");
    }

    // A cursor's FETCH reads what the cursor's query reads, each sent as
    // its own Query; psql's FETCH_COUNT uses a cursor too (red-team F4).
    for args in [
        vec![
            "-c",
            "begin",
            "-c",
            "declare c cursor for select lower(secret_code), reverse(secret_code) from customers",
            "-c",
            "fetch all from c",
            "-c",
            "commit",
        ],
        vec![
            "-c",
            "declare h cursor with hold for select secret_code || '' from customers",
            "-c",
            "move forward 0 in h",
            "-c",
            "fetch next from h",
            "-c",
            "fetch all in h",
        ],
        vec![
            "-v",
            "FETCH_COUNT=1",
            "-c",
            "select lower(secret_code) from customers",
        ],
    ] {
        let mut all = vec!["-At"];
        all.extend(args.iter().copied());
        let (ok, out, err) = psql(&env.conninfo(), &token, &all);
        assert!(ok, "{args:?}: {err}");
        let lowered = out.to_lowercase();
        assert!(lowered.contains("[redacted]"), "{args:?}: {out}");
        for raw in SECRET_CODES {
            let reversed: String = raw.chars().rev().collect();
            assert!(
                !lowered.contains(&reversed) && !lowered.contains(raw),
                "{args:?}: {out}"
            );
        }
    }
    // A cursor Warden did not see declared is not read.
    let (ok, _, err) = psql(
        &env.conninfo(),
        &token,
        &["-c", "begin", "-c", "fetch all from \"<unnamed portal 1>\""],
    );
    assert!(!ok && err.contains("operation: unknown"), "{err}");

    // A covered value quoted by the server's own error or notice text (no
    // detector would find "plain-value-42"): the message is withheld.
    for statement in [
        "select secret_code::int from customers",
        "select 1 from customers where secret_code::numeric > 0",
        "select (select secret_code from customers where id = 1)::date",
        // Errors of other classes quote values too (red-team finding F5):
        // only messages that point into the statement text, or fixed
        // templates, pass.
        "select secret_code::regclass from customers",
        "select secret_code::regnamespace from customers",
        "select secret_code::regproc from customers",
        "select upper(secret_code)::regprocedure from customers",
        "select secret_code::regrole from customers",
        "select secret_code::regtype from customers",
        "select secret_code::regconfig from customers",
        "select current_setting(secret_code) from customers",
        "select has_table_privilege(secret_code, 'select') from customers",
        "select pg_get_viewdef(secret_code) from customers",
    ] {
        let (ok, _, err) = psql(&env.conninfo(), &token, &["-c", statement]);
        assert!(!ok && err.contains("withheld"), "{statement}: {err}");
        assert_no_raw(statement, &err);
    }
    // The client's own typo keeps its message (it points into the text).
    let (ok, _, err) = psql(
        &env.conninfo(),
        &token,
        &["-c", "select * from no_such_table"],
    );
    assert!(
        !ok && err.contains("\"no_such_table\" does not exist"),
        "{err}"
    );

    // tokio-postgres asks for binary results: text types are rewritten in
    // place, the covered int column becomes NULL.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = env.connect(&token).await;
        let rows = client
            .query(
                "select id, email, secret_code, pin, notes, ssn from customers where id = $1",
                &[&1i32],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.get::<_, i32>(0), 1);
        assert_eq!(row.get::<_, String>(1), "[REDACTED]");
        assert_eq!(row.get::<_, String>(2), "[REDACTED]");
        assert_eq!(
            row.get::<_, Option<i32>>(3),
            None,
            "covered binary int is NULL"
        );
        let notes: String = row.get(4);
        assert!(
            notes.starts_with("aws [REDACTED] and gh [REDACTED]"),
            "{notes}"
        );
        assert_eq!(row.get::<_, String>(5), "[REDACTED]");
        // A statement prepared once and executed twice keeps masking.
        let statement = client
            .prepare("select email from customers order by id")
            .await
            .unwrap();
        for _ in 0..2 {
            let rows = client.query(&statement, &[]).await.unwrap();
            let emails: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            assert_eq!(emails, vec!["[REDACTED]", "[REDACTED]"]);
        }
    });

    // Binary values detectors cannot read as they are (arrays, records,
    // bytea, numeric) are decoded before the detectors run: a value holding
    // a secret is masked whole (NULL), one without is left alone.
    runtime.block_on(async {
        let client = env.connect(&token).await;
        for statement in [
            "select array['x', email] from contacts",
            "select row(id, email) from contacts",
            "select array[row(id, array[card])] from contacts",
            "select convert_to(email, 'UTF8') from contacts",
            "select replace(card, ' ', '')::numeric from contacts",
            "select array_agg(notes) from customers where id = 1",
        ] {
            let rows = client.query(statement, &[]).await.expect(statement);
            let value: Option<RawValue> = rows[0].get(0);
            assert!(value.is_none(), "{statement} was not masked");
        }
        let rows = client
            .query("select array[name, 'x'] from items where id = 1", &[])
            .await
            .unwrap();
        let value: Option<RawValue> = rows[0].get(0);
        assert!(String::from_utf8_lossy(&value.unwrap().0).contains("apple"));
    });
    // psql shows bytea as `\x…` hex, which no detector reads: decoded too.
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &[
            "-At",
            "-c",
            "select convert_to(email, 'UTF8') is null, convert_to(email, 'UTF8') from contacts",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "f|", "hex bytea of an e-mail is masked");

    // Recordings count masked values and never hold one, statement texts included.
    let sessions: serde_json::Value =
        serde_json::from_str(&env.warden.cli(&["sessions", "list", "--json"]).unwrap()).unwrap();
    let ids: Vec<String> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 4, "{sessions}");
    let mut masked_events = 0;
    for id in &ids {
        let events = env.events(id);
        let text = serde_json::to_string(&events).unwrap();
        assert_no_raw("a recording", &text);
        for event in events.iter().filter(|e| e["type"] == "masked") {
            assert!(event["count"].as_u64().unwrap_or(0) >= 1, "{event}");
            assert!(event["column"].is_string() && event["detector"].is_string());
            masked_events += 1;
        }
    }
    assert!(
        masked_events >= 5,
        "masked events recorded: {masked_events}"
    );

    // The log at debug level named statements (one quoted a raw e-mail) yet holds no raw value.
    let logs = env.warden.logs();
    assert!(
        logs.contains("statement decided"),
        "debug logging was on: {logs}"
    );
    assert_no_raw("warden's log", &logs);
}

const RULED_POLICIES: &str = r#"
[[policy]]
name = "agents read orders, partition column masked"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
mask_columns = ["psec.code"]

[[policy]]
name = "nobody reads hidden"
subjects = ["group:agents"]
targets = ["orders"]
deny = ["read", "write", "ddl", "admin", "unknown"]
tables = ["hidden", "phid"]
"#;

/// Deny rules and column masking follow the data into partitions,
/// inheritance children and views (red-team findings F11 and F12): the
/// catalog is read at session start.
#[test]
fn rules_follow_partitions_children_and_views() {
    let env = common::start_with(RULED_POLICIES, "", "debug", "");
    env.pg
        .psql_db(
            "orders",
            "set role app; \
             create table psec (id int, code text) partition by range (id); \
             create table psec_1 partition of psec for values from (0) to (100); \
             insert into psec values (1, 'plain-value-42'); \
             create table hidden (id int, val text); insert into hidden values (1, 'hidden-value-9'); \
             create table hidden_child () inherits (hidden); insert into hidden_child values (2, 'hidden-value-9'); \
             create table phid (id int, val text) partition by list (id); \
             create table phid_1 partition of phid for values in (1); \
             insert into phid values (1, 'hidden-value-9'); \
             create schema reports; \
             create view reports.v_hidden as select * from hidden; \
             create view v_v as select val from reports.v_hidden; \
             create materialized view m_hidden as select val from phid; \
             analyze hidden; analyze phid_1; analyze psec_1;",
        )
        .unwrap();
    let token = env.token("ruled-agent@example.net", &["agents"]);
    for statement in [
        "select * from psec",
        "select * from psec_1",
        "select id, code from only psec_1",
        "select lower(code) from psec_1",
        "select c from (select code || '' as c from psec_1) d",
    ] {
        let (ok, out, err) = psql(&env.conninfo(), &token, &["-At", "-c", statement]);
        assert!(ok, "{statement}: {err}");
        assert!(
            !out.contains("plain-value-42") && !out.to_lowercase().contains("plain-value"),
            "{statement}: {out}"
        );
        assert!(out.contains("[REDACTED]"), "{statement}: {out}");
    }
    for statement in [
        "select * from hidden",
        "select * from hidden_child",
        "select * from phid_1",
        "select * from reports.v_hidden",
        "select * from v_v",
        "select * from m_hidden",
        "with x as (select * from phid_1) select * from x",
        // Column statistics sample a ruled table's values (red-team F6).
        "select most_common_vals::text from pg_stats where tablename = 'hidden'",
        "select histogram_bounds from pg_catalog.pg_stats",
    ] {
        let (ok, out, err) = psql(&env.conninfo(), &token, &["-At", "-c", statement]);
        assert!(
            !ok && err.contains("nobody reads hidden"),
            "{statement}: {out} {err}"
        );
        assert!(!out.contains("hidden-value-9"), "{statement}: {out}");
    }
    // Uncovered columns of the partition stay readable.
    let (ok, out, err) = psql(
        &env.conninfo(),
        &token,
        &["-At", "-c", "select id from psec_1"],
    );
    assert!(ok && out.trim() == "1", "{out} {err}");
}
