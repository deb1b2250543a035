//! PostgreSQL `SET` / `RESET`: ordinary session settings are reads,
//! privilege-related ones admin, `READ WRITE` transaction modes writes, and
//! values of the settings that change how the server lexes (see
//! `warden_core::lexing`) are refused.

use super::postgres::{Base, plain};
use super::{Classifier, StatementClass};
use pg_query::NodeEnum as N;
use pg_query::protobuf::{self, VariableSetKind};
use warden_core::Operation::{Admin, Read, Write};

pub(super) fn set_class(classifier: &Classifier, set: &protobuf::VariableSetStmt) -> Base {
    if set.kind == VariableSetKind::VarResetAll as i32 {
        let mut class = StatementClass::new(Admin, "RESET ALL");
        class
            .reasons
            .push("RESET ALL also resets the session's role".into());
        return Base::Detailed(Box::new(class));
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
    match name.as_str() {
        "role" => plain(Admin, &format!("{verb} ROLE")),
        "session_authorization" => plain(Admin, &format!("{verb} SESSION AUTHORIZATION")),
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
