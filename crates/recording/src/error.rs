//! What can go wrong writing, storing, reading or checking a recording.

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
    /// The spool cannot take a new session: the gateway refuses it.
    #[error(
        "the recording spool {} has {available} bytes free, below the {needed} bytes a session needs; \
         free disk space or move [recording] spool_dir",
        path.display()
    )]
    SpoolFull {
        path: PathBuf,
        available: u64,
        needed: u64,
    },
    #[error("the recording spool {} is not writable: {message}", path.display())]
    SpoolUnwritable { path: PathBuf, message: String },
    #[error("[recording] {0}")]
    Config(String),
    /// A signing or encryption key that is not 32 bytes of hex or base64.
    /// Never carries the key itself.
    #[error("[recording] {which}: {message}")]
    BadKey {
        which: &'static str,
        message: String,
    },
    #[error("recording sink: {0}")]
    Sink(#[from] crate::sink::SinkError),
    /// A chunk or manifest that does not decode (bad header, hash, key …).
    #[error("session {session_id}, {part}: {message}")]
    BadPart {
        session_id: String,
        part: String,
        message: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
