//! `embedding_litellm`: the model's prefix names the provider, as in
//! litellm (`cohere/embed-english-v3.0`), and each is called with its own
//! public API, key variable and base-URL variable as litellm names them.
//! Routing is pure: the caller asks its key rule for `Route::base` before
//! anything is sent.

use serde_json::{json, Map, Value};

use crate::http::{Api, Auth, Endpoint};
use crate::policy::{
    COHERE_URL, HUGGINGFACE_URL, JINA_URL, MISTRAL_URL, OLLAMA_URL, OPENAI_URL, VOYAGE_URL,
};
use crate::tokens::Tokens;

/// The prefixes this build routes, named in the error for any other.
pub const PREFIXES: &[&str] = &[
    "azure/",
    "cohere/",
    "huggingface/",
    "jina_ai/",
    "mistral/",
    "ollama/",
    "openai/",
    "voyage/",
];

/// Azure OpenAI's current GA data-plane version.
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// Where a litellm model goes, before a key is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub provider: &'static str,
    pub api: Api,
    /// What the key rule is asked about: the provider's base URL.
    pub base: String,
    pub url: String,
    pub key_name: Option<String>,
    /// Official endpoints need the key; a self-hosted base may not.
    pub key_required: bool,
    /// Azure sends the key as `api-key`, the others as a bearer token.
    pub key_header: Option<&'static str>,
    pub body: Map<String, Value>,
    pub max_inputs: Option<usize>,
    pub max_bytes: Option<usize>,
    pub tokens: Option<Tokens>,
}

impl Route {
    pub fn endpoint(self, key: Option<String>, dimensions: usize) -> Endpoint {
        let mut e = Endpoint::new(
            self.provider,
            self.api,
            self.url,
            None,
            self.body,
            Some(dimensions),
        );
        e.auth = match (key, self.key_header) {
            (None, _) => Auth::None,
            (Some(k), None) => Auth::Bearer(k),
            (Some(k), Some(h)) => Auth::Header(h, k),
        };
        e.max_inputs = self.max_inputs.unwrap_or(e.max_inputs);
        e.max_bytes = self.max_bytes.unwrap_or(e.max_bytes);
        e.tokens = self.tokens;
        e
    }
}

/// Why a model cannot be routed: `unsupported` for the config's fault,
/// else something the environment lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteError {
    pub unsupported: bool,
    pub message: String,
}

fn unsupported(message: String) -> RouteError {
    RouteError {
        unsupported: true,
        message,
    }
}

/// Names that go into a URL's path or query: nothing that could leave the
/// allowed base (`..`, `/`, `?`, `#`, `%`).
fn path_safe(s: &str, slashes: usize) -> bool {
    !s.is_empty()
        && s.split('/').count() <= slashes + 1
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
}

fn trim(base: &str) -> String {
    base.trim().trim_end_matches('/').to_string()
}

/// A route with the fields every provider sets; the rest keep defaults.
fn base_route(provider: &'static str, api: Api, base: String, url: String) -> Route {
    Route {
        provider,
        api,
        base,
        url,
        key_name: None,
        key_required: true,
        key_header: None,
        body: Map::new(),
        max_inputs: None,
        max_bytes: None,
        tokens: None,
    }
}

/// A base URL from the environment; empty counts as unset.
fn env_base(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    env(var).filter(|v| !v.trim().is_empty()).map(|b| trim(&b))
}

// OpenAI, Voyage AI and Ollama are both native configs and litellm
// prefixes: one constructor each, so both forms send the same request to
// the same URL and ask the key rule the same question.

