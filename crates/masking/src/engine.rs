//! The gateway's masking engine: turns the policy's `mask`/`mask_columns`
//! rules for a session into a compiled [`RuleMasker`], cached per rule set so
//! sessions with the same rules share one scanner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use globset::{GlobBuilder, GlobMatcher};
use warden_core::Identity;
use warden_core::config::{MaskingConfig, PolicyConfig};
use warden_core::engines::PolicyEngine;
use warden_core::masking::{ColumnSource, MaskRules, Masked, MaskingEngine, SessionMasker};

use crate::error::MaskingError;
use crate::kind::{DetectorKind, parse_detector_names};
use crate::scanner::{MatchKind, Scanner};
use crate::strategy::Strategy;

/// How values are rewritten, shared by every session.
#[derive(Clone, Debug)]
pub struct MaskingSettings {
    pub strategy: Strategy,
    /// `unmaskable = "null"` (true) or `"refuse"` (false).
    pub unmaskable_as_null: bool,
    /// User-defined `(name, regex)` detectors.
    pub custom: Vec<(String, String)>,
}

impl MaskingSettings {
    /// Reads `[masking]`; `hash_key` is the resolved key when the strategy is `hash`.
    pub fn from_config(
        config: &MaskingConfig,
        hash_key: Option<Vec<u8>>,
    ) -> Result<Self, MaskingError> {
        let strategy = match config.strategy.as_str() {
            "redact" => Strategy::Redact,
            "partial" => Strategy::Partial {
                keep_last: config.keep_last,
            },
            "null" => Strategy::Null,
            "hash" => Strategy::Hash {
                key: hash_key.ok_or(MaskingError::Config(
                    "strategy \"hash\" needs `hash_key` (a secret reference)".into(),
                ))?,
            },
            other => {
                return Err(MaskingError::Config(format!(
                    "unknown strategy \"{other}\"; use redact, partial, hash or null"
                )));
            }
        };
        let unmaskable_as_null = match config.unmaskable.as_str() {
            "null" => true,
            "refuse" => false,
            other => {
                return Err(MaskingError::Config(format!(
                    "unmaskable = \"{other}\" is not known; use \"null\" or \"refuse\""
                )));
            }
        };
        let custom: Vec<(String, String)> = config
            .detectors
            .iter()
            .map(|d| (d.name.clone(), d.regex.clone()))
            .collect();
        // Compile once now so a bad regex fails at start-up, not per session.
        Scanner::new(&[], &custom)?;
        Ok(MaskingSettings {
            strategy,
            unmaskable_as_null,
            custom,
        })
    }

    /// Checks every policy's `mask` names and `mask_columns` patterns, naming
    /// the policy on error.
    pub fn validate_policies(&self, policies: &[PolicyConfig]) -> Result<(), MaskingError> {
        for policy in policies {
            let rules = MaskRules {
                detectors: policy.mask.clone(),
                columns: policy.mask_columns.clone(),
            };
            RuleMasker::compile(&rules, self).map_err(|error| {
                MaskingError::Config(format!("policy \"{}\": {error}", policy.name))
            })?;
        }
        Ok(())
    }
}

/// Masking from policy: implements the gateway's [`MaskingEngine`].
pub struct PolicyMasking {
    policy: Arc<dyn PolicyEngine>,
    settings: MaskingSettings,
    compiled: Mutex<HashMap<MaskRules, Arc<RuleMasker>>>,
}

impl PolicyMasking {
    pub fn new(policy: Arc<dyn PolicyEngine>, settings: MaskingSettings) -> Self {
        PolicyMasking {
            policy,
            settings,
            compiled: Mutex::new(HashMap::new()),
        }
    }
}

