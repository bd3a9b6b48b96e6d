//! safetensors checkpoints, memory-mapped. f32 tensors are read in place,
//! so every process that loads a model shares its pages through the page
//! cache (each PostgreSQL backend that embeds a query, every worker);
//! f16 and bf16 tensors are widened once into private memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

/// A tensor's f32 elements: inside the mapped file, or owned.
#[derive(Clone)]
pub enum Tensor {
    Mapped {
        map: Arc<Mmap>,
        offset: usize,
        len: usize,
    },
    Owned(Arc<Vec<f32>>),
}

impl Tensor {
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Tensor::Mapped { map, offset, len } => {
                let bytes = &map[*offset..*offset + *len * 4];
                // SAFETY: `offset` is 4-aligned (checked when made) and the
                // mapping lives as long as `self`; any bits are a valid f32.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const f32, *len) }
            }
            Tensor::Owned(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Tensor::Mapped { len, .. } => *len,
            Tensor::Owned(v) => v.len(),
        }
    }
}

struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range in the file.
    start: usize,
    end: usize,
}

pub struct Weights {
    map: Arc<Mmap>,
    entries: HashMap<String, Entry>,
    file: String,
}

impl Weights {
    pub fn open(path: &Path) -> Result<Weights, String> {
        let file = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| format!("{file}: {e}"))?;
        // SAFETY: the file is only read; a model file rewritten while mapped
        // is the operator's error, as for any program that maps its data.
        let map = unsafe { Mmap::map(&f) }.map_err(|e| format!("{file}: {e}"))?;
        let mut entries = HashMap::new();
        let st = SafeTensors::deserialize(&map).map_err(|e| format!("{file}: {e}"))?;
        let base = map.as_ptr() as usize;
        for (name, view) in st.tensors() {
            let data = view.data();
            let start = data.as_ptr() as usize - base;
            entries.insert(
                name,
                Entry {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    start,
                    end: start + data.len(),
                },
            );
        }
        drop(st);
        Ok(Weights {
            map: Arc::new(map),
            entries,
            file,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, String> {
        let e = self.entry(name)?;
        if e.shape != shape {
            return Err(format!(
                "{}: tensor {name} has shape {:?}, expected {shape:?}",
                self.file, e.shape
            ));
        }
        self.read(e)
    }

    /// The 2-D tensor `name` whose rows are `width` wide (an embedding
    /// table of any length).
    pub fn tensor_any(&self, name: &str, width: usize) -> Result<Tensor, String> {
        let e = self.entry(name)?;
        if e.shape.len() != 2 || e.shape[1] != width {
            return Err(format!(
                "{}: tensor {name} has shape {:?}, expected [_, {width}]",
                self.file, e.shape
            ));
        }
        self.read(e)
    }

    fn entry(&self, name: &str) -> Result<&Entry, String> {
        self.entries
            .get(name)
            .ok_or_else(|| format!("{}: the weights have no tensor {name}", self.file))
    }

    fn read(&self, e: &Entry) -> Result<Tensor, String> {
        let bytes = &self.map[e.start..e.end];
        let widen = |f: fn([u8; 2]) -> f32| -> Tensor {
            Tensor::Owned(Arc::new(
                bytes.chunks_exact(2).map(|c| f([c[0], c[1]])).collect(),
            ))
        };
        Ok(match e.dtype {
            Dtype::F32 if e.start.is_multiple_of(4) && cfg!(target_endian = "little") => {
                Tensor::Mapped {
                    map: self.map.clone(),
                    offset: e.start,
                    len: bytes.len() / 4,
                }
            }
            Dtype::F32 => Tensor::Owned(Arc::new(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )),
            Dtype::F16 => widen(|b| half::f16::from_le_bytes(b).to_f32()),
            Dtype::BF16 => widen(|b| half::bf16::from_le_bytes(b).to_f32()),
            other => {
                return Err(format!(
                    "{}: tensors of type {other:?} are not supported (f32, f16, bf16)",
                    self.file
                ))
            }
        })
    }
}
