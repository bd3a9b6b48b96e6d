//! Embedding providers behind one interface, built from a vectorizer's
//! `embedding` config: shared by the worker (`pgai-migrate-worker`) and the
//! extension (`migrate.vectorizer_embed`), so both compute the same vectors.

pub mod http;
pub mod litellm;
pub mod local;
pub mod policy;
pub mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;

use http::{HttpEmbedder, HttpSettings};
use pgai_migrate_core::config::Embedding;
pub use policy::Policy;

pub enum Embedder {
    Local(Arc<local::LocalModel>),
    Http(Box<HttpEmbedder>),
}

impl Embedder {
    fn http(h: HttpEmbedder) -> Embedder {
        Embedder::Http(Box::new(h))
    }

    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Embedder::Local(m) => m.embed(texts),
            Embedder::Http(h) => h.embed(texts),
        }
    }
}

/// A local model is loaded once per process (per folder) and shared; the
/// weights file is mapped, so processes share its pages too.
fn shared_model(dir: PathBuf) -> Result<Arc<local::LocalModel>, String> {
    static MODELS: OnceLock<Mutex<HashMap<PathBuf, Arc<local::LocalModel>>>> = OnceLock::new();
    let mut slot = MODELS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(m) = slot.get(&dir) {
        return Ok(m.clone());
    }
    let m = Arc::new(local::LocalModel::load_from(&dir)?);
    slot.insert(dir, m.clone());
    Ok(m)
}

/// What kind of failure a build is, for the extension's SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The policy refuses the endpoint or the key; nothing was sent.
    Refused,
    /// The config names a provider or model this build cannot run.
    Unsupported,
    /// Anything else: a missing key, weights not found.
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuildError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<BuildError> for String {
    fn from(e: BuildError) -> String {
        e.message
    }
}

fn failed(message: String) -> BuildError {
    BuildError {
        kind: ErrorKind::Failed,
        message,
    }
}

/// Which endpoint may be called and with which key: the worker's
/// `Policy` with its environment, or the server's rule (`policy::server_key`).
pub trait Keys {
    /// Ok(Some(key)): send it; Ok(None): call without one; Err: refuse
    /// before anything is sent.
    fn key(
        &self,
        url: &str,
        name: Option<&str>,
        required: bool,
    ) -> Result<Option<String>, BuildError>;
}

impl Keys for Policy {
    fn key(
        &self,
        url: &str,
        name: Option<&str>,
        required: bool,
    ) -> Result<Option<String>, BuildError> {
        allowed_key(self, url, name, required)
    }
}

/// Where local models are found (`local::hub::resolve`), and the HTTP
/// tunables.
pub struct Options {
    pub http: HttpSettings,
    pub models: local::Sources,
}

fn api_key(name: &str, required: bool) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        _ if required => Err(format!(
            "the API key environment variable {name} is not set"
        )),
        _ => Ok(None),
    }
}

/// The key `name` allows for `base`, read from the environment.
fn allowed_key(
    policy: &Policy,
    base: &str,
    name: Option<&str>,
    required: bool,
) -> Result<Option<String>, BuildError> {
    match policy.check(base, name, required).map_err(|r| BuildError {
        kind: ErrorKind::Refused,
        message: r.0,
    })? {
        Some(var) => api_key(&var, required).map_err(failed),
        None => Ok(None),
    }
}

/// Builds the provider a config names; an error here is the key's error
/// (unsupported provider, missing API key, an endpoint or key the
/// operator's policy does not allow, weights not found).
pub fn build(cfg: &Embedding, policy: &Policy) -> Result<Embedder, String> {
    let opts = Options {
        http: HttpSettings::from_env(),
        models: local::Sources::from_env(),
    };
    Ok(build_with(cfg, policy, opts)?)
}

