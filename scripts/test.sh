#!/usr/bin/env bash
# The test command: set-up, lint, then the whole suite (real PostgreSQL,
# MariaDB, OIDC provider and the warden binary, started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
# nextest runs each test in its own process, in parallel, with a clear summary.
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --test-threads 6
else
  cargo test --workspace --locked --no-fail-fast
fi
