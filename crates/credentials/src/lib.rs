//! Upstream credentials. Today: `static` credentials whose password is a
//! secret reference (`env:`, `file:`, `vault:`, `aws-sm:` or, with a
//! warning, a literal), resolved by a [`SecretResolver`]. Per-session (JIT)
//! roles plug in here.

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
use warden_core::config::{CredentialsConfig, TargetConfig};
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
        target: &TargetConfig,
        _session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError> {
        match &target.credentials {
            CredentialsConfig::Static { user, password } => {
                let password =
                    self.secrets
                        .resolve(password)
                        .await
                        .map_err(|error| CredentialError {
                            message: format!("target \"{}\": {error}", target.name),
                        })?;
                Ok(UpstreamCredential::fixed(user.clone(), password))
            }
            CredentialsConfig::Ephemeral(_) => Err(CredentialError {
                message: format!(
                    "target \"{}\": ephemeral credentials are not available in this build",
                    target.name
                ),
            }),
        }
    }
}
