//! Log set-up: human-readable text or JSON lines, filtered by `--log-level`
//! (or RUST_LOG). Secrets are `SecretString`s that cannot be formatted, and
//! every line also passes a scrubber: values that the masking detectors
//! recognise (tokens, keys, e-mails, card numbers …) are replaced before the
//! line reaches stderr, whichever field or message carried them.

use std::io::Write;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use warden_masking::{DetectorKind, Scanner, Strategy};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat, level: &str) {
    use std::io::IsTerminal;
    // An empty RUST_LOG counts as unset (it would otherwise silence everything).
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok());
    let filter = from_env
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(ScrubbedStderr::new());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Detectors applied to log lines. IP addresses are left alone: client and
/// upstream addresses are what operators read logs for.
fn log_detectors() -> Vec<DetectorKind> {
    DetectorKind::ALL
        .into_iter()
        .filter(|kind| *kind != DetectorKind::Ip)
        .collect()
}

/// Hands the fmt layer one buffer per event and scrubs it on the way out.
#[derive(Clone)]
pub struct ScrubbedStderr {
    scanner: Option<Arc<Scanner>>,
}

impl ScrubbedStderr {
    pub fn new() -> Self {
        ScrubbedStderr {
            scanner: Scanner::new(&log_detectors(), &[]).ok().map(Arc::new),
        }
    }
}

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedLine;

    fn make_writer(&'a self) -> ScrubbedLine {
        ScrubbedLine {
            buf: Vec::with_capacity(256),
            scanner: self.scanner.clone(),
        }
    }
}

/// One formatted event; written (scrubbed) when dropped.
pub struct ScrubbedLine {
    buf: Vec<u8>,
    scanner: Option<Arc<Scanner>>,
}

impl Write for ScrubbedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let line = match &self.scanner {
            Some(scanner) => scanner.mask(&text, &Strategy::Redact),
            // The detectors failed to compile (never expected): keep the line
            // out rather than risk a secret.
            None => "[log line withheld: scrubber unavailable]\n".into(),
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_scrubbed() {
        let writer = ScrubbedStderr::new();
        let scanner = writer.scanner.clone().unwrap();
        let line = "debug statement=\"select 'ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8'\" peer=127.0.0.1:5432 mail=bob@example.com";
        let out = scanner.mask(line, &Strategy::Redact);
        assert!(!out.contains("ghp_a1B2"), "{out}");
        assert!(!out.contains("bob@example.com"), "{out}");
        assert!(out.contains("127.0.0.1:5432"), "{out}");
    }
}
