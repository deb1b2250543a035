//! The `s3` sink: `{prefix}/{session_id}/{name}` in a bucket of any
//! S3-compatible store. Objects up to [`MULTIPART_THRESHOLD`] are one
//! `PutObject`; bigger ones a multipart upload in [`PART_SIZE`] parts.

use super::{Sink, SinkError};
use crate::reader::check_session_id;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 5 * 1024 * 1024;
/// The part size of multipart uploads (S3's minimum).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// How to reach the bucket.
#[derive(Clone)]
pub struct S3SinkConfig {
    pub bucket: String,
    /// `http://127.0.0.1:9000`; AWS's endpoint for the region when `None`.
    pub endpoint: Option<String>,
    /// `us-east-1` when `None`.
    pub region: Option<String>,
    /// Key prefix; leading and trailing `/` are ignored.
    pub prefix: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

impl std::fmt::Debug for S3SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3SinkConfig")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3SinkConfig {
    /// Static credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub fn credentials_from_env() -> Result<(String, SecretString), SinkError> {
        let id = std::env::var("AWS_ACCESS_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty());
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .ok()
            .filter(|v| !v.is_empty());
        match (id, secret) {
            (Some(id), Some(secret)) => Ok((id, SecretString::from(secret))),
            _ => Err(SinkError::new(
                "the s3 sink needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Sink {
    /// Builds the client (no request is made). Requests time out instead of
    /// hanging; retrying is the caller's job (the uploader retries forever).
    pub fn new(config: &S3SinkConfig) -> S3Sink {
        let credentials = Credentials::new(
            &config.access_key_id,
            config.secret_access_key.expose_secret(),
            None,
            None,
            "warden-recording",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(
                config
                    .region
                    .clone()
                    .unwrap_or_else(|| "us-east-1".to_string()),
            ))
            .credentials_provider(credentials)
            .force_path_style(config.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            )
            // Self-hosted stores differ in their support of the newer
            // default checksums; send them only where S3 requires them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        S3Sink {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            prefix: config.prefix.trim_matches('/').to_string(),
        }
    }

    /// The SDK client, e.g. to create the bucket in tests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn session_prefix(&self, session_id: &str) -> Result<String, SinkError> {
        check_session_id(session_id).map_err(|e| SinkError::new(e.to_string()))?;
        Ok(if self.prefix.is_empty() {
            format!("{session_id}/")
        } else {
            format!("{}/{session_id}/", self.prefix)
        })
    }

    fn key(&self, session_id: &str, name: &str) -> Result<String, SinkError> {
        if name.is_empty() || name.contains('/') {
            return Err(SinkError::new(format!("{name:?} is not an object name")));
        }
        Ok(format!("{}{name}", self.session_prefix(session_id)?))
    }

    fn fail(&self, doing: &str, key: &str, error: impl std::error::Error) -> SinkError {
        SinkError::new(format!(
            "s3://{}/{key}: cannot {doing}: {}",
            self.bucket,
            DisplayErrorContext(error)
        ))
    }

    async fn put_multipart(&self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.fail("start a multipart upload", key, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| SinkError::new(format!("s3://{}/{key}: no upload id", self.bucket)))?
            .to_string();
        let result = self.upload_parts(key, &upload_id, &bytes).await;
        if result.is_err() {
            // Best effort: the bucket's lifecycle rules clean up otherwise.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        bytes: &[u8],
    ) -> Result<(), SinkError> {
        let mut parts = Vec::new();
        for (i, part) in bytes.chunks(PART_SIZE).enumerate() {
            let number = i32::try_from(i + 1).map_err(|_| {
                SinkError::new(format!("s3://{}/{key}: too many parts", self.bucket))
            })?;
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part.to_vec()))
                .send()
                .await
                .map_err(|e| self.fail("upload a part", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(uploaded.e_tag().map(str::to_string))
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.fail("complete a multipart upload", key, e))?;
        Ok(())
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.fail("list", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }
}

#[async_trait]
impl Sink for S3Sink {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn put(&self, session_id: &str, name: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        let key = self.key(session_id, name)?;
        if bytes.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(&key, bytes).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.fail("upload", &key, e))?;
        Ok(())
    }

    async fn get(&self, session_id: &str, name: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let key = self.key(session_id, name)?;
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.fail("download", &key, e)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| self.fail("download", &key, e))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn list(&self, session_id: &str) -> Result<Vec<String>, SinkError> {
        let prefix = self.session_prefix(session_id)?;
        let mut names: Vec<String> = self
            .list_keys(&prefix)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn sessions(&self) -> Result<Vec<String>, SinkError> {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.fail("list", &prefix, e))?;
            ids.extend(page.common_prefixes().iter().filter_map(|p| {
                p.prefix()
                    .and_then(|p| p.strip_prefix(&prefix))
                    .map(|p| p.trim_end_matches('/').to_string())
                    .filter(|id| check_session_id(id).is_ok())
            }));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), SinkError> {
        let prefix = self.session_prefix(session_id)?;
        // The manifest goes first: a half-deleted recording is then seen as
        // incomplete, never as complete with chunks missing.
        let mut keys = self.list_keys(&prefix).await?;
        keys.sort_by_key(|k| !k.ends_with(crate::manifest::MANIFEST_NAME));
        for key in keys {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.fail("delete", &key, e))?;
        }
        Ok(())
    }
}
