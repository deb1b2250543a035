//! `warden check`'s look at each PostgreSQL or MySQL target's static login:
//! a superuser, the owner of the tables (PostgreSQL), global privileges or
//! ALL on the target's database (MySQL) make policy the only wall (such a
//! login can ALTER, DROP and bypass GRANTs), so Warden says so. It only warns; a
//! target it cannot reach in a few seconds is left unchecked, and so are
//! remote and TLS targets unless `--probe-upstreams` asks for them.

use std::time::Duration;
use warden_core::config::{Config, CredentialsConfig, Protocol, TargetConfig, UpstreamTls};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Warnings (and notes on targets that were not checked), one per line.
/// `everywhere`: contact every target (`--probe-upstreams`), not only
/// plaintext ones on this machine.
pub fn warnings(config: &Config, everywhere: bool) -> Vec<String> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return vec!["cannot start a runtime to check upstream logins".into()];
    };
    runtime.block_on(async {
        let mut out = Vec::new();
        for target in &config.targets {
            if let Some(line) = check(target, everywhere).await {
                out.push(line);
            }
        }
        out
    })
}

async fn check(target: &TargetConfig, everywhere: bool) -> Option<String> {
    let CredentialsConfig::Static { user, password } = &target.credentials else {
        return None;
    };
    if !matches!(target.protocol, Protocol::Postgres | Protocol::Mysql) {
        return None;
    }
    let name = &target.name;
    let (host, _) = warden_core::config::split_host_port(&target.address)?;
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    // Without --probe-upstreams, `check` validates a file: it reaches out
    // only to this machine.
    if !everywhere && (!loopback || target.effective_upstream_tls() != UpstreamTls::Disable) {
        return Some(
            NotChecked::new(
                name,
                "only plaintext loopback upstreams are, unless --probe-upstreams is given",
            )
            .to_string(),
        );
    }
    let password = match warden_credentials::resolve(password).await {
        Ok(password) => password,
        Err(error) => return Some(NotChecked::new(name, error).to_string()),
    };
    if target.protocol == Protocol::Mysql {
        return mysql_check(target, user, password).await;
    }
    let probe = warden_postgres::probe::static_login_powers(target, user, &password);
    let powers = match within_probe_timeout(name, probe).await {
        Ok(powers) => powers,
        Err(note) => return Some(note.to_string()),
    };
    if powers.superuser {
        Some(format!(
            "warning: target \"{name}\": static login \"{user}\" is a superuser, so Warden's policy is the only wall; \
             give Warden a role with just the grants agents need (or use credentials = {{ mode = \"ephemeral\" }})"
        ))
    } else if powers.owned > 0 {
        Some(format!(
            "warning: target \"{name}\": static login \"{user}\" owns {} table(s) or view(s), so it can ALTER or DROP \
             them whatever GRANTs say; give Warden a role that does not own them",
            powers.owned
        ))
    } else {
        None
    }
}

/// The MySQL counterpart: global privileges or ALL on the target's database.
async fn mysql_check(
    target: &TargetConfig,
    user: &str,
    password: secrecy::SecretString,
) -> Option<String> {
    let name = &target.name;
    let probe = warden_mysql::probe::static_login_grants(target, user, password);
    let grants = match within_probe_timeout(name, probe).await {
        Ok(grants) => grants,
        Err(note) => return Some(note.to_string()),
    };
    let power = warden_mysql::probe::powers(&grants, target.upstream_database())?;
    Some(format!(
        "warning: target \"{name}\": static login \"{user}\" {power}, so Warden's policy is the only wall; \
         give Warden an account with just the grants agents need (or use credentials = {{ mode = \"ephemeral\" }})"
    ))
}

/// Why target `target`'s static login was not checked; displays as the
/// note line `warden check` prints.
struct NotChecked<'a> {
    target: &'a str,
    why: String,
}

impl<'a> NotChecked<'a> {
    fn new(target: &'a str, why: impl std::fmt::Display) -> Self {
        NotChecked {
            target,
            why: why.to_string(),
        }
    }
}

impl std::fmt::Display for NotChecked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "note: target \"{}\": its static login was not checked ({})",
            self.target, self.why
        )
    }
}

/// Runs a probe within [`PROBE_TIMEOUT`]; a failure or no answer means
/// target `name` was not checked.
async fn within_probe_timeout<'a, T, E: std::fmt::Display>(
    name: &'a str,
    probe: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, NotChecked<'a>> {
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(NotChecked::new(name, error)),
        Err(_) => Err(NotChecked::new(
            name,
            format!("no answer within {PROBE_TIMEOUT:?}"),
        )),
    }
}
