//! Upstream credentials: `static` ones whose password is a secret reference
//! (`env:`, `file:`, `vault:`, `aws-sm:` or, with a warning, a literal),
//! resolved by a [`SecretResolver`], and `ephemeral` ones — a database role
//! created for each session and dropped after ([`EphemeralCredentials`]).
//! [`TargetCredentials`] picks one per target.

pub mod ephemeral;
mod providers;
mod secrets;

pub use ephemeral::{
    EphemeralCredentials, EphemeralOptions, ResolveSecrets, SecretFetch, SweepReport,
};
pub use providers::{AwsCredentials, SecretResolver};
pub use secrets::{SecretError, resolve};

use std::sync::Arc;

use async_trait::async_trait;
use warden_core::admission::ConnectGrant;
use warden_core::config::CredentialsConfig;
use warden_core::engines::{CredentialError, CredentialSource, UpstreamCredential};
use warden_core::events::SessionInfo;

/// Resolves each target's configured credential when a session needs it, so
/// a rotated secret file or environment takes effect on the next session.
#[derive(Debug)]
pub struct StaticCredentials {
    secrets: Arc<SecretResolver>,
}

impl StaticCredentials {
    pub fn new(secrets: Arc<SecretResolver>) -> StaticCredentials {
        StaticCredentials { secrets }
    }
}

#[async_trait]
impl CredentialSource for StaticCredentials {
    async fn acquire(
        &self,
        grant: &ConnectGrant,
        _session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError> {
        let target = grant.target();
        match &target.credentials {
            CredentialsConfig::Static { user, password } => {
                let password = self.secrets.resolve(password).await.map_err(|error| {
                    CredentialError::Secret {
                        target: target.name.clone(),
                        source: Box::new(error),
                    }
                })?;
                Ok(UpstreamCredential::fixed(user.clone(), password))
            }
            CredentialsConfig::Ephemeral(_) => Err(CredentialError::NeedsTargetCredentials {
                target: target.name.clone(),
            }),
        }
    }
}

/// Admin passwords of ephemeral targets come through the same resolver.
#[async_trait]
impl SecretFetch for SecretResolver {
    async fn fetch(
        &self,
        reference: &warden_core::SecretRef,
    ) -> Result<secrecy::SecretString, SecretError> {
        self.resolve(reference).await
    }
}

/// The gateway's credential source: each target's configured mode.
pub struct TargetCredentials {
    pub fixed: StaticCredentials,
    pub ephemeral: Arc<EphemeralCredentials>,
}

#[async_trait]
impl CredentialSource for TargetCredentials {
    async fn acquire(
        &self,
        grant: &ConnectGrant,
        session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError> {
        let target = grant.target();
        match &target.credentials {
            CredentialsConfig::Static { .. } => self.fixed.acquire(grant, session).await,
            CredentialsConfig::Ephemeral(_) => self.ephemeral.acquire(grant, session).await,
        }
    }
}
