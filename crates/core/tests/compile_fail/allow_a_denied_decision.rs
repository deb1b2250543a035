// A protocol cannot turn policy's deny into an allow.
use warden_core::{Action, Decision};

fn allow(decision: Decision) -> Decision {
    Decision { action: Action::Allow, ..decision }
}

fn main() {
    let _ = allow;
}
