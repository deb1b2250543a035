//! `warden reviews list|show|approve|deny`: human approval from a terminal,
//! through the REST API of any Warden node (so the decision wakes the held
//! statement wherever it waits).

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use warden_core::config::Config;
use warden_web::api::error::ErrorBody;
use warden_web::api::reviews::{DecisionBody, ReviewView};

/// How to reach the API and who is asking.
#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// Base URL of any Warden node's admin listener, e.g. http://127.0.0.1:8080.
    /// Defaults to `[server] public_url`, else `admin_listen`, of --config.
    #[arg(long, env = "WARDEN_URL")]
    pub url: Option<String>,
    /// Path to warden.toml (read only to find the URL when --url is not given).
    #[arg(short, long, env = "WARDEN_CONFIG", default_value = "warden.toml")]
    pub config: PathBuf,
    /// Your credential, sent as `Authorization: Bearer`: a Warden access key
    /// (wdn_…) or an OIDC token. Prefer the WARDEN_KEY variable: arguments
    /// are visible to other users of the machine.
    #[arg(long, env = "WARDEN_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Print JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum ReviewsCommand {
    /// List reviews you requested or may decide (pending ones by default).
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// pending, approved, denied, timed_out, cancelled or all.
        #[arg(long, default_value = "pending")]
        state: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one review: the statement, who asked, the votes.
    Show {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
    },
    /// Approve a review (one vote; it is released once it has its
    /// `min_approvals` distinct approvers).
    Approve {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a review (final: the held statement fails with 42501).
    Deny {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

/// A small client for the REST API.
pub(crate) struct ApiClient {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub(crate) fn new(args: &ApiArgs) -> Result<ApiClient> {
        let base = match &args.url {
            Some(url) => url.clone(),
            None => url_from_config(&args.config)?,
        };
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {base:?} is not an http:// or https:// URL");
        }
        let Some(key) = args.key.clone().filter(|k| !k.trim().is_empty()) else {
            bail!(
                "no credential: set WARDEN_KEY to your access key (wdn_…) or OIDC token, or pass --key"
            );
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("warden-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(ApiClient {
            base,
            key: key.trim().to_string(),
            http,
        })
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub(crate) async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(request).await
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T> {
        let response = request.bearer_auth(&self.key).send().await.map_err(|e| {
            anyhow::anyhow!("cannot reach Warden at {}: {}", self.base, e.without_url())
        })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .with_context(|| format!("Warden at {} sent an unreadable answer", self.base));
        }
        let message = match response.json::<ErrorBody>().await {
            Ok(body) => body.message,
            Err(_) => status.to_string(),
        };
        bail!("{message} (HTTP {})", status.as_u16())
    }
}

/// `[server] public_url`, else `http://{admin_listen}` (a wildcard address
/// becomes loopback).
fn url_from_config(path: &std::path::Path) -> Result<String> {
    let config = Config::load(path).with_context(|| {
        format!(
            "no --url given and cannot read {} to find the API",
            path.display()
        )
    })?;
    if let Some(url) = &config.server.public_url {
        return Ok(url.clone());
    }
    let Some(mut address) = config.server.admin_listen else {
        bail!(
            "{}: [server] has neither public_url nor admin_listen; pass --url http://HOST:PORT",
            path.display()
        );
    };
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("http://{address}"))
}

pub fn run(command: ReviewsCommand) -> Result<ExitCode> {
    super::block_on(run_async(command))?
}

