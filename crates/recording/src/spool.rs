//! The spool: where a session's chunks live until the sink has them.
//!
//! ```text
//! {spool_dir}/{session_id}/session.json        who/what/when, written at open
//! {spool_dir}/{session_id}/chunk-000007.open   the journal of the open chunk
//! {spool_dir}/{session_id}/chunk-000006.wrc    sealed chunks not uploaded yet
//! {spool_dir}/{session_id}/chunks.ndjson       ledger: one ChunkEntry per sealed chunk
//! {spool_dir}/{session_id}/manifest.json       present once the session is sealed
//! ```
//!
//! Sealing a chunk: write `chunk-N.wrc.tmp`, fsync, append its ledger line
//! (fsync), rename to `chunk-N.wrc`, delete the journal. Every crash point
//! leaves a state [`recover_session`] can finish: the ledger is the record of
//! sealed chunks (also of those uploaded and deleted already), the journal is
//! the record of what is not sealed.

use crate::chunk::{
    ChunkError, ChunkHeader, GENESIS_SHA256, PartKind, chunk_name, decode_journal, encode_chunk,
    parse_part_name, sha256_hex,
};
use crate::keys::RecordingKeys;
use crate::line::{At, Line, Recorded, offset_ms, parse_line};
use crate::manifest::{ChunkEntry, MANIFEST_NAME, Manifest, ManifestError, seal_manifest};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use warden_core::events::EventKind;

pub(crate) const SESSION_META: &str = "session.json";
pub(crate) const LEDGER: &str = "chunks.ndjson";

/// Why sealing a chunk or manifest, or finishing a session at start-up,
/// failed. Logged; whatever failed stays in the spool for the next try.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Creating, writing, fsyncing or renaming a temp chunk.
    #[error("cannot {doing} {}: {source}", path.display())]
    TempChunk {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot append to the ledger: {0}")]
    AppendLedger(#[source] std::io::Error),
    #[error("cannot read the ledger: {0}")]
    ReadLedger(#[source] std::io::Error),
    #[error("cannot write the manifest: {0}")]
    WriteManifest(#[source] std::io::Error),
    #[error("cannot rename: {0}")]
    Rename(#[source] std::io::Error),
    #[error("cannot list: {0}")]
    List(#[source] std::io::Error),
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error("cannot remove: {0}")]
    Remove(#[source] std::io::Error),
    #[error("{}: {source}", path.display())]
    Journal {
        path: PathBuf,
        #[source]
        source: ChunkError,
    },
    #[error("end event: {0}")]
    EndEvent(#[source] serde_json::Error),
}

/// `session.json`: what the manifest needs that events do not say.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SessionMeta {
    pub session_id: String,
    pub target: String,
    pub protocol: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

/// How a session's recording ended, for its manifest.
#[derive(Clone, Debug)]
pub(crate) struct EndMeta {
    pub reason: String,
    pub interrupted: bool,
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path);
    Ok(())
}

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Fsyncs the directory holding `path` so a rename survives a crash.
/// Best effort: some filesystems refuse to open directories.
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

pub(crate) fn read_ledger(dir: &Path) -> std::io::Result<Vec<ChunkEntry>> {
    let bytes = match std::fs::read(dir.join(LEDGER)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    // A torn last line (crash while appending) is ignored: its chunk was
    // not renamed into place yet, so its journal still holds its events.
    Ok(bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<ChunkEntry>(line).ok())
        .collect())
}

fn append_ledger(dir: &Path, entry: &ChunkEntry) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LEDGER))?;
    file.write_all(&line)?;
    file.sync_data()
}

/// Events, first and last `seq` of NDJSON text (only the first and last
/// lines are parsed).
fn describe_lines(ndjson: &[u8]) -> (u64, Option<u64>, Option<u64>) {
    let lines: Vec<&[u8]> = ndjson
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let seq = |line: Option<&&[u8]>| {
        line.and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|l| parse_line(l).ok())
            .map(|e| e.seq)
    };
    (lines.len() as u64, seq(lines.first()), seq(lines.last()))
}

/// Seals `ndjson` as chunk `index` of the session in `dir`.
pub(crate) fn seal_chunk(
    dir: &Path,
    session_id: &str,
    index: u32,
    prev_sha256: &str,
    ndjson: &[u8],
    keys: &RecordingKeys,
) -> Result<ChunkEntry, SpoolError> {
    let (events, first_seq, last_seq) = describe_lines(ndjson);
    let header = ChunkHeader {
        session_id: session_id.to_string(),
        index,
        prev_sha256: prev_sha256.to_string(),
        compression: "zstd".into(),
        encryption: None,
        events,
        first_seq,
        last_seq,
    };
    let bytes = encode_chunk(header, ndjson, keys.cipher())?;
    let name = chunk_name(index);
    let path = dir.join(&name);
    let tmp = tmp_path(&path);
    let io = |doing: &'static str, source: std::io::Error| SpoolError::TempChunk {
        doing,
        path: tmp.clone(),
        source,
    };
    {
        let mut file = File::create(&tmp).map_err(|e| io("create", e))?;
        file.write_all(&bytes).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("fsync", e))?;
    }
    let entry = ChunkEntry {
        index,
        name,
        size: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
        events,
        first_seq,
        last_seq,
    };
    append_ledger(dir, &entry).map_err(SpoolError::AppendLedger)?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
    sync_dir(&path);
    Ok(entry)
}

