//! Statement grants: the proof a protocol must hand over to forward one
//! statement upstream.
//!
//! A protocol asks policy about a statement and gets a [`Decision`];
//! [`judge`] turns it into a [`Judgement`]. Only an allowing decision, or a
//! review hold that a reviewer approved ([`crate::hold`]), yields a
//! [`StatementGrant`]. Forwarding functions take the grant by value, so a
//! statement cannot reach the upstream without a decision, and one decision
//! releases one statement.

use crate::{Action, Decision, Operation};

/// Proof that one statement may be forwarded. Not `Clone`; only this
/// crate builds it.
#[derive(Debug)]
#[must_use = "a grant is spent by forwarding the statement it allows"]
pub struct StatementGrant {
    operation: Operation,
    /// The review that released the statement, when one did. (Nothing is
    /// allocated for an ordinary allow: one is made per statement.)
    review_id: Option<String>,
}

impl StatementGrant {
    pub(crate) fn approved(decision: &Decision, review_id: Option<String>) -> StatementGrant {
        StatementGrant {
            operation: decision.operation(),
            review_id,
        }
    }

    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The review that released it, if a reviewer did.
    pub fn review_id(&self) -> Option<&str> {
        self.review_id.as_deref()
    }

    /// Spends the grant: the statement goes upstream now.
    pub fn spend(self) {}
}

/// What a protocol does with a statement, decided by policy.
#[derive(Debug)]
pub enum Judgement {
    /// Forward it with this grant.
    Allowed(StatementGrant),
    /// Hold it for a reviewer ([`crate::hold::hold`]); the decision names the rule.
    Review(Decision),
    /// Answer it with an error; the decision says why.
    Denied(Decision),
}

/// The judgement a decision calls for.
pub fn judge(decision: Decision) -> Judgement {
    match decision.action() {
        Action::Allow => Judgement::Allowed(StatementGrant::approved(&decision, None)),
        Action::Review => Judgement::Review(decision),
        Action::Deny => Judgement::Denied(decision),
    }
}

/// Proof that a statement may be prepared upstream (Postgres Parse, MySQL
/// COM_STMT_PREPARE) — which runs nothing. Policy allows or reviews it; a
/// reviewed one is held at each execution, when its parameters are known.
#[derive(Debug)]
#[must_use = "a grant is spent by forwarding the preparation it allows"]
pub struct PrepareGrant {
    _private: (),
}

impl PrepareGrant {
    /// Spends the grant: the preparation goes upstream now.
    pub fn spend(self) {}
}

/// A grant to prepare the statement `decision` judged, unless it is denied.
pub fn judge_prepare(decision: &Decision) -> Option<PrepareGrant> {
    match decision.action() {
        Action::Allow | Action::Review => Some(PrepareGrant { _private: () }),
        Action::Deny => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(action: Action) -> Decision {
        Decision::new(action, Operation::Write, Some("r".into()), vec![], "why")
    }

    #[test]
    fn only_allow_grants() {
        assert!(matches!(
            judge(decision(Action::Allow)),
            Judgement::Allowed(grant) if grant.operation() == Operation::Write && grant.review_id().is_none()
        ));
        assert!(matches!(
            judge(decision(Action::Review)),
            Judgement::Review(_)
        ));
        assert!(matches!(
            judge(decision(Action::Deny)),
            Judgement::Denied(_)
        ));
        assert!(judge_prepare(&decision(Action::Review)).is_some());
        assert!(judge_prepare(&decision(Action::Deny)).is_none());
    }

    #[test]
    fn tightening_never_allows() {
        let denied = decision(Action::Allow).tightened("confined to its database");
        assert_eq!(denied.action(), Action::Deny);
        assert_eq!(denied.reason(), "confined to its database");
        assert_eq!(denied.rule(), Some("r"));
        let still = decision(Action::Review).tightened("masking applies");
        assert_eq!(still.action(), Action::Deny);
    }
}
