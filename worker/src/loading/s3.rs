//! `s3://bucket/key` URIs, with object_store and the worker's AWS
//! credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` for S3-compatible
//! servers, `AWS_ALLOW_HTTP`, web identity, instance metadata).
//!
//! object_store is async; the worker is not. One small tokio runtime is
//! built on first use and every fetch blocks on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStoreExt, RetryConfig};

use super::{size_text, Document, Options};

pub struct Client {
    stores: Mutex<HashMap<String, Arc<AmazonS3>>>,
    max_bytes: u64,
    timeout: Duration,
}

fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pgai-migrate-s3")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the S3 client's runtime: {e}"))
    })
    .as_ref()
    .map_err(String::clone)
}

/// S3's bucket naming rules, so a tenant's bucket can only ever be a
/// bucket (a path segment, or a label under the endpoint's host).
pub fn check_bucket(b: &str) -> Result<(), String> {
    let ok_chars = b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    let edges = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !(3..=63).contains(&b.len())
        || !ok_chars
        || !edges(b.as_bytes()[0])
        || !edges(b.as_bytes()[b.len() - 1])
        || b.contains("..")
    {
        return Err(format!(
            "{b:?} is not an S3 bucket name (3-63 lowercase letters, digits, '-' and '.')"
        ));
    }
    if b.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("{b:?} is an IP address, not an S3 bucket name"));
    }
    Ok(())
}

impl Client {
    pub fn new(opts: &Options) -> Self {
        Client {
            stores: Mutex::new(HashMap::new()),
            max_bytes: opts.max_bytes,
            timeout: opts.timeout,
        }
    }

    fn store(&self, bucket: &str) -> Result<Arc<AmazonS3>, String> {
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stores.get(bucket) {
            return Ok(s.clone());
        }
        // reqwest's TLS has no provider of its own here (no aws-lc): ring,
        // as the rest of the worker uses; before the first client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = format!("{}ms", self.timeout.as_millis().max(1));
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), timeout)
            // A few quick retries: the worker's own retries (loading.retries,
            // with backoff) are the long ones.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: self.timeout,
                ..Default::default()
            })
            .build()
            .map_err(|e| format!("S3 client: {e}"))?;
        let s3 = Arc::new(s3);
        stores.insert(bucket.to_string(), s3.clone());
        Ok(s3)
    }

    pub fn get(&self, bucket: &str, key: &str, role: Option<&str>) -> Result<Document, String> {
        let uri = format!("s3://{bucket}/{key}");
        if let Some(role) = role {
            return Err(format!(
                "{uri}: aws_role_arn {role:?} is not supported by this worker (it cannot assume roles through STS); give the worker credentials that can read the bucket, or remove aws_role_arn"
            ));
        }
        let path = Path::parse(key).map_err(|e| format!("{uri}: not an object key: {e}"))?;
        let store = self.store(bucket)?;
        let max = self.max_bytes;
        let fetch = async move {
            let got = store.get(&path).await?;
            if got.meta.size > max {
                return Ok(Err(got.meta.size));
            }
            let content_type = got
                .attributes
                .get(&object_store::Attribute::ContentType)
                .map(|v| v.as_ref().to_string());
            let bytes = got.bytes().await?;
            Ok::<_, object_store::Error>(Ok((bytes, content_type)))
        };
        let rt = runtime()?;
        match rt.block_on(async { tokio::time::timeout(self.timeout * 2, fetch).await }) {
            Err(_) => Err(format!("{uri}: timed out (--uri-timeout)")),
            Ok(Err(object_store::Error::NotFound { .. })) => Err(format!("{uri}: no such object")),
            Ok(Err(e)) => Err(format!("{uri}: {e}")),
            Ok(Ok(Err(size))) => Err(format!(
                "{uri}: the object ({size} bytes) is larger than the worker's limit of {} (--uri-max-bytes)",
                size_text(max)
            )),
            Ok(Ok(Ok((bytes, content_type)))) if bytes.len() as u64 > max => {
                let _ = content_type;
                Err(format!(
                    "{uri}: the object is larger than the worker's limit of {} (--uri-max-bytes)",
                    size_text(max)
                ))
            }
            Ok(Ok(Ok((bytes, content_type)))) => Ok(Document {
                bytes: bytes.to_vec(),
                content_type,
                name: key.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for ok in ["my-bucket", "docs.example.com", "abc", "a1b"] {
            assert!(check_bucket(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Bad",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "10.0.0.1",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }
}
