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
    #[error("secret {reference}: this provider is not available in this build")]
    Unsupported { reference: String },
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
