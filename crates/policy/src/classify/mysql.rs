//! MySQL and MariaDB statements: sqlparser's MySQL dialect, after the small
//! lexer in `mysql_lex` has opened executable comments and split the text.

use super::functions::FunctionClass;
use super::mysql_lex::{
    after_first_word, name_after, open_executable_comments, resolve_versioned_comments,
    sole_literal_after, split_statements, words,
};
use super::{Classifier, StatementClass, TableRef};
use sqlparser::ast::{Expr, LockTableType, ObjectName, ObjectType, Statement, Visit, Visitor};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;
use warden_core::Operation;
use warden_core::Operation::{Admin, Ddl, Read, Write};

/// Statement texts nested deeper than this are refused by the parser.
const RECURSION_LIMIT: usize = 64;

pub fn classify(classifier: &Classifier, sql: &str) -> Vec<StatementClass> {
    if let Err(error) = resolve_versioned_comments(sql, None) {
        // A session resolves them for its server before it gets here.
        let reason = error.to_string();
        let mut class = StatementClass::unknown(reason.clone());
        class.refusal = Some(reason);
        return vec![class];
    }
    let opened = open_executable_comments(sql);
    if let Some(reason) = unicode_space_in_code(&opened) {
        let mut class = StatementClass::unknown(reason.clone());
        class.refusal = Some(reason);
        return vec![class];
    }
    let mut out = Vec::new();
    for text in split_statements(&opened) {
        out.extend(classify_text(classifier, text, 0));
    }
    if opened.len() != sql.len() || opened != sql {
        for class in &mut out {
            class.reasons.push(
                "contains /*! … */ executable comments, classified as the server runs them".into(),
            );
        }
    }
    out
}

/// sqlparser takes any Unicode space (U+00A0, U+2028, U+3000 …) for a token
/// separator, and `--` followed by one for a comment; MariaDB and MySQL read
/// those characters as part of a name. Outside quotes and comments they
/// would make Warden and the server see different statements, so they are
/// refused.
fn unicode_space_in_code(sql: &str) -> Option<String> {
    super::mysql_lex::pieces(sql)
        .into_iter()
        .filter(|(piece, _, _)| *piece == super::mysql_lex::Piece::Code)
        .flat_map(|(_, start, end)| sql.get(start..end).unwrap_or_default().chars())
        .find(|c| !c.is_ascii() && c.is_whitespace())
        .map(|c| {
            format!(
                "the statement has a non-ASCII space (U+{:04X}) outside quotes, which the server reads as part of a name; use an ASCII space",
                u32::from(c)
            )
        })
}

