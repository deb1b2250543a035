//! `warden policy explain`: how a policy author sees what Warden would do
//! with a statement — its classification, tables, the deciding rule and why.

use crate::classify::{Classification, StatementClass};
use crate::rules::PolicySet;
use serde::Serialize;
use std::fmt;
use warden_core::request::Dialect;
use warden_core::{Action, Identity, IdentityKind, Operation};

/// The answer to "what would happen if this identity ran this SQL here?".
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub subject: String,
    pub groups: Vec<String>,
    pub target: String,
    pub dialect: &'static str,
    /// May the identity connect to the target at all?
    pub connect: Action,
    pub connect_rule: Option<String>,
    pub operation: Operation,
    pub tables: Vec<String>,
    pub statements: Vec<StatementClass>,
    pub action: Action,
    pub rule: Option<String>,
    pub reason: String,
}

/// Classifies `sql` and decides it for `identity` on `target`.
pub fn explain(
    policy: &PolicySet,
    identity: &Identity,
    target: &str,
    dialect: Dialect,
    sql: &str,
) -> Explanation {
    let classification: Classification =
        policy.classifier().classify(dialect, sql).as_ref().clone();
    let decision = policy.decide(identity, target, dialect, &classification);
    let connect = policy.check_connect(identity, target);
    Explanation {
        subject: identity.subject.clone(),
        groups: identity.groups.clone(),
        target: target.to_string(),
        dialect: match dialect {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        },
        connect: connect.action(),
        connect_rule: connect.rule().map(str::to_string),
        operation: classification.operation,
        tables: classification.table_names(),
        statements: classification.statements,
        action: decision.action(),
        rule: decision.rule().map(str::to_string),
        reason: decision.reason().to_string(),
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "identity:       {} (groups: {})",
            self.subject,
            if self.groups.is_empty() {
                "none".to_string()
            } else {
                self.groups.join(", ")
            }
        )?;
        writeln!(f, "target:         {} ({})", self.target, self.dialect)?;
        writeln!(
            f,
            "connect:        {} (rule: {})",
            self.connect,
            self.connect_rule.as_deref().unwrap_or("(no matching rule)")
        )?;
        writeln!(f, "classification: {}", self.operation)?;
        writeln!(
            f,
            "tables:         {}",
            if self.tables.is_empty() {
                "(none)".to_string()
            } else {
                self.tables.join(", ")
            }
        )?;
        for (i, statement) in self.statements.iter().enumerate() {
            writeln!(
                f,
                "statement {}:    {} {}",
                i + 1,
                statement.operation,
                statement.kind
            )?;
            for reason in &statement.reasons {
                writeln!(f, "                  - {reason}")?;
            }
        }
        writeln!(
            f,
            "rule:           {}",
            self.rule.as_deref().unwrap_or("(no matching rule)")
        )?;
        writeln!(f, "action:         {}", self.action)?;
        write!(f, "reason:         {}", self.reason)
    }
}

/// Builds an identity from token-like claims (`--identity-claims`): `sub`,
/// `groups` (a list or a space-separated string), `email`; every claim is kept
/// for `claim:NAME=VALUE` subjects. A `sub` of `key:NAME` stands for an
/// access key.
pub fn identity_from_claims(claims: serde_json::Value) -> Identity {
    let claims = match claims {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let subject = text("sub").unwrap_or_default();
    let groups = match claims.get("groups") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let kind = match subject.strip_prefix("key:") {
        Some(name) => IdentityKind::AccessKey {
            key_id: String::new(),
            name: name.to_string(),
        },
        None => IdentityKind::Oidc {
            issuer: text("iss").unwrap_or_else(|| "(explain)".into()),
        },
    };
    Identity {
        email: text("email"),
        subject,
        kind,
        groups,
        claims,
    }
}
