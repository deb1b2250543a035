//! The `warden.toml` model and its loader.
//!
//! Every table rejects unknown keys, so a typo is an error with file and line
//! rather than a silently ignored setting. Semantic checks (a policy naming a
//! name used twice, an operation that does not exist …) run after parsing and
//! also point at the line they are about.

mod classifier;
mod credentials;
mod error;
mod identity;
mod masking;
mod policy;
mod recording;
mod reviews;
mod server;
mod store;
mod target;
mod validate;
mod web;

pub use classifier::ClassifierConfig;
pub use credentials::{
    AwsSecretsConfig, CredentialsConfig, EphemeralCredentials, SecretsConfig, VaultAppRole,
    VaultConfig,
};
pub use error::ConfigError;
pub use identity::{AccessKeyConfig, IdentityConfig, OidcConfig};
pub use masking::{CustomDetector, MaskingConfig};
pub use policy::PolicyConfig;
pub use recording::RecordingConfig;
pub use reviews::{ReviewsConfig, WebhookConfig, WebhookFormat};
pub use server::{ServerConfig, TlsConfig};
pub use store::StoreConfig;
pub use target::{ListenerConfig, Protocol, TargetConfig, UpstreamTls, split_host_port};
pub use web::{WebConfig, WebOidcConfig};

use crate::secret::SecretRef;
use error::{explain_toml_error, line_column};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetConfig>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    #[serde(default)]
    pub classifier: ClassifierConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub masking: MaskingConfig,
    #[serde(default)]
    pub reviews: ReviewsConfig,
    #[serde(default)]
    pub web: WebConfig,
    /// Where the file was read from; set by the loader.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        if let Some(dir) = path.parent() {
            config.resolve_relative_paths(dir);
        }
        Ok(config)
    }

    /// Makes every file path in the config relative to the config file's directory.
    fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.server.data_dir);
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
        if let Some(dir) = &mut self.recording.dir {
            resolve(dir);
        }
        if let Some(dir) = &mut self.recording.spool_dir {
            resolve(dir);
        }
        for target in &mut self.targets {
            if let Some(ca) = &mut target.upstream_ca {
                resolve(ca);
            }
            if let SecretRef::File(path) = target.credentials.secret_mut() {
                resolve(path);
            }
        }
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message: explain_toml_error(error.message()),
            }
        })?;
        config.validate(text, origin)?;
        Ok(config)
    }

    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// `{data_dir}/recordings` unless `[recording] dir` says otherwise.
    pub fn recording_dir(&self) -> PathBuf {
        self.recording
            .dir
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("recordings"))
    }

    /// The store URL with the SQLite default applied.
    pub fn store_url(&self) -> String {
        self.store.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("warden.db").display()
            )
        })
    }
}

#[cfg(test)]
mod tests;
