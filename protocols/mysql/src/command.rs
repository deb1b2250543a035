//! The command phase: one client command at a time, judged by policy where
//! it carries SQL, relayed upstream, its response relayed back, recorded.

use crate::codec::{CodecError, PacketStream};
use crate::errors::ClientError;
use crate::packets::ErrInfo;
use crate::relay::{MaskingRelay, Outcome, Relay, RelayError};
use crate::statements::{Statements, statement_id};
use crate::stream::BoxStream;
use crate::threads::{Kill, Threads};
use crate::upstream::Upstream;
use bytes::Bytes;
use mysql_common::constants::CapabilityFlags as Caps;
use std::time::Instant;
use warden_core::config::TargetConfig;
use warden_core::engines::{Dialect, SessionRecording};
use warden_core::events::{EventKind, SessionInfo, StatementProtocol};
use warden_core::metrics::Metrics;
use warden_core::{Action, Decision, Gateway, Operation};

mod change_user;

/// What the command phase keeps from the connection phase.
pub struct Connection<'a> {
    /// Warden's thread ids, for `KILL` of the caller's own sessions.
    pub threads: &'a Threads,
    /// Checks access keys sent with `mysql_native_password` (COM_CHANGE_USER).
    pub native: Option<&'a dyn crate::auth::NativePasswordVerifier>,
    /// The greeting's nonce, which a COM_CHANGE_USER answer is scrambled with.
    pub scramble: [u8; crate::handshake::SCRAMBLE_LEN],
    pub collation: u8,
}

/// Command bytes (the first payload byte of a command packet).
mod com {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PING: u8 = 0x0e;
    pub const CHANGE_USER: u8 = 0x11;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1a;
    pub const SET_OPTION: u8 = 0x1b;
    pub const STMT_FETCH: u8 = 0x1c;
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// Whether the session goes on after a command.
pub enum Flow {
    Continue,
    End(String),
}

enum Next {
    Command(Result<crate::codec::Packet, CodecError>),
    Shutdown,
}

/// The state of a session's command phase.
pub struct CommandLoop<'a> {
    gateway: &'a Gateway,
    session: &'a SessionInfo,
    /// What the connection phase left (thread ids, re-authentication).
    connection: Connection<'a>,
    /// The client's capabilities (as negotiated at connect).
    caps: Caps,
    target: &'a TargetConfig,
    recording: &'a dyn SessionRecording,
    client: PacketStream<BoxStream>,
    upstream: Upstream,
    client_deprecate_eof: bool,
    statements: Statements,
    count: u64,
    reported_in: u64,
    reported_out: u64,
    quit_sent: bool,
    /// Sequence id of the reply to the current command: one past its last
    /// chunk (a command of 16 MiB or more spans several).
    reply_seq: u8,
    /// The session's masking rules; `None` when none apply.
    masker: Option<std::sync::Arc<dyn warden_core::masking::SessionMasker>>,
    /// Prepared statements whose decision is `review`, by statement id.
    reviewed: std::collections::HashMap<u32, Decision>,
    /// Masking plans of open cursors, by statement id.
    cursor_plans: std::collections::HashMap<u32, crate::masking::RowPlan>,
    /// The policy engine's per-session state (SQL-level PREPARE texts, the
    /// server's version for executable comments, saved lexing variables).
    policy_state: Box<dyn std::any::Any + Send>,
}

