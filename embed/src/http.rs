//! HTTP providers: OpenAI (and OpenAI-compatible servers via `base_url`),
//! Ollama, Voyage AI, and litellm's (`crate::litellm`). Requests are batched
//! by input count and size (OpenAI's models: by tokens); a
//! 429, a 5xx, a timeout or a broken connection is retried with exponential
//! backoff (honouring `Retry-After`), anything else fails at once with the
//! provider's message.

use std::time::Duration;

use serde_json::{json, Value};

use crate::tokens::{Tokens, MAX_REQUEST_TOKENS};

/// Tunables, from the environment (tests shorten them).
pub struct HttpSettings {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl HttpSettings {
    pub fn from_env() -> Self {
        HttpSettings {
            timeout: Duration::from_millis(env_num("PGAI_MIGRATE_HTTP_TIMEOUT_MS", 60_000)),
            retries: env_num("PGAI_MIGRATE_HTTP_RETRIES", 5) as u32,
            backoff: Duration::from_millis(env_num("PGAI_MIGRATE_HTTP_BACKOFF_MS", 500)),
        }
    }
}

/// A provider's request and response shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    /// `input` → `data[].embedding` (OpenAI, Azure, Mistral, Jina).
    OpenAi,
    /// `input` → `embeddings`.
    Ollama,
    /// OpenAI's shape, Voyage's limits.
    VoyageAi,
    /// `texts` → `embeddings.float` (Cohere v2).
    Cohere,
    /// `inputs` → an array of vectors (text-embeddings-inference,
    /// Hugging Face's feature-extraction pipeline).
    Tei,
}

impl Api {
    fn input_field(self) -> &'static str {
        match self {
            Api::OpenAi | Api::Ollama | Api::VoyageAi => "input",
            Api::Cohere => "texts",
            Api::Tei => "inputs",
        }
    }

    /// Inputs and bytes per request by default.
    fn limits(self) -> (usize, usize) {
        match self {
            // 2048 inputs per request; about 300k tokens (at ≥ 2 bytes a token).
            Api::OpenAi => (2048, 600_000),
            Api::Ollama => (256, 1_000_000),
            // Voyage's smallest per-request limits: 128 inputs, 120k tokens.
            Api::VoyageAi => (128, 240_000),
            // Cohere takes 96 texts a call.
            Api::Cohere => (96, 600_000),
            // text-embeddings-inference's default --max-client-batch-size.
            Api::Tei => (32, 1_000_000),
        }
    }
}

/// How the key travels.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    None,
    Bearer(String),
    /// A header of the provider's own (Azure's `api-key`).
    Header(&'static str, String),
}

/// One provider endpoint: where, with what, in which shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Names the provider in errors.
    pub provider: &'static str,
    pub api: Api,
    /// The full URL requests are posted to.
    pub url: String,
    pub auth: Auth,
    /// Request body fields besides the input.
    pub body: serde_json::Map<String, Value>,
    pub dimensions: Option<usize>,
    pub max_inputs: usize,
    pub max_bytes: usize,
    /// OpenAI's models: inputs cut to the context, requests bounded by tokens.
    pub tokens: Option<Tokens>,
}

impl Endpoint {
    /// `api`'s default limits, a bearer key if any.
    pub fn new(
        provider: &'static str,
        api: Api,
        url: String,
        key: Option<String>,
        body: serde_json::Map<String, Value>,
        dimensions: Option<usize>,
    ) -> Endpoint {
        let (max_inputs, max_bytes) = api.limits();
        Endpoint {
            provider,
            api,
            url,
            auth: key.map_or(Auth::None, Auth::Bearer),
            body,
            dimensions,
            max_inputs,
            max_bytes,
            tokens: None,
        }
    }

    /// The request body for `texts`.
    pub fn request_body(&self, texts: &[&str]) -> Value {
        let mut body = self.body.clone();
        body.insert(self.api.input_field().into(), json!(texts));
        Value::Object(body)
    }
}

pub struct HttpEmbedder {
    endpoint: Endpoint,
    agent: ureq::Agent,
    settings: HttpSettings,
}

