//! `warden recordings verify`: every chunk's SHA-256 against the manifest,
//! the hash chain through the chunk headers, the event sequence, and the
//! manifest's ed25519 signature against the configured key.

use crate::chunk::{GENESIS_SHA256, decode_chunk, parse_chunk_header, sha256_hex};
use crate::error::RecordingError;
use crate::keys::RecordingKeys;
use crate::line::parse_line;
use crate::manifest::{ChunkEntry, SignatureCheck, SignedManifest};
use crate::reader::{RecordingReader, check_session_id, read_v0, recording_path};
use serde::Serialize;

/// What verifying one recording found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub session_id: String,
    /// 0 (no hashes to check) or 1.
    pub format: u64,
    /// The manifest exists.
    pub sealed: bool,
    /// Not sealed yet and still in the spool: a live session.
    pub live: bool,
    pub interrupted: bool,
    pub chunks: usize,
    pub events: u64,
    pub signature: SignatureCheck,
    pub chain_head: Option<String>,
    /// The first chunk that failed a check, by file name.
    pub first_bad_chunk: Option<String>,
    /// Every failed check, in order; empty when the recording is intact.
    pub problems: Vec<String>,
    /// What could not be checked and why (not failures).
    pub notes: Vec<String>,
}

impl VerifyReport {
    fn new(session_id: &str) -> VerifyReport {
        VerifyReport {
            session_id: session_id.to_string(),
            format: 1,
            sealed: false,
            live: false,
            interrupted: false,
            chunks: 0,
            events: 0,
            signature: SignatureCheck::Unsigned,
            chain_head: None,
            first_bad_chunk: None,
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Intact: every check passed and the signature is not bad or missing.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && !self.signature.is_failure()
    }
}

/// Checks chunks one at a time, in manifest order, so a long recording is
/// never held in memory whole.
pub(crate) struct Verifier<'a> {
    report: VerifyReport,
    keys: &'a RecordingKeys,
    prev_sha: String,
    last_seq: Option<u64>,
    events: u64,
    contents_unchecked: bool,
}

impl<'a> Verifier<'a> {
    pub(crate) fn new(signed: &SignedManifest, keys: &'a RecordingKeys) -> Verifier<'a> {
        let manifest = &signed.manifest;
        let mut report = VerifyReport::new(&manifest.session_id);
        report.sealed = true;
        report.interrupted = manifest.interrupted;
        report.chunks = manifest.chunks.len();
        report.events = manifest.events;
        report.chain_head = Some(manifest.chain_head.clone());
        report.signature = signed.check_signature(keys);
        match &report.signature {
            SignatureCheck::Invalid(why) => {
                report.problems.push(format!("manifest signature: {why}"))
            }
            SignatureCheck::Missing => report
                .problems
                .push("the manifest is not signed, but a signing key is configured".into()),
            SignatureCheck::NotChecked => report
                .notes
                .push("signed, but no signing key is configured to check the signature".into()),
            SignatureCheck::Unsigned | SignatureCheck::Valid => {}
        }
        Verifier {
            report,
            keys,
            prev_sha: GENESIS_SHA256.to_string(),
            last_seq: None,
            events: 0,
            contents_unchecked: false,
        }
    }

    /// After a chunk failed: carry on from what the manifest says about it,
    /// so one bad chunk is reported once, not again in every later one.
    fn skip(&mut self, entry: &ChunkEntry) {
        self.last_seq = entry.last_seq.or(self.last_seq);
        self.events += entry.events;
    }

    fn problem(&mut self, chunk: &str, message: String) {
        if self.report.first_bad_chunk.is_none() {
            self.report.first_bad_chunk = Some(chunk.to_string());
        }
        self.report.problems.push(format!("{chunk}: {message}"));
    }

    /// Checks the next chunk of the manifest (`None`: it is missing).
    pub(crate) fn chunk(&mut self, entry: &ChunkEntry, bytes: Option<&[u8]>) {
        let expected_prev = std::mem::replace(&mut self.prev_sha, entry.sha256.clone());
        let Some(bytes) = bytes else {
            self.problem(&entry.name, "missing from the sink and the spool".into());
            self.skip(entry);
            return;
        };
        let actual = sha256_hex(bytes);
        if actual != entry.sha256 {
            self.problem(
                &entry.name,
                format!(
                    "SHA-256 {actual} does not match the manifest's {}: the chunk was altered",
                    entry.sha256
                ),
            );
            self.skip(entry);
            return;
        }
        if bytes.len() as u64 != entry.size {
            self.problem(
                &entry.name,
                format!("{} bytes, the manifest says {}", bytes.len(), entry.size),
            );
        }
        let header = match parse_chunk_header(bytes) {
            Ok((header, _)) => header,
            Err(e) => {
                self.problem(&entry.name, e.to_string());
                self.skip(entry);
                return;
            }
        };
        if header.session_id != self.report.session_id || header.index != entry.index {
            self.problem(
                &entry.name,
                format!(
                    "header says session {} chunk {}, the manifest lists it as chunk {}",
                    header.session_id, header.index, entry.index
                ),
            );
        }
        if header.prev_sha256 != expected_prev {
            self.problem(
                &entry.name,
                format!(
                    "hash chain broken: previous chunk hash {} in its header, {expected_prev} expected",
                    header.prev_sha256
                ),
            );
        }
        if header.encryption.is_some() && self.keys.cipher().is_none() {
            self.contents_unchecked = true;
            self.events += header.events;
            return;
        }
        let text = match decode_chunk(bytes, self.keys.cipher()) {
            Ok((_, text)) => text,
            Err(e) => {
                self.problem(&entry.name, e.to_string());
                self.skip(entry);
                return;
            }
        };
        let mut count = 0;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            count += 1;
            let event = match std::str::from_utf8(line).map(parse_line) {
                Ok(Ok(event)) => event,
                Ok(Err(e)) => {
                    self.problem(&entry.name, format!("event {count}: {e}"));
                    return;
                }
                Err(e) => {
                    self.problem(&entry.name, format!("event {count}: {e}"));
                    return;
                }
            };
            let expected = self.last_seq.map_or(0, |s| s + 1);
            if event.seq != expected {
                self.problem(
                    &entry.name,
                    format!("event seq {} where {expected} was expected", event.seq),
                );
                return;
            }
            self.last_seq = Some(event.seq);
        }
        if count != header.events || count != entry.events {
            self.problem(
                &entry.name,
                format!(
                    "{count} events, the header says {} and the manifest {}",
                    header.events, entry.events
                ),
            );
        }
        self.events += count;
    }

