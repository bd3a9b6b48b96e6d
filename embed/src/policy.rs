//! Which endpoints the worker (or a backend running
//! `migrate.vectorizer_embed`) may call, and which secret it may send to
//! each: the operator's decision, never a vectorizer owner's.
//!
//! A vectorizer's `base_url` and `api_key_name` are plain config that any
//! table owner sets. Without this policy a tenant could make the worker
//! send any of its environment variables (its own connection string, the
//! operator's API keys) as a bearer token to a host of the tenant's
//! choosing, or read internal HTTP services through it. So:
//! - an endpoint is called only when it is allowed: each provider's
//!   official URL (and the one the operator's `OPENAI_BASE_URL`,
//!   `OLLAMA_HOST`, `VOYAGE_BASE_URL`, `AZURE_API_BASE`, … names: see
//!   `PROVIDERS`), or one given with `--endpoint URL[=VARIABLE]`;
//! - a key variable is read only for an endpoint it is paired with: the
//!   official key variable with the official URL, or `--endpoint URL=VARIABLE`;
//! - the worker's own settings (`PGAI_MIGRATE_*`) and libpq's (`PG*`) can
//!   never be paired.
//!
//! In the server (`Policy::for_server`) the same rule is stricter: the list
//! is the superuser's `migrate.embedding_endpoints`, no environment variable
//! is paired with any URL by default (not even the official key with the
//! official URL), and a caller may instead bring its own key in its own
//! session (`SET migrate.openai_api_key = …`), sent only to an allowed
//! endpoint (see `server_key`).

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
struct Allowed {
    url: String,
    key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    allowed: Vec<Allowed>,
    /// The server's policy (`migrate.embedding_endpoints`), not the worker's.
    server: bool,
}

/// The server's setting that lists endpoints, named in its errors.
pub const SERVER_SETTING: &str = "migrate.embedding_endpoints";

pub const OPENAI_URL: &str = "https://api.openai.com/v1";
pub const VOYAGE_URL: &str = "https://api.voyageai.com/v1";
pub const OLLAMA_URL: &str = "http://localhost:11434";
pub const COHERE_URL: &str = "https://api.cohere.com";
pub const MISTRAL_URL: &str = "https://api.mistral.ai/v1";
pub const JINA_URL: &str = "https://api.jina.ai/v1";
/// Hugging Face's serverless inference (`/models/<model>/pipeline/…`).
pub const HUGGINGFACE_URL: &str = "https://router.huggingface.co/hf-inference";

/// Each provider's official URL (Azure has none: every resource has its
/// own), the environment variable with which the operator moves it, and
/// its official key variable, sent only there.
pub const PROVIDERS: &[(Option<&str>, &str, Option<&str>)] = &[
    (Some(OPENAI_URL), "OPENAI_BASE_URL", Some("OPENAI_API_KEY")),
    (Some(VOYAGE_URL), "VOYAGE_BASE_URL", Some("VOYAGE_API_KEY")),
    (Some(OLLAMA_URL), "OLLAMA_HOST", None),
    (None, "AZURE_API_BASE", Some("AZURE_API_KEY")),
    (Some(COHERE_URL), "COHERE_API_BASE", Some("COHERE_API_KEY")),
    (
        Some(MISTRAL_URL),
        "MISTRAL_API_BASE",
        Some("MISTRAL_API_KEY"),
    ),
    (Some(JINA_URL), "JINA_AI_API_BASE", Some("JINA_AI_API_KEY")),
    (
        Some(HUGGINGFACE_URL),
        "HUGGINGFACE_API_BASE",
        Some("HUGGINGFACE_API_KEY"),
    ),
];

/// `https://Host:443/v1/` and `https://host/v1` are one endpoint.
pub fn normalize(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), url),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut host = host.to_ascii_lowercase();
    for (s, port) in [("http", ":80"), ("https", ":443")] {
        if scheme == s && host.ends_with(port) {
            host.truncate(host.len() - port.len());
        }
    }
    format!("{scheme}://{host}{path}")
}

fn forbidden_key(name: &str) -> bool {
    name.starts_with("PGAI_MIGRATE_") || name.starts_with("PG")
}

