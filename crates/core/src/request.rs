//! What a protocol asks policy about. Core knows no wire protocol: each
//! protocol crate builds the [`Request`] variant for what its client sent
//! (a SQL statement with its dialect today; an SSH command or channel and an
//! HTTP method and path are the variants the next protocols add), and the
//! policy engine judges it.

use serde::{Deserialize, Serialize};

/// One operation a client asks to run, as its protocol describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// A SQL statement text, lexed and classified by `dialect`'s rules.
    Sql { dialect: Dialect, text: &'a str },
}

impl<'a> Request<'a> {
    pub fn sql(dialect: Dialect, text: &'a str) -> Request<'a> {
        Request::Sql { dialect, text }
    }
}

/// The SQL dialect a statement is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// Which sub-protocol carried a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementProtocol {
    /// Postgres Query message / MySQL COM_QUERY.
    Simple,
    /// Postgres Parse/Bind/Execute / MySQL prepared statements.
    Extended,
    /// Postgres FunctionCall.
    FunctionCall,
}

/// A relation that reads another's rows: a partition or inheritance child
/// of `source`, or a view (or materialized view) whose definition reads it,
/// directly or through other views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedRelation {
    pub schema: String,
    pub name: String,
    pub source_schema: String,
    pub source: String,
}

/// A view that calls a volatile function when read (directly or through
/// the views it reads): reading it is judged as calling the function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewFunction {
    pub schema: String,
    pub view: String,
    pub function_schema: String,
    pub function: String,
}
