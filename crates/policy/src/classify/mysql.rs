//! MySQL and MariaDB statements: sqlparser's MySQL dialect, after the small
//! lexer in `mysql_lex` has opened executable comments and split the text.

use super::functions::FunctionClass;
use super::mysql_lex::{
    after_first_word, first_string_literal, name_after, open_executable_comments, split_statements,
    words,
};
use super::{Classifier, StatementClass, TableRef};
use sqlparser::ast::{Expr, LockTableType, ObjectName, ObjectType, Set, Statement, Visit, Visitor};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;
use warden_core::Operation;
use warden_core::Operation::{Admin, Ddl, Read, Write};

/// Statement texts nested deeper than this are refused by the parser.
const RECURSION_LIMIT: usize = 64;

pub fn classify(classifier: &Classifier, sql: &str) -> Vec<StatementClass> {
    let opened = open_executable_comments(sql);
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

/// One statement's text (no top-level `;`).
fn classify_text(classifier: &Classifier, text: &str, depth: usize) -> Vec<StatementClass> {
    if depth > 4 {
        return vec![StatementClass::unknown("PREPARE nested too deeply")];
    }
    let all_words = words(text, usize::MAX);
    let head: Vec<&str> = all_words.iter().take(3).map(String::as_str).collect();
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
            if let Some(table) = name_after(text, "TABLE") {
                class.tables.push(table_ref(&table));
            }
            return vec![class];
        }
        ["HANDLER", ..] => {
            let mut class = StatementClass::new(Read, "HANDLER");
            if let Some(table) = name_after(text, "HANDLER") {
                class.tables.push(table_ref(&table));
            }
            return vec![class];
        }
        ["PREPARE", name, "FROM"] => {
            let name = name.to_ascii_lowercase();
            let mut class = match first_string_literal(text) {
                Some(body) => {
                    let inner = classify(classifier, &body);
                    let mut class = strictest(inner, depth);
                    class.kind = format!("PREPARE {}", class.kind);
                    class
                }
                None => StatementClass::unknown("PREPARE from a variable: the text is not known"),
            };
            class.prepares = Some(name);
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
        Err(error) => vec![StatementClass::unknown(format!(
            "does not parse as MySQL: {error}"
        ))],
    }
}

/// The strictest of several statements (a prepared text with several statements).
fn strictest(classes: Vec<StatementClass>, _depth: usize) -> StatementClass {
    let mut iter = classes.into_iter();
    let Some(mut first) = iter.next() else {
        return StatementClass::new(Read, "empty");
    };
    for class in iter {
        for table in class.tables {
            if !first.tables.contains(&table) {
                first.tables.push(table);
            }
        }
        for reason in class.reasons {
            first.raise(class.operation, reason);
        }
        if class.operation > first.operation {
            first.operation = class.operation;
            first.kind = class.kind;
        }
    }
    first
}

fn table_ref(name: &str) -> TableRef {
    match name.rsplit_once('.') {
        Some((schema, table)) => TableRef::new(Some(schema), table),
        None => TableRef::new(None, name),
    }
}

fn object_name_parts(name: &ObjectName) -> Vec<String> {
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
    /// `SET sql_mode = <not a constant>` and similar need the raw values.
    ctes: Vec<String>,
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

    fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.push(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }
}

