//! Shared helpers for the identity integration tests.
#![allow(dead_code)]

use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden_core::Identity;
use warden_core::config::{AccessKeyConfig, IdentityConfig, OidcConfig, Protocol};
use warden_core::engines::Authenticator;
use warden_core::engines::{AccessKeyRecord, AccessKeyStore, AuthContext, AuthError, StoreError};
use warden_identity::IdentityService;

/// An in-memory key store.
#[derive(Default)]
pub struct MemoryKeys {
    keys: Mutex<HashMap<String, AccessKeyRecord>>,
    pub broken: std::sync::atomic::AtomicBool,
}

impl MemoryKeys {
    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::database(
                "cannot read the keys",
                "database is locked",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl AccessKeyStore for MemoryKeys {
    async fn insert_key(&self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        self.check()?;
        self.keys
            .lock()
            .expect("lock")
            .insert(key.id.clone(), key.clone());
        Ok(())
    }
    async fn find_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
        self.check()?;
        Ok(self.keys.lock().expect("lock").get(id).cloned())
    }
    async fn list_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        self.check()?;
        Ok(self.keys.lock().expect("lock").values().cloned().collect())
    }
    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        self.check()?;
        Ok(match self.keys.lock().expect("lock").get_mut(id) {
            Some(record) => {
                record.revoked_at = Some(time::OffsetDateTime::now_utc());
                true
            }
            None => false,
        })
    }
}

/// An issuer config with the documented defaults.
pub fn oidc_config(issuer: &str, jwks_url: Option<String>) -> OidcConfig {
    OidcConfig {
        issuer: issuer.to_string(),
        audience: "warden".into(),
        groups_claim: "groups".into(),
        jwks_url,
        algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
        leeway: Duration::from_secs(30),
        jwks_cache_ttl: Duration::from_secs(600),
        jwks_min_refetch: Duration::from_secs(10),
    }
}

pub fn identity_config(oidc: Vec<OidcConfig>) -> IdentityConfig {
    IdentityConfig {
        oidc,
        access_keys: AccessKeyConfig::default(),
    }
}

pub async fn service(oidc: Vec<OidcConfig>) -> IdentityService {
    IdentityService::new(&identity_config(oidc), Arc::new(MemoryKeys::default()))
        .await
        .expect("valid identity config")
}

pub fn context() -> AuthContext {
    AuthContext {
        client_addr: "127.0.0.1:40000".parse().expect("addr"),
        protocol: Protocol::Postgres,
        target: "orders".into(),
    }
}

pub async fn auth(service: &IdentityService, credential: &str) -> Result<Identity, AuthError> {
    service
        .authenticate(&SecretString::from(credential.to_string()), &context())
        .await
}

/// Authentication must fail; returns the reason, checked not to leak the credential.
pub async fn refused(service: &IdentityService, credential: &str) -> String {
    match auth(service, credential).await {
        Ok(identity) => panic!("credential accepted as {identity:?}"),
        Err(error) => {
            let reason = error.to_string();
            assert!(
                credential.len() < 6 || !reason.contains(credential),
                "the reason leaks the credential: {reason}"
            );
            if let Some(signature) = credential.rsplit('.').next().filter(|s| s.len() > 8) {
                assert!(
                    !reason.contains(signature),
                    "the reason leaks the signature: {reason}"
                );
            }
            reason
        }
    }
}
