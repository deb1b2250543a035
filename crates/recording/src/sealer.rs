//! The sealer thread: fsyncs journals for the writer, turns closed journals
//! into sealed chunks (compressed, encrypted, hash-chained), writes each
//! finished session's manifest and wakes the uploader.

use crate::chunk::{ChunkError, GENESIS_SHA256, decode_journal, journal_name};
use crate::keys::RecordingKeys;
use crate::spool::{EndMeta, SessionMeta, SpoolError, read_meta, seal_chunk, write_manifest};
use crate::uploader::UploadSignal;
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use time::OffsetDateTime;

/// Why a closed journal could not be sealed (it stays in the spool and is
/// sealed at the next start-up).
#[derive(Debug, thiserror::Error)]
enum SealError {
    #[error("cannot read the journal: {0}")]
    ReadJournal(#[source] std::io::Error),
    #[error(transparent)]
    Journal(#[from] ChunkError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

pub(crate) enum SealMsg {
    /// Fsync this journal handle.
    Sync(File),
    Seal(SealJob),
    /// Reply once everything sent before is done.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// Chunk `index`'s journal is closed: seal it, and the session when `end`.
pub(crate) struct SealJob {
    pub session_id: String,
    pub dir: PathBuf,
    pub index: u32,
    pub end: Option<EndMeta>,
}

pub(crate) fn spawn(
    keys: RecordingKeys,
    signal: Arc<UploadSignal>,
) -> std::io::Result<Sender<SealMsg>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("warden-rec-seal".into())
        .spawn(move || seal_loop(&rx, &keys, &signal))?;
    Ok(tx)
}

fn seal_loop(rx: &Receiver<SealMsg>, keys: &RecordingKeys, signal: &UploadSignal) {
    // The hash of each open session's last sealed chunk.
    let mut heads: HashMap<String, String> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            SealMsg::Sync(file) => {
                if let Err(e) = file.sync_data() {
                    tracing::error!("cannot fsync a recording journal: {e}");
                }
            }
            SealMsg::Seal(job) => {
                if let Err(e) = seal(&job, keys, &mut heads) {
                    tracing::error!(
                        session_id = %job.session_id,
                        "cannot seal chunk {} of the session recording: {e}; \
                         it stays in the spool and is sealed at the next start-up",
                        job.index
                    );
                }
                signal.wake();
            }
            SealMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
        }
    }
}

fn seal(
    job: &SealJob,
    keys: &RecordingKeys,
    heads: &mut HashMap<String, String>,
) -> Result<(), SealError> {
    let journal = job.dir.join(journal_name(job.index));
    let bytes = std::fs::read(&journal).map_err(SealError::ReadJournal)?;
    let text = decode_journal(&bytes, &job.session_id, job.index, keys.cipher())?;
    if !text.ndjson.is_empty() {
        let prev = heads
            .get(&job.session_id)
            .map_or(GENESIS_SHA256, String::as_str);
        let entry = seal_chunk(
            &job.dir,
            &job.session_id,
            job.index,
            prev,
            &text.ndjson,
            keys,
        )?;
        heads.insert(job.session_id.clone(), entry.sha256);
    }
    let _ = std::fs::remove_file(&journal);
    if let Some(end) = &job.end {
        heads.remove(&job.session_id);
        let meta = read_meta(&job.dir).unwrap_or_else(|| SessionMeta {
            session_id: job.session_id.clone(),
            target: String::new(),
            protocol: String::new(),
            started_at: OffsetDateTime::now_utc(),
        });
        write_manifest(&job.dir, &meta, end, keys)?;
    }
    Ok(())
}
