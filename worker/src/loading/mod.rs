//! `loading_uri`: fetches the document a row's URI names, in the worker.
//!
//! The worker is a privilege boundary (docs/security.md, "The worker"):
//! the URIs are chosen by vectorizer owners, so what they may reach is the
//! operator's decision. Files only under `--file-root` directories; HTTP
//! only to public addresses unless `--uri-allow-host` names the host
//! (addresses.rs); S3 with the worker's own credentials. Every fetch is
//! bounded by `--uri-max-bytes` and `--uri-timeout`.

pub mod addresses;
mod file;
mod http;
mod s3;

use std::path::PathBuf;
use std::time::Duration;

use addresses::AllowedHost;

/// A fetched document and what is known of its format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub bytes: Vec<u8>,
    /// The server's Content-Type, if it sent one.
    pub content_type: Option<String>,
    /// The path of the URI, for its extension.
    pub name: String,
}

/// Fetches a URI; the pipeline sees only this, so it stays pure.
pub trait Fetch {
    fn fetch(&self, uri: &str, aws_role_arn: Option<&str>) -> Result<Document, String>;
}

/// What the operator allows (`run`'s flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub file_roots: Vec<PathBuf>,
    pub allow_hosts: Vec<AllowedHost>,
    pub max_bytes: u64,
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            file_roots: Vec::new(),
            allow_hosts: Vec::new(),
            max_bytes: 64 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Where a URI points, before anything is fetched.
#[derive(Debug, PartialEq)]
enum Target {
    File(PathBuf),
    Http(url::Url),
    S3 { bucket: String, key: String },
}

/// Reads a URI as pgai's loader (smart_open) would name it: `file://`,
/// an absolute path, `http(s)://`, `s3://bucket/key`.
fn target(uri: &str) -> Result<Target, String> {
    if uri.starts_with('/') {
        return Ok(Target::File(PathBuf::from(uri)));
    }
    let url = url::Url::parse(uri).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            format!("{uri:?} is a relative path; file URIs must be absolute (file:///… or /…)")
        }
        e => format!("{uri:?} is not a URI: {e}"),
    })?;
    match url.scheme() {
        "file" => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(format!(
                    "{uri:?}: file URIs on another host are not supported"
                ));
            }
            url.to_file_path()
                .map(Target::File)
                .map_err(|()| format!("{uri:?} is not a file path"))
        }
        "http" | "https" => Ok(Target::Http(url)),
        "s3" => {
            let bucket = url.host_str().unwrap_or_default().to_string();
            s3::check_bucket(&bucket).map_err(|e| format!("{uri:?}: {e}"))?;
            // The key as written (percent-decoded), without the leading '/'.
            let key = percent_decode(url.path().trim_start_matches('/'));
            if key.is_empty() {
                return Err(format!("{uri:?} names a bucket, not an object"));
            }
            Ok(Target::S3 { bucket, key })
        }
        other => Err(format!(
            "{uri:?}: scheme {other:?} is not supported (file, http, https and s3 are)"
        )),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The worker's loader: one per process, shared by its threads.
pub struct Loader {
    files: file::Roots,
    http: http::Client,
    s3: s3::Client,
    max_bytes: u64,
}

impl Loader {
    /// Fails on a `--file-root` that is not a directory: the operator's
    /// mistake, reported at start.
    pub fn new(opts: &Options) -> Result<Self, String> {
        Ok(Loader {
            files: file::Roots::new(&opts.file_roots)?,
            http: http::Client::new(opts),
            s3: s3::Client::new(opts),
            max_bytes: opts.max_bytes,
        })
    }
}

impl Fetch for Loader {
    /// A panic in a client library fails the key, not the worker thread.
    fn fetch(&self, uri: &str, aws_role_arn: Option<&str>) -> Result<Document, String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.fetch_now(uri, aws_role_arn)
        }))
        .unwrap_or_else(|_| Err(format!("{uri}: the client failed (panicked) fetching it")))
    }
}

impl Loader {
    fn fetch_now(&self, uri: &str, aws_role_arn: Option<&str>) -> Result<Document, String> {
        match target(uri)? {
            Target::File(path) => {
                let bytes = self.files.read(&path, self.max_bytes)?;
                Ok(Document {
                    bytes,
                    content_type: None,
                    name: path.to_string_lossy().into_owned(),
                })
            }
            Target::Http(url) => self.http.get(url),
            Target::S3 { bucket, key } => self.s3.get(&bucket, &key, aws_role_arn),
        }
    }
}

/// "64 MiB" for messages.
fn size_text(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_read_as_pgai_names_them() {
        assert_eq!(
            target("/data/a b.txt"),
            Ok(Target::File("/data/a b.txt".into()))
        );
        assert_eq!(
            target("file:///data/a%20b.txt"),
            Ok(Target::File("/data/a b.txt".into()))
        );
        assert_eq!(
            target("file://localhost/data/x"),
            Ok(Target::File("/data/x".into()))
        );
        assert!(matches!(
            target("https://example.com/a.pdf"),
            Ok(Target::Http(_))
        ));
        assert_eq!(
            target("s3://my-bucket/docs/a%20b.pdf"),
            Ok(Target::S3 {
                bucket: "my-bucket".into(),
                key: "docs/a b.pdf".into()
            })
        );
    }

    #[test]
    fn other_uris_are_refused_with_the_reason() {
        assert!(target("docs/a.txt").unwrap_err().contains("relative"));
        assert!(target("ftp://h/x").unwrap_err().contains("not supported"));
        assert!(target("file://other/x")
            .unwrap_err()
            .contains("another host"));
        assert!(target("s3://bucket").unwrap_err().contains("not an object"));
        assert!(target("s3://Bad_Bucket/x").is_err());
        assert!(target("s3://127.0.0.1/x").is_err());
    }

    #[test]
    fn percent_decoding_leaves_malformed_escapes() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size_text(64 << 20), "64 MiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }
}
