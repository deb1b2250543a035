//! `warden check`'s look at a MySQL target's static login: its grants, read
//! with `SHOW GRANTS` over Warden's own upstream client.

use crate::upstream;
use mysql_common::constants::CapabilityFlags as Caps;
use secrecy::SecretString;
use warden_core::config::TargetConfig;
use warden_core::engines::UpstreamCredential;

/// utf8mb4_general_ci: a collation Warden lexes under.
const COLLATION: u8 = 45;

/// Why the grants of a static login could not be read: logging in failed or
/// `SHOW GRANTS` did. Shows the upstream error's text as `warden check`
/// always printed it.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Login(#[source] upstream::UpstreamError),
    #[error("{0}")]
    ShowGrants(#[source] upstream::UpstreamError),
}

/// The login's `SHOW GRANTS` lines, or why they could not be read.
pub async fn static_login_grants(
    target: &TargetConfig,
    user: &str,
    password: SecretString,
) -> Result<Vec<String>, ProbeError> {
    let credential = UpstreamCredential {
        user: user.to_string(),
        password,
        lease: None,
    };
    let caps = Caps::CLIENT_PROTOCOL_41 | Caps::CLIENT_DEPRECATE_EOF;
    let mut upstream = upstream::connect_target(target, &credential, caps, COLLATION)
        .await
        .map_err(ProbeError::Login)?;
    let rows = upstream
        .text_rows("SHOW GRANTS", 1)
        .await
        .map_err(ProbeError::ShowGrants)?;
    upstream.stream.close().await;
    Ok(rows.into_iter().filter_map(|mut row| row.pop()).collect())
}

/// What in `grants` makes policy the only wall: global privileges (beyond
/// USAGE) or ALL PRIVILEGES on the target's database (DROP, ALTER, GRANT).
pub fn powers(grants: &[String], database: &str) -> Option<String> {
    for grant in grants {
        let upper = grant.to_ascii_uppercase();
        let Some((privileges, rest)) = upper
            .strip_prefix("GRANT ")
            .and_then(|g| g.split_once(" ON "))
        else {
            continue;
        };
        let on = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .replace('`', "");
        if on == "*.*" && privileges.trim() != "USAGE" {
            return Some(format!("holds global privileges ({})", privileges.trim()));
        }
        let db = on.strip_suffix(".*").unwrap_or_default();
        if privileges.contains("ALL PRIVILEGES") && db.eq_ignore_ascii_case(database) {
            return Some(format!(
                "holds ALL PRIVILEGES on `{database}` (it can DROP and ALTER whatever policy says)"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_and_database_wide_powers_are_named() {
        let grants = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert!(
            powers(
                &grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
                "orders"
            )
            .is_some()
        );
        assert!(powers(&grants(&["GRANT SUPER ON *.* TO `app`@`%`"]), "orders").is_some());
        assert!(
            powers(
                &grants(&["GRANT ALL PRIVILEGES ON `orders`.* TO `app`@`%`"]),
                "orders"
            )
            .is_some()
        );
        assert_eq!(
            powers(
                &grants(&[
                    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*X'",
                    "GRANT SELECT, INSERT ON `orders`.* TO `app`@`%`",
                    "GRANT ALL PRIVILEGES ON `other`.* TO `app`@`%`",
                ]),
                "orders"
            ),
            None
        );
    }
}
