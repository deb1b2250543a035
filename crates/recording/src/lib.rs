//! Session recordings, format v0: one newline-delimited JSON file per session
//! (`{dir}/{session_id}.ndjson`), one event per line. See
//! `docs/recording-format.md` for the format.
//!
//! [`LocalRecorder`] implements the gateway's `Recorder`: the relay hands it
//! events on its hot path, and a writer thread serializes and writes them, so
//! recording never blocks a session on the disk. [`read_recording`],
//! [`render_timeline`] and [`replay_paced`] serve `warden replay`.

mod error;
mod line;
mod reader;
mod recorder;
mod render;
mod writer;

pub use error::RecordingError;
pub use line::{FORMAT_VERSION, Note, Recorded, RecordedEvent};
pub use reader::{Recording, read_recording, recording_path};
pub use recorder::LocalRecorder;
pub use render::{render_event, render_timeline, replay_paced};
