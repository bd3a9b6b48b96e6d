//! The typed model of a vectorizer's evaluated config: one enum per
//! component, tagged by `implementation`. The extension's parser
//! ([`super::components`]) builds these values from either spelling a user
//! may write; what is stored in the catalog and the revisions is their
//! serialisation ([`Evaluated`]); the worker reads the catalog's config back
//! into the same types. Defaults live in [`defaults`] and nowhere else.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::components as parse;
use crate::error::ConfigError;

/// The values filled in for what a config leaves out. The parser uses them
/// for user input; serde uses them for stored configs written before a
/// field existed.
pub mod defaults {
    pub const LOADING_RETRIES: i64 = 6;
    pub const SENTENCE_TRANSFORMERS_MODEL: &str = "nomic-ai/nomic-embed-text-v1.5";
    pub const SENTENCE_TRANSFORMERS_DIMENSIONS: i64 = 768;
    pub const OPENAI_API_KEY_NAME: &str = "OPENAI_API_KEY";
    pub const VOYAGE_API_KEY_NAME: &str = "VOYAGE_API_KEY";
    pub const VOYAGE_INPUT_TYPE: &str = "document";
    pub const CHUNK_SIZE: i64 = 800;
    /// The overlap is 400 unless the chunk is smaller: see [`chunk_overlap`].
    pub const CHUNK_OVERLAP: i64 = 400;
    pub const SEPARATOR: &str = "\n\n";
    pub const SEPARATORS: [&str; 7] = ["\n\n", "\n", ".", "?", "!", " ", ""];
    pub const TEMPLATE: &str = "$chunk";
    pub const INDEX_MIN_ROWS: i64 = 100_000;
    pub const HNSW_OPCLASS: &str = "vector_cosine_ops";
    pub const SCHEDULE_INTERVAL: &str = "00:05:00";
    /// Keys a worker claims per batch when `processing.batch_size` is unset.
    pub const BATCH_SIZE: i64 = 50;

    pub fn chunk_overlap(chunk_size: i64) -> i64 {
        CHUNK_OVERLAP.min(chunk_size - 1)
    }
}

/// One sub-object of a config: its key (pgai's `config_type`), the
/// implementations it accepts (in the order error messages list them), and
/// its reader. Reading is always [`super::components`]' parser, so a stored
/// config read back by the worker is checked exactly as `create` checked
/// it, with the same path-naming errors.
pub trait Component: Serialize + Sized {
    const CONFIG_TYPE: &'static str;
    const IMPLEMENTATIONS: &'static [&'static str];

    /// Parses the component from either spelling; absent is `None`.
    fn parse(value: Option<&Value>) -> Result<Self, ConfigError>;

    fn implementation(&self) -> &'static str {
        let Ok(Value::Object(m)) = serde_json::to_value(self) else {
            unreachable!("components serialise to objects")
        };
        let tag = m.get("implementation").and_then(Value::as_str);
        Self::IMPLEMENTATIONS
            .iter()
            .find(|i| Some(**i) == tag)
            .expect("serde tags are the implementations")
    }

    /// The stored JSON: `implementation`, `config_type`, then the fields.
    fn evaluated(&self) -> Value {
        let Ok(Value::Object(fields)) = serde_json::to_value(self) else {
            unreachable!("components serialise to objects")
        };
        let mut out = Map::new();
        let mut fields = fields.into_iter();
        if let Some((k, v)) = fields.next() {
            out.insert(k, v);
        }
        out.insert("config_type".into(), Value::from(Self::CONFIG_TYPE));
        out.extend(fields);
        Value::Object(out)
    }

    /// The component under its key in a (possibly partial) document, such
    /// as the worker's `chunk` and `embed` commands take.
    fn from_document(doc: &Value) -> Result<Self, ConfigError> {
        Self::parse(doc.get(Self::CONFIG_TYPE))
    }
}

/// `#[serde(with = "tagged")]`: a component field in its stored form.
mod tagged {
    use super::*;

    pub fn serialize<T: Component, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        v.evaluated().serialize(s)
    }

    pub fn deserialize<'de, T: Component, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        T::parse(v.as_ref()).map_err(D::Error::custom)
    }
}

macro_rules! component {
    ($t:ty, $config_type:literal, [$($imp:literal),+ $(,)?], $parse:expr) => {
        impl Component for $t {
            const CONFIG_TYPE: &'static str = $config_type;
            const IMPLEMENTATIONS: &'static [&'static str] = &[$($imp),+];
            fn parse(value: Option<&Value>) -> Result<Self, ConfigError> {
                $parse(value)
            }
        }
    };
}

