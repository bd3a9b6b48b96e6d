//! The sub-objects of a vectorizer config (`embedding`, `chunking`, …), each
//! parsed from either spelling, validated, and returned in the one evaluated
//! form that gets stored: pgai's shape, with `config_type`, defaults filled
//! in and absent optional values left out.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::error::{ConfigError, Result};
use crate::json::{describe, Obj};

/// pgvector's limit for the `vector` type.
pub const MAX_DIMENSIONS: i64 = 16000;
/// pgvector's limit for an HNSW index on `vector`.
pub const MAX_HNSW_DIMENSIONS: i64 = 2000;
const I32: i64 = i32::MAX as i64;

fn empty() -> &'static Value {
    static EMPTY: OnceLock<Value> = OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

/// Opens a sub-object and returns it with its implementation. Accepts the
/// short spelling `{"implementation": …}`, pgai's spelling with
/// `"config_type"`, and a bare string naming the implementation.
pub fn open<'a>(
    value: &'a Value,
    path: &str,
    config_type: &str,
    allowed: &[&str],
) -> Result<(Obj<'a>, String)> {
    let (mut obj, implementation) = match value {
        Value::String(s) => (Obj::new(empty(), path)?, s.clone()),
        Value::Object(_) => {
            let mut obj = Obj::new(value, path)?;
            if let Some(ct) = obj.string("config_type")? {
                if ct != config_type {
                    return Err(ConfigError::invalid(
                        obj.at("config_type"),
                        format!("expected \"{config_type}\", got \"{ct}\""),
                    )
                    .with_hint(format!(
                        "this object belongs under \"{ct}\", not \"{path}\""
                    )));
                }
            }
            let imp = obj.string("implementation")?.ok_or_else(|| {
                ConfigError::invalid(
                    obj.at("implementation"),
                    format!(
                        "required key is missing; expected one of {}",
                        allowed.join(", ")
                    ),
                )
            })?;
            (obj, imp)
        }
        other => {
            return Err(ConfigError::invalid(
                path,
                format!(
                    "expected a JSON object with \"implementation\", got {}",
                    describe(other)
                ),
            ))
        }
    };
    if !allowed.contains(&implementation.as_str()) {
        let p = if value.is_string() {
            path.to_string()
        } else {
            obj.at("implementation")
        };
        return Err(ConfigError::invalid(
            p,
            format!(
                "unknown implementation \"{implementation}\"; expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    // Mark both as read so `finish` does not call them unknown.
    obj.get("config_type");
    obj.get("implementation");
    Ok((obj, implementation))
}

/// Start of an evaluated sub-object.
pub fn head(config_type: &str, implementation: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("implementation".into(), json!(implementation));
    m.insert("config_type".into(), json!(config_type));
    m
}

fn put<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.into(), v.into());
    }
}

// ---------------------------------------------------------------- loading

#[derive(Debug, Clone, PartialEq)]
pub struct Loading {
    pub implementation: String,
    pub column_name: String,
    pub json: Value,
}

pub fn loading(v: &Value) -> Result<Loading> {
    let (mut o, imp) = open(v, "loading", "loading", &["column", "uri"])?;
    let column_name = o.required_identifier("column_name")?;
    let retries = o.int("retries", 0, I32)?.unwrap_or(6);
    let mut m = head("loading", &imp);
    m.insert("column_name".into(), json!(column_name));
    m.insert("retries".into(), json!(retries));
    if imp == "uri" {
        put(&mut m, "aws_role_arn", o.string("aws_role_arn")?);
    }
    o.finish()?;
    Ok(Loading {
        implementation: imp,
        column_name,
        json: Value::Object(m),
    })
}

// ---------------------------------------------------------------- parsing

pub fn parsing(v: Option<&Value>) -> Result<(String, Value)> {
    let Some(v) = v else {
        return Ok(("auto".into(), Value::Object(head("parsing", "auto"))));
    };
    let (o, imp) = open(
        v,
        "parsing",
        "parsing",
        &["auto", "none", "pymupdf", "docling"],
    )?;
    o.finish()?;
    Ok((imp.clone(), Value::Object(head("parsing", &imp))))
}

// -------------------------------------------------------------- embedding

#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub dimensions: i64,
    pub json: Value,
}

