//! Which Warden process writes a session: a node id, and how long a node may
//! stay silent before its open sessions are taken for interrupted.

use std::time::Duration;

/// Names the node explicitly (e.g. a pod name). Optional: by default each
/// process gets a fresh id.
pub const NODE_ID_ENV: &str = "WARDEN_NODE_ID";

/// The longest node id accepted from [`NODE_ID_ENV`].
const MAX_NODE_ID: usize = 200;

/// This process's node id: [`NODE_ID_ENV`] when set, otherwise
/// `{hostname}:{pid}:{random}` (unique per process run).
pub fn node_id() -> String {
    std::env::var(NODE_ID_ENV)
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty() && id.len() <= MAX_NODE_ID)
        .unwrap_or_else(generated_node_id)
}

fn generated_node_id() -> String {
    format!(
        "{}:{}:{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Heartbeat timing of the PostgreSQL store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// How often a serving node writes its heartbeat and sweeps the
    /// sessions of dead nodes.
    pub heartbeat: Duration,
    /// A node whose heartbeat is older than this is dead: its open
    /// sessions are marked interrupted.
    pub stale_after: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_per_call_and_name_the_process() {
        let a = generated_node_id();
        let b = generated_node_id();
        assert_ne!(a, b);
        let pid = format!(":{}:", std::process::id());
        assert!(a.contains(&pid), "{a}");
    }
}
