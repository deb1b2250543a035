//! `warden sessions list|show` and `warden replay`.

use crate::ConfigArgs;
use anyhow::{Context, Result};
use std::process::ExitCode;
use warden_core::config::Config;
use warden_store::{SessionFilter, SessionRow};

#[derive(clap::Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// At most this many sessions.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only sessions on this target.
        #[arg(long)]
        target: Option<String>,
        /// Only sessions still open.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
    },
    /// Put a legal hold on a session: retention keeps its recording until
    /// the hold is lifted (`--release`).
    Hold {
        #[command(flatten)]
        config: ConfigArgs,
        /// Session id (or a unique prefix).
        id: String,
        /// Lift the hold instead.
        #[arg(long)]
        release: bool,
    },
    /// Show one session (an id or a unique prefix of it) and its audit events.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Session id (or a unique prefix).
    id: String,
    /// Pace the timeline: 1 = real time, 10 = ten times faster, 0 = no pacing.
    #[arg(long, default_value_t = 0.0)]
    speed: f64,
    /// Print the recorded events as JSON lines.
    #[arg(long)]
    json: bool,
    /// Keep printing a live session's events as they are recorded, until it ends.
    #[arg(long, conflicts_with = "speed")]
    follow: bool,
}

pub fn run(command: SessionsCommand) -> Result<ExitCode> {
    super::block_on(run_async(command))?
}

async fn run_async(command: SessionsCommand) -> Result<ExitCode> {
    match command {
        SessionsCommand::List {
            config,
            limit,
            target,
            open,
            json,
        } => {
            let config = Config::load(&config.config)?;
            let store = super::open_store(&config).await?;
            let rows = store
                .list_sessions(&SessionFilter {
                    limit,
                    target,
                    open_only: open,
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_session_table(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        SessionsCommand::Hold {
            config,
            id,
            release,
        } => {
            let config = Config::load(&config.config)?;
            let store = super::open_store(&config).await?;
            let Some(row) = store.get_session(&id).await? else {
                eprintln!("no session matches {id}");
                return Ok(ExitCode::FAILURE);
            };
            store.set_session_hold(&row.id, !release).await?;
            let kind = if release {
                "hold.released"
            } else {
                "hold.placed"
            };
            let mut event = warden_core::events::AuditEvent::new(
                kind,
                &std::env::var("USER").unwrap_or_else(|_| "-".into()),
                if release {
                    "legal hold lifted: retention applies again"
                } else {
                    "legal hold placed: retention keeps this recording"
                },
            );
            event.session_id = Some(row.id.clone());
            store.audit(&event).await?;
            eprintln!(
                "session {}: {}",
                row.id,
                if release { "hold lifted" } else { "on hold" }
            );
            Ok(ExitCode::SUCCESS)
        }
        SessionsCommand::Show { config, id, json } => {
            let config = Config::load(&config.config)?;
            let store = super::open_store(&config).await?;
            let Some(row) = store.get_session(&id).await? else {
                eprintln!("no session matches {id}");
                return Ok(ExitCode::FAILURE);
            };
            let audit = store.list_audit(100, Some(&row.id)).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "session": row,
                        "audit": audit,
                    }))?
                );
            } else {
                print_session_detail(&row);
                for event in audit {
                    println!(
                        "  audit  {} {} {}",
                        rfc3339(event.at),
                        event.kind,
                        event.detail
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn replay(args: ReplayArgs) -> Result<ExitCode> {
    super::block_on(replay_async(args))?
}

async fn replay_async(args: ReplayArgs) -> Result<ExitCode> {
    let config = Config::load(&args.config.config)?;
    let store = super::open_store(&config).await?;
    let id = match store.get_session(&args.id).await? {
        Some(row) => row.id,
        None => args.id.clone(),
    };
    let reader = super::recordings::recording_reader(&config).await?;
    let mut out = std::io::stdout();
    if args.follow {
        use std::io::Write;
        let json = args.json;
        reader
            .follow(&id, std::time::Duration::from_millis(500), |event| {
                if json {
                    writeln!(out, "{}", serde_json::to_string(event)?)?;
                } else {
                    warden_recording::render_event(event, &mut out)?;
                }
                out.flush()
            })
            .await
            .with_context(|| format!("cannot follow the recording of session {id}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let recording = reader
        .read(&id)
        .await
        .with_context(|| format!("cannot read the recording of session {id}"))?;
    if args.json {
        use std::io::Write;
        for event in &recording.events {
            writeln!(out, "{}", serde_json::to_string(event)?)?;
        }
    } else if args.speed > 0.0 {
        warden_recording::replay_paced(&recording.events, args.speed, &mut out).await?;
    } else {
        warden_recording::render_timeline(&recording.events, &mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn print_session_table(rows: &[SessionRow]) {
    println!(
        "{:<36}  {:<20}  {:<24}  {:<12}  {:>6}  {:<8}  END",
        "ID", "STARTED", "SUBJECT", "TARGET", "STMTS", "STATE"
    );
    for row in rows {
        let started = rfc3339(row.started_at);
        println!(
            "{:<36}  {:<20}  {:<24}  {:<12}  {:>6}  {:<8}  {}",
            row.id,
            started.get(..19).unwrap_or(&started),
            row.subject,
            row.target,
            row.statements,
            if row.is_open() { "open" } else { "ended" },
            row.end_reason.as_deref().unwrap_or("")
        );
    }
}

fn print_session_detail(row: &SessionRow) {
    println!("session    {}", row.id);
    println!("identity   {}", row.identity.display_name());
    if !row.identity.groups.is_empty() {
        println!("groups     {}", row.identity.groups.join(", "));
    }
    println!("target     {} ({})", row.target, row.protocol);
    println!(
        "client     {} ({})",
        row.client_addr,
        if row.client_tls { "TLS" } else { "no TLS" }
    );
    println!("started    {}", rfc3339(row.started_at));
    match row.ended_at {
        Some(ended) => println!(
            "ended      {} ({})",
            rfc3339(ended),
            row.end_reason.as_deref().unwrap_or("")
        ),
        None => println!("ended      (still open)"),
    }
    println!("statements {}", row.statements);
    println!(
        "bytes      {} from client, {} to client",
        row.bytes_from_client, row.bytes_to_client
    );
}
