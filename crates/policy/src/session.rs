//! Per-session classification state: SQL-level `PREPARE name AS …` texts, so
//! a later `EXECUTE name` is judged as the statement it runs.

use crate::classify::{Classification, StatementClass};
use crate::rules::PolicySet;
use std::collections::HashMap;
use warden_core::engines::Dialect;

/// Most prepared statements remembered per session; beyond this a new
/// `PREPARE` is not remembered and its `EXECUTE` is `unknown` (fails closed).
const MAX_PREPARED: usize = 10_000;

/// One client session's classifier state.
#[derive(Debug)]
pub struct SessionClassifier {
    dialect: Dialect,
    prepared: HashMap<String, StatementClass>,
}

impl SessionClassifier {
    pub fn new(dialect: Dialect) -> SessionClassifier {
        SessionClassifier {
            dialect,
            prepared: HashMap::new(),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Classifies `sql` with `policy`'s classifier, resolving `EXECUTE`
    /// against earlier `PREPARE`s and remembering this text's.
    pub fn classify(&mut self, policy: &PolicySet, sql: &str) -> Classification {
        let raw = policy.classifier().classify_raw(self.dialect, sql);
        if !raw.uses_prepared() {
            return raw.as_ref().clone();
        }
        let mut scratch = std::mem::take(&mut self.prepared);
        let before = scratch.len();
        let resolved = raw.resolve_prepared(&mut scratch);
        if scratch.len() > MAX_PREPARED && scratch.len() > before {
            // Keep what we had; the new names stay unknown to EXECUTE.
            for statement in &raw.statements {
                if let Some(name) = &statement.prepares {
                    scratch.remove(name);
                }
            }
        }
        self.prepared = scratch;
        resolved
    }

    /// Forgets every prepared statement (`DISCARD ALL`, a reset connection).
    pub fn reset(&mut self) {
        self.prepared.clear();
    }
}
