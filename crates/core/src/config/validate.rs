//! Semantic checks that run after parsing; each error points at its line.

use super::error::find_line;
use super::{Config, ConfigError, CredentialsConfig, Protocol, UpstreamTls, split_host_port};
use std::time::Duration;

impl Config {
    /// Semantic checks that serde cannot express.
    pub(super) fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let fail = |needle: &str, message: String| {
            let (line, column) = find_line(text, needle);
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message,
            })
        };
        if self.recording.capture_raw && self.recording.encryption_key.is_none() {
            return fail(
                "capture_raw",
                "[recording] capture_raw = true stores result values before masking; it needs \
                 encryption_key (a secret reference to a 32-byte key) so they are encrypted at rest"
                    .into(),
            );
        }
        if let Some(oidc) = &self.web.oidc {
            if !self.identity.oidc.iter().any(|i| i.issuer == oidc.issuer) {
                return fail(
                    "[web.oidc]",
                    format!(
                        "[web.oidc] issuer \"{}\" is not an [[identity.oidc]] issuer; add it there \
                         too (its keys verify the reviewers' ID tokens)",
                        oidc.issuer
                    ),
                );
            }
            if oidc.client_id.is_empty() {
                return fail("client_id", "[web.oidc] client_id is empty".into());
            }
            if self.server.public_url.is_none() {
                return fail(
                    "[web.oidc]",
                    "[web.oidc] needs [server] public_url: the IdP redirects reviewers back to \
                     PUBLIC_URL/auth/callback"
                        .into(),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for target in &self.targets {
            if !names.insert(target.name.as_str()) {
                return fail(
                    &format!("\"{}\"", target.name),
                    format!(
                        "two [[target]] tables are named \"{}\"; give each target a unique name",
                        target.name
                    ),
                );
            }
            if split_host_port(&target.address).is_none() {
                return fail(
                    &format!("\"{}\"", target.address),
                    format!(
                        "target \"{}\": address \"{}\" is not host:port; write e.g. \"db.internal:5432\"",
                        target.name, target.address
                    ),
                );
            }
            if target.effective_upstream_tls() == UpstreamTls::Disable && !target.is_loopback() {
                tracing::warn!(
                    target = %target.name,
                    "upstream_tls = \"disable\" for a non-loopback address: the upstream password crosses the network in clear"
                );
            }
            if let CredentialsConfig::Ephemeral(ephemeral) = &target.credentials
                && ephemeral.max_ttl < ephemeral.ttl
            {
                return fail(
                    "max_ttl",
                    format!(
                        "target \"{}\": max_ttl is shorter than ttl; make max_ttl at least ttl",
                        target.name
                    ),
                );
            }
            if target.credentials.secret().is_literal() {
                tracing::warn!(
                    target = %target.name,
                    "a literal password is written in the config; use env:NAME or file:PATH instead"
                );
            }
        }
        let mut policy_names = std::collections::HashSet::new();
        for policy in &self.policies {
            if !policy_names.insert(policy.name.as_str()) {
                return fail(
                    &format!("\"{}\"", policy.name),
                    format!(
                        "two [[policy]] tables are named \"{}\"; decisions name the rule, so names must be unique",
                        policy.name
                    ),
                );
            }
            for op in policy
                .allow
                .iter()
                .chain(&policy.review)
                .chain(&policy.deny)
            {
                if op != "*" && crate::Operation::parse(op).is_none() {
                    return fail(
                        &format!("\"{op}\""),
                        format!(
                            "policy \"{}\": unknown operation \"{op}\"; use connect, read, write, ddl, admin, unknown or *",
                            policy.name
                        ),
                    );
                }
            }
            if !matches!(policy.approval_scope.as_str(), "statement" | "session") {
                return fail(
                    &format!("\"{}\"", policy.approval_scope),
                    format!(
                        "policy \"{}\": approval_scope \"{}\" is not \"statement\" or \"session\"",
                        policy.name, policy.approval_scope
                    ),
                );
            }
            for subject in policy.subjects.iter().chain(&policy.approvers) {
                if !is_valid_subject(subject) {
                    return fail(
                        &format!("\"{subject}\""),
                        format!(
                            "policy \"{}\": subject \"{subject}\" is not one of group:G, sub:S, email:E, claim:NAME=VALUE, key:NAME or *",
                            policy.name
                        ),
                    );
                }
            }
            for pattern in policy
                .targets
                .iter()
                .chain(&policy.tables)
                .chain(&policy.schemas)
            {
                if let Err(error) = globset::Glob::new(pattern) {
                    return fail(
                        &format!("\"{pattern}\""),
                        format!(
                            "policy \"{}\": bad pattern \"{pattern}\": {error}",
                            policy.name
                        ),
                    );
                }
            }
        }
        let keys = &self.identity.access_keys;
        if keys.default_ttl > keys.max_ttl {
            return fail(
                "default_ttl",
                "[identity.access_keys] default_ttl is longer than max_ttl; lower default_ttl or raise max_ttl".into(),
            );
        }
        if let Some(url) = &self.store.url
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return fail(
                url,
                "[store] url: use sqlite:///PATH?mode=rwc or postgres://USER:PASSWORD@HOST/DB; omit `url` for SQLite in data_dir".into(),
            );
        }
        if let Some(every) = self.reviews.poll_interval
            && !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&every)
        {
            return fail(
                "poll_interval",
                "[reviews] poll_interval must be between 10ms and 1h (e.g. \"250ms\")".into(),
            );
        }
        for webhook in &self.reviews.webhooks {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                return fail(
                    &webhook.url,
                    format!(
                        "[[reviews.webhook]] url \"{}\" is not an http:// or https:// URL",
                        webhook.url
                    ),
                );
            }
        }
        match self.recording.sink.as_str() {
            "local" => {}
            "s3" if self.recording.bucket.is_none() => {
                return fail(
                    "sink",
                    "[recording] sink = \"s3\" needs `bucket` (and usually `endpoint`)".into(),
                );
            }
            "s3" => {}
            other => {
                return fail(
                    &format!("\"{other}\""),
                    format!("[recording] sink: \"{other}\" is not known; use \"local\" or \"s3\""),
                );
            }
        }
        if self.recording.on_spool_full != "refuse" {
            return fail(
                "on_spool_full",
                "[recording] on_spool_full: only \"refuse\" is available (new sessions are refused while the spool is full)".into(),
            );
        }
        Ok(())
    }

    /// Refuses a `[[listener]]` or `[[target]]` whose protocol is not in
    /// `available`. Parsing accepts every [`Protocol`]; which ones can be
    /// served depends on the handlers a binary has, so it calls this before
    /// binding anything. The error points at the line in the file the config
    /// was loaded from (1:1 when it was parsed from text or cannot be re-read).
    pub fn check_protocols(&self, available: &[Protocol]) -> Result<(), ConfigError> {
        let origin = self.source.as_ref().map_or_else(
            || "the config".to_string(),
            |path| path.display().to_string(),
        );
        let text = self
            .source
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        let fail = |needle: &str, message: String| {
            let (line, column) = find_line(&text, needle);
            Err(ConfigError::Invalid {
                path: origin.clone(),
                line,
                column,
                message,
            })
        };
        for listener in &self.listeners {
            if !available.contains(&listener.protocol) {
                return fail(
                    &listener.listen.to_string(),
                    format!(
                        "listener on {}: protocol \"{}\" is not available in this build; {}",
                        listener.listen,
                        listener.protocol,
                        protocol_fix(available)
                    ),
                );
            }
        }
        for target in &self.targets {
            if !available.contains(&target.protocol) {
                return fail(
                    &format!("\"{}\"", target.name),
                    format!(
                        "target \"{}\": protocol \"{}\" is not available in this build; {}",
                        target.name,
                        target.protocol,
                        protocol_fix(available)
                    ),
                );
            }
        }
        Ok(())
    }
}

/// `use "postgres" or "mysql"` for the protocols given.
fn protocol_fix(available: &[Protocol]) -> String {
    let quoted: Vec<String> = available.iter().map(|p| format!("\"{p}\"")).collect();
    match quoted.split_last() {
        None => "this build serves no protocol".into(),
        Some((last, [])) => format!("use {last}"),
        Some((last, rest)) => format!("use {} or {last}", rest.join(", ")),
    }
}

fn is_valid_subject(subject: &str) -> bool {
    if subject == "*" {
        return true;
    }
    match subject.split_once(':') {
        Some(("group" | "sub" | "email" | "key", value)) => !value.is_empty(),
        Some(("claim", rest)) => rest
            .split_once('=')
            .is_some_and(|(name, _)| !name.is_empty()),
        _ => false,
    }
}
