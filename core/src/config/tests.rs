use serde_json::{json, Value};

use super::{Component, Config};
use crate::error::ErrorKind;

fn blog() -> Value {
    json!({
        "source": "blog",
        "name": "blog_content_embedder",
        "destination": {"implementation": "table", "destination": "blog_embeddings"},
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
        "chunking": {"implementation": "character_text_splitter", "chunk_size": 800, "chunk_overlap": 400, "separator": ".", "is_separator_regex": false},
        "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
    })
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut base
    } else {
        base.pointer_mut(parent).unwrap()
    };
    match value {
        Value::Null => {
            target.as_object_mut().unwrap().remove(key);
        }
        v => {
            target.as_object_mut().unwrap().insert(key.to_string(), v);
        }
    }
    base
}

fn err(v: Value) -> (ErrorKind, String) {
    let e = Config::parse(&v).expect_err("config should be rejected");
    (e.kind, e.to_string())
}

#[test]
fn the_blog_example_parses_with_defaults_filled() {
    let c = Config::parse(&blog()).unwrap();
    assert_eq!(c.source, "blog");
    assert_eq!(c.embedding.dimensions(), 768);
    assert_eq!(
        c.embedding.evaluated(),
        json!({"implementation": "openai", "config_type": "embedding", "model": "text-embedding-3-small", "dimensions": 768, "api_key_name": "OPENAI_API_KEY"})
    );
    assert_eq!(c.loading.evaluated()["retries"], 6);
    assert_eq!(
        c.parsing.evaluated(),
        json!({"implementation": "auto", "config_type": "parsing"})
    );
    assert_eq!(
        c.indexing.evaluated(),
        json!({"implementation": "default", "config_type": "indexing"})
    );
    assert_eq!(
        c.scheduling.evaluated(),
        json!({"implementation": "default", "config_type": "scheduling"})
    );
    assert_eq!(
        c.processing.evaluated(),
        json!({"implementation": "default", "config_type": "processing"})
    );
    assert!(c.enqueue_existing);
    assert!(!c.if_not_exists);
}

