//! `warden`: the gateway binary and its operator commands.

mod commands;
mod logging;
mod mysql_keys;
mod serve;
mod web_ui;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Warden sits between agents and the databases they use: it authenticates
/// each caller (OIDC token or Warden access key), decides every statement
/// with policy, logs in upstream with credentials the caller never sees, and
/// records every session.
#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "\
Quick start:
  warden check --config warden.toml
  warden serve --config warden.toml
  warden keys create --config warden.toml --name ci-bot --groups agents --ttl 24h
  PGPASSWORD=<key or OIDC token> psql \"host=127.0.0.1 port=15432 user=agent dbname=<target>\"
  open <public_url>/reviews to approve held statements in the browser

Every key of warden.toml is described in docs/config.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by commands that read the config.
#[derive(clap::Args, Clone)]
pub struct ConfigArgs {
    /// Path to warden.toml.
    #[arg(short, long, env = "WARDEN_CONFIG", default_value = "warden.toml")]
    pub config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (and, on admin_listen, the API and the reviewer web UI).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Log line format.
        #[arg(long, value_enum, default_value_t = logging::LogFormat::Text)]
        log_format: logging::LogFormat,
        /// Log filter (tracing env-filter syntax), e.g. `info` or `warden=debug`. RUST_LOG overrides it.
        #[arg(long, default_value = "info")]
        log_level: String,
    },
    /// Validate a config file; errors name the file, line and fix.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also log in to remote and TLS targets (not only plaintext ones on
        /// this machine) to warn about over-privileged static logins.
        #[arg(long)]
        probe_upstreams: bool,
    },
    /// Create, list and revoke Warden access keys.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// List and revoke per-session credentials (ephemeral database roles).
    #[command(subcommand)]
    Leases(commands::leases::LeasesCommand),
    /// Inspect recorded sessions.
    #[command(subcommand)]
    Sessions(commands::sessions::SessionsCommand),
    /// Print a session's timeline: every statement with its outcome.
    Replay(commands::sessions::ReplayArgs),
    /// Verify and export session recordings.
    #[command(subcommand)]
    Recordings(commands::recordings::RecordingsCommand),
    /// Debug policies.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// List, show, approve and deny reviews (through any node's API).
    #[command(subcommand)]
    Reviews(commands::reviews::ReviewsCommand),
    /// Ask for time-boxed access to a target.
    #[command(subcommand)]
    Access(commands::access::AccessCommand),
}

fn main() -> ExitCode {
    warden_core::tls::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            log_format,
            log_level,
        } => {
            logging::init(log_format, &log_level);
            serve::run(&config.config)
        }
        Command::Check {
            config,
            probe_upstreams,
        } => {
            // Show the config's warnings (literal secrets, plaintext upstreams).
            logging::init(logging::LogFormat::Text, "warn");
            commands::check::run(&config.config, probe_upstreams)
        }
        Command::Keys(command) => commands::keys::run(command),
        Command::Leases(command) => commands::leases::run(command),
        Command::Sessions(command) => commands::sessions::run(command),
        Command::Replay(args) => commands::sessions::replay(args),
        Command::Policy(command) => commands::policy::run(command),
        Command::Recordings(command) => commands::recordings::run(command),
        Command::Reviews(command) => commands::reviews::run(command),
        Command::Access(command) => commands::access::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
