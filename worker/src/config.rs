//! The parts of a vectorizer's evaluated config (`migrate.vectorizer.config`)
//! the worker acts on. The extension has validated and filled in defaults;
//! this reads them, tolerating keys it does not use and pgai's `config_type`.
//! Implementations the worker cannot run are kept (as `Unsupported`) so the
//! key fails with a clear error instead of the whole worker.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Chunking {
    None,
    Character {
        chunk_size: i64,
        chunk_overlap: i64,
        separator: String,
        is_separator_regex: bool,
    },
    Recursive {
        chunk_size: i64,
        chunk_overlap: i64,
        separators: Vec<String>,
        is_separator_regex: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Formatting {
    ChunkValue,
    PythonTemplate(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Loading {
    Column {
        column_name: String,
        retries: i64,
    },
    /// `uri` loading: documents fetched from a URI (not supported yet).
    Uri {
        column_name: String,
        retries: i64,
    },
}

impl Loading {
    pub fn retries(&self) -> i64 {
        match self {
            Loading::Column { retries, .. } | Loading::Uri { retries, .. } => *retries,
        }
    }
    pub fn column_name(&self) -> &str {
        match self {
            Loading::Column { column_name, .. } | Loading::Uri { column_name, .. } => column_name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsing {
    Auto,
    None,
    /// A document parser the worker does not have (pymupdf, docling, …).
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Embedding {
    OpenAi {
        model: String,
        dimensions: Option<i64>,
        user: Option<String>,
        api_key_name: String,
        base_url: Option<String>,
    },
    Ollama {
        model: String,
        dimensions: i64,
        base_url: Option<String>,
        options: Option<Value>,
        keep_alive: Option<String>,
    },
    VoyageAi {
        model: String,
        dimensions: i64,
        input_type: Option<String>,
        api_key_name: String,
    },
    SentenceTransformers {
        model: String,
        dimensions: i64,
    },
    /// An implementation the worker cannot run (litellm, …).
    Unsupported(String),
}

/// Everything the pipeline needs from one config.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub loading: Option<Loading>,
    pub parsing: Parsing,
    pub chunking: Chunking,
    pub formatting: Formatting,
    pub embedding: Option<Embedding>,
    pub batch_size: i64,
}

pub type Result<T> = std::result::Result<T, String>;

/// A component may be an object with `implementation` or a bare string.
fn component<'a>(
    cfg: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<(String, Map<String, Value>)>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some((s.clone(), Map::new()))),
        Some(Value::Object(o)) => {
            let imp = o
                .get("implementation")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{key}.implementation: expected a string"))?;
            Ok(Some((imp.to_string(), o.clone())))
        }
        Some(other) => Err(format!("{key}: expected an object, got {other}")),
    }
}

fn get_str(o: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("{path}.{key}: expected a string, got {v}")),
    }
}

fn req_str(o: &Map<String, Value>, path: &str, key: &str) -> Result<String> {
    get_str(o, path, key)?.ok_or_else(|| format!("{path}.{key}: missing"))
}

fn get_int(o: &Map<String, Value>, path: &str, key: &str) -> Result<Option<i64>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{path}.{key}: expected an integer, got {v}")),
    }
}

fn get_bool(o: &Map<String, Value>, path: &str, key: &str) -> Result<Option<bool>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("{path}.{key}: expected a boolean, got {v}")),
    }
}

