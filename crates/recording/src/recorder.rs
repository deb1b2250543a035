//! [`SpoolRecorder`]: the gateway's `Recorder`. Events go to a per-session
//! spool directory (journal → sealed chunks → manifest) and from there to
//! the sink (local directory or S3).

use crate::chunk::journal_name;
use crate::error::RecordingError;
use crate::keys::RecordingKeys;
use crate::line::{Note, Recorded};
use crate::reader::check_session_id;
use crate::sink::{LocalSink, Sink};
use crate::spool::{Recovered, SESSION_META, SessionMeta, recover_session};
use crate::uploader::{UploadSignal, spooled_sessions};
use crate::writer::{self, Chunking, Msg, QueueSender, Slot, WriterParts, create_journal};
use crate::{sealer, uploader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use warden_core::engines::{Recorder, SessionRecording, StoreError};
use warden_core::events::{EventKind, SessionInfo, SessionSummary};

/// How many events may wait for the writer, over all sessions, before new
/// ones are dropped (and counted in a `dropped` line). The writer keeps up
/// with far more than the relay produces; this only bounds memory when the
/// disk stalls.
pub const DEFAULT_QUEUE_LIMIT: usize = 1 << 20;

/// How long a spool free-space reading is reused by [`SpoolRecorder::check_spool`].
const SPACE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How a [`SpoolRecorder`] spools and cuts chunks.
#[derive(Clone, Debug)]
pub struct RecorderOptions {
    pub spool_dir: PathBuf,
    /// A chunk is closed at this many bytes of NDJSON…
    pub chunk_size: u64,
    /// …or when it has been open this long.
    pub chunk_interval: Duration,
    /// How often open chunks are fsync'd.
    pub fsync_interval: Duration,
    /// Events waiting for the writer (all sessions) before events are dropped.
    pub queue_limit: usize,
    /// New sessions are refused while the spool's filesystem has less free.
    pub min_free_bytes: u64,
    pub keys: RecordingKeys,
}

impl RecorderOptions {
    /// The defaults of `[recording]`: 8 MiB / 10 s chunks, fsync every second.
    pub fn new(spool_dir: PathBuf) -> RecorderOptions {
        RecorderOptions {
            spool_dir,
            chunk_size: 8 << 20,
            chunk_interval: Duration::from_secs(10),
            fsync_interval: Duration::from_secs(1),
            queue_limit: DEFAULT_QUEUE_LIMIT,
            min_free_bytes: 16 << 20,
            keys: RecordingKeys::default(),
        }
    }
}

/// Records sessions into the spool and uploads them to a sink.
///
/// `record` and `finish` only append to a queue. A writer thread serializes
/// events into each session's journal; a sealer thread fsyncs journals,
/// seals closed chunks and writes manifests; an uploader thread moves
/// sealed chunks and manifests to the sink, retrying forever. Creating one
/// first finishes what a previous process left in the spool.
pub struct SpoolRecorder {
    spool_dir: PathBuf,
    sink: Arc<dyn Sink>,
    tx: QueueSender,
    next_slot: AtomicU64,
    pending: Arc<AtomicUsize>,
    queue_limit: usize,
    min_free_bytes: u64,
    spool_failed: Arc<AtomicBool>,
    space: Mutex<Option<(Instant, u64)>>,
    signal: Arc<UploadSignal>,
    recovered: Vec<String>,
    keys_encrypt: bool,
}

/// The v0-compatible name.
pub type LocalRecorder = SpoolRecorder;

impl std::fmt::Debug for SpoolRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolRecorder")
            .field("spool_dir", &self.spool_dir)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl SpoolRecorder {
    /// A local sink in `dir` with its spool in `dir/.spool` and default
    /// options (the v0 constructor's signature).
    pub fn new(dir: PathBuf) -> Result<SpoolRecorder, RecordingError> {
        Self::with_queue_limit(dir, DEFAULT_QUEUE_LIMIT)
    }

    /// Like [`SpoolRecorder::new`] with a different bound on waiting events.
    pub fn with_queue_limit(
        dir: PathBuf,
        queue_limit: usize,
    ) -> Result<SpoolRecorder, RecordingError> {
        let mut options = RecorderOptions::new(local_spool_dir(&dir));
        options.queue_limit = queue_limit;
        Self::start(options, Arc::new(LocalSink::new(dir)))
    }

    /// Creates the spool, seals and queues for upload whatever an earlier
    /// process left in it, and starts the writer, sealer and uploader.
    pub fn start(
        options: RecorderOptions,
        sink: Arc<dyn Sink>,
    ) -> Result<SpoolRecorder, RecordingError> {
        let spool_dir = options.spool_dir.clone();
        std::fs::create_dir_all(&spool_dir).map_err(|source| RecordingError::CreateDir {
            path: spool_dir.clone(),
            source,
        })?;
        let recovered = recover_spool(&spool_dir, &options.keys);
        let signal = Arc::new(UploadSignal::default());
        let sealer = sealer::spawn(options.keys.clone(), signal.clone())
            .map_err(RecordingError::SpawnWriter)?;
        let pending = Arc::new(AtomicUsize::new(0));
        let spool_failed = Arc::new(AtomicBool::new(false));
        let tx = writer::spawn(WriterParts {
            keys: options.keys.clone(),
            chunking: Chunking {
                chunk_size: options.chunk_size.max(1),
                chunk_interval: options.chunk_interval,
                fsync_interval: options.fsync_interval,
            },
            sealer,
            pending: pending.clone(),
            spool_failed: spool_failed.clone(),
        })
        .map_err(RecordingError::SpawnWriter)?;
        uploader::spawn(spool_dir.clone(), sink.clone(), signal.clone())
            .map_err(RecordingError::SpawnWriter)?;
        Ok(SpoolRecorder {
            spool_dir,
            sink,
            tx,
            next_slot: AtomicU64::new(0),
            pending,
            queue_limit: options.queue_limit,
            min_free_bytes: options.min_free_bytes,
            spool_failed,
            space: Mutex::new(None),
            signal,
            recovered,
            keys_encrypt: options.keys.has_encryption(),
        })
    }

    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// The sessions found unsealed at start-up and sealed as interrupted.
    pub fn recovered(&self) -> &[String] {
        &self.recovered
    }

    /// Whether a new session can be recorded: the spool has
    /// `min_free_bytes` free and no write to it failed. Cheap: the free
    /// space is read at most once a second; after a failed write the spool
    /// is probed with a small file.
    pub fn check_spool(&self) -> Result<(), RecordingError> {
        if self.spool_failed.load(Ordering::Relaxed) {
            let probe = self.spool_dir.join(".probe");
            let written =
                std::fs::write(&probe, b"warden").and_then(|()| std::fs::remove_file(&probe));
            match written {
                Ok(()) => self.spool_failed.store(false, Ordering::Relaxed),
                Err(e) => {
                    return Err(RecordingError::SpoolUnwritable {
                        path: self.spool_dir.clone(),
                        message: e.to_string(),
                    });
                }
            }
        }
        let mut space = self
            .space
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let available = match *space {
            Some((at, available)) if at.elapsed() < SPACE_CHECK_EVERY => available,
            _ => {
                let stat = rustix::fs::statvfs(&self.spool_dir).map_err(|e| {
                    RecordingError::SpoolUnwritable {
                        path: self.spool_dir.clone(),
                        message: e.to_string(),
                    }
                })?;
                let available = stat.f_bavail.saturating_mul(stat.f_frsize);
                *space = Some((Instant::now(), available));
                available
            }
        };
        if available < self.min_free_bytes {
            return Err(RecordingError::SpoolFull {
                path: self.spool_dir.clone(),
                available,
                needed: self.min_free_bytes,
            });
        }
        Ok(())
    }

    /// Opens a session's recording (the typed form of `Recorder::open`).
    /// Fails when the spool is full or not writable: the gateway then
    /// refuses the session (`on_spool_full = "refuse"`).
    pub fn open_session(&self, session: &SessionInfo) -> Result<SpoolRecording, RecordingError> {
        check_session_id(&session.id)?;
        self.check_spool()?;
        let dir = self.spool_dir.join(&session.id);
        std::fs::create_dir(&dir).map_err(|source| {
            if source.kind() != std::io::ErrorKind::AlreadyExists {
                self.spool_failed.store(true, Ordering::Relaxed);
            }
            RecordingError::Create {
                path: dir.clone(),
                source,
            }
        })?;
        let journal = self.create_session_files(session, &dir).inspect_err(|_| {
            self.spool_failed.store(true, Ordering::Relaxed);
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        self.tx.send(
            Msg::Open {
                slot,
                session_id: session.id.clone(),
                started_at: session.started_at,
                dir,
                journal,
            },
            true,
        );
        Ok(SpoolRecording {
            slot,
            tx: self.tx.clone(),
            pending: self.pending.clone(),
            queue_limit: self.queue_limit,
            dropped: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        })
    }

    fn create_session_files(
        &self,
        session: &SessionInfo,
        dir: &Path,
    ) -> Result<std::fs::File, RecordingError> {
        let meta = SessionMeta {
            session_id: session.id.clone(),
            target: session.target.clone(),
            protocol: session.protocol.to_string(),
            started_at: session.started_at,
        };
        let meta_path = dir.join(SESSION_META);
        let bytes = serde_json::to_vec(&meta).map_err(|e| RecordingError::SpoolUnwritable {
            path: meta_path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&meta_path, bytes).map_err(|source| RecordingError::Create {
            path: meta_path,
            source,
        })?;
        let path = dir.join(journal_name(1));
        // Only the writer thread knows the key; the journal's prefix only
        // says whether records are encrypted, which the recorder knows too.
        create_journal(&path, self.encrypting())
            .map_err(|source| RecordingError::Create { path, source })
    }

    fn encrypting(&self) -> bool {
        self.keys_encrypt
    }

    /// Waits until every event recorded before the call is written to the
    /// spool and fsynced, and every finished session is sealed.
    pub async fn flush_all(&self) {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.tx.send(Msg::Barrier(reply), true);
        let _ = done.await;
    }

    /// Waits (up to `timeout`) until the session's spool directory is gone,
    /// i.e. its chunks and manifest are in the sink. `true` when uploaded.
    pub async fn wait_uploaded(&self, session_id: &str, timeout: Duration) -> bool {
        let dir = self.spool_dir.join(session_id);
        let deadline = Instant::now() + timeout;
        self.signal.wake();
        while dir.exists() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits (up to `timeout`) until only live sessions are left in the
    /// spool: every sealed session is uploaded. For shutdown, after
    /// [`SpoolRecorder::flush_all`]. `true` when drained.
    pub async fn drain_uploads(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.signal.wake();
        loop {
            let sealed_left = spooled_sessions(&self.spool_dir)
                .map(|sessions| {
                    sessions
                        .iter()
                        .any(|(_, dir)| dir.join(crate::manifest::MANIFEST_NAME).exists())
                })
                .unwrap_or(true);
            if !sealed_left {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SpoolRecorder {
    fn drop(&mut self) {
        self.signal.stop();
    }
}

/// The spool of [`SpoolRecorder::new`]'s local layout.
pub(crate) fn local_spool_dir(dir: &Path) -> PathBuf {
    dir.join(".spool")
}

/// Seals every session an earlier process left unsealed.
fn recover_spool(spool_dir: &Path, keys: &RecordingKeys) -> Vec<String> {
    let sessions = match spooled_sessions(spool_dir) {
        Ok(sessions) => sessions,
        Err(e) => {
            tracing::error!("{e}");
            return Vec::new();
        }
    };
    let mut sealed = Vec::new();
    for (session_id, dir) in sessions {
        match recover_session(&dir, &session_id, keys) {
            Ok(Recovered::Sealed { events }) => {
                tracing::warn!(
                    %session_id,
                    events,
                    "sealed a recording left unfinished by an earlier Warden process (marked interrupted)"
                );
                sealed.push(session_id);
            }
            Ok(Recovered::Pending | Recovered::Empty) => {}
            Err(e) => tracing::error!(
                %session_id,
                "cannot seal the recording left in the spool: {e}; it stays there"
            ),
        }
    }
    sealed
}

impl Recorder for SpoolRecorder {
    fn open(&self, session: &SessionInfo) -> Result<Box<dyn SessionRecording>, StoreError> {
        self.open_session(session)
            .map(|r| Box::new(r) as Box<dyn SessionRecording>)
            .map_err(|e| StoreError::Recording(Box::new(e)))
    }
}

/// One session's recording. Dropping it without `finish` seals it with an
/// `end` event saying it was interrupted.
pub struct SpoolRecording {
    slot: Slot,
    tx: QueueSender,
    pending: Arc<AtomicUsize>,
    queue_limit: usize,
    /// Events dropped since the last `dropped` line.
    dropped: AtomicU64,
    finished: AtomicBool,
}

/// The v0-compatible name.
pub type LocalRecording = SpoolRecording;

impl SpoolRecording {
    /// Sends one event to the writer; `force` ignores the queue limit.
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

impl SessionRecording for SpoolRecording {
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

impl Drop for SpoolRecording {
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::Relaxed) {
            self.report_dropped(true);
            self.tx.send(Msg::Close { slot: self.slot }, true);
        }
    }
}
