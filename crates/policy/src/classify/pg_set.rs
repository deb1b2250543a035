//! PostgreSQL `SET` / `RESET`: ordinary session settings are reads,
//! privilege-related ones admin, `READ WRITE` transaction modes writes, and
//! values of the settings that change how the server lexes (see
//! `warden_core::lexing`) are refused.

use super::pg_walk::FoundFunction;
use super::postgres::{Base, plain};
use super::{Classifier, StatementClass};
use pg_query::NodeEnum as N;
use pg_query::protobuf::{self, VariableSetKind};
use warden_core::Operation::{Admin, Read, Write};

pub(super) fn set_class(classifier: &Classifier, set: &protobuf::VariableSetStmt) -> Base {
    // Back to the session's defaults: the values it logged in with, which
    // Warden chose or checked (RESET ALL leaves the role alone).
    if set.kind == VariableSetKind::VarResetAll as i32 {
        return plain(Read, "RESET ALL");
    }
    let name = set.name.to_ascii_lowercase();
    let verb = if set.kind == VariableSetKind::VarReset as i32 {
        "RESET"
    } else {
        "SET"
    };
    if matches!(name.as_str(), "transaction" | "session characteristics")
        && asks_read_write(&set.args)
    {
        return read_write_class(&format!("SET {} READ WRITE", name.to_ascii_uppercase()));
    }
    if let Some(refusal) = lexing_refusal(set, &name) {
        let mut class = StatementClass::new(Admin, format!("{verb} {name}"));
        class.refuse(refusal);
        return Base::Detailed(Box::new(class));
    }
    let back_to_login = set.kind == VariableSetKind::VarReset as i32
        || set.kind == VariableSetKind::VarSetDefault as i32
        || (name == "role" && set.args.first().and_then(constant_text).as_deref() == Some("none"));
    match name.as_str() {
        // Dropping an assumed role returns to the login role Warden chose.
        "role" if back_to_login => plain(Read, &format!("{verb} ROLE (back to the login role)")),
        "session_authorization" if back_to_login => plain(
            Read,
            &format!("{verb} SESSION AUTHORIZATION (back to the login role)"),
        ),
        "role" => plain(Admin, &format!("{verb} ROLE")),
        "session_authorization" => plain(Admin, &format!("{verb} SESSION AUTHORIZATION")),
        // A setting's session default is what the login started with.
        _ if back_to_login => plain(
            Read,
            &format!("{verb} {name} (back to the session default)"),
        ),
        _ if classifier.is_safe_setting(&name) => plain(Read, &format!("{verb} {name}")),
        _ => {
            let mut class = StatementClass::new(Admin, format!("{verb} {name}"));
            class.reasons.push(format!(
                "\"{name}\" is not an ordinary session setting (superuser-only, server-wide or custom; list it in [classifier] safe_settings if it is harmless)"
            ));
            Base::Detailed(Box::new(class))
        }
    }
}

/// A transaction mode list (`BEGIN …`, `SET TRANSACTION …`) that asks for
/// `READ WRITE`, which lifts the upstream's read-only wall for the
/// transaction or the session: it is a write.
pub(super) fn asks_read_write(options: &[protobuf::Node]) -> bool {
    options.iter().any(|option| match &option.node {
        Some(N::DefElem(def)) if def.defname == "transaction_read_only" => {
            match def.arg.as_ref().and_then(|a| a.node.as_ref()) {
                Some(N::AConst(constant)) => match &constant.val {
                    Some(protobuf::a_const::Val::Ival(i)) => i.ival == 0,
                    Some(protobuf::a_const::Val::Boolval(b)) => !b.boolval,
                    _ => true,
                },
                _ => true,
            }
        }
        _ => false,
    })
}

pub(super) fn read_write_class(kind: &str) -> Base {
    let mut class = StatementClass::new(Write, kind);
    class.reasons.push(
        "READ WRITE lifts the read-only transaction mode Warden sets for read-only identities"
            .into(),
    );
    Base::Detailed(Box::new(class))
}

