//! `[[policy]]` rules compiled for fast matching, and the decisions they make.
//!
//! Precedence: deny beats review beats allow; when no rule speaks to an
//! operation the answer is deny. Every decision names the rule that made it.

mod patterns;

use crate::classify::{Classification, Classifier, StatementClass, TableRef};
use globset::{Glob, GlobSet, GlobSetBuilder};
use patterns::{NameGlob, Side, TablePattern, schema_matches};
use warden_core::config::{ClassifierConfig, Config, PolicyConfig};
use warden_core::masking::MaskRules;
use warden_core::request::Dialect;
use warden_core::{Action, Decision, Identity, IdentityKind, Operation};

/// A rule set could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy \"{policy}\": bad pattern \"{pattern}\": {message}")]
    BadPattern {
        policy: String,
        pattern: String,
        message: String,
    },
    #[error(
        "policy \"{policy}\": subject \"{subject}\" is not one of group:G, sub:S, email:E, claim:NAME=VALUE, key:NAME or *"
    )]
    BadSubject { policy: String, subject: String },
    #[error(
        "policy \"{policy}\": unknown operation \"{operation}\"; use connect, read, write, ddl, admin, unknown or *"
    )]
    BadOperation { policy: String, operation: String },
}

/// Who a rule is for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    Any,
    Group(String),
    Sub(String),
    Email(String),
    Claim(String, String),
    Key(String),
}

impl Subject {
    fn parse(text: &str) -> Option<Subject> {
        if text == "*" {
            return Some(Subject::Any);
        }
        let (kind, value) = text.split_once(':')?;
        if value.is_empty() {
            return None;
        }
        Some(match kind {
            "group" => Subject::Group(value.into()),
            "sub" => Subject::Sub(value.into()),
            "email" => Subject::Email(value.into()),
            "key" => Subject::Key(value.into()),
            "claim" => {
                let (name, wanted) = value.split_once('=')?;
                if name.is_empty() {
                    return None;
                }
                Subject::Claim(name.into(), wanted.into())
            }
            _ => return None,
        })
    }

    fn matches(&self, identity: &Identity) -> bool {
        match self {
            Subject::Any => true,
            Subject::Group(group) => identity.groups.iter().any(|g| g == group),
            // `sub:` names an OIDC subject; an access key's `key:NAME` is not one.
            Subject::Sub(sub) => {
                matches!(identity.kind, IdentityKind::Oidc { .. }) && identity.subject == *sub
            }
            Subject::Email(email) => identity
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email)),
            Subject::Key(name) => match &identity.kind {
                IdentityKind::AccessKey { name: key_name, .. } => key_name == name,
                IdentityKind::Oidc { .. } => false,
            },
            Subject::Claim(name, wanted) => identity
                .claims
                .get(name)
                .is_some_and(|value| claim_matches(value, wanted)),
        }
    }
}

/// Does `identity` match a subject pattern (`group:G`, `sub:S`, `email:E`,
/// `claim:NAME=VALUE`, `key:NAME` or `*`)? A pattern that does not parse
/// matches nobody. Used for `approvers`, which are written like `subjects`.
pub fn subject_matches(pattern: &str, identity: &Identity) -> bool {
    Subject::parse(pattern).is_some_and(|subject| subject.matches(identity))
}

/// A string claim equals `wanted`; an array claim contains it; numbers and
/// booleans compare by their JSON text (`claim:admin=true`).
fn claim_matches(value: &serde_json::Value, wanted: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s == wanted,
        serde_json::Value::Array(items) => items
            .iter()
            .any(|item| !item.is_array() && claim_matches(item, wanted)),
        serde_json::Value::Bool(b) => wanted == if *b { "true" } else { "false" },
        serde_json::Value::Number(n) => n.to_string() == wanted,
        serde_json::Value::Null | serde_json::Value::Object(_) => false,
    }
}

/// A set of operations as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct OpSet(u8);

impl OpSet {
    fn parse(policy: &str, ops: &[String]) -> Result<OpSet, PolicyError> {
        let mut set = OpSet(0);
        for op in ops {
            if op == "*" {
                set.0 = u8::MAX;
            } else {
                let operation = Operation::parse(op).ok_or_else(|| PolicyError::BadOperation {
                    policy: policy.into(),
                    operation: op.clone(),
                })?;
                set.0 |= 1 << operation as u8;
            }
        }
        Ok(set)
    }