/// Splits inputs of (bytes, tokens) into consecutive batches of at most
/// `max_inputs`, and `max_bytes` or, when counted, `max_tokens`; an input
/// over a limit on its own goes alone.
pub fn batches(
    sizes: &[(usize, Option<usize>)],
    max_inputs: usize,
    max_bytes: usize,
    max_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < sizes.len() {
        let (mut end, mut bytes, mut tokens) = (start, 0, 0);
        while end < sizes.len() && end - start < max_inputs {
            let (b, t) = sizes[end];
            let fits = match t {
                Some(t) => tokens + t <= max_tokens,
                None => bytes + b <= max_bytes,
            };
            if end > start && !fits {
                break;
            }
            bytes += b;
            tokens += t.unwrap_or(0);
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

impl HttpEmbedder {
    pub fn new(endpoint: Endpoint, settings: HttpSettings) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        HttpEmbedder {
            endpoint,
            agent,
            settings,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let e = &self.endpoint;
        let prepared: Vec<(std::borrow::Cow<str>, Option<usize>)> = match &e.tokens {
            Some(t) => texts
                .iter()
                .map(|s| {
                    let (s, n) = t.prepare(s);
                    (s, Some(n))
                })
                .collect(),
            None => texts.iter().map(|s| (s.as_str().into(), None)).collect(),
        };
        let sizes: Vec<(usize, Option<usize>)> =
            prepared.iter().map(|(s, n)| (s.len(), *n)).collect();
        let mut out = Vec::with_capacity(texts.len());
        for r in batches(&sizes, e.max_inputs, e.max_bytes, MAX_REQUEST_TOKENS) {
            let batch: Vec<&str> = prepared[r].iter().map(|(s, _)| s.as_ref()).collect();
            out.extend(self.request(&batch)?);
        }
        Ok(out)
    }

    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let body = self.endpoint.request_body(texts);
        let mut attempt = 0;
        loop {
            let (retry_after, message) = match self.send(&body) {
                Ok(Ok(v)) => return parse(&self.endpoint, v, texts.len()),
                Ok(Err(fatal)) => return Err(fatal),
                Err(transient) => transient,
            };
            if attempt >= self.settings.retries {
                return Err(format!(
                    "{message} (gave up after {} attempts)",
                    attempt + 1
                ));
            }
            let backoff = self.settings.backoff * 2u32.saturating_pow(attempt);
            std::thread::sleep(retry_after.map_or(backoff, |r| r.min(Duration::from_secs(60))));
            attempt += 1;
        }
    }

    /// Ok(Ok(json)) on success, Ok(Err(msg)) for a failure not worth
    /// retrying, Err((retry_after, msg)) for a transient one.
    #[allow(clippy::type_complexity)]
    fn send(&self, body: &Value) -> Result<Result<Value, String>, (Option<Duration>, String)> {
        let url = &self.endpoint.url;
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        match &self.endpoint.auth {
            Auth::None => {}
            Auth::Bearer(key) => req = req.header("Authorization", &format!("Bearer {key}")),
            Auth::Header(name, key) => req = req.header(*name, key),
        }
        let mut resp = match req.send_json(body) {
            Ok(r) => r,
            Err(e) => {
                return Err((
                    None,
                    format!("{} request to {} failed: {e}", self.endpoint.provider, url),
                ))
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = match resp
            .body_mut()
            .with_config()
            .limit(512 << 20)
            .read_to_string()
        {
            Ok(t) => t,
            Err(e) => {
                return Err((
                    None,
                    format!(
                        "{} response from {} could not be read: {e}",
                        self.endpoint.provider, url
                    ),
                ))
            }
        };
        // Only the status and the provider's own error message are kept:
        // error rows are readable by the vectorizer's owner, and a body may
        // be anything an endpoint serves.
        let said = provider_message(&text)
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        match status {
            200..=299 => match serde_json::from_str(&text) {
                Ok(v) => Ok(Ok(v)),
                Err(e) => Ok(Err(format!(
                    "{} returned malformed JSON (HTTP {status}, {} bytes: {e})",
                    self.endpoint.provider,
                    text.len()
                ))),
            },
            429 | 500..=599 => Err((
                retry_after,
                format!("{} returned HTTP {status}{said}", self.endpoint.provider),
            )),
            _ => Ok(Err(format!(
                "{} returned HTTP {status}{said}",
                self.endpoint.provider
            ))),
        }
    }
}

/// The vectors of a successful response, in input order, checked against
/// the count and the dimensions expected.
pub fn parse(e: &Endpoint, v: Value, n: usize) -> Result<Vec<Vec<f32>>, String> {
    let bad = |what: &str| format!("{} returned a malformed response ({what})", e.provider);
    let list = |arr: Option<&Vec<Value>>, what: &str| -> Result<Vec<Vec<f32>>, String> {
        arr.ok_or_else(|| bad(what))?
            .iter()
            .map(|e| to_floats(e).ok_or_else(|| bad("an embedding is not an array of numbers")))
            .collect()
    };
    let vectors: Vec<Vec<f32>> = match e.api {
        Api::Ollama => list(
            v.get("embeddings").and_then(Value::as_array),
            "no \"embeddings\" array",
        )?,
        Api::Cohere => list(
            v.pointer("/embeddings/float").and_then(Value::as_array),
            "no \"embeddings.float\" array",
        )?,
        Api::Tei => list(v.as_array(), "not an array of embeddings")?,
        Api::OpenAi | Api::VoyageAi => {
            let arr = v
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("no \"data\" array"))?;
            let mut slots: Vec<Option<Vec<f32>>> = vec![None; arr.len()];
            for (pos, item) in arr.iter().enumerate() {
                let idx = match item.get("index") {
                    None => pos,
                    Some(i) => i
                        .as_u64()
                        .map(|i| i as usize)
                        .ok_or_else(|| bad("\"index\" is not an integer"))?,
                };
                let emb = item
                    .get("embedding")
                    .and_then(to_floats)
                    .ok_or_else(|| bad("an embedding is not an array of numbers"))?;
                let slot = slots
                    .get_mut(idx)
                    .ok_or_else(|| bad("\"index\" out of range"))?;
                if slot.replace(emb).is_some() {
                    return Err(bad("duplicate \"index\""));
                }
            }
            slots
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("missing an index"))?
        }
    };
    if vectors.len() != n {
        return Err(bad(&format!("{} embeddings for {n} inputs", vectors.len())));
    }
    if let Some(d) = e.dimensions {
        if let Some(v) = vectors.iter().find(|v| v.len() != d) {
            return Err(format!(
                "{} returned {} dimensions, the vectorizer expects {d}",
                e.provider,
                v.len()
            ));
        }
    }
    Ok(vectors)
}

/// The error message a provider puts in its JSON error body (OpenAI's and
/// Voyage's `error.message` or `detail`, Ollama's `error`), cut short.
pub fn provider_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let m = v
        .pointer("/error/message")
        .or_else(|| v.get("error"))
        .or_else(|| v.get("detail"))
        .or_else(|| v.get("message"))?
        .as_str()?;
    let cut: String = m.chars().filter(|c| !c.is_control()).take(200).collect();
    Some(if cut.len() < m.len() {
        format!("{cut}…")
    } else {
        cut
    })
}

fn to_floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(api: Api) -> Endpoint {
        Endpoint::new(
            "p",
            api,
            "http://x/e".into(),
            None,
            serde_json::Map::new(),
            Some(2),
        )
    }

    #[test]
    fn batches_respect_count_bytes_and_tokens() {
        let bytes: Vec<(usize, Option<usize>)> = vec![(4, None); 5];
        assert_eq!(batches(&bytes, 2, 100, 0), vec![0..2, 2..4, 4..5]);
        assert_eq!(batches(&bytes, 10, 8, 0), vec![0..2, 2..4, 4..5]);
        // Counted inputs are bounded by tokens, not bytes; one over the
        // limit on its own still goes.
        let tokens = vec![
            (1000, Some(6)),
            (1000, Some(5)),
            (1000, Some(20)),
            (1, Some(1)),
        ];
        assert_eq!(batches(&tokens, 10, 10, 11), vec![0..2, 2..3, 3..4]);
        assert!(batches(&[], 1, 1, 1).is_empty());
    }

    #[test]
    fn each_shape_is_parsed_in_input_order() {
        let want = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        let openai =
            json!({"data": [{"index": 1, "embedding": [3, 4]}, {"index": 0, "embedding": [1, 2]}]});
        assert_eq!(parse(&endpoint(Api::OpenAi), openai, 2).unwrap(), want);
        let cohere =
            json!({"id": "x", "embeddings": {"float": [[1, 2], [3, 4]]}, "texts": ["a", "b"]});
        assert_eq!(parse(&endpoint(Api::Cohere), cohere, 2).unwrap(), want);
        assert_eq!(
            parse(&endpoint(Api::Tei), json!([[1, 2], [3, 4]]), 2).unwrap(),
            want
        );
        assert_eq!(
            parse(
                &endpoint(Api::Ollama),
                json!({"embeddings": [[1, 2], [3, 4]]}),
                2
            )
            .unwrap(),
            want
        );
        let e = parse(&endpoint(Api::Cohere), json!({"embeddings": [[1, 2]]}), 1).unwrap_err();
        assert!(e.contains("no \"embeddings.float\" array"), "{e}");
        let e = parse(&endpoint(Api::Tei), json!([[1, 2, 3]]), 1).unwrap_err();
        assert_eq!(e, "p returned 3 dimensions, the vectorizer expects 2");
        assert!(parse(&endpoint(Api::Tei), json!([[1, 2]]), 2)
            .unwrap_err()
            .contains("1 embeddings for 2 inputs"));
        // Cohere's error body is a top-level "message".
        assert_eq!(
            provider_message(r#"{"message":"invalid api token"}"#).as_deref(),
            Some("invalid api token")
        );
    }

    #[test]
    fn the_input_goes_in_each_apis_field() {
        for (api, field) in [
            (Api::OpenAi, "input"),
            (Api::Cohere, "texts"),
            (Api::Tei, "inputs"),
        ] {
            assert_eq!(endpoint(api).request_body(&["a"]), json!({field: ["a"]}));
        }
    }
}