fn valid_key_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug, PartialEq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Policy {
    /// The defaults plus the operator's `--endpoint URL[=VARIABLE]` flags.
    pub fn new(
        endpoints: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Policy, String> {
        let mut p = Policy::default();
        for (url, base_var, key) in PROVIDERS {
            if let Some(u) = url {
                p.allow(u, *key);
            }
            if let Some(u) = env(base_var) {
                p.allow(&u, *key);
            }
        }
        for e in endpoints {
            p.allow_list(e, "--endpoint")?;
        }
        Ok(p)
    }

    /// The server's policy: the providers' official URLs (and those the
    /// server's environment names: `OPENAI_BASE_URL`, `AZURE_API_BASE`, …),
    /// paired with no key, plus the superuser's `migrate.embedding_endpoints`.
    pub fn for_server(
        endpoints: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Policy, String> {
        let mut p = Policy {
            server: true,
            ..Policy::default()
        };
        for (url, base_var, _) in PROVIDERS {
            if let Some(u) = url {
                p.allow(u, None);
            }
            if let Some(u) = env(base_var) {
                p.allow(&u, None);
            }
        }
        p.allow_list(endpoints, SERVER_SETTING)?;
        Ok(p)
    }

    /// Checks and adds a comma-separated list of `URL[=VARIABLE]`.
    fn allow_list(&mut self, list: &str, what: &str) -> Result<(), String> {
        for e in list.split([',', ' ', '\n']).filter(|e| !e.is_empty()) {
            let (url, key) = match e.rsplit_once('=') {
                Some((u, k)) if valid_key_name(k) => (u, Some(k)),
                _ => (e, None),
            };
            if !url.contains("://") {
                return Err(format!(
                    "{what} {e:?}: expected URL or URL=VARIABLE, with the URL's scheme (https://…)"
                ));
            }
            if let Some(k) = key {
                if forbidden_key(k) {
                    return Err(format!(
                        "{what} {e:?}: {k} is a setting of the worker or of libpq, never an API key"
                    ));
                }
            }
            self.allow(url, key);
        }
        Ok(())
    }

    fn allow(&mut self, url: &str, key: Option<&str>) {
        let url = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        self.allowed.push(Allowed {
            url: normalize(&url),
            key: key.map(String::from),
        });
    }

    /// May the worker call `url`, and which of `key_name` may it send
    /// there? Ok(Some(name)): send that variable; Ok(None): call without
    /// a key (only where no key is needed: `key_required` false).
    pub fn check(
        &self,
        url: &str,
        key_name: Option<&str>,
        key_required: bool,
    ) -> Result<Option<String>, Refused> {
        let url = normalize(url);
        let here: Vec<&Allowed> = self.allowed.iter().filter(|a| a.url == url).collect();
        if here.is_empty() {
            return Err(Refused(if self.server {
                format!("endpoint {url} is not allowed; a superuser allows endpoints in {SERVER_SETTING} (URL[=API_KEY_VARIABLE], comma-separated)")
            } else {
                format!("endpoint {url} is not allowed by this worker; its operator allows endpoints with --endpoint URL[=API_KEY_VARIABLE]")
            }));
        }
        match key_name {
            Some(k) if here.iter().any(|a| a.key.as_deref() == Some(k)) && !forbidden_key(k) => {
                Ok(Some(k.to_string()))
            }
            Some(k) if key_required => {
                let paired: Vec<&str> = here.iter().filter_map(|a| a.key.as_deref()).collect();
                Err(Refused(format!(
                    "api_key_name {k} may not be sent to {url}: this worker sends {} there (its operator pairs keys with endpoints with --endpoint URL=VARIABLE)",
                    if paired.is_empty() { "no key".to_string() } else { paired.join(", ") }
                )))
            }
            _ => Ok(None),
        }
    }
}

/// The session setting a caller keeps its own key for `api_key_name` in:
/// `migrate.` and the name in lower case (`migrate.openai_api_key`).
pub fn session_setting(key_name: &str) -> Option<String> {
    valid_key_name(key_name).then(|| format!("migrate.{}", key_name.to_ascii_lowercase()))
}

/// The key a backend sends to `url` for `key_name`, by the server's policy
/// (`Policy::for_server`): the caller's own session key (`session`, read
/// from `session_setting`) for any allowed endpoint; else the server's
/// environment variable `key_name` (`env`) only where a superuser paired it
/// with this URL. Ok(None): call without a key (only when none is
/// required). Nothing is read before the URL is known to be allowed.
pub fn server_key(
    policy: &Policy,
    url: &str,
    key_name: Option<&str>,
    key_required: bool,
    session: impl Fn(&str) -> Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, Refused> {
    let paired = policy.check(url, key_name, false)?;
    let Some(k) = key_name else {
        return Ok(None);
    };
    if let Some(v) = session_setting(k)
        .and_then(|s| session(&s))
        .filter(|v| !v.is_empty())
    {
        return Ok(Some(v));
    }
    if let Some(var) = paired {
        if let Some(v) = env(&var).filter(|v| !v.is_empty()) {
            return Ok(Some(v));
        }
        if key_required {
            return Err(Refused(format!(
                "the API key variable {var} paired with {} in {SERVER_SETTING} is not set in the server's environment",
                normalize(url)
            )));
        }
        return Ok(None);
    }
    if key_required {
        return Err(Refused(format!(
            "no API key for {}: SET {} in your session, or a superuser pairs the endpoint with a server environment variable in {SERVER_SETTING} (URL={k})",
            normalize(url),
            session_setting(k).unwrap_or_else(|| "migrate.<api_key_name>".into())
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(flags: &[&str]) -> Policy {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        Policy::new(&flags, |_| None).unwrap()
    }

    #[test]
    fn official_endpoints_take_their_official_keys_only() {
        let p = policy(&[]);
        assert_eq!(
            p.check("https://api.openai.com/v1/", Some("OPENAI_API_KEY"), true),
            Ok(Some("OPENAI_API_KEY".into()))
        );
        let e = p
            .check(OPENAI_URL, Some("PGAI_MIGRATE_DB"), true)
            .unwrap_err();
        assert!(e.0.contains("may not be sent"), "{e}");
        assert!(p
            .check(OPENAI_URL, Some("AWS_SECRET_ACCESS_KEY"), true)
            .is_err());
        assert_eq!(p.check("http://localhost:11434", None, false), Ok(None));
    }

    #[test]
    fn a_tenants_url_is_refused_unless_the_operator_allows_it() {
        let p = policy(&[]);
        let e = p
            .check(
                "http://169.254.169.254/latest",
                Some("OPENAI_API_KEY"),
                false,
            )
            .unwrap_err();
        assert!(e.0.contains("not allowed"), "{e}");
        let p = policy(&[
            "http://127.0.0.1:8080/v1",
            "https://llm.internal/v1=LLM_KEY",
        ]);
        // Allowed without a key: the request goes out with none.
        assert_eq!(
            p.check("http://127.0.0.1:8080/v1", Some("OPENAI_API_KEY"), false),
            Ok(None)
        );
        assert_eq!(
            p.check("https://LLM.internal:443/v1/", Some("LLM_KEY"), false),
            Ok(Some("LLM_KEY".into()))
        );
        // The official key never goes to another host.
        assert_eq!(
            p.check("https://llm.internal/v1", Some("OPENAI_API_KEY"), false),
            Ok(None)
        );
        assert!(p
            .check("https://llm.internal/v1", Some("OPENAI_API_KEY"), true)
            .is_err());
    }

    #[test]
    fn worker_and_libpq_settings_are_never_keys() {
        for k in ["PGAI_MIGRATE_DB", "PGPASSWORD"] {
            let e = Policy::new(&[format!("https://x/v1={k}")], |_| None).unwrap_err();
            assert!(e.contains("never an API key"), "{e}");
        }
        assert!(Policy::new(&["x.example/v1".into()], |_| None).is_err());
    }

    #[test]
    fn the_operators_environment_moves_the_official_endpoint() {
        let p = Policy::new(&[], |k| {
            (k == "OPENAI_BASE_URL").then(|| "http://127.0.0.1:9/v1".to_string())
        })
        .unwrap();
        assert_eq!(
            p.check("http://127.0.0.1:9/v1", Some("OPENAI_API_KEY"), true),
            Ok(Some("OPENAI_API_KEY".into()))
        );
    }

    #[test]
    fn litellm_providers_official_urls_and_the_operators_azure_resource() {
        let p = Policy::new(&[], |k| {
            (k == "AZURE_API_BASE").then(|| "https://op.openai.azure.com/".to_string())
        })
        .unwrap();
        for (url, key) in [
            (COHERE_URL, "COHERE_API_KEY"),
            (MISTRAL_URL, "MISTRAL_API_KEY"),
            (JINA_URL, "JINA_AI_API_KEY"),
            (HUGGINGFACE_URL, "HUGGINGFACE_API_KEY"),
            ("https://op.openai.azure.com", "AZURE_API_KEY"),
        ] {
            assert_eq!(p.check(url, Some(key), true), Ok(Some(key.into())), "{url}");
            // Never another provider's key.
            assert!(p.check(url, Some("OPENAI_API_KEY"), true).is_err(), "{url}");
        }
        // A tenant's own Azure resource is not the operator's.
        assert!(p
            .check(
                "https://tenant.openai.azure.com",
                Some("AZURE_API_KEY"),
                true
            )
            .is_err());
        // The server allows the same URLs, paired with nothing.
        let s = Policy::for_server("", |k| {
            (k == "AZURE_API_BASE").then(|| "https://op.openai.azure.com".to_string())
        })
        .unwrap();
        assert_eq!(s.check(COHERE_URL, Some("COHERE_API_KEY"), false), Ok(None));
        assert_eq!(
            s.check("https://op.openai.azure.com", Some("AZURE_API_KEY"), false),
            Ok(None)
        );
    }

    fn server(list: &str) -> Policy {
        Policy::for_server(list, |_| None).unwrap()
    }

    #[test]
    fn the_server_pairs_no_environment_variable_by_default() {
        let p = server("");
        let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "sk-server".to_string());
        let e =
            server_key(&p, OPENAI_URL, Some("OPENAI_API_KEY"), true, |_| None, env).unwrap_err();
        assert!(e.0.contains("SET migrate.openai_api_key"), "{e}");
        assert!(!e.0.contains("sk-server"), "{e}");
        // The caller's own key goes to the official URL.
        let session = |s: &str| (s == "migrate.openai_api_key").then(|| "sk-mine".to_string());
        assert_eq!(
            server_key(&p, OPENAI_URL, Some("OPENAI_API_KEY"), true, session, env),
            Ok(Some("sk-mine".into()))
        );
    }

    #[test]
    fn the_server_refuses_unlisted_urls_before_reading_any_key() {
        let p = server("http://127.0.0.1:9/v1");
        let read = std::cell::Cell::new(false);
        let e = server_key(
            &p,
            "http://evil.example/v1",
            Some("HOME"),
            false,
            |_| {
                read.set(true);
                None
            },
            |_| {
                read.set(true);
                None
            },
        )
        .unwrap_err();
        assert!(
            e.0.contains("not allowed") && e.0.contains(SERVER_SETTING),
            "{e}"
        );
        assert!(!read.get());
        // Listed without a variable: called without the server's HOME.
        let env = |k: &str| (k == "HOME").then(|| "/home/pg".to_string());
        assert_eq!(
            server_key(
                &p,
                "http://127.0.0.1:9/v1",
                Some("HOME"),
                false,
                |_| None,
                env
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_superuser_pair_sends_the_servers_variable_there_only() {
        let p = server("http://127.0.0.1:9/v1=LLM_KEY, https://other.example/v1");
        let env = |k: &str| (k == "LLM_KEY").then(|| "k".to_string());
        assert_eq!(
            server_key(
                &p,
                "http://127.0.0.1:9/v1/",
                Some("LLM_KEY"),
                true,
                |_| None,
                env
            ),
            Ok(Some("k".into()))
        );
        assert!(server_key(
            &p,
            "https://other.example/v1",
            Some("LLM_KEY"),
            true,
            |_| None,
            env
        )
        .is_err());
        assert_eq!(
            server_key(
                &p,
                "https://other.example/v1",
                Some("LLM_KEY"),
                false,
                |_| None,
                env
            ),
            Ok(None)
        );
        for bad in [
            "http://x/v1=PGPASSWORD",
            "http://x/v1=PGAI_MIGRATE_DB",
            "x/v1",
        ] {
            let e = Policy::for_server(bad, |_| None).unwrap_err();
            assert!(e.contains(SERVER_SETTING), "{e}");
        }
        assert_eq!(
            session_setting("OPENAI_API_KEY").as_deref(),
            Some("migrate.openai_api_key")
        );
        assert_eq!(session_setting("a.b"), None);
    }
}
