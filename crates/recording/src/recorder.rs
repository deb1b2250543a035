//! [`LocalRecorder`]: the gateway's `Recorder` writing to a local directory.

use crate::error::RecordingError;
use crate::line::{Note, Recorded};
use crate::reader::{check_session_id, recording_path};
use crate::writer::{self, Msg, QueueSender, Slot};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use time::OffsetDateTime;
use warden_core::engines::{Recorder, SessionRecording, StoreError};
use warden_core::events::{EventKind, SessionInfo, SessionSummary};

/// How many events may wait for the writer, over all sessions, before new
/// ones are dropped (and counted in a `dropped` line). The writer keeps up
/// with far more than the relay produces; this only bounds memory when the
/// disk stalls.
pub const DEFAULT_QUEUE_LIMIT: usize = 1 << 20;

/// Writes each session to `{dir}/{session_id}.ndjson`.
///
/// `record` and `finish` only append to a queue: one writer thread per
/// recorder serializes, writes, flushes (at least every 200 ms) and closes
/// the files, and fsyncs each one when its session finishes. Call
/// [`LocalRecorder::flush_all`] at shutdown (and in tests) to wait until
/// everything recorded so far is on disk.
pub struct LocalRecorder {
    dir: PathBuf,
    tx: QueueSender,
    next_slot: AtomicU64,
    pending: Arc<AtomicUsize>,
    queue_limit: usize,
}

impl std::fmt::Debug for LocalRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRecorder")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LocalRecorder {
    /// Creates `dir` if needed and starts the writer thread.
    pub fn new(dir: PathBuf) -> Result<LocalRecorder, RecordingError> {
        Self::with_queue_limit(dir, DEFAULT_QUEUE_LIMIT)
    }

    /// Like [`LocalRecorder::new`] with a different bound on waiting events.
    pub fn with_queue_limit(
        dir: PathBuf,
        queue_limit: usize,
    ) -> Result<LocalRecorder, RecordingError> {
        std::fs::create_dir_all(&dir).map_err(|source| RecordingError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let pending = Arc::new(AtomicUsize::new(0));
        let tx = writer::spawn(pending.clone()).map_err(RecordingError::SpawnWriter)?;
        Ok(LocalRecorder {
            dir,
            tx,
            next_slot: AtomicU64::new(0),
            pending,
            queue_limit,
        })
    }

    /// The directory recordings are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens a session's recording (the typed form of `Recorder::open`).
    pub fn open_session(&self, session: &SessionInfo) -> Result<LocalRecording, RecordingError> {
        check_session_id(&session.id)?;
        let path = recording_path(&self.dir, &session.id);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| RecordingError::Create { path, source })?;
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        self.tx.send(
            Msg::Open {
                slot,
                session_id: session.id.clone(),
                started_at: session.started_at,
                file,
            },
            true,
        );
        Ok(LocalRecording {
            slot,
            tx: self.tx.clone(),
            pending: self.pending.clone(),
            queue_limit: self.queue_limit,
            dropped: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        })
    }

    /// Waits until every event recorded before the call is written, flushed
    /// and fsynced, and every finished recording is closed.
    pub async fn flush_all(&self) {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.tx.send(Msg::Barrier(reply), true);
        let _ = done.await;
    }
}

impl Recorder for LocalRecorder {
    fn open(&self, session: &SessionInfo) -> Result<Box<dyn SessionRecording>, StoreError> {
        self.open_session(session)
            .map(|r| Box::new(r) as Box<dyn SessionRecording>)
            .map_err(|e| StoreError::new(e.to_string()))
    }
}

/// One session's recording. Dropping it without `finish` closes the file
/// without an `end` line (the reader then shows the session as cut short).
pub struct LocalRecording {
    slot: Slot,
    tx: QueueSender,
    pending: Arc<AtomicUsize>,
    queue_limit: usize,
    /// Events dropped since the last `dropped` line.
    dropped: AtomicU64,
    finished: AtomicBool,
}

impl LocalRecording {
    /// Sends one line to the writer; `force` ignores the queue limit.
    fn send(&self, event: Recorded, last: bool, force: bool) -> bool {
        let waiting = self.pending.fetch_add(1, Ordering::Relaxed);
        if !force && waiting >= self.queue_limit {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.tx.send(
            Msg::Event {
                slot: self.slot,
                at: OffsetDateTime::now_utc(),
                event,
                last,
            },
            last,
        );
        true
    }

    /// Writes a `dropped` line for events lost since the last one.
    fn report_dropped(&self, force: bool) {
        let count = self.dropped.swap(0, Ordering::Relaxed);
        if count > 0 && !self.send(Recorded::Note(Note::Dropped { count }), false, force) {
            self.dropped.fetch_add(count, Ordering::Relaxed);
        }
    }
}

impl SessionRecording for LocalRecording {
    fn record(&self, event: EventKind) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        self.report_dropped(false);
        if !self.send(Recorded::Event(event), false, false) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn finish(&self, summary: &SessionSummary) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        self.report_dropped(true);
        let end = EventKind::End {
            bytes_from_client: summary.bytes_from_client,
            bytes_to_client: summary.bytes_to_client,
            statements: summary.statements,
            reason: summary.reason.clone(),
        };
        self.send(Recorded::Event(end), true, true);
    }
}

impl Drop for LocalRecording {
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::Relaxed) {
            self.report_dropped(true);
            self.tx.send(Msg::Close { slot: self.slot }, true);
        }
    }
}
