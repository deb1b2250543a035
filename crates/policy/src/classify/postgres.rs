//! PostgreSQL statements, parsed by libpg_query (the server's own grammar).

use super::functions::FunctionClass;
use super::pg_walk::{Found, walk};
use super::{Classifier, CursorUse, StatementClass, TableRef};
use pg_query::NodeEnum as N;
use pg_query::protobuf::{self, DiscardMode, ObjectType, ReindexObjectType, TransactionStmtKind};
use warden_core::Operation;
use warden_core::Operation::{Admin, Ddl, Read, Unknown, Write};

/// `LockMode::AccessShareLock`: the only lock `LOCK TABLE` may take for a read.
const ACCESS_SHARE_LOCK: i32 = 1;

/// Classifies every statement of `sql`; a text that does not parse is one
/// `unknown` statement.
pub fn classify(classifier: &Classifier, sql: &str) -> Vec<StatementClass> {
    match fast_read(classifier, sql) {
        Some(class) => vec![class],
        None => classify_full(classifier, sql),
    }
}

/// Keywords after which a SELECT may do more than read: `INTO` (creates a
/// table), `FOR` (row locks), and DML that could sit in a CTE; and `WITH`,
/// whose names only the full tree resolves by scope.
const RISKY_TOKENS: [protobuf::Token; 7] = [
    protobuf::Token::With,
    protobuf::Token::Into,
    protobuf::Token::For,
    protobuf::Token::Insert,
    protobuf::Token::Update,
    protobuf::Token::DeleteP,
    protobuf::Token::Merge,
];

/// The fast path for the common case, a single plain SELECT. libpg_query's
/// summary (computed in C with the server's raw tree walker, no protobuf
/// tree) gives the statement type, tables and function calls; the server's
/// own lexer shows whether any risky keyword occurs outside literals and
/// comments. Anything else — or anything in doubt — returns `None` and goes
/// through the full parse tree. A unit test checks both paths agree.
fn fast_read(classifier: &Classifier, sql: &str) -> Option<StatementClass> {
    let summary = std::panic::catch_unwind(|| pg_query::summary(sql, 0, -1))
        .ok()?
        .ok()?;
    if summary.statement_types.len() != 1
        || summary.statement_types.first().map(String::as_str) != Some("SelectStmt")
    {
        return None;
    }
    let scan = pg_query::scan(sql).ok()?;
    if scan
        .tokens
        .iter()
        .any(|t| RISKY_TOKENS.iter().any(|r| *r as i32 == t.token))
    {
        return None;
    }
    for function in &summary.functions {
        let mut parts: Vec<String> = function.schema_name.iter().cloned().collect();
        parts.push(function.function_name.clone());
        if function.function_name == "set_config"
            || classifier.functions().classify_postgres(&parts) != FunctionClass::Safe
        {
            return None;
        }
    }
    let mut tables: Vec<(usize, TableRef)> = Vec::new();
    for table in &summary.tables {
        if table.context != protobuf::summary_result::Context::Select {
            return None;
        }
        let schema = Some(table.schema_name.as_str()).filter(|s| !s.is_empty());
        if !summary.cte_names.is_empty() {
            // Which references are a CTE and which a table of the same name
            // needs scopes: the full tree resolves them.
            return None;
        }
        let table_ref = TableRef::new(schema, &table.table_name);
        if !tables.iter().any(|(_, t)| *t == table_ref) {
            // Order of appearance, like the full path.
            let at = sql.find(table.table_name.as_str()).unwrap_or(usize::MAX);
            tables.push((at, table_ref));
        }
    }
    tables.sort_by_key(|(at, _)| *at);
    let mut class = StatementClass::new(Read, "SELECT");
    class.tables = tables.into_iter().map(|(_, t)| t).collect();
    Some(class)
}

/// The full parse tree, walked completely.
fn classify_full(classifier: &Classifier, sql: &str) -> Vec<StatementClass> {
    // pg_query's summary pass can panic on odd trees; a panic is a refusal.
    let parsed = std::panic::catch_unwind(|| pg_query::parse(sql, 0));
    let parsed = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(error)) => {
            return vec![StatementClass::unknown(format!(
                "does not parse as PostgreSQL: {error}"
            ))];
        }
        Err(_) => {
            return vec![StatementClass::unknown(
                "the PostgreSQL parser failed on this text",
            )];
        }
    };
    parsed
        .protobuf
        .stmts
        .iter()
        .map(
            |raw| match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                Some(node) => classify_node(classifier, node),
                None => StatementClass::unknown("empty statement node"),
            },
        )
        .collect()
}

