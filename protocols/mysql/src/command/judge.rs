//! Turning a statement into a grant: policy's decision (made stricter by
//! this target's own rules), core's review hold, and the MySQL error a
//! statement without a grant gets.

use super::{CommandLoop, Flow};
use crate::errors::ClientError;
use warden_core::events::EventKind;
use warden_core::grant::{Judgement, StatementGrant, judge};
use warden_core::hold::{HoldRequest, Verdict, hold};
use warden_core::metrics::Metrics;
use warden_core::request::StatementProtocol;
use warden_core::request::{Dialect, Request};
use warden_core::{Action, Decision, Operation};

impl CommandLoop<'_> {
    /// Asks policy about a statement and records the decision.
    pub(super) fn decide(&mut self, sql: &str) -> Decision {
        let mut decision = self.gateway.policy.check_session_statement(
            self.policy_state.as_mut(),
            &self.session.identity,
            &self.target.name,
            &Request::sql(Dialect::Mysql, sql),
        );
        if decision.action() != Action::Deny && self.reads_diagnostics(sql) {
            decision = decision.tightened(
                "the server's warnings and diagnostics are not available while column \
                 masking rules apply to you on this target",
            );
        } else if decision.action() != Action::Deny
            && let Some(database) = self.foreign_database(&decision)
        {
            let reason = format!(
                "target \"{}\" is confined to database \"{}\"; \"{database}\" is not one it lists",
                self.target.name,
                self.target.upstream_database()
            );
            decision = decision.tightened(reason);
        }
        // A view's columns are not direct columns of a covered table even
        // when the server names the view as their source: leave views of
        // ruled tables out, so their columns are masked whole.
        self.covered_reads = self
            .masker
            .as_deref()
            .filter(|masker| masker.reads_covered_table(decision.tables()))
            .map(|_| {
                decision
                    .tables()
                    .iter()
                    .filter(|table| {
                        let name = table.rsplit('.').next().unwrap_or(table);
                        !self
                            .connection
                            .derived
                            .iter()
                            .any(|d| d.name.eq_ignore_ascii_case(name))
                    })
                    .cloned()
                    .collect()
            });
        if self.covered_reads.is_some() && sql.contains('@') {
            // `SET @x = (SELECT code …)`, `SELECT code INTO @x`: a later
            // `SELECT @x` names no table.
            self.values_in_variables = true;
        }
        if self.values_in_variables
            && self.covered_reads.is_none()
            && self.masker.as_deref().is_some_and(|m| m.has_column_rules())
        {
            self.covered_reads = Some(decision.tables().to_vec());
        }
        let recorded = self.recorded_text(sql);
        warden_core::operation::log_statement_decision(
            &self.session.id,
            "mysql",
            &decision,
            &recorded,
        );
        self.recording
            .record(EventKind::decision(recorded, &decision));
        decision
    }

    /// Policy's grant for a text-protocol statement (COM_QUERY, and the SQL
    /// Warden judges COM_INIT_DB and COM_FIELD_LIST as), or the reply sent.
    pub(super) async fn grant_for(&mut self, sql: &str) -> Result<StatementGrant, Flow> {
        let decision = self.decide(sql);
        self.authorize(decision, sql, None, StatementProtocol::Simple)
            .await
    }

    /// The grant to forward `sql`, or `Err` with the reply already sent:
    /// a denial, or a review hold that did not end in an approval. An
    /// approval is bound to the text and `parameters` (COM_STMT_EXECUTE's
    /// bound values, raw).
    pub(super) async fn authorize(
        &mut self,
        decision: Decision,
        sql: &str,
        parameters: Option<&[u8]>,
        protocol: StatementProtocol,
    ) -> Result<StatementGrant, Flow> {
        let decision = match judge(decision) {
            Judgement::Allowed(grant) => return Ok(grant),
            Judgement::Denied(decision) => return Err(self.deny(&decision, sql, protocol).await),
            Judgement::Review(decision) => decision,
        };
        let hash = match parameters {
            Some(bytes) => warden_core::reviews::statement_hash(sql, &[Some(bytes.to_vec())]),
            None => warden_core::reviews::statement_hash(sql, &[]),
        };
        let request = HoldRequest {
            session_id: &self.session.id,
            target: &self.target.name,
            identity: &self.session.identity,
            recording: self.recording,
            text: sql,
            hash,
            decision: &decision,
        };
        // MySQL has no notices: the client simply waits for its result.
        let verdict = hold(self.gateway, request, |_| {}, std::future::pending()).await;
        match verdict_reply(verdict) {
            Ok(grant) => Ok(grant),
            Err(error) => Err(self.refuse_reviewed(sql, protocol, error).await),
        }
    }

    /// With column rules, the server's warnings and diagnostics can quote a
    /// covered value (`Truncated incorrect INTEGER value: '…'`): statements
    /// that read them are refused. Any `SHOW WARNINGS`/`ERRORS`/`COUNT` or
    /// `GET DIAGNOSTICS` word pair counts, even inside a literal (stricter).
    fn reads_diagnostics(&self, sql: &str) -> bool {
        if !self.masker.as_ref().is_some_and(|m| m.has_column_rules()) {
            return false;
        }
        let upper = sql.to_ascii_uppercase();
        let words: Vec<&str> = upper
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        words.windows(2).any(|pair| {
            matches!(
                pair,
                ["SHOW", "WARNINGS" | "ERRORS" | "COUNT"]
                    | ["GET", "DIAGNOSTICS" | "CURRENT" | "STACKED"]
            )
        })
    }

    /// A database the statement names that the target does not allow.
    fn foreign_database(&self, decision: &Decision) -> Option<String> {
        decision.tables().iter().find_map(|table| {
            let (database, _) = table.rsplit_once('.')?;
            (!self.target.allows_database(database)).then(|| database.to_string())
        })
    }

    /// Answers a statement its review did not release; the session goes on.
    async fn refuse_reviewed(
        &mut self,
        sql: &str,
        protocol: StatementProtocol,
        error: ClientError,
    ) -> Flow {
        self.record_refusal(sql, protocol, &error);
        self.send_error(&error).await;
        Flow::Continue
    }

    /// Refuses a statement policy did not allow; the session goes on.
    pub(super) async fn deny(
        &mut self,
        decision: &Decision,
        sql: &str,
        protocol: StatementProtocol,
    ) -> Flow {
        Metrics::add(&self.gateway.metrics.statements_denied, 1);
        let error = denial(decision, &self.target.name);
        self.record_refusal(sql, protocol, &error);
        self.send_error(&error).await;
        Flow::Continue
    }

    fn record_refusal(&self, sql: &str, protocol: StatementProtocol, error: &ClientError) {
        let (code, _) = error.code();
        self.recording.record(EventKind::Statement {
            text: self.recorded_text(sql),
            protocol,
            duration_ms: 0.0,
            tags: Vec::new(),
            rows: None,
            error_code: Some(code.to_string()),
            error_message: Some(error.to_string()),
        });
    }
}

