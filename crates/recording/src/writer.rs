//! The writer thread: owns every open session's journal, serializes events
//! and appends them, so the relay only pays for appending to a queue.
//!
//! One thread per [`crate::SpoolRecorder`] serves all its sessions. It
//! flushes buffered lines at least every [`FLUSH_EVERY`], closes a chunk at
//! `chunk_size` bytes or `chunk_interval`, and hands fsyncs and sealing to
//! the sealer thread ([`crate::sealer`]), so a slow disk never holds up
//! other sessions' events.

use crate::chunk::{journal_name, journal_prefix, seal_journal_record};
use crate::keys::RecordingKeys;
use crate::line::{At, Line, Recorded, offset_ms};
use crate::sealer::{SealJob, SealMsg};
use crate::spool::EndMeta;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use warden_core::events::EventKind;

/// The longest a written event waits in a buffer before it reaches the OS.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Lines buffered per session before they are written (one encrypted
/// journal record at most this big).
pub(crate) const BUFFER_BYTES: usize = 64 * 1024;

/// How long queued events may wait before the writer picks them up. The relay
/// does not wake the writer for ordinary events (a futex wake per statement
/// costs more than the statement's relaying): the writer collects them in
/// batches at this pace, or sooner when [`WAKE_AT`] events are waiting.
const COLLECT_EVERY: Duration = Duration::from_millis(20);

/// Queue length at which a sender wakes the writer early.
const WAKE_AT: usize = 4096;

/// The `end` reason of a recording dropped without `finish`.
pub const DROPPED_REASON: &str =
    "interrupted: the relay dropped the recording before the session ended";
/// The `end` reason of sessions still open when the recorder stops.
pub const SHUTDOWN_REASON: &str = "interrupted: the recorder stopped before the session ended";

/// A many-producer queue the writer drains in batches.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    items: Vec<Msg>,
    senders: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sending side; the writer ends once every sender is dropped.
pub(crate) struct QueueSender {
    queue: Arc<Queue>,
}

impl QueueSender {
    /// Queues a message. `urgent` wakes the writer now (opens, ends, barriers).
    pub(crate) fn send(&self, msg: Msg, urgent: bool) {
        let len = {
            let mut state = self.queue.lock();
            state.items.push(msg);
            state.items.len()
        };
        if urgent || len == WAKE_AT {
            self.queue.wake.notify_one();
        }
    }
}

impl Clone for QueueSender {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        QueueSender {
            queue: self.queue.clone(),
        }
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.queue.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.queue.wake.notify_one();
        }
    }
}

