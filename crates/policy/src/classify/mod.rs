//! Statement classification: what a SQL text does (read, write, ddl, admin,
//! unknown) and which tables it touches, from the real parse tree.
//!
//! PostgreSQL text is parsed by libpg_query (the server's own grammar), MySQL
//! and MariaDB text by sqlparser's MySQL dialect. Anything that does not parse
//! is `unknown`, the strictest class; a multi-statement text is judged by its
//! strictest statement.

mod cache;
pub(crate) mod functions;
mod literals;
mod mysql;
mod mysql_lex;
mod mysql_set;
mod mysql_vars;
mod mysql_words;
mod pg_set;
mod pg_walk;
mod postgres;
mod settings;

use cache::BoundedCache;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use warden_core::Operation;
use warden_core::config::ClassifierConfig;
use warden_core::request::Dialect;

pub use functions::FunctionList;
pub use mysql_lex::ServerVersion;
pub(crate) use mysql_lex::resolve_versioned_comments;

/// A table a statement touches. `schema` is `None` when the text did not
/// qualify the name (its schema then depends on the session's search path
/// or current database).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub schema: Option<String>,
    pub name: String,
}

impl TableRef {
    pub fn new(schema: Option<&str>, name: &str) -> TableRef {
        TableRef {
            schema: schema.filter(|s| !s.is_empty()).map(str::to_string),
            name: name.to_string(),
        }
    }
}

/// Serialized as its display form, `schema.table` or `table`.
impl Serialize for TableRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One statement of a (possibly multi-statement) text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatementClass {
    pub operation: Operation,
    /// What the statement is, e.g. `SELECT`, `COPY TO PROGRAM`, `SET ROLE`.
    pub kind: String,
    pub tables: Vec<TableRef>,
    /// Why the statement is stricter than its kind suggests (a
    /// data-modifying CTE, a volatile function …), or why it is unknown.
    pub reasons: Vec<String>,
    /// `PREPARE name …`: the name this statement defines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepares: Option<String>,
    /// `EXECUTE name`: the prepared statement it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executes: Option<String>,
    /// `DEALLOCATE name` (`Some("")` for `DEALLOCATE ALL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deallocates: Option<String>,
    /// Tables read through the views and partitions in `tables` (from the
    /// session's catalog); deny and review rules see them, allows do not
    /// need to cover them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub underlying: Vec<TableRef>,
    /// PostgreSQL `DECLARE`, `FETCH`/`MOVE` and `CLOSE` of a cursor by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<CursorUse>,
    /// Set when Warden refuses the statement whatever the policy says: it
    /// would put the session in a lexing state Warden does not model (so
    /// later statements would run differently from how they were judged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// MySQL: user variables that save or restore a lexing variable.
    #[serde(skip)]
    pub(crate) vars: Option<Box<mysql_set::VarEffects>>,
}

/// What a statement does with a named cursor. A `FETCH` reads what the
/// cursor's query reads, so it carries that query's tables (table rules and
/// the "computed column over a covered table" masking rule see them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CursorUse {
    Declare(String),
    Fetch(String),
    /// `CLOSE name`; `None` for `CLOSE ALL`.
    Close(Option<String>),
}

impl StatementClass {
    pub(crate) fn new(operation: Operation, kind: impl Into<String>) -> StatementClass {
        StatementClass {
            operation,
            kind: kind.into(),
            tables: Vec::new(),
            reasons: Vec::new(),
            prepares: None,
            executes: None,
            deallocates: None,
            underlying: Vec::new(),
            cursor: None,
            refusal: None,
            vars: None,
        }
    }

    pub(crate) fn vars_mut(&mut self) -> &mut mysql_set::VarEffects {
        self.vars.get_or_insert_with(Default::default)
    }

    /// Marks the statement as refused whatever the policy (see `refusal`).
    pub(crate) fn refuse(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.raise(Operation::Admin, reason.clone());
        if self.refusal.is_none() {
            self.refusal = Some(reason);
        }
    }

    /// Raises the operation to at least `operation`, noting why.
    pub(crate) fn raise(&mut self, operation: Operation, reason: impl Into<String>) {
        let reason = reason.into();
        if operation > self.operation {
            self.operation = operation;
        }
        if !reason.is_empty() && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    pub(crate) fn unknown(reason: impl Into<String>) -> StatementClass {
        let mut class = StatementClass::new(Operation::Unknown, "UNKNOWN");
        class.reasons.push(reason.into());
        class
    }
}

/// The classification of a whole statement text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// The strictest operation of all statements (`read` for an empty text).
    pub operation: Operation,
    /// Every table touched, deduplicated, in order of first appearance.
    pub tables: Vec<TableRef>,
    pub statements: Vec<StatementClass>,
}