/// Classifies one statement node.
fn classify_node(classifier: &Classifier, node: &N) -> StatementClass {
    let mut found = Found::default();
    if let Err(error) = walk(node, &mut found) {
        return StatementClass::unknown(format!("cannot walk the parse tree: {error}"));
    }
    let mut class = match base_class(classifier, node, &found) {
        Base::Plain(operation, kind) => StatementClass::new(operation, kind),
        Base::Detailed(class) => return *class,
        Base::TablesOnly(kind) => {
            // EXPLAIN without ANALYZE plans but does not run the statement.
            let mut class = StatementClass::new(Read, kind);
            class.tables = found.tables_without_ctes();
            return class;
        }
    };
    class.tables = found.tables_without_ctes();
    apply_found(classifier, &mut class, &found, node);
    class
}

/// What the statement type alone says.
pub(super) enum Base {
    Plain(Operation, String),
    /// Fully classified already (EXPLAIN ANALYZE, PREPARE …).
    Detailed(Box<StatementClass>),
    /// Read, with the tables of the whole tree and nothing else.
    TablesOnly(String),
}

pub(super) fn plain(operation: Operation, kind: &str) -> Base {
    Base::Plain(operation, kind.to_string())
}

fn base_class(classifier: &Classifier, node: &N, found: &Found) -> Base {
    match node {
        N::SelectStmt(_) => plain(Read, "SELECT"),
        N::InsertStmt(_) => plain(Write, "INSERT"),
        N::UpdateStmt(_) => plain(Write, "UPDATE"),
        N::DeleteStmt(_) => plain(Write, "DELETE"),
        N::MergeStmt(_) => plain(Write, "MERGE"),
        N::TruncateStmt(_) => plain(Write, "TRUNCATE"),
        N::RefreshMatViewStmt(_) => plain(Write, "REFRESH MATERIALIZED VIEW"),
        N::ExplainStmt(explain) => {
            let inner = explain.query.as_ref().and_then(|q| q.node.as_ref());
            match inner {
                Some(inner) if explain_analyzes(explain) => {
                    let mut class = classify_node(classifier, inner);
                    class.kind = format!("EXPLAIN ANALYZE {}", class.kind);
                    if class.operation > Read {
                        class
                            .reasons
                            .insert(0, "EXPLAIN ANALYZE executes the statement".into());
                    }
                    Base::Detailed(Box::new(class))
                }
                _ => Base::TablesOnly("EXPLAIN".into()),
            }
        }
        N::CopyStmt(copy) => {
            let direction = if copy.is_from { "FROM" } else { "TO" };
            if copy.is_program {
                let mut class = StatementClass::new(Admin, format!("COPY {direction} PROGRAM"));
                class
                    .reasons
                    .push("COPY … PROGRAM runs a shell command on the database server".into());
                class_with_walk(classifier, node, found, class)
            } else if !copy.filename.is_empty() {
                let mut class = StatementClass::new(Admin, format!("COPY {direction} FILE"));
                class
                    .reasons
                    .push("COPY with a file name reads or writes the server's files".into());
                class_with_walk(classifier, node, found, class)
            } else if copy.is_from {
                plain(Write, "COPY FROM STDIN")
            } else {
                plain(Read, "COPY TO STDOUT")
            }
        }
        N::LockStmt(lock) => {
            if lock.mode == ACCESS_SHARE_LOCK {
                plain(Read, "LOCK TABLE IN ACCESS SHARE MODE")
            } else {
                let mut class = StatementClass::new(Write, "LOCK TABLE");
                class.reasons.push(
                    "a lock stronger than ACCESS SHARE blocks other sessions' reads or writes"
                        .into(),
                );
                class_with_walk(classifier, node, found, class)
            }
        }
        N::DoStmt(_) => {
            let mut class = StatementClass::new(Admin, "DO");
            class
                .reasons
                .push("DO runs procedural code that can do anything the login role can".into());
            Base::Detailed(Box::new(class))
        }
        // The procedure is a FuncCall in the tree; its class decides.
        N::CallStmt(_) => plain(Read, "CALL"),
        N::PrepareStmt(prepare) => {
            let inner = prepare.query.as_ref().and_then(|q| q.node.as_ref());
            let mut class = match inner {
                Some(inner) => classify_node(classifier, inner),
                None => StatementClass::unknown("PREPARE without a statement"),
            };
            class.kind = format!("PREPARE {}", class.kind);
            class.prepares = Some(prepare.name.clone());
            Base::Detailed(Box::new(class))
        }
        N::ExecuteStmt(execute) => {
            let mut class = StatementClass::new(Read, "EXECUTE");
            class.executes = Some(execute.name.clone());
            class_with_walk(classifier, node, found, class)
        }
        N::DeallocateStmt(deallocate) => {
            let mut class = StatementClass::new(Read, "DEALLOCATE");
            class.deallocates = Some(if deallocate.isall {
                String::new()
            } else {
                deallocate.name.clone()
            });
            Base::Detailed(Box::new(class))
        }
        N::VariableSetStmt(set) => super::pg_set::set_class(classifier, set),
        N::VariableShowStmt(_) => plain(Read, "SHOW"),
        N::TransactionStmt(transaction) => match TransactionStmtKind::try_from(transaction.kind) {
            Ok(
                TransactionStmtKind::TransStmtPrepare
                | TransactionStmtKind::TransStmtCommitPrepared
                | TransactionStmtKind::TransStmtRollbackPrepared,
            ) => plain(Write, "two-phase commit"),
            _ if super::pg_set::asks_read_write(&transaction.options) => {
                super::pg_set::read_write_class("BEGIN READ WRITE")
            }
            _ => plain(Read, "transaction control"),
        },
        // DISCARD resets only the session's own state; ALL also returns to
        // the login role Warden chose (SET SESSION AUTHORIZATION DEFAULT).
        N::DiscardStmt(discard) if discard.target == DiscardMode::DiscardAll as i32 => {
            plain(Read, "DISCARD ALL")
        }
        N::DiscardStmt(_) => plain(Read, "DISCARD"),
        N::ListenStmt(_) => plain(Read, "LISTEN"),
        N::UnlistenStmt(_) => plain(Read, "UNLISTEN"),
        N::NotifyStmt(_) => plain(Write, "NOTIFY"),
        N::DeclareCursorStmt(declare) => {
            let mut class = StatementClass::new(Read, "DECLARE CURSOR");
            class.cursor = Some(CursorUse::Declare(declare.portalname.clone()));
            class_with_walk(classifier, node, found, class)
        }
        N::FetchStmt(fetch) => {
            let mut class = StatementClass::new(Read, if fetch.ismove { "MOVE" } else { "FETCH" });
            class.cursor = Some(CursorUse::Fetch(fetch.portalname.clone()));
            Base::Detailed(Box::new(class))
        }
        N::ClosePortalStmt(close) => {
            let mut class = StatementClass::new(Read, "CLOSE");
            // pg_query leaves the name empty for CLOSE ALL.
            let name = (!close.portalname.is_empty()).then(|| close.portalname.clone());
            class.cursor = Some(CursorUse::Close(name));
            Base::Detailed(Box::new(class))
        }
        N::ConstraintsSetStmt(_) => plain(Read, "SET CONSTRAINTS"),
        N::CreateTableAsStmt(_) => plain(Ddl, "CREATE TABLE AS"),
        N::DropStmt(drop) => drop_class(classifier, node, found, drop),
        N::AlterSystemStmt(_) => plain(Admin, "ALTER SYSTEM"),
        N::LoadStmt(_) => plain(Admin, "LOAD"),
        N::CheckPointStmt(_) => plain(Admin, "CHECKPOINT"),
        // Maintenance of named tables is an owner's job like ALTER TABLE (ddl);
        // the same command over a whole database or the catalogs is admin.
        N::VacuumStmt(vacuum) if vacuum.rels.is_empty() => {
            plain(Admin, "VACUUM/ANALYZE of the whole database")
        }
        N::VacuumStmt(_) => plain(Ddl, "VACUUM/ANALYZE"),
        N::ClusterStmt(cluster) if cluster.relation.is_none() => {
            plain(Admin, "CLUSTER of the whole database")
        }
        N::ClusterStmt(_) => plain(Ddl, "CLUSTER"),
        N::ReindexStmt(reindex) => match ReindexObjectType::try_from(reindex.kind) {
            Ok(ReindexObjectType::ReindexObjectIndex | ReindexObjectType::ReindexObjectTable) => {
                plain(Ddl, "REINDEX")
            }
            _ => plain(Admin, "REINDEX of a schema, the catalogs or a database"),
        },
        N::CreateExtensionStmt(_) => plain(Admin, "CREATE EXTENSION"),
        N::AlterExtensionStmt(_) | N::AlterExtensionContentsStmt(_) => {
            plain(Admin, "ALTER EXTENSION")
        }
        N::CreateRoleStmt(_) => plain(Admin, "CREATE ROLE"),
        N::AlterRoleStmt(_) | N::AlterRoleSetStmt(_) => plain(Admin, "ALTER ROLE"),
        N::DropRoleStmt(_) => plain(Admin, "DROP ROLE"),
        N::GrantStmt(_) => plain(Admin, "GRANT/REVOKE"),
        N::GrantRoleStmt(_) => plain(Admin, "GRANT/REVOKE role"),
        N::AlterDefaultPrivilegesStmt(_) => plain(Admin, "ALTER DEFAULT PRIVILEGES"),
        N::ReassignOwnedStmt(_) => plain(Admin, "REASSIGN OWNED"),
        N::DropOwnedStmt(_) => plain(Admin, "DROP OWNED"),
        N::AlterOwnerStmt(alter) => plain(object_operation(alter.object_type), "ALTER … OWNER TO"),
        N::CreatePolicyStmt(_) | N::AlterPolicyStmt(_) => plain(Admin, "row-level security policy"),
        N::CreateEventTrigStmt(_) | N::AlterEventTrigStmt(_) => plain(Admin, "event trigger"),
        N::CreateTableSpaceStmt(_)
        | N::DropTableSpaceStmt(_)
        | N::AlterTableSpaceOptionsStmt(_)
        | N::AlterTableMoveAllStmt(_) => plain(Admin, "tablespace"),
        N::CreateFdwStmt(_)
        | N::AlterFdwStmt(_)
        | N::CreateForeignServerStmt(_)
        | N::AlterForeignServerStmt(_)
        | N::CreateUserMappingStmt(_)
        | N::AlterUserMappingStmt(_)
        | N::DropUserMappingStmt(_) => plain(Admin, "foreign server"),
        N::CreatePlangStmt(_) => plain(Admin, "CREATE LANGUAGE"),
        N::CreatedbStmt(_)
        | N::AlterDatabaseStmt(_)
        | N::AlterDatabaseRefreshCollStmt(_)
        | N::AlterDatabaseSetStmt(_)
        | N::DropdbStmt(_) => plain(Admin, "database"),
        N::CreatePublicationStmt(_)
        | N::AlterPublicationStmt(_)
        | N::CreateSubscriptionStmt(_)
        | N::AlterSubscriptionStmt(_)
        | N::DropSubscriptionStmt(_) => plain(Admin, "replication"),
        N::SecLabelStmt(_) => plain(Admin, "SECURITY LABEL"),
        N::CreateAmStmt(_) => plain(Admin, "CREATE ACCESS METHOD"),
        N::CreateStmt(_) => plain(Ddl, "CREATE TABLE"),
        N::ViewStmt(_) => plain(Ddl, "CREATE VIEW"),
        N::IndexStmt(_) => plain(Ddl, "CREATE INDEX"),
        N::AlterTableStmt(_) => plain(Ddl, "ALTER TABLE"),
        N::CreateFunctionStmt(_) => plain(Ddl, "CREATE FUNCTION"),
        N::CreateTrigStmt(_) => plain(Ddl, "CREATE TRIGGER"),
        N::RuleStmt(_) => plain(Ddl, "CREATE RULE"),
        N::CreateSchemaStmt(_) => plain(Ddl, "CREATE SCHEMA"),
        N::CreateSeqStmt(_) | N::AlterSeqStmt(_) => plain(Ddl, "SEQUENCE"),
        N::RenameStmt(_) => plain(Ddl, "RENAME"),
        N::CommentStmt(_) => plain(Ddl, "COMMENT"),
        N::ReplicaIdentityStmt(_)
        | N::AlterCollationStmt(_)
        | N::AlterDomainStmt(_)
        | N::CreateForeignTableStmt(_)
        | N::ImportForeignSchemaStmt(_)
        | N::DefineStmt(_)
        | N::CreateDomainStmt(_)
        | N::CreateOpClassStmt(_)
        | N::CreateOpFamilyStmt(_)
        | N::AlterOpFamilyStmt(_)
        | N::CreateStatsStmt(_)
        | N::AlterStatsStmt(_)
        | N::AlterFunctionStmt(_)
        | N::AlterObjectDependsStmt(_)
        | N::AlterObjectSchemaStmt(_)
        | N::AlterOperatorStmt(_)
        | N::AlterTypeStmt(_)
        | N::CompositeTypeStmt(_)
        | N::CreateEnumStmt(_)
        | N::CreateRangeStmt(_)
        | N::AlterEnumStmt(_)
        | N::CreateConversionStmt(_)
        | N::CreateCastStmt(_)
        | N::CreateTransformStmt(_)
        | N::AlterTsdictionaryStmt(_)
        | N::AlterTsconfigurationStmt(_) => plain(Ddl, "DDL"),
        _ => {
            let class = StatementClass::unknown("a statement type Warden does not classify");
            Base::Detailed(Box::new(class))
        }
    }
}