fn classify_statement(classifier: &Classifier, statement: &Statement) -> StatementClass {
    let mut collector = Collector::default();
    let _ = statement.visit(&mut collector);
    let mut class = base_class(statement);
    for table in &collector.tables {
        let is_cte = table.schema.is_none() && collector.ctes.contains(&table.name);
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
        set_class(classifier, set, &mut class);
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
        Statement::ShowProcessList { .. } => class(Read, "SHOW PROCESSLIST"),
        Statement::Use(_) => class(Read, "USE"),
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
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
        Statement::Analyze(_) | Statement::OptimizeTable { .. } => {
            class(Admin, "table maintenance")
        }
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

/// `SET`: user variables and ordinary session variables are reads; global
/// scope, privileged variables, roles, passwords and anything that changes
/// how the server lexes SQL are admin.
fn set_class(_classifier: &Classifier, set: &Set, class: &mut StatementClass) {
    let privileged = |name: &str| -> Option<String> {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("@@global.") || lower.starts_with("@@persist") {
            return Some(format!("SET of global variable {name}"));
        }
        let bare = lower
            .trim_start_matches("@@session.")
            .trim_start_matches("@@local.")
            .trim_start_matches("@@");
        if MYSQL_PRIVILEGED_VARIABLES.contains(&bare) || bare.starts_with("wsrep_") {
            return Some(format!(
                "{bare} needs SUPER or changes replication or logging"
            ));
        }
        None
    };
    match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => {
            let name = object_name_parts(variable).join(".");
            class.kind = format!("SET {name}");
            if let Some(scope) = scope {
                let scope = scope.to_string().to_ascii_uppercase();
                if scope.contains("GLOBAL") || scope.contains("PERSIST") {
                    class.raise(
                        Admin,
                        format!("SET {} changes the whole server", scope.trim()),
                    );
                }
            }
            if let Some(reason) = privileged(&name) {
                class.raise(Admin, reason);
            }
            let bare = name.to_ascii_lowercase();
            let bare = bare
                .trim_start_matches("@@session.")
                .trim_start_matches("@@");
            if bare == "sql_mode" {
                sql_mode_class(values, class);
            }
            if matches!(
                bare,
                "character_set_client" | "character_set_connection" | "names"
            ) {
                charset_class(values.first().map(ToString::to_string), class);
            }
        }
        Set::MultipleAssignments { assignments } => {
            class.kind = "SET".into();
            for assignment in assignments {
                let name = object_name_parts(&assignment.name).join(".");
                if let Some(reason) = privileged(&name) {
                    class.raise(Admin, reason);
                }
                let scope = assignment
                    .scope
                    .as_ref()
                    .map(|s| s.to_string().to_ascii_uppercase())
                    .unwrap_or_default();
                if scope.contains("GLOBAL") || scope.contains("PERSIST") {
                    class.raise(
                        Admin,
                        format!("SET {} changes the whole server", scope.trim()),
                    );
                }
                if name
                    .to_ascii_lowercase()
                    .trim_start_matches("@@session.")
                    .trim_start_matches("@@")
                    == "sql_mode"
                {
                    sql_mode_class(std::slice::from_ref(&assignment.value), class);
                }
            }
        }
        Set::SetRole { .. } => {
            class.kind = "SET ROLE".into();
            class.raise(Admin, "SET ROLE changes the session's privileges");
        }
        Set::SetNames { charset_name, .. } => {
            class.kind = "SET NAMES".into();
            charset_class(Some(charset_name.to_string()), class);
        }
        Set::SetNamesDefault {} | Set::SetTimeZone { .. } | Set::SetTransaction { .. } => {}
        _ => class.raise(Admin, "a SET form Warden does not classify for MySQL"),
    }
}

const MYSQL_PRIVILEGED_VARIABLES: &[&str] = &[
    "sql_log_bin",
    "sql_log_off",
    "pseudo_thread_id",
    "pseudo_slave_mode",
    "gtid_domain_id",
    "gtid_seq_no",
    "gtid_next",
    "server_id",
    "skip_replication",
    "debug",
    "debug_dbug",
    "slow_query_log",
    "general_log",
    "log_slow_verbosity",
    "password",
    "role",
    "session_track_system_variables",
];

/// `NO_BACKSLASH_ESCAPES` and `ANSI_QUOTES` (also in `ANSI`) change how the
/// server splits strings, so a text Warden read one way would run another.
fn sql_mode_class(values: &[Expr], class: &mut StatementClass) {
    let Some(value) = values.first() else {
        return;
    };
    let text = match value {
        Expr::Value(v) => v.to_string(),
        Expr::Identifier(ident) => ident.value.clone(),
        _ => {
            class.raise(
                Admin,
                "sql_mode computed at run time may change how SQL is lexed",
            );
            return;
        }
    };
    let upper = text.to_ascii_uppercase();
    if upper.contains("NO_BACKSLASH_ESCAPES") || upper.contains("ANSI") {
        class.raise(
            Admin,
            "this sql_mode changes how the server lexes strings (NO_BACKSLASH_ESCAPES / ANSI_QUOTES)",
        );
    }
}

/// Multi-byte client character sets such as GBK or SJIS let a backslash hide
/// inside a character, so the server would read a different text.
fn charset_class(charset: Option<String>, class: &mut StatementClass) {
    let name = charset
        .unwrap_or_default()
        .trim_matches(|c| c == '\'' || c == '"' || c == '`')
        .to_ascii_lowercase();
    if !matches!(
        name.as_str(),
        "utf8" | "utf8mb3" | "utf8mb4" | "latin1" | "ascii" | "binary" | "default"
    ) {
        class.raise(
            Admin,
            format!("client character set \"{name}\" can change how the server reads the text"),
        );
    }
}
