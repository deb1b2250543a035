//! Built-in detector kinds and their config names.

use crate::error::MaskingError;

/// A built-in detector. Each one pairs a candidate regex with a validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetectorKind {
    /// E-mail addresses (`email`).
    Email,
    /// Phone numbers, E.164 and common national formats (`phone`).
    Phone,
    /// Payment card numbers, Luhn- and IIN-checked (`credit_card`).
    CreditCard,
    /// IBANs, length- and mod-97-checked (`iban`).
    Iban,
    /// US social security numbers: dashed form or after an `SSN` label (`us_ssn`).
    UsSsn,
    /// IPv4 and IPv6 addresses (`ip`).
    Ip,
    /// JSON Web Tokens with a decodable JSON header carrying `alg` (`jwt`).
    Jwt,
    /// AWS access key ids and labelled secret access keys (`aws_key`).
    AwsKey,
    /// PEM private key blocks (`private_key`).
    PrivateKey,
    /// GitHub, GitLab, Slack and Stripe tokens (`token`).
    Token,
    /// Passwords in URLs and `password=` connection strings (`url_password`).
    UrlPassword,
    /// `Bearer` credential values, e.g. in `Authorization:` headers (`bearer`).
    Bearer,
}

/// Every config name accepted by [`parse_detector_names`].
pub const KNOWN_NAMES: &[&str] = &[
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "ip",
    "secret",
    "jwt",
    "aws_key",
    "private_key",
    "token",
    "url_password",
    "bearer",
];

impl DetectorKind {
    /// All built-in detectors.
    pub const ALL: [DetectorKind; 12] = [
        DetectorKind::Email,
        DetectorKind::Phone,
        DetectorKind::CreditCard,
        DetectorKind::Iban,
        DetectorKind::UsSsn,
        DetectorKind::Ip,
        DetectorKind::Jwt,
        DetectorKind::AwsKey,
        DetectorKind::PrivateKey,
        DetectorKind::Token,
        DetectorKind::UrlPassword,
        DetectorKind::Bearer,
    ];

    /// The detectors the config name `secret` stands for.
    pub const SECRETS: [DetectorKind; 6] = [
        DetectorKind::Jwt,
        DetectorKind::AwsKey,
        DetectorKind::PrivateKey,
        DetectorKind::Token,
        DetectorKind::UrlPassword,
        DetectorKind::Bearer,
    ];

    /// The config name of this detector.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Email => "email",
            DetectorKind::Phone => "phone",
            DetectorKind::CreditCard => "credit_card",
            DetectorKind::Iban => "iban",
            DetectorKind::UsSsn => "us_ssn",
            DetectorKind::Ip => "ip",
            DetectorKind::Jwt => "jwt",
            DetectorKind::AwsKey => "aws_key",
            DetectorKind::PrivateKey => "private_key",
            DetectorKind::Token => "token",
            DetectorKind::UrlPassword => "url_password",
            DetectorKind::Bearer => "bearer",
        }
    }
}

impl std::fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Turn policy `mask = [...]` names into detectors: sorted, without duplicates.
/// `secret` expands to every secret detector. Names are matched case-insensitively.
pub fn parse_detector_names(names: &[String]) -> Result<Vec<DetectorKind>, MaskingError> {
    let mut out = Vec::new();
    for raw in names {
        let name = raw.trim().to_ascii_lowercase();
        if name == "secret" || name == "secrets" {
            out.extend_from_slice(&DetectorKind::SECRETS);
            continue;
        }
        match DetectorKind::ALL.iter().find(|k| k.name() == name) {
            Some(kind) => out.push(*kind),
            None => return Err(MaskingError::UnknownDetector(raw.clone())),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_known_names_and_expands_secret() {
        let kinds = parse_detector_names(&names(&["email", "secret", "jwt", "IBAN"])).unwrap();
        assert!(kinds.contains(&DetectorKind::Email));
        assert!(kinds.contains(&DetectorKind::Iban));
        for s in DetectorKind::SECRETS {
            assert!(kinds.contains(&s));
        }
        assert_eq!(kinds.len(), 2 + DetectorKind::SECRETS.len());
    }

    #[test]
    fn every_kind_round_trips_by_name() {
        for k in DetectorKind::ALL {
            assert!(KNOWN_NAMES.contains(&k.name()));
            assert_eq!(parse_detector_names(&names(&[k.name()])).unwrap(), vec![k]);
        }
    }

    #[test]
    fn rejects_unknown_names() {
        let err = parse_detector_names(&names(&["email", "passport"])).unwrap_err();
        assert!(err.to_string().contains("passport"));
    }
}