/// A class that still takes the tree's tables and function calls into account.
fn class_with_walk(
    classifier: &Classifier,
    node: &N,
    found: &Found,
    mut class: StatementClass,
) -> Base {
    class.tables = found.tables_without_ctes();
    apply_found(classifier, &mut class, found, node);
    Base::Detailed(Box::new(class))
}

/// Raises the class for what the tree contains: nested DML, `SELECT INTO`,
/// row locks and function calls.
fn apply_found(classifier: &Classifier, class: &mut StatementClass, found: &Found, node: &N) {
    let is_dml_root = matches!(
        node,
        N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_)
    );
    let nested = found.dml.len() - usize::from(is_dml_root);
    if nested > 0
        && let Some(kind) = found.dml.last()
    {
        class.raise(
            Write,
            format!("contains a data-modifying {kind} (e.g. in a WITH clause)"),
        );
    }
    if found.into_clause && matches!(node, N::SelectStmt(_)) {
        class.raise(Ddl, "SELECT … INTO creates a table");
        class.kind = "SELECT INTO".into();
    }
    if found.row_locks {
        class.raise(Write, "FOR UPDATE/SHARE takes row locks that block writers");
    }
    for function in &found.functions {
        let name = function.name.join(".");
        if function.name.last().map(String::as_str) == Some("set_config") {
            super::pg_set::set_config_class(classifier, class, function, node);
            continue;
        }
        match classifier.functions().classify_postgres(&function.name) {
            FunctionClass::Safe => {}
            FunctionClass::Admin => class.raise(
                Admin,
                format!("{name}() reaches the server's files, sessions or other servers"),
            ),
            FunctionClass::Write => class.raise(
                Write,
                format!(
                    "{name}() is not known to be read-only (list it in [classifier] safe_functions if it is)"
                ),
            ),
        }
    }
}

