//! The uploader thread: moves sealed chunks from the spool to the sink while
//! sessions are still live, then each finished session's manifest, deleting
//! the spool copy only after the sink has it. Failures are retried with
//! exponential backoff (1 s doubling to 30 s) for as long as it takes:
//! nothing leaves the spool unless it was stored.
//!
//! It runs on its own thread with its own small runtime, so uploads never
//! compete with the relay's tasks and work whoever calls the recorder.

use crate::chunk::PartKind;
use crate::manifest::MANIFEST_NAME;
use crate::reader::check_session_id;
use crate::sink::{Sink, SinkError};
use crate::spool::list_parts;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A rescan even without a wake-up (cheap: one directory listing).
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// Why an upload pass stopped; logged, and the pass is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    #[error("cannot list the spool {}: {source}", path.display())]
    ListSpool {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list {}: {source}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot remove the uploaded {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Wakes the uploader (new sealed work) or stops it.
#[derive(Default)]
pub(crate) struct UploadSignal {
    work: Notify,
    stop_notify: Notify,
    stop: AtomicBool,
}

impl UploadSignal {
    pub(crate) fn wake(&self) {
        self.work.notify_one();
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stop_notify.notify_one();
        self.work.notify_one();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub(crate) fn spawn(
    spool_dir: PathBuf,
    sink: Arc<dyn Sink>,
    signal: Arc<UploadSignal>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("warden-rec-upload".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(upload_loop(&spool_dir, &*sink, &signal)),
                Err(e) => tracing::error!(
                    "cannot start the recording uploader: {e}; recordings stay in the spool"
                ),
            }
        })?;
    Ok(())
}

async fn upload_loop(spool_dir: &Path, sink: &dyn Sink, signal: &UploadSignal) {
    let mut backoff = INITIAL_BACKOFF;
    let mut failing = false;
    while !signal.stopped() {
        match upload_pass(spool_dir, sink).await {
            Ok(()) => {
                if failing {
                    tracing::info!(sink = %sink.describe(), "recording uploads work again");
                }
                failing = false;
                backoff = INITIAL_BACKOFF;
                tokio::select! {
                    () = signal.work.notified() => {}
                    () = tokio::time::sleep(RESCAN_EVERY) => {}
                }
            }
            Err(error) => {
                if failing {
                    tracing::debug!(sink = %sink.describe(), "recording upload failed again: {error}");
                } else {
                    tracing::warn!(
                        sink = %sink.describe(),
                        "recording upload failed: {error}; retrying with backoff, recordings stay in the spool"
                    );
                }
                failing = true;
                tokio::select! {
                    () = signal.stop_notify.notified() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One pass over the spool; stops at the first failure.
pub(crate) async fn upload_pass(spool_dir: &Path, sink: &dyn Sink) -> Result<(), UploadError> {
    for (session_id, dir) in spooled_sessions(spool_dir)? {
        upload_session(&dir, &session_id, sink).await?;
    }
    Ok(())
}

/// The session directories in the spool.
pub(crate) fn spooled_sessions(spool_dir: &Path) -> Result<Vec<(String, PathBuf)>, UploadError> {
    let entries = match std::fs::read_dir(spool_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(UploadError::ListSpool {
                path: spool_dir.to_path_buf(),
                source,
            });
        }
    };
    let mut sessions: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(id, _)| check_session_id(id).is_ok())
        .collect();
    sessions.sort();
    Ok(sessions)
}

async fn upload_session(dir: &Path, session_id: &str, sink: &dyn Sink) -> Result<(), UploadError> {
    loop {
        upload_chunks(dir, session_id, sink).await?;
        let manifest = dir.join(MANIFEST_NAME);
        let bytes = match std::fs::read(&manifest) {
            Ok(bytes) => bytes,
            // The session is still live (or another uploader finished it).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(UploadError::Read {
                    path: manifest,
                    source,
                });
            }
        };
        // The manifest is written after the last chunk: if a chunk appeared
        // since the listing above, go round once more before sealing.
        if upload_chunks(dir, session_id, sink).await? > 0 {
            continue;
        }
        sink.put(session_id, MANIFEST_NAME, bytes).await?;
        if let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove the uploaded {}: {e}", dir.display());
        }
        return Ok(());
    }
}

/// Uploads the session's sealed chunks; the number uploaded.
async fn upload_chunks(
    dir: &Path,
    session_id: &str,
    sink: &dyn Sink,
) -> Result<usize, UploadError> {
    let parts = match list_parts(dir) {
        Ok(parts) => parts,
        // Removed by another uploader (an earlier recorder still stopping).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(UploadError::List {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut uploaded = 0;
    for (_, kind, path) in parts {
        if kind != PartKind::Chunk {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(UploadError::Read { path, source }),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        sink.put(session_id, &name, bytes).await?;
        uploaded += 1;
        if let Err(source) = std::fs::remove_file(&path)
            && source.kind() != std::io::ErrorKind::NotFound
        {
            return Err(UploadError::Remove { path, source });
        }
    }
    Ok(uploaded)
}