impl MaskingEngine for PolicyMasking {
    fn for_session(&self, identity: &Identity, target: &str) -> Option<Arc<dyn SessionMasker>> {
        let rules = self.policy.mask_rules(identity, target);
        if rules.is_empty() {
            return None;
        }
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(masker) = compiled.get(&rules) {
            return Some(masker.clone());
        }
        let masker = match RuleMasker::compile(&rules, &self.settings) {
            Ok(masker) => Arc::new(masker),
            Err(error) => {
                // A reloaded policy with a bad rule: mask every value rather than none.
                tracing::error!(%error, "masking rules do not compile; masking every column");
                Arc::new(RuleMasker::mask_everything(&self.settings))
            }
        };
        compiled.insert(rules, masker.clone());
        Some(masker)
    }
}

/// A `mask_columns` pattern: `column`, `table.column` or `schema.table.column`,
/// each part a case-insensitive glob.
#[derive(Debug)]
struct ColumnPattern {
    schema: Option<GlobMatcher>,
    table: Option<GlobMatcher>,
    column: GlobMatcher,
}

impl ColumnPattern {
    fn parse(pattern: &str) -> Result<Self, MaskingError> {
        let parts: Vec<&str> = pattern.split('.').collect();
        let glob = |part: &str| {
            if part.is_empty() {
                return Err(MaskingError::Config(format!(
                    "mask_columns entry \"{pattern}\" has an empty part; write column, table.column or schema.table.column"
                )));
            }
            GlobBuilder::new(part)
                .case_insensitive(true)
                .literal_separator(false)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| MaskingError::Config(format!("mask_columns entry \"{pattern}\": {e}")))
        };
        match parts.as_slice() {
            [column] => Ok(ColumnPattern {
                schema: None,
                table: None,
                column: glob(column)?,
            }),
            [table, column] => Ok(ColumnPattern {
                schema: None,
                table: Some(glob(table)?),
                column: glob(column)?,
            }),
            [schema, table, column] => Ok(ColumnPattern {
                schema: Some(glob(schema)?),
                table: Some(glob(table)?),
                column: glob(column)?,
            }),
            _ => Err(MaskingError::Config(format!(
                "mask_columns entry \"{pattern}\" has too many dots; write column, table.column or schema.table.column"
            ))),
        }
    }

    /// A bare column pattern also matches the result's label, so an alias
    /// of an expression named like a secret column is masked too.
    fn matches(&self, source: &ColumnSource) -> bool {
        match (&self.table, &source.table, &source.column) {
            (None, _, _) => {
                source
                    .column
                    .as_deref()
                    .is_some_and(|c| self.column.is_match(c))
                    || self.column.is_match(&source.label)
            }
            (Some(table), Some(source_table), Some(column)) => {
                table.is_match(source_table)
                    && self.column.is_match(column)
                    && match (&self.schema, &source.schema) {
                        (None, _) => true,
                        (Some(schema), Some(source_schema)) => schema.is_match(source_schema),
                        (Some(_), None) => false,
                    }
            }
            _ => false,
        }
    }
}

/// One rule set, compiled.
#[derive(Debug)]
pub struct RuleMasker {
    scanner: Option<Scanner>,
    columns: Vec<ColumnPattern>,
    /// Fail-closed mode: every column counts as covered.
    everything: bool,
    strategy: Strategy,
    unmaskable_as_null: bool,
    column_label: Arc<str>,
    custom_labels: HashMap<String, Arc<str>>,
}

