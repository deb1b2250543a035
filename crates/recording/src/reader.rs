//! Reading a recording back: v1 from the sink and the spool (a live session
//! too), v0 from its single NDJSON file.

use crate::chunk::{PartKind, decode_chunk, decode_journal, parse_part_name};
use crate::error::RecordingError;
use crate::keys::RecordingKeys;
use crate::line::{LineError, RecordedEvent, parse_line};
use crate::manifest::{MANIFEST_NAME, Manifest, parse_manifest};
use crate::sink::{LocalSink, Sink};
use crate::spool::list_parts;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A recording as read.
#[derive(Clone, Debug)]
pub struct Recording {
    pub events: Vec<RecordedEvent>,
    /// The last line was incomplete (Warden stopped while writing it) and
    /// was left out.
    pub truncated: bool,
    /// 0 (one NDJSON file) or 1 (chunks).
    pub format: u64,
    /// v1 and sealed: the manifest. `None` while the session is live.
    pub manifest: Option<Manifest>,
}

impl Recording {
    /// Whether the recording has its `end` event.
    pub fn is_complete(&self) -> bool {
        self.events
            .last()
            .is_some_and(|e| e.event.type_name() == "end")
    }
}

/// Where a v0 session's recording lives in `dir`.
pub fn recording_path(dir: &Path, session_id: &str) -> PathBuf {
    dir.join(format!("{session_id}.ndjson"))
}

/// Session ids name files and keys: only letters, digits, `-` and `_`, so
/// no id can point outside the recordings directory or bucket prefix.
pub(crate) fn check_session_id(session_id: &str) -> Result<(), RecordingError> {
    let ok = !session_id.is_empty()
        && session_id.len() <= 128
        && session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RecordingError::BadSessionId(session_id.to_string()))
    }
}

/// Reads a session recorded by [`crate::SpoolRecorder::new`]`(dir)` (v1 in
/// `dir/{id}/` and `dir/.spool/{id}/`) or a v0 file `dir/{id}.ndjson`.
/// Unencrypted recordings only; use [`RecordingReader`] for the rest.
pub fn read_recording(dir: &Path, session_id: &str) -> Result<Recording, RecordingError> {
    check_session_id(session_id)?;
    if recording_path(dir, session_id).exists() {
        return read_v0(dir, session_id);
    }
    let reader = RecordingReader::new(
        Arc::new(LocalSink::new(dir.to_path_buf())),
        RecordingKeys::default(),
    )
    .with_spool(crate::recorder::local_spool_dir(dir));
    // Every step of a local read is synchronous: the future never waits.
    let mut future = std::pin::pin!(reader.read(session_id));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => Err(RecordingError::Config(
            "a local read unexpectedly had to wait".into(),
        )),
    }
}

use std::future::Future as _;

/// Reads `{dir}/{session_id}.ndjson` (v0). A bad last line is left out and
/// flagged in [`Recording::truncated`]; a bad line before it is an error.
pub fn read_v0(dir: &Path, session_id: &str) -> Result<Recording, RecordingError> {
    check_session_id(session_id)?;
    let path = recording_path(dir, session_id);
    let bytes = std::fs::read(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            RecordingError::NotFound {
                session_id: session_id.to_string(),
                dir: dir.to_path_buf(),
            }
        } else {
            RecordingError::Read {
                path: path.clone(),
                source,
            }
        }
    })?;
    parse_recording(&bytes).map_err(|(line, message)| RecordingError::Corrupt {
        path,
        line,
        message,
    })
}

/// Parses NDJSON; `Err((line number, message))` for a bad inner line.
pub(crate) fn parse_recording(bytes: &[u8]) -> Result<Recording, (usize, String)> {
    let (events, truncated) = parse_lines(bytes, true, None)?;
    Ok(Recording {
        events,
        truncated,
        format: 0,
        manifest: None,
    })
}