impl Classification {
    pub(crate) fn from_statements(statements: Vec<StatementClass>) -> Classification {
        let operation = statements
            .iter()
            .map(|s| s.operation)
            .max()
            .unwrap_or(Operation::Read);
        let mut tables: Vec<TableRef> = Vec::new();
        for table in statements
            .iter()
            .flat_map(|s| s.tables.iter().chain(&s.underlying))
        {
            if !tables.contains(table) {
                tables.push(table.clone());
            }
        }
        Classification {
            operation,
            tables,
            statements,
        }
    }

    /// One statement Warden refuses for `reason`, whatever the policy.
    pub(crate) fn refused(reason: String) -> Classification {
        let mut class = StatementClass::unknown(reason.clone());
        class.refusal = Some(reason);
        Classification::from_statements(vec![class])
    }

    /// Tables as `schema.table` or `table` strings.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(ToString::to_string).collect()
    }

    /// True when some statement prepares, executes or deallocates by name,
    /// or saves or restores a lexing variable through a user variable.
    pub(crate) fn uses_prepared(&self) -> bool {
        self.statements.iter().any(|s| {
            s.prepares.is_some()
                || s.executes.is_some()
                || s.deallocates.is_some()
                || s.cursor.is_some()
                || s.vars.is_some()
        })
    }

    /// Lets a restore of `sql_mode` / `character_set_client` from a user
    /// variable through only when `saved` knows the variable holds a value
    /// saved from it, and updates `saved`: a text that mentions a user
    /// variable (`mentions`) otherwise may have changed it, and a CALL or
    /// EXECUTE may have changed any.
    pub(crate) fn resolve_user_vars(
        &mut self,
        mentions: &[String],
        saved: &mut std::collections::HashSet<String>,
    ) {
        let mut saves = Vec::new();
        let mut restores = Vec::new();
        for statement in &mut self.statements {
            let effects = statement.vars.clone().unwrap_or_default();
            for var in &effects.restores {
                if !saved.contains(var) {
                    statement.refuse(format!(
                        "restores a lexing variable from @{var}, which Warden has not seen hold a saved value"
                    ));
                }
            }
            if statement.executes.is_some() || statement.kind == "CALL" {
                saved.clear();
            }
            saves.extend(effects.saves);
            restores.extend(effects.restores);
        }
        for var in mentions {
            if !saves.contains(var) && !restores.contains(var) {
                saved.remove(var);
            }
        }
        saved.extend(saves);
        *self = Classification::from_statements(std::mem::take(&mut self.statements));
    }

    /// Resolves `EXECUTE name` statements against `prepared` (statements
    /// prepared earlier in the session, updated with this text's `PREPARE`
    /// and `DEALLOCATE`) and re-derives the totals. An `EXECUTE` of a name
    /// that was never prepared is `unknown`.
    pub(crate) fn resolve_prepared(
        &self,
        prepared: &mut HashMap<String, StatementClass>,
        cursors: &mut HashMap<String, Vec<TableRef>>,
    ) -> Classification {
        let mut statements = Vec::with_capacity(self.statements.len());
        for statement in &self.statements {
            let mut statement = statement.clone();
            if let Some(cursor) = statement.cursor.clone() {
                resolve_cursor(&mut statement, &cursor, cursors);
            }
            if let Some(name) = &statement.prepares {
                prepared.insert(name.clone(), statement.clone());
            } else if let Some(name) = &statement.deallocates {
                if name.is_empty() {
                    prepared.clear();
                } else {
                    prepared.remove(name);
                }
            } else if let Some(name) = statement.executes.clone() {
                match prepared.get(&name) {
                    Some(target) => {
                        // The parameters' own class (a volatile function in
                        // an argument) still counts.
                        let own = statement.operation;
                        let own_reasons = std::mem::take(&mut statement.reasons);
                        statement.operation = target.operation;
                        statement.reasons.push(format!(
                            "runs prepared statement \"{name}\" ({} {})",
                            target.operation, target.kind
                        ));
                        statement.reasons.extend(target.reasons.iter().cloned());
                        if statement.refusal.is_none() {
                            statement.refusal = target.refusal.clone();
                        }
                        for table in &target.tables {
                            if !statement.tables.contains(table) {
                                statement.tables.push(table.clone());
                            }
                        }
                        for reason in own_reasons {
                            statement.raise(own, reason);
                        }
                    }
                    None => {
                        statement.operation = Operation::Unknown;
                        statement.reasons = vec![format!(
                            "EXECUTE of \"{name}\", which was not prepared in this session"
                        )];
                    }
                }
            }
            statements.push(statement);
        }
        Classification::from_statements(statements)
    }
}

/// Most cursors remembered per session; a `DECLARE` beyond this is not
/// remembered and a `FETCH` from it is `unknown` (fails closed).
const MAX_CURSORS: usize = 10_000;

