//! HTTP providers: OpenAI (and OpenAI-compatible servers via `base_url`),
//! Ollama and Voyage AI. Requests are batched by input count and size; a
//! 429, a 5xx, a timeout or a broken connection is retried with exponential
//! backoff (honouring `Retry-After`), anything else fails at once with the
//! provider's message.

use std::time::Duration;

use serde_json::{json, Value};

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

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    OpenAi,
    Ollama,
    VoyageAi,
}

pub struct HttpEmbedder {
    api: Api,
    url: String,
    api_key: Option<String>,
    /// Request body fields besides the input.
    body: serde_json::Map<String, Value>,
    dimensions: Option<usize>,
    max_inputs: usize,
    max_bytes: usize,
    agent: ureq::Agent,
    settings: HttpSettings,
}

impl HttpEmbedder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: Api,
        base_url: &str,
        api_key: Option<String>,
        body: serde_json::Map<String, Value>,
        dimensions: Option<usize>,
        settings: HttpSettings,
    ) -> Self {
        let base = base_url.trim_end_matches('/');
        let (url, max_inputs, max_bytes) = match api {
            // 2048 inputs per request; about 300k tokens (at ≥ 2 bytes a token).
            Api::OpenAi => (format!("{base}/embeddings"), 2048, 600_000),
            Api::Ollama => (format!("{base}/api/embed"), 256, 1_000_000),
            // Voyage's smallest per-request limits: 128 inputs, 120k tokens.
            Api::VoyageAi => (format!("{base}/embeddings"), 128, 240_000),
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        HttpEmbedder {
            api,
            url,
            api_key,
            body,
            dimensions,
            max_inputs,
            max_bytes,
            agent,
            settings,
        }
    }

    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < texts.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < texts.len()
                && end - start < self.max_inputs
                && (end == start || bytes + texts[end].len() <= self.max_bytes)
            {
                bytes += texts[end].len();
                end += 1;
            }
            out.extend(self.request(&texts[start..end])?);
            start = end;
        }
        Ok(out)
    }

    fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut body = self.body.clone();
        body.insert("input".into(), json!(texts));
        let body = Value::Object(body);
        let mut attempt = 0;
        loop {
            let (retry_after, message) = match self.send(&body) {
                Ok(Ok(v)) => return self.parse(v, texts.len()),
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
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        let mut resp = match req.send_json(body) {
            Ok(r) => r,
            Err(e) => {
                return Err((
                    None,
                    format!("{} request to {} failed: {e}", self.name(), self.url),
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
                        self.name(),
                        self.url
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
                    self.name(),
                    text.len()
                ))),
            },
            429 | 500..=599 => Err((
                retry_after,
                format!("{} returned HTTP {status}{said}", self.name()),
            )),
            _ => Ok(Err(format!("{} returned HTTP {status}{said}", self.name()))),
        }
    }

    fn name(&self) -> &'static str {
        match self.api {
            Api::OpenAi => "openai",
            Api::Ollama => "ollama",
            Api::VoyageAi => "voyageai",
        }
    }

    fn parse(&self, v: Value, n: usize) -> Result<Vec<Vec<f32>>, String> {
        let bad = |what: &str| format!("{} returned a malformed response ({what})", self.name());
        let vectors: Vec<Vec<f32>> = match self.api {
            Api::Ollama => {
                let arr = v
                    .get("embeddings")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("no \"embeddings\" array"))?;
                arr.iter()
                    .map(|e| {
                        to_floats(e).ok_or_else(|| bad("an embedding is not an array of numbers"))
                    })
                    .collect::<Result<_, _>>()?
            }
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
                    let e = item
                        .get("embedding")
                        .and_then(to_floats)
                        .ok_or_else(|| bad("an embedding is not an array of numbers"))?;
                    let slot = slots
                        .get_mut(idx)
                        .ok_or_else(|| bad("\"index\" out of range"))?;
                    if slot.replace(e).is_some() {
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
        if let Some(d) = self.dimensions {
            if let Some(v) = vectors.iter().find(|v| v.len() != d) {
                return Err(format!(
                    "{} returned {} dimensions, the vectorizer expects {d}",
                    self.name(),
                    v.len()
                ));
            }
        }
        Ok(vectors)
    }
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
