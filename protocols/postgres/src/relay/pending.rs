//! The requests the upstream has yet to answer, and what its answers mean
//! for them: statement outcomes for the recording, and the swap of a denial
//! marker's syntax error for Warden's own error.

use super::RelayContext;
use super::record::record_statement;
use crate::catalog;
use crate::errors::PgError;
use crate::frame::{self, CommandComplete, Frame, backend};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use warden_core::request::StatementProtocol;

/// A request the upstream has yet to answer, in the order it was sent.
pub(super) enum Pending {
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

/// What both directions share.
pub(super) struct Shared {
    pending: Mutex<VecDeque<Pending>>,
    pub statements: AtomicU64,
    /// Warden's own notices for the client, written by the upstream direction
    /// between messages.
    notices: Mutex<Vec<BytesMut>>,
    pub notice_ready: tokio::sync::Notify,
    /// Covered values were copied into session state (see
    /// [`Shared::taint`]): every computed column is masked whole from now on.
    tainted: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            pending: Mutex::new(VecDeque::new()),
            statements: AtomicU64::new(0),
            notices: Mutex::new(Vec::new()),
            notice_ready: tokio::sync::Notify::new(),
            tainted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A statement that read a covered table stored values in session
    /// state; what reads them back names no table.
    pub fn taint(&self) {
        self.tainted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn tainted(&self) -> bool {
        self.tainted.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn push_notice(&self, notice: BytesMut) {
        self.notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(notice);
        self.notice_ready.notify_one();
    }

    pub fn take_notices(&self) -> Vec<BytesMut> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn pending(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Tracks statement outcomes; returns a replacement for the upstream's answer
/// to a denial marker.
pub(super) fn track_upstream_frame(
    context: &RelayContext,
    shared: &Shared,
    tag: u8,
    body: &[u8],
) -> Option<BytesMut> {
    let mut pending = shared.pending();
    match tag {
        backend::COMMAND_COMPLETE => {
            let command_tag = CommandComplete::decode(body)
                .map(|complete| String::from_utf8_lossy(complete.tag).into_owned())
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
                    has_position: false,
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