impl RuleMasker {
    pub fn compile(rules: &MaskRules, settings: &MaskingSettings) -> Result<Self, MaskingError> {
        let (custom_names, builtin): (Vec<String>, Vec<String>) =
            rules.detectors.iter().cloned().partition(|name| {
                settings
                    .custom
                    .iter()
                    .any(|(custom, _)| custom.eq_ignore_ascii_case(name))
            });
        let kinds: Vec<DetectorKind> = parse_detector_names(&builtin)?;
        let custom: Vec<(String, String)> = settings
            .custom
            .iter()
            .filter(|(name, _)| custom_names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .cloned()
            .collect();
        let scanner = if kinds.is_empty() && custom.is_empty() {
            None
        } else {
            Some(Scanner::new(&kinds, &custom)?)
        };
        let columns = rules
            .columns
            .iter()
            .map(|p| ColumnPattern::parse(p))
            .collect::<Result<_, _>>()?;
        Ok(RuleMasker {
            scanner,
            columns,
            everything: false,
            strategy: settings.strategy.clone(),
            unmaskable_as_null: settings.unmaskable_as_null,
            column_label: Arc::from("column"),
            custom_labels: custom
                .iter()
                .map(|(name, _)| (name.clone(), Arc::from(name.as_str())))
                .collect(),
        })
    }

    /// Masks every value of every column.
    pub fn mask_everything(settings: &MaskingSettings) -> Self {
        RuleMasker {
            scanner: None,
            columns: Vec::new(),
            everything: true,
            strategy: settings.strategy.clone(),
            unmaskable_as_null: settings.unmaskable_as_null,
            column_label: Arc::from("column"),
            custom_labels: HashMap::new(),
        }
    }

    fn whole_value(&self, value: &str) -> Option<String> {
        if self.strategy == Strategy::Null {
            return None;
        }
        let mut out = String::new();
        self.strategy.apply(value, &mut out);
        Some(out)
    }

    fn detector_label(&self, kind: &MatchKind) -> Arc<str> {
        match kind {
            MatchKind::Builtin(kind) => Arc::from(kind.name()),
            MatchKind::Custom(name) => self
                .custom_labels
                .get(name.as_ref())
                .cloned()
                .unwrap_or_else(|| name.clone()),
        }
    }
}

/// The statement texts of other sessions (`pg_stat_activity.query`,
/// `pg_stat_statements.query`, MySQL's `PROCESSLIST.INFO`) can carry covered
/// values as literals, and column statistics sample them: under column rules
/// they are covered too.
fn quotes_other_sessions(column: &ColumnSource) -> bool {
    let (Some(table), Some(name)) = (column.table.as_deref(), column.column.as_deref()) else {
        return false;
    };
    match table {
        "pg_stat_activity" | "pg_stat_statements" => name == "query",
        // Column statistics: the sampled values themselves.
        "pg_statistic" => name.starts_with("stavalues"),
        "pg_statistic_ext_data" => name.starts_with("stxd"),
        _ => table.eq_ignore_ascii_case("processlist") && name.eq_ignore_ascii_case("info"),
    }
}

impl SessionMasker for RuleMasker {
    fn has_column_rules(&self) -> bool {
        !self.columns.is_empty() || self.everything
    }

    fn column_covered(&self, column: &ColumnSource) -> bool {
        self.everything
            || self.columns.iter().any(|p| p.matches(column))
            || (!self.columns.is_empty() && quotes_other_sessions(column))
            || column
                .derived_from
                .iter()
                .any(|base| self.columns.iter().any(|p| p.matches(base)))
    }

    fn table_has_column_rules(&self, schema: Option<&str>, table: &str) -> bool {
        self.everything
            || self.columns.iter().any(|p| match &p.table {
                // A bare column name may be a column of any table.
                None => true,
                Some(glob) => {
                    glob.is_match(table)
                        && match (&p.schema, schema) {
                            (Some(pattern), Some(schema)) => pattern.is_match(schema),
                            _ => true,
                        }
                }
            })
    }

    fn scans_content(&self) -> bool {
        self.scanner.is_some()
    }

    fn mask_text(&self, value: &str, covered: bool) -> Masked {
        if covered {
            return Masked::Replaced {
                value: self.whole_value(value),
                detector: self.column_label.clone(),
            };
        }
        let Some(scanner) = &self.scanner else {
            return Masked::Unchanged;
        };
        let found = scanner.find(value);
        let Some(first) = found.first() else {
            return Masked::Unchanged;
        };
        let detector = self.detector_label(&first.kind);
        if self.strategy == Strategy::Null {
            return Masked::Replaced {
                value: None,
                detector,
            };
        }
        let mut out = String::with_capacity(value.len());
        let mut last = 0;
        for m in &found {
            out.push_str(value.get(last..m.range.start).unwrap_or_default());
            self.strategy
                .apply(value.get(m.range.clone()).unwrap_or_default(), &mut out);
            last = m.range.end;
        }
        out.push_str(value.get(last..).unwrap_or_default());
        Masked::Replaced {
            value: Some(out),
            detector,
        }
    }

