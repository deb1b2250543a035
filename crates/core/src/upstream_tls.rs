//! TLS towards upstreams, per a target's `upstream_tls`, shared by every
//! protocol crate: `verify-full` checks chain and name (against `upstream_ca`
//! or the system roots); `require` encrypts but accepts any certificate.

use crate::config::{TargetConfig, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a target's upstream TLS settings cannot be turned into a client config.
/// Typed so callers can tell a bad `upstream_ca` file from a bad name; the
/// texts are the ones operators have always seen in the log.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// The crypto provider supports none of the safe protocol versions.
    #[error("{0}")]
    Protocols(#[source] rustls::Error),
    /// The `upstream_ca` file cannot be read or is not PEM certificates.
    #[error("upstream_ca {}: {source}", path.display())]
    ReadCa {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate in `upstream_ca` is not a usable trust anchor.
    #[error("upstream_ca {}: {source}", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// Neither `upstream_ca` nor the system store gave a certificate.
    #[error("no CA certificates to verify the upstream with")]
    NoRoots,
    /// `upstream_server_name` (or the host) is not a DNS name or IP address.
    #[error("\"{name}\" is not a valid TLS name")]
    InvalidName { name: String },
}

/// The client config for a target, or why it cannot be built.
pub fn client_config(
    target: &TargetConfig,
    mode: UpstreamTls,
) -> Result<ClientConfig, UpstreamTlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(UpstreamTlsError::Protocols)?;
    match mode {
        UpstreamTls::Require => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()),
        UpstreamTls::VerifyFull | UpstreamTls::Disable => {
            let mut roots = RootCertStore::empty();
            match &target.upstream_ca {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                        .map_err(|source| UpstreamTlsError::ReadCa {
                            path: path.clone(),
                            source,
                        })?;
                    for cert in certs {
                        roots.add(cert).map_err(|source| UpstreamTlsError::BadCa {
                            path: path.clone(),
                            source,
                        })?;
                    }
                }
                None => {
                    let native = rustls_native_certs::load_native_certs();
                    for cert in native.certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            if roots.is_empty() {
                return Err(UpstreamTlsError::NoRoots);
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
    }
}

/// The name the upstream certificate must carry.
pub fn server_name(target: &TargetConfig) -> Result<ServerName<'static>, UpstreamTlsError> {
    let name = target
        .upstream_server_name
        .clone()
        .unwrap_or_else(|| target.host().to_string());
    ServerName::try_from(name.clone()).map_err(|_| UpstreamTlsError::InvalidName { name })
}

/// `upstream_tls = "require"`: any certificate, but signatures still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
