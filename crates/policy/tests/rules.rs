//! Rule matching and decisions, from config text as a user writes it.

use serde_json::json;
use std::sync::Arc;
use warden_core::config::Config;
use warden_core::engines::PolicyEngine;
use warden_core::request::{Dialect, Request};
use warden_core::{Action, Operation};
use warden_policy::{
    PolicySet, ReloadablePolicy, SessionClassifier, explain, identity_from_claims,
};

const BASE: &str = r#"
[[target]]
name = "orders"
protocol = "postgres"
address = "127.0.0.1:5432"
credentials = { mode = "static", user = "app", password = "env:X" }

[[target]]
name = "orders-staging"
protocol = "postgres"
address = "127.0.0.1:5433"
credentials = { mode = "static", user = "app", password = "env:X" }
"#;

const RULES: &str = r#"
[[policy]]
name = "agents read orders"
subjects = ["group:agents"]
targets = ["orders*"]
allow = ["read"]
review = ["write"]
deny = ["ddl", "admin"]

[[policy]]
name = "billing writes need review"
subjects = ["group:agents"]
targets = ["orders"]
review = ["write"]
tables = ["billing.*"]

[[policy]]
name = "agents write public"
subjects = ["group:writers"]
targets = ["orders"]
allow = ["read", "write"]
schemas = ["public"]

[[policy]]
name = "no secrets"
subjects = ["*"]
targets = ["orders"]
deny = ["read", "write"]
tables = ["*.secrets"]

[[policy]]
name = "ops key"
subjects = ["key:ops-bot"]
targets = ["*"]
allow = ["*"]

[[policy]]
name = "eu analysts"
subjects = ["claim:region=eu", "email:boss@example.com"]
targets = ["orders"]
allow = ["read"]

[[policy]]
name = "banned"
subjects = ["sub:mallory"]
targets = ["*"]
deny = ["connect"]

[[policy]]
name = "approved connect"
subjects = ["group:contractors"]
targets = ["orders"]
review = ["connect"]
allow = ["read"]
"#;

fn policy() -> PolicySet {
    let config = Config::parse(&format!("{BASE}{RULES}"), "w.toml").expect("config parses");
    PolicySet::from_config(&config).expect("rules compile")
}

fn who(claims: serde_json::Value) -> warden_core::Identity {
    identity_from_claims(claims)
}

#[test]
fn read_allowed_write_reviewed_ddl_denied() {
    let p = policy();
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    let d = p.check_statement(&agent, "orders", Dialect::Postgres, "SELECT * FROM orders");
    assert_eq!(d.action(), Action::Allow);
    assert_eq!(d.rule(), Some("agents read orders"));
    assert_eq!(d.tables(), vec!["orders"]);

    let d = p.check_statement(&agent, "orders", Dialect::Postgres, "DELETE FROM orders");
    assert_eq!(d.action(), Action::Review);
    assert_eq!(d.operation(), Operation::Write);
    assert!(
        d.reason().contains("requires a human review"),
        "{}",
        d.reason()
    );
    assert!(!d.is_allowed());

    let d = p.check_statement(&agent, "orders", Dialect::Postgres, "DROP TABLE orders");
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(
        d.reason(),
        "policy \"agents read orders\" denies ddl on target \"orders\""
    );
}

#[test]
fn no_rule_means_deny_with_no_rule_named() {
    let p = policy();
    let stranger = who(json!({"sub": "s", "groups": ["nobody"]}));
    let d = p.check_statement(&stranger, "orders", Dialect::Postgres, "SELECT 1");
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(d.rule(), None);
    assert_eq!(d.reason(), "no rule allows read on target \"orders\"");
    let d = p.check_connect(&stranger, "orders");
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(d.reason(), "no rule allows connect on target \"orders\"");
}

#[test]
fn unknown_is_denied_unless_allowed() {
    let p = policy();
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    let d = p.check_statement(&agent, "orders", Dialect::Postgres, "SELEKT 1");
    assert_eq!(d.operation(), Operation::Unknown);
    assert_eq!(d.action(), Action::Deny);
}