    fn unmaskable_as_null(&self) -> bool {
        self.unmaskable_as_null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MaskingSettings {
        MaskingSettings::from_config(&MaskingConfig::default(), None).unwrap()
    }

    fn source(schema: &str, table: &str, column: &str, label: &str) -> ColumnSource {
        ColumnSource {
            schema: Some(schema.into()),
            table: Some(table.into()),
            column: Some(column.into()),
            label: label.into(),
            derived_from: Vec::new(),
        }
    }

    #[test]
    fn column_patterns_match_real_names_not_aliases() {
        let rules = MaskRules {
            detectors: vec![],
            columns: vec![
                "customers.ssn".into(),
                "*password*".into(),
                "billing.cards.number".into(),
            ],
        };
        let masker = RuleMasker::compile(&rules, &settings()).unwrap();
        assert!(masker.column_covered(&source("public", "customers", "ssn", "x")));
        assert!(masker.column_covered(&source("public", "Customers", "SSN", "ssn")));
        assert!(!masker.column_covered(&source("public", "orders", "ssn", "ssn")));
        assert!(masker.column_covered(&source("app", "users", "password_hash", "h")));
        assert!(masker.column_covered(&ColumnSource {
            label: "db_password".into(),
            ..ColumnSource::default()
        }));
        assert!(masker.column_covered(&source("billing", "cards", "number", "n")));
        assert!(!masker.column_covered(&source("public", "cards", "number", "n")));
        // An expression has no table: only bare-column patterns can match its label.
        assert!(!masker.column_covered(&ColumnSource {
            label: "ssn".into(),
            ..ColumnSource::default()
        }));
    }

    #[test]
    fn content_and_column_masking() {
        let rules = MaskRules {
            detectors: vec!["email".into()],
            columns: vec![],
        };
        let masker = RuleMasker::compile(&rules, &settings()).unwrap();
        assert_eq!(masker.mask_text("no pii", false), Masked::Unchanged);
        match masker.mask_text("mail bob@example.com now", false) {
            Masked::Replaced { value, detector } => {
                assert_eq!(value.as_deref(), Some("mail [REDACTED] now"));
                assert_eq!(&*detector, "email");
            }
            other => panic!("{other:?}"),
        }
        match masker.mask_text("123-45-6789", true) {
            Masked::Replaced { value, detector } => {
                assert_eq!(value.as_deref(), Some("[REDACTED]"));
                assert_eq!(&*detector, "column");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn custom_detectors_and_bad_names() {
        let mut config = MaskingConfig::default();
        config.detectors.push(warden_core::config::CustomDetector {
            name: "order_id".into(),
            regex: "ORD-[0-9]{6}".into(),
        });
        let settings = MaskingSettings::from_config(&config, None).unwrap();
        let rules = MaskRules {
            detectors: vec!["order_id".into()],
            columns: vec![],
        };
        let masker = RuleMasker::compile(&rules, &settings).unwrap();
        assert!(matches!(
            masker.mask_text("ref ORD-123456", false),
            Masked::Replaced { .. }
        ));
        let bad = MaskRules {
            detectors: vec!["passport".into()],
            columns: vec![],
        };
        assert!(
            RuleMasker::compile(&bad, &settings)
                .unwrap_err()
                .to_string()
                .contains("passport")
        );
        let config = MaskingConfig {
            strategy: "hash".into(),
            ..MaskingConfig::default()
        };
        assert!(MaskingSettings::from_config(&config, None).is_err());
    }
}
