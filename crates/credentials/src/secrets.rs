//! Fetching a secret by reference. Errors name the reference, never a value.

use secrecy::SecretString;
use warden_core::SecretRef;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference}: environment variable is not set")]
    EnvMissing { reference: String },
    #[error("secret {reference}: cannot read the file: {reason}")]
    File { reference: String, reason: String },
    #[error("secret {reference}: the value is empty")]
    Empty { reference: String },
    /// `vault:`/`aws-sm:` passed to the free [`resolve`], which has no
    /// `[secrets]` configuration; use a `SecretResolver`.
    #[error("secret {reference}: this provider needs a SecretResolver configured from [secrets]")]
    Unsupported { reference: String },
    /// The reference needs a `[secrets.vault]` or `[secrets.aws]` section.
    #[error("secret {reference}: no [secrets.{section}] section is configured")]
    NotConfigured {
        reference: String,
        section: &'static str,
    },
    /// The provider answered, but not with the secret (denied, not found,
    /// unreachable, malformed). `reason` never holds a value or a token.
    #[error("secret {reference}: {reason}")]
    Provider { reference: String, reason: String },
    /// The secret exists but has no such field.
    #[error("secret {reference}: the secret has no field \"{field}\"")]
    MissingField { reference: String, field: String },
    /// `[secrets]` itself is unusable (bad address, unreadable CA, no auth).
    #[error("[secrets]: {0}")]
    Config(String),
}

/// Fetches the secret a reference points at. Files are read with one trailing
/// newline removed (as `echo pw > file` writes it).
pub async fn resolve(reference: &SecretRef) -> Result<SecretString, SecretError> {
    let name = reference.to_string();
    let value = match reference {
        SecretRef::Env(variable) => {
            std::env::var(variable).map_err(|_| SecretError::EnvMissing {
                reference: name.clone(),
            })?
        }
        SecretRef::File(path) => {
            let mut text =
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|error| SecretError::File {
                        reference: name.clone(),
                        reason: error.kind().to_string(),
                    })?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            text
        }
        SecretRef::Literal(secret) => return Ok(secret.clone()),
        SecretRef::Vault { .. } | SecretRef::AwsSecretsManager { .. } => {
            return Err(SecretError::Unsupported { reference: name });
        }
    };
    if value.is_empty() {
        return Err(SecretError::Empty { reference: name });
    }
    Ok(SecretString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[tokio::test]
    async fn resolves_files_and_names_references_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = resolve(&SecretRef::File(path.clone())).await.unwrap();
        assert_eq!(secret.expose_secret(), "s3cret");

        let missing = SecretRef::Env("WARDEN_TEST_SURELY_UNSET_VARIABLE".into());
        let error = resolve(&missing).await.unwrap_err().to_string();
        assert!(
            error.contains("env:WARDEN_TEST_SURELY_UNSET_VARIABLE"),
            "{error}"
        );

        std::fs::write(&path, "").unwrap();
        let error = resolve(&SecretRef::File(path))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("empty") && !error.contains("s3cret"),
            "{error}"
        );
    }
}