/// Writes the session's manifest from its ledger.
pub(crate) fn write_manifest(
    dir: &Path,
    meta: &SessionMeta,
    end: &EndMeta,
    keys: &RecordingKeys,
) -> Result<Manifest, SpoolError> {
    let mut chunks = read_ledger(dir).map_err(SpoolError::ReadLedger)?;
    chunks.sort_by_key(|c| c.index);
    chunks.dedup_by_key(|c| c.index);
    let manifest = Manifest {
        format: "warden-recording".into(),
        v: 1,
        session_id: meta.session_id.clone(),
        target: meta.target.clone(),
        protocol: meta.protocol.clone(),
        started_at: meta.started_at,
        ended_at: OffsetDateTime::now_utc(),
        interrupted: end.interrupted,
        end_reason: end.reason.clone(),
        events: chunks.iter().map(|c| c.events).sum(),
        encrypted: keys.has_encryption(),
        chain_head: chunks
            .last()
            .map_or_else(|| GENESIS_SHA256.to_string(), |c| c.sha256.clone()),
        chunks,
    };
    let bytes = seal_manifest(&manifest, keys)?;
    write_atomic(&dir.join(MANIFEST_NAME), &bytes).map_err(SpoolError::WriteManifest)?;
    Ok(manifest)
}

pub(crate) fn read_meta(dir: &Path) -> Option<SessionMeta> {
    std::fs::read(dir.join(SESSION_META))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// The chunk (`.wrc`) and journal (`.open`) files in a session's spool dir.
pub(crate) fn list_parts(dir: &Path) -> std::io::Result<Vec<(u32, PartKind, PathBuf)>> {
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some((index, kind)) = name.to_str().and_then(parse_part_name) {
            parts.push((index, kind, entry.path()));
        }
    }
    parts.sort_by_key(|(index, kind, _)| (*index, *kind == PartKind::Journal));
    Ok(parts)
}

/// What start-up found for one spooled session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// Sealed already; waiting for upload.
    Pending,
    /// Had no manifest (Warden was killed): sealed now as interrupted.
    Sealed { events: u64 },
    /// Nothing in it worth keeping; removed.
    Empty,
}

/// The `end` reason written for sessions found unsealed at start-up.
pub const INTERRUPTED_REASON: &str =
    "interrupted: Warden stopped before the session ended (sealed at the next start-up)";

