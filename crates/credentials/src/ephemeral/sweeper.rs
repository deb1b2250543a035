//! Drops ephemeral roles that no live lease accounts for: left by a crash, a
//! failed release, or a lease that expired without its watcher.
//!
//! A role is live when its lease is held by this process, or (periodic
//! sweeps) when its unrevoked lease has not expired: another node renews its
//! own. At start-up (`startup = true`) this node has no leases yet, and with
//! one Warden node every unrevoked lease in the store belonged to a process
//! that died, so all of them are treated as dead. Only names of the exact
//! shape Warden generates (`warden_` + 12 hex) are ever dropped, and never a
//! target's admin user or `reassign_to`.

use super::{Audit, EphemeralCredentials, ephemeral_settings};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use warden_core::config::{CredentialsConfig, TargetConfig};
use warden_core::leases::LeaseRecord;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Roles dropped upstream.
    pub dropped: usize,
    /// Dead leases closed (marked revoked with reason `swept`).
    pub leases_closed: usize,
    /// Per-target failures; the next sweep tries again.
    pub errors: Vec<String>,
}

impl EphemeralCredentials {
    /// One sweep over the ephemeral targets among `targets`.
    pub async fn sweep(&self, targets: &[TargetConfig], startup: bool) -> SweepReport {
        let mut report = SweepReport::default();
        let leases = match self.store.list_leases(false).await {
            Ok(leases) => leases,
            Err(error) => {
                report.errors.push(format!("cannot list leases: {error}"));
                return report;
            }
        };
        let now = OffsetDateTime::now_utc();
        let (live, dead): (Vec<LeaseRecord>, Vec<LeaseRecord>) =
            leases.into_iter().partition(|lease| {
                self.live.contains(&lease.upstream_user) || (!startup && lease.expires_at > now)
            });
        // Over every target: targets may share one server, and roles are per server.
        let live_users: HashSet<&str> = live.iter().map(|l| l.upstream_user.as_str()).collect();
        for target in targets {
            if !matches!(target.credentials, CredentialsConfig::Ephemeral(_)) {
                continue;
            }
            self.sweep_target(target, &live_users, &dead, &mut report)
                .await;
        }
        if report.dropped > 0 || report.leases_closed > 0 || !report.errors.is_empty() {
            tracing::info!(
                dropped = report.dropped,
                leases_closed = report.leases_closed,
                errors = report.errors.len(),
                "ephemeral role sweep"
            );
        }
        report
    }

    async fn sweep_target(
        &self,
        target: &TargetConfig,
        live_users: &HashSet<&str>,
        dead: &[LeaseRecord],
        report: &mut SweepReport,
    ) {
        let fail = |error: &dyn std::fmt::Display| format!("target \"{}\": {error}", target.name);
        let (backend, settings) = match (self.backend(target), ephemeral_settings(target)) {
            (Ok(backend), Ok(settings)) => (backend, settings),
            (Err(error), _) | (_, Err(error)) => {
                report.errors.push(fail(&error));
                return;
            }
        };
        let roles = match backend.list_roles().await {
            Ok(roles) => roles,
            Err(error) => {
                report.errors.push(fail(&error));
                return;
            }
        };
        let protected: HashSet<&str> = [
            Some(settings.admin_user.as_str()),
            settings.reassign_to.as_deref(),
        ]
        .into_iter()
        .flatten()
        .chain(settings.grant.iter().map(String::as_str))
        .collect();
        let dead_by_user: HashMap<&str, &LeaseRecord> = dead
            .iter()
            .map(|lease| (lease.upstream_user.as_str(), lease))
            .collect();
        let audit = Audit {
            sink: self.audit.clone(),
            actor: "warden".into(),
            target: target.name.clone(),
            session_id: None,
        };
        let mut failed: HashSet<String> = HashSet::new();
        for role in roles {
            if live_users.contains(role.as_str()) || protected.contains(role.as_str()) {
                continue;
            }
            match backend.revoke(&role).await {
                Ok(()) => {
                    report.dropped += 1;
                    let lease = dead_by_user.get(role.as_str());
                    let mut audit = audit.clone();
                    audit.session_id = lease.map(|l| l.session_id.clone());
                    let lease_id = lease.map_or("-", |l| l.id.as_str());
                    audit
                        .lease("swept", lease_id, &role, "role had no live lease; dropped")
                        .await;
                }
                Err(error) => {
                    report
                        .errors
                        .push(fail(&format!("cannot drop {role}: {error}")));
                    failed.insert(role);
                }
            }
        }
        // This target's dead leases whose role is gone now (dropped above or before).
        for lease in dead.iter().filter(|l| l.target == target.name) {
            if failed.contains(&lease.upstream_user) {
                continue;
            }
            match self.store.mark_lease_revoked(&lease.id, "swept").await {
                Ok(true) => report.leases_closed += 1,
                Ok(false) => {}
                Err(error) => report
                    .errors
                    .push(fail(&format!("cannot close lease {}: {error}", lease.id))),
            }
        }
    }

    /// Sweeps `targets` every `every` (not at once: call [`Self::sweep`] with
    /// `startup = true` before serving). Abort the handle to stop.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        targets: Vec<TargetConfig>,
        every: Duration,
    ) -> JoinHandle<()> {
        let issuer = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                let report = issuer.sweep(&targets, false).await;
                for error in &report.errors {
                    tracing::warn!(%error, "ephemeral role sweep");
                }
            }
        })
    }
}
