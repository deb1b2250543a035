//! Running one command: forwarding it with its grant, relaying the
//! response, recording what happened.

use super::{CommandLoop, Flow, com};
use crate::errors::ClientError;
use crate::packets::ErrInfo;
use crate::relay::{Outcome, RelayError};
use crate::statements::{Prepared, statement_id};
use crate::threads::Kill;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use warden_core::events::EventKind;
use warden_core::metrics::Metrics;
use warden_core::request::StatementProtocol;
use warden_core::{Action, Operation};

impl CommandLoop<'_> {
    /// An upstream error's message as the recording keeps it: as the client
    /// saw it (withheld or detector-masked) when masking applies.
    pub(super) fn recorded_error(&self, error: &crate::packets::ErrInfo) -> String {
        match self.masker.as_deref() {
            Some(masker) if masker.has_column_rules() && crate::relay::quotes_data(error.code) => {
                crate::relay::WITHHELD_MESSAGE.to_string()
            }
            Some(masker) => warden_core::masking::recorded_text(Some(masker), &error.message),
            None => error.message.clone(),
        }
    }

    pub(super) fn recorded_text(&self, sql: &str) -> String {
        warden_core::masking::recorded_statement(
            self.gateway.config.recording.capture_statements,
            self.masker.as_deref(),
            sql,
        )
    }

    pub(super) fn count_statement(&mut self) {
        self.count += 1;
        Metrics::add(&self.gateway.metrics.statements, 1);
    }

    pub(super) fn record(
        &self,
        sql: &str,
        protocol: StatementProtocol,
        started: Instant,
        outcome: &Outcome,
    ) {
        for (columns, rows, truncated) in &outcome.captured {
            self.recording.record(EventKind::Result {
                columns: columns.clone(),
                rows: rows.clone(),
                truncated: *truncated,
            });
        }
        self.recording.record(EventKind::Statement {
            text: self.recorded_text(sql),
            protocol,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            tags: outcome.tags.clone(),
            rows: Some(outcome.rows),
            error_code: outcome.error.as_ref().map(|e| e.code.to_string()),
            error_message: outcome.error.as_ref().map(|e| self.recorded_error(e)),
        });
    }

    /// Ends the session after a relay failure, telling the client when it can be told.
    pub(super) async fn relay_failed(&mut self, error: RelayError) -> Flow {
        match &error {
            RelayError::Client(_) => {}
            RelayError::Upstream(_)
            | RelayError::Protocol(_)
            | RelayError::LexingState(_)
            | RelayError::Ungranted => {
                let message = format!(
                    "Warden lost the connection to target \"{}\": {error}",
                    self.target.name
                );
                self.send_error(&ClientError::UpstreamUnavailable(message))
                    .await;
            }
        }
        Flow::End(error.to_string())
    }

    pub(super) async fn query(&mut self, payload: Bytes) -> Flow {
        let sql = warden_core::lexing::statement_text(&payload[1..]).to_string();
        self.count_statement();
        if let Some(kill) = Kill::parse(&sql)
            && let Some(upstream_thread) = self.connection.threads.own_upstream(
                kill.id,
                &warden_core::review_store::principal(&self.session.identity),
                &self.target.name,
            )
        {
            return self.kill_own(&sql, &kill, upstream_thread).await;
        }
        let grant = match self.grant_for(&sql).await {
            Ok(grant) => grant,
            Err(flow) => return flow,
        };
        let started = Instant::now();
        let mut relay = self.relay();
        relay.local_infile = crate::local_infile::requested_file(&sql);
        let result = match relay.send_statement(grant, &payload).await {
            Ok(()) => relay.results().await,
            Err(error) => Err(error),
        };
        let counts = relay.masking.take().map(|m| m.counts).unwrap_or_default();
        self.record_masking(counts);
        match result {
            Ok(outcome) => {
                self.record(&sql, StatementProtocol::Simple, started, &outcome);
                Flow::Continue
            }
            Err(error) => self.relay_failed(error).await,
        }
    }

    /// `KILL [QUERY] <id>` of one of the caller's own sessions on this
    /// target: sent upstream with that session's upstream thread id.
    pub(super) async fn kill_own(&mut self, sql: &str, kill: &Kill, upstream_thread: u32) -> Flow {
        self.recording.record(EventKind::Decision {
            text: self.recorded_text(sql),
            operation: Operation::Read,
            action: Action::Allow,
            rule: None,
            tables: Vec::new(),
            reason: format!(
                "interrupts the caller's own session (Warden thread {}, upstream thread {upstream_thread})",
                kill.id
            ),
        });
        let started = Instant::now();
        let mut relay = self.relay();
        let result = match relay.send_own_kill(kill, upstream_thread).await {
            Ok(()) => relay.results().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(outcome) => {
                self.record(sql, StatementProtocol::Simple, started, &outcome);
                Flow::Continue
            }
            Err(error) => self.relay_failed(error).await,
        }
    }

    pub(super) async fn prepare(&mut self, payload: Bytes) -> Flow {
        let sql = warden_core::lexing::statement_text(&payload[1..]).to_string();
        let generation = self.gateway.policy.generation();
        let decision = self.decide(&sql);
        // A reviewed statement is prepared, and held at each execute, when
        // its parameters are known.
        let Some(grant) = warden_core::grant::judge_prepare(&decision) else {
            self.count_statement();
            return self
                .deny(&decision, &sql, StatementProtocol::Extended)
                .await;
        };
        let started = Instant::now();
        let mut relay = self.relay();
        let result = match relay.send_prepare(grant, &payload).await {
            Ok(()) => relay.prepare().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(Ok(prepared)) => {
                let kept = Prepared {
                    text: Arc::from(sql.as_str()),
                    decision,
                    generation,
                };
                if !self.statements.insert(prepared.statement_id, kept) {
                    tracing::warn!(session = %self.session.id, "too many prepared statements; executions will be refused");
                }
                Flow::Continue
            }
            Ok(Err(error)) => {
                let outcome = Outcome {
                    error: Some(error),
                    ..Outcome::default()
                };
                self.record(&sql, StatementProtocol::Extended, started, &outcome);
                Flow::Continue
            }
            Err(error) => self.relay_failed(error).await,
        }
    }

    pub(super) async fn execute(&mut self, payload: Bytes) -> Flow {
        let id = statement_id(&payload).unwrap_or_default();
        let Some(prepared) = self.statements.get(id).cloned() else {
            self.send_error(&ClientError::UnknownStatement(id, "mysqld_stmt_execute"))
                .await;
            return Flow::Continue;
        };
        self.count_statement();
        let sql = prepared.text;
        let generation = self.gateway.policy.generation();
        let decision = if prepared.generation == generation {
            prepared.decision
        } else {
            // The rules changed since the prepare: judge the text again.
            let decision = self.decide(&sql);
            self.statements.redecided(id, decision.clone(), generation);
            decision
        };
        let parameters = payload.get(5..).unwrap_or_default();
        let grant = match self
            .authorize(
                decision,
                &sql,
                Some(parameters),
                StatementProtocol::Extended,
            )
            .await
        {
            Ok(grant) => grant,
            Err(flow) => return flow,
        };
        let started = Instant::now();
        let mut relay = self.relay_rows(true);
        let result = match relay.send_statement(grant, &payload).await {
            Ok(()) => relay.results().await,
            Err(error) => Err(error),
        };
        let (counts, cursor_plan) = relay
            .masking
            .take()
            .map(|m| (m.counts, m.cursor_plan))
            .unwrap_or_default();
        if let Some(plan) = cursor_plan {
            self.cursor_plans.insert(id, plan);
        }
        self.record_masking(counts);
        match result {
            Ok(outcome) => {
                self.record(&sql, StatementProtocol::Extended, started, &outcome);
                Flow::Continue
            }
            Err(error) => self.relay_failed(error).await,
        }
    }

    pub(super) async fn fetch(&mut self, payload: Bytes) -> Flow {
        let id = statement_id(&payload).unwrap_or_default();
        if self.statements.get(id).is_none() {
            self.send_error(&ClientError::UnknownStatement(id, "mysqld_stmt_fetch"))
                .await;
            return Flow::Continue;
        }
        let plan = self.cursor_plans.get(&id).cloned();
        let mut relay = self.relay_rows(true);
        if let Some(masking) = relay.masking.as_mut() {
            masking.fetch_plan = plan;
        }
        let result = match relay.send_command(&payload).await {
            Ok(()) => relay.fetch().await,
            Err(error) => Err(error),
        };
        let counts = relay.masking.take().map(|m| m.counts).unwrap_or_default();
        self.record_masking(counts);
        match result {
            Ok(_) => Flow::Continue,
            Err(error) => self.relay_failed(error).await,
        }
    }

    /// Commands without a response (SEND_LONG_DATA, STMT_CLOSE).
    pub(super) async fn forward_only(&mut self, payload: &[u8]) -> Flow {
        match self.relay().send_command(payload).await {
            Ok(()) => Flow::Continue,
            Err(error) => self.relay_failed(error).await,
        }
    }

    /// Commands answered with one packet.
    pub(super) async fn single(&mut self, payload: &[u8]) -> (Flow, Option<ErrInfo>) {
        let mut relay = self.relay();
        let result = match relay.send_command(payload).await {
            Ok(()) => relay.single().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(error) => (Flow::Continue, error),
            Err(error) => (self.relay_failed(error).await, None),
        }
    }

    /// COM_INIT_DB: the target's own name maps to its upstream database;
    /// another target's name is refused; any other database is a policy question.
    pub(super) async fn init_db(&mut self, payload: Bytes) -> Flow {
        let name = String::from_utf8_lossy(&payload[1..]).into_owned();
        let upstream_db = self.target.upstream_database().to_string();
        if name == self.target.name || name == upstream_db {
            let mut rewritten = vec![com::INIT_DB];
            rewritten.extend_from_slice(upstream_db.as_bytes());
            return self.single(&rewritten).await.0;
        }
        if self.gateway.config.target(&name).is_some() {
            let message = format!(
                "Switching to target \"{name}\" inside a session is not allowed; open a new connection with -D {name}"
            );
            self.send_error(&ClientError::DatabaseDenied(message)).await;
            return Flow::Continue;
        }
        let sql = format!("USE `{}`", name.replace('`', "``"));
        let grant = match self.grant_for(&sql).await {
            Ok(grant) => grant,
            Err(flow) => return flow,
        };
        let mut relay = self.relay();
        let result = match relay.send_statement(grant, &payload).await {
            Ok(()) => relay.single().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(_) => Flow::Continue,
            Err(error) => self.relay_failed(error).await,
        }
    }

    /// COM_FIELD_LIST reads a table's columns: judged as `SHOW COLUMNS FROM t`.
    pub(super) async fn field_list(&mut self, payload: Bytes) -> Flow {
        let rest = &payload[1..];
        let table = rest.split(|&b| b == 0).next().unwrap_or_default();
        let table = String::from_utf8_lossy(table);
        let sql = format!("SHOW COLUMNS FROM `{}`", table.replace('`', "``"));
        let grant = match self.grant_for(&sql).await {
            Ok(grant) => grant,
            Err(flow) => return flow,
        };
        let mut relay = self.relay();
        let result = match relay.send_statement(grant, &payload).await {
            Ok(()) => relay.field_list().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(_) => Flow::Continue,
            Err(error) => self.relay_failed(error).await,
        }
    }
}
