//! Session recordings, format v1 (see `docs/recording-format.md`).
//!
//! The relay hands events to a [`SpoolRecorder`] (the gateway's `Recorder`)
//! on its hot path; a writer thread appends them to the session's journal in
//! the spool; closed chunks are sealed (zstd, optionally XChaCha20-Poly1305,
//! SHA-256 hash-chained) and uploaded to a [`Sink`] (local directory or S3)
//! while the session is live; at the end a manifest, ed25519-signed when a
//! key is configured, seals the session. [`RecordingReader`] reads v1 (from
//! the sink, the spool, or live) and v0 files, verifies and exports;
//! [`render_timeline`] and [`replay_paced`] serve `warden replay`.

mod chunk;
mod error;
mod export;
mod keys;
mod line;
mod manifest;
mod reader;
mod recorder;
mod render;
mod retention;
mod sealer;
mod setup;
pub mod sink;
mod spool;
mod uploader;
mod verify;
mod writer;

pub use chunk::{
    ChunkEncryption, ChunkError, ChunkHeader, GENESIS_SHA256, chunk_name, decode_chunk,
    parse_chunk_header, sha256_hex,
};
pub use error::RecordingError;
pub use export::{ExportSummary, verify_export};
pub use keys::RecordingKeys;
pub use line::{FORMAT_VERSION, Note, OLDEST_FORMAT_VERSION, Recorded, RecordedEvent};
pub use manifest::{
    ChunkEntry, MANIFEST_NAME, Manifest, ManifestError, ManifestSignature, SignatureCheck,
    SignedManifest, parse_manifest,
};
pub use reader::{Recording, RecordingReader, read_recording, read_v0, recording_path};
pub use recorder::{
    DEFAULT_QUEUE_LIMIT, LocalRecorder, LocalRecording, RecorderOptions, SpoolRecorder,
    SpoolRecording,
};
pub use render::{render_event, render_timeline, replay_paced};
pub use retention::{RetentionPolicy, RetentionReport, apply_retention};
pub use setup::{local_dir, reader_from_config, recorder_from_config, sink_from_config, spool_dir};
pub use sink::{LocalSink, S3Sink, S3SinkConfig, Sink, SinkError};
pub use spool::INTERRUPTED_REASON;
pub use verify::VerifyReport;
pub use writer::{DROPPED_REASON, SHUTDOWN_REASON};