#[test]
fn pgai_spelling_and_short_spelling_evaluate_the_same() {
    let pgai = with(
        blog(),
        "/embedding",
        json!({"config_type": "embedding", "implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768, "api_key_name": "OPENAI_API_KEY"}),
    );
    assert_eq!(
        Config::parse(&pgai).unwrap(),
        Config::parse(&blog()).unwrap()
    );
    let bare = with(blog(), "/indexing", json!("default"));
    assert_eq!(
        Config::parse(&bare).unwrap(),
        Config::parse(&blog()).unwrap()
    );
}

#[test]
fn default_chunking_is_recursive_800_400() {
    let c = Config::parse(&with(blog(), "/chunking", Value::Null)).unwrap();
    assert_eq!(
        c.chunking.evaluated()["implementation"],
        "recursive_character_text_splitter"
    );
    assert_eq!(c.chunking.evaluated()["chunk_size"], 800);
    assert_eq!(c.chunking.evaluated()["chunk_overlap"], 400);
    assert_eq!(
        c.chunking.evaluated()["separators"],
        json!(["\n\n", "\n", ".", "?", "!", " ", ""])
    );
}

#[test]
fn every_embedding_provider_is_accepted_with_its_defaults() {
    let cases = [
        (
            json!({"implementation": "ollama", "model": "nomic-embed-text", "dimensions": 768, "options": {"num_ctx": 1024}, "keep_alive": "5m"}),
            "keep_alive",
        ),
        (
            json!({"implementation": "voyageai", "model": "voyage-3", "dimensions": 1024}),
            "input_type",
        ),
        (
            json!({"implementation": "litellm", "model": "cohere/embed", "dimensions": 1024, "extra_options": {}}),
            "extra_options",
        ),
        (json!({"implementation": "sentence_transformers"}), "model"),
    ];
    for (embedding, key) in cases {
        let c = Config::parse(&with(blog(), "/embedding", embedding)).unwrap();
        assert!(
            c.embedding.evaluated().get(key).is_some(),
            "{key} in {}",
            c.embedding.evaluated()
        );
    }
    let st = Config::parse(&with(blog(), "/embedding", json!("sentence_transformers"))).unwrap();
    assert_eq!(st.embedding.dimensions(), 768);
    let v = Config::parse(&with(
        blog(),
        "/embedding",
        json!({"implementation": "voyageai", "model": "m", "dimensions": 8}),
    ))
    .unwrap();
    assert_eq!(v.embedding.evaluated()["api_key_name"], "VOYAGE_API_KEY");
}

#[test]
fn indexing_scheduling_processing_variants() {
    let c = Config::parse(&with(
        blog(),
        "/indexing",
        json!({"implementation": "hnsw", "m": 16, "ef_construction": 64}),
    ))
    .unwrap();
    assert_eq!(c.indexing.evaluated()["opclass"], "vector_cosine_ops");
    assert_eq!(c.indexing.evaluated()["min_rows"], 100000);
    assert_eq!(c.indexing.evaluated()["create_when_queue_empty"], true);
    let c = Config::parse(&with(
        blog(),
        "/indexing",
        json!({"implementation": "diskann", "storage_layout": "plain", "num_neighbors": 50}),
    ))
    .unwrap();
    assert_eq!(c.indexing.evaluated()["storage_layout"], "plain");
    let c = Config::parse(&with(
        blog(),
        "/scheduling",
        json!({"implementation": "timescaledb"}),
    ))
    .unwrap();
    assert_eq!(c.scheduling.evaluated()["schedule_interval"], "00:05:00");
    let c = Config::parse(&with(
        blog(),
        "/processing",
        json!({"implementation": "default", "batch_size": 100, "concurrency": 2}),
    ))
    .unwrap();
    assert_eq!(c.processing.evaluated()["batch_size"], 100);
}

/// Every invalid config names the path it is about.
#[test]
fn invalid_configs_name_their_path() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([1, 2]),
            "the vectorizer config must be a JSON object, got an array",
        ),
        (
            with(blog(), "/source", Value::Null),
            "source: required key is missing",
        ),
        (
            with(blog(), "/source", json!(5)),
            "source: expected a string, got 5",
        ),
        (
            with(blog(), "/name", json!("")),
            "name: expected a non-empty string",
        ),
        (with(blog(), "/colour", json!("red")), "colour: unknown key"),
        (
            with(blog(), "/loading", Value::Null),
            "loading: required key is missing",
        ),
        (
            with(blog(), "/loading/column_name", Value::Null),
            "loading.column_name: required key is missing",
        ),
        (
            with(blog(), "/loading/retries", json!(-1)),
            "loading.retries: expected an integer of at least 0, got -1",
        ),
        (
            with(blog(), "/loading/implementation", json!("s3")),
            "loading.implementation: unknown implementation \"s3\"",
        ),
        (
            with(blog(), "/loading/extra", json!(1)),
            "loading.extra: unknown key",
        ),
        (
            with(blog(), "/embedding", Value::Null),
            "embedding: required key is missing",
        ),
        (
            with(blog(), "/embedding/dimensions", json!("abc")),
            "embedding.dimensions: expected an integer between 1 and 16000, got \"abc\"",
        ),
        (
            with(blog(), "/embedding/dimensions", json!(0)),
            "embedding.dimensions: expected an integer between 1 and 16000, got 0",
        ),
        (
            with(blog(), "/embedding/dimensions", json!(16001)),
            "embedding.dimensions: expected an integer between 1 and 16000, got 16001",
        ),
        (
            with(blog(), "/embedding/dimensions", json!(7.5)),
            "embedding.dimensions: expected an integer between 1 and 16000, got 7.5",
        ),
        (
            with(blog(), "/embedding/dimensions", Value::Null),
            "embedding.dimensions: required key is missing",
        ),
        (
            with(blog(), "/embedding/model", Value::Null),
            "embedding.model: required key is missing",
        ),
        (
            with(blog(), "/embedding/implementation", json!("cohere")),
            "embedding.implementation: unknown implementation \"cohere\"",
        ),
        (
            with(blog(), "/embedding/config_type", json!("chunking")),
            "embedding.config_type: expected \"embedding\", got \"chunking\"",
        ),
        (
            with(blog(), "/embedding", json!("openai")),
            "embedding.model: required key is missing",
        ),
        (
            with(blog(), "/embedding", json!(42)),
            "embedding: expected a JSON object with \"implementation\", got 42",
        ),
        (
            with(blog(), "/chunking/chunk_size", json!(0)),
            "chunking.chunk_size: expected a positive integer, got 0",
        ),
        (
            with(blog(), "/chunking/chunk_size", json!(-800)),
            "chunking.chunk_size: expected a positive integer, got -800",
        ),
        (
            with(blog(), "/chunking/chunk_overlap", json!(800)),
            "chunking.chunk_overlap: expected an integer smaller than chunk_size (800), got 800",
        ),
        (
            with(blog(), "/chunking/chunk_overlap", json!(-1)),
            "chunking.chunk_overlap: expected an integer of at least 0, got -1",
        ),
        (
            with(blog(), "/chunking/separator", json!(1)),
            "chunking.separator: expected a string, got 1",
        ),
        (
            with(blog(), "/chunking/is_separator_regex", json!("no")),
            "chunking.is_separator_regex: expected true or false, got \"no\"",
        ),
        (
            with(
                blog(),
                "/chunking",
                json!({"implementation": "recursive_character_text_splitter", "separators": ["a", 1]}),
            ),
            "chunking.separators[1]: expected a string, got 1",
        ),
        (
            with(
                blog(),
                "/chunking",
                json!({"implementation": "recursive_character_text_splitter", "separators": []}),
            ),
            "chunking.separators: expected at least one separator",
        ),
        (
            with(blog(), "/formatting/template", json!("$title")),
            "formatting.template: template must contain $chunk",
        ),
        (
            with(blog(), "/formatting/template", json!("$ $chunk")),
            "formatting.template: invalid placeholder at character 1",
        ),
        (
            with(blog(), "/formatting/implementation", json!("jinja")),
            "formatting.implementation: unknown implementation \"jinja\"",
        ),
        (
            with(
                blog(),
                "/indexing",
                json!({"implementation": "hnsw", "opclass": "vector_foo_ops"}),
            ),
            "indexing.opclass: expected one of vector_cosine_ops",
        ),
        (
            with(
                blog(),
                "/indexing",
                json!({"implementation": "hnsw", "m": 1}),
            ),
            "indexing.m: expected an integer between 2 and 100, got 1",
        ),
        (
            with(
                blog(),
                "/indexing",
                json!({"implementation": "hnsw", "m": 16, "ef_construction": 20}),
            ),
            "indexing.ef_construction: expected at least 2 * m (32), got 20",
        ),
        (
            with(blog(), "/indexing", json!({"implementation": "ivfflat"})),
            "indexing.implementation: unknown implementation \"ivfflat\"",
        ),
        (
            with(
                blog(),
                "/indexing",
                json!({"implementation": "diskann", "storage_layout": "disk"}),
            ),
            "indexing.storage_layout: expected one of memory_optimized, plain",
        ),
        (
            with(blog(), "/scheduling", json!({"implementation": "cron"})),
            "scheduling.implementation: unknown implementation \"cron\"",
        ),
        (
            with(
                blog(),
                "/processing",
                json!({"implementation": "default", "batch_size": 4096}),
            ),
            "processing.batch_size: expected an integer between 1 and 2048, got 4096",
        ),
        (
            with(
                blog(),
                "/processing",
                json!({"implementation": "default", "concurrency": 0}),
            ),
            "processing.concurrency: expected an integer between 1 and 50, got 0",
        ),
        (
            with(blog(), "/destination/target_table", json!("x")),
            "destination.target_table: cannot be combined with destination",
        ),
        (
            with(blog(), "/destination/destination", json!("x".repeat(64))),
            "destination.destination: name is 64 bytes long",
        ),
        (
            with(blog(), "/destination/implementation", json!("s3")),
            "destination.implementation: unknown implementation \"s3\"",
        ),
        (
            with(
                blog(),
                "/destination",
                json!({"implementation": "column", "embedding_column": "emb"}),
            ),
            "chunking: a column destination needs chunking \"none\"",
        ),
        (
            with(blog(), "/grant_to", json!("bob")),
            "grant_to: expected an array of role names, got \"bob\"",
        ),
        (
            with(blog(), "/grant_to", json!(["bob", 3])),
            "grant_to[1]: expected a role name, got 3",
        ),
        (
            with(blog(), "/enqueue_existing", json!("yes")),
            "enqueue_existing: expected true or false, got \"yes\"",
        ),
        (
            with(blog(), "/queue_table", json!("")),
            "queue_table: expected a non-empty name",
        ),
        (
            with(
                with(blog(), "/embedding/dimensions", json!(3072)),
                "/indexing",
                json!("hnsw"),
            ),
            "indexing: pgvector's hnsw index supports at most 2000 dimensions",
        ),
        (
            with(blog(), "/embedding/voyage", json!(1)),
            "embedding.voyage: unknown key",
        ),
    ];
    assert!(cases.len() >= 30);
    for (config, expected) in cases {
        let (kind, message) = err(config);
        assert_eq!(kind, ErrorKind::InvalidConfig, "{message}");
        assert!(
            message.starts_with(expected),
            "got {message:?}, expected it to start with {expected:?}"
        );
    }
}

