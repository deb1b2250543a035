//! Process-wide counters, rendered in Prometheus' text format on `/metrics`.
//!
//! Plain atomics: the relay bumps them on every read, so they must cost no
//! more than an uncontended add.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions_open: AtomicU64,
    pub sessions_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub bytes_from_clients: AtomicU64,
    pub bytes_to_clients: AtomicU64,
    pub statements: AtomicU64,
    pub statements_denied: AtomicU64,
    pub auth_failures: AtomicU64,
    pub upstream_failures: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        let mut emit = |name: &str, kind: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };
        emit(
            "warden_sessions_open",
            "gauge",
            "Client sessions currently open.",
            &self.sessions_open,
        );
        emit(
            "warden_sessions_total",
            "counter",
            "Client sessions accepted since start.",
            &self.sessions_total,
        );
        emit(
            "warden_connections_rejected_total",
            "counter",
            "Connections refused because the connection limit was reached or Warden was shutting down.",
            &self.connections_rejected,
        );
        emit(
            "warden_bytes_from_clients_total",
            "counter",
            "Bytes received from clients.",
            &self.bytes_from_clients,
        );
        emit(
            "warden_bytes_to_clients_total",
            "counter",
            "Bytes sent to clients.",
            &self.bytes_to_clients,
        );
        emit(
            "warden_statements_total",
            "counter",
            "Statements relayed or refused.",
            &self.statements,
        );
        emit(
            "warden_statements_denied_total",
            "counter",
            "Statements refused by policy.",
            &self.statements_denied,
        );
        emit(
            "warden_auth_failures_total",
            "counter",
            "Failed client authentications.",
            &self.auth_failures,
        );
        emit(
            "warden_upstream_failures_total",
            "counter",
            "Sessions that could not reach or log in to their upstream.",
            &self.upstream_failures,
        );
        out
    }
}

/// Decrements `sessions_open` when dropped, so every exit path is counted.
pub struct OpenSessionGuard<'a>(&'a Metrics);

impl<'a> OpenSessionGuard<'a> {
    pub fn new(metrics: &'a Metrics) -> Self {
        metrics.sessions_open.fetch_add(1, Ordering::Relaxed);
        metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
        OpenSessionGuard(metrics)
    }
}

impl Drop for OpenSessionGuard<'_> {
    fn drop(&mut self) {
        self.0.sessions_open.fetch_sub(1, Ordering::Relaxed);
    }
}