    pub(crate) fn finish(mut self, signed: &SignedManifest) -> VerifyReport {
        let manifest = &signed.manifest;
        if self.prev_sha != manifest.chain_head {
            self.report.problems.push(format!(
                "manifest chain head {} is not the last chunk's hash {}",
                manifest.chain_head, self.prev_sha
            ));
        }
        if self.events != manifest.events {
            self.report.problems.push(format!(
                "{} events in the chunks, the manifest says {}",
                self.events, manifest.events
            ));
        }
        if self.contents_unchecked {
            self.report.notes.push(
                "chunks are encrypted and no encryption_key is configured: hashes and chain checked, events not"
                    .into(),
            );
        }
        self.report
    }
}

impl RecordingReader {
    /// Verifies one recording. `Err` only when it cannot be looked at
    /// (not found, sink unreachable); failed checks are in the report.
    pub async fn verify(&self, session_id: &str) -> Result<VerifyReport, RecordingError> {
        check_session_id(session_id)?;
        let signed = match self.manifest(session_id).await {
            Ok(Some(signed)) => signed,
            Ok(None) => return self.verify_unsealed(session_id).await,
            Err(RecordingError::BadPart { message, .. }) => {
                let mut report = VerifyReport::new(session_id);
                report.sealed = true;
                report.problems.push(format!("manifest.json: {message}"));
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let mut verifier = Verifier::new(&signed, &self.keys);
        if signed.manifest.session_id != session_id {
            verifier.report.problems.push(format!(
                "the manifest is for session {}",
                signed.manifest.session_id
            ));
        }
        for entry in &signed.manifest.chunks {
            let bytes = self.fetch(session_id, &entry.name).await?;
            verifier.chunk(entry, bytes.as_deref());
        }
        Ok(verifier.finish(&signed))
    }

    async fn verify_unsealed(&self, session_id: &str) -> Result<VerifyReport, RecordingError> {
        let mut report = VerifyReport::new(session_id);
        if let Some(dir) = &self.legacy_dir
            && recording_path(dir, session_id).exists()
        {
            let recording = read_v0(dir, session_id)?;
            report.format = 0;
            report.events = recording.events.len() as u64;
            report
                .notes
                .push("a v0 recording: it has no hashes or signature to check".into());
            return Ok(report);
        }
        if self.spool_session(session_id).is_some_and(|d| d.exists()) {
            report.live = true;
            report
                .notes
                .push("not sealed yet: the session is live (or Warden has not restarted since it was killed)".into());
            return Ok(report);
        }
        if self.sink.list(session_id).await?.is_empty() {
            return Err(RecordingError::NotFound {
                session_id: session_id.to_string(),
                dir: self.sink.describe().into(),
            });
        }
        report.problems.push(
            "chunks but no manifest.json in the sink: the manifest was deleted, or the upload is incomplete"
                .into(),
        );
        Ok(report)
    }

    /// Verifies every recording in the sink and the spool.
    pub async fn verify_all(&self) -> Result<Vec<VerifyReport>, RecordingError> {
        let mut reports = Vec::new();
        for session_id in self.sessions().await? {
            reports.push(self.verify(&session_id).await?);
        }
        Ok(reports)
    }
}
