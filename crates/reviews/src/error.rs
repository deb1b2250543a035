//! Why a review operation was refused. Each variant says what to do next.

use warden_core::engines::StoreError;
use warden_core::review_store::ReviewState;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no review {id}; `warden reviews list` shows the pending ones")]
    NotFound { id: String },
    #[error("review {id} was requested by you; someone else among its approvers must decide it")]
    SelfReview { id: String },
    #[error("you are not an approver of review {id} (approvers: {})", display_approvers(.approvers))]
    NotApprover { id: String, approvers: Vec<String> },
    #[error("review {id} is already {state}; a decided review cannot change")]
    AlreadyDecided { id: String, state: ReviewState },
    #[error("you already voted on review {id}; it needs approvals from other approvers")]
    AlreadyVoted { id: String },
    #[error("{0}")]
    BadRequest(String),
    /// No `[[policy]]` lets this caller ask for access to this target.
    #[error(
        "no [[policy]] lets you request access to target \"{target}\": a policy matching you and the target needs review = [\"connect\"] and approvers"
    )]
    NoAccessRule { target: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn display_approvers(approvers: &[String]) -> String {
    if approvers.is_empty() {
        "none configured".into()
    } else {
        approvers.join(", ")
    }
}