/// One statement's text (no top-level `;`).
pub(super) fn classify_text(
    classifier: &Classifier,
    text: &str,
    depth: usize,
) -> Vec<StatementClass> {
    if depth > 4 {
        return vec![StatementClass::unknown("PREPARE nested too deeply")];
    }
    let all_words = words(text, usize::MAX);
    let head: Vec<&str> = all_words.iter().take(3).map(String::as_str).collect();
    if let Some(classes) = super::mysql_words::before_parse(classifier, text, &head, depth) {
        return classes;
    }
    match head.as_slice() {
        ["LOAD", "DATA" | "XML", rest @ ..] => {
            let local = rest.first() == Some(&"LOCAL");
            let mut class = if local {
                StatementClass::new(Write, "LOAD DATA LOCAL INFILE")
            } else {
                let mut class = StatementClass::new(Admin, "LOAD DATA INFILE");
                class
                    .reasons
                    .push("LOAD DATA INFILE reads a file on the database server".into());
                class
            };
            match name_after(text, "TABLE") {
                Some(table) => class.tables.push(table_ref(&table)),
                None => {
                    return vec![StatementClass::unknown(
                        "LOAD DATA without a table name Warden can read",
                    )];
                }
            }
            return vec![class];
        }
        ["HANDLER", ..] => {
            let mut class = StatementClass::new(Read, "HANDLER");
            match name_after(text, "HANDLER") {
                Some(table) => class.tables.push(table_ref(&table)),
                None => {
                    return vec![StatementClass::unknown(
                        "HANDLER without a table name Warden can read",
                    )];
                }
            }
            return vec![class];
        }
        ["PREPARE", name, "FROM"] => {
            let name = name.to_ascii_lowercase();
            let mut class = literal_statement(classifier, text, 3, depth, "PREPARE");
            class.prepares = Some(name);
            return vec![class];
        }
        ["EXECUTE", "IMMEDIATE", ..] => {
            return vec![literal_statement(
                classifier,
                text,
                2,
                depth,
                "EXECUTE IMMEDIATE",
            )];
        }
        ["SET", "CHARACTER", "SET"] | ["SET", "CHARSET", ..] => {
            let mut class = StatementClass::new(Read, "SET CHARACTER SET");
            let skip = if head[1] == "CHARSET" { 2 } else { 3 };
            match sole_literal_after(text, skip).or_else(|| all_words.get(skip).cloned()) {
                Some(name) if all_words.len() <= skip + 1 => {
                    super::mysql_set::charset_literal(&name, &mut class)
                }
                _ => class.refuse("SET CHARACTER SET with a value Warden cannot read"),
            }
            return vec![class];
        }
        ["EXECUTE", name, ..] => {
            let mut class = StatementClass::new(Read, "EXECUTE");
            class.executes = Some(name.to_ascii_lowercase());
            return vec![class];
        }
        // Account, privilege and server management, whatever the details
        // (sqlparser does not parse all of MariaDB's forms).
        ["CREATE" | "ALTER" | "DROP" | "RENAME", "USER" | "ROLE", ..]
        | [
            "GRANT" | "REVOKE" | "SHUTDOWN" | "PURGE" | "UNINSTALL" | "INSTALL",
            ..,
        ]
        | ["SET", "PASSWORD" | "DEFAULT", ..]
        | ["CHANGE", "MASTER" | "REPLICATION", ..]
        | ["START" | "STOP", "SLAVE" | "REPLICA" | "ALL", ..]
        | ["RESET", "MASTER" | "SLAVE" | "REPLICA", ..] => {
            let mut class = StatementClass::new(Admin, head.join(" "));
            class
                .reasons
                .push("manages accounts, privileges or the server".into());
            return vec![class];
        }
        // `DO expr, …` evaluates expressions exactly like SELECT does.
        ["DO", ..] => {
            let rest = after_first_word(text);
            let mut classes = classify_text(classifier, &format!("SELECT {rest}"), depth + 1);
            for class in &mut classes {
                class.kind = "DO".into();
            }
            return classes;
        }
        ["DEALLOCATE" | "DROP", "PREPARE", name] => {
            let mut class = StatementClass::new(Read, "DEALLOCATE PREPARE");
            class.deallocates = Some(name.to_ascii_lowercase());
            return vec![class];
        }
        _ => {}
    }
    let into_file = all_words
        .windows(2)
        .any(|w| w[0] == "INTO" && (w[1] == "OUTFILE" || w[1] == "DUMPFILE"));
    if into_file {
        let mut class = StatementClass::new(Admin, "SELECT INTO OUTFILE");
        class
            .reasons
            .push("INTO OUTFILE/DUMPFILE writes a file on the database server".into());
        return vec![class];
    }
    let parsed = Parser::new(&MySqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements());
    match parsed {
        Ok(statements) if statements.is_empty() => Vec::new(),
        Ok(statements) => statements
            .iter()
            .map(|statement| classify_statement(classifier, statement))
            .collect(),
        Err(error) => vec![
            super::mysql_words::after_parse_error(classifier, text, depth).unwrap_or_else(|| {
                StatementClass::unknown(format!("does not parse as MySQL: {error}"))
            }),
        ],
    }
}

/// `PREPARE s FROM '…'` / `EXECUTE IMMEDIATE '…'`: the text is judged only
/// when it is one plain string literal after the first `words` words; an
/// expression, a variable, a hex or introduced literal, or adjacent literals
/// (which the server concatenates) are refused: Warden cannot know the text.
fn literal_statement(
    classifier: &Classifier,
    text: &str,
    words: usize,
    depth: usize,
    kind: &str,
) -> StatementClass {
    match sole_literal_after(text, words) {
        Some(body) => {
            let inner = classify_nested(classifier, &body, depth);
            let mut class = strictest(inner, depth);
            class.kind = format!("{kind} {}", class.kind);
            class
        }
        None => {
            let mut class = StatementClass::unknown(format!(
                "{kind} of a text that is not a single string literal"
            ));
            class.refuse(format!(
                "{kind} of a text that is not a single string literal (an expression or variable Warden cannot read)"
            ));
            class
        }
    }
}

/// A text inside a literal, classified as a statement of its own.
fn classify_nested(classifier: &Classifier, body: &str, depth: usize) -> Vec<StatementClass> {
    if depth > 4 {
        return vec![StatementClass::unknown("PREPARE nested too deeply")];
    }
    classify(classifier, body)
}

