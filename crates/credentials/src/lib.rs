//! Upstream credentials. Today: `static` credentials whose password is a
//! secret reference (`env:`, `file:` or, with a warning, a literal).
//! Vault, AWS Secrets Manager and per-session (JIT) roles plug in here.

mod secrets;

pub use secrets::{SecretError, resolve};

use async_trait::async_trait;
use warden_core::config::{CredentialsConfig, TargetConfig};
use warden_core::engines::{CredentialError, CredentialSource, UpstreamCredential};
use warden_core::events::SessionInfo;

/// Resolves each target's configured credential when a session needs it, so
/// a rotated secret file or environment takes effect on the next session.
#[derive(Debug, Default)]
pub struct StaticCredentials;

#[async_trait]
impl CredentialSource for StaticCredentials {
    async fn acquire(
        &self,
        target: &TargetConfig,
        _session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError> {
        match &target.credentials {
            CredentialsConfig::Static { user, password } => {
                let password = resolve(password).await.map_err(|error| CredentialError {
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
