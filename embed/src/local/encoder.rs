//! A BERT-family encoder (BERT, RoBERTa, XLM-RoBERTa, DistilBERT) over
//! packed sequences: the tokens of a batch are laid end to end, so the
//! matrix products never compute padding, and attention runs per sequence.

use rayon::prelude::*;
use serde_json::Value;

use super::bf16;
use super::kernels::{self, Activation};
use super::weights::{Tensor, Weights};

/// The architectures this encoder runs, by `config.json`'s `model_type`.
pub const ARCHITECTURES: &[&str] = &[
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "distilbert",
    "mpnet",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Bert,
    /// RoBERTa and its descendants: positions count from `pad_token_id + 1`.
    Roberta,
    DistilBert,
    /// MPNet: RoBERTa's positions, and a relative-position bias on every
    /// layer's attention scores.
    MpNet,
}

/// MPNet's bucket of a relative position (key − query), as transformers
/// computes it: 32 buckets, 16 per direction, exact up to 8, then
/// logarithmic up to 128 (in f32, as torch does).
fn mpnet_bucket(relative: i64) -> usize {
    const HALF: i64 = 16;
    const EXACT: i64 = 8;
    let n = -relative;
    let mut bucket = if n < 0 { HALF } else { 0 };
    let n = n.abs();
    bucket += if n < EXACT {
        n
    } else {
        // The divisor is a double in transformers, rounded to f32 by torch.
        let ratio = (n as f32 / EXACT as f32).ln() / (128f64 / EXACT as f64).ln() as f32;
        (EXACT + (ratio * (HALF - EXACT) as f32) as i64).min(HALF - 1)
    };
    bucket as usize
}

struct Linear {
    w: Tensor,
    /// The bf16 copy, when that path is on.
    packed: Option<bf16::Packed>,
    b: Tensor,
    /// Output and input widths.
    n: usize,
    k: usize,
}

struct Norm {
    gamma: Tensor,
    beta: Tensor,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm1: Norm,
    up: Linear,
    down: Linear,
    norm2: Norm,
}

pub struct Encoder {
    family: Family,
    word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    /// MPNet's `[buckets × heads]` relative-position bias.
    relative_bias: Option<Tensor>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    pub hidden: usize,
    heads: usize,
    act: Activation,
    eps: f32,
    pad_id: u32,
    pub max_positions: usize,
}

/// One batch: the token ids of each sequence, end to end.
pub struct Packed {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// `(start, len)` of each sequence in `ids`.
    pub seqs: Vec<(usize, usize)>,
}

fn get<'a>(cfg: &'a Value, key: &str) -> Result<&'a Value, String> {
    cfg.get(key)
        .ok_or_else(|| format!("config.json has no {key:?}"))
}

fn usize_of(cfg: &Value, key: &str) -> Result<usize, String> {
    get(cfg, key)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| format!("config.json: {key:?} is not a whole number"))
}

impl Encoder {
    /// The encoder `config.json` describes, with the weights of `w`.
    pub fn load(cfg: &Value, w: &Weights, use_bf16: bool) -> Result<Encoder, String> {
        let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
        let family = match model_type {
            "bert" => Family::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Family::Roberta,
            "distilbert" => Family::DistilBert,
            "mpnet" => Family::MpNet,
            other => {
                return Err(format!(
                    "model architecture {other:?} is not supported by the local encoder (supported: {})",
                    ARCHITECTURES.join(", ")
                ))
            }
        };
        let (hidden, layers, heads, inner, act, eps) = if family == Family::DistilBert {
            let act = cfg
                .get("activation")
                .and_then(Value::as_str)
                .unwrap_or("gelu");
            (
                usize_of(cfg, "dim")?,
                usize_of(cfg, "n_layers")?,
                usize_of(cfg, "n_heads")?,
                usize_of(cfg, "hidden_dim")?,
                act,
                1e-12,
            )
        } else {
            let act = cfg
                .get("hidden_act")
                .and_then(Value::as_str)
                .unwrap_or("gelu");
            let eps = cfg
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-12);
            (
                usize_of(cfg, "hidden_size")?,
                usize_of(cfg, "num_hidden_layers")?,
                usize_of(cfg, "num_attention_heads")?,
                usize_of(cfg, "intermediate_size")?,
                act,
                eps,
            )
        };
        let act = Activation::from_name(act)
            .ok_or_else(|| format!("activation {act:?} is not supported by the local encoder (supported: gelu, gelu_new, relu)"))?;
        if heads == 0 || hidden % heads != 0 {
            return Err(format!(
                "config.json: {hidden} hidden units do not split into {heads} heads"
            ));
        }
        if let Some(p) = cfg.get("position_embedding_type").and_then(Value::as_str) {
            if p != "absolute" {
                return Err(format!("position_embedding_type {p:?} is not supported by the local encoder (only \"absolute\")"));
            }
        }
        // MPNet's embeddings fix the padding index at 1, whatever the config says.
        let pad_id = if family == Family::MpNet {
            1
        } else {
            cfg.get("pad_token_id").and_then(Value::as_u64).unwrap_or(0) as u32
        };