pub fn chunking(cfg: &Map<String, Value>) -> Result<Chunking> {
    let Some((imp, o)) = component(cfg, "chunking")? else {
        // The extension's default.
        return Ok(Chunking::Recursive {
            chunk_size: 800,
            chunk_overlap: 400,
            separators: ["\n\n", "\n", ".", "?", "!", " ", ""]
                .map(String::from)
                .to_vec(),
            is_separator_regex: false,
        });
    };
    let p = "chunking";
    let size = get_int(&o, p, "chunk_size")?.unwrap_or(800);
    let overlap = get_int(&o, p, "chunk_overlap")?.unwrap_or(400);
    let regex = get_bool(&o, p, "is_separator_regex")?.unwrap_or(false);
    match imp.as_str() {
        "none" | "chunking_none" => Ok(Chunking::None),
        "character_text_splitter" => Ok(Chunking::Character {
            chunk_size: size,
            chunk_overlap: overlap,
            separator: get_str(&o, p, "separator")?.unwrap_or_else(|| "\n\n".into()),
            is_separator_regex: regex,
        }),
        "recursive_character_text_splitter" => {
            let separators = match o.get("separators") {
                None | Some(Value::Null) => ["\n\n", "\n", ".", "?", "!", " ", ""]
                    .map(String::from)
                    .to_vec(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(String::from)
                            .ok_or_else(|| format!("{p}.separators: expected strings"))
                    })
                    .collect::<Result<_>>()?,
                Some(v) => return Err(format!("{p}.separators: expected an array, got {v}")),
            };
            Ok(Chunking::Recursive {
                chunk_size: size,
                chunk_overlap: overlap,
                separators,
                is_separator_regex: regex,
            })
        }
        other => Err(format!(
            "chunking: implementation {other:?} is not supported by this worker"
        )),
    }
}

pub fn formatting(cfg: &Map<String, Value>) -> Result<Formatting> {
    let Some((imp, o)) = component(cfg, "formatting")? else {
        return Ok(Formatting::PythonTemplate("$chunk".into()));
    };
    match imp.as_str() {
        "chunk_value" => Ok(Formatting::ChunkValue),
        "python_template" => Ok(Formatting::PythonTemplate(
            get_str(&o, "formatting", "template")?.unwrap_or_else(|| "$chunk".into()),
        )),
        other => Err(format!(
            "formatting: implementation {other:?} is not supported by this worker"
        )),
    }
}

pub fn loading(cfg: &Map<String, Value>) -> Result<Option<Loading>> {
    let Some((imp, o)) = component(cfg, "loading")? else {
        return Ok(None);
    };
    let p = "loading";
    let column_name = req_str(&o, p, "column_name")?;
    let retries = get_int(&o, p, "retries")?.unwrap_or(6);
    match imp.as_str() {
        "column" => Ok(Some(Loading::Column {
            column_name,
            retries,
        })),
        "uri" => Ok(Some(Loading::Uri {
            column_name,
            retries,
        })),
        other => Err(format!(
            "loading: implementation {other:?} is not supported by this worker"
        )),
    }
}

pub fn parsing(cfg: &Map<String, Value>) -> Result<Parsing> {
    Ok(match component(cfg, "parsing")? {
        None => Parsing::Auto,
        Some((imp, _)) => match imp.as_str() {
            "auto" => Parsing::Auto,
            "none" => Parsing::None,
            other => Parsing::Unsupported(other.to_string()),
        },
    })
}

pub fn embedding(cfg: &Map<String, Value>) -> Result<Option<Embedding>> {
    let Some((imp, o)) = component(cfg, "embedding")? else {
        return Ok(None);
    };
    let p = "embedding";
    let dims = || get_int(&o, p, "dimensions")?.ok_or_else(|| format!("{p}.dimensions: missing"));
    Ok(Some(match imp.as_str() {
        "openai" => Embedding::OpenAi {
            model: req_str(&o, p, "model")?,
            dimensions: get_int(&o, p, "dimensions")?,
            user: get_str(&o, p, "user")?,
            api_key_name: get_str(&o, p, "api_key_name")?
                .unwrap_or_else(|| "OPENAI_API_KEY".into()),
            base_url: get_str(&o, p, "base_url")?,
        },
        "ollama" => Embedding::Ollama {
            model: req_str(&o, p, "model")?,
            dimensions: dims()?,
            base_url: get_str(&o, p, "base_url")?,
            options: o.get("options").filter(|v| !v.is_null()).cloned(),
            keep_alive: get_str(&o, p, "keep_alive")?,
        },
        "voyageai" => Embedding::VoyageAi {
            model: req_str(&o, p, "model")?,
            dimensions: dims()?,
            input_type: get_str(&o, p, "input_type")?,
            api_key_name: get_str(&o, p, "api_key_name")?
                .unwrap_or_else(|| "VOYAGE_API_KEY".into()),
        },
        "sentence_transformers" => Embedding::SentenceTransformers {
            model: get_str(&o, p, "model")?
                .unwrap_or_else(|| "nomic-ai/nomic-embed-text-v1.5".into()),
            dimensions: get_int(&o, p, "dimensions")?.unwrap_or(768),
        },
        other => Embedding::Unsupported(other.to_string()),
    }))
}

