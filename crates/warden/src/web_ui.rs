//! Builds the reviewer web UI's state from `[web]`: the cookie key, the
//! IdP login and the recording reader for replay timelines.

use anyhow::{Context, Result};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use warden_core::config::Config;
use warden_core::engines::Authenticator;
use warden_credentials::SecretResolver;
use warden_identity::IdentityService;
use warden_reviews::ReviewService;
use warden_store::Store;
use warden_web::ui::{CookieKey, CookiePolicy, OidcLogin, UiSettings, UiState};

/// The UI's state, or `None` with `[web] enabled = false`. The recording
/// keys are those `serve` already resolved (the timeline reads recordings).
pub async fn ui_state(
    config: &Config,
    reviews: &ReviewService,
    store: &Arc<dyn Store>,
    identity: &Arc<IdentityService>,
    secrets: &SecretResolver,
    (signing_key, encryption_key): (Option<SecretString>, Option<SecretString>),
) -> Result<Option<UiState>> {
    let web = &config.web;
    if !web.enabled {
        return Ok(None);
    }
    let key = match &web.session_key {
        Some(reference) => {
            let secret = secrets
                .resolve(reference)
                .await
                .context("[web] session_key")?;
            CookieKey::from_secret(secret.expose_secret())
        }
        None => {
            tracing::info!(
                "[web] session_key is not set: web logins are signed with a key of this process \
                 (they end on restart and are not valid on other nodes)"
            );
            CookieKey::random()
        }
    };
    let cookies = CookiePolicy::for_public_url(config.server.public_url.as_deref());
    if !cookies.secure {
        tracing::warn!(
            "[server] public_url is plain http:// off loopback: web login cookies cannot be \
             Secure; put TLS in front of the admin listener and use an https:// public_url"
        );
    }
    let oidc = match (&web.oidc, &config.server.public_url) {
        (Some(oidc), Some(public_url)) => {
            let client_secret = match &oidc.client_secret {
                Some(reference) => Some(
                    secrets
                        .resolve(reference)
                        .await
                        .context("[web.oidc] client_secret")?,
                ),
                None => None,
            };
            let login = OidcLogin::new(oidc, client_secret, public_url, identity.clone())
                .map_err(anyhow::Error::msg)?;
            Some(Arc::new(login))
        }
        _ => None,
    };
    let recordings = if config.recording.enabled {
        let reader = warden_recording::reader_from_config(
            &config.recording,
            &config.server.data_dir,
            signing_key,
            encryption_key,
        )
        .context("cannot open recordings for the web UI")?;
        Some(Arc::new(reader))
    } else {
        None
    };
    let authenticator: Arc<dyn Authenticator> = identity.clone();
    Ok(Some(UiState {
        reviews: reviews.clone(),
        store: store.clone(),
        authenticator,
        oidc,
        recordings,
        key,
        cookies,
        settings: Arc::new(UiSettings::new(config)),
    }))
}