/// Parses NDJSON lines, each `seq` above the one before (and above
/// `after`). With `torn_tail_ok`, a bad last line is left out and reported.
fn parse_lines(
    bytes: &[u8],
    torn_tail_ok: bool,
    after: Option<u64>,
) -> Result<(Vec<RecordedEvent>, bool), (usize, String)> {
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| (i + 1, line))
        .collect();
    let mut events: Vec<RecordedEvent> = Vec::with_capacity(lines.len());
    let mut truncated = false;
    for (index, (number, line)) in lines.iter().enumerate() {
        let parsed = std::str::from_utf8(line)
            .map_err(LineError::NotUtf8)
            .and_then(parse_line);
        match parsed {
            Ok(event) => {
                if let Some(previous) = events.last().map(|e| e.seq).or(after)
                    && event.seq <= previous
                {
                    return Err((*number, format!("seq {} after seq {previous}", event.seq)));
                }
                events.push(event);
            }
            Err(_) if torn_tail_ok && index + 1 == lines.len() => truncated = true,
            Err(error) => return Err((*number, error.to_string())),
        }
    }
    Ok((events, truncated))
}

/// Reads recordings from a sink, the spool (sessions not uploaded yet or
/// still live) and a v0 directory, with the keys to decrypt and verify.
#[derive(Clone, Debug)]
pub struct RecordingReader {
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) legacy_dir: Option<PathBuf>,
    pub(crate) keys: RecordingKeys,
}

/// Attempts at reading a live session whose chunks moved mid-read.
const LIVE_READ_ATTEMPTS: usize = 5;

impl RecordingReader {
    pub fn new(sink: Arc<dyn Sink>, keys: RecordingKeys) -> RecordingReader {
        RecordingReader {
            sink,
            spool_dir: None,
            legacy_dir: None,
            keys,
        }
    }

    /// Also look in this spool (the recorder's `spool_dir`).
    pub fn with_spool(mut self, spool_dir: PathBuf) -> RecordingReader {
        self.spool_dir = Some(spool_dir);
        self
    }

    /// Also read v0 files `{dir}/{id}.ndjson`.
    pub fn with_legacy_dir(mut self, dir: PathBuf) -> RecordingReader {
        self.legacy_dir = Some(dir);
        self
    }

