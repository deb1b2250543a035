//! Telling people about reviews: a JSON POST to each `[[reviews.webhook]]`
//! when a review is requested and when it is decided. CloudEvents 1.0 in
//! structured mode, or a Slack incoming-webhook message. Each body is
//! signed (`X-Warden-Signature: sha256=<hex HMAC-SHA256 of the body>`) when
//! the hook has a secret. Deliveries run in the background and retry with
//! exponential backoff; a session never waits for one.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_core::config::WebhookFormat;
use warden_core::review_store::ReviewRecord;
use warden_core::reviews::ReviewKind;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-warden-signature";

/// Longest statement text put in a CloudEvent (the rest is cut, marked).
const MAX_EVENT_STATEMENT: usize = 16 * 1024;
/// Slack section texts are limited to 3000 characters.
const MAX_SLACK_STATEMENT: usize = 2500;

/// One endpoint, with its secret resolved.
pub struct Webhook {
    pub url: String,
    pub secret: Option<SecretString>,
    pub format: WebhookFormat,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("format", &self.format)
            .finish()
    }
}

/// Delivery knobs (not in `warden.toml`; tests shorten them).
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// Tries per delivery, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled before each further one.
    pub first_backoff: Duration,
    /// Limit for one HTTP request.
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What happened to a review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewEventType {
    Requested,
    Decided,
}

impl ReviewEventType {
    /// The CloudEvents `type`.
    pub fn cloudevents_type(self) -> &'static str {
        match self {
            ReviewEventType::Requested => "dev.warden.review.requested",
            ReviewEventType::Decided => "dev.warden.review.decided",
        }
    }
}

/// Where people act on a review.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Links {
    /// The reviewer web page.
    pub review: Option<String>,
    /// The REST resource (`…/api/v1/reviews/{id}`).
    pub api: Option<String>,
    pub approve: Option<String>,
    pub deny: Option<String>,
}

impl Links {
    pub fn for_review(public_url: Option<&str>, id: &str) -> Links {
        let Some(base) = public_url.map(|u| u.trim_end_matches('/')) else {
            return Links::default();
        };
        let api = format!("{base}/api/v1/reviews/{id}");
        Links {
            review: Some(format!("{base}/reviews/{id}")),
            approve: Some(format!("{api}/approve")),
            deny: Some(format!("{api}/deny")),
            api: Some(api),
        }
    }
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// For receivers: checks a signature header in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(wanted) = hex::decode(hex_mac) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&wanted).is_ok()
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [cut: {} bytes in all]", &text[..end], text.len())
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The event's `data`: what a reviewer needs to decide, and the links.
fn event_data(review: &ReviewRecord, links: &Links) -> Value {
    json!({
        "review_id": review.id,
        "kind": review.kind,
        "state": review.state,
        "target": review.target,
        "requester": review.requester.display_name(),
        "requester_subject": review.requester.subject,
        "session_id": review.session_id,
        "operation": review.operation,
        "tables": review.tables,
        "statement": review.statement.as_deref().map(|s| cut(s, MAX_EVENT_STATEMENT)),
        "statement_hash": review.statement_hash,
        "rule": review.rule,
        "reason": review.reason,
        "duration_secs": review.duration_secs,
        "approvers": review.approvers,
        "min_approvals": review.min_approvals,
        "approval_scope": review.approval_scope,
        "created_at": rfc3339(review.created_at),
        "expires_at": rfc3339(review.expires_at),
        "decided_at": review.decided_at.map(rfc3339),
        "decided_by": review.decided_by,
        "comment": review.decision_comment,
        "links": links,
    })
}

/// A CloudEvents 1.0 event (structured mode, JSON).
pub fn cloudevent(
    event: ReviewEventType,
    review: &ReviewRecord,
    links: &Links,
    source: &str,
) -> Value {
    json!({
        "specversion": "1.0",
        "type": event.cloudevents_type(),
        "source": source,
        "id": uuid::Uuid::now_v7().to_string(),
        "time": rfc3339(OffsetDateTime::now_utc()),
        "subject": review.id,
        "datacontenttype": "application/json",
        "data": event_data(review, links),
    })
}

/// A Slack incoming-webhook message: `text` for notifications, `blocks` for the channel.
pub fn slack_message(event: ReviewEventType, review: &ReviewRecord, links: &Links) -> Value {
    let what = match review.kind {
        ReviewKind::Statement => format!("{} on *{}*", review.operation, review.target),
        ReviewKind::Access => format!(
            "access to *{}* for {}",
            review.target,
            review
                .duration_secs
                .map(|s| humanize(Duration::from_secs(s)))
                .unwrap_or_else(|| "-".into())
        ),
    };
    let requester = review.requester.display_name();
    let headline = match event {
        ReviewEventType::Requested => format!("Review requested: {what} by {requester}"),
        ReviewEventType::Decided => format!(
            "Review {}: {what} by {requester}{}",
            review.state,
            review
                .decided_by
                .as_deref()
                .map(|who| format!(" (decided by {who})"))
                .unwrap_or_default()
        ),
    };
    let mut detail = String::new();
    if let Some(statement) = &review.statement {
        detail.push_str(&format!(
            "```{}```\n",
            cut(statement, MAX_SLACK_STATEMENT).replace("```", "'''")
        ));
    }
    if let Some(reason) = &review.reason {
        detail.push_str(&format!("Reason: {reason}\n"));
    }
    if let Some(comment) = &review.decision_comment {
        detail.push_str(&format!("Comment: {comment}\n"));
    }
    if let Some(url) = &links.review {
        detail.push_str(&format!("<{url}|Open review {}>", review.id));
    } else {
        detail.push_str(&format!("Review id: `{}`", review.id));
    }
    json!({
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("warden review `{}` · rule {}", review.id, review.rule.as_deref().unwrap_or("-"))}
            ]},
        ],
    })
}

