//! Reading a recording back, tolerating a last line cut short by a crash.

use crate::error::RecordingError;
use crate::line::{RecordedEvent, parse_line};
use std::path::{Path, PathBuf};

/// A recording as read from disk.
#[derive(Clone, Debug)]
pub struct Recording {
    pub events: Vec<RecordedEvent>,
    /// The last line was incomplete (Warden stopped while writing it) and
    /// was left out.
    pub truncated: bool,
}

impl Recording {
    /// Whether the recording has its `end` event.
    pub fn is_complete(&self) -> bool {
        self.events
            .last()
            .is_some_and(|e| e.event.type_name() == "end")
    }
}

/// Where a session's recording lives in `dir`.
pub fn recording_path(dir: &Path, session_id: &str) -> PathBuf {
    dir.join(format!("{session_id}.ndjson"))
}

/// Session ids name files: only letters, digits, `-` and `_`, so no id can
/// point outside the recordings directory.
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

/// Reads `{dir}/{session_id}.ndjson`. A bad last line is left out and
/// flagged in [`Recording::truncated`]; a bad line before it is an error.
pub fn read_recording(dir: &Path, session_id: &str) -> Result<Recording, RecordingError> {
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

/// Parses a whole file; `Err((line number, message))` for a bad inner line.
pub(crate) fn parse_recording(bytes: &[u8]) -> Result<Recording, (usize, String)> {
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| (i + 1, line))
        .collect();
    let mut events = Vec::with_capacity(lines.len());
    let mut truncated = false;
    for (index, (number, line)) in lines.iter().enumerate() {
        let parsed = std::str::from_utf8(line)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(parse_line);
        match parsed {
            Ok(event) => {
                if let Some(previous) = events.last().map(|e: &RecordedEvent| e.seq)
                    && event.seq <= previous
                {
                    return Err((*number, format!("seq {} after seq {previous}", event.seq)));
                }
                events.push(event);
            }
            Err(_) if index + 1 == lines.len() => truncated = true,
            Err(message) => return Err((*number, message)),
        }
    }
    Ok(Recording { events, truncated })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const START: &str = r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00.000Z","offset_ms":0.0,"type":"end","bytes_from_client":1,"bytes_to_client":2,"statements":0,"reason":"x"}"#;

    #[test]
    fn session_ids_cannot_escape_the_directory() {
        for bad in ["", "..", "../etc/passwd", "a/b", "a.b", "a b", "a\0b"] {
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