/// Finishes a session found in the spool at start-up.
pub(crate) fn recover_session(
    dir: &Path,
    session_id: &str,
    keys: &RecordingKeys,
) -> Result<Recovered, SpoolError> {
    for_each_tmp(dir, |path| {
        // A finished temp chunk listed in the ledger is renamed below.
        if !path.to_string_lossy().ends_with(".wrc.tmp") {
            let _ = std::fs::remove_file(path);
        }
    });
    if dir.join(MANIFEST_NAME).exists() {
        return Ok(Recovered::Pending);
    }
    let ledger = read_ledger(dir).map_err(SpoolError::ReadLedger)?;
    // Chunks whose ledger line was written but not yet renamed into place.
    for entry in &ledger {
        let path = dir.join(&entry.name);
        let tmp = tmp_path(&path);
        if !path.exists()
            && let Ok(bytes) = std::fs::read(&tmp)
            && sha256_hex(&bytes) == entry.sha256
        {
            std::fs::rename(&tmp, &path).map_err(SpoolError::Rename)?;
        }
    }
    for_each_tmp(dir, |path| {
        let _ = std::fs::remove_file(path);
    });
    let sealed_max = ledger.iter().map(|e| e.index).max().unwrap_or(0);
    let mut prev = ledger
        .iter()
        .max_by_key(|e| e.index)
        .map_or_else(|| GENESIS_SHA256.to_string(), |e| e.sha256.clone());
    let mut last_seq = ledger.iter().filter_map(|e| e.last_seq).max();
    let mut next_index = sealed_max + 1;
    let mut events = 0;
    let parts = list_parts(dir).map_err(SpoolError::List)?;
    for (index, kind, path) in parts {
        if kind != PartKind::Journal {
            continue;
        }
        if index <= sealed_max {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let bytes = std::fs::read(&path).map_err(SpoolError::Read)?;
        let journal = match decode_journal(&bytes, session_id, index, keys.cipher()) {
            Ok(journal) => journal,
            Err(source) => return Err(SpoolError::Journal { path, source }),
        };
        let text = valid_prefix(&journal.ndjson, last_seq);
        if !text.is_empty() {
            let entry = seal_chunk(dir, session_id, next_index, &prev, text, keys)?;
            events += entry.events;
            last_seq = entry.last_seq.or(last_seq);
            prev = entry.sha256;
            next_index += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    let meta = read_meta(dir);
    if ledger.is_empty() && events == 0 {
        // Opened, never wrote an event: nothing to keep.
        std::fs::remove_dir_all(dir).map_err(SpoolError::Remove)?;
        return Ok(Recovered::Empty);
    }
    let meta = meta.unwrap_or_else(|| SessionMeta {
        session_id: session_id.to_string(),
        target: String::new(),
        protocol: String::new(),
        started_at: OffsetDateTime::now_utc(),
    });
    // The final chunk: the `end` event saying what happened.
    let now = OffsetDateTime::now_utc();
    let end = Recorded::Event(EventKind::End {
        bytes_from_client: 0,
        bytes_to_client: 0,
        statements: 0,
        reason: INTERRUPTED_REASON.into(),
    });
    let mut line = serde_json::to_vec(&Line {
        v: crate::FORMAT_VERSION,
        seq: last_seq.map_or(0, |s| s + 1),
        at: At(now),
        offset_ms: offset_ms(meta.started_at, now),
        event: &end,
    })
    .map_err(SpoolError::EndEvent)?;
    line.push(b'\n');
    seal_chunk(dir, session_id, next_index, &prev, &line, keys)?;
    events += 1;
    write_manifest(
        dir,
        &meta,
        &EndMeta {
            reason: INTERRUPTED_REASON.into(),
            interrupted: true,
        },
        keys,
    )?;
    Ok(Recovered::Sealed { events })
}

/// The lines of `ndjson` up to the first one that does not parse or does
/// not continue the `seq` order.
fn valid_prefix(ndjson: &[u8], mut last_seq: Option<u64>) -> &[u8] {
    let mut end = 0;
    for line in ndjson.split_inclusive(|&b| b == b'\n') {
        let ok = std::str::from_utf8(line)
            .ok()
            .and_then(|l| parse_line(l.trim_end()).ok())
            .is_some_and(|e| {
                let fits = last_seq.is_none_or(|s| e.seq > s);
                last_seq = Some(e.seq);
                fits
            });
        if !ok || !line.ends_with(b"\n") {
            break;
        }
        end += line.len();
    }
    &ndjson[..end]
}

fn for_each_tmp(dir: &Path, mut f: impl FnMut(&Path)) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                f(&path);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn valid_prefix_stops_at_garbage_and_seq_regressions() {
        let a = r#"{"v":1,"seq":0,"at":"2025-01-31T12:00:00.000Z","offset_ms":0,"type":"dropped","count":1}"#;
        let b = a.replace("\"seq\":0", "\"seq\":1");
        let text = format!("{a}\n{b}\n{a}\n");
        assert_eq!(
            valid_prefix(text.as_bytes(), None).len(),
            a.len() + b.len() + 2
        );
        assert_eq!(valid_prefix(text.as_bytes(), Some(0)), b"");
        let garbage = format!("{a}\nxx\n{b}\n");
        assert_eq!(valid_prefix(garbage.as_bytes(), None).len(), a.len() + 1);
    }
}
