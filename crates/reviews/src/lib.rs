//! warden-reviews: human approval of held statements and access requests.
//!
//! [`ReviewService`] implements [`warden_core::reviews::ReviewEngine`]: it
//! keeps reviews in the shared store ([`warden_core::review_store::ReviewStore`]),
//! applies the approver rules of the `[[policy]]` that asked for the review
//! (`approvers`, `min_approvals`, `approval_scope`, `review_timeout`),
//! creates time-boxed access grants, writes every step to the audit trail
//! and tells `[[reviews.webhook]]` endpoints.

mod error;
pub mod rules;
mod service;
pub mod webhook;

pub use error::ReviewError;
pub use service::{ReviewDetail, ReviewOptions, ReviewService, SweepReport};
pub use webhook::{Links, Webhook, WebhookOptions};
