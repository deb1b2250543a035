//! `warden keys create|list|revoke`.

use crate::ConfigArgs;
use anyhow::{Result, bail};
use secrecy::ExposeSecret;
use std::process::ExitCode;
use std::time::Duration;
use warden_core::config::Config;

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create an access key and print it once (only its hash is stored).
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// A name for the key; policies match it as `key:NAME`.
        #[arg(long)]
        name: String,
        /// Comma-separated groups the key's identity belongs to.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime, e.g. 24h, 7d (default from [identity.access_keys] default_ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// Print JSON (the key is in the `key` field).
        #[arg(long)]
        json: bool,
    },
    /// List access keys (never the keys themselves).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an access key by id; sessions it opens from now on are refused.
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// The key id (the part after `wdn_`, before the second `_`).
        id: String,
    },
}

pub fn run(command: KeysCommand) -> Result<ExitCode> {
    super::block_on(run_async(command))?
}

async fn run_async(command: KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Create {
            config,
            name,
            groups,
            ttl,
            json,
        } => {
            let config = Config::load(&config.config)?;
            let limits = &config.identity.access_keys;
            if !limits.enabled {
                bail!(
                    "access keys are disabled in this config ([identity.access_keys] enabled = false)"
                );
            }
            let ttl = ttl.unwrap_or(limits.default_ttl);
            if ttl > limits.max_ttl {
                bail!(
                    "--ttl {} is longer than [identity.access_keys] max_ttl ({})",
                    humantime::format_duration(ttl),
                    humantime::format_duration(limits.max_ttl)
                );
            }
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!("--name must be non-empty and contain no spaces");
            }
            let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            let store = super::open_store(&config).await?;
            let (key, record) = warden_identity::generate_access_key(&name, &groups, ttl);
            store.insert_key(&record).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": record.id,
                        "name": record.name,
                        "groups": record.groups,
                        "expires_at": record.expires_at.format(&time::format_description::well_known::Rfc3339)?,
                        "key": key.expose_secret(),
                    })
                );
            } else {
                println!("{}", key.expose_secret());
                eprintln!(
                    "created access key {} (name {}, groups [{}]), expires {}; it is shown only once",
                    record.id,
                    record.name,
                    record.groups.join(", "),
                    record
                        .expires_at
                        .format(&time::format_description::well_known::Rfc3339)?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { config, json } => {
            let config = Config::load(&config.config)?;
            let store = super::open_store(&config).await?;
            let keys = store.list_keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<18} {:<20} {:<24} {:<25} STATE",
                "ID", "NAME", "GROUPS", "EXPIRES"
            );
            let now = time::OffsetDateTime::now_utc();
            for key in keys {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if key.expires_at <= now {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<18} {:<20} {:<24} {:<25} {state}",
                    key.id,
                    key.name,
                    key.groups.join(","),
                    key.expires_at
                        .format(&time::format_description::well_known::Rfc3339)?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { config, id } => {
            let config = Config::load(&config.config)?;
            let store = super::open_store(&config).await?;
            if store.revoke_key(&id).await? {
                println!("revoked access key {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no access key with id {id}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