pub fn embedding(v: &Value) -> Result<Embedding> {
    let (mut o, imp) = open(
        v,
        "embedding",
        "embedding",
        &[
            "openai",
            "ollama",
            "voyageai",
            "litellm",
            "sentence_transformers",
        ],
    )?;
    let mut m = head("embedding", &imp);
    let (model, dimensions) = if imp == "sentence_transformers" {
        (
            o.string("model")?
                .unwrap_or_else(|| "nomic-ai/nomic-embed-text-v1.5".into()),
            o.int("dimensions", 1, MAX_DIMENSIONS)?.unwrap_or(768),
        )
    } else {
        let model = o.required_string("model")?;
        let dims = o.int("dimensions", 1, MAX_DIMENSIONS)?.ok_or_else(|| {
            ConfigError::invalid(
                o.at("dimensions"),
                format!(
                    "required key is missing; expected an integer between 1 and {MAX_DIMENSIONS}"
                ),
            )
            .with_hint("the store table's embedding column is vector(dimensions)")
        })?;
        (model, dims)
    };
    if model.trim().is_empty() {
        return Err(ConfigError::invalid(
            o.at("model"),
            "expected a non-empty string, got \"\"",
        ));
    }
    m.insert("model".into(), json!(model));
    m.insert("dimensions".into(), json!(dimensions));
    match imp.as_str() {
        "openai" => {
            put(&mut m, "user", o.string("user")?);
            m.insert(
                "api_key_name".into(),
                json!(o
                    .string("api_key_name")?
                    .unwrap_or_else(|| "OPENAI_API_KEY".into())),
            );
            put(&mut m, "base_url", o.string("base_url")?);
        }
        "ollama" => {
            put(&mut m, "base_url", o.string("base_url")?);
            put(&mut m, "options", o.object("options")?);
            put(&mut m, "keep_alive", o.string("keep_alive")?);
        }
        "voyageai" => {
            m.insert(
                "input_type".into(),
                json!(o
                    .choice("input_type", &["document", "query"])?
                    .unwrap_or_else(|| "document".into())),
            );
            m.insert(
                "api_key_name".into(),
                json!(o
                    .string("api_key_name")?
                    .unwrap_or_else(|| "VOYAGE_API_KEY".into())),
            );
        }
        "litellm" => {
            put(&mut m, "api_key_name", o.string("api_key_name")?);
            put(&mut m, "extra_options", o.object("extra_options")?);
        }
        _ => {}
    }
    o.finish()?;
    Ok(Embedding {
        dimensions,
        json: Value::Object(m),
    })
}

// --------------------------------------------------------------- chunking

#[derive(Debug, Clone, PartialEq)]
pub struct Chunking {
    pub implementation: String,
    pub json: Value,
}

