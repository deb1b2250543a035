//! Certificates for tests, made with openssl.

use crate::process::run;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed EC certificate for `localhost` and `127.0.0.1`, written to
/// `dir/{stem}.pem` and `dir/{stem}-key.pem`; returns (certificate, key).
pub fn self_signed(dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}-key.pem"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))
    .context("openssl could not make a test certificate")?;
    Ok((cert, key))
}
