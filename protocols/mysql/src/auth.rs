//! Client authentication: which credential the client gave, and who it is.
//!
//! - `mysql_native_password` answers are checked by a [`NativePasswordVerifier`]
//!   (Warden access keys: the store keeps SHA1(SHA1(key)), never the key);
//! - everything else (OIDC JWTs, keys sent in clear) goes through
//!   `gateway.authenticator` as text, fetched with `mysql_clear_password`
//!   only over TLS or loopback — the same scheme as AWS RDS IAM auth.

use crate::codec::PacketStream;
use crate::handshake::{self, ClientCredential, ClientHello, HandshakeError};
use crate::stream::BoxStream;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use tokio::time::Instant;
use warden_core::engines::{AuthContext, AuthError};
use warden_core::{Gateway, Identity};

/// Checks a `mysql_native_password` answer. Wired by the `warden` binary to
/// the access-key store (`warden_identity::verify_mysql_native_password`).
#[async_trait]
pub trait NativePasswordVerifier: Send + Sync {
    /// `scramble` is the 20-byte nonce Warden sent; `response` the client's
    /// 20-byte answer. `Ok(None)` means "this user is not an access key
    /// holder": Warden then asks for the credential in clear instead.
    async fn verify(
        &self,
        user: &str,
        scramble: &[u8],
        response: &[u8],
        context: &AuthContext,
    ) -> Result<Option<Identity>, AuthError>;
}

/// Why a client was refused at login. The client only ever gets the generic
/// 1045; this goes to the audit trail and the log.
#[derive(Debug, thiserror::Error)]
pub enum Denial {
    #[error("a cleartext credential was sent without TLS from a non-loopback address")]
    CleartextWithoutTls,
    /// Only a cleartext credential would do, and the connection cannot carry one.
    #[error("the credential must be sent in clear, which Warden allows only over TLS or loopback")]
    CleartextNotAllowed,
    #[error("native password check timed out")]
    NativeTimeout,
    #[error("no credential was presented")]
    NoCredential,
    #[error("authentication timed out")]
    Timeout,
    /// The authenticator (or the native-password verifier) refused the credential.
    #[error("{0}")]
    Refused(#[from] AuthError),
}

/// Why authentication did not produce an identity.
pub enum AuthFailure {
    /// The credential was wrong or missing: generic 1045, audited with this reason.
    Denied(Denial),
    /// The connection phase broke (timeout, bad packet): the client was told.
    Handshake(HandshakeError),
}

/// Authenticates the client of `hello` on `client`.
pub async fn authenticate(
    gateway: &Gateway,
    native: Option<&dyn NativePasswordVerifier>,
    client: &mut PacketStream<BoxStream>,
    hello: &mut ClientHello,
    peer: SocketAddr,
    deadline: Instant,
    context: &AuthContext,
) -> Result<Identity, AuthFailure> {
    let cleartext_ok = hello.tls || peer.ip().is_loopback();
    let credential = std::mem::replace(&mut hello.credential, ClientCredential::Other);
    let token = match credential {
        ClientCredential::Cleartext(token) => {
            if !cleartext_ok {
                return Err(AuthFailure::Denied(Denial::CleartextWithoutTls));
            }
            token
        }
        ClientCredential::Native(response) => {
            let checked = match native {
                Some(verifier) => {
                    let verify =
                        verifier.verify(hello.login_user(), &hello.scramble, &response, context);
                    tokio::time::timeout_at(deadline, verify)
                        .await
                        .map_err(|_| AuthFailure::Denied(Denial::NativeTimeout))?
                        .map_err(|error| AuthFailure::Denied(Denial::Refused(error)))?
                }
                None => None,
            };
            if let Some(identity) = checked {
                return Ok(identity);
            }
            ask_cleartext(client, hello, cleartext_ok, deadline).await?
        }
        ClientCredential::Other => ask_cleartext(client, hello, cleartext_ok, deadline).await?,
    };
    if token.expose_secret().is_empty() {
        return Err(AuthFailure::Denied(Denial::NoCredential));
    }
    let check = gateway.authenticator.authenticate(&token, context);
    tokio::time::timeout_at(deadline, check)
        .await
        .map_err(|_| AuthFailure::Denied(Denial::Timeout))?
        .map_err(|error| AuthFailure::Denied(Denial::Refused(error)))
}

/// Switches the client to `mysql_clear_password` and reads its answer.
async fn ask_cleartext(
    client: &mut PacketStream<BoxStream>,
    hello: &mut ClientHello,
    cleartext_ok: bool,
    deadline: Instant,
) -> Result<SecretString, AuthFailure> {
    if !cleartext_ok {
        return Err(AuthFailure::Denied(Denial::CleartextNotAllowed));
    }
    match handshake::within(deadline, handshake::request_cleartext(client, hello)).await {
        Ok(token) => Ok(token),
        Err(error) => {
            let seq = hello.next_seq.wrapping_add(1);
            handshake::tell_stream(client, seq, &error).await;
            Err(AuthFailure::Handshake(error))
        }
    }
}