impl<'a> CommandLoop<'a> {
    // The session's parts, until core owns the lifecycle (one admitted
    // session value instead of five references).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gateway: &'a Gateway,
        session: &'a SessionInfo,
        connection: Connection<'a>,
        target: &'a TargetConfig,
        recording: &'a dyn SessionRecording,
        client: PacketStream<BoxStream>,
        upstream: Upstream,
        client_caps: Caps,
    ) -> Self {
        let mut policy_state = gateway.policy.new_session_state(Dialect::Mysql);
        gateway
            .policy
            .set_session_server(policy_state.as_mut(), &upstream.server_version);
        let reported_in = client.bytes_read;
        let reported_out = client.bytes_written;
        Metrics::add(&gateway.metrics.bytes_from_clients, reported_in);
        Metrics::add(&gateway.metrics.bytes_to_clients, reported_out);
        CommandLoop {
            gateway,
            session,
            connection,
            caps: client_caps,
            target,
            recording,
            client,
            upstream,
            client_deprecate_eof: client_caps.contains(Caps::CLIENT_DEPRECATE_EOF),
            statements: Statements::default(),
            count: 0,
            reported_in,
            reported_out,
            quit_sent: false,
            reply_seq: 1,
            masker: gateway.masking.for_session(&session.identity, &target.name),
            cursor_plans: std::collections::HashMap::new(),
            reviewed: std::collections::HashMap::new(),
            policy_state,
        }
    }

    pub fn bytes_from_client(&self) -> u64 {
        self.client.bytes_read
    }

    pub fn bytes_to_client(&self) -> u64 {
        self.client.bytes_written
    }

    pub fn statements(&self) -> u64 {
        self.count
    }

    /// Reads and handles one command; stops when told to terminate.
    pub async fn next(&mut self) -> Flow {
        let terminate = self.gateway.shutdown.terminate.clone();
        let limit =
            usize::try_from(self.gateway.config.server.max_message_size.0).unwrap_or(usize::MAX);
        let next = tokio::select! {
            biased;
            _ = terminate.cancelled() => Next::Shutdown,
            read = self.client.read_packet(Some(0), limit) => Next::Command(read),
        };
        let packet = match next {
            Next::Shutdown => return self.shutdown().await,
            Next::Command(Ok(packet)) => {
                self.reply_seq = packet.last_seq.wrapping_add(1);
                packet
            }
            Next::Command(Err(CodecError::Closed)) => {
                return Flow::End("client closed".into());
            }
            Next::Command(Err(error)) => {
                if let Some(client_error) = ClientError::from_codec(&error) {
                    self.send_error(&client_error).await;
                }
                return Flow::End(format!("client: {error}"));
            }
        };
        let flow = tokio::select! {
            biased;
            _ = terminate.cancelled() => None,
            flow = self.dispatch(packet.payload) => Some(flow),
        };
        let flow = match flow {
            Some(flow) => flow,
            None => self.shutdown().await,
        };
        self.report_bytes();
        flow
    }

    /// Says goodbye to both sides.
    pub async fn close(&mut self) {
        if !self.quit_sent {
            self.upstream.stream.queue_packet(0, &[com::QUIT]);
            self.quit_sent = true;
        }
        self.upstream.stream.close().await;
        self.client.close().await;
        self.report_bytes();
    }

    fn report_bytes(&mut self) {
        let metrics = &self.gateway.metrics;
        Metrics::add(
            &metrics.bytes_from_clients,
            self.client.bytes_read - self.reported_in,
        );
        Metrics::add(
            &metrics.bytes_to_clients,
            self.client.bytes_written - self.reported_out,
        );
        self.reported_in = self.client.bytes_read;
        self.reported_out = self.client.bytes_written;
    }

    /// Ends the session with a message (its credential's lease ended). The
    /// client may be mid-command; it gets the error as its next packet.
    pub async fn end_with(&mut self, reason: String) -> Flow {
        self.client
            .queue_packet(1, &crate::packets::err_packet(1927, "70100", &reason));
        let _ = self.client.flush().await;
        Flow::End(reason)
    }

    async fn shutdown(&mut self) -> Flow {
        self.send_error(&ClientError::Shutdown).await;
        Flow::End("shutdown".into())
    }

    /// Sends one of Warden's own errors as the response to a command.
    async fn send_error(&mut self, error: &ClientError) {
        self.client.queue_packet(self.reply_seq, &error.packet());
        let _ = self.client.flush().await;
    }

    fn relay(&mut self) -> Relay<'_> {
        self.relay_rows(false)
    }

    /// A relay whose result rows are in the binary protocol when `binary`.
    fn relay_rows(&mut self, binary: bool) -> Relay<'_> {
        Relay {
            client: &mut self.client,
            upstream: &mut self.upstream.stream,
            client_deprecate_eof: self.client_deprecate_eof,
            upstream_deprecate_eof: self.upstream.caps.contains(Caps::CLIENT_DEPRECATE_EOF),
            seq: self.reply_seq,
            masking: self.masker.as_deref().map(|masker| MaskingRelay {
                masker,
                binary,
                counts: Default::default(),
                cursor_plan: None,
                fetch_plan: None,
            }),
            pushback: None,
            capture: self.gateway.config.recording.capture_results,
            captured_columns: Vec::new(),
            captured_rows: Vec::new(),
            captured_truncated: false,
            local_infile: None,
        }
    }

    /// Records what masking did during one command.
    fn record_masking(&self, counts: crate::masking::MaskCounts) {
        for ((column, detector), count) in counts {
            self.recording.record(EventKind::Masked {
                column: column.to_string(),
                detector: detector.to_string(),
                count,
            });
        }
    }

    async fn dispatch(&mut self, payload: Bytes) -> Flow {
        let Some(&command) = payload.first() else {
            self.send_error(&ClientError::Malformed("empty command packet".into()))
                .await;
            return Flow::Continue;
        };
        match command {
            com::QUIT => {
                self.upstream.stream.queue_packet(0, &[com::QUIT]);
                self.quit_sent = true;
                Flow::End("client quit".into())
            }
            com::QUERY => self.query(payload).await,
            com::STMT_PREPARE => self.prepare(payload).await,
            com::STMT_EXECUTE => self.execute(payload).await,
            com::STMT_FETCH => self.fetch(payload).await,
            com::STMT_SEND_LONG_DATA => self.forward_only(&payload).await,
            com::STMT_CLOSE => {
                if let Some(id) = statement_id(&payload) {
                    self.statements.remove(id);
                }
                self.forward_only(&payload).await
            }
            com::STMT_RESET => match statement_id(&payload) {
                Some(id) if self.statements.get(id).is_some() => self.single(&payload).await.0,
                id => {
                    let id = id.unwrap_or_default();
                    self.send_error(&ClientError::UnknownStatement(id, "mysql_stmt_reset"))
                        .await;
                    Flow::Continue
                }
            },
            com::INIT_DB => self.init_db(payload).await,
            com::FIELD_LIST => self.field_list(payload).await,
            com::PING | com::STATISTICS | com::SET_OPTION => self.single(&payload).await.0,
            com::RESET_CONNECTION => {
                let (flow, error) = self.single(&payload).await;
                if error.is_none() {
                    self.statements.clear();
                }
                flow
            }
            com::CHANGE_USER => self.change_user(&payload).await,
            other => {
                self.send_error(&ClientError::UnknownCommand(other)).await;
                Flow::Continue
            }
        }
    }

    /// Asks policy about a statement and records the decision.
    fn decide(&mut self, sql: &str) -> Decision {
        let mut decision = self.gateway.policy.check_session_statement(
            self.policy_state.as_mut(),
            &self.session.identity,
            &self.target.name,
            Dialect::Mysql,
            sql,
        );
        if decision.action != Action::Deny && self.reads_diagnostics(sql) {
            decision = Decision {
                action: Action::Deny,
                reason: "the server's warnings and diagnostics are not available while column \
                         masking rules apply to you on this target"
                    .into(),
                ..decision
            };
        } else if decision.action != Action::Deny
            && let Some(database) = self.foreign_database(&decision)
        {
            decision = Decision {
                action: Action::Deny,
                reason: format!(
                    "target \"{}\" is confined to database \"{}\"; \"{database}\" is not one it lists",
                    self.target.name,
                    self.target.upstream_database()
                ),
                ..decision
            };
        }
        let recorded = self.recorded_text(sql);
        warden_core::operation::log_statement_decision(
            &self.session.id,
            "mysql",
            &decision,
            &recorded,
        );
        self.recording.record(EventKind::Decision {
            text: recorded,
            operation: decision.operation,
            action: decision.action,
            rule: decision.rule.clone(),
            tables: decision.tables.clone(),
            reason: decision.reason.clone(),
        });
        decision
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
        decision.tables.iter().find_map(|table| {
            let (database, _) = table.rsplit_once('.')?;
            (!self.target.allows_database(database)).then(|| database.to_string())
        })
    }

    /// An upstream error's message as the recording keeps it: as the client
    /// saw it (withheld or detector-masked) when masking applies.
    fn recorded_error(&self, error: &crate::packets::ErrInfo) -> String {
        match self.masker.as_deref() {
            Some(masker) if masker.has_column_rules() && crate::relay::quotes_data(error.code) => {
                crate::relay::WITHHELD_MESSAGE.to_string()
            }
            Some(masker) => warden_core::masking::recorded_text(Some(masker), &error.message),
            None => error.message.clone(),
        }
    }

    fn recorded_text(&self, sql: &str) -> String {
        if self.gateway.config.recording.capture_statements {
            warden_core::masking::recorded_text(self.masker.as_deref(), sql)
        } else {
            String::new()
        }
    }

    fn count_statement(&mut self) {
        self.count += 1;
        Metrics::add(&self.gateway.metrics.statements, 1);
    }

    /// Holds a statement until a reviewer decides. MySQL has no notices: the
    /// client simply waits for its result.
    async fn review(
        &mut self,
        sql: &str,
        hash: String,
        decision: &Decision,
    ) -> Result<(), ClientError> {
        use warden_core::reviews::{ReviewOutcome, ReviewRequest};
        let reviews = &self.gateway.reviews;
        if reviews.session_approved(&self.session.id, &hash).await {
            return Ok(());
        }
        let timeout = warden_core::reviews::review_timeout(&self.gateway.config, decision);
        let ticket = reviews
            .submit(ReviewRequest::statement(
                &self.session.id,
                &self.target.name,
                &self.session.identity,
                sql,
                hash,
                decision,
            ))
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot open a review");
                ClientError::ReviewRefused(
                    "this statement needs a human review, and Warden cannot open one right now"
                        .into(),
                )
            })?;
        let record = |action: &str, actor: &str, comment: Option<&str>| {
            self.recording.record(EventKind::Review {
                review_id: ticket.id.clone(),
                action: action.to_string(),
                actor: actor.to_string(),
                comment: comment.map(str::to_string),
            });
        };
        record("requested", &self.session.identity.display_name(), None);
        tracing::info!(session = %self.session.id, review = %ticket.id, "mysql statement held for review");
        match reviews.wait(&ticket.id, timeout).await {
            ReviewOutcome::Approved { approvers, comment } => {
                record("approved", &approvers.join(","), comment.as_deref());
                Ok(())
            }
            ReviewOutcome::Denied { reviewer, comment } => {
                record("denied", &reviewer, comment.as_deref());
                Err(ClientError::ReviewRefused(format!(
                    "review {} denied this statement (reviewer {reviewer}){}",
                    ticket.id,
                    comment.map(|c| format!(": {c}")).unwrap_or_default()
                )))
            }
            ReviewOutcome::TimedOut => {
                record("timed_out", "-", None);
                Err(ClientError::ReviewInterrupted(format!(
                    "review {} was not decided in time; the statement did not run",
                    ticket.id
                )))
            }
            ReviewOutcome::Cancelled { reason } => {
                record("cancelled", "-", Some(&reason));
                Err(ClientError::ReviewInterrupted(format!(
                    "review {} was cancelled: {reason}",
                    ticket.id
                )))
            }
        }
    }

    /// Answers a statement its review did not release; the session goes on.
    async fn refuse_reviewed(
        &mut self,
        sql: &str,
        protocol: StatementProtocol,
        error: ClientError,
    ) -> Flow {
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
        self.send_error(&error).await;
        Flow::Continue
    }

    /// Refuses a statement policy did not allow; the session goes on.
    async fn deny(&mut self, decision: &Decision, sql: &str, protocol: StatementProtocol) -> Flow {
        Metrics::add(&self.gateway.metrics.statements_denied, 1);
        let error = denial(decision, &self.target.name);
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
        self.send_error(&error).await;
        Flow::Continue
    }

    fn record(&self, sql: &str, protocol: StatementProtocol, started: Instant, outcome: &Outcome) {
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
    async fn relay_failed(&mut self, error: RelayError) -> Flow {
        match &error {
            RelayError::Client(_) => {}
            RelayError::Upstream(_) | RelayError::Protocol(_) | RelayError::LexingState(_) => {
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

    async fn query(&mut self, payload: Bytes) -> Flow {
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
        let decision = self.decide(&sql);
        if decision.action == Action::Review {
            let hash = warden_core::reviews::statement_hash(&sql, &[]);
            if let Err(error) = self.review(&sql, hash, &decision).await {
                return self
                    .refuse_reviewed(&sql, StatementProtocol::Simple, error)
                    .await;
            }
        } else if !decision.is_allowed() {
            return self.deny(&decision, &sql, StatementProtocol::Simple).await;
        }
        let started = Instant::now();
        let mut relay = self.relay();
        relay.local_infile = crate::local_infile::requested_file(&sql);
        let result = match relay.send_command(&payload).await {
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
    async fn kill_own(&mut self, sql: &str, kill: &Kill, upstream_thread: u32) -> Flow {
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
        let rewritten = kill.upstream_sql(upstream_thread);
        let mut payload = vec![com::QUERY];
        payload.extend_from_slice(rewritten.as_bytes());
        let started = Instant::now();
        let mut relay = self.relay();
        let result = match relay.send_command(&payload).await {
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

    async fn prepare(&mut self, payload: Bytes) -> Flow {
        let sql = warden_core::lexing::statement_text(&payload[1..]).to_string();
        let decision = self.decide(&sql);
        let reviewed = decision.action == Action::Review;
        if !decision.is_allowed() && !reviewed {
            self.count_statement();
            return self
                .deny(&decision, &sql, StatementProtocol::Extended)
                .await;
        }
        let started = Instant::now();
        let mut relay = self.relay();
        let result = match relay.send_command(&payload).await {
            Ok(()) => relay.prepare().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(Ok(prepared)) => {
                if reviewed {
                    // Held at each execute, when its parameters are known.
                    self.reviewed
                        .insert(prepared.statement_id, decision.clone());
                } else {
                    self.reviewed.remove(&prepared.statement_id);
                }
                if !self.statements.insert(prepared.statement_id, &sql) {
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

    async fn execute(&mut self, payload: Bytes) -> Flow {
        let id = statement_id(&payload).unwrap_or_default();
        let Some(sql) = self.statements.get(id) else {
            self.send_error(&ClientError::UnknownStatement(id, "mysqld_stmt_execute"))
                .await;
            return Flow::Continue;
        };
        self.count_statement();
        if let Some(decision) = self.reviewed.get(&id).cloned() {
            let parameters = [Some(payload.get(5..).unwrap_or_default().to_vec())];
            let hash = warden_core::reviews::statement_hash(&sql, &parameters);
            if let Err(error) = self.review(&sql, hash, &decision).await {
                return self
                    .refuse_reviewed(&sql, StatementProtocol::Extended, error)
                    .await;
            }
        }
        let started = Instant::now();
        let mut relay = self.relay_rows(true);
        let result = match relay.send_command(&payload).await {
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

    async fn fetch(&mut self, payload: Bytes) -> Flow {
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
    async fn forward_only(&mut self, payload: &[u8]) -> Flow {
        match self.relay().send_command(payload).await {
            Ok(()) => Flow::Continue,
            Err(error) => self.relay_failed(error).await,
        }
    }

    /// Commands answered with one packet.
    async fn single(&mut self, payload: &[u8]) -> (Flow, Option<ErrInfo>) {
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
    async fn init_db(&mut self, payload: Bytes) -> Flow {
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
        let decision = self.decide(&sql);
        if !decision.is_allowed() {
            return self.deny(&decision, &sql, StatementProtocol::Simple).await;
        }
        self.single(&payload).await.0
    }

    /// COM_FIELD_LIST reads a table's columns: judged as `SHOW COLUMNS FROM t`.
    async fn field_list(&mut self, payload: Bytes) -> Flow {
        let rest = &payload[1..];
        let table = rest.split(|&b| b == 0).next().unwrap_or_default();
        let table = String::from_utf8_lossy(table);
        let sql = format!("SHOW COLUMNS FROM `{}`", table.replace('`', "``"));
        let decision = self.decide(&sql);
        if !decision.is_allowed() {
            return self.deny(&decision, &sql, StatementProtocol::Simple).await;
        }
        let mut relay = self.relay();
        let result = match relay.send_command(&payload).await {
            Ok(()) => relay.field_list().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(_) => Flow::Continue,
            Err(error) => self.relay_failed(error).await,
        }
    }
}

/// The error a denied statement gets: 1227 for admin operations, else 1142.
fn denial(decision: &Decision, target: &str) -> ClientError {
    let message = match decision.action {
        Action::Review => format!(
            "Warden policy \"{}\" requires a review for {} statements on target \"{target}\", and reviews are not available over MySQL in this build",
            decision.rule_name(),
            decision.operation
        ),
        Action::Allow | Action::Deny => format!(
            "Warden policy \"{}\" denies this {} statement on target \"{target}\": {}",
            decision.rule_name(),
            decision.operation,
            decision.reason
        ),
    };
    if decision.operation == Operation::Admin {
        ClientError::AdminDenied(message)
    } else {
        ClientError::StatementDenied(message)
    }
}
