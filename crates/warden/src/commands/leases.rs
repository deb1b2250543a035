//! `warden leases list|revoke`: per-session credentials (ephemeral roles).

use crate::ConfigArgs;
use anyhow::{Result, bail};
use std::process::ExitCode;
use time::format_description::well_known::Rfc3339;
use warden_core::config::Config;

#[derive(clap::Subcommand)]
pub enum LeasesCommand {
    /// List live leases (with --all, ended ones too).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Include released, revoked, expired and swept leases.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a lease: the session using it is ended within about a second
    /// and its database role is dropped.
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// The lease id (from `warden leases list`).
        id: String,
    },
}

pub fn run(command: LeasesCommand) -> Result<ExitCode> {
    super::block_on(run_async(command))?
}

async fn run_async(command: LeasesCommand) -> Result<ExitCode> {
    match command {
        LeasesCommand::List { config, all, json } => {
            let config = Config::load(&config.config)?;
            let store = super::open_store(&config).await?;
            let leases = store.list_leases(all).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&leases)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36} {:<12} {:<20} {:<25} STATE",
                "ID", "TARGET", "UPSTREAM USER", "EXPIRES"
            );
            for lease in &leases {
                let state = match (&lease.revoked_at, &lease.revoke_reason) {
                    (Some(_), Some(reason)) => format!("ended: {reason}"),
                    (Some(_), None) => "ended".to_string(),
                    (None, _) => "live".to_string(),
                };
                println!(
                    "{:<36} {:<12} {:<20} {:<25} {state}",
                    lease.id,
                    lease.target,
                    lease.upstream_user,
                    lease.expires_at.format(&Rfc3339)?,
                );
            }
            eprintln!("{} lease(s)", leases.len());
            Ok(ExitCode::SUCCESS)
        }
        LeasesCommand::Revoke { config, id } => {
            let config = Config::load(&config.config)?;
            let store = super::open_store(&config).await?;
            let Some(lease) = store.get_lease(&id).await? else {
                bail!("no lease {id}; `warden leases list` shows the live ones");
            };
            if !store
                .mark_lease_revoked(&id, "revoked by an operator")
                .await?
            {
                bail!("lease {id} had already ended");
            }
            eprintln!(
                "revoked lease {id}: the session on target {} is ended and role {} dropped by the node serving it",
                lease.target, lease.upstream_user
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
