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
    // The kernel may hand the same ephemeral port to two binds in a row once
    // the first is closed: never give one out twice in a process (a test's
    // listener and admin port once collided this way).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Installs the rustls crypto provider (see `warden_core::tls`). Call first in every test.
pub fn init() {
    warden_core::tls::install_crypto_provider();
}
