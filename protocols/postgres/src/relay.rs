//! The relay: forwards bytes between client and upstream, looking inside only
//! the messages policy and recording need.
//!
//! Both directions run as two futures in one task (no cross-thread wake-ups),
//! each reading into a buffer, scanning frame headers and writing everything
//! it read in one call — never one write per DataRow. Large frames that need
//! no inspection (DataRow, CopyData) stream through without being buffered whole.
//!
//! A denied statement is not answered by Warden directly: its text is replaced
//! by a marker that fails to parse upstream, and the upstream's syntax error is
//! swapped for Warden's `42501` on the way back. The server thus aborts the
//! transaction and skips to Sync exactly as it would for its own permission
//! error, and responses stay in order even when the client pipelines.

use crate::catalog::{self, Catalog};
use crate::client_stream::{ReadHalfAny, WriteHalfAny};
use crate::errors::{PgError, sqlstate};
use crate::frame::{self, backend, frontend, peek_header, read_cstr};
use crate::masking::{self as wire_masking, MaskCounts, RowPlan};
use bytes::{Buf, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_core::engines::{Dialect, SessionEnd, SessionRecording};
use warden_core::events::{EventKind, StatementProtocol};
use warden_core::masking::{ColumnSource, SessionMasker};
use warden_core::{Decision, Gateway, Identity, Operation};

/// Size of each direction's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// Per-session inputs of the relay.
pub struct RelayContext {
    pub gateway: Arc<Gateway>,
    pub identity: Identity,
    pub target: String,
    pub recording: Arc<dyn SessionRecording>,
    pub max_message: usize,
    /// The session's masking rules; `None` when none apply (results pass undecoded).
    pub masker: Option<Arc<dyn SessionMasker>>,
    /// Column names for column rules; set when the masker has column rules.
    pub catalog: Option<Arc<Catalog>>,
    /// Ends the session from outside (its credential's lease ended).
    pub session_end: Arc<SessionEnd>,
    /// Record result rows (`[recording] capture_results`).
    pub capture_results: bool,
    /// The session's id (reviews are bound to it).
    pub session_id: String,
    /// Woken by the client's cancel request: withdraws a held statement's review.
    pub cancel_hold: Arc<tokio::sync::Notify>,
    /// Record rows as the upstream sent them, before masking (`capture_raw`;
    /// allowed only with an encrypted recording).
    pub capture_raw: bool,
}

/// How the relay ended.
#[derive(Debug, Default)]
pub struct RelayOutcome {
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
    pub reason: String,
}

/// A request the upstream has yet to answer, in the order it was sent.
enum Pending {
    /// A simple Query; answered by zero or more CommandCompletes and one ReadyForQuery.
    Simple {
        text: Arc<str>,
        started: Instant,
        tags: Vec<String>,
        error: Option<frame::ErrorFields>,
        /// The relations it reads, when the session has column rules.
        tables: Option<Arc<[String]>>,
    },
    /// An Execute; answered by CommandComplete, EmptyQueryResponse, PortalSuspended or an error.
    Execute {
        text: Arc<str>,
        started: Instant,
        tables: Option<Arc<[String]>>,
    },
    /// A statement Warden refused; the upstream answers its marker with a syntax error.
    Denied {
        nonce: String,
        error: PgError,
        text: Arc<str>,
        started: Instant,
        /// Simple queries and function calls end with their own ReadyForQuery.
        standalone: bool,
    },
    /// A Sync; answered by ReadyForQuery.
    Sync,
    /// The client's Describe (with masking on); answered by RowDescription or NoData.
    ClientDescribe,
    /// A Describe of the portal Warden sends before each Execute when masking
    /// is on, so it knows the result's columns and formats; its answer is not forwarded.
    WardenDescribe,
}

struct Shared {
    pending: Mutex<VecDeque<Pending>>,
    statements: AtomicU64,
    /// Warden's own notices for the client, written by the upstream direction
    /// between messages.
    notices: Mutex<Vec<BytesMut>>,
    notice_ready: tokio::sync::Notify,
}

impl Shared {
    fn push_notice(&self, notice: BytesMut) {
        self.notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(notice);
        self.notice_ready.notify_one();
    }

    fn take_notices(&self) -> Vec<BytesMut> {
        std::mem::take(
            &mut *self
                .notices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why one direction stopped.
enum Stop {
    ClientClosed,
    ClientTerminated,
    UpstreamClosed,
    Shutdown,
    Ended(String),
    Fatal(String),
    Io(String),
}

/// Runs the relay until either side closes, a fatal protocol error, or shutdown.
pub async fn relay(
    context: &RelayContext,
    mut client_read: ReadHalfAny,
    mut client_write: WriteHalfAny,
    mut upstream_read: ReadHalfAny,
    mut upstream_write: WriteHalfAny,
    leftover_from_client: BytesMut,
) -> RelayOutcome {
    let shared = Shared {
        pending: Mutex::new(VecDeque::new()),
        statements: AtomicU64::new(0),
        notices: Mutex::new(Vec::new()),
        notice_ready: tokio::sync::Notify::new(),
    };
    let from_client = AtomicU64::new(0);
    let to_client = AtomicU64::new(0);
    let client_direction = client_to_upstream(
        context,
        &shared,
        &mut client_read,
        &mut upstream_write,
        leftover_from_client,
        &from_client,
    );
    let stop = {
        let upstream_direction = upstream_to_client(
            context,
            &shared,
            &mut upstream_read,
            &mut client_write,
            &to_client,
        );
        tokio::select! {
            stop = client_direction => stop,
            stop = upstream_direction => stop,
        }
    };
    let reason = match stop {
        Stop::ClientClosed => "client closed the connection".to_string(),
        Stop::ClientTerminated => "client ended the session".to_string(),
        Stop::UpstreamClosed => "upstream closed the connection".to_string(),
        Stop::Shutdown => "closed by Warden shutdown".to_string(),
        Stop::Ended(reason) => reason,
        Stop::Fatal(message) => {
            let _ = client_write
                .write_all(&PgError::fatal(sqlstate::PROTOCOL_VIOLATION, &message).encode())
                .await;
            format!("protocol error: {message}")
        }
        Stop::Io(message) => format!("connection error: {message}"),
    };
    let _ = client_write.shutdown().await;
    let _ = upstream_write.shutdown().await;
    RelayOutcome {
        bytes_from_client: from_client.load(Ordering::Relaxed),
        bytes_to_client: to_client.load(Ordering::Relaxed),
        statements: shared.statements.load(Ordering::Relaxed),
        reason,
    }
}

/// Frames the client direction inspects in full; everything else streams.
fn client_frame_needs_inspection(tag: u8, masking: bool) -> bool {
    matches!(
        tag,
        frontend::QUERY
            | frontend::PARSE
            | frontend::BIND
            | frontend::EXECUTE
            | frontend::SYNC
            | frontend::FUNCTION_CALL
            | frontend::TERMINATE
            | frontend::CLOSE
    ) || (masking && tag == frontend::DESCRIBE)
}

/// Client → upstream. This direction never writes to the client: only the
/// upstream direction does, so responses keep their order.
async fn client_to_upstream(
    context: &RelayContext,
    shared: &Shared,
    client: &mut ReadHalfAny,
    upstream: &mut WriteHalfAny,
    mut buf: BytesMut,
    from_client: &AtomicU64,
) -> Stop {
    let metrics = &context.gateway.metrics;
    let mut state = ClientState {
        passthrough: 0,
        needed: 0,
        statements: HashMap::new(),
        portals: HashMap::new(),
        statement_tables: HashMap::new(),
        portal_tables: HashMap::new(),
        terminated: false,
        policy_state: context.gateway.policy.new_session_state(Dialect::Postgres),
        reviewed_statements: HashMap::new(),
        reviewed_portals: HashMap::new(),
        bind_decisions: HashMap::new(),
        hold: None,
        release: None,
    };
    buf.reserve(READ_BUFFER);
    loop {
        if !buf.is_empty() || state.passthrough > 0 {
            match scan_client_frames(context, shared, &mut state, &mut buf) {
                Ok(Some(out)) => {
                    if !out.is_empty()
                        && let Err(error) = upstream.write_all(&out).await
                    {
                        return Stop::Io(format!("writing to upstream: {error}"));
                    }
                    if state.terminated {
                        return Stop::ClientTerminated;
                    }
                }
                Ok(None) => {}
                Err(message) => return Stop::Fatal(message),
            }
            if let Some(request) = state.hold.take() {
                let notices = |notice: BytesMut| shared.push_notice(notice);
                match crate::hold::hold(context, &notices, client, &mut buf, from_client, request)
                    .await
                {
                    Ok(release) => state.release = Some(release),
                    Err(crate::hold::HoldStop::ClientClosed) => return Stop::ClientClosed,
                }
                // Scan the held frame again, now with the review's outcome.
                continue;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER.max(state.needed.saturating_sub(buf.len())));
        }
        match client.read_buf(&mut buf).await {
            Ok(0) => return Stop::ClientClosed,
            Ok(n) => {
                from_client.fetch_add(n as u64, Ordering::Relaxed);
                metrics
                    .bytes_from_clients
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(error) => return Stop::Io(format!("reading from client: {error}")),
        }
    }
}

struct ClientState {
    /// Bytes of a streaming frame still to forward untouched.
    passthrough: usize,
    /// Bytes needed in the buffer before the next frame can be inspected.
    needed: usize,
    /// Prepared statement name → text (for recording Executes).
    statements: HashMap<String, Arc<str>>,
    /// Portal name → statement text.
    portals: HashMap<String, Arc<str>>,
    /// Relations each prepared statement and portal reads (kept only when
    /// the session has column rules).
    statement_tables: HashMap<String, Arc<[String]>>,
    portal_tables: HashMap<String, Arc<[String]>>,
    terminated: bool,
    /// The policy engine's per-session state (SQL-level PREPARE texts).
    policy_state: Box<dyn std::any::Any + Send>,
    /// Prepared statements whose policy decision is `review`: held at Execute.
    reviewed_statements: HashMap<String, Decision>,
    /// Portals of such statements, with the hash of text and parameters.
    reviewed_portals: HashMap<String, (Decision, String)>,
    /// Decisions for binding named prepared statements, from the policy
    /// state (whose namespace SQL `PREPARE` shares). Emptied by every simple
    /// Query, Parse and Close, any of which may redefine a name.
    bind_decisions: HashMap<String, Decision>,
    /// Set when the frame at the front of the buffer must wait for a review.
    hold: Option<crate::hold::HoldRequest>,
    /// A review's outcome for that frame, applied when it is scanned again.
    release: Option<crate::hold::Release>,
}

/// What the review gate says about a statement.
enum Gate {
    Proceed(Decision),
    Hold,
    Refuse(PgError),
}

/// Statements whose decision is `review` run only once a review released them.
fn review_gate(state: &mut ClientState, text: &Arc<str>, hash: String, decision: Decision) -> Gate {
    if decision.action != warden_core::Action::Review {
        return Gate::Proceed(decision);
    }
    match state.release.take() {
        Some(crate::hold::Release::Approved(approved)) if approved == hash => {
            Gate::Proceed(Decision {
                action: warden_core::Action::Allow,
                ..decision
            })
        }
        Some(crate::hold::Release::Refused(error)) => Gate::Refuse(error),
        _ => {
            state.hold = Some(crate::hold::HoldRequest {
                text: text.clone(),
                hash,
                decision,
            });
            Gate::Hold
        }
    }
}

/// Scans complete frames at the front of `buf`, applying policy. Returns the
/// bytes to forward (None when nothing is ready yet), or a fatal error.
fn scan_client_frames(
    context: &RelayContext,
    shared: &Shared,
    state: &mut ClientState,
    buf: &mut BytesMut,
) -> Result<Option<BytesMut>, String> {
    let mut pos = 0;
    let mut copied_up_to = 0;
    let mut rewritten: Option<BytesMut> = None;
    state.needed = 0;
    while pos < buf.len() {
        if state.passthrough > 0 {
            let take = state.passthrough.min(buf.len() - pos);
            pos += take;
            state.passthrough -= take;
            continue;
        }
        let Some((tag, len)) = peek_header(&buf[pos..]).map_err(|e| e.to_string())? else {
            break;
        };
        if len > context.max_message {
            return Err(format!(
                "message of {len} bytes exceeds the limit of {} bytes",
                context.max_message
            ));
        }
        if !client_frame_needs_inspection(tag, context.masker.is_some()) {
            let take = len.min(buf.len() - pos);
            pos += take;
            state.passthrough = len - take;
            continue;
        }
        if buf.len() - pos < len {
            state.needed = len;
            break;
        }
        let body = &buf[pos + frame::HEADER_LEN..pos + len];
        let replacement = inspect_client_frame(context, shared, state, tag, body)?;
        if state.hold.is_some() {
            // This frame waits for its review; what came before goes now.
            break;
        }
        if let Some(replacement) = replacement {
            let out = rewritten.get_or_insert_with(BytesMut::new);
            out.extend_from_slice(&buf[copied_up_to..pos]);
            out.extend_from_slice(&replacement);
            copied_up_to = pos + len;
        }
        pos += len;
        if state.terminated {
            break;
        }
    }
    if pos == 0 {
        return Ok(None);
    }
    let out = match rewritten {
        Some(mut out) => {
            out.extend_from_slice(&buf[copied_up_to..pos]);
            buf.advance(pos);
            out
        }
        None => buf.split_to(pos),
    };
    Ok(Some(out))
}

/// Looks at one complete client frame. Returns a replacement frame when the
/// statement is denied.
fn inspect_client_frame(
    context: &RelayContext,
    shared: &Shared,
    state: &mut ClientState,
    tag: u8,
    body: &[u8],
) -> Result<Option<BytesMut>, String> {
    match tag {
        frontend::QUERY => {
            let mut pos = 0;
            let text = read_cstr(body, &mut pos).ok_or("malformed Query message")?;
            let text = statement_text(text);
            // It may PREPARE or DEALLOCATE names that Bind refers to.
            state.bind_decisions.clear();
            let decision = decide(context, state, &text);
            let started = Instant::now();
            let hash = warden_core::reviews::statement_hash(&text, &[]);
            let decision = match review_gate(state, &text, hash, decision) {
                Gate::Proceed(decision) => decision,
                Gate::Hold => return Ok(None),
                Gate::Refuse(error) => {
                    shared.statements.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(deny_with(shared, error, text, started, None)));
                }
            };
            shared.statements.fetch_add(1, Ordering::Relaxed);
            if decision.is_allowed() {
                let tables = column_rule_tables(context, &decision.tables);
                shared.pending().push_back(Pending::Simple {
                    text,
                    started,
                    tags: Vec::new(),
                    error: None,
                    tables,
                });
                Ok(None)
            } else {
                Ok(Some(deny(shared, &decision, text, started, None)))
            }
        }
        frontend::PARSE => {
            let mut pos = 0;
            let name = read_cstr(body, &mut pos).ok_or("malformed Parse message")?;
            let text = read_cstr(body, &mut pos).ok_or("malformed Parse message")?;
            let name = String::from_utf8_lossy(name).into_owned();
            let text = statement_text(text);
            let decision = decide(context, state, &text);
            state.statements.insert(name.clone(), text.clone());
            state.reviewed_statements.remove(&name);
            state.bind_decisions.clear();
            match column_rule_tables(context, &decision.tables) {
                Some(tables) => state.statement_tables.insert(name.clone(), tables),
                None => state.statement_tables.remove(&name),
            };
            if !name.is_empty() {
                // SQL `EXECUTE name` runs this text from now on.
                let prepared = (decision.action != warden_core::Action::Deny).then_some(&*text);
                context.gateway.policy.session_prepared(
                    state.policy_state.as_mut(),
                    &name,
                    prepared,
                );
            }
            if decision.action == warden_core::Action::Review {
                // Prepared now, held at Execute when its parameters are known.
                state.reviewed_statements.insert(name, decision);
                Ok(None)
            } else if decision.is_allowed() {
                Ok(None)
            } else {
                shared.statements.fetch_add(1, Ordering::Relaxed);
                Ok(Some(deny(
                    shared,
                    &decision,
                    text,
                    Instant::now(),
                    Some(&name),
                )))
            }
        }
        frontend::BIND => {
            let mut pos = 0;
            let portal = read_cstr(body, &mut pos).ok_or("malformed Bind message")?;
            let statement = read_cstr(body, &mut pos).ok_or("malformed Bind message")?;
            let text = state
                .statements
                .get(&*String::from_utf8_lossy(statement))
                .cloned()
                .unwrap_or_else(|| Arc::from("(unknown prepared statement)"));
            let portal = String::from_utf8_lossy(portal).into_owned();
            state.reviewed_portals.remove(&portal);
            if !statement.is_empty() {
                // A named statement may have been prepared by SQL PREPARE:
                // judge what the name holds now.
                let name = String::from_utf8_lossy(statement).into_owned();
                match bind_decision(context, state, &name) {
                    Some(BindVerdict::Allow) => {
                        state.reviewed_statements.remove(&name);
                    }
                    Some(BindVerdict::Review(decision)) => {
                        state.reviewed_statements.insert(name, decision);
                    }
                    Some(BindVerdict::Deny(decision)) => {
                        shared.statements.fetch_add(1, Ordering::Relaxed);
                        let marker = format!("warden_refused_{}", new_nonce());
                        return Ok(Some(deny(
                            shared,
                            &decision,
                            text,
                            Instant::now(),
                            Some(&marker),
                        )));
                    }
                    None => {
                        shared.statements.fetch_add(1, Ordering::Relaxed);
                        let marker = format!("warden_refused_{}", new_nonce());
                        let error = PgError::error(
                            sqlstate::INSUFFICIENT_PRIVILEGE,
                            format!("prepared statement \"{name}\" is not known to Warden"),
                        );
                        return Ok(Some(deny_with(
                            shared,
                            error,
                            text,
                            Instant::now(),
                            Some(&marker),
                        )));
                    }
                }
            }
            let statement_name = String::from_utf8_lossy(statement);
            let tables = state
                .statement_tables
                .get(&*statement_name)
                .cloned()
                .or_else(|| {
                    let decision = state.bind_decisions.get(&*statement_name)?;
                    column_rule_tables(context, &decision.tables)
                });
            match tables {
                Some(tables) => state.portal_tables.insert(portal.clone(), tables),
                None => state.portal_tables.remove(&portal),
            };
            if let Some(decision) = state
                .reviewed_statements
                .get(&*String::from_utf8_lossy(statement))
                && let Some((_, _, parameters)) = crate::hold::bind_parameters(body)
            {
                let hash = warden_core::reviews::statement_hash(&text, &parameters);
                state
                    .reviewed_portals
                    .insert(portal.clone(), (decision.clone(), hash));
            }
            state.portals.insert(portal, text);
            Ok(None)
        }
        frontend::EXECUTE => {
            let mut pos = 0;
            let portal = read_cstr(body, &mut pos).ok_or("malformed Execute message")?;
            let text = state
                .portals
                .get(&*String::from_utf8_lossy(portal))
                .cloned()
                .unwrap_or_else(|| Arc::from("(unknown portal)"));
            let portal_name = String::from_utf8_lossy(portal).into_owned();
            if let Some((decision, hash)) = state.reviewed_portals.get(&portal_name).cloned() {
                match review_gate(state, &text, hash, decision) {
                    Gate::Proceed(_) => {
                        state.reviewed_portals.remove(&portal_name);
                    }
                    Gate::Hold => return Ok(None),
                    Gate::Refuse(error) => {
                        shared.statements.fetch_add(1, Ordering::Relaxed);
                        // A Parse that fails in the server's parser stands in for the Execute.
                        let name = format!("warden_refused_{}", new_nonce());
                        return Ok(Some(deny_with(
                            shared,
                            error,
                            text,
                            Instant::now(),
                            Some(&name),
                        )));
                    }
                }
            }
            shared.statements.fetch_add(1, Ordering::Relaxed);
            let tables = state.portal_tables.get(&portal_name).cloned();
            let mut pending = shared.pending();
            if context.masker.is_some() {
                // Learn this result's columns and formats first.
                pending.push_back(Pending::WardenDescribe);
                pending.push_back(Pending::Execute {
                    text,
                    started: Instant::now(),
                    tables,
                });
                let mut describe_body = vec![b'P'];
                describe_body.extend_from_slice(portal);
                describe_body.push(0);
                let mut out = BytesMut::new();
                frame::put_message(&mut out, frontend::DESCRIBE, &describe_body);
                frame::put_message(&mut out, frontend::EXECUTE, body);
                return Ok(Some(out));
            }
            pending.push_back(Pending::Execute {
                text,
                started: Instant::now(),
                tables,
            });
            Ok(None)
        }
        frontend::DESCRIBE => {
            shared.pending().push_back(Pending::ClientDescribe);
            Ok(None)
        }
        frontend::SYNC => {
            shared.pending().push_back(Pending::Sync);
            Ok(None)
        }
        frontend::FUNCTION_CALL => function_call(context, shared, state, body),
        frontend::CLOSE => {
            if let [b'S', rest @ ..] = body {
                let mut pos = 0;
                let name = read_cstr(rest, &mut pos).ok_or("malformed Close message")?;
                let name = String::from_utf8_lossy(name).into_owned();
                state.bind_decisions.clear();
                state.reviewed_statements.remove(&name);
                if !name.is_empty() {
                    context.gateway.policy.session_prepared(
                        state.policy_state.as_mut(),
                        &name,
                        None,
                    );
                }
            }
            Ok(None)
        }
        frontend::TERMINATE => {
            state.terminated = true;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// A fast-path call, judged as `SELECT pg_catalog.name()` (see `fastpath`).
/// With masking rules it is refused: its result is no column a rule covers.
fn function_call(
    context: &RelayContext,
    shared: &Shared,
    state: &mut ClientState,
    body: &[u8],
) -> Result<Option<BytesMut>, String> {
    let started = Instant::now();
    let refusal = match crate::fastpath::called_function(body) {
        Ok(_) if context.masker.is_some() => {
            "fast-path function calls are not available while masking rules apply to you".into()
        }
        Err(reason) => reason,
        Ok(name) => {
            let text: Arc<str> = Arc::from(format!("SELECT pg_catalog.{name}()"));
            let hash = warden_core::reviews::statement_hash(&text, &[Some(body.to_vec())]);
            let decision = decide(context, state, &text);
            let gate = review_gate(state, &text, hash, decision);
            if !matches!(gate, Gate::Hold) {
                shared.statements.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(match gate {
                Gate::Hold => None,
                Gate::Refuse(error) => Some(deny_with(shared, error, text, started, None)),
                Gate::Proceed(decision) if !decision.is_allowed() => {
                    Some(deny(shared, &decision, text, started, None))
                }
                Gate::Proceed(_) => {
                    shared.pending().push_back(Pending::Simple {
                        text,
                        started,
                        tags: Vec::new(),
                        error: None,
                        tables: None,
                    });
                    None
                }
            });
        }
    };
    shared.statements.fetch_add(1, Ordering::Relaxed);
    context
        .gateway
        .metrics
        .statements_denied
        .fetch_add(1, Ordering::Relaxed);
    let error = PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, refusal)
        .with_hint("Call the function with a SELECT statement instead.");
    let text: Arc<str> = Arc::from("(fast-path function call)");
    Ok(Some(deny_with(shared, error, text, started, None)))
}

/// Queues a refused statement and returns the marker that replaces it: a
/// Query for a simple query, a Parse of statement `parse_name` otherwise.
fn deny(
    shared: &Shared,
    decision: &Decision,
    text: Arc<str>,
    started: Instant,
    parse_name: Option<&str>,
) -> BytesMut {
    deny_with(shared, denial_error(decision), text, started, parse_name)
}

/// Like [`deny`], answering with `error`.
fn deny_with(
    shared: &Shared,
    error: PgError,
    text: Arc<str>,
    started: Instant,
    parse_name: Option<&str>,
) -> BytesMut {
    let nonce = new_nonce();
    let marker = marker_sql(&nonce);
    let replacement = match parse_name {
        Some(name) => parse_message(name, &marker),
        None => query_message(&marker),
    };
    shared.pending().push_back(Pending::Denied {
        nonce,
        error,
        text,
        started,
        standalone: parse_name.is_none(),
    });
    replacement
}

/// Statement text as policy sees it. Text that is not UTF-8 cannot be parsed
/// the way the server would, so it is given a form that classifies as unknown.
fn statement_text(bytes: &[u8]) -> Arc<str> {
    Arc::from(warden_core::lexing::statement_text(bytes))
}

fn decide(context: &RelayContext, state: &mut ClientState, text: &str) -> Decision {
    let gateway = &context.gateway;
    let decision = gateway.policy.check_session_statement(
        state.policy_state.as_mut(),
        &context.identity,
        &context.target,
        Dialect::Postgres,
        text,
    );
    gateway.metrics.statements.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(target_name = %context.target, statement = %text, action = %decision.action, operation = %decision.operation, "statement decided");
    if decision.operation == Operation::Ddl && context.catalog.is_some() {
        catalog::invalidate(&context.target);
    }
    if !decision.is_allowed() {
        gateway
            .metrics
            .statements_denied
            .fetch_add(1, Ordering::Relaxed);
    }
    let recorded = warden_core::masking::recorded_text(context.masker.as_deref(), text);
    warden_core::operation::log_statement_decision(
        &context.session_id,
        "postgres",
        &decision,
        &recorded,
    );
    context.recording.record(EventKind::Decision {
        text: recorded,
        operation: decision.operation,
        action: decision.action,
        rule: decision.rule.clone(),
        tables: decision.tables.clone(),
        reason: decision.reason.clone(),
    });
    decision
}

/// What policy says about binding a named prepared statement.
enum BindVerdict {
    Allow,
    Review(Decision),
    Deny(Decision),
}

/// The verdict for binding the statement prepared under `name`; its decision
/// is cached in `bind_decisions` until a message that may redefine names.
/// `None` when the session state knows no such statement.
fn bind_decision(
    context: &RelayContext,
    state: &mut ClientState,
    name: &str,
) -> Option<BindVerdict> {
    if !state.bind_decisions.contains_key(name) {
        let decision = context.gateway.policy.check_prepared(
            state.policy_state.as_mut(),
            &context.identity,
            &context.target,
            name,
        )?;
        state.bind_decisions.insert(name.to_string(), decision);
    }
    let decision = state.bind_decisions.get(name)?;
    Some(match decision.action {
        warden_core::Action::Allow => BindVerdict::Allow,
        warden_core::Action::Review => BindVerdict::Review(decision.clone()),
        warden_core::Action::Deny => BindVerdict::Deny(decision.clone()),
    })
}

fn denial_error(decision: &Decision) -> PgError {
    PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, decision.reason.clone())
        .with_detail(format!(
            "Warden policy rule: {}; operation: {}",
            decision.rule_name(),
            decision.operation
        ))
        .with_hint("Ask an administrator to change the Warden policy if this access is needed.")
}

fn new_nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// SQL that the upstream refuses at parse time, naming the nonce in its error.
fn marker_sql(nonce: &str) -> String {
    format!("WARDEN_DENIED_{nonce}")
}

fn query_message(sql: &str) -> BytesMut {
    let mut body = Vec::with_capacity(sql.len() + 1);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    let mut out = BytesMut::new();
    frame::put_message(&mut out, frontend::QUERY, &body);
    out
}

fn parse_message(name: &str, sql: &str) -> BytesMut {
    let mut body = Vec::with_capacity(name.len() + sql.len() + 4);
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i16.to_be_bytes());
    let mut out = BytesMut::new();
    frame::put_message(&mut out, frontend::PARSE, &body);
    out
}

/// Frames the upstream direction inspects in full.
fn upstream_frame_needs_inspection(tag: u8, masking: bool, capture: bool) -> bool {
    if capture && matches!(tag, backend::ROW_DESCRIPTION | backend::DATA_ROW) {
        return true;
    }
    matches!(
        tag,
        backend::COMMAND_COMPLETE
            | backend::PARAMETER_STATUS
            | backend::ERROR_RESPONSE
            | backend::READY_FOR_QUERY
            | backend::EMPTY_QUERY
            | backend::PORTAL_SUSPENDED
    ) || (masking
        && matches!(
            tag,
            backend::ROW_DESCRIPTION
                | backend::NO_DATA
                | backend::DATA_ROW
                | backend::NOTICE_RESPONSE
                | backend::NOTIFICATION_RESPONSE
                | backend::COPY_OUT_RESPONSE
                | backend::COPY_BOTH_RESPONSE
                | backend::COPY_DATA
                | backend::COPY_DONE
        ))
}

/// The upstream direction's masking state.
#[derive(Default)]
struct MaskState {
    /// The current result's plan; `None` forwards rows undecoded.
    plan: Option<RowPlan>,
    /// Values masked in the current result.
    counts: MaskCounts,
    /// A COPY TO was refused: its data and completion are dropped.
    swallow_copy: bool,
    /// A result that could not be masked was refused: drop everything up to ReadyForQuery.
    refusing: bool,
    /// Tables whose column names could not be looked up (treated as covered).
    catalog_failed: std::collections::HashSet<u32>,
    /// The statement's views could not be looked up: computed columns are
    /// masked whole until the session ends.
    relations_failed: bool,
}

/// What to do with one inspected upstream frame.
enum Observed {
    Forward,
    Replace(BytesMut),
    /// Column names of these tables are needed before this frame can be handled.
    NeedCatalog(catalog::Need),
}

/// Upstream → client.
async fn upstream_to_client(
    context: &RelayContext,
    shared: &Shared,
    upstream: &mut ReadHalfAny,
    client: &mut WriteHalfAny,
    to_client: &AtomicU64,
) -> Stop {
    let metrics = &context.gateway.metrics;
    let terminate = context.gateway.shutdown.terminate.clone();
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut passthrough = 0usize;
    let mut needed = 0usize;
    let mut mask_state = MaskState::default();
    let mut capture = context
        .capture_results
        .then(crate::capture::Capture::default);
    loop {
        if !buf.is_empty() || passthrough > 0 {
            let scanned = scan_upstream_frames(
                context,
                shared,
                &mut mask_state,
                capture.as_mut(),
                &mut buf,
                &mut passthrough,
                &mut needed,
            );
            let (out, need_catalog) = match scanned {
                Ok(scanned) => scanned,
                Err(message) => return Stop::Fatal(message),
            };
            if let Some(out) = out {
                let n = out.len() as u64;
                if let Err(error) = client.write_all(&out).await {
                    return Stop::Io(format!("writing to client: {error}"));
                }
                to_client.fetch_add(n, Ordering::Relaxed);
                metrics.bytes_to_clients.fetch_add(n, Ordering::Relaxed);
            }
            if let Some(need) = need_catalog {
                if let Some(catalog) = &context.catalog {
                    match need {
                        catalog::Need::Tables(oids) => {
                            if let Err(error) = catalog.load(&oids).await {
                                tracing::warn!(target = %context.target, %error, "cannot look up result columns; masking them whole");
                                mask_state.catalog_failed.extend(oids);
                            }
                        }
                        catalog::Need::Relations(names) => {
                            if let Err(error) = catalog.load_relations(&names).await {
                                tracing::warn!(target = %context.target, %error, "cannot look up the statement's views; masking its computed columns whole");
                                mask_state.relations_failed = true;
                            }
                        }
                    }
                }
                continue;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER.max(needed.saturating_sub(buf.len())));
        }
        let read = tokio::select! {
            biased;
            _ = terminate.cancelled() => {
                // Close at a message boundary with a clear error.
                if passthrough == 0 {
                    let error = PgError::fatal(
                        sqlstate::ADMIN_SHUTDOWN,
                        "terminating connection because Warden is shutting down",
                    );
                    let _ = client.write_all(&error.encode()).await;
                }
                return Stop::Shutdown;
            }
            _ = context.session_end.ended() => {
                let reason = context.session_end.reason();
                if passthrough == 0 {
                    let error = PgError::fatal(sqlstate::ADMIN_SHUTDOWN, reason.clone());
                    let _ = client.write_all(&error.encode()).await;
                }
                return Stop::Ended(reason);
            }
            _ = shared.notice_ready.notified(), if passthrough == 0 => {
                let mut out = BytesMut::new();
                for notice in shared.take_notices() {
                    out.extend_from_slice(&notice);
                }
                if let Err(error) = client.write_all(&out).await {
                    return Stop::Io(format!("writing to client: {error}"));
                }
                continue;
            }
            read = upstream.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                return Stop::UpstreamClosed;
            }
            Ok(_) => {}
            Err(error) => return Stop::Io(format!("reading from upstream: {error}")),
        }
    }
}

/// Scans complete frames; returns the bytes to send and, when a frame needs
/// catalog names first, the tables to look up (that frame stays in `buf`).
#[allow(clippy::type_complexity)]
fn scan_upstream_frames(
    context: &RelayContext,
    shared: &Shared,
    mask_state: &mut MaskState,
    mut capture: Option<&mut crate::capture::Capture>,
    buf: &mut BytesMut,
    passthrough: &mut usize,
    needed: &mut usize,
) -> Result<(Option<BytesMut>, Option<catalog::Need>), String> {
    let mut pos = 0;
    let mut copied_up_to = 0;
    let mut rewritten: Option<BytesMut> = None;
    let mut need_catalog = None;
    let masking = context.masker.is_some();
    *needed = 0;
    while pos < buf.len() {
        if *passthrough > 0 {
            let take = (*passthrough).min(buf.len() - pos);
            pos += take;
            *passthrough -= take;
            continue;
        }
        let Some((tag, len)) =
            peek_header(&buf[pos..]).map_err(|e| format!("upstream sent an {e}"))?
        else {
            break;
        };
        if !upstream_frame_needs_inspection(tag, masking, capture.is_some()) {
            let take = len.min(buf.len() - pos);
            pos += take;
            *passthrough = len - take;
            continue;
        }
        if buf.len() - pos < len {
            *needed = len;
            break;
        }
        let body = &buf[pos + frame::HEADER_LEN..pos + len];
        if tag == backend::PARAMETER_STATUS
            && let Some(refusal) = lexing_refusal(body)
        {
            // Some statement Warden allowed (a function, a procedure) changed
            // how the server lexes: end the session rather than judge later
            // statements under the wrong rules.
            tracing::warn!(target = %context.target, %refusal, "upstream entered an unsupported lexing state; ending the session");
            return Err(format!(
                "the session entered a state Warden cannot judge statements in: {refusal}"
            ));
        }
        if let Some(capture) = capture.as_deref_mut()
            && !matches!(tag, backend::ROW_DESCRIPTION | backend::DATA_ROW)
        {
            // A result ends: its rows are recorded before the statement's outcome.
            capture.observe(context.recording.as_ref(), tag, body, true);
        }
        let observed = observe_upstream_frame(context, shared, mask_state, tag, body);
        if let Some(capture) = capture
            .as_deref_mut()
            .filter(|_| matches!(tag, backend::ROW_DESCRIPTION | backend::DATA_ROW))
        {
            match &observed {
                Observed::Forward => capture.observe(context.recording.as_ref(), tag, body, true),
                Observed::Replace(frame) => {
                    let sent = frame.first() == Some(&tag);
                    let sent_body = frame.get(frame::HEADER_LEN..).unwrap_or_default();
                    // Column names come from the upstream's description even
                    // when Warden keeps it from the client (its own Describe).
                    let seen = if tag == backend::ROW_DESCRIPTION || context.capture_raw {
                        body
                    } else {
                        sent_body
                    };
                    capture.observe(context.recording.as_ref(), tag, seen, sent);
                }
                Observed::NeedCatalog(_) => {}
            }
        }
        match observed {
            Observed::Forward => {}
            Observed::Replace(replacement) => {
                let out = rewritten.get_or_insert_with(BytesMut::new);
                out.extend_from_slice(&buf[copied_up_to..pos]);
                out.extend_from_slice(&replacement);
                copied_up_to = pos + len;
            }
            Observed::NeedCatalog(need) => {
                need_catalog = Some(need);
                break;
            }
        }
        pos += len;
    }
    if pos == 0 {
        return Ok((None, need_catalog));
    }
    let out = match rewritten {
        Some(mut out) => {
            out.extend_from_slice(&buf[copied_up_to..pos]);
            buf.advance(pos);
            out
        }
        None => buf.split_to(pos),
    };
    Ok((Some(out), need_catalog))
}

/// True when the session has column rules and the statement reads a table
/// they may cover: its result columns without a source the server names
/// (expressions, UNION outputs) could carry a covered value.
/// The statement's relations, kept for its result when the session has
/// column rules.
fn column_rule_tables(context: &RelayContext, tables: &[String]) -> Option<Arc<[String]>> {
    context
        .masker
        .as_deref()
        .filter(|m| m.has_column_rules())
        .map(|_| Arc::from(tables))
}

fn derives_covered(context: &RelayContext, tables: &[String]) -> bool {
    let Some(masker) = context.masker.as_deref().filter(|m| m.has_column_rules()) else {
        return false;
    };
    tables.iter().any(|table| match table.rsplit_once('.') {
        Some((schema, name)) => masker.table_has_column_rules(Some(schema), name),
        None => masker.table_has_column_rules(None, table),
    })
}

/// A ParameterStatus that reports a lexing state Warden does not model.
fn lexing_refusal(body: &[u8]) -> Option<String> {
    let mut pos = 0;
    let name = read_cstr(body, &mut pos)?;
    let value = read_cstr(body, &mut pos)?;
    warden_core::lexing::pg_setting_refusal(
        &String::from_utf8_lossy(name),
        &String::from_utf8_lossy(value),
    )
}

/// Masking's part of an upstream frame; `None` leaves the frame to the
/// statement bookkeeping of [`track_upstream_frame`].
fn mask_upstream_frame(
    context: &RelayContext,
    shared: &Shared,
    masker: &dyn SessionMasker,
    state: &mut MaskState,
    tag: u8,
    body: &[u8],
) -> Option<Observed> {
    match tag {
        backend::ROW_DESCRIPTION => {
            // Does the statement read a table column rules may cover? Then
            // a column without a source (an expression) is masked whole.
            let tables = {
                let pending = shared.pending();
                match (pending.front(), pending.get(1)) {
                    (Some(Pending::Simple { tables, .. }), _) => tables.clone(),
                    (Some(Pending::WardenDescribe), Some(Pending::Execute { tables, .. })) => {
                        tables.clone()
                    }
                    _ => None,
                }
            };
            let warden_describe = {
                let mut pending = shared.pending();
                match pending.front() {
                    Some(Pending::WardenDescribe) => true,
                    Some(Pending::ClientDescribe) => {
                        pending.pop_front();
                        return Some(if state.refusing {
                            Observed::Replace(BytesMut::new())
                        } else {
                            Observed::Forward
                        });
                    }
                    _ => false,
                }
            };
            let Some(fields) = wire_masking::parse_row_description(body) else {
                return Some(Observed::Replace(
                    PgError::error(
                        sqlstate::PROTOCOL_VIOLATION,
                        "Warden could not read the result's column descriptions",
                    )
                    .encode(),
                ));
            };
            if let Some(catalog) = &context.catalog {
                let oids: Vec<u32> = fields.iter().map(|f| f.table_oid).collect();
                let missing: Vec<u32> = catalog
                    .missing(&oids)
                    .into_iter()
                    .filter(|oid| !state.catalog_failed.contains(oid))
                    .collect();
                if !missing.is_empty() {
                    return Some(Observed::NeedCatalog(catalog::Need::Tables(missing)));
                }
            }
            if warden_describe {
                shared.pending().pop_front();
            }
            let computed = fields.iter().any(|f| f.table_oid == 0);
            let names = match (&tables, &context.catalog) {
                (Some(tables), Some(catalog)) if computed && !state.relations_failed => {
                    let names = catalog::relation_names(tables);
                    let missing = catalog.missing_relations(&names);
                    if !missing.is_empty() {
                        return Some(Observed::NeedCatalog(catalog::Need::Relations(missing)));
                    }
                    names
                }
                _ => Vec::new(),
            };
            // Computed columns of a statement that reads a table column rules
            // may cover, or a view that reads a covered column, or beside a
            // covered view column, may be functions of covered values.
            let derived = computed
                && (state.relations_failed
                    || tables
                        .as_deref()
                        .is_some_and(|t| derives_covered(context, t))
                    || context
                        .catalog
                        .as_ref()
                        .is_some_and(|catalog| catalog.relations_read_covered(&names, masker)));
            let derived = derived
                || context.catalog.as_ref().is_some_and(|catalog| {
                    fields.iter().any(|f| {
                        catalog.cached(f.table_oid, f.attnum).is_some_and(|s| {
                            !s.derived_from.is_empty() && masker.column_covered(&s)
                        })
                    })
                });
            let sources = |field: &wire_masking::FieldDescription| {
                if field.table_oid == 0 {
                    if derived {
                        return None;
                    }
                    return Some(ColumnSource {
                        label: field.name.clone(),
                        ..ColumnSource::default()
                    });
                }
                let catalog = context.catalog.as_ref()?;
                catalog
                    .cached(field.table_oid, field.attnum)
                    .map(|source| ColumnSource {
                        label: field.name.clone(),
                        ..source
                    })
            };
            state.plan = match RowPlan::build(masker, &fields, &sources) {
                Ok(plan) => plan,
                Err(unmaskable) => {
                    state.refusing = true;
                    return Some(Observed::Replace(unmaskable_error(&unmaskable.column)));
                }
            };
            Some(if warden_describe || state.refusing {
                Observed::Replace(BytesMut::new())
            } else {
                Observed::Forward
            })
        }
        backend::NO_DATA => {
            let mut pending = shared.pending();
            let forward = match pending.front() {
                Some(Pending::WardenDescribe) => false,
                Some(Pending::ClientDescribe) => !state.refusing,
                _ => !state.refusing,
            };
            if matches!(
                pending.front(),
                Some(Pending::WardenDescribe | Pending::ClientDescribe)
            ) {
                pending.pop_front();
            }
            state.plan = None;
            Some(if forward {
                Observed::Forward
            } else {
                Observed::Replace(BytesMut::new())
            })
        }
        backend::DATA_ROW => {
            if state.refusing {
                return Some(Observed::Replace(BytesMut::new()));
            }
            let plan = state.plan.as_ref()?;
            Some(
                match wire_masking::mask_data_row(masker, plan, body, &mut state.counts) {
                    Ok(Some(frame)) => Observed::Replace(frame),
                    Ok(None) => Observed::Forward,
                    Err(unmaskable) => {
                        state.refusing = true;
                        Observed::Replace(unmaskable_error(&unmaskable.column))
                    }
                },
            )
        }
        backend::NOTICE_RESPONSE => Some(
            wire_masking::mask_error_fields(masker, tag, body)
                .map_or(Observed::Forward, Observed::Replace),
        ),
        backend::NOTIFICATION_RESPONSE => Some(
            wire_masking::mask_notification(masker, body)
                .map_or(Observed::Forward, Observed::Replace),
        ),
        backend::COPY_OUT_RESPONSE | backend::COPY_BOTH_RESPONSE => {
            state.swallow_copy = true;
            Some(Observed::Replace(
                PgError::error(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "COPY TO is not available while masking rules apply to you on this target",
                )
                .with_hint("Use SELECT: its results are masked.")
                .encode(),
            ))
        }
        backend::COPY_DATA | backend::COPY_DONE if state.swallow_copy => {
            Some(Observed::Replace(BytesMut::new()))
        }
        _ => None,
    }
}

fn unmaskable_error(column: &str) -> BytesMut {
    PgError::error(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!("column \"{column}\" is masked and cannot be sent in binary format"),
    )
    .with_hint("Request the column in text format, or cast it to text.")
    .encode()
}

/// Records the masking counters of the result that just ended.
fn flush_mask_counts(context: &RelayContext, state: &mut MaskState) {
    state.plan = None;
    for ((column, detector), count) in state.counts.drain() {
        context.recording.record(EventKind::Masked {
            column: column.to_string(),
            detector: detector.to_string(),
            count,
        });
    }
}

/// Masking first, then statement bookkeeping.
fn observe_upstream_frame(
    context: &RelayContext,
    shared: &Shared,
    state: &mut MaskState,
    tag: u8,
    body: &[u8],
) -> Observed {
    let Some(masker) = context.masker.as_deref() else {
        return match track_upstream_frame(context, shared, tag, body) {
            Some(replacement) => Observed::Replace(replacement),
            None => Observed::Forward,
        };
    };
    if let Some(observed) = mask_upstream_frame(context, shared, masker, state, tag, body) {
        return observed;
    }
    if tag == backend::ERROR_RESPONSE
        && matches!(shared.pending().front(), Some(Pending::WardenDescribe))
    {
        // The Bind before our Describe failed: the error belongs to the Execute.
        shared.pending().pop_front();
    }
    let swallow = match tag {
        backend::COMMAND_COMPLETE | backend::PORTAL_SUSPENDED | backend::EMPTY_QUERY => {
            flush_mask_counts(context, state);
            let swallow = state.swallow_copy || state.refusing;
            state.swallow_copy = false;
            swallow
        }
        backend::ERROR_RESPONSE => {
            flush_mask_counts(context, state);
            state.swallow_copy = false;
            state.refusing
        }
        backend::READY_FOR_QUERY => {
            flush_mask_counts(context, state);
            state.swallow_copy = false;
            state.refusing = false;
            false
        }
        _ => false,
    };
    let replacement = track_upstream_frame(context, shared, tag, body);
    if swallow {
        return Observed::Replace(BytesMut::new());
    }
    if let Some(replacement) = replacement {
        return Observed::Replace(replacement);
    }
    if tag == backend::ERROR_RESPONSE
        && let Some(masked) = wire_masking::mask_error_fields(masker, tag, body)
    {
        return Observed::Replace(masked);
    }
    Observed::Forward
}

/// Tracks statement outcomes; returns a replacement for the upstream's answer
/// to a denial marker.
fn track_upstream_frame(
    context: &RelayContext,
    shared: &Shared,
    tag: u8,
    body: &[u8],
) -> Option<BytesMut> {
    let mut pending = shared.pending();
    match tag {
        backend::COMMAND_COMPLETE => {
            let mut pos = 0;
            let command_tag = read_cstr(body, &mut pos)
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default();
            if context.catalog.is_some()
                && ["ALTER ", "DROP ", "CREATE "]
                    .iter()
                    .any(|prefix| command_tag.starts_with(prefix))
            {
                catalog::invalidate(&context.target);
            }
            match pending.front_mut() {
                Some(Pending::Simple { tags, .. }) => tags.push(command_tag),
                Some(Pending::Execute { .. }) => {
                    if let Some(Pending::Execute { text, started, .. }) = pending.pop_front() {
                        record_statement(
                            context,
                            &text,
                            StatementProtocol::Extended,
                            started,
                            vec![command_tag],
                            None,
                        );
                    }
                }
                _ => {}
            }
            None
        }
        backend::EMPTY_QUERY | backend::PORTAL_SUSPENDED => {
            if matches!(pending.front(), Some(Pending::Execute { .. }))
                && let Some(Pending::Execute { text, started, .. }) = pending.pop_front()
            {
                let tag = if tag == backend::EMPTY_QUERY {
                    "EMPTY"
                } else {
                    "SUSPENDED"
                };
                record_statement(
                    context,
                    &text,
                    StatementProtocol::Extended,
                    started,
                    vec![tag.to_string()],
                    None,
                );
            }
            None
        }
        backend::ERROR_RESPONSE => {
            let fields = frame::parse_error_fields(body);
            // A denial marker's syntax error: swap in Warden's own error.
            if let Some(Pending::Denied { nonce, .. }) = pending.front()
                && fields.message.contains(nonce.as_str())
            {
                let Some(Pending::Denied {
                    error,
                    text,
                    started,
                    standalone,
                    ..
                }) = pending.pop_front()
                else {
                    return None;
                };
                let error_fields = frame::ErrorFields {
                    severity: "ERROR".into(),
                    code: error.code.to_string(),
                    message: error.message.clone(),
                };
                record_statement(
                    context,
                    &text,
                    if standalone {
                        StatementProtocol::Simple
                    } else {
                        StatementProtocol::Extended
                    },
                    started,
                    Vec::new(),
                    Some(error_fields),
                );
                if standalone {
                    // Its ReadyForQuery still follows: keep a stand-in so it is matched.
                    pending.push_front(Pending::Sync);
                } else {
                    skip_until_sync(&mut pending);
                }
                return Some(error.encode());
            }
            match pending.front_mut() {
                Some(Pending::Simple { error, .. }) => *error = Some(fields),
                Some(Pending::Execute { .. }) => {
                    if let Some(Pending::Execute { text, started, .. }) = pending.pop_front() {
                        record_statement(
                            context,
                            &text,
                            StatementProtocol::Extended,
                            started,
                            Vec::new(),
                            Some(fields),
                        );
                    }
                    skip_until_sync(&mut pending);
                }
                Some(Pending::Denied {
                    standalone: false, ..
                })
                | Some(Pending::ClientDescribe) => skip_until_sync(&mut pending),
                _ => {}
            }
            None
        }
        backend::READY_FOR_QUERY => {
            while let Some(entry) = pending.pop_front() {
                match entry {
                    Pending::Sync => break,
                    Pending::Simple {
                        text,
                        started,
                        tags,
                        error,
                        ..
                    } => {
                        record_statement(
                            context,
                            &text,
                            StatementProtocol::Simple,
                            started,
                            tags,
                            error,
                        );
                        break;
                    }
                    Pending::Denied {
                        standalone: true, ..
                    } => break,
                    // Executes the server skipped after an error never ran.
                    Pending::Execute { .. }
                    | Pending::Denied { .. }
                    | Pending::ClientDescribe
                    | Pending::WardenDescribe => {}
                }
            }
            None
        }
        _ => None,
    }
}

/// After an error in an extended-protocol batch the server skips to Sync.
fn skip_until_sync(pending: &mut VecDeque<Pending>) {
    while let Some(front) = pending.front() {
        match front {
            Pending::Sync | Pending::Simple { .. } => break,
            Pending::Denied {
                standalone: true, ..
            } => break,
            _ => {
                pending.pop_front();
            }
        }
    }
}

fn record_statement(
    context: &RelayContext,
    text: &str,
    protocol: StatementProtocol,
    started: Instant,
    tags: Vec<String>,
    error: Option<frame::ErrorFields>,
) {
    let rows = tags
        .iter()
        .filter_map(|tag| rows_from_tag(tag))
        .reduce(|a, b| a + b);
    let (error_code, error_message) = match error {
        Some(fields) => {
            let message = match context.masker.as_deref() {
                Some(masker) => {
                    wire_masking::recorded_error_message(masker, &fields.code, &fields.message)
                }
                None => fields.message,
            };
            (Some(fields.code), Some(message))
        }
        None => (None, None),
    };
    context.recording.record(EventKind::Statement {
        text: warden_core::masking::recorded_text(context.masker.as_deref(), text),
        protocol,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        tags,
        rows,
        error_code,
        error_message,
    });
}

/// Rows from a CommandComplete tag: `SELECT 5`, `INSERT 0 5`, `UPDATE 5`, `COPY 5` …
fn rows_from_tag(tag: &str) -> Option<u64> {
    let mut words = tag.split_ascii_whitespace();
    let command = words.next()?;
    match command {
        "SELECT" | "UPDATE" | "DELETE" | "COPY" | "FETCH" | "MOVE" | "MERGE" | "INSERT" => {
            words.last()?.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_from_tags() {
        assert_eq!(rows_from_tag("SELECT 5"), Some(5));
        assert_eq!(rows_from_tag("INSERT 0 7"), Some(7));
        assert_eq!(rows_from_tag("CREATE TABLE"), None);
        assert_eq!(rows_from_tag(""), None);
    }

    #[test]
    fn marker_messages_are_well_formed() {
        let q = query_message(&marker_sql("ab"));
        assert_eq!(peek_header(&q).unwrap(), Some((b'Q', q.len())));
        let p = parse_message("s1", &marker_sql("ab"));
        assert_eq!(peek_header(&p).unwrap(), Some((b'P', p.len())));
    }
}
