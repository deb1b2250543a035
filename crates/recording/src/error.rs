//! What can go wrong writing or reading a recording.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot create the recordings directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the recording writer thread: {0}")]
    SpawnWriter(#[source] std::io::Error),
    #[error("{0:?} is not a session id (letters, digits, '-' and '_' only)")]
    BadSessionId(String),
    #[error("cannot create the recording {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no recording for session {session_id} in {}", dir.display())]
    NotFound { session_id: String, dir: PathBuf },
    #[error("cannot read the recording {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("recording {} is corrupt at line {line}: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}
