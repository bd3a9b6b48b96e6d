//! The parser for the sub-objects of a vectorizer config (`embedding`,
//! `chunking`, …): each is read from either spelling a user may write,
//! validated with an error naming its JSON path, and returned as the typed
//! value of [`super::model`] with its defaults filled in.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::model::{
    defaults, Chunking, Component, Embedding, Formatting, Indexing, Loading, Parsing, Processing,
    Scheduling, StoredDestination,
};
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
pub fn open<'a, T: Component>(value: &'a Value, path: &str) -> Result<(Obj<'a>, String)> {
    let config_type = T::CONFIG_TYPE;
    let allowed = T::IMPLEMENTATIONS;
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

// ---------------------------------------------------------------- loading

pub fn loading(v: &Value) -> Result<Loading> {
    let (mut o, imp) = open::<Loading>(v, "loading")?;
    let column_name = o.required_identifier("column_name")?;
    let retries = o
        .int("retries", 0, I32)?
        .unwrap_or(defaults::LOADING_RETRIES);
    let l = if imp == "uri" {
        Loading::Uri {
            column_name,
            retries,
            aws_role_arn: o.string("aws_role_arn")?,
        }
    } else {
        Loading::Column {
            column_name,
            retries,
        }
    };
    o.finish()?;
    Ok(l)
}

// ---------------------------------------------------------------- parsing

pub fn parsing(v: Option<&Value>) -> Result<Parsing> {
    let Some(v) = v else {
        return Ok(Parsing::default());
    };
    let (o, imp) = open::<Parsing>(v, "parsing")?;
    o.finish()?;
    Ok(match imp.as_str() {
        "none" => Parsing::None,
        "pymupdf" => Parsing::Pymupdf,
        "docling" => Parsing::Docling,
        _ => Parsing::Auto,
    })
}

// -------------------------------------------------------------- embedding

pub fn embedding(v: &Value) -> Result<Embedding> {
    let (mut o, imp) = open::<Embedding>(v, "embedding")?;
    let (model, dimensions) = if imp == "sentence_transformers" {
        (
            o.string("model")?
                .unwrap_or_else(|| defaults::SENTENCE_TRANSFORMERS_MODEL.into()),
            o.int("dimensions", 1, MAX_DIMENSIONS)?
                .unwrap_or(defaults::SENTENCE_TRANSFORMERS_DIMENSIONS),
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
    let e = match imp.as_str() {
        "openai" => Embedding::Openai {
            model,
            dimensions,
            user: o.string("user")?,
            api_key_name: o
                .string("api_key_name")?
                .unwrap_or_else(|| defaults::OPENAI_API_KEY_NAME.into()),
            base_url: o.string("base_url")?,
        },
        "ollama" => Embedding::Ollama {
            model,
            dimensions,
            base_url: o.string("base_url")?,
            options: o.object("options")?,
            keep_alive: o.string("keep_alive")?,
        },
        "voyageai" => Embedding::Voyageai {
            model,
            dimensions,
            input_type: o
                .choice("input_type", &["document", "query"])?
                .unwrap_or_else(|| defaults::VOYAGE_INPUT_TYPE.into()),
            api_key_name: o
                .string("api_key_name")?
                .unwrap_or_else(|| defaults::VOYAGE_API_KEY_NAME.into()),
        },
        "litellm" => Embedding::Litellm {
            model,
            dimensions,
            api_key_name: o.string("api_key_name")?,
            extra_options: o.object("extra_options")?,
        },
        _ => Embedding::SentenceTransformers { model, dimensions },
    };
    o.finish()?;
    Ok(e)
}

// --------------------------------------------------------------- chunking

pub fn chunking(v: Option<&Value>) -> Result<Chunking> {
    let default = json!("recursive_character_text_splitter");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open::<Chunking>(v, "chunking")?;
    let c = if imp == "none" {
        Chunking::None
    } else {
        let size = o.int("chunk_size", 1, I32)?.unwrap_or(defaults::CHUNK_SIZE);
        let overlap = o
            .int("chunk_overlap", 0, I32)?
            .unwrap_or(defaults::chunk_overlap(size));
        if overlap >= size {
            return Err(ConfigError::invalid(
                o.at("chunk_overlap"),
                format!("expected an integer smaller than chunk_size ({size}), got {overlap}"),
            ));
        }
        if imp == "character_text_splitter" {
            let separator = o
                .string("separator")?
                .unwrap_or_else(|| defaults::SEPARATOR.into());
            Chunking::CharacterTextSplitter {
                chunk_size: size,
                chunk_overlap: overlap,
                separator,
                is_separator_regex: o.boolean("is_separator_regex")?.unwrap_or(false),
            }
        } else {
            let separators = o
                .string_array("separators")?
                .unwrap_or_else(|| defaults::SEPARATORS.iter().map(|s| s.to_string()).collect());
            if separators.is_empty() {
                return Err(ConfigError::invalid(
                    o.at("separators"),
                    "expected at least one separator, got an empty array",
                ));
            }
            Chunking::RecursiveCharacterTextSplitter {
                chunk_size: size,
                chunk_overlap: overlap,
                separators,
                is_separator_regex: o.boolean("is_separator_regex")?.unwrap_or(false),
            }
        }
    };
    o.finish()?;
    Ok(c)
}

// ------------------------------------------------------------- formatting

pub fn formatting(v: Option<&Value>) -> Result<Formatting> {
    formatting_checked(v, true)
}

/// Formatting without the template rules, for the worker: a template is
/// checked when a vectorizer is created, and the worker's `chunk` command
/// reports a bad one as Python's `string.Template` does, when rendering.
pub fn formatting_unchecked(v: Option<&Value>) -> Result<Formatting> {
    formatting_checked(v, false)
}

fn formatting_checked(v: Option<&Value>, check: bool) -> Result<Formatting> {
    let default = json!("python_template");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open::<Formatting>(v, "formatting")?;
    let f = if imp == "python_template" {
        let t = o
            .string("template")?
            .unwrap_or_else(|| defaults::TEMPLATE.into());
        if !check {
            o.finish()?;
            return Ok(Formatting::PythonTemplate { template: t });
        }
        let refs = crate::template::references(&t)
            .map_err(|e| ConfigError::invalid(o.at("template"), e))?;
        if !refs.iter().any(|r| r == "chunk") {
            return Err(ConfigError::invalid(
                o.at("template"),
                format!("template must contain $chunk, got {}", describe(&json!(t))),
            )
            .with_hint("$chunk is replaced by the text of each chunk, e.g. \"$title - $chunk\""));
        }
        Formatting::PythonTemplate { template: t }
    } else {
        Formatting::ChunkValue
    };
    o.finish()?;
    Ok(f)
}

// --------------------------------------------------------------- indexing

pub fn indexing(v: Option<&Value>) -> Result<Indexing> {
    let default = json!("default");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open::<Indexing>(v, "indexing")?;
    let i = match imp.as_str() {
        "hnsw" => {
            let min_rows = o
                .int("min_rows", 0, I32)?
                .unwrap_or(defaults::INDEX_MIN_ROWS);
            let opclass = o
                .choice(
                    "opclass",
                    &[
                        "vector_cosine_ops",
                        "vector_ip_ops",
                        "vector_l1_ops",
                        "vector_l2_ops",
                    ],
                )?
                .unwrap_or_else(|| defaults::HNSW_OPCLASS.into());
            let m = o.int("m", 2, 100)?;
            let ef_construction = o.int("ef_construction", 4, 1000)?;
            if let (Some(mm), Some(ef)) = (m, ef_construction) {
                if ef < 2 * mm {
                    return Err(ConfigError::invalid(
                        o.at("ef_construction"),
                        format!("expected at least 2 * m ({}), got {ef}", 2 * mm),
                    ));
                }
            }
            Indexing::Hnsw {
                min_rows,
                opclass,
                m,
                ef_construction,
                create_when_queue_empty: o.boolean("create_when_queue_empty")?.unwrap_or(true),
            }
        }
        "diskann" => Indexing::Diskann {
            min_rows: o
                .int("min_rows", 0, I32)?
                .unwrap_or(defaults::INDEX_MIN_ROWS),
            storage_layout: o.choice("storage_layout", &["memory_optimized", "plain"])?,
            num_neighbors: o.int("num_neighbors", 10, 1000)?,
            search_list_size: o.int("search_list_size", 10, 1000)?,
            max_alpha: o.number("max_alpha", 0.0)?,
            num_dimensions: o.int("num_dimensions", 0, MAX_DIMENSIONS)?,
            num_bits_per_dimension: o.int("num_bits_per_dimension", 1, 8)?,
            create_when_queue_empty: o.boolean("create_when_queue_empty")?.unwrap_or(true),
        },
        "none" => Indexing::None,
        _ => Indexing::Default,
    };
    o.finish()?;
    Ok(i)
}

// ------------------------------------------------------------- scheduling

pub fn scheduling(v: Option<&Value>) -> Result<Scheduling> {
    let default = json!("default");
    let v = v.unwrap_or(&default);
    let (mut o, imp) = open::<Scheduling>(v, "scheduling")?;
    let s = match imp.as_str() {
        "timescaledb" => Scheduling::Timescaledb {
            schedule_interval: o
                .string("schedule_interval")?
                .unwrap_or_else(|| defaults::SCHEDULE_INTERVAL.into()),
            initial_start: o.string("initial_start")?,
            fixed_schedule: o.boolean("fixed_schedule")?,
            timezone: o.string("timezone")?,
        },
        "none" => Scheduling::None,
        _ => Scheduling::Default,
    };
    o.finish()?;
    Ok(s)
}

// ------------------------------------------------------------- processing

pub fn processing(v: Option<&Value>) -> Result<Processing> {
    let default = json!("default");
    let v = v.unwrap_or(&default);
    let (mut o, _) = open::<Processing>(v, "processing")?;
    let p = Processing::Default {
        batch_size: o.int("batch_size", 1, 2048)?,
        concurrency: o.int("concurrency", 1, 50)?,
    };
    o.finish()?;
    Ok(p)
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
    let (mut o, imp) = open::<StoredDestination>(v, "destination")?;
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

/// A stored destination: the parser's, with every name resolved.
pub fn stored_destination(v: Option<&Value>) -> Result<StoredDestination> {
    match destination(v)? {
        Destination::Column { embedding_column } => {
            Ok(StoredDestination::Column { embedding_column })
        }
        Destination::Table {
            target_schema: Some(target_schema),
            target_table: Some(target_table),
            view_schema: Some(view_schema),
            view_name: Some(view_name),
            destination: None,
        } => Ok(StoredDestination::Table {
            target_schema,
            target_table,
            view_schema,
            view_name,
        }),
        Destination::Table { .. } => Err(ConfigError::invalid(
            "destination",
            "a stored destination names target_schema, target_table, view_schema and view_name",
        )),
    }
}