pub fn chunking(v: Option<&Value>) -> Result<Chunking> {
    let default = json!("recursive_character_text_splitter");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open(
        v,
        "chunking",
        "chunking",
        &[
            "character_text_splitter",
            "recursive_character_text_splitter",
            "none",
        ],
    )?;
    let mut m = head("chunking", &imp);
    if imp != "none" {
        let size = o.int("chunk_size", 1, I32)?.unwrap_or(800);
        let overlap = o.int("chunk_overlap", 0, I32)?.unwrap_or(400.min(size - 1));
        if overlap >= size {
            return Err(ConfigError::invalid(
                o.at("chunk_overlap"),
                format!("expected an integer smaller than chunk_size ({size}), got {overlap}"),
            ));
        }
        m.insert("chunk_size".into(), json!(size));
        m.insert("chunk_overlap".into(), json!(overlap));
        if imp == "character_text_splitter" {
            m.insert(
                "separator".into(),
                json!(o.string("separator")?.unwrap_or_else(|| "\n\n".into())),
            );
        } else {
            let seps = o.string_array("separators")?.unwrap_or_else(|| {
                ["\n\n", "\n", ".", "?", "!", " ", ""]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            });
            if seps.is_empty() {
                return Err(ConfigError::invalid(
                    o.at("separators"),
                    "expected at least one separator, got an empty array",
                ));
            }
            m.insert("separators".into(), json!(seps));
        }
        m.insert(
            "is_separator_regex".into(),
            json!(o.boolean("is_separator_regex")?.unwrap_or(false)),
        );
    }
    o.finish()?;
    Ok(Chunking {
        implementation: imp,
        json: Value::Object(m),
    })
}

// ------------------------------------------------------------- formatting

#[derive(Debug, Clone, PartialEq)]
pub struct Formatting {
    /// The python template, when there is one.
    pub template: Option<String>,
    pub json: Value,
}

pub fn formatting(v: Option<&Value>) -> Result<Formatting> {
    let default = json!("python_template");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open(
        v,
        "formatting",
        "formatting",
        &["python_template", "chunk_value"],
    )?;
    let mut m = head("formatting", &imp);
    let mut template = None;
    if imp == "python_template" {
        let t = o.string("template")?.unwrap_or_else(|| "$chunk".into());
        let refs = crate::template::references(&t)
            .map_err(|e| ConfigError::invalid(o.at("template"), e))?;
        if !refs.iter().any(|r| r == "chunk") {
            return Err(ConfigError::invalid(
                o.at("template"),
                format!("template must contain $chunk, got {}", describe(&json!(t))),
            )
            .with_hint("$chunk is replaced by the text of each chunk, e.g. \"$title - $chunk\""));
        }
        m.insert("template".into(), json!(t));
        template = Some(t);
    }
    o.finish()?;
    Ok(Formatting {
        template,
        json: Value::Object(m),
    })
}

// --------------------------------------------------------------- indexing

#[derive(Debug, Clone, PartialEq)]
pub struct Indexing {
    pub implementation: String,
    pub json: Value,
}

pub fn indexing(v: Option<&Value>) -> Result<Indexing> {
    let default = json!("default");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open(
        v,
        "indexing",
        "indexing",
        &["none", "default", "hnsw", "diskann"],
    )?;
    let mut m = head("indexing", &imp);
    match imp.as_str() {
        "hnsw" => {
            m.insert(
                "min_rows".into(),
                json!(o.int("min_rows", 0, I32)?.unwrap_or(100_000)),
            );
            m.insert(
                "opclass".into(),
                json!(o
                    .choice(
                        "opclass",
                        &[
                            "vector_cosine_ops",
                            "vector_ip_ops",
                            "vector_l1_ops",
                            "vector_l2_ops"
                        ],
                    )?
                    .unwrap_or_else(|| "vector_cosine_ops".into())),
            );
            let mm = o.int("m", 2, 100)?;
            let ef = o.int("ef_construction", 4, 1000)?;
            if let (Some(mm), Some(ef)) = (mm, ef) {
                if ef < 2 * mm {
                    return Err(ConfigError::invalid(
                        o.at("ef_construction"),
                        format!("expected at least 2 * m ({}), got {ef}", 2 * mm),
                    ));
                }
            }
            put(&mut m, "m", mm);
            put(&mut m, "ef_construction", ef);
            m.insert(
                "create_when_queue_empty".into(),
                json!(o.boolean("create_when_queue_empty")?.unwrap_or(true)),
            );
        }
        "diskann" => {
            m.insert(
                "min_rows".into(),
                json!(o.int("min_rows", 0, I32)?.unwrap_or(100_000)),
            );
            put(
                &mut m,
                "storage_layout",
                o.choice("storage_layout", &["memory_optimized", "plain"])?,
            );
            put(&mut m, "num_neighbors", o.int("num_neighbors", 10, 1000)?);
            put(
                &mut m,
                "search_list_size",
                o.int("search_list_size", 10, 1000)?,
            );
            put(&mut m, "max_alpha", o.number("max_alpha", 0.0)?);
            put(
                &mut m,
                "num_dimensions",
                o.int("num_dimensions", 0, MAX_DIMENSIONS)?,
            );
            put(
                &mut m,
                "num_bits_per_dimension",
                o.int("num_bits_per_dimension", 1, 8)?,
            );
            m.insert(
                "create_when_queue_empty".into(),
                json!(o.boolean("create_when_queue_empty")?.unwrap_or(true)),
            );
        }
        _ => {}
    }
    o.finish()?;
    Ok(Indexing {
        implementation: imp,
        json: Value::Object(m),
    })
}

