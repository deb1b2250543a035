//! Name patterns of `[[policy]]` rules: table and schema globs, and which
//! way a rule leans when a name is unqualified or differs only in case.

use super::PolicyError;
use crate::classify::TableRef;
use globset::{GlobBuilder, GlobMatcher};
use warden_core::request::Dialect;

/// Which way a rule leans: deny and review rules must catch every statement
/// they might concern; allow rules must cover everything a statement touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Restrictive,
    Permissive,
}

/// A glob matched case-sensitively (allow side, PostgreSQL) or not.
#[derive(Clone, Debug)]
pub(super) struct NameGlob {
    exact_case: GlobMatcher,
    any_case: GlobMatcher,
}

impl NameGlob {
    pub(super) fn new(policy: &str, pattern: &str, whole: &str) -> Result<NameGlob, PolicyError> {
        let build = |insensitive: bool| {
            GlobBuilder::new(pattern)
                .case_insensitive(insensitive)
                .literal_separator(false)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| PolicyError::BadPattern {
                    policy: policy.into(),
                    pattern: whole.into(),
                    message: e.to_string(),
                })
        };
        Ok(NameGlob {
            exact_case: build(false)?,
            any_case: build(true)?,
        })
    }

    pub(super) fn is_match(&self, name: &str, side: Side, dialect: Dialect) -> bool {
        match (side, dialect) {
            // PostgreSQL already folded unquoted names; a quoted "Orders" is
            // another table than orders, so an allow must name it exactly.
            (Side::Permissive, Dialect::Postgres) => self.exact_case.is_match(name),
            _ => self.any_case.is_match(name),
        }
    }
}

/// `tables = ["billing.*", "orders"]`: a pattern with a dot matches
/// `schema.table`, one without matches the table in any schema.
#[derive(Clone, Debug)]
pub(super) struct TablePattern {
    schema: Option<NameGlob>,
    table: NameGlob,
}

/// The schema an unqualified name is taken to be in by allow rules.
pub(super) fn default_schema(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Postgres => Some("public"),
        // The current database can be changed with USE: no safe default.
        Dialect::Mysql => None,
    }
}

/// Does `schema` (absent when the statement did not qualify the name) match?
pub(super) fn schema_matches(
    glob: &NameGlob,
    schema: Option<&str>,
    side: Side,
    dialect: Dialect,
) -> bool {
    match (schema, side) {
        (Some(schema), _) => glob.is_match(schema, side, dialect),
        // Unknown schema: a deny or review must assume it could be any.
        (None, Side::Restrictive) => true,
        (None, Side::Permissive) => {
            default_schema(dialect).is_some_and(|s| glob.is_match(s, side, dialect))
        }
    }
}

impl TablePattern {
    pub(super) fn parse(policy: &str, pattern: &str) -> Result<TablePattern, PolicyError> {
        match pattern.rsplit_once('.') {
            Some((schema, table)) => {
                let schema = schema.rsplit('.').next().unwrap_or(schema);
                Ok(TablePattern {
                    schema: Some(NameGlob::new(policy, schema, pattern)?),
                    table: NameGlob::new(policy, table, pattern)?,
                })
            }
            None => Ok(TablePattern {
                schema: None,
                table: NameGlob::new(policy, pattern, pattern)?,
            }),
        }
    }

    pub(super) fn matches(&self, table: &TableRef, side: Side, dialect: Dialect) -> bool {
        self.table.is_match(&table.name, side, dialect)
            && self
                .schema
                .as_ref()
                .is_none_or(|glob| schema_matches(glob, table.schema.as_deref(), side, dialect))
    }
}