/// Takes every queued message, waiting up to `timeout` (forever when `None`)
/// for one. `None` when every sender is gone and nothing is left.
fn take_batch(queue: &Queue, timeout: Option<Duration>) -> Option<Vec<Msg>> {
    let mut state = queue.lock();
    if state.items.is_empty() && state.senders > 0 {
        state = match timeout {
            Some(timeout) => {
                queue
                    .wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
            None => queue
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
    }
    if state.items.is_empty() && state.senders == 0 {
        return None;
    }
    Some(std::mem::take(&mut state.items))
}

/// Identifies a session inside one writer (cheaper than its id text).
pub(crate) type Slot = u64;

// Events are nearly every message; boxing them costs an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// A session opened: its spool dir exists and `journal` (chunk 1) is
    /// created with its prefix written.
    Open {
        slot: Slot,
        session_id: String,
        started_at: OffsetDateTime,
        dir: PathBuf,
        journal: File,
    },
    /// One event. `last` seals the session after it (the `end` event).
    Event {
        slot: Slot,
        at: OffsetDateTime,
        event: Recorded,
        last: bool,
    },
    /// The recording was dropped without `finish`: seal it as interrupted.
    Close { slot: Slot },
    /// Reply once everything sent before is written, fsynced and sealed.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// How the writer cuts chunks.
#[derive(Clone, Debug)]
pub(crate) struct Chunking {
    pub chunk_size: u64,
    pub chunk_interval: Duration,
    pub fsync_interval: Duration,
}

struct OpenSession {
    session_id: String,
    started_at: OffsetDateTime,
    dir: PathBuf,
    index: u32,
    /// `None` once a write failed.
    file: Option<File>,
    /// Whole lines not written yet.
    buf: Vec<u8>,
    /// Bytes of lines in the open chunk.
    chunk_bytes: u64,
    chunk_opened: Instant,
    next_seq: u64,
    /// Written since the last fsync.
    unsynced: bool,
}

struct Writer {
    sessions: HashMap<Slot, OpenSession>,
    keys: RecordingKeys,
    chunking: Chunking,
    sealer: Sender<SealMsg>,
    pending: Arc<AtomicUsize>,
    spool_failed: Arc<AtomicBool>,
    scratch: Vec<u8>,
}

impl Writer {
    fn write_event(&mut self, slot: Slot, at: OffsetDateTime, event: &Recorded) {
        let Some(session) = self.sessions.get_mut(&slot) else {
            return;
        };
        self.scratch.clear();
        let line = Line {
            v: crate::FORMAT_VERSION,
            seq: session.next_seq,
            at: At(at),
            offset_ms: offset_ms(session.started_at, at),
            event,
        };
        session.next_seq += 1;
        if let Err(e) = serde_json::to_writer(&mut self.scratch, &line) {
            tracing::error!(session_id = %session.session_id, "cannot serialize an event: {e}");
            return;
        }
        self.scratch.push(b'\n');
        session.buf.extend_from_slice(&self.scratch);
        session.chunk_bytes += self.scratch.len() as u64;
        if session.buf.len() >= BUFFER_BYTES {
            flush(session, &self.keys, &self.spool_failed);
        }
        if session.chunk_bytes >= self.chunking.chunk_size {
            self.rotate(slot, None);
        }
    }

    /// Closes the open chunk and hands it to the sealer; `end` seals the
    /// session too and forgets it.
    fn rotate(&mut self, slot: Slot, end: Option<EndMeta>) {
        let Some(session) = self.sessions.get_mut(&slot) else {
            return;
        };
        flush(session, &self.keys, &self.spool_failed);
        session.file = None;
        let last = end.is_some();
        let _ = self.sealer.send(SealMsg::Seal(SealJob {
            session_id: session.session_id.clone(),
            dir: session.dir.clone(),
            index: session.index,
            end,
        }));
        if last {
            self.sessions.remove(&slot);
            return;
        }
        session.index += 1;
        session.chunk_bytes = 0;
        session.chunk_opened = Instant::now();
        session.unsynced = false;
        let path = session.dir.join(journal_name(session.index));
        match create_journal(&path, self.keys.has_encryption()) {
            Ok(file) => session.file = Some(file),
            Err(e) => fail(session, &self.spool_failed, "create the next chunk of", &e),
        }
    }

    /// Writes an `end` event and seals the session as interrupted.
    fn close_interrupted(&mut self, slot: Slot, reason: &str) {
        let end = Recorded::Event(EventKind::End {
            bytes_from_client: 0,
            bytes_to_client: 0,
            statements: 0,
            reason: reason.to_string(),
        });
        self.write_event(slot, OffsetDateTime::now_utc(), &end);
        self.rotate(
            slot,
            Some(EndMeta {
                reason: reason.to_string(),
                interrupted: true,
            }),
        );
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Open {
                slot,
                session_id,
                started_at,
                dir,
                journal,
            } => {
                self.sessions.insert(
                    slot,
                    OpenSession {
                        session_id,
                        started_at,
                        dir,
                        index: 1,
                        file: Some(journal),
                        buf: Vec::new(),
                        chunk_bytes: 0,
                        chunk_opened: Instant::now(),
                        next_seq: 0,
                        unsynced: true,
                    },
                );
            }
            Msg::Event {
                slot,
                at,
                event,
                last,
            } => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                self.write_event(slot, at, &event);
                if last {
                    let reason = match &event {
                        Recorded::Event(EventKind::End { reason, .. }) => reason.clone(),
                        _ => String::new(),
                    };
                    self.rotate(
                        slot,
                        Some(EndMeta {
                            reason,
                            interrupted: false,
                        }),
                    );
                }
            }
            Msg::Close { slot } => self.close_interrupted(slot, DROPPED_REASON),
            Msg::Barrier(reply) => {
                self.flush_all();
                self.sync_all(true);
                // The sealer answers after the fsyncs and seals queued before.
                if let Err(std::sync::mpsc::SendError(SealMsg::Barrier(reply))) =
                    self.sealer.send(SealMsg::Barrier(reply))
                {
                    let _ = reply.send(());
                }
            }
        }
    }

    fn flush_all(&mut self) {
        for session in self.sessions.values_mut() {
            flush(session, &self.keys, &self.spool_failed);
        }
    }

    /// Hands a handle of every journal written since its last fsync to the
    /// sealer thread to fsync.
    fn sync_all(&mut self, force: bool) {
        for session in self.sessions.values_mut() {
            if !(session.unsynced || force) {
                continue;
            }
            if let Some(file) = &session.file {
                match file.try_clone() {
                    Ok(clone) => {
                        let _ = self.sealer.send(SealMsg::Sync(clone));
                    }
                    Err(e) => tracing::warn!(
                        session_id = %session.session_id,
                        "cannot fsync the recording journal: {e}"
                    ),
                }
            }
            session.unsynced = false;
        }
    }

    /// Closes chunks open longer than `chunk_interval` (and not empty).
    fn rotate_old(&mut self) {
        let due: Vec<Slot> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.chunk_bytes > 0 && s.chunk_opened.elapsed() >= self.chunking.chunk_interval
            })
            .map(|(slot, _)| *slot)
            .collect();
        for slot in due {
            self.rotate(slot, None);
        }
    }
}

