//! The policy in force, swapped atomically on reload (SIGHUP or a change to
//! the config file). Sessions and statements read the current rules on every
//! check, so new rules apply to the next statement; an invalid file is
//! refused with file:line and the old rules stay.

use crate::rules::{PolicyError, PolicySet};
use crate::session::SessionClassifier;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use warden_core::config::{Config, ConfigError};
use warden_core::engines::PolicyEngine;
use warden_core::request::{Dialect, Request};
use warden_core::{Decision, Identity};

/// One version of the rules.
#[derive(Debug)]
pub struct PolicySnapshot {
    pub version: u64,
    pub set: Arc<PolicySet>,
}

/// A reload failed; the previous rules are still in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Policy { path: String, source: PolicyError },
}

/// The engine the gateway calls: the current [`PolicySet`] and its version.
#[derive(Debug)]
pub struct ReloadablePolicy {
    current: ArcSwap<PolicySnapshot>,
}

impl ReloadablePolicy {
    pub fn new(set: PolicySet) -> ReloadablePolicy {
        ReloadablePolicy {
            current: ArcSwap::from_pointee(PolicySnapshot {
                version: 1,
                set: Arc::new(set),
            }),
        }
    }

    pub fn from_config(config: &Config) -> Result<ReloadablePolicy, PolicyError> {
        Ok(ReloadablePolicy::new(PolicySet::from_config(config)?))
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load().set.clone()
    }

    /// Starts at 1 and goes up by one on every successful reload.
    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// Puts `set` in force; returns the new version.
    pub fn replace(&self, set: PolicySet) -> u64 {
        let set = Arc::new(set);
        let previous = self.current.rcu(|old| PolicySnapshot {
            version: old.version + 1,
            set: set.clone(),
        });
        previous.version + 1
    }

    /// Loads `path` and puts its rules in force, or returns why not (the old
    /// rules stay).
    pub fn reload_from(&self, path: &Path) -> Result<u64, ReloadError> {
        let config = Config::load(path)?;
        let set = PolicySet::from_config(&config).map_err(|source| ReloadError::Policy {
            path: path.display().to_string(),
            source,
        })?;
        Ok(self.replace(set))
    }

    /// Decides a statement of a session, resolving SQL-level `EXECUTE`
    /// against the session's earlier `PREPARE`s.
    pub fn check_session_statement(
        &self,
        session: &mut SessionClassifier,
        identity: &Identity,
        target: &str,
        sql: &str,
    ) -> Decision {
        let set = self.current();
        let classification = session.classify(&set, sql);
        set.decide(identity, target, session.dialect(), &classification)
    }
}

impl PolicyEngine for ReloadablePolicy {
    fn check_connect(&self, identity: &Identity, target: &str) -> Decision {
        self.current.load().set.check_connect(identity, target)
    }

    fn generation(&self) -> u64 {
        self.version()
    }

    fn check_statement(
        &self,
        identity: &Identity,
        target: &str,
        request: &Request<'_>,
    ) -> Decision {
        match *request {
            Request::Sql { dialect, text } => self
                .current
                .load()
                .set
                .check_statement(identity, target, dialect, text),
        }
    }

    fn new_session_state(&self, dialect: Dialect) -> Box<dyn std::any::Any + Send> {
        Box::new(SessionClassifier::new(dialect))
    }

    fn check_session_statement(
        &self,
        state: &mut (dyn std::any::Any + Send),
        identity: &Identity,
        target: &str,
        request: &Request<'_>,
    ) -> Decision {
        match *request {
            Request::Sql { dialect, text } => match state.downcast_mut::<SessionClassifier>() {
                Some(session) if session.dialect() == dialect => {
                    ReloadablePolicy::check_session_statement(self, session, identity, target, text)
                }
                // State from another engine or dialect: judge the text on its own.
                _ => self.check_statement(identity, target, request),
            },
        }
    }

    fn set_session_server(&self, state: &mut (dyn std::any::Any + Send), version: &str) {
        if let Some(session) = state.downcast_mut::<SessionClassifier>() {
            session.set_server_version(version);
        }
    }

    fn session_prepared(
        &self,
        state: &mut (dyn std::any::Any + Send),
        name: &str,
        sql: Option<&str>,
    ) {
        if let Some(session) = state.downcast_mut::<SessionClassifier>() {
            session.protocol_prepared(&self.current.load().set, name, sql);
        }
    }

    fn check_prepared(
        &self,
        state: &mut (dyn std::any::Any + Send),
        identity: &Identity,
        target: &str,
        name: &str,
    ) -> Option<Decision> {
        let session = state.downcast_mut::<SessionClassifier>()?;
        let class = session.prepared(name)?.clone();
        let dialect = session.dialect();
        let classification = crate::classify::Classification::from_statements(vec![class]);
        Some(
            self.current
                .load()
                .set
                .decide(identity, target, dialect, &classification),
        )
    }

    fn ruled_tables(&self, identity: &Identity, target: &str) -> Vec<String> {
        self.current.load().set.ruled_tables(identity, target)
    }

    fn set_session_relations(
        &self,
        state: &mut (dyn std::any::Any + Send),
        relations: &[warden_core::request::DerivedRelation],
    ) {
        if let Some(state) = state.downcast_mut::<crate::SessionClassifier>() {
            state.set_relations(relations);
        }
    }

    fn set_session_view_functions(
        &self,
        state: &mut (dyn std::any::Any + Send),
        views: &[warden_core::request::ViewFunction],
    ) {
        if let Some(state) = state.downcast_mut::<crate::SessionClassifier>() {
            state.set_view_functions(views);
        }
    }

    fn is_read_only(&self, identity: &Identity, target: &str) -> bool {
        self.current.load().set.is_read_only(identity, target)
    }

    fn mask_rules(&self, identity: &Identity, target: &str) -> warden_core::masking::MaskRules {
        self.current.load().set.mask_rules(identity, target)
    }
}

/// What the reloader compares to notice a change to the file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    hash: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::hash::{Hash, Hasher};
    let metadata = std::fs::metadata(path).ok()?;
    let content = std::fs::read(path).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        hash: hasher.finish(),
    })
}

/// How often the file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Reloads `policy` from `path` on SIGHUP and whenever the file changes
/// (checked every [`POLL_INTERVAL`]). Errors are logged with file:line and
/// the old rules stay. Must be called inside a tokio runtime.
pub fn spawn_reloader(path: PathBuf, policy: Arc<ReloadablePolicy>) -> tokio::task::JoinHandle<()> {
    // Taken now, not when the task first runs, so a write right after this
    // call is seen as a change.
    let mut last = stamp(&path);
    tokio::spawn(async move {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; policy reloads on file change only");
                None
            }
        };
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = ticker.tick() => false,
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            let now = stamp(&path);
            if !forced && now == last {
                continue;
            }
            last = now;
            let path_for_load = path.clone();
            let policy_for_load = policy.clone();
            let result =
                tokio::task::spawn_blocking(move || policy_for_load.reload_from(&path_for_load))
                    .await;
            match result {
                Ok(Ok(version)) => tracing::info!(
                    path = %path.display(),
                    version,
                    trigger = if forced { "SIGHUP" } else { "file change" },
                    "policy reloaded"
                ),
                Ok(Err(error)) => tracing::error!(
                    %error,
                    version = policy.version(),
                    "policy reload refused; the previous rules stay in force"
                ),
                Err(error) => tracing::error!(%error, "policy reload task failed"),
            }
        }
    })
}
