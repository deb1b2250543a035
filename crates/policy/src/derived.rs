//! Relations that read ruled tables (partitions, inheritance children,
//! views), as the upstream's catalog reported them at session start: a
//! statement naming one is judged by deny and review rules as also reading
//! the table it reads. Allow rules still need to cover the names the
//! statement uses, so a view can stay the one thing an identity may read.

use crate::classify::{Classification, TableRef};
use std::collections::HashMap;
use warden_core::request::DerivedRelation;

/// The table part of a `mask_columns` pattern (`schema.table.column` or
/// `table.column`), lowercase; `None` for a bare column pattern.
pub(crate) fn masked_table(pattern: &str) -> Option<String> {
    let parts: Vec<&str> = pattern.split('.').collect();
    match parts.as_slice() {
        [.., table, _column] => Some(table.to_lowercase()),
        _ => None,
    }
}

/// Derived relation (lowercase name) → (its schema, the tables it reads).
#[derive(Debug, Default)]
pub(crate) struct Underlying {
    by_name: HashMap<String, Vec<(String, TableRef)>>,
}

impl Underlying {
    pub fn new(relations: &[DerivedRelation]) -> Underlying {
        let mut by_name: HashMap<String, Vec<(String, TableRef)>> = HashMap::new();
        for relation in relations {
            by_name
                .entry(relation.name.to_lowercase())
                .or_default()
                .push((
                    relation.schema.to_lowercase(),
                    TableRef::new(Some(&relation.source_schema), &relation.source),
                ));
        }
        Underlying { by_name }
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
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
    use warden_core::Operation;

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
