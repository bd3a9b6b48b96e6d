//! A JSON description of the config model (kinds, fields, types, required
//! and default values), for other languages' mirrors of it: the Python
//! package's classes are checked against `python/pgai_migrate/model.json`,
//! which a unit test keeps equal to [`describe`].
//!
//! Nothing here restates the model. Which keys exist is what the parser
//! itself reads (its "valid keys" hint for an unknown key); whether a key
//! is required is whether the parser refuses the component without it; a
//! default is what the parser fills in. Only a valid value for each key is
//! written down, in [`EXAMPLES`], and a test fails when a key lacks one.

use serde_json::{json, Map, Value};

use super::model::{
    Chunking, Component, Embedding, Formatting, Indexing, Loading, Parsing, Processing, Scheduling,
    StoredDestination,
};
use super::{components, Config};
use crate::error::ConfigError;

/// For each component and implementation, documents with a valid value
/// for every key (several where keys exclude each other).
const EXAMPLES: &[(&str, &str, &[&str])] = &[
    (
        "loading",
        "column",
        &[r#"{"column_name": "body", "retries": 3}"#],
    ),
    (
        "loading",
        "uri",
        &[r#"{"column_name": "url", "retries": 3, "aws_role_arn": "arn:aws:iam::1:role/r"}"#],
    ),
    ("parsing", "auto", &["{}"]),
    ("parsing", "none", &["{}"]),
    ("parsing", "pymupdf", &["{}"]),
    ("parsing", "docling", &["{}"]),
    (
        "embedding",
        "openai",
        &[
            r#"{"model": "m", "dimensions": 8, "user": "u", "api_key_name": "K", "base_url": "http://h"}"#,
        ],
    ),
    (
        "embedding",
        "ollama",
        &[
            r#"{"model": "m", "dimensions": 8, "base_url": "http://h", "options": {}, "keep_alive": "5m"}"#,
        ],
    ),
    (
        "embedding",
        "voyageai",
        &[r#"{"model": "m", "dimensions": 8, "input_type": "query", "api_key_name": "K"}"#],
    ),
    (
        "embedding",
        "litellm",
        &[r#"{"model": "m", "dimensions": 8, "api_key_name": "K", "extra_options": {}}"#],
    ),
    (
        "embedding",
        "sentence_transformers",
        &[r#"{"model": "m", "dimensions": 8}"#],
    ),
    (
        "chunking",
        "character_text_splitter",
        &[
            r#"{"chunk_size": 100, "chunk_overlap": 10, "separator": ".", "is_separator_regex": false}"#,
        ],
    ),
    (
        "chunking",
        "recursive_character_text_splitter",
        &[
            r#"{"chunk_size": 100, "chunk_overlap": 10, "separators": ["."], "is_separator_regex": false}"#,
        ],
    ),
    ("chunking", "none", &["{}"]),
    (
        "formatting",
        "python_template",
        &[r#"{"template": "$chunk"}"#],
    ),
    ("formatting", "chunk_value", &["{}"]),
    ("indexing", "none", &["{}"]),
    ("indexing", "default", &["{}"]),
    (
        "indexing",
        "hnsw",
        &[
            r#"{"min_rows": 5, "opclass": "vector_l2_ops", "m": 4, "ef_construction": 8, "create_when_queue_empty": false}"#,
        ],
    ),
    (
        "indexing",
        "diskann",
        &[
            r#"{"min_rows": 5, "storage_layout": "plain", "num_neighbors": 50, "search_list_size": 20, "max_alpha": 1.5, "num_dimensions": 3, "num_bits_per_dimension": 2, "create_when_queue_empty": false}"#,
        ],
    ),
    ("scheduling", "none", &["{}"]),
    ("scheduling", "default", &["{}"]),
    (
        "scheduling",
        "timescaledb",
        &[
            r#"{"schedule_interval": "1 hour", "initial_start": "2025-01-01T00:00:00Z", "fixed_schedule": true, "timezone": "UTC"}"#,
        ],
    ),
    (
        "processing",
        "default",
        &[r#"{"batch_size": 10, "concurrency": 2}"#],
    ),
    (
        "destination",
        "table",
        &[
            r#"{"target_schema": "s", "target_table": "t", "view_schema": "s", "view_name": "v"}"#,
            r#"{"destination": "d"}"#,
        ],
    ),
    ("destination", "column", &[r#"{"embedding_column": "e"}"#]),
];

/// The component keys of a config, in the order the parser reads them,
/// with their implementations.
fn components() -> [(&'static str, &'static [&'static str]); 9] {
    [
        ("destination", StoredDestination::IMPLEMENTATIONS),
        ("loading", Loading::IMPLEMENTATIONS),
        ("parsing", Parsing::IMPLEMENTATIONS),
        ("embedding", Embedding::IMPLEMENTATIONS),
        ("chunking", Chunking::IMPLEMENTATIONS),
        ("formatting", Formatting::IMPLEMENTATIONS),
        ("indexing", Indexing::IMPLEMENTATIONS),
        ("scheduling", Scheduling::IMPLEMENTATIONS),
        ("processing", Processing::IMPLEMENTATIONS),
    ]
}

/// The user-facing parser of one component, evaluated to stored JSON.
fn parse(key: &str, v: &Value) -> Result<Value, ConfigError> {
    let v = Some(v);
    Ok(match key {
        "destination" => match components::destination(v)? {
            components::Destination::Column { embedding_column } => {
                json!({ "embedding_column": embedding_column })
            }
            components::Destination::Table {
                destination,
                target_schema,
                target_table,
                view_schema,
                view_name,
            } => json!({
                "destination": destination, "target_schema": target_schema,
                "target_table": target_table, "view_schema": view_schema, "view_name": view_name,
            }),
        },
        "loading" => components::loading(v.unwrap())?.evaluated(),
        "parsing" => components::parsing(v)?.evaluated(),
        "embedding" => components::embedding(v.unwrap())?.evaluated(),
        "chunking" => components::chunking(v)?.evaluated(),
        "formatting" => components::formatting(v)?.evaluated(),
        "indexing" => components::indexing(v)?.evaluated(),
        "scheduling" => components::scheduling(v)?.evaluated(),
        "processing" => components::processing(v)?.evaluated(),
        other => unreachable!("no component {other}"),
    })
}

fn with_implementation(doc: &str, implementation: &str) -> Map<String, Value> {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(doc) else {
        panic!("example {doc} is not an object")
    };
    m.insert("implementation".into(), json!(implementation));
    m
}

/// The keys the parser reads for a valid document: the hint it gives for
/// an unknown key.
fn keys_read(key: &str, doc: &Map<String, Value>) -> Vec<String> {
    let mut probe = doc.clone();
    probe.insert("__probe__".into(), json!(1));
    let e = parse(key, &Value::Object(probe)).expect_err("an unknown key is refused");
    let hint = e.hint.expect("the unknown-key error lists the valid keys");
    hint.trim_start_matches("valid keys here are: ")
        .split(", ")
        .filter(|k| *k != "implementation" && *k != "config_type")
        .map(String::from)
        .collect()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Array(_) => "array of strings",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

fn describe_kind(key: &str, implementation: &str, docs: &[&str]) -> Value {
    let docs: Vec<Map<String, Value>> = docs
        .iter()
        .map(|d| with_implementation(d, implementation))
        .collect();
    // Every key the parser reads, and a valid value for each.
    let mut fields = Map::new();
    for doc in &docs {
        parse(key, &Value::Object(doc.clone()))
            .unwrap_or_else(|e| panic!("{key}.{implementation} example {doc:?}: {e}"));
    }
    for k in keys_read(key, &docs[0]) {
        let doc = docs.iter().find(|d| d.contains_key(&k)).unwrap_or_else(|| {
            panic!(
                "{key}.{implementation}: the parser reads \"{k}\"; add a value for it to EXAMPLES"
            )
        });
        let example = &doc[&k];
        {
            let required = {
                let mut without = doc.clone();
                without.remove(&k);
                matches!(parse(key, &Value::Object(without)),
                    Err(e) if e.path == format!("{key}.{k}") && e.message.starts_with("required key is missing"))
            };
            fields.insert(
                k.clone(),
                json!({ "type": json_type(example), "required": required }),
            );
        }
    }
    // Defaults: what the parser fills in given only the required keys.
    let mut minimal = Map::new();
    minimal.insert("implementation".into(), json!(implementation));
    for (k, f) in &fields {
        if f["required"] == true {
            let value = docs.iter().find_map(|d| d.get(k)).unwrap();
            minimal.insert(k.clone(), value.clone());
        }
    }
    let evaluated = parse(key, &Value::Object(minimal)).expect("the required keys suffice");
    for (k, f) in fields.iter_mut() {
        if f["required"] == false {
            f["default"] = evaluated.get(k).cloned().unwrap_or(Value::Null);
        }
    }
    json!({ "fields": fields })
}

/// Keys of a whole config: the parser's hint for an unknown top-level key.
fn config_keys() -> Vec<String> {
    let minimal = json!({
        "source": "t",
        "loading": {"implementation": "column", "column_name": "c"},
        "embedding": {"implementation": "sentence_transformers"},
        "__probe__": 1,
    });
    let e = Config::parse(&minimal).expect_err("an unknown key is refused");
    e.hint
        .expect("valid keys")
        .trim_start_matches("valid keys here are: ")
        .split(", ")
        .map(String::from)
        .collect()
}

/// The model's description, as written to `python/pgai_migrate/model.json`.
pub fn describe() -> Value {
    let minimal = json!({
        "source": "t",
        "loading": {"implementation": "column", "column_name": "c"},
        "embedding": {"implementation": "sentence_transformers"},
    });
    let mut out = Map::new();
    for (key, implementations) in components() {
        let mut without = minimal.clone();
        without.as_object_mut().unwrap().remove(key);
        let required = matches!(Config::parse(&without),
            Err(e) if e.path == key && e.message.starts_with("required key is missing"));
        let mut kinds = Map::new();
        for imp in implementations {
            let (_, _, docs) = EXAMPLES
                .iter()
                .find(|(k, i, _)| k == &key && i == imp)
                .unwrap_or_else(|| panic!("EXAMPLES has no {key}.{imp}"));
            kinds.insert(imp.to_string(), describe_kind(key, imp, docs));
        }
        out.insert(
            key.into(),
            json!({ "required": required, "implementations": kinds }),
        );
    }
    json!({ "config_keys": config_keys(), "components": out })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in description is the model's. To refresh it after
    /// changing the model: `PGAI_MIGRATE_WRITE_MODEL=1 cargo test -p
    /// pgai_migrate_core model_json`.
    #[test]
    fn model_json_is_up_to_date() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../python/pgai_migrate/model.json"
        );
        let text = serde_json::to_string_pretty(&describe()).unwrap() + "\n";
        if std::env::var_os("PGAI_MIGRATE_WRITE_MODEL").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == text,
            "python/pgai_migrate/model.json is stale; run PGAI_MIGRATE_WRITE_MODEL=1 cargo test -p pgai_migrate_core model_json"
        );
    }

    #[test]
    fn describes_required_keys_and_defaults_from_the_parser() {
        let d = describe();
        let openai = &d["components"]["embedding"]["implementations"]["openai"]["fields"];
        assert_eq!(openai["model"], json!({"type": "string", "required": true}));
        assert_eq!(openai["dimensions"]["required"], true);
        assert_eq!(openai["api_key_name"]["default"], "OPENAI_API_KEY");
        assert_eq!(openai["base_url"]["default"], Value::Null);
        let rec = &d["components"]["chunking"]["implementations"]
            ["recursive_character_text_splitter"]["fields"];
        assert_eq!(rec["chunk_overlap"]["default"], 400);
        assert_eq!(rec["separators"]["type"], "array of strings");
        assert_eq!(d["components"]["loading"]["required"], true);
        assert_eq!(d["components"]["chunking"]["required"], false);
        let table = &d["components"]["destination"]["implementations"]["table"]["fields"];
        assert_eq!(table.as_object().unwrap().len(), 5);
        assert!(d["config_keys"]
            .as_array()
            .unwrap()
            .contains(&json!("enqueue_existing")));
    }
}