#[test]
fn unknown_keys_come_with_a_hint_listing_valid_ones() {
    let e = Config::parse(&with(blog(), "/embedding/dimension", json!(768))).unwrap_err();
    assert_eq!(e.path, "embedding.dimension");
    assert!(e.hint.unwrap().contains("dimensions"));
}

#[test]
fn deep_changes_are_a_config_error() {
    let deep = format!(
        "{{\"processing\": {}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let e = crate::config::read_document(&deep, "the changes are").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    assert_eq!(
        e.to_string(),
        "the changes are nested more than 128 levels deep"
    );
    let shallow = crate::config::read_document("{\"a\": [[1]]}", "the changes are").unwrap();
    assert_eq!(shallow, json!({"a": [[1]]}));
}

#[test]
fn deep_nesting_is_a_config_error() {
    let deep = format!("{{\"source\": {}1{}}}", "[".repeat(500), "]".repeat(500));
    let e = Config::parse_text(&deep).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    assert_eq!(
        e.to_string(),
        "the config is nested more than 128 levels deep"
    );
}

#[test]
fn odd_keys_are_quoted_in_paths() {
    let e = Config::parse(&with(blog(), "/", json!(1))).unwrap_err();
    assert_eq!(e.to_string(), "\"\": unknown key");
    let e = Config::parse(&with(blog(), "/embedding/a.b", json!(1))).unwrap_err();
    assert_eq!(e.to_string(), "embedding.\"a.b\": unknown key");
}
