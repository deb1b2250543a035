// One grant releases one statement: it cannot be copied for a second.
use warden_core::grant::StatementGrant;

fn twice(grant: StatementGrant) -> (StatementGrant, StatementGrant) {
    (grant.clone(), grant)
}

fn main() {
    let _ = twice;
}
