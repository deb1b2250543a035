//! Configuration errors, and locating the line they are about.

/// A configuration problem, with where it is and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Adds a hint to serde's terse messages for the mistakes people make most.
pub(super) fn explain_toml_error(message: &str) -> String {
    let message = message.trim().to_string();
    if message.starts_with("unknown field") {
        format!("{message} (check the spelling; every key is listed in docs/config.md)")
    } else if message.starts_with("missing field") {
        format!("{message} (this key is required here; see docs/config.md)")
    } else {
        message
    }
}

/// 1-based line and column of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// Line and column of the first occurrence of `needle`, or 1:1.
pub(super) fn find_line(text: &str, needle: &str) -> (usize, usize) {
    text.find(needle)
        .map_or((1, 1), |offset| line_column(text, offset))
}
