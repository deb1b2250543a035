//! Loading the client-facing TLS certificate.

use crate::config::TlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[tls] cert {path}: {message}")]
    Cert { path: String, message: String },
    #[error("[tls] key {path}: {message}")]
    Key { path: String, message: String },
    #[error("[tls]: certificate and key do not form a usable server config: {0}")]
    Config(String),
}

/// Builds the acceptor for `[tls]`. The rustls crypto provider must already be installed.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let cert_path = config.cert.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|error| TlsError::Cert {
            path: cert_path.clone(),
            message: error.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::Cert {
            path: cert_path.clone(),
            message: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_path,
            message: "no PEM certificate found in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|error| TlsError::Key {
        path: config.key.display().to_string(),
        message: error.to_string(),
    })?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| TlsError::Config(error.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Installs aws-lc-rs as the process' rustls provider. Two providers in the
/// dependency graph make `ClientConfig::builder()` panic unless one is chosen;
/// call this first thing in every binary and test harness. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
