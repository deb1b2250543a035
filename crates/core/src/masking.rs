//! The interface protocol crates mask result values through. The masking
//! engine (crate `warden-masking`) compiles a session's rules once; the relay
//! asks it per result column whether a rule covers the column, and per value
//! what the value becomes.

use crate::Identity;
use std::sync::Arc;

/// The masking rules that apply to one identity on one target, gathered from
/// every matching `[[policy]]` (`mask` detectors and `mask_columns` patterns).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskRules {
    /// Detector names (`email`, `secret`, …), sorted, without duplicates.
    pub detectors: Vec<String>,
    /// Column patterns (`schema.table.column`, `table.column`, `*password*`), sorted.
    pub columns: Vec<String>,
}

impl MaskRules {
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty() && self.columns.is_empty()
    }
}

/// A result column as the relay knows it. `table`/`schema` are the real
/// source of the column when the protocol tells it (Postgres table OID,
/// MySQL `org_table`); they are `None` for expressions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnSource {
    pub schema: Option<String>,
    pub table: Option<String>,
    /// The column's real name in its table (`None` for expressions).
    pub column: Option<String>,
    /// The name the result gives the column (its alias).
    pub label: String,
    /// For a view's column: the base-table columns the view's definition
    /// reads (all of them: the catalog does not say which feeds which), so a
    /// view cannot launder a covered column.
    pub derived_from: Vec<ColumnSource>,
}

/// What one value becomes.
#[derive(Debug, PartialEq, Eq)]
pub enum Masked {
    /// Nothing to mask: forward the value as it is.
    Unchanged,
    /// Replace the value (`None`: SQL NULL). `detector` names the rule
    /// (`column`, `email`, …) for the session's counters.
    Replaced {
        value: Option<String>,
        detector: Arc<str>,
    },
}

/// A session's compiled masking rules.
pub trait SessionMasker: Send + Sync {
    /// True when some rule names columns (the relay must then learn each
    /// result column's source table).
    fn has_column_rules(&self) -> bool;
    /// Does a column rule cover this column (its every value is masked)?
    fn column_covered(&self, column: &ColumnSource) -> bool;
    /// Could a column rule cover some column of this table? A result column
    /// computed from such a table (`lower(col)`, a cast, a UNION) has no
    /// source the server names, so it is masked whole. Defaults to "any
    /// column rule at all".
    fn table_has_column_rules(&self, _schema: Option<&str>, _table: &str) -> bool {
        self.has_column_rules()
    }
    /// Does the statement read, among `tables` (`name` or `schema.name`, as
    /// policy lists them), one a column rule may cover? Its computed result
    /// columns are then masked whole, in every protocol.
    fn reads_covered_table(&self, tables: &[String]) -> bool {
        self.has_column_rules()
            && tables.iter().any(|table| match table.rsplit_once('.') {
                Some((schema, name)) => {
                    quotes_values(name) || self.table_has_column_rules(Some(schema), name)
                }
                None => quotes_values(table) || self.table_has_column_rules(None, table),
            })
    }
    /// True when content detectors are configured (every text value is scanned).
    fn scans_content(&self) -> bool;
    /// Masks one text value; `covered` when a column rule covers its column.
    fn mask_text(&self, value: &str, covered: bool) -> Masked;
    /// A covered value that cannot be rewritten in place (binary format of a
    /// non-text type): true → send NULL, false → refuse the statement.
    fn unmaskable_as_null(&self) -> bool;
}

/// Catalog relations whose columns quote other tables' values: column
/// statistics (most common values, histogram bounds) and other sessions'
/// statement texts. Under column rules a statement reading one is treated as
/// reading a covered table, so its computed columns are masked whole.
pub fn quotes_values(table: &str) -> bool {
    const RELATIONS: &[&str] = &[
        "pg_stats",
        "pg_stats_ext",
        "pg_stats_ext_exprs",
        "pg_statistic",
        "pg_statistic_ext_data",
        "pg_stat_activity",
        "pg_stat_statements",
        "processlist",
    ];
    RELATIONS.iter().any(|r| r.eq_ignore_ascii_case(table))
}

/// A statement text for the recording: with masking rules in force, values
/// the content detectors recognise are masked there too.
pub fn recorded_text(masker: Option<&dyn SessionMasker>, text: &str) -> String {
    match masker.map(|masker| masker.mask_text(text, false)) {
        Some(Masked::Replaced { value, .. }) => value.unwrap_or_else(|| "[MASKED]".into()),
        _ => text.to_string(),
    }
}

/// A statement text as every protocol's recording keeps it: empty when
/// `[recording] capture_statements` is off, else [`recorded_text`].
pub fn recorded_statement(capture: bool, masker: Option<&dyn SessionMasker>, text: &str) -> String {
    if capture {
        recorded_text(masker, text)
    } else {
        String::new()
    }
}

/// Gives each session its masker.
pub trait MaskingEngine: Send + Sync {
    /// The masker for this identity on this target; `None` when no rule
    /// applies, so results pass through undecoded.
    fn for_session(&self, identity: &Identity, target: &str) -> Option<Arc<dyn SessionMasker>>;
}

/// The engine for gateways without masking (tests, tools).
#[derive(Debug, Default)]
pub struct NoMasking;

impl MaskingEngine for NoMasking {
    fn for_session(&self, _identity: &Identity, _target: &str) -> Option<Arc<dyn SessionMasker>> {
        None
    }
}
