//! `http://` and `https://` URIs, with ureq.
//!
//! The SSRF rule is enforced in ureq's resolver: a host's addresses are
//! looked up once, refused ones dropped, and ureq connects to the
//! addresses this resolver returned, so a DNS answer that changes between
//! the check and the connection (rebinding) cannot slip through.
//! Redirects are followed here, not by ureq, so each hop's URL is checked
//! (scheme, then its addresses through the same resolver) and counted.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::addresses::{self, AllowedHost};
use super::{size_text, Document, Options};

const MAX_REDIRECTS: usize = 5;

pub struct Client {
    agent: ureq::Agent,
    max_bytes: u64,
    timeout: Duration,
}

/// Resolves as ureq does, then keeps only the addresses tenants may reach.
#[derive(Debug)]
struct Guarded {
    allow: Arc<Vec<AllowedHost>>,
}

/// The resolver's refusal, told apart from ureq's own errors.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

impl Resolver for Guarded {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = DefaultResolver::default().resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        if self.allow.iter().any(|a| a.matches(host, port)) {
            return Ok(all);
        }
        let mut kept = DefaultResolver::default().empty();
        let mut why = None;
        for a in all.iter() {
            match addresses::refused(a.ip()) {
                None => kept.push(*a),
                Some(w) => {
                    why.get_or_insert((a.ip(), w));
                }
            }
        }
        match why {
            // One refused address refuses the host: a name that resolves to
            // both public and internal addresses is someone's trick.
            Some((ip, w)) => {
                let what = if host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok()
                {
                    format!("{host} is a {w} address")
                } else {
                    format!("{host} resolves to {ip}, a {w} address")
                };
                Err(ureq::Error::Other(Box::new(Refused(format!(
                    "refused: {what}; the worker reaches only public addresses unless the operator allows the host (--uri-allow-host)"
                )))))
            }
            None => Ok(kept),
        }
    }
}

impl Client {
    pub fn new(opts: &Options) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            // A proxy would resolve the host itself, past the rule.
            .proxy(None)
            .user_agent(concat!("pgai-migrate-worker/", env!("CARGO_PKG_VERSION")))
            .build();
        let resolver = Guarded {
            allow: Arc::new(opts.allow_hosts.clone()),
        };
        Client {
            agent: ureq::Agent::with_parts(config, DefaultConnector::default(), resolver),
            max_bytes: opts.max_bytes,
            timeout: opts.timeout,
        }
    }

    pub fn get(&self, url: url::Url) -> Result<Document, String> {
        let first = shown(&url);
        let deadline = Instant::now() + self.timeout;
        let mut url = url;
        for hop in 0..=MAX_REDIRECTS {
            // One budget for the whole fetch: each hop gets what is left.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{first}: timed out (--uri-timeout)"));
            }
            let mut resp = self
                .agent
                .get(url.as_str())
                .config()
                .timeout_global(Some(left))
                .build()
                .call()
                .map_err(|e| format!("{}: {}", shown(&url), error_text(e, self.max_bytes)))?;
            let status = resp.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let loc = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| format!("{}: HTTP {status} without a Location", shown(&url)))?;
                let next = url
                    .join(loc)
                    .map_err(|e| format!("{}: redirect to {loc:?}: {e}", shown(&url)))?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(format!(
                        "{}: refused: redirect to a {} URI",
                        shown(&url),
                        next.scheme()
                    ));
                }
                if hop == MAX_REDIRECTS {
                    break;
                }
                url = next;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(format!("{}: HTTP {status}", shown(&url)));
            }
            if let Some(n) = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            {
                if n > self.max_bytes {
                    return Err(format!("{}: {}", shown(&url), too_large(self.max_bytes)));
                }
            }
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = resp
                .body_mut()
                .with_config()
                .limit(self.max_bytes)
                .read_to_vec()
                .map_err(|e| format!("{}: {}", shown(&url), error_text(e, self.max_bytes)))?;
            return Ok(Document {
                bytes,
                content_type,
                name: url.path().to_string(),
            });
        }
        Err(format!("{first}: more than {MAX_REDIRECTS} redirects"))
    }
}

/// A URL for messages (error rows, the worker's log): without a password.
fn shown(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_password(None);
    u.to_string()
}

fn too_large(max: u64) -> String {
    format!(
        "the document is larger than the worker's limit of {} (--uri-max-bytes)",
        size_text(max)
    )
}

fn error_text(e: ureq::Error, max: u64) -> String {
    match e {
        ureq::Error::Other(o) if o.is::<Refused>() => o.to_string(),
        ureq::Error::BodyExceedsLimit(_) => too_large(max),
        ureq::Error::Timeout(t) => format!("timed out ({t}; --uri-timeout)"),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => "not a URI the HTTP client accepts".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_show_a_password() {
        let u = url::Url::parse("https://user:hunter2@example.com/a?x=1").unwrap();
        assert_eq!(shown(&u), "https://user@example.com/a?x=1");
    }
}