/// `EXPLAIN (ANALYZE)` / `EXPLAIN ANALYZE` runs the statement; `ANALYZE false` does not.
fn explain_analyzes(explain: &protobuf::ExplainStmt) -> bool {
    explain.options.iter().any(|option| match &option.node {
        Some(N::DefElem(def)) if def.defname.eq_ignore_ascii_case("analyze") => {
            match def.arg.as_ref().and_then(|a| a.node.as_ref()) {
                None => true,
                Some(N::Boolean(b)) => b.boolval,
                Some(N::Integer(i)) => i.ival != 0,
                Some(N::String(s)) => !matches!(
                    s.sval.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no" | "0" | "f" | "n"
                ),
                Some(_) => true,
            }
        }
        _ => false,
    })
}

/// The class of creating, dropping or changing the owner of an object of this
/// type: server-wide objects and privilege machinery are admin, the rest ddl.
fn object_operation(object_type: i32) -> Operation {
    match ObjectType::try_from(object_type).unwrap_or(ObjectType::Undefined) {
        ObjectType::ObjectExtension
        | ObjectType::ObjectPolicy
        | ObjectType::ObjectEventTrigger
        | ObjectType::ObjectFdw
        | ObjectType::ObjectForeignServer
        | ObjectType::ObjectPublication
        | ObjectType::ObjectSubscription
        | ObjectType::ObjectLanguage
        | ObjectType::ObjectAccessMethod
        | ObjectType::ObjectTablespace
        | ObjectType::ObjectDatabase
        | ObjectType::ObjectRole => Admin,
        ObjectType::Undefined => Unknown,
        _ => Ddl,
    }
}