        let prefix = ["bert.", "roberta.", "distilbert.", "mpnet.", "model.", ""]
            .into_iter()
            .find(|p| w.has(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or("the weights have no embeddings.word_embeddings.weight")?;
        let t = |name: &str, shape: &[usize]| w.tensor(&format!("{prefix}{name}"), shape);
        let linear = |name: &str, n: usize, k: usize| -> Result<Linear, String> {
            let w = t(&format!("{name}.weight"), &[n, k])?;
            let packed = use_bf16.then(|| bf16::Packed::new(w.as_slice(), n, k));
            Ok(Linear {
                w,
                packed,
                b: t(&format!("{name}.bias"), &[n])?,
                n,
                k,
            })
        };
        // Old BERT checkpoints name LayerNorm's parameters gamma and beta.
        let norm = |name: &str| -> Result<Norm, String> {
            let g = t(&format!("{name}.weight"), &[hidden])
                .or_else(|_| t(&format!("{name}.gamma"), &[hidden]))?;
            let b = t(&format!("{name}.bias"), &[hidden])
                .or_else(|_| t(&format!("{name}.beta"), &[hidden]))?;
            Ok(Norm { gamma: g, beta: b })
        };
        let word = w.tensor_any(
            &format!("{prefix}embeddings.word_embeddings.weight"),
            hidden,
        )?;
        let position = w.tensor_any(
            &format!("{prefix}embeddings.position_embeddings.weight"),
            hidden,
        )?;
        let max_positions = position.len() / hidden;
        let token_type = if matches!(family, Family::DistilBert | Family::MpNet) {
            None
        } else {
            Some(w.tensor_any(
                &format!("{prefix}embeddings.token_type_embeddings.weight"),
                hidden,
            )?)
        };
        let mut out = Vec::with_capacity(layers);
        for i in 0..layers {
            out.push(if family == Family::MpNet {
                let p = format!("encoder.layer.{i}");
                Layer {
                    q: linear(&format!("{p}.attention.attn.q"), hidden, hidden)?,
                    k: linear(&format!("{p}.attention.attn.k"), hidden, hidden)?,
                    v: linear(&format!("{p}.attention.attn.v"), hidden, hidden)?,
                    out: linear(&format!("{p}.attention.attn.o"), hidden, hidden)?,
                    norm1: norm(&format!("{p}.attention.LayerNorm"))?,
                    up: linear(&format!("{p}.intermediate.dense"), inner, hidden)?,
                    down: linear(&format!("{p}.output.dense"), hidden, inner)?,
                    norm2: norm(&format!("{p}.output.LayerNorm"))?,
                }
            } else if family == Family::DistilBert {
                let p = format!("transformer.layer.{i}");
                Layer {
                    q: linear(&format!("{p}.attention.q_lin"), hidden, hidden)?,
                    k: linear(&format!("{p}.attention.k_lin"), hidden, hidden)?,
                    v: linear(&format!("{p}.attention.v_lin"), hidden, hidden)?,
                    out: linear(&format!("{p}.attention.out_lin"), hidden, hidden)?,
                    norm1: norm(&format!("{p}.sa_layer_norm"))?,
                    up: linear(&format!("{p}.ffn.lin1"), inner, hidden)?,
                    down: linear(&format!("{p}.ffn.lin2"), hidden, inner)?,
                    norm2: norm(&format!("{p}.output_layer_norm"))?,
                }
            } else {
                let p = format!("encoder.layer.{i}");
                Layer {
                    q: linear(&format!("{p}.attention.self.query"), hidden, hidden)?,
                    k: linear(&format!("{p}.attention.self.key"), hidden, hidden)?,
                    v: linear(&format!("{p}.attention.self.value"), hidden, hidden)?,
                    out: linear(&format!("{p}.attention.output.dense"), hidden, hidden)?,
                    norm1: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    up: linear(&format!("{p}.intermediate.dense"), inner, hidden)?,
                    down: linear(&format!("{p}.output.dense"), hidden, inner)?,
                    norm2: norm(&format!("{p}.output.LayerNorm"))?,
                }
            });
        }
        let relative_bias = if family == Family::MpNet {
            let t = w.tensor_any(
                &format!("{prefix}encoder.relative_attention_bias.weight"),
                heads,
            )?;
            if t.len() / heads < 32 {
                return Err("encoder.relative_attention_bias has fewer than 32 buckets".into());
            }
            Some(t)
        } else {
            None
        };
        Ok(Encoder {
            family,
            relative_bias,
            embed_norm: norm("embeddings.LayerNorm")?,
            word,
            position,
            token_type,
            layers: out,
            hidden,
            heads,
            act,
            eps: eps as f32,
            pad_id,
            max_positions,
        })
    }

    /// The longest sequence the position table allows.
    pub fn max_tokens(&self) -> usize {
        match self.family {
            Family::Roberta | Family::MpNet => {
                self.max_positions.saturating_sub(self.pad_id as usize + 1)
            }
            _ => self.max_positions,
        }
    }

    fn linear(&self, x: &[f32], l: &Linear, dst: &mut Vec<f32>, threads: usize) {
        let rows = x.len() / l.k;
        dst.resize(rows * l.n, 0.0);
        if let Some(p) = &l.packed {
            return bf16::matmul_t(x, p, dst);
        }
        kernels::matmul_t(
            rows,
            l.n,
            l.k,
            x,
            l.k,
            l.w.as_slice(),
            l.k,
            dst,
            l.n,
            1.0,
            threads,
        );
    }

    /// The last hidden state of every token, `[tokens × hidden]`.
    pub fn forward(&self, batch: &Packed, threads: usize) -> Result<Vec<f32>, String> {
        let h = self.hidden;
        let tokens = batch.ids.len();
        let vocab = self.word.len() / h;
        // Embeddings: word + position + token type, then LayerNorm.
        let mut x = vec![0.0f32; tokens * h];
        let first_pos = if matches!(self.family, Family::Roberta | Family::MpNet) {
            self.pad_id as usize + 1
        } else {
            0
        };
        for &(start, len) in &batch.seqs {
            for j in 0..len {
                let t = start + j;
                let id = batch.ids[t] as usize;
                let pos = first_pos + j;
                if id >= vocab || pos >= self.max_positions {
                    return Err(format!(
                        "token {id} at position {pos} is outside the model's tables"
                    ));
                }
                let row = &mut x[t * h..(t + 1) * h];
                row.copy_from_slice(&self.word.as_slice()[id * h..(id + 1) * h]);
                let p = &self.position.as_slice()[pos * h..(pos + 1) * h];
                row.iter_mut().zip(p).for_each(|(a, b)| *a += b);
                if let Some(tt) = &self.token_type {
                    let ty = (batch.type_ids[t] as usize).min(tt.len() / h - 1);
                    let e = &tt.as_slice()[ty * h..(ty + 1) * h];
                    row.iter_mut().zip(e).for_each(|(a, b)| *a += b);
                }
            }
        }
        let (g, b, eps) = (
            self.embed_norm.gamma.as_slice(),
            self.embed_norm.beta.as_slice(),
            self.eps,
        );
        kernels::par_rows(&mut x, h, |rows, _| kernels::norm_rows(rows, g, b, eps));

        let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ctx, mut tmp, mut inner) = (vec![0.0f32; tokens * h], Vec::new(), Vec::new());
        for layer in &self.layers {
            self.linear(&x, &layer.q, &mut q, threads);
            self.linear(&x, &layer.k, &mut k, threads);
            self.linear(&x, &layer.v, &mut v, threads);
            let add_bias = |m: &mut Vec<f32>, l: &Linear| {
                let bias = l.b.as_slice();
                kernels::par_rows(m, h, |rows, _| kernels::bias_act_rows(rows, bias, None));
            };
            add_bias(&mut q, &layer.q);
            add_bias(&mut k, &layer.k);
            add_bias(&mut v, &layer.v);
            self.attention(&q, &k, &v, &batch.seqs, &mut ctx);

            self.linear(&ctx, &layer.out, &mut tmp, threads);
            let n1 = &layer.norm1;
            let (ob, g, bt) = (
                layer.out.b.as_slice(),
                n1.gamma.as_slice(),
                n1.beta.as_slice(),
            );
            add_norm(&mut x, &tmp, h, |xr, yr| {
                kernels::add_norm_rows(xr, yr, ob, g, bt, eps)
            });

            self.linear(&x, &layer.up, &mut inner, threads);
            let (ub, act) = (layer.up.b.as_slice(), self.act);
            kernels::par_rows(&mut inner, layer.up.n, |rows, _| {
                kernels::bias_act_rows(rows, ub, Some(act))
            });
            self.linear(&inner, &layer.down, &mut tmp, threads);
            let n2 = &layer.norm2;
            let (db, g, bt) = (
                layer.down.b.as_slice(),
                n2.gamma.as_slice(),
                n2.beta.as_slice(),
            );
            add_norm(&mut x, &tmp, h, |xr, yr| {
                kernels::add_norm_rows(xr, yr, db, g, bt, eps)
            });
        }
        Ok(x)
    }

