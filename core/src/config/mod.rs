//! Parsing and validation of the whole `create_vectorizer` config. Only what
//! can be checked without looking at the database happens here; checks
//! against the source table happen in [`crate::plan`].

pub mod components;
pub mod describe;
pub mod model;

use serde_json::Value;

pub use components::Destination;
pub use model::{
    Chunking, Component, Embedding, Evaluated, Formatting, Indexing, Loading, Parsing, Processing,
    Scheduling, StoredDestination,
};

use crate::error::{ConfigError, Result};
use crate::json::{check_identifier, describe, Obj};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The source table as written, resolved like `regclass` by the caller.
    pub source: String,
    pub name: Option<String>,
    pub destination: Destination,
    pub loading: Loading,
    pub parsing: Parsing,
    pub embedding: Embedding,
    pub chunking: Chunking,
    pub formatting: Formatting,
    pub indexing: Indexing,
    pub scheduling: Scheduling,
    pub processing: Processing,
    pub queue_schema: Option<String>,
    pub queue_table: Option<String>,
    pub grant_to: Vec<String>,
    pub enqueue_existing: bool,
    pub if_not_exists: bool,
}

/// How deep a config may nest; deeper documents are refused before parsing
/// recurses (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

/// The JSON value of a jsonb argument's text; a document nested more than
/// [`MAX_DEPTH`] levels is a config error, whichever function it was given
/// to. `subject` starts the message: "the config is", "the changes are".
pub fn read_document(text: &str, subject: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        let why = if e.to_string().starts_with("recursion limit exceeded") {
            format!("{subject} nested more than {MAX_DEPTH} levels deep")
        } else {
            format!("{subject} not readable JSON: {e}")
        };
        ConfigError::invalid("", why)
    })
}

impl Config {
    /// Parse the text of a jsonb value.
    pub fn parse_text(text: &str) -> Result<Config> {
        Config::parse(&read_document(text, "the config is")?)
    }

    pub fn parse(value: &Value) -> Result<Config> {
        if !value.is_object() {
            return Err(ConfigError::invalid(
                "",
                format!(
                    "the vectorizer config must be a JSON object, got {}",
                    describe(value)
                ),
            ));
        }
        let mut o = Obj::new(value, "")?;
        let source = o.required_string("source")?;
        let name = match o.string("name")? {
            Some(n) if n.trim().is_empty() => {
                return Err(ConfigError::invalid(
                    "name",
                    "expected a non-empty string, got \"\"",
                ))
            }
            n => n,
        };
        let destination = components::destination(o.get("destination"))?;
        let loading = components::loading(o.get("loading").ok_or_else(|| {
            missing(
                "loading",
                "an object such as {\"implementation\": \"column\", \"column_name\": \"content\"}",
            )
        })?)?;
        let parsing = components::parsing(o.get("parsing"))?;
        let embedding = components::embedding(
            o.get("embedding")
                .ok_or_else(|| missing("embedding", "an object such as {\"implementation\": \"openai\", \"model\": \"text-embedding-3-small\", \"dimensions\": 768}"))?,
        )?;
        let chunking = components::chunking(o.get("chunking"))?;
        let formatting = components::formatting(o.get("formatting"))?;
        let indexing = components::indexing(o.get("indexing"))?;
        let scheduling = components::scheduling(o.get("scheduling"))?;
        let processing = components::processing(o.get("processing"))?;
        let queue_schema = o.identifier("queue_schema")?;
        let queue_table = o.identifier("queue_table")?;
        let grant_to = match o.get("grant_to") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => check_identifier(&format!("grant_to[{i}]"), s),
                    other => Err(ConfigError::invalid(
                        format!("grant_to[{i}]"),
                        format!("expected a role name, got {}", describe(other)),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "grant_to",
                    format!("expected an array of role names, got {}", describe(other)),
                ))
            }
        };
        let enqueue_existing = o.boolean("enqueue_existing")?.unwrap_or(true);
        let if_not_exists = o.boolean("if_not_exists")?.unwrap_or(false);
        o.finish()?;

        if let Destination::Column { .. } = destination {
            if chunking != Chunking::None {
                return Err(ConfigError::invalid(
                    "chunking",
                    format!(
                        "a column destination needs chunking \"none\", got \"{}\"",
                        chunking.implementation()
                    ),
                )
                .with_hint("a column holds one embedding per row, so the text cannot be split"));
            }
        }
        if matches!(loading, Loading::Uri { .. }) && parsing == Parsing::None {
            return Err(ConfigError::invalid(
                "parsing",
                "parsing \"none\" cannot be used with uri loading",
            )
            .with_hint("documents loaded from a URI are binary; use parsing \"auto\""));
        }
        if matches!(indexing, Indexing::Hnsw { .. })
            && embedding.dimensions() > components::MAX_HNSW_DIMENSIONS
        {
            return Err(ConfigError::invalid(
                "indexing",
                format!(
                    "pgvector's hnsw index supports at most {} dimensions, embedding.dimensions is {}",
                    components::MAX_HNSW_DIMENSIONS,
                    embedding.dimensions()
                ),
            ));
        }

        Ok(Config {
            source,
            name,
            destination,
            loading,
            parsing,
            embedding,
            chunking,
            formatting,
            indexing,
            scheduling,
            processing,
            queue_schema,
            queue_table,
            grant_to,
            enqueue_existing,
            if_not_exists,
        })
    }
}

fn missing(path: &str, what: &str) -> ConfigError {
    ConfigError::invalid(path, format!("required key is missing; expected {what}"))
}

#[cfg(test)]
mod tests;