#[test]
fn table_matchers_restrict_rules() {
    let p = policy();
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    let d = p.check_statement(
        &agent,
        "orders",
        Dialect::Postgres,
        "SELECT * FROM orders; SELECT * FROM billing.secrets",
    );
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(d.rule(), Some("no secrets"));

    // An unqualified name could be in any schema (search_path), so a deny on
    // *.secrets catches it.
    let d = p.check_statement(&agent, "orders", Dialect::Postgres, "SELECT * FROM secrets");
    assert_eq!(d.rule(), Some("no secrets"));

    // Allow rules with schemas: unqualified names count as public.
    let writer = who(json!({"sub": "w", "groups": ["writers"]}));
    let d = p.check_statement(
        &writer,
        "orders",
        Dialect::Postgres,
        "UPDATE orders SET total = 0",
    );
    assert_eq!(d.action(), Action::Allow, "{}", d.reason());
    assert_eq!(d.rule(), Some("agents write public"));
    let d = p.check_statement(
        &writer,
        "orders",
        Dialect::Postgres,
        "UPDATE billing.invoices SET amount = 0",
    );
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(d.rule(), None);
    // MySQL has no default schema: an unqualified write is not covered.
    let d = p.check_statement(
        &writer,
        "orders",
        Dialect::Mysql,
        "UPDATE orders SET total = 0",
    );
    assert_eq!(d.action(), Action::Deny);
    // A write Warden cannot tie to tables is not covered by a table-limited allow.
    let d = p.check_statement(&writer, "orders", Dialect::Postgres, "SELECT nextval('s')");
    assert_eq!(d.action(), Action::Deny);
}

#[test]
fn target_globs() {
    let p = policy();
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    let d = p.check_statement(&agent, "orders-staging", Dialect::Postgres, "SELECT 1");
    assert_eq!(d.action(), Action::Allow);
    let d = p.check_statement(&agent, "inventory", Dialect::Postgres, "SELECT 1");
    assert_eq!(d.action(), Action::Deny);
}

#[test]
fn subjects_key_claim_email_sub() {
    let p = policy();
    let key = who(json!({"sub": "key:ops-bot"}));
    let d = p.check_statement(
        &key,
        "anything",
        Dialect::Postgres,
        "CREATE TABLE x (a int)",
    );
    assert_eq!(d.rule(), Some("ops key"));
    assert_eq!(d.action(), Action::Allow);
    // `sub:key:ops-bot` is not the key subject form, and an OIDC token cannot pose as a key.
    let oidc = who(json!({"sub": "ops-bot"}));
    assert_eq!(
        p.check_statement(&oidc, "anything", Dialect::Postgres, "SELECT 1")
            .action(),
        Action::Deny
    );

    let eu = who(json!({"sub": "e", "region": "eu"}));
    assert_eq!(
        p.check_statement(&eu, "orders", Dialect::Postgres, "SELECT 1")
            .action(),
        Action::Allow
    );
    let eu_list = who(json!({"sub": "e", "region": ["us", "eu"]}));
    assert_eq!(
        p.check_statement(&eu_list, "orders", Dialect::Postgres, "SELECT 1")
            .action(),
        Action::Allow
    );
    let us = who(json!({"sub": "e", "region": "us"}));
    assert_eq!(
        p.check_statement(&us, "orders", Dialect::Postgres, "SELECT 1")
            .action(),
        Action::Deny
    );
    let boss = who(json!({"sub": "b", "email": "Boss@Example.com"}));
    assert_eq!(
        p.check_statement(&boss, "orders", Dialect::Postgres, "SELECT 1")
            .action(),
        Action::Allow
    );
}

#[test]
fn connect_semantics() {
    let p = policy();
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    let d = p.check_connect(&agent, "orders");
    assert_eq!(d.action(), Action::Allow);
    assert_eq!(d.operation(), Operation::Connect);
    assert_eq!(d.rule(), Some("agents read orders"));

    let mallory = who(json!({"sub": "mallory", "groups": ["agents"]}));
    let d = p.check_connect(&mallory, "orders");
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(d.rule(), Some("banned"));

    let contractor = who(json!({"sub": "c", "groups": ["contractors"]}));
    let d = p.check_connect(&contractor, "orders");
    assert_eq!(d.action(), Action::Review);
    assert_eq!(d.rule(), Some("approved connect"));
    assert!(d.reason().contains("requires a human review"));
}