    /// Scaled dot-product attention of each sequence with itself, head by
    /// head, in parallel over (sequence, head).
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], seqs: &[(usize, usize)], ctx: &mut [f32]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        // Each task writes the head's columns of its own sequence's rows:
        // disjoint parts of `ctx`, handed out as raw addresses.
        let base = ctx.as_mut_ptr() as usize;
        let len = ctx.len();
        let tasks: Vec<(usize, usize, usize)> = seqs
            .iter()
            .flat_map(|&(s, l)| (0..self.heads).map(move |hd| (s, l, hd)))
            .collect();
        tasks
            .par_iter()
            .for_each_init(Vec::new, |scores: &mut Vec<f32>, &(s, l, hd)| {
                scores.resize(l * l, 0.0);
                let off = s * h + hd * d;
                kernels::matmul_t(l, l, d, &q[off..], h, &k[off..], h, scores, l, scale, 1);
                if let Some(table) = &self.relative_bias {
                    // bias[i][j] = table[bucket(j - i)][head], by distance.
                    let (table, heads) = (table.as_slice(), self.heads);
                    let by_distance: Vec<f32> = (0..2 * l - 1)
                        .map(|r| table[mpnet_bucket(r as i64 - (l as i64 - 1)) * heads + hd])
                        .collect();
                    for (i, row) in scores.chunks_mut(l).enumerate() {
                        let from = l - 1 - i;
                        row.iter_mut()
                            .zip(&by_distance[from..from + l])
                            .for_each(|(s, b)| *s += b);
                    }
                }
                kernels::softmax_rows(scores, l);
                assert!(off + (l - 1) * h + d <= len);
                // SAFETY: rows s..s+l, columns hd*d..(hd+1)*d of `ctx` belong to
                // this task alone, and lie within it (checked above).
                unsafe {
                    kernels::matmul_into(
                        l,
                        d,
                        l,
                        scores,
                        l,
                        &v[off..],
                        h,
                        (base as *mut f32).add(off),
                        h,
                    )
                };
            });
    }
}

/// `f(x_rows, y_rows)` over matching row groups of `x` and `y` in parallel.
fn add_norm(x: &mut [f32], y: &[f32], h: usize, f: impl Fn(&mut [f32], &[f32]) + Sync) {
    const ROWS: usize = 16;
    x.par_chunks_mut(h * ROWS)
        .zip(y.par_chunks(h * ROWS))
        .for_each(|(xr, yr)| f(xr, yr));
}

#[cfg(test)]
mod tests {
    use super::mpnet_bucket;

    #[test]
    fn mpnet_buckets_match_transformers() {
        // (key − query, bucket), as MPNetEncoder.relative_position_bucket
        // gives them: exact below 8 either way, logarithmic to 128, keys
        // after the query in the upper half.
        for (rel, want) in [
            (0, 0),
            (-1, 1),
            (-7, 7),
            (-8, 8),
            (-16, 10),
            (-32, 12),
            (-50, 13),
            (-64, 14),
            (-100, 15),
            (-1000, 15),
            (1, 17),
            (8, 24),
            (50, 29),
            (500, 31),
        ] {
            assert_eq!(mpnet_bucket(rel), want, "relative position {rel}");
        }
    }
}
