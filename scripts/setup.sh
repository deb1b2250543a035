#!/usr/bin/env bash
# Installs everything Warden's demo and test suite need on a fresh Debian 12
# machine: PostgreSQL 15 (+pgbench), pgbouncer, MariaDB, libclang (for the real
# PostgreSQL parser), OpenSSL, Chromium + chromedriver (web UI test), Python
# drivers and the Node OIDC provider.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
have psql || need_apt+=(postgresql-client)
have pgbouncer || [ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
have mariadbd || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
have mariadb || need_apt+=(mariadb-client)
have sysbench || need_apt+=(sysbench)
have openssl || need_apt+=(openssl)
have node || need_apt+=(nodejs)
have npm || need_apt+=(npm)
have curl || need_apt+=(curl)
# bindgen (for the real PostgreSQL parser) needs the libclang development package.
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
have jq || need_apt+=(jq)
# The reviewer web UI's browser test: Debian's Chromium and its WebDriver.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
have ss || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Python drivers for the non-Rust driver tests, each checked on its own.
need_pip=()
python3 -c 'import psycopg' >/dev/null 2>&1 || need_pip+=('psycopg[binary]>=3.1')
python3 -c 'import pymysql' >/dev/null 2>&1 || need_pip+=('PyMySQL>=1.1')
# moto_server: an AWS Secrets Manager for the credentials tests.
python3 -c 'import moto.server' >/dev/null 2>&1 || need_pip+=('moto[server]>=5.0')
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "setup: installing from PyPI: ${need_pip[*]}"
  python3 -m pip install --quiet "${need_pip[@]}"
fi

# The real OIDC provider used by the identity tests.
if [ -f crates/test-support/oidc-provider/package.json ] && [ ! -d crates/test-support/oidc-provider/node_modules ]; then
  echo "setup: installing the test OIDC provider (npm)"
  (cd crates/test-support/oidc-provider && npm ci --silent --no-audit --no-fund)
fi
# s3s-fs: an S3-compatible server that checks request signatures, for the
# recording tests (0.14.1 is the last release that builds with Rust 1.95).
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "setup: installing s3s-fs 0.14.1 (cargo install, a few minutes)"
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/s3s-fs-build" cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi
echo "setup: done"
