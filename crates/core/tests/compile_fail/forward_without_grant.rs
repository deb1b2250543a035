// A forward takes a StatementGrant; code outside core cannot make one.
use warden_core::grant::StatementGrant;

fn forward(grant: StatementGrant, _statement: &str) {
    grant.spend();
}

fn main() {
    forward(StatementGrant { operation: warden_core::Operation::Write, review_id: None }, "delete from orders");
}
