//! Per-session classification state: SQL-level `PREPARE name AS …` texts, so
//! a later `EXECUTE name` is judged as the statement it runs.

use crate::classify::{Classification, ServerVersion, StatementClass, mysql_user_vars};
use crate::rules::PolicySet;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use warden_core::request::Dialect;

/// Most prepared statements remembered per session; beyond this a new
/// `PREPARE` is not remembered and its `EXECUTE` is `unknown` (fails closed).
const MAX_PREPARED: usize = 10_000;

/// One client session's classifier state.
#[derive(Debug)]
pub struct SessionClassifier {
    dialect: Dialect,
    prepared: HashMap<String, StatementClass>,
    /// PostgreSQL: declared cursors and the tables their queries read.
    cursors: HashMap<String, Vec<crate::classify::TableRef>>,
    /// Relations that read ruled tables (views, partitions), from the catalog.
    underlying: crate::derived::Underlying,
    /// MySQL: the upstream server, which decides what executable comments run.
    server: Option<ServerVersion>,
    /// MySQL: user variables known to hold a saved `sql_mode` or
    /// `character_set_client` (which are always ones Warden lexes under).
    saved_vars: HashSet<String>,
}

impl SessionClassifier {
    pub fn new(dialect: Dialect) -> SessionClassifier {
        SessionClassifier {
            dialect,
            prepared: HashMap::new(),
            cursors: HashMap::new(),
            underlying: crate::derived::Underlying::default(),
            server: None,
            saved_vars: HashSet::new(),
        }
    }

    /// The upstream's version string from its handshake (MySQL).
    pub fn set_server_version(&mut self, version: &str) {
        self.server = ServerVersion::parse(version);
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The views that call volatile functions (see [`crate::derived`]).
    pub fn set_view_functions(&mut self, views: &[warden_core::request::ViewFunction]) {
        self.underlying.set_view_functions(views);
    }

    /// The relations that read ruled tables (see [`crate::derived`]).
    pub fn set_relations(&mut self, relations: &[warden_core::request::DerivedRelation]) {
        self.underlying.set_relations(relations);
    }

    /// Classifies `sql` with `policy`'s classifier, resolving `EXECUTE`
    /// against earlier `PREPARE`s and remembering this text's, and adding the
    /// tables its views and partitions read.
    pub fn classify(&mut self, policy: &PolicySet, sql: &str) -> Classification {
        let mut classification = self.classify_named(policy, sql);
        if !self.underlying.is_empty() {
            self.underlying.attach(&mut classification);
            self.underlying.judge_view_functions(
                &mut classification,
                policy.classifier().functions(),
                self.dialect,
            );
        }
        classification
    }

    fn classify_named(&mut self, policy: &PolicySet, sql: &str) -> Classification {
        let text = match self.dialect {
            Dialect::Postgres => Cow::Borrowed(sql),
            Dialect::Mysql => match crate::classify::resolve_versioned_comments(sql, self.server) {
                Ok(text) => text,
                Err(error) => return Classification::refused(error.to_string()),
            },
        };
        let raw = policy.classifier().classify_raw(self.dialect, &text);
        // While variables hold saved values, every statement may change them.
        let mentions_saved = !self.saved_vars.is_empty();
        if !raw.uses_prepared() && !mentions_saved {
            return raw.as_ref().clone();
        }
        let mut resolved = self.resolve_prepared(&raw);
        if self.dialect == Dialect::Mysql {
            match mysql_user_vars(&text) {
                Ok(mentions) => resolved.resolve_user_vars(&mentions, &mut self.saved_vars),
                Err(()) => {
                    self.saved_vars.clear();
                    resolved.resolve_user_vars(&[], &mut self.saved_vars);
                }
            }
        }
        resolved
    }

    fn resolve_prepared(&mut self, raw: &Classification) -> Classification {
        if !raw.uses_prepared() {
            return raw.clone();
        }
        let mut scratch = std::mem::take(&mut self.prepared);
        let before = scratch.len();
        let resolved = raw.resolve_prepared(&mut scratch, &mut self.cursors);
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

    /// Forgets every prepared statement and saved variable (`DISCARD ALL`,
    /// a reset connection).
    pub fn reset(&mut self) {
        self.prepared.clear();
        self.cursors.clear();
        self.saved_vars.clear();
    }

    /// A statement prepared by the protocol (PostgreSQL Parse) under `name`,
    /// which shares its namespace with SQL `PREPARE`: a later SQL `EXECUTE
    /// name` is judged as it. `None` forgets the name (Close).
    pub fn protocol_prepared(&mut self, policy: &PolicySet, name: &str, sql: Option<&str>) {
        match sql {
            Some(sql) => {
                let classification = self.classify(policy, sql);
                let mut strictest = classification
                    .statements
                    .iter()
                    .max_by_key(|s| s.operation)
                    .cloned()
                    .unwrap_or_else(|| StatementClass::new(warden_core::Operation::Read, "empty"));
                strictest.tables = classification.tables.clone();
                strictest.refusal = classification
                    .statements
                    .iter()
                    .find_map(|s| s.refusal.clone());
                if self.prepared.len() < MAX_PREPARED || self.prepared.contains_key(name) {
                    self.prepared.insert(name.to_string(), strictest);
                } else {
                    self.prepared.remove(name);
                }
            }
            None => {
                self.prepared.remove(name);
            }
        }
    }

    /// The class of the statement prepared under `name`, if any.
    pub fn prepared(&self, name: &str) -> Option<&StatementClass> {
        self.prepared.get(name)
    }
}