/// Required components have no default: absent is the parser's error.
fn required<T>(
    key: &'static str,
    what: &'static str,
    parse: fn(&Value) -> Result<T, ConfigError>,
) -> impl Fn(Option<&Value>) -> Result<T, ConfigError> {
    move |v| match v {
        Some(v) => parse(v),
        None => Err(ConfigError::invalid(
            key,
            format!("required key is missing; expected {what}"),
        )),
    }
}

// Field order is the stored key order.

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Loading {
    Column {
        column_name: String,
        retries: i64,
    },
    Uri {
        column_name: String,
        retries: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        aws_role_arn: Option<String>,
    },
}
component!(
    Loading,
    "loading",
    ["column", "uri"],
    required(
        "loading",
        "an object with \"implementation\" and \"column_name\"",
        parse::loading
    )
);

impl Loading {
    pub fn column_name(&self) -> &str {
        match self {
            Loading::Column { column_name, .. } | Loading::Uri { column_name, .. } => column_name,
        }
    }
    pub fn retries(&self) -> i64 {
        match self {
            Loading::Column { retries, .. } | Loading::Uri { retries, .. } => *retries,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Parsing {
    #[default]
    Auto,
    None,
    Pymupdf,
    Docling,
}
component!(
    Parsing,
    "parsing",
    ["auto", "none", "pymupdf", "docling"],
    parse::parsing
);

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Embedding {
    Openai {
        model: String,
        dimensions: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        api_key_name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
    },
    Ollama {
        model: String,
        dimensions: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        options: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        keep_alive: Option<String>,
    },
    Voyageai {
        model: String,
        dimensions: i64,
        input_type: String,
        api_key_name: String,
    },
    Litellm {
        model: String,
        dimensions: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        api_key_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        extra_options: Option<Value>,
    },
    SentenceTransformers {
        model: String,
        dimensions: i64,
    },
}
component!(
    Embedding,
    "embedding",
    [
        "openai",
        "ollama",
        "voyageai",
        "litellm",
        "sentence_transformers"
    ],
    required(
        "embedding",
        "an object with \"implementation\", \"model\" and \"dimensions\"",
        parse::embedding
    )
);

impl Embedding {
    pub fn model(&self) -> &str {
        match self {
            Embedding::Openai { model, .. }
            | Embedding::Ollama { model, .. }
            | Embedding::Voyageai { model, .. }
            | Embedding::Litellm { model, .. }
            | Embedding::SentenceTransformers { model, .. } => model,
        }
    }
    pub fn dimensions(&self) -> i64 {
        match self {
            Embedding::Openai { dimensions, .. }
            | Embedding::Ollama { dimensions, .. }
            | Embedding::Voyageai { dimensions, .. }
            | Embedding::Litellm { dimensions, .. }
            | Embedding::SentenceTransformers { dimensions, .. } => *dimensions,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Chunking {
    CharacterTextSplitter {
        chunk_size: i64,
        chunk_overlap: i64,
        separator: String,
        is_separator_regex: bool,
    },
    RecursiveCharacterTextSplitter {
        chunk_size: i64,
        chunk_overlap: i64,
        separators: Vec<String>,
        is_separator_regex: bool,
    },
    None,
}
component!(
    Chunking,
    "chunking",
    [
        "character_text_splitter",
        "recursive_character_text_splitter",
        "none"
    ],
    parse::chunking
);

impl Default for Chunking {
    /// What a config without `chunking` gets.
    fn default() -> Self {
        parse::chunking(None).expect("the default chunking parses")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Formatting {
    PythonTemplate { template: String },
    ChunkValue,
}
component!(
    Formatting,
    "formatting",
    ["python_template", "chunk_value"],
    parse::formatting_unchecked
);

impl Default for Formatting {
    fn default() -> Self {
        parse::formatting(None).expect("the default formatting parses")
    }
}

impl Formatting {
    pub fn template(&self) -> Option<&str> {
        match self {
            Formatting::PythonTemplate { template } => Some(template),
            Formatting::ChunkValue => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Indexing {
    None,
    #[default]
    Default,
    Hnsw {
        min_rows: i64,
        opclass: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        m: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ef_construction: Option<i64>,
        create_when_queue_empty: bool,
    },
    Diskann {
        min_rows: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        storage_layout: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        num_neighbors: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        search_list_size: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_alpha: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        num_dimensions: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        num_bits_per_dimension: Option<i64>,
        create_when_queue_empty: bool,
    },
}
component!(
    Indexing,
    "indexing",
    ["none", "default", "hnsw", "diskann"],
    parse::indexing
);

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Scheduling {
    None,
    #[default]
    Default,
    Timescaledb {
        /// As written; PostgreSQL's interval parser checks it.
        schedule_interval: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        initial_start: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fixed_schedule: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
}
component!(
    Scheduling,
    "scheduling",
    ["none", "default", "timescaledb"],
    parse::scheduling
);

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum Processing {
    Default {
        #[serde(skip_serializing_if = "Option::is_none")]
        batch_size: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        concurrency: Option<i64>,
    },
}
component!(Processing, "processing", ["default"], parse::processing);

impl Default for Processing {
    fn default() -> Self {
        parse::processing(None).expect("the default processing parses")
    }
}

impl Processing {
    /// Keys a worker claims per batch.
    pub fn batch_size(&self) -> i64 {
        let Processing::Default { batch_size, .. } = self;
        batch_size.unwrap_or(defaults::BATCH_SIZE)
    }

    /// How many of a worker process's threads may work on the vectorizer
    /// at once; `None`: as many as `--concurrency` runs.
    pub fn concurrency(&self) -> Option<i64> {
        let Processing::Default { concurrency, .. } = self;
        *concurrency
    }
}

/// Where the embeddings go, with every name resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "implementation", rename_all = "snake_case")]
pub enum StoredDestination {
    Table {
        target_schema: String,
        target_table: String,
        view_schema: String,
        view_name: String,
    },
    Column {
        embedding_column: String,
    },
}
component!(
    StoredDestination,
    "destination",
    ["table", "column"],
    parse::stored_destination
);

/// A whole evaluated config: what `migrate.vectorizer.config` and each
/// revision hold, and what the worker reads. Components a stored config
/// lacks (written before they existed) read as their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluated {
    pub name: String,
    pub source: String,
    #[serde(with = "tagged")]
    pub destination: StoredDestination,
    #[serde(with = "tagged")]
    pub loading: Loading,
    #[serde(with = "tagged", default)]
    pub parsing: Parsing,
    #[serde(with = "tagged")]
    pub embedding: Embedding,
    #[serde(with = "tagged", default)]
    pub chunking: Chunking,
    #[serde(with = "tagged", default)]
    pub formatting: Formatting,
    #[serde(with = "tagged", default)]
    pub indexing: Indexing,
    #[serde(with = "tagged", default)]
    pub scheduling: Scheduling,
    #[serde(with = "tagged", default)]
    pub processing: Processing,
    pub queue_schema: String,
    pub queue_table: String,
    #[serde(default)]
    pub grant_to: Vec<String>,
}

impl Evaluated {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("an evaluated config serialises")
    }

    /// Reads a stored config; the error names the JSON path.
    pub fn from_value(v: &Value) -> Result<Evaluated, String> {
        Evaluated::deserialize(v).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Value {
        json!({
            "name": "v", "source": "public.t",
            "destination": {"implementation": "table", "config_type": "destination",
                            "target_schema": "public", "target_table": "t_store",
                            "view_schema": "public", "view_name": "t_view"},
            "loading": {"implementation": "column", "config_type": "loading", "column_name": "c", "retries": 6},
            "embedding": {"implementation": "ollama", "config_type": "embedding", "model": "m", "dimensions": 8},
            "queue_schema": "migrate", "queue_table": "_vectorizer_q_1",
        })
    }

    #[test]
    fn a_stored_config_without_later_components_reads_their_defaults() {
        let e = Evaluated::from_value(&stored()).unwrap();
        assert_eq!(e.chunking, Chunking::default());
        assert_eq!(e.formatting.template(), Some("$chunk"));
        assert_eq!(e.processing.batch_size(), defaults::BATCH_SIZE);
        assert!(e.grant_to.is_empty());
        // Written back, every component is explicit, in pgai's shape.
        let v = e.to_value();
        assert_eq!(v["chunking"]["config_type"], "chunking");
        assert_eq!(v["chunking"]["chunk_overlap"], 400);
        assert_eq!(Evaluated::from_value(&v).unwrap(), e);
    }

    #[test]
    fn reading_back_checks_like_create_and_names_the_path() {
        let mut v = stored();
        v["chunking"] = json!({"implementation": "character_text_splitter", "chunk_size": "big"});
        let e = Evaluated::from_value(&v).unwrap_err();
        assert!(
            e.starts_with("chunking.chunk_size: expected a positive integer"),
            "{e}"
        );
        v["chunking"] = json!({"implementation": "chunking", "config_type": "embedding"});
        assert!(Evaluated::from_value(&v)
            .unwrap_err()
            .starts_with("chunking.config_type: expected \"chunking\""));
    }

    #[test]
    fn the_tag_and_config_type_lead_the_stored_object() {
        let e = Embedding::Voyageai {
            model: "m".into(),
            dimensions: 4,
            input_type: "query".into(),
            api_key_name: "K".into(),
        };
        assert_eq!(
            e.evaluated().to_string(),
            r#"{"implementation":"voyageai","config_type":"embedding","model":"m","dimensions":4,"input_type":"query","api_key_name":"K"}"#
        );
        assert_eq!(e.implementation(), "voyageai");
        assert_eq!(Embedding::parse(Some(&e.evaluated())).unwrap(), e);
    }
}
