//! AWS Secrets Manager through the AWS SDK. The client is built on first
//! use (loading AWS config may look at the environment and instance
//! metadata), so building a resolver does no I/O.

use super::field::{field_value, parse_object};
use super::{field_error, provider_error};
use crate::secrets::SecretError;
use aws_config::meta::region::RegionProviderChain;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::SecretString;
use std::time::Duration;
use warden_core::config::AwsSecretsConfig;

/// Used when neither `[secrets.aws] region` nor the AWS environment names one.
const DEFAULT_REGION: &str = "us-east-1";

pub(crate) struct AwsSecrets {
    region: Option<String>,
    endpoint: Option<String>,
    credentials: Option<Credentials>,
    client: tokio::sync::OnceCell<Client>,
}

impl std::fmt::Debug for AwsSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSecrets")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AwsSecrets {
    /// `credentials`: fixed credentials instead of the AWS default chain.
    pub(crate) fn new(
        config: &AwsSecretsConfig,
        credentials: Option<Credentials>,
    ) -> Result<AwsSecrets, SecretError> {
        if let Some(endpoint) = &config.endpoint {
            let url = reqwest::Url::parse(endpoint).map_err(|error| {
                SecretError::Config(format!(
                    "[secrets.aws] endpoint {endpoint:?} is not a URL: {error}"
                ))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(SecretError::Config(format!(
                    "[secrets.aws] endpoint {endpoint:?} must be an http:// or https:// URL"
                )));
            }
        }
        Ok(AwsSecrets {
            region: config.region.clone().filter(|r| !r.is_empty()),
            endpoint: config.endpoint.clone(),
            credentials,
            client: tokio::sync::OnceCell::new(),
        })
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let region = RegionProviderChain::first_try(self.region.clone().map(Region::new))
                    .or_default_provider()
                    .or_else(Region::new(DEFAULT_REGION));
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(20))
                    .build();
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(region)
                    .timeout_config(timeouts);
                if let Some(endpoint) = &self.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                if let Some(credentials) = &self.credentials {
                    loader = loader.credentials_provider(credentials.clone());
                }
                Client::new(&loader.load().await)
            })
            .await
    }

    /// The SecretString of secret `name`, or its JSON field `field`.
    pub(crate) async fn get(
        &self,
        name: &str,
        field: Option<&str>,
        reference: &str,
    ) -> Result<SecretString, SecretError> {
        let output = self
            .client()
            .await
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|error| provider_error(reference, describe(&error)))?;
        let Some(text) = output.secret_string() else {
            return Err(provider_error(
                reference,
                "the secret has no SecretString (binary secrets are not supported)",
            ));
        };
        let Some(field) = field else {
            if text.is_empty() {
                return Err(SecretError::Empty {
                    reference: reference.to_string(),
                });
            }
            return Ok(SecretString::from(text.to_string()));
        };
        let data = parse_object(text).ok_or_else(|| {
            provider_error(
                reference,
                format!("the SecretString is not a JSON object, so it has no field \"{field}\""),
            )
        })?;
        field_value(&data, field).map_err(|error| field_error(reference, field, error))
    }
}

fn describe<R: std::fmt::Debug>(error: &SdkError<GetSecretValueError, R>) -> String {
    match error {
        SdkError::ServiceError(service) => {
            let error = service.err();
            if error.is_resource_not_found_exception() {
                return "AWS Secrets Manager has no such secret (ResourceNotFoundException)".into();
            }
            format!(
                "AWS Secrets Manager answered {}: {}",
                error.code().unwrap_or("an error"),
                error.message().unwrap_or("no message")
            )
        }
        other => format!(
            "cannot get the secret from AWS Secrets Manager: {}",
            DisplayErrorContext(other)
        ),
    }
}