#[test]
fn session_resolves_execute_of_earlier_prepare() {
    let policy = ReloadablePolicy::new(policy());
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    let mut session = SessionClassifier::new(Dialect::Postgres);
    let d = policy.check_session_statement(
        &mut session,
        &agent,
        "orders",
        "PREPARE q AS SELECT * FROM orders",
    );
    assert_eq!(d.action(), Action::Allow);
    let d = policy.check_session_statement(&mut session, &agent, "orders", "EXECUTE q");
    assert_eq!(d.action(), Action::Allow, "{}", d.reason());
    assert_eq!(d.tables(), vec!["orders"]);
    let d = policy.check_session_statement(
        &mut session,
        &agent,
        "orders",
        "PREPARE w AS DELETE FROM orders",
    );
    assert_eq!(d.operation(), Operation::Write);
    let d = policy.check_session_statement(&mut session, &agent, "orders", "EXECUTE w");
    assert_eq!(d.operation(), Operation::Write);
    let d = policy.check_session_statement(&mut session, &agent, "orders", "DEALLOCATE w");
    assert_eq!(d.action(), Action::Allow);
    let d = policy.check_session_statement(&mut session, &agent, "orders", "EXECUTE w");
    assert_eq!(d.operation(), Operation::Unknown);
    // Without session state EXECUTE is unknown: fail closed.
    let d = policy.check_statement(
        &agent,
        "orders",
        &Request::sql(Dialect::Postgres, "EXECUTE q"),
    );
    assert_eq!(d.operation(), Operation::Unknown);
    assert_eq!(d.action(), Action::Deny);

    let mut mysql = SessionClassifier::new(Dialect::Mysql);
    policy.check_session_statement(
        &mut mysql,
        &agent,
        "orders",
        "PREPARE S FROM 'DELETE FROM t'",
    );
    let d = policy.check_session_statement(&mut mysql, &agent, "orders", "EXECUTE s");
    assert_eq!(
        d.operation(),
        Operation::Write,
        "MySQL names are case-insensitive"
    );
}

#[test]
fn safe_functions_from_config() {
    let config = Config::parse(
        &format!("{BASE}{RULES}\n[classifier]\nsafe_functions = [\"public.report\"]\nsafe_settings = [\"app.tenant\"]\n"),
        "w.toml",
    )
    .expect("config");
    let p = PolicySet::from_config(&config).expect("compile");
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    assert_eq!(
        p.check_statement(&agent, "orders", Dialect::Postgres, "SELECT report()")
            .action(),
        Action::Allow
    );
    assert_eq!(
        p.check_statement(&agent, "orders", Dialect::Postgres, "SET app.tenant = 'x'")
            .action(),
        Action::Allow
    );
    let plain = policy();
    // Unlisted, report() is a write Warden cannot tie to tables, so the
    // table-limited deny on *.secrets must assume it may touch them.
    let d = plain.check_statement(&agent, "orders", Dialect::Postgres, "SELECT report()");
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(d.rule(), Some("no secrets"));
}

#[test]
fn explain_names_everything() {
    let p = policy();
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    let e = explain(
        &p,
        &agent,
        "orders",
        Dialect::Postgres,
        "WITH d AS (DELETE FROM billing.invoices RETURNING *) SELECT * FROM d",
    );
    assert_eq!(e.operation, Operation::Write);
    assert_eq!(e.tables, vec!["billing.invoices"]);
    assert_eq!(e.action, Action::Review);
    assert_eq!(e.rule.as_deref(), Some("agents read orders"));
    let text = e.to_string();
    assert!(text.contains("classification: write"), "{text}");
    assert!(text.contains("data-modifying DELETE"), "{text}");
    let json = serde_json::to_value(&e).expect("serialize");
    assert_eq!(json["action"], "review");
    assert_eq!(json["tables"][0], "billing.invoices");
}

#[test]
fn engine_trait_object_works() {
    let engine: Arc<dyn PolicyEngine> = Arc::new(ReloadablePolicy::new(policy()));
    let agent = who(json!({"sub": "a1", "groups": ["agents"]}));
    assert!(engine.check_connect(&agent, "orders").is_allowed());
    assert!(
        engine
            .check_statement(&agent, "orders", &Request::sql(Dialect::Mysql, "SELECT 1"))
            .is_allowed()
    );
}

/// `sub:` names an OIDC subject: an access key, whose subject reads
/// `key:NAME`, never matches it.
#[test]
fn sub_rules_match_only_oidc_callers() {
    let rules = r#"
[[policy]]
name = "oidc dana"
subjects = ["sub:key:dana"]
targets = ["orders"]
allow = ["read"]
"#;
    let config = Config::parse(&format!("{BASE}{rules}"), "w.toml").expect("config parses");
    let p = PolicySet::from_config(&config).expect("rules compile");
    let key = who(json!({"sub": "key:dana"}));
    assert!(matches!(
        key.kind,
        warden_core::IdentityKind::AccessKey { .. }
    ));
    assert_eq!(
        p.check_statement(&key, "orders", Dialect::Postgres, "SELECT 1")
            .action(),
        Action::Deny
    );
}
