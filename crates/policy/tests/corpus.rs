//! Every corpus statement gets its expected class (and tables, when listed).

mod common;

use warden_policy::classify;

#[test]
fn corpus_is_large_and_covers_both_dialects() {
    let cases = common::load();
    assert!(cases.len() >= 80, "corpus has {} cases", cases.len());
    for dialect in ["postgres", "mysql"] {
        assert!(
            cases.iter().filter(|c| c.dialect == dialect).count() >= 30,
            "too few {dialect} cases"
        );
    }
}

#[test]
fn every_statement_has_its_expected_class() {
    let mut failures = Vec::new();
    for case in common::load() {
        let class = classify(case.dialect(), &case.sql);
        if class.operation != case.expected() {
            failures.push(format!(
                "[{}] {:?}: expected {}, got {} ({:?})",
                case.dialect,
                case.sql,
                case.class,
                class.operation,
                class
                    .statements
                    .iter()
                    .flat_map(|s| s.reasons.clone())
                    .collect::<Vec<_>>()
            ));
            continue;
        }
        if let Some(tables) = &case.tables
            && &class.table_names() != tables
        {
            failures.push(format!(
                "[{}] {:?}: expected tables {tables:?}, got {:?}",
                case.dialect,
                case.sql,
                class.table_names()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} misclassified:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn classification_is_stable_when_cached() {
    for case in common::load() {
        let first = classify(case.dialect(), &case.sql);
        let second = classify(case.dialect(), &case.sql);
        assert_eq!(first, second, "{}", case.sql);
    }
}
