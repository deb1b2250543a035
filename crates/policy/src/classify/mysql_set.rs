//! MySQL `SET`: user variables and ordinary session variables are reads;
//! global scope, privileged variables and roles are admin; and values of
//! `sql_mode` and `character_set_client` that would change how the server
//! lexes statements are refused (see `warden_core::lexing`).
//!
//! A few programs save those two variables in a user variable and restore
//! them later (`SET @saved_cs_client = @@character_set_client` … `SET
//! character_set_client = @saved_cs_client`, as mysqldump writes). The save
//! is noted in [`VarEffects`] and the session classifier lets the restore
//! through only while it knows the variable still holds a saved value.

use super::StatementClass;
use super::mysql::object_name_parts;
use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Set, TransactionAccessMode,
    TransactionMode, Value,
};
use warden_core::Operation::{Admin, Write};
use warden_core::lexing::{mysql_charset_is_safe, mysql_sql_mode_refusal};

/// What a statement does with user variables, for the session's record of
/// which ones hold a saved `sql_mode` or `character_set_client`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VarEffects {
    /// User variables (lowercase, without `@`) set to the current value of a
    /// lexing variable.
    pub saves: Vec<String>,
    /// User variables a lexing variable is set from.
    pub restores: Vec<String>,
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

/// A system variable's name without `@@`, `session.` or `local.`; `None`
/// for a global or persisted one.
fn session_variable(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("@@").unwrap_or(&lower);
    if bare.starts_with("global.") || bare.starts_with("persist") {
        return None;
    }
    let bare = bare
        .strip_prefix("session.")
        .or_else(|| bare.strip_prefix("local."))
        .unwrap_or(bare);
    Some(bare.to_string())
}

/// The two variables that decide how the server lexes a statement.
fn is_lexing_variable(bare: &str) -> bool {
    matches!(bare, "sql_mode" | "character_set_client")
}

/// `@@x`, `@@session.x`, `@x` or a bare word, as written.
fn reference(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.clone()),
        Expr::CompoundIdentifier(parts) => Some(
            parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    }
}

fn string_value(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub fn set_class(set: &Set, class: &mut StatementClass) {
    match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => {
            let name = object_name_parts(variable).join(".");
            class.kind = format!("SET {name}");
            let scope = scope.as_ref().map(ToString::to_string);
            match values.as_slice() {
                [value] => assignment(&name, scope.as_deref(), value, class),
                _ => {
                    assignment_name(&name, scope.as_deref(), class);
                    if session_variable(&name).is_some_and(|b| is_lexing_variable(&b)) {
                        class.refuse(format!("{name} set to a list Warden cannot read"));
                    }
                }
            }
        }
        Set::MultipleAssignments { assignments } => {
            class.kind = "SET".into();
            for assignment_ in assignments {
                let name = object_name_parts(&assignment_.name).join(".");
                let scope = assignment_.scope.as_ref().map(ToString::to_string);
                assignment(&name, scope.as_deref(), &assignment_.value, class);
            }
        }
        Set::SetRole { .. } => {
            class.kind = "SET ROLE".into();
            class.raise(Admin, "SET ROLE changes the session's privileges");
        }
        Set::SetNames { charset_name, .. } => {
            class.kind = "SET NAMES".into();
            charset_literal(&charset_name.to_string(), class);
        }
        Set::SetNamesDefault {} => {
            class.kind = "SET NAMES".into();
            class.refuse("SET NAMES DEFAULT picks a character set Warden cannot know in advance");
        }
        Set::SetTimeZone { .. } => {}
        Set::SetTransaction { modes, .. } => transaction_modes(modes, class),
        _ => class.raise(Admin, "a SET form Warden does not classify for MySQL"),
    }
}

/// `READ WRITE` in `START TRANSACTION` or `SET [SESSION] TRANSACTION` takes
/// down the upstream's read-only wall (a read-only identity's session runs
/// `SET SESSION TRANSACTION READ ONLY`), so it is a write.
pub fn transaction_modes(modes: &[TransactionMode], class: &mut StatementClass) {
    if modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    }) {
        class.raise(
            Write,
            "READ WRITE lifts the session's read-only transaction mode",
        );
    }
}

/// `tx_read_only` / `transaction_read_only` set to anything but on: the same
/// as `SET TRANSACTION READ WRITE`.
fn read_only_variable(bare: &str, value: &Expr, class: &mut StatementClass) {
    if !matches!(bare, "tx_read_only" | "transaction_read_only") {
        return;
    }
    let on = match value {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n == "1",
            Value::Boolean(b) => *b,
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                s.eq_ignore_ascii_case("on") || s == "1"
            }
            _ => false,
        },
        Expr::Identifier(ident) => ident.value.eq_ignore_ascii_case("on"),
        _ => false,
    };
    if !on {
        class.raise(
            Write,
            format!("{bare} set to something other than ON lifts the read-only transaction mode"),
        );
    }
}

