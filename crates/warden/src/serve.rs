//! `warden serve`: wire the engines into a gateway, bind the listeners and
//! the admin server, and run until SIGTERM/SIGINT.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use warden_core::Gateway;
use warden_core::broker::{Broker, ConnectionHandler};
use warden_core::config::{Config, Protocol};
use warden_core::engines::{AccessKeyStore, Recorder, SessionLog};
use warden_core::gateway::Shutdown;
use warden_core::metrics::Metrics;

/// What the protocol handlers are made from.
struct HandlerParts {
    gateway: Arc<Gateway>,
    native_password: Arc<crate::mysql_keys::AccessKeyNativePassword>,
}

type MakeHandler = fn(&HandlerParts) -> Arc<dyn ConnectionHandler>;

/// The protocols this binary serves, each with how its handler is made.
/// Listeners and targets of any other protocol are refused (by `warden serve`
/// before anything is opened or bound, and by `warden check`).
const HANDLERS: &[(Protocol, MakeHandler)] = &[
    (Protocol::Postgres, |parts| {
        Arc::new(warden_postgres::PostgresHandler::new(parts.gateway.clone()))
    }),
    (Protocol::Mysql, |parts| {
        Arc::new(
            warden_mysql::MysqlHandler::new(parts.gateway.clone())
                .with_native_password(parts.native_password.clone()),
        )
    }),
];

/// The protocols there is a handler for, in `HANDLERS`' order.
pub fn available_protocols() -> Vec<Protocol> {
    HANDLERS.iter().map(|(protocol, _)| *protocol).collect()
}

pub fn run(config_path: &Path) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    config.check_protocols(&available_protocols())?;
    let threads = config
        .server
        .worker_threads
        .unwrap_or_else(default_worker_threads)
        .max(1);
    // One relay thread is the pgbouncer model: every socket event of every
    // session is handled where epoll returned it, with no hand-offs between
    // threads (measured ~15% less CPU per statement on two cores).
    let mut runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    runtime
        .enable_all()
        .thread_name("warden")
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(config))
}

/// Half the cores: the rest is left to the databases and clients that usually
/// share the machine with a gateway this size; at least one.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

async fn serve(config: Config) -> Result<ExitCode> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
        format!(
            "cannot create data_dir {}",
            config.server.data_dir.display()
        )
    })?;

    let store = warden_store::open_store(&config.store_url())
        .await
        .context("cannot open the store")?;
    let interrupted = store
        .mark_interrupted_sessions("interrupted: Warden stopped without closing the session")
        .await?;
    if interrupted > 0 {
        tracing::warn!(
            sessions = interrupted,
            "sessions left open by a previous run were marked interrupted"
        );
    }
    let keys: Arc<dyn AccessKeyStore> = store.clone();
    let sessions: Arc<dyn SessionLog> = store.clone();

    let identity = warden_identity::IdentityService::new(&config.identity, keys)
        .await
        .context("cannot set up identity providers")?;
    let identity = Arc::new(identity);
    let native_password = Arc::new(crate::mysql_keys::AccessKeyNativePassword {
        identity: identity.clone(),
    });
    {
        let identity = identity.clone();
        tokio::spawn(async move { identity.warm_up().await });
    }

    let policy = Arc::new(
        warden_policy::ReloadablePolicy::from_config(&config)
            .context("cannot compile the policies")?,
    );
    if let Some(path) = &config.source {
        warden_policy::spawn_reloader(path.clone(), policy.clone());
    }

    let secrets = warden_credentials::SecretResolver::new(&config.secrets)
        .context("cannot set up [secrets]")?;
    let masking = masking_engine(&config, policy.clone(), &secrets).await?;

    let (signing_key, encryption_key) =
        crate::commands::recordings::recording_secrets(&config).await?;
    let recorder = warden_recording::recorder_from_config(
        &config.recording,
        &config.server.data_dir,
        signing_key.clone(),
        encryption_key.clone(),
    )
    .context("cannot start the session recorder")?;
    for session_id in recorder.recovered() {
        let mut event = warden_core::events::AuditEvent::new(
            "recording.recovered",
            "-",
            "Warden stopped during the session; its recording was sealed as interrupted",
        );
        event.session_id = Some(session_id.clone());
        let _ = sessions.audit(&event).await;
    }
    let recorder_dyn: Arc<dyn Recorder> = if config.recording.enabled {
        recorder.clone()
    } else {
        Arc::new(NullRecorder)
    };

    let tls = match &config.tls {
        Some(tls) => Some(warden_core::tls::acceptor(tls)?),
        None => None,
    };

    let reviews = review_service(&config, &store, &sessions, &secrets).await?;
    if let Some(path) = &config.source {
        follow_policy_reloads(path.clone(), policy.clone(), reviews.clone());
    }
    let recording_keys = (signing_key, encryption_key);
    let ui = crate::web_ui::ui_state(
        &config,
        &reviews,
        &store,
        &identity,
        &secrets,
        recording_keys,
    )
    .await?;
    let credentials = credentials(&config, &store, &sessions, secrets).await?;

    spawn_retention(&config, store.clone())?;

    let shutdown = Shutdown::default();
    let metrics = Arc::new(Metrics::default());
    let gateway = Arc::new(Gateway {
        config: config.clone(),
        authenticator: identity,
        policy,
        credentials,
        sessions,
        recorder: recorder_dyn,
        masking,
        reviews: Arc::new(reviews.clone()),
        metrics: metrics.clone(),
        session_counts: Default::default(),
        tls,
        shutdown: shutdown.clone(),
    });

    let handlers: HashMap<Protocol, Arc<dyn ConnectionHandler>> = {
        let parts = HandlerParts {
            gateway: gateway.clone(),
            native_password,
        };
        HANDLERS
            .iter()
            .map(|(protocol, make)| (*protocol, make(&parts)))
            .collect()
    };
    let broker = Broker::bind(gateway.clone(), &handlers).await?;
    for (protocol, address) in broker.local_addrs() {
        tracing::info!(%protocol, %address, "listener ready");
    }

    let admin_stop = tokio_util::sync::CancellationToken::new();
    let admin = match config.server.admin_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("admin_listen {address}: cannot bind"))?;
            let mut router = warden_web::admin_router(metrics.clone(), shutdown.draining.clone())
                .merge(warden_web::api_router(warden_web::ApiState {
                    reviews: reviews.clone(),
                    store: store.clone(),
                    authenticator: gateway.authenticator.clone(),
                }));
            if let Some(ui) = ui {
                router = router.merge(warden_web::ui_router(ui));
            }
            Some(tokio::spawn(warden_web::serve_admin(
                listener,
                router,
                admin_stop.clone(),
            )))
        }
        None => None,
    };

    reviews.spawn_sweeper(
        std::time::Duration::from_secs(30),
        shutdown.draining.clone(),
    );
    // Decisions made on other nodes (PostgreSQL store) wake held statements
    // here; runs until the sessions are gone, so drains still hear them.
    reviews.spawn_change_feed(admin_stop.clone());
    tokio::spawn(watch_signals(shutdown.clone()));
    tracing::info!(
        targets = config.targets.len(),
        policies = config.policies.len(),
        "warden is ready"
    );
    broker.run().await;

    admin_stop.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    recorder.flush_all().await;
    if !recorder
        .drain_uploads(std::time::Duration::from_secs(10))
        .await
    {
        tracing::warn!(
            "some recordings are still in the spool; they are uploaded at the next start"
        );
    }
    tracing::info!("warden stopped");
    Ok(ExitCode::SUCCESS)
}

