//! `mysql_native_password` for Warden access keys: the MySQL user name is the
//! key id (`wdn_<id>` or `<id>`), the password the whole key. The scramble
//! check needs only SHA1(SHA1(key)), which the store keeps; never the key.

use async_trait::async_trait;
use std::sync::Arc;
use warden_core::Identity;
use warden_core::engines::{AuthContext, AuthError};
use warden_identity::IdentityService;

pub struct AccessKeyNativePassword {
    pub identity: Arc<IdentityService>,
}

/// The key id a MySQL user name names, if it looks like one.
fn key_id(user: &str) -> Option<&str> {
    let id = user.strip_prefix("wdn_").unwrap_or(user);
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[async_trait]
impl warden_mysql::NativePasswordVerifier for AccessKeyNativePassword {
    async fn verify(
        &self,
        user: &str,
        scramble: &[u8],
        response: &[u8],
        _context: &AuthContext,
    ) -> Result<Option<Identity>, AuthError> {
        let Some(id) = key_id(user) else {
            return Ok(None);
        };
        self.identity
            .authenticate_mysql_native(id, scramble, response)
            .await
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_ids_take_the_native_path() {
        assert_eq!(key_id("wdn_0123456789abcdef"), Some("0123456789abcdef"));
        assert_eq!(key_id("0123456789abcdef"), Some("0123456789abcdef"));
        assert_eq!(key_id("agent"), None);
        assert_eq!(key_id("wdn_0123456789abcdeg"), None);
    }
}
