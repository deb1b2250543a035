//! `warden access request`: ask for time-boxed access to a target; an
//! approver of the matching policy decides it (`warden reviews approve`).

use super::reviews::{ApiArgs, ApiClient, path, print_review};
use anyhow::{Result, bail};
use std::process::ExitCode;
use std::time::Duration;
use warden_web::api::reviews::{AccessRequestBody, ReviewView, TicketView};

#[derive(clap::Subcommand)]
pub enum AccessCommand {
    /// Ask for access to a target for a while.
    Request {
        #[command(flatten)]
        api: ApiArgs,
        /// The target to reach.
        #[arg(long)]
        target: String,
        /// How long, e.g. 30m or 2h.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why, for the approvers.
        #[arg(long)]
        reason: Option<String>,
        /// Wait for the decision; exit 0 when approved, 1 otherwise.
        #[arg(long)]
        wait: bool,
    },
}

pub fn run(command: AccessCommand) -> Result<ExitCode> {
    super::block_on(run_async(command))?
}

async fn run_async(command: AccessCommand) -> Result<ExitCode> {
    let AccessCommand::Request {
        api,
        target,
        duration,
        reason,
        wait,
    } = command;
    if humantime::parse_duration(&duration).is_err() {
        bail!("--for {duration:?} is not a duration; write e.g. 30m or 2h");
    }
    let client = ApiClient::new(&api)?;
    let ticket: TicketView = client
        .post(
            "/api/v1/access-requests",
            &AccessRequestBody {
                target,
                duration,
                reason,
            },
        )
        .await?;
    if !wait {
        if api.json {
            println!("{}", serde_json::to_string_pretty(&ticket)?);
        } else {
            println!("{}", ticket.id);
            eprintln!(
                "access requested; review {} is pending{}",
                ticket.id,
                ticket
                    .url
                    .as_deref()
                    .map(|u| format!(" at {u}"))
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("waiting for review {} …", ticket.id);
    loop {
        let review: ReviewView = client
            .get(&format!("/api/v1/reviews/{}", path(&ticket.id)))
            .await?;
        if review.state != "pending" {
            if api.json {
                println!("{}", serde_json::to_string_pretty(&review)?);
            } else {
                print_review(&review);
            }
            return Ok(if review.state == "approved" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
