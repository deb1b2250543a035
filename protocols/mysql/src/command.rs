//! The command phase: one client command at a time, judged by policy where
//! it carries SQL (`judge`), relayed upstream, its response relayed back and
//! recorded (`run`).

use crate::codec::{CodecError, PacketStream};
use crate::errors::ClientError;
use crate::relay::{MaskingRelay, Relay};
use crate::statements::{Statements, statement_id};
use crate::stream::BoxStream;
use crate::threads::Threads;
use crate::upstream::Upstream;
use bytes::Bytes;
use mysql_common::constants::CapabilityFlags as Caps;
use warden_core::Gateway;
use warden_core::admission::AdmittedSession;
use warden_core::config::TargetConfig;
use warden_core::engines::SessionRecording;
use warden_core::events::{EventKind, SessionInfo};
use warden_core::metrics::Metrics;
use warden_core::request::Dialect;

mod change_user;
mod judge;
mod run;

/// What the command phase keeps from the connection phase.
pub struct Connection<'a> {
    /// Warden's thread ids, for `KILL` of the caller's own sessions.
    pub threads: &'a Threads,
    /// Checks access keys sent with `mysql_native_password` (COM_CHANGE_USER).
    pub native: Option<&'a dyn crate::auth::NativePasswordVerifier>,
    /// The greeting's nonce, which a COM_CHANGE_USER answer is scrambled with.
    pub scramble: [u8; crate::handshake::SCRAMBLE_LEN],
    pub collation: u8,
    /// Views of the target's database that read ruled tables.
    pub derived: std::sync::Arc<[warden_core::request::DerivedRelation]>,
    /// Views of the target's database that call stored functions.
    pub view_functions: std::sync::Arc<[warden_core::request::ViewFunction]>,
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
    /// Masking plans of open cursors, by statement id.
    cursor_plans: std::collections::HashMap<u32, crate::masking::RowPlan>,
    /// Under column rules, the tables the current statement reads when one of
    /// them may be covered: a result column that is not a direct column of
    /// one of them (an expression, a UNION, a derived table or CTE) is
    /// masked whole. `None` otherwise.
    covered_reads: Option<Vec<String>>,
    /// A statement that read a covered table mentioned a user variable, so
    /// covered values may sit in one: from now on every column that is not
    /// a direct column of a read table is masked whole.
    values_in_variables: bool,
    /// The identity may only read here: the upstream session is kept in
    /// `SET SESSION TRANSACTION READ ONLY`, also after a reset.
    read_only: bool,
    /// The policy engine's per-session state (SQL-level PREPARE texts, the
    /// server's version for executable comments, saved lexing variables).
    policy_state: Box<dyn std::any::Any + Send>,
}

impl<'a> CommandLoop<'a> {
    pub fn new(
        gateway: &'a Gateway,
        admitted: &'a AdmittedSession,
        connection: Connection<'a>,
        client: PacketStream<BoxStream>,
        upstream: Upstream,
        client_caps: Caps,
    ) -> Self {
        let session = admitted.info();
        let target = admitted.grant().target();
        let recording = admitted.recording().as_ref();
        let mut policy_state = gateway.policy.new_session_state(Dialect::Mysql);
        gateway
            .policy
            .set_session_server(policy_state.as_mut(), &upstream.server_version);
        gateway
            .policy
            .set_session_relations(policy_state.as_mut(), &connection.derived);
        gateway
            .policy
            .set_session_view_functions(policy_state.as_mut(), &connection.view_functions);
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
            covered_reads: None,
            values_in_variables: false,
            read_only: admitted.grant().read_only(),
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

    /// After COM_RESET_CONNECTION the server's session is new: Warden's
    /// statement map is emptied and the read-only wall goes back up (the
    /// session ends if it cannot).
    pub(super) async fn after_reset(&mut self) -> Flow {
        self.statements.clear();
        if !self.read_only {
            return Flow::Continue;
        }
        match self.upstream.raise_read_only_wall().await {
            Ok(()) => Flow::Continue,
            Err(error) => {
                tracing::warn!(session = %self.session.id, %error, "cannot restore the read-only transaction mode");
                Flow::End(format!(
                    "upstream: cannot restore the read-only transaction mode after a reset: {error}"
                ))
            }
        }
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
                covered_reads: self.covered_reads.as_deref(),
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
                match (flow, error) {
                    (Flow::Continue, None) => self.after_reset().await,
                    (flow, _) => flow,
                }
            }
            com::CHANGE_USER => self.change_user(&payload).await,
            other => {
                self.send_error(&ClientError::UnknownCommand(other)).await;
                Flow::Continue
            }
        }
    }
}