/// The checks that depend only on the variable's name and scope.
fn assignment_name(name: &str, scope: Option<&str>, class: &mut StatementClass) {
    let scope = scope.unwrap_or_default().to_ascii_uppercase();
    if scope.contains("GLOBAL") || scope.contains("PERSIST") {
        class.raise(
            Admin,
            format!("SET {} changes the whole server", scope.trim()),
        );
    }
    match session_variable(name) {
        None => class.raise(Admin, format!("SET of global variable {name}")),
        Some(bare)
            if MYSQL_PRIVILEGED_VARIABLES.contains(&bare.as_str())
                || bare.starts_with("wsrep_") =>
        {
            class.raise(
                Admin,
                format!("{bare} needs SUPER or changes replication or logging"),
            );
        }
        Some(_) => {}
    }
}

fn assignment(name: &str, scope: Option<&str>, value: &Expr, class: &mut StatementClass) {
    assignment_name(name, scope, class);
    // A user variable saving the current value of a lexing variable.
    if let Some(user) = name.strip_prefix('@').filter(|n| !n.starts_with('@')) {
        if let Some(source) = reference(value)
            && source.starts_with("@@")
            && session_variable(&source).is_some_and(|b| is_lexing_variable(&b))
        {
            class.vars_mut().saves.push(user.to_ascii_lowercase());
        }
        return;
    }
    let global_scope = scope
        .unwrap_or_default()
        .to_ascii_uppercase()
        .contains("GLOBAL");
    let Some(bare) = session_variable(name) else {
        return;
    };
    read_only_variable(&bare, value, class);
    match bare.as_str() {
        "sql_mode" if !global_scope => sql_mode_value(value, class),
        "character_set_client" if !global_scope => {
            charset_value(value, "character_set_client", class)
        }
        // `SET character_set_connection`/`results` do not change lexing.
        _ => {}
    }
}

/// What `value` does to the session's `sql_mode`.
fn sql_mode_value(value: &Expr, class: &mut StatementClass) {
    if let Some(text) = string_value(value) {
        if let Some(refusal) = mysql_sql_mode_refusal(&text) {
            class.refuse(refusal);
        }
        return;
    }
    if let Some(word) = reference(value) {
        return variable_value(&word, "sql_mode", class, |word, class| {
            if let Some(refusal) = mysql_sql_mode_refusal(word) {
                class.refuse(refusal);
            }
        });
    }
    // CONCAT(@@sql_mode, ',MODE', …): the current mode plus constants.
    if let Expr::Function(function) = value
        && let Some(parts) = concat_parts(function)
    {
        for part in parts {
            match (string_value(part), reference(part)) {
                (Some(text), _) => {
                    if let Some(refusal) = mysql_sql_mode_refusal(text.trim_matches(',')) {
                        class.refuse(refusal);
                    }
                }
                (None, Some(word)) if is_current("sql_mode", &word) => {}
                _ => class.refuse("sql_mode computed from something Warden cannot read"),
            }
        }
        return;
    }
    class.refuse("sql_mode computed at run time (a number or an expression) Warden cannot read");
}

/// The arguments of `CONCAT(…)`, or of `CONCAT_WS(',', …)` after its separator.
fn concat_parts(function: &Function) -> Option<Vec<&Expr>> {
    let name = object_name_parts(&function.name)
        .join(".")
        .to_ascii_lowercase();
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let mut args: Vec<&Expr> = Vec::new();
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => args.push(expr),
            _ => return None,
        }
    }
    match name.as_str() {
        "concat" => Some(args),
        "concat_ws" if args.first().and_then(|a| string_value(a)).as_deref() == Some(",") => {
            Some(args.into_iter().skip(1).collect())
        }
        _ => None,
    }
}

/// True when `word` names the session's current value of `variable`.
fn is_current(variable: &str, word: &str) -> bool {
    word.starts_with("@@") && session_variable(word).as_deref() == Some(variable)
}

/// A value written as a word: the variable's own current value, a user
/// variable (a restore), another system variable, `DEFAULT`, or a bare name.
fn variable_value(
    word: &str,
    variable: &str,
    class: &mut StatementClass,
    bare_name: impl FnOnce(&str, &mut StatementClass),
) {
    if is_current(variable, word) {
        return;
    }
    if let Some(user) = word.strip_prefix('@').filter(|n| !n.starts_with('@')) {
        class.vars_mut().restores.push(user.to_ascii_lowercase());
        return;
    }
    if word.starts_with("@@") || word.eq_ignore_ascii_case("default") {
        class.refuse(format!(
            "{variable} set to {word}, a value Warden cannot know in advance"
        ));
        return;
    }
    bare_name(word, class);
}

fn charset_value(value: &Expr, variable: &str, class: &mut StatementClass) {
    if let Some(text) = string_value(value) {
        return charset_literal(&text, class);
    }
    if let Some(word) = reference(value) {
        return variable_value(&word, variable, class, charset_literal);
    }
    class.refuse(format!(
        "{variable} computed at run time, which Warden cannot read"
    ));
}

/// Multi-byte client character sets such as GBK or SJIS let a backslash hide
/// inside a character, so the server would read a different text.
pub fn charset_literal(name: &str, class: &mut StatementClass) {
    if name.eq_ignore_ascii_case("default") {
        class.refuse("a client character set Warden cannot know in advance (DEFAULT)");
    } else if !mysql_charset_is_safe(name) {
        class.refuse(format!(
            "client character set {name} can hide a backslash or quote inside a multibyte \
             character; Warden accepts UTF-8 and other ASCII-safe character sets only"
        ));
    }
}
