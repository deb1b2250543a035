// Dialling and credentials take a ConnectGrant; only admission makes one.
use warden_core::Identity;
use warden_core::admission::ConnectGrant;
use warden_core::config::{Protocol, TargetConfig};

fn forge(target: TargetConfig, identity: Identity) -> ConnectGrant {
    ConnectGrant { target, identity, protocol: Protocol::Postgres, rule: String::new(), read_only: false }
}

fn main() {
    let _ = forge;
}