fn humanize(duration: Duration) -> String {
    humantime_like(duration.as_secs())
}

/// `90m` → `1h30m`; short and unambiguous.
fn humantime_like(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Sends review events to every configured hook.
#[derive(Clone)]
pub(crate) struct Notifier {
    hooks: Arc<Vec<Webhook>>,
    client: reqwest::Client,
    options: WebhookOptions,
    source: String,
}

impl Notifier {
    pub(crate) fn new(hooks: Vec<Webhook>, options: WebhookOptions, source: String) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot build the webhook HTTP client; using the default one");
                reqwest::Client::new()
            });
        Notifier {
            hooks: Arc::new(hooks),
            client,
            options,
            source,
        }
    }

    /// Starts one background delivery per hook; returns their handles
    /// (each yields whether the hook accepted the event).
    pub(crate) fn send(
        &self,
        event: ReviewEventType,
        review: &ReviewRecord,
        links: &Links,
    ) -> Vec<tokio::task::JoinHandle<bool>> {
        let mut tasks = Vec::with_capacity(self.hooks.len());
        for index in 0..self.hooks.len() {
            let Some(hook) = self.hooks.get(index) else {
                continue;
            };
            let body = match hook.format {
                WebhookFormat::Cloudevents => cloudevent(event, review, links, &self.source),
                WebhookFormat::Slack => slack_message(event, review, links),
            };
            let body = match serde_json::to_vec(&body) {
                Ok(body) => body,
                Err(error) => {
                    tracing::warn!(%error, "cannot encode a webhook body");
                    continue;
                }
            };
            let this = self.clone();
            let review_id = review.id.clone();
            tasks.push(tokio::spawn(async move {
                this.deliver(index, body, event, &review_id).await
            }));
        }
        tasks
    }

    async fn deliver(
        &self,
        index: usize,
        body: Vec<u8>,
        event: ReviewEventType,
        review_id: &str,
    ) -> bool {
        let Some(hook) = self.hooks.get(index) else {
            return false;
        };
        let content_type = match hook.format {
            WebhookFormat::Cloudevents => "application/cloudevents+json; charset=utf-8",
            WebhookFormat::Slack => "application/json",
        };
        let signature = hook
            .secret
            .as_ref()
            .map(|secret| sign(secret.expose_secret().as_bytes(), &body));
        let delivery = uuid::Uuid::now_v7().to_string();
        let mut backoff = self.options.first_backoff;
        let attempts = self.options.attempts.max(1);
        for attempt in 1..=attempts {
            let mut request = self
                .client
                .post(&hook.url)
                .header("content-type", content_type)
                .header("x-warden-event", event.cloudevents_type())
                .header("x-warden-delivery", &delivery)
                .body(body.clone());
            if let Some(signature) = &signature {
                request = request.header(SIGNATURE_HEADER, signature);
            }
            let retry = match request.send().await {
                Ok(response) if response.status().is_success() => return true,
                Ok(response) => {
                    let status = response.status();
                    tracing::warn!(url = %hook.url, %status, attempt, review = review_id, "webhook refused the event");
                    // A client error other than timeout/rate limit will not go away.
                    !status.is_client_error() || status.as_u16() == 408 || status.as_u16() == 429
                }
                Err(error) => {
                    tracing::warn!(url = %hook.url, error = %error.without_url(), attempt, review = review_id, "webhook delivery failed");
                    true
                }
            };
            if !retry || attempt == attempts {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        tracing::error!(url = %hook.url, review = review_id, "webhook delivery given up");
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_changes() {
        let sig = sign(b"s3cret", b"{\"a\":1}");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert!(verify_signature(b"s3cret", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"s3cret", b"{\"a\":2}", &sig));
        assert!(!verify_signature(b"other", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"s3cret", b"{\"a\":1}", "sha1=00"));
        assert!(!verify_signature(b"s3cret", b"{\"a\":1}", "sha256=zz"));
    }

    #[test]
    fn known_hmac_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn long_statements_are_cut_on_a_char_boundary() {
        let text = "é".repeat(10);
        let cut_text = cut(&text, 5);
        assert!(cut_text.starts_with("éé…"), "{cut_text}");
        assert!(cut_text.contains("20 bytes"));
        assert_eq!(cut("short", 10), "short");
    }

    #[test]
    fn links_need_a_public_url() {
        assert_eq!(Links::for_review(None, "x"), Links::default());
        let links = Links::for_review(Some("https://w.example/"), "x");
        assert_eq!(links.review.as_deref(), Some("https://w.example/reviews/x"));
        assert_eq!(
            links.approve.as_deref(),
            Some("https://w.example/api/v1/reviews/x/approve")
        );
        assert_eq!(humantime_like(5400), "1h30m");
        assert_eq!(humantime_like(0), "0s");
    }
}
