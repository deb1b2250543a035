//! What a statement does, and what policy decided about it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The operations a policy speaks of. Ordered from least to most strict, so a
/// multi-statement query is judged by `max()` of its statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Connect,
    Read,
    Write,
    Ddl,
    Admin,
    /// Anything that does not parse; treated as the strictest.
    Unknown,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Connect,
        Operation::Read,
        Operation::Write,
        Operation::Ddl,
        Operation::Admin,
        Operation::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Ddl => "ddl",
            Operation::Admin => "admin",
            Operation::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == text)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a policy rule says to do with an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    /// Hold for a human reviewer.
    Review,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Review => "review",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy decision. Always names the rule that made it (`None` only for the
/// implicit deny when no rule matched).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    action: Action,
    operation: Operation,
    /// The `[[policy]]` name that decided, or `None` for "no rule matched".
    rule: Option<String>,
    /// Tables the statement touches, as the classifier saw them.
    tables: Vec<String>,
    /// Why, in words for the client and the audit trail.
    reason: String,
}

impl Decision {
    /// A policy engine's verdict on one operation.
    pub fn new(
        action: Action,
        operation: Operation,
        rule: Option<String>,
        tables: Vec<String>,
        reason: impl Into<String>,
    ) -> Decision {
        Decision {
            action,
            operation,
            rule,
            tables,
            reason: reason.into(),
        }
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The `[[policy]]` name that decided, or `None` for "no rule matched".
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }

    /// Tables the statement touches, as the classifier saw them.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Why, in words for the client and the audit trail.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The decision naming the tables the whole statement touches (a
    /// policy engine judges each part, then names them all).
    pub fn with_tables(self, tables: Vec<String>) -> Decision {
        Decision { tables, ..self }
    }

    /// The same decision turned into a deny for `reason`: a protocol's own
    /// check (a database the target is confined from …) can only make a
    /// decision stricter, never allow what policy did not.
    pub fn tightened(self, reason: impl Into<String>) -> Decision {
        Decision {
            action: Action::Deny,
            reason: reason.into(),
            ..self
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.action == Action::Allow
    }

    /// The rule name for messages: the rule, or `(no matching rule)`.
    pub fn rule_name(&self) -> &str {
        self.rule.as_deref().unwrap_or("(no matching rule)")
    }
}

/// Longest statement text a decision log line carries.
const LOGGED_TEXT_LIMIT: usize = 500;

/// Logs, at INFO, a statement decision that is not a plain allow (denied,
/// held for review), so operators see refusals without reading recordings:
/// the rule, the classification, the reason and the statement as recordings
/// keep it (`recorded`, already masked; cut to 500 characters; withheld
/// when it may carry a password). Log lines also pass the log scrubber.
pub fn log_statement_decision(session: &str, protocol: &str, decision: &Decision, recorded: &str) {
    if decision.is_allowed() {
        return;
    }
    let upper = recorded.to_ascii_uppercase();
    let statement = if recorded.is_empty() {
        "[not captured: recording.capture_statements is off]".to_string()
    } else if upper.contains("PASSWORD") || upper.contains("IDENTIFIED") {
        "[withheld: the statement may carry a password]".to_string()
    } else if recorded.chars().count() > LOGGED_TEXT_LIMIT {
        let cut: String = recorded.chars().take(LOGGED_TEXT_LIMIT).collect();
        format!("{cut}…")
    } else {
        recorded.to_string()
    };
    let held = decision.action == Action::Review;
    macro_rules! log {
        ($message:literal) => {
            tracing::info!(
                session,
                protocol,
                rule = decision.rule_name(),
                operation = %decision.operation,
                tables = ?decision.tables,
                reason = %decision.reason,
                statement = %statement,
                $message
            )
        };
    }
    if held {
        log!("statement held for review");
    } else {
        log!("statement denied");
    }
}
