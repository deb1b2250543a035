//! The SELECT lists both backends share, as macros so each query stays one
//! static string (`concat!` needs literals).

/// `SELECT <every column> FROM sessions <tail>`.
macro_rules! select_sessions {
    ($tail:literal) => {
        concat!(
            "SELECT id, subject, identity, target, protocol, client_addr, client_tls, ",
            "started_at, ended_at, bytes_from_client, bytes_to_client, statements, end_reason, ",
            "node FROM sessions ",
            $tail
        )
    };
}

/// `SELECT <every column> FROM access_keys <tail>`.
macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, groups, key_sha256, mysql_native_hash, created_at, expires_at, ",
            "revoked_at FROM access_keys ",
            $tail
        )
    };
}

/// `SELECT <every column but the chain> FROM audit_events <tail>`.
macro_rules! select_audit {
    ($tail:literal) => {
        concat!(
            "SELECT at, kind, actor, target, session_id, client_addr, detail ",
            "FROM audit_events ",
            $tail
        )
    };
}

/// `SELECT <every column, chain included> FROM audit_events <tail>`.
macro_rules! select_chained_audit {
    ($tail:literal) => {
        concat!(
            "SELECT id, at, kind, actor, target, session_id, client_addr, detail, prev_hash, hash ",
            "FROM audit_events ",
            $tail
        )
    };
}

/// Statements both backends run as written.
pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (id, subject, identity, target, \
     protocol, client_addr, client_tls, started_at, node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const END_SESSION: &str = "UPDATE sessions SET ended_at = $1, bytes_from_client = $2, \
     bytes_to_client = $3, statements = $4, end_reason = $5 WHERE id = $6";

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_events (at, kind, actor, target, \
     session_id, client_addr, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const CHAIN_HEAD: &str = "SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1";

pub(crate) const INSERT_KEY: &str = "INSERT INTO access_keys (id, name, groups, key_sha256, \
     mysql_native_hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const REVOKE_KEY: &str =
    "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2";

pub(crate) use {select_audit, select_chained_audit, select_keys, select_sessions};
