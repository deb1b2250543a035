//! `warden policy explain`: how a policy author debugs a rule.

use crate::ConfigArgs;
use anyhow::{Context, Result};
use std::process::ExitCode;
use warden_core::config::{Config, Protocol};
use warden_core::request::Dialect;

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Classify a statement and show which rule decides it for an identity.
    Explain {
        #[command(flatten)]
        config: ConfigArgs,
        /// The caller's token claims as JSON, e.g. '{"sub":"bot","groups":["agents"]}'.
        #[arg(long)]
        identity_claims: String,
        /// The target name.
        #[arg(long)]
        target: String,
        /// The SQL to judge.
        #[arg(long)]
        sql: String,
        /// SQL dialect; by default the target's (postgres or mysql).
        #[arg(long, value_enum)]
        dialect: Option<DialectArg>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DialectArg {
    Postgres,
    Mysql,
}

pub fn run(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Explain {
            config,
            identity_claims,
            target,
            sql,
            dialect,
            json,
        } => {
            let config = Config::load(&config.config)?;
            let claims: serde_json::Value = serde_json::from_str(&identity_claims)
                .context("--identity-claims is not valid JSON")?;
            let identity = warden_policy::identity_from_claims(claims);
            let policy = warden_policy::PolicySet::from_config(&config)
                .context("cannot compile the policies")?;
            let dialect = match (dialect, config.target(&target).map(|t| t.protocol)) {
                (Some(DialectArg::Postgres), _) => Dialect::Postgres,
                (Some(DialectArg::Mysql), _) => Dialect::Mysql,
                (None, Some(Protocol::Mysql)) => Dialect::Mysql,
                (None, Some(Protocol::Postgres)) => Dialect::Postgres,
                (None, Some(other)) => anyhow::bail!(
                    "target \"{target}\" is a {other} target, which has no SQL; pass --dialect to classify SQL anyway"
                ),
                (None, None) => anyhow::bail!(
                    "no target named \"{target}\" in the config; pass --dialect to classify SQL for it anyway"
                ),
            };
            let explanation = warden_policy::explain(&policy, &identity, &target, dialect, &sql);
            if json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                println!("{explanation}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