async fn run_async(command: ReviewsCommand) -> Result<ExitCode> {
    match command {
        ReviewsCommand::List { api, state, limit } => {
            let client = ApiClient::new(&api)?;
            let reviews: Vec<ReviewView> = client
                .get(&format!(
                    "/api/v1/reviews?state={}&limit={limit}",
                    query(&state)
                ))
                .await?;
            if api.json {
                println!("{}", serde_json::to_string_pretty(&reviews)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36} {:<9} {:<9} {:<12} {:<20} {:<7} WHAT",
                "ID", "STATE", "KIND", "TARGET", "REQUESTER", "OP"
            );
            for review in &reviews {
                println!(
                    "{:<36} {:<9} {:<9} {:<12} {:<20} {:<7} {}",
                    review.id,
                    review.state,
                    review.kind,
                    review.target,
                    review.requester,
                    review.operation,
                    summary(review)
                );
            }
            eprintln!("{} review(s)", reviews.len());
            Ok(ExitCode::SUCCESS)
        }
        ReviewsCommand::Show { api, id } => {
            let client = ApiClient::new(&api)?;
            let review: ReviewView = client
                .get(&format!("/api/v1/reviews/{}", path(&id)))
                .await?;
            if api.json {
                println!("{}", serde_json::to_string_pretty(&review)?);
            } else {
                print_review(&review);
            }
            Ok(ExitCode::SUCCESS)
        }
        ReviewsCommand::Approve { api, id, comment } => decide(api, id, comment, true).await,
        ReviewsCommand::Deny { api, id, comment } => decide(api, id, comment, false).await,
    }
}

async fn decide(
    api: ApiArgs,
    id: String,
    comment: Option<String>,
    approve: bool,
) -> Result<ExitCode> {
    let client = ApiClient::new(&api)?;
    let verb = if approve { "approve" } else { "deny" };
    let review: ReviewView = client
        .post(
            &format!("/api/v1/reviews/{}/{verb}", path(&id)),
            &DecisionBody { comment },
        )
        .await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&review)?);
        return Ok(ExitCode::SUCCESS);
    }
    match review.state.as_str() {
        "pending" => {
            let approvals = review.votes.iter().filter(|v| v.approve).count();
            eprintln!(
                "approval recorded on review {}: {approvals} of {} needed",
                review.id, review.min_approvals
            );
        }
        state => eprintln!("review {} is now {state}", review.id),
    }
    Ok(ExitCode::SUCCESS)
}

/// One line about what a review is for.
fn summary(review: &ReviewView) -> String {
    let text = match (&review.statement, review.duration_secs) {
        (Some(statement), _) => statement.split_whitespace().collect::<Vec<_>>().join(" "),
        (None, Some(secs)) => format!(
            "access for {}{}",
            humantime::format_duration(std::time::Duration::from_secs(secs)),
            review
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        (None, None) => String::new(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

pub(crate) fn print_review(review: &ReviewView) {
    println!("review     {}", review.id);
    println!("state      {}", review.state);
    println!("kind       {}", review.kind);
    println!("target     {}", review.target);
    println!("requester  {}", review.requester);
    if let Some(session) = &review.session_id {
        println!("session    {session}");
    }
    println!("operation  {}", review.operation);
    if !review.tables.is_empty() {
        println!("tables     {}", review.tables.join(", "));
    }
    if let Some(rule) = &review.rule {
        println!("rule       {rule}");
    }
    if let Some(secs) = review.duration_secs {
        println!(
            "duration   {}",
            humantime::format_duration(std::time::Duration::from_secs(secs))
        );
    }
    if let Some(reason) = &review.reason {
        println!("reason     {reason}");
    }
    println!(
        "approvers  {} ({} needed, scope {})",
        review.approvers.join(", "),
        review.min_approvals,
        review.approval_scope
    );
    println!("created    {}", review.created_at);
    println!("expires    {}", review.expires_at);
    if let Some(at) = &review.decided_at {
        println!(
            "decided    {at} by {}",
            review.decided_by.as_deref().unwrap_or("-")
        );
    }
    if let Some(comment) = &review.decision_comment {
        println!("comment    {comment}");
    }
    for vote in &review.votes {
        println!(
            "vote       {} {} at {}{}",
            if vote.approve { "approved" } else { "denied" },
            vote.reviewer,
            vote.at,
            vote.comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        );
    }
    if let Some(link) = &review.links.review {
        println!("link       {link}");
    }
    if let Some(statement) = &review.statement {
        println!("\n{statement}");
    }
}

/// Percent-encodes a path segment (review ids are UUIDs; anything else is
/// encoded rather than trusted).
pub(crate) fn path(segment: &str) -> String {
    encode(segment)
}

fn query(value: &str) -> String {
    encode(value)
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