/// OpenAI or an OpenAI-compatible server at `api_base` (which may need no key).
pub(crate) fn openai(
    model: &str,
    dimensions: i64,
    api_base: Option<String>,
    key_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Route {
    let key_required = api_base.is_none();
    let base = api_base
        .map(|b| trim(&b))
        .or_else(|| env_base(env, "OPENAI_BASE_URL"))
        .unwrap_or_else(|| OPENAI_URL.into());
    let mut r = base_route(
        "openai",
        Api::OpenAi,
        base.clone(),
        format!("{base}/embeddings"),
    );
    r.body.insert("model".into(), json!(model));
    r.body.insert("encoding_format".into(), json!("float"));
    // ada-002 has a fixed size and refuses the parameter.
    if model != "text-embedding-ada-002" {
        r.body.insert("dimensions".into(), json!(dimensions));
    }
    r.key_name = Some(key_name.to_string());
    r.key_required = key_required;
    r.tokens = Tokens::for_model(model);
    r
}

/// Voyage AI (`VOYAGE_BASE_URL` moves it for the operator).
pub(crate) fn voyage(
    model: &str,
    api_base: Option<String>,
    key_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Route {
    let key_required = api_base.is_none();
    let base = api_base
        .map(|b| trim(&b))
        .or_else(|| env_base(env, "VOYAGE_BASE_URL"))
        .unwrap_or_else(|| VOYAGE_URL.into());
    let mut r = base_route(
        "voyageai",
        Api::VoyageAi,
        base.clone(),
        format!("{base}/embeddings"),
    );
    r.body.insert("model".into(), json!(model));
    r.key_name = Some(key_name.to_string());
    r.key_required = key_required;
    r
}

/// Ollama (`OLLAMA_HOST`, with or without a scheme); never sent a key.
pub(crate) fn ollama(
    model: &str,
    api_base: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Route {
    let base = api_base
        .map(|b| trim(&b))
        .or_else(|| env_base(env, "OLLAMA_HOST"))
        .unwrap_or_else(|| OLLAMA_URL.into());
    let base = if base.contains("://") {
        base
    } else {
        format!("http://{base}")
    };
    let mut r = base_route(
        "ollama",
        Api::Ollama,
        base.clone(),
        format!("{base}/api/embed"),
    );
    r.body.insert("model".into(), json!(model));
    r.key_required = false;
    r
}

/// Routes `model` with the vectorizer's `extra_options`; `env` is the
/// process's environment (the operator's `AZURE_API_BASE` and others).
pub fn route(
    model: &str,
    dimensions: i64,
    api_key_name: Option<&str>,
    extra_options: Option<&Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Route, RouteError> {
    let opts = match extra_options {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(unsupported(
                "litellm extra_options must be a JSON object".into(),
            ))
        }
    };
    let (prefix, name) = match model.split_once('/') {
        Some((p, n)) => (p, n),
        None => ("", model),
    };
    // A bare name: an OpenAI model, or any model on an OpenAI-compatible
    // server at api_base, as litellm takes it.
    let prefix = if prefix.is_empty()
        && (opts.contains_key("api_base") || model.starts_with("text-embedding-"))
    {
        "openai"
    } else {
        prefix
    };
    let accepted: &[&str] = match prefix {
        "azure" => &["api_base", "api_version"],
        "cohere" | "voyage" => &["api_base", "input_type"],
        "jina_ai" => &["api_base", "task"],
        "openai" | "mistral" | "huggingface" | "ollama" => &["api_base"],
        _ => {
            let which = if prefix.is_empty() {
                format!("litellm model {model:?} names no provider")
            } else {
                format!(
                    "litellm provider {prefix:?} (model {model:?}) is not supported by this worker"
                )
            };
            return Err(unsupported(format!(
                "{which} (supported prefixes: {}; or a bare model name with extra_options.api_base for an OpenAI-compatible server; bedrock/ and vertex_ai/ need request signing, which is not built in)",
                PREFIXES.join(", ")
            )));
        }
    };
    if let Some(k) = opts.keys().find(|k| !accepted.contains(&k.as_str())) {
        return Err(unsupported(format!(
            "litellm extra_options {k:?} is not supported for {prefix}/ models (supported: {})",
            accepted.join(", ")
        )));
    }
    let text = |k: &str| -> Result<Option<String>, RouteError> {
        match opts.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(unsupported(format!(
                "litellm extra_options {k:?} must be a non-empty string"
            ))),
        }
    };
    let api_base = text("api_base")?.map(|b| trim(&b));
    if let Some(b) = &api_base {
        if !b.contains("://") {
            return Err(unsupported(format!(
                "litellm extra_options api_base {b:?} needs its scheme (https://…)"
            )));
        }
    }
    let env_base = |var: &str| env_base(env, var);
    let key = |default: &str| Some(api_key_name.unwrap_or(default).to_string());
    if name.is_empty() {
        return Err(unsupported(format!(
            "litellm model {model:?} names no model after {prefix}/"
        )));
    }
    let mut body = Map::new();
    let mut r = base_route("openai", Api::OpenAi, String::new(), String::new());
    match prefix {
        "openai" => {
            return Ok(openai(
                name,
                dimensions,
                api_base,
                api_key_name.unwrap_or("OPENAI_API_KEY"),
                env,
            ))
        }
        "azure" => {
            let base = api_base.clone().or_else(|| env_base("AZURE_API_BASE")).ok_or_else(|| RouteError {
                unsupported: false,
                message: format!(
                    "litellm model {model:?}: no Azure OpenAI resource: set extra_options.api_base, or AZURE_API_BASE in the worker's environment"
                ),
            })?;
            let version = text("api_version")?
                .or_else(|| env("AZURE_API_VERSION").filter(|v| !v.is_empty()))
                .unwrap_or_else(|| AZURE_API_VERSION.into());
            if !path_safe(name, 0) || !path_safe(&version, 0) {
                return Err(unsupported(format!(
                    "litellm model {model:?}: an Azure deployment and api_version are letters, digits, '-', '_', '.' ({name:?}, {version:?})"
                )));
            }
            body.insert("encoding_format".into(), json!("float"));
            // ada-002 deployments refuse the parameter.
            if !name.contains("ada") {
                body.insert("dimensions".into(), json!(dimensions));
            }
            r.provider = "azure";
            r.url = format!("{base}/openai/deployments/{name}/embeddings?api-version={version}");
            r.base = base;
            r.key_name = key("AZURE_API_KEY");
            r.key_header = Some("api-key");
            r.tokens = Some(Tokens::for_azure(name));
        }
        "cohere" => {
            let base = api_base
                .clone()
                .or_else(|| env_base("COHERE_API_BASE"))
                .unwrap_or_else(|| COHERE_URL.into());
            body.insert("model".into(), json!(name));
            body.insert(
                "input_type".into(),
                json!(text("input_type")?.unwrap_or_else(|| "search_document".into())),
            );
            body.insert("embedding_types".into(), json!(["float"]));
            r.provider = "cohere";
            r.api = Api::Cohere;
            r.url = format!("{base}/v2/embed");
            r.base = base;
            r.key_name = key("COHERE_API_KEY");
            r.key_required = api_base.is_none();
        }
        "mistral" | "jina_ai" => {
            let (provider, var, official, key_var) = if prefix == "mistral" {
                (
                    "mistral",
                    "MISTRAL_API_BASE",
                    MISTRAL_URL,
                    "MISTRAL_API_KEY",
                )
            } else {
                ("jina_ai", "JINA_AI_API_BASE", JINA_URL, "JINA_AI_API_KEY")
            };
            let base = api_base
                .clone()
                .or_else(|| env_base(var))
                .unwrap_or_else(|| official.into());
            body.insert("model".into(), json!(name));
            if let Some(t) = text("task")? {
                body.insert("task".into(), json!(t));
            }
            r.provider = provider;
            r.url = format!("{base}/embeddings");
            r.base = base;
            r.key_name = key(key_var);
            r.key_required = api_base.is_none();
            // Mistral bounds a request by tokens (16k for mistral-embed).
            if prefix == "mistral" {
                r.max_inputs = Some(128);
                r.max_bytes = Some(48_000);
            } else {
                r.max_inputs = Some(512);
            }
        }
        "huggingface" => {
            r.provider = "huggingface";
            r.api = Api::Tei;
            r.key_name = key("HUGGINGFACE_API_KEY");
            // A text-embeddings-inference server, else the hosted pipeline.
            match api_base
                .clone()
                .or_else(|| env_base("HUGGINGFACE_API_BASE"))
            {
                Some(base) => {
                    r.url = format!("{base}/embed");
                    r.key_required = false;
                    r.base = base;
                }
                None => {
                    if !path_safe(name, 1) {
                        return Err(unsupported(format!(
                            "litellm model {model:?}: a Hugging Face model is <org>/<name> of letters, digits, '-', '_', '.'"
                        )));
                    }
                    r.url = format!("{HUGGINGFACE_URL}/models/{name}/pipeline/feature-extraction");
                    r.base = HUGGINGFACE_URL.into();
                }
            }
        }
        "voyage" => {
            let mut r = voyage(
                name,
                api_base,
                api_key_name.unwrap_or("VOYAGE_API_KEY"),
                env,
            );
            if let Some(t) = text("input_type")? {
                r.body.insert("input_type".into(), json!(t));
            }
            return Ok(r);
        }
        "ollama" => return Ok(ollama(name, api_base, env)),
        _ => unreachable!("prefixes are matched above"),
    }
    r.body = body;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn go(
        model: &str,
        opts: Value,
        vars: &'static [(&'static str, &'static str)],
    ) -> Result<Route, RouteError> {
        route(model, 8, None, Some(&opts), &env(vars))
    }

    #[test]
    fn azure_builds_its_deployment_url_with_api_key_header() {
        let r = go(
            "azure/emb3",
            json!({"api_base": "https://res.openai.azure.com/"}),
            &[],
        )
        .unwrap();
        assert_eq!(r.url, format!("https://res.openai.azure.com/openai/deployments/emb3/embeddings?api-version={AZURE_API_VERSION}"));
        assert_eq!(r.base, "https://res.openai.azure.com");
        assert_eq!(
            (r.key_name.as_deref(), r.key_header, r.key_required),
            (Some("AZURE_API_KEY"), Some("api-key"), true)
        );
        assert_eq!(
            r.body,
            json!({"encoding_format": "float", "dimensions": 8})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(r.tokens.unwrap().context(), Some(8191));
        let e = r.endpoint(Some("k".into()), 8);
        assert_eq!(e.auth, Auth::Header("api-key", "k".into()));
        assert_eq!(
            e.request_body(&["a"]),
            json!({"encoding_format": "float", "dimensions": 8, "input": ["a"]})
        );
        // The operator's environment, and api_version from either place.
        let r = go(
            "azure/ada",
            json!({"api_version": "2024-02-01"}),
            &[("AZURE_API_BASE", "https://op.openai.azure.com")],
        )
        .unwrap();
        assert!(
            r.url
                .ends_with("/deployments/ada/embeddings?api-version=2024-02-01"),
            "{}",
            r.url
        );
        assert!(!r.body.contains_key("dimensions"));
        let r = go(
            "azure/x",
            json!({}),
            &[
                ("AZURE_API_BASE", "https://op"),
                ("AZURE_API_VERSION", "2025-01-01-preview"),
            ],
        )
        .unwrap();
        assert!(r.url.ends_with("?api-version=2025-01-01-preview"));
        let e = go("azure/x", json!({}), &[]).unwrap_err();
        assert!(
            !e.unsupported && e.message.contains("AZURE_API_BASE"),
            "{e:?}"
        );
        // A deployment cannot walk out of the allowed base.
        for m in ["azure/../../admin", "azure/a?b=1", "azure/a%2f"] {
            assert!(
                go(m, json!({"api_base": "https://r"}), &[])
                    .unwrap_err()
                    .unsupported,
                "{m}"
            );
        }
    }

    #[test]
    fn cohere_mistral_jina_huggingface_voyage_ollama_shapes() {
        let r = go("cohere/embed-english-v3.0", json!({}), &[]).unwrap();
        assert_eq!(
            (r.url.as_str(), r.api, r.key_name.as_deref()),
            (
                "https://api.cohere.com/v2/embed",
                Api::Cohere,
                Some("COHERE_API_KEY")
            )
        );
        let e = r.endpoint(Some("ck".into()), 8);
        assert_eq!(e.auth, Auth::Bearer("ck".into()));
        assert_eq!(
            e.request_body(&["a", "b"]),
            json!({"model": "embed-english-v3.0", "input_type": "search_document", "embedding_types": ["float"], "texts": ["a", "b"]})
        );
        assert_eq!(
            go("cohere/m", json!({"input_type": "search_query"}), &[])
                .unwrap()
                .body["input_type"],
            "search_query"
        );

        let r = go("mistral/mistral-embed", json!({}), &[]).unwrap();
        assert_eq!(
            (r.url.as_str(), r.key_name.as_deref(), r.api),
            (
                "https://api.mistral.ai/v1/embeddings",
                Some("MISTRAL_API_KEY"),
                Api::OpenAi
            )
        );
        let r = go(
            "jina_ai/jina-embeddings-v3",
            json!({"task": "retrieval.passage"}),
            &[("JINA_AI_API_BASE", "http://127.0.0.1:9/v1/")],
        )
        .unwrap();
        assert_eq!(
            (r.url.as_str(), r.base.as_str(), r.key_name.as_deref()),
            (
                "http://127.0.0.1:9/v1/embeddings",
                "http://127.0.0.1:9/v1",
                Some("JINA_AI_API_KEY")
            )
        );
        assert_eq!(r.body["task"], "retrieval.passage");

        let r = go(
            "huggingface/BAAI/bge-small-en-v1.5",
            json!({"api_base": "http://tei:8080"}),
            &[],
        )
        .unwrap();
        assert_eq!(
            (r.url.as_str(), r.api, r.key_required),
            ("http://tei:8080/embed", Api::Tei, false)
        );
        assert_eq!(
            r.endpoint(None, 8).request_body(&["a"]),
            json!({"inputs": ["a"]})
        );
        let r = go("huggingface/BAAI/bge-small-en-v1.5", json!({}), &[]).unwrap();
        assert_eq!(r.url, "https://router.huggingface.co/hf-inference/models/BAAI/bge-small-en-v1.5/pipeline/feature-extraction");
        assert!(r.key_required && r.base == HUGGINGFACE_URL);

        let r = go("voyage/voyage-3", json!({}), &[]).unwrap();
        assert_eq!(
            (r.url.as_str(), r.key_name.as_deref(), r.api),
            (
                "https://api.voyageai.com/v1/embeddings",
                Some("VOYAGE_API_KEY"),
                Api::VoyageAi
            )
        );
        let r = go(
            "ollama/nomic-embed-text",
            json!({}),
            &[("OLLAMA_HOST", "127.0.0.1:11434")],
        )
        .unwrap();
        assert_eq!(
            (r.url.as_str(), r.key_name.clone(), r.api),
            ("http://127.0.0.1:11434/api/embed", None, Api::Ollama)
        );
    }

    #[test]
    fn openai_and_bare_names_and_the_callers_key_name() {
        let r = route(
            "openai/text-embedding-3-large",
            256,
            Some("MY_KEY"),
            None,
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            (r.url.as_str(), r.key_name.as_deref(), r.key_required),
            ("https://api.openai.com/v1/embeddings", Some("MY_KEY"), true)
        );
        assert_eq!(r.body["dimensions"], 256);
        assert_eq!(r.tokens.unwrap().context(), Some(8191));
        let r = go(
            "bge-m3",
            json!({"api_base": "http://127.0.0.1:8000/v1"}),
            &[],
        )
        .unwrap();
        assert_eq!(
            (r.url.as_str(), r.key_required, r.tokens),
            ("http://127.0.0.1:8000/v1/embeddings", false, None)
        );
        assert_eq!(
            go("text-embedding-3-small", json!({}), &[]).unwrap().base,
            OPENAI_URL
        );
    }

    #[test]
    fn other_prefixes_and_options_fail_with_what_is_supported() {
        for m in [
            "bedrock/amazon.titan-embed-text-v2:0",
            "vertex_ai/text-embedding-004",
            "nomic-embed-text",
        ] {
            let e = go(m, json!({}), &[]).unwrap_err();
            assert!(
                e.unsupported && e.message.contains("supported prefixes: azure/, cohere/"),
                "{e:?}"
            );
            assert!(e.message.contains("request signing"), "{e:?}");
        }
        let e = go("cohere/m", json!({"api_key": "sk"}), &[]).unwrap_err();
        assert!(
            e.message.contains("\"api_key\" is not supported") && e.message.contains("input_type"),
            "{e:?}"
        );
        assert!(go("mistral/m", json!({"api_base": "api.example"}), &[])
            .unwrap_err()
            .message
            .contains("scheme"));
        assert!(go("cohere/m", json!([1]), &[]).is_err());
        assert!(go("cohere/", json!({}), &[]).is_err());
    }
}