    fn contains(self, operation: Operation) -> bool {
        self.0 & (1 << operation as u8) != 0
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One compiled `[[policy]]`.
#[derive(Clone, Debug)]
struct Rule {
    name: String,
    subjects: Vec<Subject>,
    targets: GlobSet,
    allow: OpSet,
    review: OpSet,
    deny: OpSet,
    tables: Vec<TablePattern>,
    /// The table part of each `tables` pattern, lowercase.
    table_names: Vec<String>,
    schemas: Vec<NameGlob>,
    mask: Vec<String>,
    mask_columns: Vec<String>,
}

impl Rule {
    fn compile(config: &PolicyConfig) -> Result<Rule, PolicyError> {
        let name = config.name.clone();
        let subjects = config
            .subjects
            .iter()
            .map(|s| {
                Subject::parse(s).ok_or_else(|| PolicyError::BadSubject {
                    policy: name.clone(),
                    subject: s.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut targets = GlobSetBuilder::new();
        for pattern in &config.targets {
            targets.add(Glob::new(pattern).map_err(|e| PolicyError::BadPattern {
                policy: name.clone(),
                pattern: pattern.clone(),
                message: e.to_string(),
            })?);
        }
        let targets = targets.build().map_err(|e| PolicyError::BadPattern {
            policy: name.clone(),
            pattern: config.targets.join(", "),
            message: e.to_string(),
        })?;
        Ok(Rule {
            allow: OpSet::parse(&name, &config.allow)?,
            review: OpSet::parse(&name, &config.review)?,
            deny: OpSet::parse(&name, &config.deny)?,
            tables: config
                .tables
                .iter()
                .map(|p| TablePattern::parse(&name, p))
                .collect::<Result<_, _>>()?,
            table_names: config
                .tables
                .iter()
                .map(|p| p.rsplit('.').next().unwrap_or(p).to_lowercase())
                .collect(),
            schemas: config
                .schemas
                .iter()
                .map(|p| NameGlob::new(&name, p, p))
                .collect::<Result<_, _>>()?,
            subjects,
            targets,
            mask: config.mask.clone(),
            mask_columns: config.mask_columns.clone(),
            name,
        })
    }

    fn matches(&self, identity: &Identity, target: &str) -> bool {
        self.targets.is_match(target) && self.subjects.iter().any(|s| s.matches(identity))
    }

    fn has_table_matchers(&self) -> bool {
        !self.tables.is_empty() || !self.schemas.is_empty()
    }

    fn table_matches(&self, table: &TableRef, side: Side, dialect: Dialect) -> bool {
        (self.tables.is_empty() || self.tables.iter().any(|p| p.matches(table, side, dialect)))
            && (self.schemas.is_empty()
                || self
                    .schemas
                    .iter()
                    .any(|g| schema_matches(g, table.schema.as_deref(), side, dialect)))
    }

    /// Does this rule's `tables`/`schemas` restriction cover the statement?
    fn covers(&self, statement: &StatementClass, side: Side, dialect: Dialect) -> bool {
        if !self.has_table_matchers() {
            return true;
        }
        let tables = &statement.tables;
        match side {
            // Any matching table triggers a deny/review, also one read through
            // a view or partition the statement names. A change Warden cannot
            // tie to a table (a function call, an EXECUTE) might touch one.
            Side::Restrictive => {
                if tables.is_empty() {
                    statement.operation > Operation::Read
                } else {
                    tables
                        .iter()
                        .chain(&statement.underlying)
                        .any(|t| self.table_matches(t, side, dialect))
                }
            }
            // An allow must cover every table; a statement touching no table
            // is covered only when it is a read (`SELECT 1`, `SET …`).
            Side::Permissive => {
                if tables.is_empty() {
                    statement.operation == Operation::Read
                } else {
                    tables.iter().all(|t| self.table_matches(t, side, dialect))
                }
            }
        }
    }
}

/// A compiled rule set plus the classifier configured with it.
pub struct PolicySet {
    rules: Vec<Rule>,
    classifier: Classifier,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PolicySet {
    pub fn compile(
        policies: &[PolicyConfig],
        classifier: &ClassifierConfig,
    ) -> Result<PolicySet, PolicyError> {
        Ok(PolicySet {
            rules: policies
                .iter()
                .map(Rule::compile)
                .collect::<Result<_, _>>()?,
            classifier: Classifier::new(classifier),
        })
    }

    /// The `[[policy]]` tables and `[classifier]` of a loaded config.
    pub fn from_config(config: &Config) -> Result<PolicySet, PolicyError> {
        PolicySet::compile(&config.policies, &config.classifier)
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Names of the rules, in file order.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// May this identity open a session on `target`? Yes when some matching
    /// rule allows or reviews anything and no matching rule denies `connect`;
    /// `connect` listed under `review` makes the connect itself reviewed.
    pub fn check_connect(&self, identity: &Identity, target: &str) -> Decision {
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.matches(identity, target))
            .collect();
        let decision = |action: Action, rule: Option<&Rule>, reason: String| {
            Decision::new(
                action,
                Operation::Connect,
                rule.map(|r| r.name.clone()),
                Vec::new(),
                reason,
            )
        };
        if let Some(rule) = matching
            .iter()
            .find(|r| r.deny.contains(Operation::Connect))
        {
            return decision(
                Action::Deny,
                Some(rule),
                format!(
                    "policy \"{}\" denies connect on target \"{target}\"",
                    rule.name
                ),
            );
        }
        if let Some(rule) = matching
            .iter()
            .find(|r| r.review.contains(Operation::Connect))
        {
            return decision(
                Action::Review,
                Some(rule),
                review_reason(&rule.name, Operation::Connect, target),
            );
        }
        if let Some(rule) = matching
            .iter()
            .find(|r| !r.allow.is_empty() || !r.review.is_empty())
        {
            return decision(
                Action::Allow,
                Some(rule),
                format!(
                    "policy \"{}\" allows connect on target \"{target}\"",
                    rule.name
                ),
            );
        }
        decision(
            Action::Deny,
            None,
            format!("no rule allows connect on target \"{target}\""),
        )
    }

    /// Masking applies from every matching rule: rules only add masks.
    pub fn mask_rules(&self, identity: &Identity, target: &str) -> MaskRules {
        let mut rules = MaskRules::default();
        for rule in self.rules.iter().filter(|r| r.matches(identity, target)) {
            rules.detectors.extend(rule.mask.iter().cloned());
            rules.columns.extend(rule.mask_columns.iter().cloned());
        }
        rules.detectors.sort();
        rules.detectors.dedup();
        rules.columns.sort();
        rules.columns.dedup();
        rules
    }

    /// See [`warden_core::engines::PolicyEngine::ruled_tables`].
    pub fn ruled_tables(&self, identity: &Identity, target: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.matches(identity, target)) {
            if !rule.deny.is_empty() || !rule.review.is_empty() {
                names.extend(rule.table_names.iter().cloned());
            }
            names.extend(
                rule.mask_columns
                    .iter()
                    .filter_map(|c| crate::derived::masked_table(c)),
            );
        }
        names.sort();
        names.dedup();
        names
    }

    /// True when no rule lets this identity do anything but read on the
    /// target, so its upstream session can be made read-only as a second wall.
    pub fn is_read_only(&self, identity: &Identity, target: &str) -> bool {
        const CHANGES: [Operation; 4] = [
            Operation::Write,
            Operation::Ddl,
            Operation::Admin,
            Operation::Unknown,
        ];
        !self
            .rules
            .iter()
            .filter(|r| r.matches(identity, target))
            .any(|r| {
                CHANGES
                    .iter()
                    .any(|&op| r.allow.contains(op) || r.review.contains(op))
            })
    }

    /// Classifies and decides a statement text on its own (no session state:
    /// an `EXECUTE` resolves only against a `PREPARE` in the same text).
    pub fn check_statement(
        &self,
        identity: &Identity,
        target: &str,
        dialect: Dialect,
        sql: &str,
    ) -> Decision {
        let classification = self.classifier.classify(dialect, sql);
        self.decide(identity, target, dialect, &classification)
    }

    /// Decides an already classified text: each statement is decided on its
    /// own and the strictest decision wins.
    pub fn decide(
        &self,
        identity: &Identity,
        target: &str,
        dialect: Dialect,
        classification: &Classification,
    ) -> Decision {
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.matches(identity, target))
            .collect();
        let mut worst: Option<Decision> = None;
        for statement in &classification.statements {
            let decision = decide_statement(&matching, target, dialect, statement);
            let stricter = worst
                .as_ref()
                .is_none_or(|w| strictness(decision.action()) > strictness(w.action()));
            if stricter {
                worst = Some(decision);
            }
        }
        let decision = worst.unwrap_or_else(|| {
            // An empty text (only comments) runs nothing: judge it as a read.
            decide_statement(
                &matching,
                target,
                dialect,
                &StatementClass::new(Operation::Read, "empty"),
            )
        });
        decision.with_tables(classification.table_names())
    }
}

fn strictness(action: Action) -> u8 {
    match action {
        Action::Allow => 0,
        Action::Review => 1,
        Action::Deny => 2,
    }
}

fn review_reason(rule: &str, operation: Operation, target: &str) -> String {
    format!("policy \"{rule}\" requires a human review for {operation} on target \"{target}\"")
}

fn decide_statement(
    matching: &[&Rule],
    target: &str,
    dialect: Dialect,
    statement: &StatementClass,
) -> Decision {
    let operation = statement.operation;
    if let Some(refusal) = &statement.refusal {
        return Decision::new(
            Action::Deny,
            operation,
            None,
            statement.tables.iter().map(ToString::to_string).collect(),
            format!("Warden refuses this statement: {refusal}"),
        );
    }
    let find = |pick: fn(&Rule) -> OpSet, side: Side| {
        matching
            .iter()
            .find(|r| pick(r).contains(operation) && r.covers(statement, side, dialect))
    };
    let (action, rule, reason) = if let Some(rule) = find(|r| r.deny, Side::Restrictive) {
        (
            Action::Deny,
            Some(rule),
            format!(
                "policy \"{}\" denies {operation} on target \"{target}\"",
                rule.name
            ),
        )
    } else if let Some(rule) = find(|r| r.review, Side::Restrictive) {
        (
            Action::Review,
            Some(rule),
            review_reason(&rule.name, operation, target),
        )
    } else if let Some(rule) = find(|r| r.allow, Side::Permissive) {
        (
            Action::Allow,
            Some(rule),
            format!(
                "policy \"{}\" allows {operation} on target \"{target}\"",
                rule.name
            ),
        )
    } else {
        (
            Action::Deny,
            None,
            format!("no rule allows {operation} on target \"{target}\""),
        )
    };
    Decision::new(
        action,
        operation,
        rule.map(|r| r.name.clone()),
        statement.tables.iter().map(ToString::to_string).collect(),
        reason,
    )
}
