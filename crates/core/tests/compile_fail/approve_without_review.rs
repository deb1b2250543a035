// Only the review hold turns a reviewed decision into a grant.
use warden_core::Decision;
use warden_core::grant::StatementGrant;

fn release(decision: &Decision) -> StatementGrant {
    StatementGrant::approved(decision, None)
}

fn main() {
    let _ = release;
}