/// A constant `SET` argument as the server reads it.
fn constant_text(node: &protobuf::Node) -> Option<String> {
    match &node.node {
        Some(N::AConst(constant)) => match &constant.val {
            Some(protobuf::a_const::Val::Sval(s)) => Some(s.sval.clone()),
            Some(protobuf::a_const::Val::Ival(i)) => Some(i.ival.to_string()),
            Some(protobuf::a_const::Val::Fval(f)) => Some(f.fval.clone()),
            Some(protobuf::a_const::Val::Boolval(b)) => Some(b.boolval.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// `SET standard_conforming_strings` / `client_encoding` (`SET NAMES`) to a
/// value Warden cannot lex under, or to a value it cannot know (`DEFAULT`,
/// `FROM CURRENT`). `RESET` returns to the session's start value, which the
/// startup checks already accepted.
fn lexing_refusal(set: &protobuf::VariableSetStmt, name: &str) -> Option<String> {
    if !matches!(name, "standard_conforming_strings" | "client_encoding") {
        return None;
    }
    if set.kind == VariableSetKind::VarReset as i32 {
        return None;
    }
    let values: Vec<String> = set.args.iter().filter_map(constant_text).collect();
    match values.as_slice() {
        [value] if set.kind == VariableSetKind::VarSetValue as i32 => {
            warden_core::lexing::pg_setting_refusal(name, value)
        }
        _ => Some(format!(
            "{name} set to a value Warden cannot know in advance (DEFAULT, FROM CURRENT or a list)"
        )),
    }
}

/// Raises `class` for a `set_config(setting, value, is_local)` call in the
/// statement `node`. The setting is known when it is a string constant, or
/// when the call is pg_dump's `SELECT set_config(name, …) FROM pg_settings
/// WHERE name = '…'`, where the filter pins the column to constants.
pub(super) fn set_config_class(
    classifier: &Classifier,
    class: &mut StatementClass,
    function: &FoundFunction,
    node: &N,
) {
    let settings = match &function.first_string_arg {
        Some(setting) => vec![setting.clone()],
        None => match pg_settings_filter(node) {
            Some(settings) => settings,
            None => {
                class.raise(Admin, "set_config() of a setting named at run time");
                return;
            }
        },
    };
    for setting in settings {
        if matches!(
            setting.to_ascii_lowercase().as_str(),
            "standard_conforming_strings" | "client_encoding"
        ) {
            class.refuse(format!(
                "set_config() of \"{setting}\", which changes how the server lexes statements (use SET with a supported value)"
            ));
        } else if !classifier.is_safe_setting(&setting) {
            class.raise(
                Admin,
                format!("set_config() of \"{setting}\", a privilege-related setting"),
            );
        }
    }
}

/// For `SELECT set_config(name, …)[, …] FROM [pg_catalog.]pg_settings WHERE
/// name = 'a' [AND …]` (or `name IN ('a', 'b')`): the settings the filter
/// allows. `None` unless every call whose setting is not a constant is one of
/// those top-level calls on the `name` column.
fn pg_settings_filter(node: &N) -> Option<Vec<String>> {
    let N::SelectStmt(select) = node else {
        return None;
    };
    let [from] = select.from_clause.as_slice() else {
        return None;
    };
    let Some(N::RangeVar(table)) = &from.node else {
        return None;
    };
    if table.relname != "pg_settings" || !matches!(table.schemaname.as_str(), "" | "pg_catalog") {
        return None;
    }
    let alias = table.alias.as_ref().map(|a| a.aliasname.as_str());
    let names = name_filter(select.where_clause.as_deref()?, alias)?;
    let calls_on_name = select
        .target_list
        .iter()
        .filter(|target| match &target.node {
            Some(N::ResTarget(res)) => res
                .val
                .as_deref()
                .is_some_and(|val| is_set_config_of_name(val, alias)),
            _ => false,
        })
        .count();
    let dynamic_calls = count_dynamic_set_config(node);
    (calls_on_name > 0 && calls_on_name == dynamic_calls).then_some(names)
}

/// The constants a WHERE clause pins `name` to: `name = 'c'`, `name IN (…)`,
/// or either as one conjunct of an AND.
fn name_filter(clause: &protobuf::Node, alias: Option<&str>) -> Option<Vec<String>> {
    match clause.node.as_ref()? {
        N::BoolExpr(expr) if expr.boolop == protobuf::BoolExprType::AndExpr as i32 => {
            expr.args.iter().find_map(|arg| name_filter(arg, alias))
        }
        N::AExpr(expr) => {
            let operator = match expr.name.as_slice() {
                [op] | [_, op] => match &op.node {
                    Some(N::String(s)) => s.sval.as_str(),
                    _ => return None,
                },
                _ => return None,
            };
            if !is_name_column(expr.lexpr.as_deref()?, alias) {
                return None;
            }
            let right = expr.rexpr.as_deref()?;
            let kind = protobuf::AExprKind::try_from(expr.kind).ok()?;
            match (kind, operator) {
                (protobuf::AExprKind::AexprOp, "=") => Some(vec![string_constant(right)?]),
                (protobuf::AExprKind::AexprIn, "=") => match right.node.as_ref()? {
                    N::List(list) => list.items.iter().map(string_constant).collect(),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

fn string_constant(node: &protobuf::Node) -> Option<String> {
    match &node.node {
        Some(N::AConst(constant)) => match &constant.val {
            Some(protobuf::a_const::Val::Sval(s)) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn is_name_column(node: &protobuf::Node, alias: Option<&str>) -> bool {
    let Some(N::ColumnRef(column)) = &node.node else {
        return false;
    };
    let parts: Vec<&str> = column
        .fields
        .iter()
        .filter_map(|f| match &f.node {
            Some(N::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    if parts.len() != column.fields.len() {
        return false;
    }
    match parts.as_slice() {
        ["name"] => true,
        [table, "name"] => Some(*table) == alias.or(Some("pg_settings")),
        _ => false,
    }
}

fn is_set_config_of_name(node: &protobuf::Node, alias: Option<&str>) -> bool {
    let Some(N::FuncCall(call)) = &node.node else {
        return false;
    };
    let name_ok = match call.funcname.as_slice() {
        [f] => matches!(&f.node, Some(N::String(s)) if s.sval == "set_config"),
        [schema, f] => {
            matches!(&schema.node, Some(N::String(s)) if s.sval == "pg_catalog")
                && matches!(&f.node, Some(N::String(s)) if s.sval == "set_config")
        }
        _ => false,
    };
    name_ok
        && call
            .args
            .first()
            .is_some_and(|arg| is_name_column(arg, alias))
}

/// Every `set_config` call anywhere in the statement whose first argument is
/// not a string constant.
fn count_dynamic_set_config(node: &N) -> usize {
    let mut count = 0;
    for (child, _depth, _context, _) in node.nodes() {
        if let pg_query::NodeRef::FuncCall(call) = child {
            let is_set_config = call
                .funcname
                .last()
                .is_some_and(|f| matches!(&f.node, Some(N::String(s)) if s.sval == "set_config"));
            if is_set_config && call.args.first().and_then(string_constant).is_none() {
                count += 1;
            }
        }
    }
    count
}