/// Creates a journal file with its prefix.
pub(crate) fn create_journal(path: &std::path::Path, encrypted: bool) -> std::io::Result<File> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(&journal_prefix(encrypted))?;
    Ok(file)
}

/// Writes a session's buffered lines (as one encrypted record when a key
/// is configured).
fn flush(session: &mut OpenSession, keys: &RecordingKeys, spool_failed: &AtomicBool) {
    if session.buf.is_empty() {
        return;
    }
    let Some(file) = &mut session.file else {
        session.buf.clear();
        return;
    };
    let written = match keys.cipher() {
        Some(cipher) => {
            seal_journal_record(cipher, &session.session_id, session.index, &session.buf)
                .map_err(std::io::Error::other)
                .and_then(|record| file.write_all(&record))
        }
        None => file.write_all(&session.buf),
    };
    session.buf.clear();
    session.unsynced = true;
    if let Err(e) = written {
        fail(session, spool_failed, "write", &e);
    }
}

fn fail(session: &mut OpenSession, spool_failed: &AtomicBool, doing: &str, error: &std::io::Error) {
    if session.file.is_some() || doing != "write" {
        tracing::error!(
            session_id = %session.session_id,
            "cannot {doing} the session recording in the spool: {error}; later events of this session are lost"
        );
    }
    session.file = None;
    spool_failed.store(true, Ordering::Relaxed);
}

/// What the writer thread needs besides its queue.
pub(crate) struct WriterParts {
    pub keys: RecordingKeys,
    pub chunking: Chunking,
    pub sealer: Sender<SealMsg>,
    pub pending: Arc<AtomicUsize>,
    pub spool_failed: Arc<AtomicBool>,
}

/// Starts the writer thread; it ends when every sender is gone.
pub(crate) fn spawn(parts: WriterParts) -> Result<QueueSender, std::io::Error> {
    let queue = Arc::new(Queue {
        state: Mutex::new(QueueState {
            items: Vec::new(),
            senders: 1,
        }),
        wake: Condvar::new(),
    });
    let writer = Writer {
        sessions: HashMap::new(),
        keys: parts.keys,
        chunking: parts.chunking,
        sealer: parts.sealer,
        pending: parts.pending,
        spool_failed: parts.spool_failed,
        scratch: Vec::with_capacity(4096),
    };
    let writer_queue = queue.clone();
    std::thread::Builder::new()
        .name("warden-recorder".into())
        .spawn(move || write_loop(&writer_queue, writer))?;
    Ok(QueueSender { queue })
}

fn write_loop(queue: &Queue, mut writer: Writer) {
    let mut next_flush = Instant::now() + FLUSH_EVERY;
    let mut next_sync = Instant::now() + writer.chunking.fsync_interval;
    loop {
        // With sessions open, collect at COLLECT_EVERY; idle, sleep until woken.
        let timeout = (!writer.sessions.is_empty()).then_some(COLLECT_EVERY);
        let Some(batch) = take_batch(queue, timeout) else {
            break;
        };
        for msg in batch {
            writer.handle(msg);
        }
        let now = Instant::now();
        if now >= next_flush {
            writer.flush_all();
            writer.rotate_old();
            next_flush = now + FLUSH_EVERY;
        }
        if now >= next_sync {
            writer.flush_all();
            writer.sync_all(false);
            next_sync = now + writer.chunking.fsync_interval;
        }
    }
    // Every sender is gone: seal what is still open.
    let slots: Vec<Slot> = writer.sessions.keys().copied().collect();
    for slot in slots {
        writer.close_interrupted(slot, SHUTDOWN_REASON);
    }
}