// ------------------------------------------------------------- scheduling

#[derive(Debug, Clone, PartialEq)]
pub struct Scheduling {
    pub implementation: String,
    /// `schedule_interval` as written, to be checked by PostgreSQL's own
    /// interval parser.
    pub interval: Option<String>,
    pub json: Value,
}

pub fn scheduling(v: Option<&Value>) -> Result<Scheduling> {
    let default = json!("default");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open(
        v,
        "scheduling",
        "scheduling",
        &["none", "default", "timescaledb"],
    )?;
    let mut m = head("scheduling", &imp);
    let mut interval = None;
    if imp == "timescaledb" {
        let i = o
            .string("schedule_interval")?
            .unwrap_or_else(|| "00:05:00".into());
        m.insert("schedule_interval".into(), json!(i));
        interval = Some(i);
        put(&mut m, "initial_start", o.string("initial_start")?);
        put(&mut m, "fixed_schedule", o.boolean("fixed_schedule")?);
        put(&mut m, "timezone", o.string("timezone")?);
    }
    o.finish()?;
    Ok(Scheduling {
        implementation: imp,
        interval,
        json: Value::Object(m),
    })
}

// ------------------------------------------------------------- processing

pub fn processing(v: Option<&Value>) -> Result<Value> {
    let default = json!("default");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open(v, "processing", "processing", &["default"])?;
    let mut m = head("processing", &imp);
    put(&mut m, "batch_size", o.int("batch_size", 1, 2048)?);
    put(&mut m, "concurrency", o.int("concurrency", 1, 50)?);
    o.finish()?;
    Ok(Value::Object(m))
}

// ------------------------------------------------------------ destination

#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Table {
        destination: Option<String>,
        target_schema: Option<String>,
        target_table: Option<String>,
        view_schema: Option<String>,
        view_name: Option<String>,
    },
    Column {
        embedding_column: String,
    },
}

pub fn destination(v: Option<&Value>) -> Result<Destination> {
    let default = json!("table");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open(v, "destination", "destination", &["table", "column"])?;
    let d = if imp == "table" {
        let destination = o.identifier("destination")?;
        let target_schema = o.identifier("target_schema")?;
        let target_table = o.identifier("target_table")?;
        let view_schema = o.identifier("view_schema")?;
        let view_name = o.identifier("view_name")?;
        if destination.is_some() {
            for (key, given) in [("target_table", &target_table), ("view_name", &view_name)] {
                if given.is_some() {
                    return Err(ConfigError::invalid(
                        o.at(key),
                        "cannot be combined with destination",
                    )
                    .with_hint("destination \"x\" means target_table \"x_store\" and view_name \"x\"; give either destination or target_table/view_name"));
                }
            }
        }
        Destination::Table {
            destination,
            target_schema,
            target_table,
            view_schema,
            view_name,
        }
    } else {
        Destination::Column {
            embedding_column: o.required_identifier("embedding_column")?,
        }
    };
    o.finish()?;
    Ok(d)
}