/// First SIGTERM/SIGINT: drain. A second one: close sessions now.
async fn watch_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received: draining (send it again to close sessions now)");
    shutdown.draining.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: closing all sessions now");
    shutdown.terminate.cancel();
}

/// `[recording] enabled = false`: sessions are indexed but not recorded.
struct NullRecorder;

struct NullRecording;

impl Recorder for NullRecorder {
    fn open(
        &self,
        _session: &warden_core::events::SessionInfo,
    ) -> Result<Box<dyn warden_core::engines::SessionRecording>, warden_core::engines::StoreError>
    {
        Ok(Box::new(NullRecording))
    }
}

impl warden_core::engines::SessionRecording for NullRecording {
    fn record(&self, _event: warden_core::events::EventKind) {}
    fn finish(&self, _summary: &warden_core::events::SessionSummary) {}
}

/// Builds the masking engine from `[masking]` and checks every policy's rules.
async fn masking_engine(
    config: &Config,
    policy: Arc<warden_policy::ReloadablePolicy>,
    secrets: &warden_credentials::SecretResolver,
) -> anyhow::Result<Arc<dyn warden_core::masking::MaskingEngine>> {
    use secrecy::ExposeSecret;
    let hash_key = match &config.masking.hash_key {
        Some(reference) => Some(
            secrets
                .resolve(reference)
                .await
                .context("cannot read [masking] hash_key")?
                .expose_secret()
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    let settings = warden_masking::MaskingSettings::from_config(&config.masking, hash_key)
        .context("invalid [masking] settings")?;
    settings
        .validate_policies(&config.policies)
        .context("invalid masking rule")?;
    Ok(Arc::new(warden_masking::PolicyMasking::new(
        policy, settings,
    )))
}

/// Static and ephemeral credentials. Roles left by an earlier run (no live
/// lease) are dropped before the first session, then swept every minute.
async fn credentials(
    config: &Config,
    store: &Arc<dyn warden_store::Store>,
    sessions: &Arc<dyn SessionLog>,
    secrets: Arc<warden_credentials::SecretResolver>,
) -> Result<Arc<dyn warden_core::engines::CredentialSource>> {
    let leases: Arc<dyn warden_core::leases::LeaseStore> = store.clone();
    let ephemeral = Arc::new(warden_credentials::EphemeralCredentials::new(
        leases,
        sessions.clone(),
        secrets.clone(),
    ));
    let targets: Vec<warden_core::config::TargetConfig> = config
        .targets
        .iter()
        .filter(|t| {
            matches!(
                t.credentials,
                warden_core::config::CredentialsConfig::Ephemeral(_)
            )
        })
        .cloned()
        .collect();
    for target in &targets {
        warden_credentials::ephemeral::validate_target(target)
            .map_err(|error| anyhow::anyhow!("target \"{}\": {error}", target.name))?;
    }
    if !targets.is_empty() {
        let report = ephemeral.sweep(&targets, true).await;
        tracing::info!(
            dropped = report.dropped,
            leases_closed = report.leases_closed,
            errors = report.errors.len(),
            "swept per-session roles left by an earlier run"
        );
        for error in &report.errors {
            tracing::warn!(%error, "sweep");
        }
        ephemeral.spawn_sweeper(targets, std::time::Duration::from_secs(60));
    }
    Ok(Arc::new(warden_credentials::TargetCredentials {
        fixed: warden_credentials::StaticCredentials::new(secrets),
        ephemeral,
    }))
}

/// Reviews on the shared store, with `[[reviews.webhook]]` secrets resolved.
/// Its sweeper (started in `serve`) times out reviews whose session is gone
/// and ends expired access grants.
async fn review_service(
    config: &Config,
    store: &Arc<dyn warden_store::Store>,
    sessions: &Arc<dyn SessionLog>,
    secrets: &warden_credentials::SecretResolver,
) -> Result<warden_reviews::ReviewService> {
    let mut webhooks = Vec::new();
    for hook in &config.reviews.webhooks {
        let secret = match &hook.secret {
            Some(reference) => Some(secrets.resolve(reference).await.with_context(|| {
                format!(
                    "[[reviews.webhook]] {}: cannot resolve its secret",
                    hook.url
                )
            })?),
            None => None,
        };
        webhooks.push(warden_reviews::Webhook {
            url: hook.url.clone(),
            secret,
            format: hook.format,
        });
    }
    let review_store: Arc<dyn warden_core::review_store::ReviewStore> = store.clone();
    Ok(warden_reviews::ReviewService::from_config(
        config,
        review_store,
        sessions.clone(),
        webhooks,
    ))
}

/// Deletes expired recordings (sink and index) every `retention_interval`,
/// keeping held sessions; each deletion is an audit event.
fn spawn_retention(config: &Arc<Config>, store: Arc<dyn warden_store::Store>) -> Result<()> {
    let policy = warden_recording::RetentionPolicy::from_config(config);
    if policy.default.is_none() && policy.per_target.is_empty() {
        return Ok(());
    }
    let sink = warden_recording::sink_from_config(&config.recording, &config.server.data_dir)
        .context("cannot open the recording sink for retention")?;
    let every = config.recording.retention_interval;
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let holds: std::collections::HashSet<String> = match store.held_sessions().await {
                Ok(ids) => ids.into_iter().collect(),
                Err(error) => {
                    tracing::warn!(%error, "retention skipped: cannot read legal holds");
                    continue;
                }
            };
            let now = time::OffsetDateTime::now_utc();
            match warden_recording::apply_retention(sink.as_ref(), now, &policy, &holds).await {
                Ok(report) => {
                    for id in &report.deleted {
                        let _ = store.forget_session(id).await;
                        let mut event = warden_core::events::AuditEvent::new(
                            "recording.expired",
                            "-",
                            "retention deleted the recording and its index entry",
                        );
                        event.session_id = Some(id.clone());
                        let _ = store.audit(&event).await;
                    }
                    for (id, error) in &report.failed {
                        tracing::warn!(session = %id, %error, "retention could not delete a recording");
                    }
                    if !report.deleted.is_empty() {
                        tracing::info!(
                            deleted = report.deleted.len(),
                            held = report.held.len(),
                            "retention"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "retention run failed"),
            }
        }
    });
    Ok(())
}

/// New reviews take their approvers from the policies in force: when the
/// policy reloader swaps in a new rule set, the review service gets it too.
fn follow_policy_reloads(
    path: std::path::PathBuf,
    policy: Arc<warden_policy::ReloadablePolicy>,
    reviews: warden_reviews::ReviewService,
) {
    tokio::spawn(async move {
        let mut seen = policy.version();
        let mut ticker = tokio::time::interval(warden_policy::POLL_INTERVAL);
        loop {
            ticker.tick().await;
            let version = policy.version();
            if version == seen {
                continue;
            }
            seen = version;
            match Config::load(&path) {
                Ok(config) => reviews.set_policies(config.policies),
                Err(error) => tracing::warn!(%error, "reviews keep their approver rules"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_has_one_handler() {
        let protocols = available_protocols();
        let unique: std::collections::HashSet<_> = protocols.iter().collect();
        assert_eq!(unique.len(), protocols.len(), "{protocols:?}");
        assert_eq!(protocols, [Protocol::Postgres, Protocol::Mysql]);
    }
}
