//! Where the test suite's non-Rust tools live.
//!
//! `scripts/setup.sh` puts the Python drivers in a virtualenv under
//! `.tools/venv` (Debian's own python3 is externally managed and has no pip),
//! and, when the system Node.js is older than 20, a Node.js from the npm
//! registry under `.tools/node`. Tests call these helpers instead of naming
//! `python3` or `node`, so a plain `cargo nextest run` finds the same tools
//! `scripts/test.sh` does; without a `.tools` entry they fall back to `PATH`.

use std::path::{Path, PathBuf};

/// The workspace's `.tools` directory (it may not exist).
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools")
}

/// The python3 that has psycopg, PyMySQL and moto installed.
pub fn python3() -> PathBuf {
    prefer(tools_dir().join("venv/bin/python3"), "python3")
}

/// A Node.js that runs the test OIDC provider (20 or newer).
pub fn node() -> PathBuf {
    prefer(tools_dir().join("node/bin/node"), "node")
}

fn prefer(local: PathBuf, on_path: &str) -> PathBuf {
    if local.exists() {
        local
    } else {
        PathBuf::from(on_path)
    }
}