    pub fn keys(&self) -> &RecordingKeys {
        &self.keys
    }

    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.sink
    }

    pub(crate) fn spool_session(&self, session_id: &str) -> Option<PathBuf> {
        self.spool_dir.as_ref().map(|d| d.join(session_id))
    }

    fn not_found(&self, session_id: &str) -> RecordingError {
        RecordingError::NotFound {
            session_id: session_id.to_string(),
            dir: PathBuf::from(self.sink.describe()),
        }
    }

    pub(crate) fn bad(
        &self,
        session_id: &str,
        part: &str,
        message: impl std::fmt::Display,
    ) -> RecordingError {
        RecordingError::BadPart {
            session_id: session_id.to_string(),
            part: part.to_string(),
            message: message.to_string(),
        }
    }

    /// Every session id in the sink and the spool, sorted.
    pub async fn sessions(&self) -> Result<Vec<String>, RecordingError> {
        let mut ids = self.sink.sessions().await?;
        if let Some(spool) = &self.spool_dir
            && let Ok(spooled) = crate::uploader::spooled_sessions(spool)
        {
            ids.extend(spooled.into_iter().map(|(id, _)| id));
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// A sealed part (chunk or manifest): the spool copy when there is one,
    /// else the sink's.
    pub(crate) async fn fetch(
        &self,
        session_id: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, RecordingError> {
        if let Some(dir) = self.spool_session(session_id) {
            match std::fs::read(dir.join(name)) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(RecordingError::Read {
                        path: dir.join(name),
                        source,
                    });
                }
            }
        }
        Ok(self.sink.get(session_id, name).await?)
    }

    /// The session's manifest, if it is sealed.
    pub(crate) async fn manifest(
        &self,
        session_id: &str,
    ) -> Result<Option<crate::manifest::SignedManifest>, RecordingError> {
        match self.fetch(session_id, MANIFEST_NAME).await? {
            Some(bytes) => parse_manifest(&bytes)
                .map(Some)
                .map_err(|e| self.bad(session_id, MANIFEST_NAME, e)),
            None => Ok(None),
        }
    }

    /// Reads a whole recording: v0, sealed v1, or a live v1 session so far.
    pub async fn read(&self, session_id: &str) -> Result<Recording, RecordingError> {
        check_session_id(session_id)?;
        if let Some(dir) = &self.legacy_dir
            && recording_path(dir, session_id).exists()
        {
            return read_v0(dir, session_id);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.read_v1(session_id).await {
                Err(Moved) if attempt < LIVE_READ_ATTEMPTS => {
                    // Rare (a chunk sealed or uploaded mid-read) and short;
                    // a plain sleep keeps `read` usable without a runtime.
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(Moved) => {
                    return Err(self.bad(
                        session_id,
                        "spool",
                        "the live recording kept changing while it was read; try again",
                    ));
                }
                Ok(result) => return result,
            }
        }
    }

    /// `Err(Moved)` when a live session's parts moved between listing and
    /// reading them (sealed or uploaded meanwhile).
    async fn read_v1(&self, session_id: &str) -> Result<Result<Recording, RecordingError>, Moved> {
        let manifest = match self.manifest(session_id).await {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(signed) = manifest {
            return Ok(self.read_sealed(session_id, signed.manifest).await);
        }
        self.read_live(session_id).await
    }

    async fn read_sealed(
        &self,
        session_id: &str,
        manifest: Manifest,
    ) -> Result<Recording, RecordingError> {
        let mut events: Vec<RecordedEvent> = Vec::new();
        for entry in &manifest.chunks {
            let bytes = self
                .fetch(session_id, &entry.name)
                .await?
                .ok_or_else(|| self.bad(session_id, &entry.name, "missing"))?;
            let (_, text) = decode_chunk(&bytes, self.keys.cipher())
                .map_err(|e| self.bad(session_id, &entry.name, e))?;
            let (mut chunk_events, _) = parse_lines(&text, false, events.last().map(|e| e.seq))
                .map_err(|(line, message)| {
                    self.bad(session_id, &entry.name, format!("line {line}: {message}"))
                })?;
            events.append(&mut chunk_events);
        }
        Ok(Recording {
            events,
            truncated: false,
            format: 1,
            manifest: Some(manifest),
        })
    }

    async fn read_live(
        &self,
        session_id: &str,
    ) -> Result<Result<Recording, RecordingError>, Moved> {
        // Spool first: a part listed there and gone when read was uploaded
        // meanwhile, and the sink listing that follows has it.
        let mut chunks: BTreeMap<u32, ()> = BTreeMap::new();
        let mut journals: BTreeMap<u32, PathBuf> = BTreeMap::new();
        let spool = self.spool_session(session_id);
        let mut spool_exists = false;
        if let Some(dir) = &spool {
            match list_parts(dir) {
                Ok(parts) => {
                    spool_exists = true;
                    for (index, kind, path) in parts {
                        match kind {
                            PartKind::Chunk => {
                                chunks.insert(index, ());
                            }
                            PartKind::Journal => {
                                journals.insert(index, path);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Ok(Err(RecordingError::Read {
                        path: dir.clone(),
                        source,
                    }));
                }
            }
        }
        let names = match self.sink.list(session_id).await {
            Ok(names) => names,
            Err(e) => return Ok(Err(e.into())),
        };
        if names.iter().any(|n| n == MANIFEST_NAME) {
            // Sealed and uploaded since we looked for the manifest.
            return Err(Moved);
        }
        for (index, kind) in names.iter().filter_map(|n| parse_part_name(n)) {
            if kind == PartKind::Chunk {
                chunks.insert(index, ());
            }
        }
        if chunks.is_empty() && journals.is_empty() && !spool_exists {
            return Ok(Err(self.not_found(session_id)));
        }
        let mut events: Vec<RecordedEvent> = Vec::new();
        let mut truncated = false;
        for index in chunks.keys() {
            let name = crate::chunk::chunk_name(*index);
            let bytes = match self.fetch(session_id, &name).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return Err(Moved),
                Err(e) => return Ok(Err(e)),
            };
            let text = match decode_chunk(&bytes, self.keys.cipher()) {
                Ok((_, text)) => text,
                Err(e) => return Ok(Err(self.bad(session_id, &name, e))),
            };
            match parse_lines(&text, false, events.last().map(|e| e.seq)) {
                Ok((mut more, _)) => events.append(&mut more),
                Err((line, message)) => {
                    return Ok(Err(self.bad(
                        session_id,
                        &name,
                        format!("line {line}: {message}"),
                    )));
                }
            }
        }
        let sealed_max = chunks.keys().max().copied().unwrap_or(0);
        for (index, path) in journals.range(sealed_max + 1..) {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Moved),
                Err(source) => {
                    return Ok(Err(RecordingError::Read {
                        path: path.clone(),
                        source,
                    }));
                }
            };
            let journal = match decode_journal(&bytes, session_id, *index, self.keys.cipher()) {
                Ok(journal) => journal,
                Err(e) => return Ok(Err(self.bad(session_id, &path.display().to_string(), e))),
            };
            truncated |= journal.truncated;
            match parse_lines(&journal.ndjson, true, events.last().map(|e| e.seq)) {
                Ok((mut more, torn)) => {
                    truncated |= torn;
                    events.append(&mut more);
                }
                Err((line, message)) => {
                    return Ok(Err(self.bad(
                        session_id,
                        &path.display().to_string(),
                        format!("line {line}: {message}"),
                    )));
                }
            }
        }
        // Seqs have no gaps: a gap means a part moved while we read.
        if events.windows(2).any(|w| w[1].seq != w[0].seq + 1)
            || events.first().is_some_and(|e| e.seq != 0)
        {
            return Err(Moved);
        }
        Ok(Ok(Recording {
            events,
            truncated,
            format: 1,
            manifest: None,
        }))
    }

    /// Prints a live session as it happens: calls `on_event` for each event
    /// in order, re-reading new chunks and the spool every `poll`, until the
    /// `end` event.
    pub async fn follow(
        &self,
        session_id: &str,
        poll: Duration,
        mut on_event: impl FnMut(&RecordedEvent) -> std::io::Result<()>,
    ) -> Result<(), RecordingError> {
        let mut next_seq = 0u64;
        let mut failures = 0;
        loop {
            match self.read(session_id).await {
                Ok(recording) => {
                    failures = 0;
                    let from = next_seq;
                    for event in recording.events.iter().filter(|e| e.seq >= from) {
                        on_event(event).map_err(|source| RecordingError::Write {
                            path: PathBuf::from("-"),
                            source,
                        })?;
                        next_seq = event.seq + 1;
                        if event.event.type_name() == "end" {
                            return Ok(());
                        }
                    }
                    if recording.manifest.is_some() {
                        return Ok(());
                    }
                }
                Err(e @ (RecordingError::NotFound { .. } | RecordingError::BadSessionId(_)))
                    if next_seq == 0 =>
                {
                    return Err(e);
                }
                Err(e) => {
                    failures += 1;
                    if failures >= 10 {
                        return Err(e);
                    }
                }
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// A live session's parts moved while being read.
struct Moved;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const START: &str = r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00.000Z","offset_ms":0.0,"type":"end","bytes_from_client":1,"bytes_to_client":2,"statements":0,"reason":"x"}"#;

    #[test]
    fn session_ids_cannot_escape_the_directory() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "a/b",
            "a.b",
            "a b",
            "a\0b",
            ".spool",
        ] {
            assert!(check_session_id(bad).is_err(), "{bad:?}");
        }
        check_session_id("0192f0c2-7d3e-7000-8000-0123456789ab").unwrap();
    }

    #[test]
    fn truncated_last_line_is_flagged() {
        let text = format!("{START}\n{}", &START[..40]);
        let rec = parse_recording(text.as_bytes()).unwrap();
        assert_eq!(rec.events.len(), 1);
        assert!(rec.truncated);
    }

    #[test]
    fn bad_inner_line_is_an_error() {
        let text = format!(
            "{START}\ngarbage\n{}\n",
            START.replace("\"seq\":0", "\"seq\":1")
        );
        let (line, _) = parse_recording(text.as_bytes()).unwrap_err();
        assert_eq!(line, 2);
    }

    #[test]
    fn seq_must_increase() {
        let text = format!("{START}\n{START}\n");
        let (line, message) = parse_recording(text.as_bytes()).unwrap_err();
        assert_eq!(line, 2);
        assert!(message.contains("seq 0 after seq 0"), "{message}");
    }

    #[test]
    fn empty_and_blank_files() {
        let rec = parse_recording(b"").unwrap();
        assert!(rec.events.is_empty() && !rec.truncated);
        let rec = parse_recording(b"\n\n").unwrap();
        assert!(rec.events.is_empty() && !rec.truncated);
        assert!(!rec.is_complete());
    }

    #[test]
    fn not_utf8_last_line_is_truncation() {
        let mut bytes = format!("{START}\n").into_bytes();
        bytes.extend_from_slice(&[b'{', 0xff, 0xfe]);
        let rec = parse_recording(&bytes).unwrap();
        assert!(rec.truncated);
        assert!(rec.is_complete());
    }
}
