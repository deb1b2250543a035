//! Refusing a statement without answering the client out of order: its
//! frame is replaced by a marker the upstream fails to parse, and the
//! upstream's syntax error is swapped for Warden's error on the way back
//! (see [`super::pending`]).

use super::pending::{Pending, Shared};
use crate::client_error::PgClientError;
use crate::frame::{Frame, Parse, Query};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Instant;
use warden_core::Decision;

/// Queues a refused statement and returns the marker that replaces it: a
/// Query for a simple query, a Parse of statement `parse_name` otherwise.
pub(super) fn deny(
    shared: &Shared,
    decision: &Decision,
    text: Arc<str>,
    started: Instant,
    parse_name: Option<&str>,
) -> BytesMut {
    let error = PgClientError::StatementDenied(decision.clone());
    deny_with(shared, error, text, started, parse_name)
}

/// Like [`deny`], answering with `error`.
pub(super) fn deny_with(
    shared: &Shared,
    error: PgClientError,
    text: Arc<str>,
    started: Instant,
    parse_name: Option<&str>,
) -> BytesMut {
    let nonce = new_nonce();
    let marker = marker_sql(&nonce);
    let replacement = match parse_name {
        Some(name) => parse_message(name, &marker),
        None => query_message(&marker),
    };
    shared.pending().push_back(Pending::Denied {
        nonce,
        error: error.to_wire(),
        text,
        started,
        standalone: parse_name.is_none(),
    });
    replacement
}

/// A statement name for a marker Parse that stands in for a Bind or an
/// Execute: unique, so it redefines none of the client's statements.
pub(super) fn refused_statement_name() -> String {
    format!("warden_refused_{}", new_nonce())
}

fn new_nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// SQL that the upstream refuses at parse time, naming the nonce in its error.
pub(super) fn marker_sql(nonce: &str) -> String {
    format!("WARDEN_DENIED_{nonce}")
}

pub(super) fn query_message(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    Query {
        query: sql.as_bytes(),
    }
    .encode(&mut out);
    out
}

pub(super) fn parse_message(name: &str, sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    Parse {
        name: name.as_bytes(),
        query: sql.as_bytes(),
        parameter_types: Parse::UNTYPED,
    }
    .encode(&mut out);
    out
}
