//! `warden check`: validate a config without starting anything.

use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use warden_core::config::Config;

pub fn run(path: &Path, probe_upstreams: bool) -> Result<ExitCode> {
    match Config::load(path) {
        Ok(config) => {
            if let Err(error) = config.check_protocols(&crate::serve::available_protocols()) {
                eprintln!("{error}");
                return Ok(ExitCode::FAILURE);
            }
            if let Err(error) = warden_policy::ReloadablePolicy::from_config(&config) {
                eprintln!("{}: {error}", path.display());
                return Ok(ExitCode::FAILURE);
            }
            for target in &config.targets {
                if matches!(
                    target.credentials,
                    warden_core::config::CredentialsConfig::Ephemeral(_)
                ) && let Err(error) = warden_credentials::ephemeral::validate_target(target)
                {
                    eprintln!("{}: target \"{}\": {error}", path.display(), target.name);
                    return Ok(ExitCode::FAILURE);
                }
            }
            let masking =
                warden_masking::MaskingSettings::from_config(&config.masking, Some(Vec::new()))
                    .and_then(|settings| settings.validate_policies(&config.policies));
            if let Err(error) = masking {
                eprintln!("{}: {error}", path.display());
                return Ok(ExitCode::FAILURE);
            }
            if let Some(tls) = &config.tls
                && let Err(error) = warden_core::tls::acceptor(tls)
            {
                eprintln!("{}: {error}", path.display());
                return Ok(ExitCode::FAILURE);
            }
            for warning in super::check_upstream::warnings(&config, probe_upstreams) {
                eprintln!("{}: {warning}", path.display());
            }
            println!(
                "{}: ok ({} listener(s), {} target(s), {} policy rule(s))",
                path.display(),
                config.listeners.len(),
                config.targets.len(),
                config.policies.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