/// The grant an approval carries, or the error any other verdict gets.
fn verdict_reply(verdict: Verdict) -> Result<StatementGrant, ClientError> {
    match verdict {
        Verdict::Approved(grant) => Ok(grant),
        Verdict::Denied {
            review_id,
            reviewer,
            comment,
        } => Err(ClientError::ReviewRefused(format!(
            "review {review_id} denied this statement (reviewer {reviewer}){}",
            comment.map(|c| format!(": {c}")).unwrap_or_default()
        ))),
        Verdict::TimedOut { review_id, .. } => Err(ClientError::ReviewInterrupted(format!(
            "review {review_id} was not decided in time; the statement did not run"
        ))),
        Verdict::Withdrawn {
            review_id, reason, ..
        } => Err(ClientError::ReviewInterrupted(format!(
            "review {review_id} was cancelled: {reason}"
        ))),
        Verdict::Unavailable => Err(ClientError::ReviewRefused(
            "this statement needs a human review, and Warden cannot open one right now".into(),
        )),
    }
}

/// The error a denied statement gets: 1227 for admin operations, else 1142.
fn denial(decision: &Decision, target: &str) -> ClientError {
    let message = format!(
        "Warden policy \"{}\" denies this {} statement on target \"{target}\": {}",
        decision.rule_name(),
        decision.operation(),
        decision.reason()
    );
    if decision.operation() == Operation::Admin {
        ClientError::AdminDenied(message)
    } else {
        ClientError::StatementDenied(message)
    }
}