fn drop_class(classifier: &Classifier, node: &N, found: &Found, drop: &protobuf::DropStmt) -> Base {
    let object = ObjectType::try_from(drop.remove_type).unwrap_or(ObjectType::Undefined);
    let operation = object_operation(drop.remove_type);
    let mut class = StatementClass::new(operation, "DROP");
    if matches!(
        object,
        ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable
            | ObjectType::ObjectSequence
    ) {
        for object in &drop.objects {
            if let Some(N::List(list)) = &object.node {
                let parts: Vec<&str> = list
                    .items
                    .iter()
                    .filter_map(|item| match &item.node {
                        Some(N::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    })
                    .collect();
                if let Some((name, rest)) = parts.split_last() {
                    class.tables.push(TableRef::new(rest.last().copied(), name));
                }
            }
        }
    }
    let tables = std::mem::take(&mut class.tables);
    match class_with_walk(classifier, node, found, class) {
        Base::Detailed(mut class) => {
            for table in tables {
                if !class.tables.contains(&table) {
                    class.tables.push(table);
                }
            }
            Base::Detailed(class)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::config::ClassifierConfig;

    /// The fast path must agree with the full parse tree wherever it answers.
    #[test]
    fn fast_path_agrees_with_the_full_tree() {
        let classifier = Classifier::new(&ClassifierConfig::default());
        let corpus: toml::Value =
            toml::from_str(include_str!("../../tests/corpus.toml")).expect("corpus");
        let mut texts: Vec<String> = corpus["case"]
            .as_array()
            .expect("cases")
            .iter()
            .filter(|c| c["dialect"].as_str() == Some("postgres"))
            .filter_map(|c| c["sql"].as_str().map(str::to_string))
            .collect();
        texts.extend(
            [
                "SELECT a FROM t t1 JOIN s.u ON true WHERE EXISTS (SELECT 1 FROM v WHERE v.x = t1.a)",
                "WITH c AS (SELECT * FROM orders) SELECT * FROM c JOIN t ON true",
                "SELECT (SELECT max(a) FROM t), CASE WHEN x THEN (SELECT 1 FROM w) END FROM y",
                "SELECT * FROM generate_series(1, 3) g, LATERAL (SELECT * FROM t WHERE a = g) x",
                "SELECT * FROM t WHERE a = ANY (ARRAY(SELECT id FROM orders))",
                "SELECT lower(b) FROM t UNION ALL SELECT upper(b) FROM u ORDER BY 1",
                "SELECT * FROM ROWS FROM (generate_series(1, 2), my_func()) AS x",
                "SELECT x FROM t WHERE b = (SELECT my_func())",
                "TABLE t",
                "VALUES (1), (2)",
                "SELECT * FROM t, \"Quoted\".\"Name\"",
                "SELECT substring(b FOR 2) FROM t",
            ]
            .map(str::to_string),
        );
        let mut fast = 0;
        for text in &texts {
            if let Some(mut class) = fast_read(&classifier, text) {
                fast += 1;
                let mut full = classify_full(&classifier, text);
                // Table order is cosmetic: the paths list them differently.
                class.tables.sort();
                for statement in &mut full {
                    statement.tables.sort();
                }
                assert_eq!(vec![class], full, "paths disagree on {text:?}");
            }
        }
        assert!(fast >= 15, "fast path used only {fast} times");
    }
}
