//! Real parts for tests: each helper starts a real server on a random loopback
//! port inside a temp dir and stops it (and removes the dir) on drop.
//! Nothing here relies on a service someone left running.
//!
//! A dev-dependency only (never linked into `warden`): its `expect`s and
//! panics fail the test that hit them, which is what a test helper should do.

pub mod browser;
pub mod mariadb;
pub mod memory;
pub mod moto;
pub mod oidc;
pub mod postgres;
pub mod process;
pub mod tls;
pub mod tools;
pub mod warden;

/// A free TCP port on 127.0.0.1 (bound and released; a tiny race is accepted).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Installs the rustls crypto provider (see `warden_core::tls`). Call first in every test.
pub fn init() {
    warden_core::tls::install_crypto_provider();
}
