//! References to secrets kept outside the config file.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;

/// Where a secret lives: `env:NAME`, `file:PATH`, `vault:PATH#FIELD`,
/// `aws-sm:NAME#FIELD`, or (with a warning) a literal value.
///
/// `Debug` and `Display` never show a literal's value.
#[derive(Clone)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    Vault {
        path: String,
        field: String,
    },
    AwsSecretsManager {
        name: String,
        field: Option<String>,
    },
    /// A secret written into the config itself. Accepted with a warning.
    Literal(secrecy::SecretString),
}

impl PartialEq for SecretRef {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (self, other) {
            (SecretRef::Env(a), SecretRef::Env(b)) => a == b,
            (SecretRef::File(a), SecretRef::File(b)) => a == b,
            (SecretRef::Vault { path: a, field: x }, SecretRef::Vault { path: b, field: y }) => {
                a == b && x == y
            }
            (
                SecretRef::AwsSecretsManager { name: a, field: x },
                SecretRef::AwsSecretsManager { name: b, field: y },
            ) => a == b && x == y,
            (SecretRef::Literal(a), SecretRef::Literal(b)) => {
                a.expose_secret() == b.expose_secret()
            }
            _ => false,
        }
    }
}

/// Why a secret reference is malformed: a known scheme without the parts it
/// needs. Never carries the text itself, which may be a literal secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error("`env:` needs a variable name, e.g. env:ORDERS_PASSWORD")]
    EnvWithoutName,
    #[error("`file:` needs a path, e.g. file:/run/secrets/orders")]
    FileWithoutPath,
    #[error("`vault:` needs PATH#FIELD, e.g. vault:secret/data/orders#password")]
    VaultWithoutField,
    #[error("`aws-sm:` needs NAME#FIELD, e.g. aws-sm:prod/orders#password")]
    AwsWithoutName,
}

impl SecretRef {
    /// Reads `env:`, `file:`, `vault:` and `aws-sm:` references; anything
    /// else is a literal secret.
    pub fn parse(text: &str) -> Result<SecretRef, SecretRefError> {
        if let Some(name) = text.strip_prefix("env:") {
            if name.is_empty() {
                return Err(SecretRefError::EnvWithoutName);
            }
            return Ok(SecretRef::Env(name.to_string()));
        }
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SecretRefError::FileWithoutPath);
            }
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("vault:") {
            let (path, field) = rest
                .split_once('#')
                .ok_or(SecretRefError::VaultWithoutField)?;
            if path.is_empty() || field.is_empty() {
                return Err(SecretRefError::VaultWithoutField);
            }
            return Ok(SecretRef::Vault {
                path: path.to_string(),
                field: field.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("aws-sm:") {
            let (name, field) = match rest.split_once('#') {
                Some((name, field)) => (name, Some(field.to_string())),
                None => (rest, None),
            };
            if name.is_empty() {
                return Err(SecretRefError::AwsWithoutName);
            }
            return Ok(SecretRef::AwsSecretsManager {
                name: name.to_string(),
                field,
            });
        }
        Ok(SecretRef::Literal(secrecy::SecretString::from(
            text.to_string(),
        )))
    }

    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }
}

/// Shows the reference, never a literal value.
impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::Vault { path, field } => write!(f, "vault:{path}#{field}"),
            SecretRef::AwsSecretsManager { name, field } => match field {
                Some(field) => write!(f, "aws-sm:{name}#{field}"),
                None => write!(f, "aws-sm:{name}"),
            },
            SecretRef::Literal(_) => f.write_str("(literal secret)"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SecretRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serializes the reference form; a literal is written as a placeholder.
impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            SecretRef::parse("env:X").unwrap(),
            SecretRef::Env("X".into())
        );
        assert!(matches!(
            SecretRef::parse("file:/a").unwrap(),
            SecretRef::File(_)
        ));
        assert!(matches!(
            SecretRef::parse("vault:secret/data/x#password").unwrap(),
            SecretRef::Vault { .. }
        ));
        assert_eq!(
            SecretRef::parse("vault:nofield"),
            Err(SecretRefError::VaultWithoutField)
        );
        assert_eq!(
            SecretRef::parse("env:").unwrap_err().to_string(),
            "`env:` needs a variable name, e.g. env:ORDERS_PASSWORD"
        );
        let literal = SecretRef::parse("hunter2").unwrap();
        assert!(literal.is_literal());
        assert!(!format!("{literal:?} {literal}").contains("hunter2"));
    }
}
