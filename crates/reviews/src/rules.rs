//! Who may decide a review, and when a review is approved. Pure functions:
//! the service feeds them what the store holds.

use crate::error::ReviewError;
use std::time::Duration;
use warden_core::config::PolicyConfig;
use warden_core::review_store::{ApprovalScope, ReviewRecord, ReviewVote, principal};
use warden_core::{Identity, IdentityKind};
use warden_policy::rules::subject_matches;

/// The review settings of one `[[policy]]`, copied into each review it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSettings {
    pub approvers: Vec<String>,
    pub min_approvals: u32,
    pub scope: ApprovalScope,
    pub timeout: Duration,
}

impl RuleSettings {
    /// Settings when the rule is unknown (renamed or removed since the
    /// statement was held): nobody may approve, so the review times out.
    pub fn nobody(timeout: Duration) -> RuleSettings {
        RuleSettings {
            approvers: Vec::new(),
            min_approvals: 1,
            scope: ApprovalScope::Statement,
            timeout,
        }
    }

    pub fn of(policy: &PolicyConfig) -> RuleSettings {
        RuleSettings {
            approvers: policy.approvers.clone(),
            // Zero approvals would release a statement nobody looked at.
            min_approvals: policy.min_approvals.max(1),
            // `warden check` refuses other values; anything else is the narrower scope.
            scope: ApprovalScope::parse(&policy.approval_scope).unwrap_or(ApprovalScope::Statement),
            timeout: policy.review_timeout,
        }
    }
}

/// Looks up the review settings of the rule named `name`.
pub fn settings_for(policies: &[PolicyConfig], name: Option<&str>) -> Option<RuleSettings> {
    let name = name?;
    policies
        .iter()
        .find(|p| p.name == name)
        .map(RuleSettings::of)
}

/// The first policy that lets `requester` ask for access to `target`: it
/// matches the requester and the target and lists `connect` (or `*`) under
/// `review`, with approvers to ask.
pub fn access_rule<'p>(
    policies: &'p [PolicyConfig],
    requester: &Identity,
    target: &str,
) -> Option<&'p PolicyConfig> {
    policies.iter().find(|policy| {
        policy.review.iter().any(|op| op == "connect" || op == "*")
            && !policy.approvers.is_empty()
            && policy
                .subjects
                .iter()
                .any(|s| subject_matches(s, requester))
            && policy.targets.iter().any(|pattern| {
                globset::Glob::new(pattern)
                    .map(|glob| glob.compile_matcher().is_match(target))
                    .unwrap_or(false)
            })
    })
}

/// True when `a` and `b` are the same caller: the same principal, the same
/// `sub` from OIDC issuers, or the same e-mail. Deliberately broad: it only
/// ever refuses a decision.
pub fn same_person(a: &Identity, b: &Identity) -> bool {
    let both_oidc = matches!(
        (&a.kind, &b.kind),
        (IdentityKind::Oidc { .. }, IdentityKind::Oidc { .. })
    );
    principal(a) == principal(b)
        || (both_oidc && a.subject == b.subject)
        || matches!((&a.email, &b.email), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y))
}

/// Is `identity` listed among the review's approvers?
pub fn is_approver(review: &ReviewRecord, identity: &Identity) -> bool {
    review
        .approvers
        .iter()
        .any(|pattern| subject_matches(pattern, identity))
}

/// May `reviewer` vote on `review` now? Checks, in order: the review is
/// pending, the reviewer is not the requester, the reviewer is an
/// approver, the reviewer has not voted yet.
pub fn check_vote(
    review: &ReviewRecord,
    votes: &[ReviewVote],
    reviewer: &Identity,
) -> Result<(), ReviewError> {
    if review.state.is_final() {
        return Err(ReviewError::AlreadyDecided {
            id: review.id.clone(),
            state: review.state,
        });
    }
    if same_person(&review.requester, reviewer) {
        return Err(ReviewError::SelfReview {
            id: review.id.clone(),
        });
    }
    if !is_approver(review, reviewer) {
        return Err(ReviewError::NotApprover {
            id: review.id.clone(),
            approvers: review.approvers.clone(),
        });
    }
    let me = principal(reviewer);
    if votes.iter().any(|vote| vote.reviewer == me) {
        return Err(ReviewError::AlreadyVoted {
            id: review.id.clone(),
        });
    }
    Ok(())
}

/// The distinct approvers among `votes` (never the requester), in vote order.
pub fn approvals<'v>(review: &ReviewRecord, votes: &'v [ReviewVote]) -> Vec<&'v ReviewVote> {
    let mut seen = std::collections::HashSet::new();
    votes
        .iter()
        .filter(|vote| vote.approve && vote.reviewer != review.requester_principal)
        .filter(|vote| seen.insert(vote.reviewer.as_str()))
        .collect()
}