/// Keeps `cursors` (name → tables its query reads) up to date, and gives a
/// `FETCH` its cursor's tables; a `FETCH` of a cursor not declared in this
/// session (a refcursor a function opened) is `unknown`.
fn resolve_cursor(
    statement: &mut StatementClass,
    cursor: &CursorUse,
    cursors: &mut HashMap<String, Vec<TableRef>>,
) {
    match cursor {
        CursorUse::Declare(name) => {
            if cursors.len() < MAX_CURSORS || cursors.contains_key(name) {
                cursors.insert(name.clone(), statement.tables.clone());
            } else {
                cursors.remove(name);
            }
        }
        CursorUse::Close(Some(name)) => {
            cursors.remove(name);
        }
        CursorUse::Close(None) => cursors.clear(),
        CursorUse::Fetch(name) => match cursors.get(name) {
            Some(tables) => {
                for table in tables {
                    if !statement.tables.contains(table) {
                        statement.tables.push(table.clone());
                    }
                }
            }
            None => {
                statement.operation = Operation::Unknown;
                statement.reasons = vec![format!(
                    "FETCH from cursor \"{name}\", which was not declared in this session"
                )];
            }
        },
    }
}

/// The user variables (`@name`, lowercase, without `@`) a MySQL text mentions;
/// `Err` when one is quoted (its name is not read here).
pub(crate) fn mysql_user_vars(sql: &str) -> Result<Vec<String>, ()> {
    mysql_vars::user_variables(sql)
}

/// Classifies statement texts, with a bounded cache keyed by dialect and text.
pub struct Classifier {
    functions: FunctionList,
    safe_settings: Vec<String>,
    cache: BoundedCache<(Dialect, Box<str>), Arc<Classification>>,
}

/// Texts longer than this are classified every time rather than cached.
const MAX_CACHED_TEXT: usize = 16 * 1024;
const CACHE_ENTRIES: usize = 4096;

impl Classifier {
    pub fn new(config: &ClassifierConfig) -> Classifier {
        Classifier {
            functions: FunctionList::new(&config.safe_functions),
            safe_settings: config
                .safe_settings
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            cache: BoundedCache::new(CACHE_ENTRIES),
        }
    }

    /// Classifies one text on its own: `EXECUTE` resolves only against a
    /// `PREPARE` earlier in the same text (see [`crate::SessionClassifier`]).
    pub fn classify(&self, dialect: Dialect, sql: &str) -> Arc<Classification> {
        let raw = self.classify_raw(dialect, sql);
        if raw.uses_prepared() {
            let mut resolved = raw.resolve_prepared(&mut HashMap::new(), &mut HashMap::new());
            resolved.resolve_user_vars(&[], &mut std::collections::HashSet::new());
            Arc::new(resolved)
        } else {
            raw
        }
    }

    /// The cached classification before `EXECUTE` names are resolved.
    pub(crate) fn classify_raw(&self, dialect: Dialect, sql: &str) -> Arc<Classification> {
        if sql.len() > MAX_CACHED_TEXT {
            return Arc::new(self.classify_uncached(dialect, sql));
        }
        // Statements that differ only in numbers share a classification.
        let text = match dialect {
            Dialect::Postgres => literals::postgres_key(sql).unwrap_or_else(|| sql.to_string()),
            Dialect::Mysql => sql.to_string(),
        };
        let key = (dialect, text.into_boxed_str());
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        let class = Arc::new(self.classify_uncached(dialect, sql));
        self.cache.insert(key, class.clone());
        class
    }

    fn classify_uncached(&self, dialect: Dialect, sql: &str) -> Classification {
        if sql == warden_core::lexing::NOT_UTF8_TEXT {
            return Classification::refused(
                "the statement's bytes are not valid UTF-8, so Warden cannot read it as the server will"
                    .into(),
            );
        }
        let statements = match dialect {
            Dialect::Postgres => postgres::classify(self, sql),
            Dialect::Mysql => mysql::classify(self, sql),
        };
        Classification::from_statements(statements)
    }

    pub(crate) fn functions(&self) -> &FunctionList {
        &self.functions
    }

    /// True when `SET name` (or `set_config(name, …)`) is an ordinary session setting.
    pub(crate) fn is_safe_setting(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        settings::is_user_setting(&name) || self.safe_settings.contains(&name)
    }
}

static DEFAULT: LazyLock<Classifier> =
    LazyLock::new(|| Classifier::new(&ClassifierConfig::default()));

/// Classifies `sql` with the default configuration (no extra safe functions).
/// Cached: a repeated text costs a hash lookup.
pub fn classify(dialect: Dialect, sql: &str) -> Classification {
    DEFAULT.classify(dialect, sql).as_ref().clone()
}