/// `build` with the caller's key rule and options.
pub fn build_with(cfg: &Embedding, keys: &dyn Keys, opts: Options) -> Result<Embedder, BuildError> {
    let settings = opts.http;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let unsupported = |message| BuildError {
        kind: ErrorKind::Unsupported,
        message,
    };
    match cfg {
        Embedding::SentenceTransformers { model, dimensions } => {
            let dir = local::hub::resolve(model, &opts.models).map_err(failed)?;
            let m = shared_model(dir).map_err(|e| {
                // An architecture or module this build cannot run is the
                // config's problem, not the machine's.
                if e.contains("not supported") {
                    unsupported(e)
                } else {
                    failed(e)
                }
            })?;
            if m.dimensions() as i64 != *dimensions {
                return Err(unsupported(format!(
                    "sentence_transformers model {model} makes vectors of {} dimensions, the vectorizer expects {dimensions}",
                    m.dimensions()
                )));
            }
            Ok(Embedder::Local(m))
        }
        Embedding::Openai {
            model,
            dimensions,
            user,
            api_key_name,
            base_url,
        } => {
            let mut r = litellm::openai(model, *dimensions, base_url.clone(), api_key_name, &env);
            if let Some(u) = user {
                r.body.insert("user".into(), json!(u));
            }
            routed(r, *dimensions, keys, settings)
        }
        Embedding::Ollama {
            model,
            dimensions,
            base_url,
            options,
            keep_alive,
        } => {
            let mut r = litellm::ollama(model, base_url.clone(), &env);
            if let Some(o) = options {
                r.body.insert("options".into(), o.clone());
            }
            if let Some(k) = keep_alive {
                r.body.insert("keep_alive".into(), json!(k));
            }
            routed(r, *dimensions, keys, settings)
        }
        Embedding::Voyageai {
            model,
            dimensions,
            input_type,
            api_key_name,
        } => {
            let mut r = litellm::voyage(model, None, api_key_name, &env);
            r.body.insert("input_type".into(), json!(input_type));
            routed(r, *dimensions, keys, settings)
        }
        Embedding::Litellm {
            model,
            dimensions,
            api_key_name,
            extra_options,
        } => {
            let r = litellm::route(
                model,
                *dimensions,
                api_key_name.as_deref(),
                extra_options.as_ref(),
                &env,
            )
            .map_err(|e| BuildError {
                kind: if e.unsupported {
                    ErrorKind::Unsupported
                } else {
                    ErrorKind::Failed
                },
                message: e.message,
            })?;
            routed(r, *dimensions, keys, settings)
        }
    }
}

/// An HTTP provider once its key rule has answered (nothing is sent before).
fn routed(
    r: litellm::Route,
    dimensions: i64,
    keys: &dyn Keys,
    settings: HttpSettings,
) -> Result<Embedder, BuildError> {
    let key = keys.key(&r.base, r.key_name.as_deref(), r.key_required)?;
    Ok(Embedder::http(HttpEmbedder::new(
        r.endpoint(key, dimensions as usize),
        settings,
    )))
}

/// Providers built so far, by config: one HTTP agent per config, one model
/// per process. A failed build is not cached (the environment may change).
pub struct Cache {
    policy: Arc<Policy>,
    built: HashMap<String, Arc<Embedder>>,
}

impl Cache {
    pub fn new(policy: Arc<Policy>) -> Cache {
        Cache {
            policy,
            built: HashMap::new(),
        }
    }

    pub fn get(&mut self, cfg: &Embedding) -> Result<Arc<Embedder>, String> {
        let key = format!("{cfg:?}");
        if let Some(e) = self.built.get(&key) {
            return Ok(e.clone());
        }
        let e = Arc::new(build(cfg, &self.policy)?);
        self.built.insert(key, e.clone());
        Ok(e)
    }
}

/// pgvector's text form: `[0.1,0.2,…]` (shortest round-trip decimals).
pub fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_print_in_pgvector_text_form() {
        assert_eq!(vector_text(&[0.5, -1.0, 1e-7]), "[0.5,-1,0.0000001]");
    }

    /// Records what the key rule is asked, and answers with a key.
    struct Asked(Mutex<Vec<(String, Option<String>, bool)>>);

    impl Keys for Asked {
        fn key(
            &self,
            url: &str,
            name: Option<&str>,
            required: bool,
        ) -> Result<Option<String>, BuildError> {
            self.0
                .lock()
                .unwrap()
                .push((url.into(), name.map(String::from), required));
            Ok(Some("k".into()))
        }
    }

    #[test]
    fn litellm_asks_the_key_rule_about_the_providers_base_url() {
        let asked = Asked(Mutex::new(Vec::new()));
        let cfg = Embedding::Litellm {
            model: "azure/emb".into(),
            dimensions: 8,
            api_key_name: None,
            extra_options: Some(json!({"api_base": "https://res.openai.azure.com/"})),
        };
        let opts = Options {
            http: HttpSettings::from_env(),
            models: local::Sources::from_env(),
        };
        let Ok(Embedder::Http(h)) = build_with(&cfg, &asked, opts) else {
            panic!("not an HTTP embedder")
        };
        assert_eq!(
            asked.0.lock().unwrap().as_slice(),
            [(
                "https://res.openai.azure.com".to_string(),
                Some("AZURE_API_KEY".to_string()),
                true
            )]
        );
        assert_eq!(h.endpoint().auth, http::Auth::Header("api-key", "k".into()));
        assert!(h.endpoint().url.starts_with(
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version="
        ));
    }

    #[test]
    fn unsupported_providers_are_clear_errors() {
        let e = build(
            &Embedding::Litellm {
                model: "bedrock/amazon.titan-embed-text-v2:0".into(),
                dimensions: 3,
                api_key_name: None,
                extra_options: None,
            },
            &Policy::default(),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("provider \"bedrock\"") && e.contains("supported prefixes"),
            "{e}"
        );
        std::env::set_var("HF_HUB_OFFLINE", "1");
        let e = build(
            &Embedding::SentenceTransformers {
                model: "pgai-migrate-tests/no-such-model".into(),
                dimensions: 768,
            },
            &Policy::default(),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("not in the Hugging Face cache") && e.contains("HF_HUB_OFFLINE"),
            "{e}"
        );
    }
}