/// Folds `inner` (a statement `into` contains or stands for) into `into`:
/// its refusal, tables and reasons, and its class and kind when stricter.
pub(super) fn absorb(into: &mut StatementClass, inner: StatementClass) {
    if into.refusal.is_none() {
        into.refusal = inner.refusal;
    }
    for table in inner.tables {
        if !into.tables.contains(&table) {
            into.tables.push(table);
        }
    }
    for reason in inner.reasons {
        into.raise(inner.operation, reason);
    }
    if inner.operation > into.operation {
        into.operation = inner.operation;
        into.kind = inner.kind;
    }
}

/// The strictest of several statements (a prepared text with several statements).
fn strictest(classes: Vec<StatementClass>, _depth: usize) -> StatementClass {
    let mut iter = classes.into_iter();
    let Some(mut first) = iter.next() else {
        return StatementClass::new(Read, "empty");
    };
    for class in iter {
        absorb(&mut first, class);
    }
    first
}

pub(super) fn table_ref(name: &str) -> TableRef {
    match name.rsplit_once('.') {
        Some((schema, table)) => TableRef::new(Some(schema), table),
        None => TableRef::new(None, name),
    }
}

pub(super) fn object_name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|part| part.as_ident().map(|ident| ident.value.clone()))
        .collect()
}

fn object_table(name: &ObjectName) -> Option<TableRef> {
    let parts = object_name_parts(name);
    let (table, rest) = parts.split_last()?;
    Some(TableRef::new(rest.last().map(String::as_str), table))
}

/// Collects relations and function calls anywhere in a statement.
#[derive(Default)]
struct Collector {
    tables: Vec<TableRef>,
    functions: Vec<(Option<String>, String)>,
}

impl Visitor for Collector {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if let Some(table) = object_table(relation)
            && !self.tables.contains(&table)
        {
            self.tables.push(table);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr {
            let parts = object_name_parts(&function.name);
            if let Some((name, rest)) = parts.split_last() {
                self.functions.push((rest.last().cloned(), name.clone()));
            }
        }
        ControlFlow::Continue(())
    }
}

/// CTE names that certainly do not name a table: those of the statement's
/// top-level WITH whose own body does not use the name (there it would be
/// the table). A CTE of a nested query is not in scope everywhere, so its
/// name stays a table too: over-inclusive, never blind.
fn top_level_ctes(statement: &Statement) -> Vec<String> {
    let Statement::Query(query) = statement else {
        return Vec::new();
    };
    let Some(with) = &query.with else {
        return Vec::new();
    };
    with.cte_tables
        .iter()
        .filter(|cte| {
            let mut inner = Collector::default();
            let _ = cte.query.visit(&mut inner);
            let name = &cte.alias.name.value;
            !inner
                .tables
                .iter()
                .any(|t| t.schema.is_none() && t.name.eq_ignore_ascii_case(name))
        })
        .map(|cte| cte.alias.name.value.clone())
        .collect()
}

fn classify_statement(classifier: &Classifier, statement: &Statement) -> StatementClass {
    let mut collector = Collector::default();
    let _ = statement.visit(&mut collector);
    let mut class = base_class(statement);
    let ctes = top_level_ctes(statement);
    for table in &collector.tables {
        let is_cte = table.schema.is_none() && ctes.contains(&table.name);
        if !is_cte && !class.tables.contains(table) {
            class.tables.push(table.clone());
        }
    }
    if let Statement::Call(function) = statement {
        let parts = object_name_parts(&function.name);
        if let Some((name, rest)) = parts.split_last() {
            collector
                .functions
                .push((rest.last().cloned(), name.clone()));
        }
    }
    if let Statement::Query(query) = statement
        && !query.locks.is_empty()
    {
        class.raise(
            Write,
            "FOR UPDATE / LOCK IN SHARE MODE takes row locks that block writers",
        );
    }
    for (schema, name) in &collector.functions {
        let shown = match schema {
            Some(schema) => format!("{schema}.{name}"),
            None => name.clone(),
        };
        match classifier.functions().classify_mysql(schema.as_deref(), name) {
            FunctionClass::Safe => {}
            FunctionClass::Admin => class.raise(
                Admin,
                format!("{shown}() reads the database server's files"),
            ),
            FunctionClass::Write => class.raise(
                Write,
                format!(
                    "{shown}() is not known to be read-only (list it in [classifier] safe_functions if it is)"
                ),
            ),
        }
    }
    if let Statement::Set(set) = statement {
        super::mysql_set::set_class(set, &mut class);
    }
    class
}