pub fn batch_size(cfg: &Map<String, Value>) -> Result<i64> {
    Ok(match component(cfg, "processing")? {
        Some((_, o)) => get_int(&o, "processing", "batch_size")?.unwrap_or(50),
        None => 50,
    }
    .clamp(1, 2048))
}

impl Pipeline {
    /// A pipeline that runs nothing, for a vectorizer whose config failed
    /// to parse (its keys are never claimed).
    pub fn placeholder() -> Self {
        Pipeline {
            loading: None,
            parsing: Parsing::Unsupported(String::new()),
            chunking: Chunking::None,
            formatting: Formatting::ChunkValue,
            embedding: None,
            batch_size: 50,
        }
    }

    /// Reads a whole vectorizer config, or a partial one (`chunk` and
    /// `embed` accept just the components they need).
    pub fn from_json(cfg: &Value) -> Result<Self> {
        let cfg = cfg.as_object().ok_or("config: expected a JSON object")?;
        Ok(Pipeline {
            loading: loading(cfg)?,
            parsing: parsing(cfg)?,
            chunking: chunking(cfg)?,
            formatting: formatting(cfg)?,
            embedding: embedding(cfg)?,
            batch_size: batch_size(cfg)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_an_evaluated_config() {
        let p = Pipeline::from_json(&json!({
            "loading": {"implementation": "column", "column_name": "content", "retries": 3},
            "chunking": {"config_type": "chunking", "implementation": "character_text_splitter",
                         "chunk_size": 100, "chunk_overlap": 10, "separator": ".", "is_separator_regex": false},
            "formatting": {"implementation": "python_template", "template": "$title: $chunk"},
            "embedding": {"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384},
            "processing": {"implementation": "default", "batch_size": 10, "concurrency": 1},
            "parsing": "auto"
        }))
        .unwrap();
        assert_eq!(
            p.loading,
            Some(Loading::Column {
                column_name: "content".into(),
                retries: 3
            })
        );
        assert_eq!(
            p.chunking,
            Chunking::Character {
                chunk_size: 100,
                chunk_overlap: 10,
                separator: ".".into(),
                is_separator_regex: false
            }
        );
        assert_eq!(
            p.formatting,
            Formatting::PythonTemplate("$title: $chunk".into())
        );
        assert_eq!(
            p.embedding,
            Some(Embedding::SentenceTransformers {
                model: "all-MiniLM-L6-v2".into(),
                dimensions: 384
            })
        );
        assert_eq!(p.batch_size, 10);
        assert_eq!(p.parsing, Parsing::Auto);
    }

    #[test]
    fn unknown_embedders_and_parsers_are_kept_for_a_per_key_error() {
        let p = Pipeline::from_json(&json!({
            "embedding": {"implementation": "litellm", "model": "x", "dimensions": 3},
            "parsing": {"implementation": "pymupdf"},
            "chunking": "none"
        }))
        .unwrap();
        assert_eq!(p.embedding, Some(Embedding::Unsupported("litellm".into())));
        assert_eq!(p.parsing, Parsing::Unsupported("pymupdf".into()));
        assert_eq!(p.chunking, Chunking::None);
    }

    #[test]
    fn wrong_types_name_the_path() {
        let e = Pipeline::from_json(
            &json!({"chunking": {"implementation": "character_text_splitter", "chunk_size": "x"}}),
        )
        .unwrap_err();
        assert!(e.contains("chunking.chunk_size"), "{e}");
    }
}
