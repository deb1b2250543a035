//! [`SecretResolver`]: resolves every kind of secret reference with the
//! `[secrets]` configuration.
//!
//! `env:`/`file:`/literal are read fresh on every call (a rotated file takes
//! effect on the next session). `vault:`/`aws-sm:` values are cached for
//! `cache_ttl`; a background task fetches values sessions still use at 2/3
//! of the TTL. If that fails the cached value is served until it expires, and
//! then resolving fails closed.

mod aws_sm;
mod cache;
mod field;
mod vault;

use crate::secrets::SecretError;
use aws_sm::AwsSecrets;
use cache::{Action, Cache, Entry, Slot};
use field::FieldError;
use secrecy::SecretString;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use vault::Vault;
use warden_core::SecretRef;
use warden_core::config::SecretsConfig;

/// Fixed AWS credentials for [`SecretResolver::with_aws_credentials`].
pub use aws_sdk_secretsmanager::config::Credentials as AwsCredentials;

/// Resolves secret references; share one per process (`Arc`).
pub struct SecretResolver {
    ttl: Duration,
    vault: Option<Vault>,
    aws: AwsSecrets,
    cache: Cache,
    myself: Weak<SecretResolver>,
    refresher: OnceLock<()>,
}

impl std::fmt::Debug for SecretResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretResolver")
            .field("cache_ttl", &self.ttl)
            .field("vault", &self.vault.as_ref().map(Vault::address))
            .field("aws", &self.aws)
            .finish_non_exhaustive()
    }
}

impl SecretResolver {
    /// Checks `[secrets]` and builds the clients. No network I/O: Vault is
    /// first contacted by the first `vault:` resolve, AWS likewise. AWS
    /// credentials come from the usual AWS chain (environment, profile,
    /// instance role). `aws-sm:` works without a `[secrets.aws]` section
    /// (region from the environment, else us-east-1); `vault:` needs
    /// `[secrets.vault]`.
    pub fn new(config: &SecretsConfig) -> Result<Arc<SecretResolver>, SecretError> {
        Self::build(config, None)
    }

    /// Like [`SecretResolver::new`] with fixed AWS credentials instead of the
    /// AWS chain (tests against a local endpoint, or credentials the caller
    /// obtained itself).
    pub fn with_aws_credentials(
        config: &SecretsConfig,
        credentials: AwsCredentials,
    ) -> Result<Arc<SecretResolver>, SecretError> {
        Self::build(config, Some(credentials))
    }

    fn build(
        config: &SecretsConfig,
        credentials: Option<AwsCredentials>,
    ) -> Result<Arc<SecretResolver>, SecretError> {
        let vault = config.vault.as_ref().map(Vault::new).transpose()?;
        let aws = AwsSecrets::new(&config.aws.clone().unwrap_or_default(), credentials)?;
        Ok(Arc::new_cyclic(|myself| SecretResolver {
            ttl: config.cache_ttl,
            vault,
            aws,
            cache: Cache::default(),
            myself: myself.clone(),
            refresher: OnceLock::new(),
        }))
    }

    /// The secret a reference points at. Errors name the reference and
    /// never contain a value, a token or a secret_id.
    pub async fn resolve(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        match reference {
            SecretRef::Env(_) | SecretRef::File(_) | SecretRef::Literal(_) => {
                crate::secrets::resolve(reference).await
            }
            SecretRef::Vault { .. } | SecretRef::AwsSecretsManager { .. } => {
                if self.ttl.is_zero() {
                    self.fetch(reference).await
                } else {
                    self.cached(reference).await
                }
            }
        }
    }

    /// Serves a fresh cached value, or fetches while holding the slot so
    /// concurrent sessions share one fetch. A failed fetch leaves the slot
    /// as it was (an expired value is never served).
    async fn cached(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let slot = self.cache.slot(reference);
        let mut state = slot.state.lock().await;
        let now = Instant::now();
        if let Some(entry) = state.as_mut()
            && entry.is_fresh(now, self.ttl)
        {
            entry.last_used = now;
            return Ok(entry.value.clone());
        }
        let value = self.fetch(reference).await?;
        *state = Some(Entry::new(value.clone(), now));
        drop(state);
        self.start_refresher();
        Ok(value)
    }

    /// Asks the provider, bypassing the cache.
    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let name = reference.to_string();
        match reference {
            SecretRef::Vault { path, field } => {
                let Some(vault) = &self.vault else {
                    return Err(SecretError::NotConfigured {
                        reference: name,
                        section: "vault",
                    });
                };
                vault.read(path, field, &name).await
            }
            SecretRef::AwsSecretsManager {
                name: secret,
                field,
            } => self.aws.get(secret, field.as_deref(), &name).await,
            SecretRef::Env(_) | SecretRef::File(_) | SecretRef::Literal(_) => {
                crate::secrets::resolve(reference).await
            }
        }
    }

    /// Starts the refresher once, on the first cached value. It holds only a
    /// weak reference, so it ends when the resolver is dropped.
    fn start_refresher(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.refresher.get_or_init(|| {
            let myself = self.myself.clone();
            let tick = cache::tick(self.ttl);
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(tick).await;
                    let Some(resolver) = myself.upgrade() else {
                        return;
                    };
                    resolver.refresh_due().await;
                }
            });
        });
    }

    /// One refresher pass over the cache.
    async fn refresh_due(&self) {
        for slot in self.cache.all() {
            // A session is fetching this one right now.
            let Ok(mut state) = slot.state.try_lock() else {
                continue;
            };
            let action = match state.as_ref() {
                Some(entry) => entry.action(Instant::now(), self.ttl),
                None => Action::Evict,
            };
            match action {
                Action::Keep => {}
                Action::Evict => {
                    *state = None;
                    drop(state);
                    self.cache.remove(&slot);
                }
                Action::Refresh => {
                    drop(state);
                    self.refresh(&slot).await;
                }
            }
        }
    }

    async fn refresh(&self, slot: &Slot) {
        let started = Instant::now();
        match self.fetch(&slot.reference).await {
            Ok(value) => {
                let mut state = slot.state.lock().await;
                let last_used = state.as_ref().map_or(started, |entry| entry.last_used);
                // A session may have fetched meanwhile; keep the newer one.
                if state.as_ref().is_none_or(|entry| entry.fetched <= started) {
                    *state = Some(Entry {
                        value,
                        fetched: started,
                        last_used,
                    });
                }
            }
            Err(error) => tracing::warn!(
                %error,
                "cannot refresh a cached secret; the cached value is used until it expires"
            ),
        }
    }
}

pub(crate) fn provider_error(reference: &str, reason: impl Into<String>) -> SecretError {
    SecretError::Provider {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn field_error(reference: &str, field: &str, error: FieldError) -> SecretError {
    match error {
        FieldError::Missing => SecretError::MissingField {
            reference: reference.to_string(),
            field: field.to_string(),
        },
        FieldError::NotScalar => provider_error(
            reference,
            format!("the field \"{field}\" is not a string, number or boolean"),
        ),
        FieldError::Empty => SecretError::Empty {
            reference: reference.to_string(),
        },
    }
}
