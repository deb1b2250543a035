//! Relations that read ruled tables (partitions, inheritance children,
//! views), as the upstream's catalog reported them at session start: a
//! statement naming one is judged by deny and review rules as also reading
//! the table it reads. Allow rules still need to cover the names the
//! statement uses, so a view can stay the one thing an identity may read.

use crate::classify::functions::FunctionClass;
use crate::classify::{Classification, FunctionList, TableRef};
use std::collections::HashMap;
use warden_core::Operation;
use warden_core::request::{DerivedRelation, Dialect, ViewFunction};

/// The table part of a `mask_columns` pattern (`schema.table.column` or
/// `table.column`), lowercase; `None` for a bare column pattern.
pub(crate) fn masked_table(pattern: &str) -> Option<String> {
    let parts: Vec<&str> = pattern.split('.').collect();
    match parts.as_slice() {
        [.., table, _column] => Some(table.to_lowercase()),
        _ => None,
    }
}

/// Derived relation (lowercase name) → (its schema, the tables it reads);
/// view (lowercase name) → (its schema, the volatile functions it calls).
#[derive(Debug, Default)]
pub(crate) struct Underlying {
    by_name: HashMap<String, Vec<(String, TableRef)>>,
    functions: HashMap<String, Vec<(String, Vec<String>)>>,
}

impl Underlying {
    #[cfg(test)]
    pub fn new(relations: &[DerivedRelation]) -> Underlying {
        let mut underlying = Underlying::default();
        underlying.set_relations(relations);
        underlying
    }

    pub fn set_relations(&mut self, relations: &[DerivedRelation]) {
        self.by_name.clear();
        for relation in relations {
            self.by_name
                .entry(relation.name.to_lowercase())
                .or_default()
                .push((
                    relation.schema.to_lowercase(),
                    TableRef::new(Some(&relation.source_schema), &relation.source),
                ));
        }
    }

    pub fn set_view_functions(&mut self, views: &[ViewFunction]) {
        self.functions.clear();
        for view in views {
            self.functions
                .entry(view.view.to_lowercase())
                .or_default()
                .push((
                    view.schema.to_lowercase(),
                    vec![view.function_schema.clone(), view.function.clone()],
                ));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.functions.is_empty()
    }

    /// Raises each statement that reads a view calling a volatile function
    /// to that function's class: `SELECT * FROM v` runs `del_items()` when
    /// `v` is `SELECT del_items()`.
    pub fn judge_view_functions(
        &self,
        classification: &mut Classification,
        functions: &FunctionList,
        dialect: Dialect,
    ) {
        if self.functions.is_empty() {
            return;
        }
        let mut changed = false;
        for statement in &mut classification.statements {
            let mut raises = Vec::new();
            for table in &statement.tables {
                let Some(calls) = self.functions.get(&table.name.to_lowercase()) else {
                    continue;
                };
                let schema = table.schema.as_deref().map(str::to_lowercase);
                for (view_schema, function) in calls {
                    if schema.as_ref().is_some_and(|s| s != view_schema) {
                        continue;
                    }
                    let class = match dialect {
                        Dialect::Postgres => functions.classify_postgres(function),
                        Dialect::Mysql => {
                            functions.classify_mysql(Some(&function[0]), &function[1])
                        }
                    };
                    let operation = match class {
                        FunctionClass::Safe => continue,
                        FunctionClass::Write => Operation::Write,
                        FunctionClass::Admin => Operation::Admin,
                    };
                    raises.push((
                        operation,
                        format!(
                            "view {} calls {}(), which is not known to be read-only",
                            table.name,
                            function.join(".")
                        ),
                    ));
                }
            }
            for (operation, reason) in raises {
                statement.raise(operation, reason);
                changed = true;
            }
        }
        if changed {
            *classification =
                Classification::from_statements(std::mem::take(&mut classification.statements));
        }
    }

    /// Adds to each statement the tables its relations read. An unqualified
    /// name may be any schema's relation of that name (the search path
    /// decides), so every one counts.
    pub fn attach(&self, classification: &mut Classification) {
        let mut changed = false;
        for statement in &mut classification.statements {
            let mut found = Vec::new();
            for table in &statement.tables {
                let Some(sources) = self.by_name.get(&table.name.to_lowercase()) else {
                    continue;
                };
                let schema = table.schema.as_deref().map(str::to_lowercase);
                for (relation_schema, source) in sources {
                    if schema.as_ref().is_none_or(|s| s == relation_schema)
                        && !found.contains(source)
                    {
                        found.push(source.clone());
                    }
                }
            }
            for source in found {
                if !statement.underlying.contains(&source) {
                    statement.underlying.push(source);
                    changed = true;
                }
            }
        }
        if changed {
            *classification =
                Classification::from_statements(std::mem::take(&mut classification.statements));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_and_partitions_carry_their_sources() {
        assert_eq!(
            masked_table("billing.cards.number").as_deref(),
            Some("cards")
        );
        assert_eq!(masked_table("Secrets.code").as_deref(), Some("secrets"));
        assert_eq!(masked_table("*password*"), None);
        let underlying = Underlying::new(&[
            DerivedRelation {
                schema: "public".into(),
                name: "phid_1".into(),
                source_schema: "public".into(),
                source: "phid".into(),
            },
            DerivedRelation {
                schema: "reports".into(),
                name: "v_hidden".into(),
                source_schema: "public".into(),
                source: "hidden".into(),
            },
        ]);
        let mut statement = crate::classify::StatementClass::new(Operation::Read, "SELECT");
        statement.tables = vec![
            TableRef::new(None, "PHID_1"),
            TableRef::new(Some("public"), "v_hidden"),
        ];
        let mut classification = Classification::from_statements(vec![statement]);
        underlying.attach(&mut classification);
        let statement = &classification.statements[0];
        assert_eq!(
            statement.underlying,
            vec![TableRef::new(Some("public"), "phid")]
        );
        assert!(
            classification
                .tables
                .contains(&TableRef::new(Some("public"), "phid"))
        );
    }
}
