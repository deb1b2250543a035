//! `warden recordings export ID`: one self-contained tar file holding the
//! recording exactly as stored (manifest + chunks, still verifiable with
//! the public key alone) and its events decoded as NDJSON for reading.
//!
//! ```text
//! {id}/manifest.json        signed manifest
//! {id}/chunk-000001.wrc …   the chunks, byte for byte
//! {id}/events.ndjson        every event (when the chunks could be decoded)
//! {id}/README.txt
//! ```

use crate::chunk::decode_chunk;
use crate::error::RecordingError;
use crate::keys::RecordingKeys;
use crate::manifest::{MANIFEST_NAME, parse_manifest};
use crate::reader::{RecordingReader, check_session_id, read_v0, recording_path};
use crate::spool::tmp_path;
use crate::verify::{Verifier, VerifyReport};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub path: PathBuf,
    pub format: u64,
    pub chunks: usize,
    pub events: u64,
    pub signed: bool,
    /// `events.ndjson` is included (false for encrypted chunks without a key).
    pub events_included: bool,
}

const README: &str = "\
A Warden session recording export.

manifest.json      the session's manifest: every chunk's size and SHA-256, the
                   hash chain head, and an ed25519 signature over the
                   \"manifest\" value's exact bytes (when a signing key was set)
chunk-NNNNNN.wrc   the chunks as stored: header (magic WRDNCHNK, version, JSON
                   header with the previous chunk's SHA-256) + zstd NDJSON,
                   encrypted with XChaCha20-Poly1305 when a key was set
events.ndjson      every event, one JSON object per line (format v1)

Check it: warden recordings verify --export THIS_FILE
The format is described in docs/recording-format.md.
";

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn append(
    builder: &mut tar::Builder<std::fs::File>,
    name: &str,
    bytes: &[u8],
    out: &Path,
) -> Result<(), RecordingError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        time::OffsetDateTime::now_utc()
            .unix_timestamp()
            .try_into()
            .unwrap_or(0),
    );
    header.set_cksum();
    builder
        .append_data(&mut header, name, bytes)
        .map_err(write_err(out))
}

impl RecordingReader {
    /// Writes the session's recording to `out` (atomically: a temp file
    /// renamed into place). Live sessions cannot be exported.
    pub async fn export(
        &self,
        session_id: &str,
        out: &Path,
    ) -> Result<ExportSummary, RecordingError> {
        check_session_id(session_id)?;
        let signed = self.manifest(session_id).await?;
        let tmp = tmp_path(out);
        let file = std::fs::File::create(&tmp).map_err(write_err(&tmp))?;
        let mut builder = tar::Builder::new(file);
        let mut summary = ExportSummary {
            path: out.to_path_buf(),
            format: 1,
            chunks: 0,
            events: 0,
            signed: false,
            events_included: true,
        };
        let result = match signed {
            Some(signed) => {
                summary.signed = signed.signature.is_some();
                summary.chunks = signed.manifest.chunks.len();
                let manifest_bytes =
                    self.fetch(session_id, MANIFEST_NAME)
                        .await?
                        .ok_or_else(|| {
                            self.bad(session_id, MANIFEST_NAME, "vanished while exporting")
                        })?;
                append(
                    &mut builder,
                    &format!("{session_id}/{MANIFEST_NAME}"),
                    &manifest_bytes,
                    &tmp,
                )?;
                let mut events = Vec::new();
                for entry in &signed.manifest.chunks {
                    let bytes = self
                        .fetch(session_id, &entry.name)
                        .await?
                        .ok_or_else(|| self.bad(session_id, &entry.name, "missing"))?;
                    append(
                        &mut builder,
                        &format!("{session_id}/{}", entry.name),
                        &bytes,
                        &tmp,
                    )?;
                    if summary.events_included {
                        match decode_chunk(&bytes, self.keys.cipher()) {
                            Ok((_, text)) => events.extend_from_slice(&text),
                            Err(_) => summary.events_included = false,
                        }
                    }
                }
                summary.events = signed.manifest.events;
                if summary.events_included {
                    append(
                        &mut builder,
                        &format!("{session_id}/events.ndjson"),
                        &events,
                        &tmp,
                    )?;
                }
                Ok(())
            }
            None => match &self.legacy_dir {
                Some(dir) if recording_path(dir, session_id).exists() => {
                    let recording = read_v0(dir, session_id)?;
                    let bytes =
                        std::fs::read(recording_path(dir, session_id)).map_err(|source| {
                            RecordingError::Read {
                                path: recording_path(dir, session_id),
                                source,
                            }
                        })?;
                    summary.format = 0;
                    summary.events = recording.events.len() as u64;
                    append(
                        &mut builder,
                        &format!("{session_id}/events.ndjson"),
                        &bytes,
                        &tmp,
                    )
                }
                _ => Err(if self.read(session_id).await.is_ok() {
                    self.bad(
                        session_id,
                        MANIFEST_NAME,
                        "not sealed yet (the session is live); export it after it ends",
                    )
                } else {
                    RecordingError::NotFound {
                        session_id: session_id.to_string(),
                        dir: self.sink.describe().into(),
                    }
                }),
            },
        };
        let finished = result.and_then(|()| {
            append(
                &mut builder,
                &format!("{session_id}/README.txt"),
                README.as_bytes(),
                &tmp,
            )?;
            let mut file = builder.into_inner().map_err(write_err(&tmp))?;
            file.flush().map_err(write_err(&tmp))?;
            file.sync_all().map_err(write_err(&tmp))?;
            std::fs::rename(&tmp, out).map_err(write_err(out))
        });
        if finished.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        finished.map(|()| summary)
    }
}

/// Verifies an export file offline: chunk hashes, chain, events and the
/// signature against `keys` (a public key is enough).
pub fn verify_export(path: &Path, keys: &RecordingKeys) -> Result<VerifyReport, RecordingError> {
    let read_err = |source| RecordingError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut archive = tar::Archive::new(file);
    let mut parts: HashMap<String, Vec<u8>> = HashMap::new();
    let mut session_dir: Option<String> = None;
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let name = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .to_string();
        let Some((dir, file)) = name.split_once('/') else {
            continue;
        };
        if session_dir.get_or_insert_with(|| dir.to_string()) != dir {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(crate::chunk::MAX_CHUNK_PLAINTEXT)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        parts.insert(file.to_string(), bytes);
    }
    let session_id = session_dir.unwrap_or_default();
    let bad = |message: &dyn std::fmt::Display| RecordingError::BadPart {
        session_id: session_id.clone(),
        part: path.display().to_string(),
        message: message.to_string(),
    };
    let manifest = parts
        .get(MANIFEST_NAME)
        .ok_or_else(|| bad(&"no manifest.json in the export (a v0 recording?)"))?;
    let signed = parse_manifest(manifest).map_err(|e| bad(&e))?;
    let mut verifier = Verifier::new(&signed, keys);
    for entry in &signed.manifest.chunks {
        verifier.chunk(entry, parts.get(&entry.name).map(Vec::as_slice));
    }
    Ok(verifier.finish(&signed))
}
