//! `warden policy explain`: how a policy author debugs a rule.

use crate::ConfigArgs;
use anyhow::{Context, Result};
use std::process::ExitCode;
use warden_core::config::Config;
use warden_core::engines::Dialect;

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
        /// SQL dialect.
        #[arg(long, value_enum, default_value_t = DialectArg::Postgres)]
        dialect: DialectArg,
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
            let dialect = match dialect {
                DialectArg::Postgres => Dialect::Postgres,
                DialectArg::Mysql => Dialect::Mysql,
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