fn class(operation: Operation, kind: &str) -> StatementClass {
    StatementClass::new(operation, kind)
}

fn base_class(statement: &Statement) -> StatementClass {
    match statement {
        Statement::Query(_) => class(Read, "SELECT"),
        Statement::Insert(insert) => {
            if insert.replace_into {
                class(Write, "REPLACE")
            } else {
                class(Write, "INSERT")
            }
        }
        Statement::Update(_) => class(Write, "UPDATE"),
        Statement::Delete(_) => class(Write, "DELETE"),
        Statement::Merge(_) => class(Write, "MERGE"),
        Statement::Truncate(_) => class(Write, "TRUNCATE"),
        Statement::Call(_) => class(Read, "CALL"),
        Statement::Explain {
            analyze, statement, ..
        } => {
            if *analyze {
                let mut inner = base_class(statement);
                inner.kind = format!("EXPLAIN ANALYZE {}", inner.kind);
                if inner.operation > Read {
                    inner.reasons.push("ANALYZE executes the statement".into());
                }
                inner
            } else {
                class(Read, "EXPLAIN")
            }
        }
        Statement::ExplainTable { .. } => class(Read, "DESCRIBE"),
        Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowObjects(_)
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => class(Read, "SHOW"),
        // Judged as the table it shows, whose INFO column quotes other
        // sessions' statements (masking treats it so).
        Statement::ShowProcessList { .. } => {
            let mut out = class(Read, "SHOW PROCESSLIST");
            out.tables
                .push(TableRef::new(Some("information_schema"), "processlist"));
            out
        }
        // The database becomes a table reference `db.*`, so that the
        // target's database boundary and table rules see it.
        Statement::Use(
            sqlparser::ast::Use::Object(name)
            | sqlparser::ast::Use::Database(name)
            | sqlparser::ast::Use::Schema(name),
        ) => {
            let mut out = class(Read, "USE");
            let database = object_name_parts(name).join(".");
            out.tables.push(TableRef::new(Some(&database), "*"));
            out
        }
        Statement::Use(_) => class(Read, "USE"),
        Statement::StartTransaction { modes, .. } => {
            let mut out = class(Read, "transaction control");
            super::mysql_set::transaction_modes(modes, &mut out);
            out
        }
        Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => class(Read, "transaction control"),
        Statement::Set(_) => class(Read, "SET"),
        Statement::LockTables { tables } => {
            let writes = tables
                .iter()
                .any(|t| !matches!(t.lock_type, LockTableType::Read { .. }));
            let mut out = if writes {
                class(Write, "LOCK TABLES … WRITE")
            } else {
                class(Read, "LOCK TABLES … READ")
            };
            out.tables = tables
                .iter()
                .map(|t| TableRef::new(None, &t.table.value))
                .collect();
            out
        }
        Statement::UnlockTables => class(Read, "UNLOCK TABLES"),
        Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::GrantRole(_)
        | Statement::RevokeRole(_)
        | Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::CreateUser(_)
        | Statement::AlterUser(_) => class(Admin, "account management"),
        Statement::Kill { .. } => class(Admin, "KILL"),
        Statement::Flush { .. } => class(Admin, "FLUSH"),
        Statement::Install { .. } => class(Admin, "INSTALL"),
        Statement::CreateServer(_) => class(Admin, "CREATE SERVER"),
        // Maintenance of named tables is an owner's job, as in PostgreSQL.
        Statement::Analyze(_) | Statement::OptimizeTable { .. } => class(Ddl, "table maintenance"),
        Statement::Drop { object_type, .. } => match object_type {
            ObjectType::Role | ObjectType::User => class(Admin, "DROP USER/ROLE"),
            _ => class(Ddl, "DROP"),
        },
        Statement::CreateTable(_)
        | Statement::CreateView(_)
        | Statement::CreateIndex(_)
        | Statement::CreateFunction(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateTrigger(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateSequence { .. }
        | Statement::AlterTable(_)
        | Statement::AlterView(_)
        | Statement::AlterIndex { .. }
        | Statement::AlterSchema(_)
        | Statement::DropFunction(_)
        | Statement::DropProcedure { .. }
        | Statement::DropTrigger(_)
        | Statement::RenameTable(_) => class(Ddl, "DDL"),
        _ => StatementClass::unknown("a statement type Warden does not classify for MySQL"),
    }
}
