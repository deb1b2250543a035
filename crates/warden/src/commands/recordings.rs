//! `warden recordings verify [ID]` and `warden recordings export ID`.

use crate::ConfigArgs;
use anyhow::{Context, Result};
use secrecy::SecretString;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_core::config::Config;
use warden_recording::{RecordingKeys, RecordingReader, SignatureCheck, VerifyReport};

#[derive(clap::Subcommand)]
pub enum RecordingsCommand {
    /// Check recordings: every chunk's SHA-256, the hash chain and the
    /// manifest's signature (against `[recording] signing_key`). Exit 1 if
    /// any check fails.
    Verify(VerifyArgs),
    /// Write one session's recording to a self-contained tar file
    /// (manifest, chunks, decoded events), verifiable offline.
    Export(ExportArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Session id; every recording in the sink and spool when omitted.
    id: Option<String>,
    /// Verify an export file (from `warden recordings export`) instead.
    #[arg(long, conflicts_with = "id")]
    export: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Session id.
    id: String,
    /// Output file; `./{ID}.tar` by default.
    #[arg(short, long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(command: RecordingsCommand) -> Result<ExitCode> {
    super::block_on(run_async(command))?
}

async fn run_async(command: RecordingsCommand) -> Result<ExitCode> {
    match command {
        RecordingsCommand::Verify(args) => verify(args).await,
        RecordingsCommand::Export(args) => export(args).await,
    }
}

/// The resolved `[recording] signing_key` and `encryption_key` (for
/// `warden_recording::recorder_from_config` in `serve`, and the readers here).
pub(crate) async fn recording_secrets(
    config: &Config,
) -> Result<(Option<SecretString>, Option<SecretString>)> {
    let secrets = warden_credentials::SecretResolver::new(&config.secrets)
        .context("cannot set up [secrets]")?;
    let signing = match &config.recording.signing_key {
        Some(reference) => Some(
            secrets
                .resolve(reference)
                .await
                .context("[recording] signing_key")?,
        ),
        None => None,
    };
    let encryption = match &config.recording.encryption_key {
        Some(reference) => Some(
            secrets
                .resolve(reference)
                .await
                .context("[recording] encryption_key")?,
        ),
        None => None,
    };
    Ok((signing, encryption))
}

/// A reader of the configured sink, spool and v0 directory (also for
/// `warden replay`).
pub(crate) async fn recording_reader(config: &Config) -> Result<RecordingReader> {
    let (signing, encryption) = recording_secrets(config).await?;
    warden_recording::reader_from_config(
        &config.recording,
        &config.server.data_dir,
        signing,
        encryption,
    )
    .context("cannot open the recordings")
}

async fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let config = Config::load(&args.config.config)?;
    let reports = if let Some(path) = &args.export {
        let (signing, encryption) = recording_secrets(&config).await?;
        let keys = RecordingKeys::new(signing.as_ref(), encryption.as_ref())?;
        vec![
            warden_recording::verify_export(path, &keys)
                .with_context(|| format!("cannot verify {}", path.display()))?,
        ]
    } else {
        let reader = recording_reader(&config).await?;
        match &args.id {
            Some(id) => vec![
                reader
                    .verify(id)
                    .await
                    .with_context(|| format!("cannot verify the recording of session {id}"))?,
            ],
            None => reader
                .verify_all()
                .await
                .context("cannot verify the recordings")?,
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for report in &reports {
            print_report(report);
        }
        let bad = reports.iter().filter(|r| !r.ok()).count();
        println!("{} recording(s) checked, {bad} failed", reports.len());
    }
    Ok(if reports.iter().all(VerifyReport::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &VerifyReport) {
    let state = if !report.ok() {
        "FAILED"
    } else if report.live {
        "LIVE"
    } else {
        "OK"
    };
    let signature = match &report.signature {
        SignatureCheck::Valid => "signature valid".to_string(),
        SignatureCheck::Invalid(why) => format!("signature INVALID ({why})"),
        SignatureCheck::Missing => "signature MISSING".to_string(),
        SignatureCheck::NotChecked => "signed, not checked (no key)".to_string(),
        SignatureCheck::Unsigned => "unsigned".to_string(),
    };
    println!(
        "{state:<6}  {}  v{}  {} chunk(s)  {} event(s)  {signature}{}",
        report.session_id,
        report.format,
        report.chunks,
        report.events,
        if report.interrupted {
            "  (interrupted)"
        } else {
            ""
        }
    );
    if let Some(chunk) = &report.first_bad_chunk {
        println!("        first bad chunk: {chunk}");
    }
    for problem in &report.problems {
        println!("        problem: {problem}");
    }
    for note in &report.notes {
        println!("        note: {note}");
    }
}

async fn export(args: ExportArgs) -> Result<ExitCode> {
    let config = Config::load(&args.config.config)?;
    let store = super::open_store(&config).await?;
    // Accept a unique id prefix, as `sessions show` and `replay` do.
    let id = match store.get_session(&args.id).await? {
        Some(row) => row.id,
        None => args.id.clone(),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{id}.tar")));
    let reader = recording_reader(&config).await?;
    let summary = reader
        .export(&id, &out)
        .await
        .with_context(|| format!("cannot export the recording of session {id}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote {}: {} chunk(s), {} event(s){}{}",
            summary.path.display(),
            summary.chunks,
            summary.events,
            if summary.signed { ", signed" } else { "" },
            if summary.events_included {
                ""
            } else {
                " (events.ndjson left out: chunks are encrypted and no encryption_key is configured)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