/// Enough distinct approvals to release the review?
pub fn is_approved(review: &ReviewRecord, votes: &[ReviewVote]) -> bool {
    let needed = usize::try_from(review.min_approvals.max(1)).unwrap_or(usize::MAX);
    approvals(review, votes).len() >= needed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use warden_core::review_store::ReviewState;
    use warden_core::reviews::ReviewKind;
    use warden_core::{IdentityKind, Operation};

    fn oidc(sub: &str, groups: &[&str], email: Option<&str>) -> Identity {
        Identity {
            subject: sub.into(),
            kind: IdentityKind::Oidc {
                issuer: "https://idp".into(),
            },
            groups: groups.iter().map(|g| g.to_string()).collect(),
            email: email.map(str::to_string),
            claims: serde_json::Map::new(),
        }
    }

    fn review(requester: &Identity, approvers: &[&str], min: u32) -> ReviewRecord {
        let now = OffsetDateTime::now_utc();
        ReviewRecord {
            id: "r1".into(),
            kind: ReviewKind::Statement,
            state: ReviewState::Pending,
            session_id: Some("s".into()),
            target: "orders".into(),
            requester: requester.clone(),
            requester_principal: principal(requester),
            statement: Some("DELETE FROM orders".into()),
            statement_hash: Some("h".into()),
            operation: Operation::Write,
            tables: vec![],
            rule: Some("r".into()),
            reason: None,
            duration_secs: None,
            approvers: approvers.iter().map(|a| a.to_string()).collect(),
            min_approvals: min,
            approval_scope: ApprovalScope::Statement,
            created_at: now,
            expires_at: now,
            decided_at: None,
            decided_by: None,
            decision_comment: None,
        }
    }

    fn vote(who: &Identity, approve: bool) -> ReviewVote {
        ReviewVote {
            review_id: "r1".into(),
            reviewer: principal(who),
            reviewer_name: who.display_name(),
            approve,
            comment: None,
            at: OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn the_requester_can_never_decide_even_as_an_approver() {
        let alice = oidc("alice", &["dba"], Some("alice@example.com"));
        let r = review(&alice, &["group:dba"], 1);
        assert!(matches!(
            check_vote(&r, &[], &alice),
            Err(ReviewError::SelfReview { .. })
        ));
        // The same person through another issuer, by e-mail.
        let mut other = oidc("alice-2", &["dba"], Some("ALICE@example.com"));
        other.kind = IdentityKind::Oidc {
            issuer: "https://other".into(),
        };
        assert!(matches!(
            check_vote(&r, &[], &other),
            Err(ReviewError::SelfReview { .. })
        ));
    }

    #[test]
    fn only_listed_approvers_may_vote() {
        let agent = oidc("agent", &["agents"], None);
        let r = review(&agent, &["group:dba", "sub:carol"], 1);
        assert!(check_vote(&r, &[], &oidc("bob", &["dba"], None)).is_ok());
        assert!(check_vote(&r, &[], &oidc("carol", &[], None)).is_ok());
        assert!(matches!(
            check_vote(&r, &[], &oidc("mallory", &["agents"], None)),
            Err(ReviewError::NotApprover { .. })
        ));
        let nobody = review(&agent, &[], 1);
        assert!(matches!(
            check_vote(&nobody, &[], &oidc("bob", &["dba"], None)),
            Err(ReviewError::NotApprover { .. })
        ));
    }

    #[test]
    fn min_approvals_counts_distinct_approvers() {
        let agent = oidc("agent", &["agents"], None);
        let bob = oidc("bob", &["dba"], None);
        let carol = oidc("carol", &["dba"], None);
        let r = review(&agent, &["group:dba"], 2);
        assert!(!is_approved(&r, &[vote(&bob, true)]));
        assert!(!is_approved(&r, &[vote(&bob, true), vote(&bob, true)]));
        assert!(!is_approved(&r, &[vote(&bob, true), vote(&carol, false)]));
        assert!(!is_approved(&r, &[vote(&bob, true), vote(&agent, true)]));
        assert!(is_approved(&r, &[vote(&bob, true), vote(&carol, true)]));
        // A second vote by the same reviewer is refused before it is counted.
        assert!(matches!(
            check_vote(&r, &[vote(&bob, true)], &bob),
            Err(ReviewError::AlreadyVoted { .. })
        ));
        // min_approvals = 0 still needs one.
        let zero = review(&agent, &["group:dba"], 0);
        assert!(!is_approved(&zero, &[]));
        assert!(is_approved(&zero, &[vote(&bob, true)]));
    }

    #[test]
    fn decided_reviews_refuse_votes() {
        let agent = oidc("agent", &["agents"], None);
        let mut r = review(&agent, &["group:dba"], 1);
        r.state = ReviewState::Denied;
        assert!(matches!(
            check_vote(&r, &[], &oidc("bob", &["dba"], None)),
            Err(ReviewError::AlreadyDecided {
                state: ReviewState::Denied,
                ..
            })
        ));
    }

    fn policy(text: &str) -> PolicyConfig {
        let config = warden_core::config::Config::parse(text, "t.toml").unwrap();
        config.policies.into_iter().next().unwrap()
    }

    #[test]
    fn settings_come_from_the_named_rule() {
        let p = policy(
            r#"
[[policy]]
name = "writes"
subjects = ["group:agents"]
targets = ["orders"]
review = ["write"]
approvers = ["group:dba"]
min_approvals = 2
approval_scope = "session"
review_timeout = "30s"
"#,
        );
        let policies = vec![p];
        let s = settings_for(&policies, Some("writes")).unwrap();
        assert_eq!(s.approvers, vec!["group:dba".to_string()]);
        assert_eq!(s.min_approvals, 2);
        assert_eq!(s.scope, ApprovalScope::Session);
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert!(settings_for(&policies, Some("other")).is_none());
        assert!(settings_for(&policies, None).is_none());
    }

    #[test]
    fn access_rules_need_connect_review_a_matching_subject_and_target() {
        let p = policy(
            r#"
[[policy]]
name = "break glass"
subjects = ["group:oncall"]
targets = ["orders*"]
review = ["connect"]
approvers = ["group:dba"]
"#,
        );
        let policies = vec![p];
        let oncall = oidc("o", &["oncall"], None);
        assert!(access_rule(&policies, &oncall, "orders-eu").is_some());
        assert!(access_rule(&policies, &oncall, "billing").is_none());
        assert!(access_rule(&policies, &oidc("x", &["agents"], None), "orders").is_none());
    }
}
