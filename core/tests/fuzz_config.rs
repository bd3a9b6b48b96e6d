//! Hostile-input fuzzing of the pure core: `Config::parse` and `build_plan`.
//!
//! Three generators, each run for `PGAI_MIGRATE_FUZZ_CASES` cases (default
//! 5000, the CI setting):
//!
//! * `random_json_trees`: arbitrary JSON documents whose keys and values are
//!   drawn from the config vocabulary, hostile strings and odd numbers;
//! * `mutated_valid_configs`: a valid config (many shapes, several fake source
//!   tables including ones with hostile names) with 1–4 mutations applied:
//!   replace any value by a random JSON value, delete a key, add a key,
//!   huge/negative/float numbers, deep nesting, long and unicode strings;
//! * `generated_valid_configs`: valid configs over randomly named source
//!   tables (arbitrary unicode identifiers up to 63 bytes), so that most cases
//!   reach `build_plan` and produce SQL.
//!
//! Properties checked for every case:
//! * nothing panics;
//! * a rejection is a `ConfigError` whose `path` is the root ("") or names a
//!   place that exists in the input (or a key the parser requires there),
//!   whose message and Display are non-empty, and whose Display is
//!   `"<path>: <message>"`; `Config::parse` only ever says 22023;
//! * an accepted config either fails `build_plan` with a database-level kind
//!   and a known path, or yields a plan whose every SQL statement (including
//!   the trigger function body, the DDL search_path and the DROP statements)
//!   lexes with balanced quotes, has no comment and no second statement, has
//!   no bare word that the generator does not write for ordinary names, and
//!   carries every name it mentions as one complete double-quoted identifier
//!   that round-trips to exactly that name;
//! * the evaluated (stored) config parses again and plans to the same config,
//!   and reads back into the typed model (`Evaluated`) and serialises to
//!   the same text.
//!
//! A longer run: `PGAI_MIGRATE_FUZZ_CASES=200000 cargo test --release -p
//! pgai_migrate_core --test fuzz_config -- --nocapture` (figures are printed
//! with `--nocapture`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgai_migrate_core::config::Evaluated;
use pgai_migrate_core::plan::{drop_sql, trigger_statements, Context};
use pgai_migrate_core::{
    build_plan, Config, ConfigError, Environment, ErrorKind, KeyColumn, Plan, SourceColumn,
    SourceTable, TypeCategory,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{json, Map, Number, Value};

// ------------------------------------------------------------ parameters

fn cases() -> u32 {
    std::env::var("PGAI_MIGRATE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000)
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        max_local_rejects: u32::MAX,
        max_global_rejects: u32::MAX,
        ..RunnerConfig::default()
    })
}

/// Every key the config format knows, at any level.
const KEYS: &[&str] = &[
    "source",
    "name",
    "destination",
    "loading",
    "parsing",
    "embedding",
    "chunking",
    "formatting",
    "indexing",
    "scheduling",
    "processing",
    "queue_schema",
    "queue_table",
    "grant_to",
    "enqueue_existing",
    "if_not_exists",
    "implementation",
    "config_type",
    "column_name",
    "retries",
    "aws_role_arn",
    "model",
    "dimensions",
    "user",
    "api_key_name",
    "base_url",
    "options",
    "keep_alive",
    "input_type",
    "extra_options",
    "chunk_size",
    "chunk_overlap",
    "separator",
    "separators",
    "is_separator_regex",
    "template",
    "min_rows",
    "opclass",
    "m",
    "ef_construction",
    "create_when_queue_empty",
    "storage_layout",
    "num_neighbors",
    "search_list_size",
    "max_alpha",
    "num_dimensions",
    "num_bits_per_dimension",
    "schedule_interval",
    "initial_start",
    "fixed_schedule",
    "timezone",
    "batch_size",
    "concurrency",
    "target_schema",
    "target_table",
    "view_schema",
    "view_name",
    "embedding_column",
];

/// Values that mean something somewhere in a config.
const WORDS: &[&str] = &[
    "column",
    "uri",
    "auto",
    "none",
    "pymupdf",
    "docling",
    "openai",
    "ollama",
    "voyageai",
    "litellm",
    "sentence_transformers",
    "character_text_splitter",
    "recursive_character_text_splitter",
    "python_template",
    "chunk_value",
    "default",
    "hnsw",
    "diskann",
    "timescaledb",
    "table",
    "loading",
    "parsing",
    "embedding",
    "chunking",
    "formatting",
    "indexing",
    "scheduling",
    "processing",
    "destination",
    "document",
    "query",
    "vector_cosine_ops",
    "vector_l2_ops",
    "memory_optimized",
    "plain",
    "blog",
    "content",
    "title",
    "id",
    "pdf",
    "$chunk",
    "$title - $chunk",
    "${chunk}",
    "$$ $chunk",
    "text-embedding-3-small",
    "migrate",
    "public",
];

/// Strings written to break SQL, JSON paths or byte/char arithmetic.
const HOSTILE: &[&str] = &[
    "x\"; DROP TABLE t; --",
    "'; DROP TABLE t; --",
    "$$",
    "$body$",
    "a\\b",
    "\\",
    "\"",
    "'",
    "''",
    "\"\"",
    "--",
    "/*",
    "*/",
    ";",
    "a.b",
    "a[0]",
    ".",
    "[",
    "E'x'",
    "U&\"\\0061\"",
    "ünïcødé",
    "表",
    "埋め込み",
    "🦀🦀",
    "\u{200b}",
    "\u{feff}",
    "\r\n",
    "\t",
    " ",
    "\u{0}",
    "$",
    "${",
    "${}",
    "${1x} $chunk",
    "$chunk$",
    "$chunk \\",
    "$chunk '",
    "$chunk\"",
];

// ------------------------------------------------------------ strategies

/// `n` characters, none of them NUL (and, with `printable`, none a control
/// character). Cheaper than a regex strategy in a debug build.
fn chars(n: std::ops::Range<usize>, printable: bool) -> BoxedStrategy<String> {
    proptest::collection::vec(
        // Mapped rather than filtered: filters count as rejects, and long
        // runs would hit proptest's reject limit.
        any::<char>().prop_map(move |c| {
            if c == '\0' || (printable && c.is_control()) {
                '\u{b7}'
            } else {
                c
            }
        }),
        n,
    )
    .prop_map(String::from_iter)
    .boxed()
}

fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_string),
        3 => proptest::sample::select(HOSTILE).prop_map(str::to_string),
        2 => proptest::sample::select(KEYS).prop_map(str::to_string),
        3 => chars(0..25, true),
        2 => proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => (0usize..3, 55usize..70).prop_map(|(kind, n)| match kind {
            0 => "x".repeat(n),
            1 => "é".repeat(n / 2),
            _ => "表".repeat(n / 3),
        }),
        1 => (1usize..5_000).prop_map(|n| "y".repeat(n)),
    ]
    .boxed()
}

fn special_number() -> BoxedStrategy<Value> {
    proptest::sample::select(vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(2),
        json!(768),
        json!(1536),
        json!(2000),
        json!(2001),
        json!(16000),
        json!(16001),
        json!(2048),
        json!(2049),
        json!(50),
        json!(51),
        json!(i32::MAX),
        json!(i64::from(i32::MAX) + 1),
        json!(i64::from(i32::MIN)),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(768.0),
        json!(0.5),
        json!(-0.0),
        json!(1e308),
        json!(-1e308),
        json!(f64::MIN_POSITIVE),
        json!(5e-324),
    ])
    .boxed()
}

fn arb_number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => special_number(),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        2 => any::<f64>().prop_map(|f| Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        2 => (-5i64..20_000).prop_map(Value::from),
    ]
    .boxed()
}

fn arb_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => arb_number(),
        5 => arb_string().prop_map(Value::String),
    ]
    .boxed()
}

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::sample::select(KEYS).prop_map(str::to_string),
        2 => arb_string(),
    ]
    .boxed()
}

fn arb_json() -> BoxedStrategy<Value> {
    arb_leaf()
        .prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((arb_key(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// A random document that is at least an object with the top-level keys
/// most likely to get the parser past its first checks.
fn arb_tree_config() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => arb_json(),
        3 => proptest::collection::vec((arb_key(), arb_json()), 0..12).prop_map(|kv| {
            let mut m: Map<String, Value> = kv.into_iter().collect();
            if !m.contains_key("source") {
                m.insert("source".into(), json!("blog"));
            }
            Value::Object(m)
        }),
    ]
    .boxed()
}

// ------------------------------------------------------- fake source tables

fn col(name: &str, type_sql: &str, category: TypeCategory) -> SourceColumn {
    SourceColumn {
        name: name.into(),
        type_sql: type_sql.into(),
        category,
        eq_schema: "pg_catalog".into(),
        eq_name: "=".into(),
        eq_type: None,
        type_schema: "pg_catalog".into(),
    }
}

/// A source table plus which of its columns a valid config can name.
#[derive(Debug, Clone)]
struct Source {
    table: SourceTable,
    text_column: String,
    bytea_column: Option<String>,
    /// A column a template may refer to ($name needs an ASCII identifier).
    template_column: Option<String>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn regclass_text(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

fn fixed_sources() -> Vec<Source> {
    let blog = SourceTable {
        schema: "public".into(),
        name: "blog".into(),
        qualified_name: "public.blog".into(),
        owner: "alice".into(),
        columns: vec![
            col("id", "integer", TypeCategory::Other),
            col("title", "text", TypeCategory::Text),
            col("content", "text", TypeCategory::Text),
            col("views", "integer", TypeCategory::Other),
            col("pdf", "bytea", TypeCategory::Bytea),
        ],
        primary_key: vec!["id".into()],
        partitioned: false,
        primary_key_btree: true,
        partitions: vec![],
    };
    let mut custom_pk = col("ID", "\"my schema\".\"my \"\"type\"", TypeCategory::Other);
    custom_pk.eq_schema = "my schema".into();
    custom_pk.type_schema = "my schema".into();
    let hostile = SourceTable {
        schema: "sch\"ema".into(),
        name: "ta'ble; DROP TABLE t; --".into(),
        qualified_name: regclass_text("sch\"ema", "ta'ble; DROP TABLE t; --"),
        owner: "o\"wner'; --".into(),
        columns: vec![
            custom_pk,
            col("co\"l'umn", "text", TypeCategory::Text),
            col("$$", "character varying(20)", TypeCategory::Text),
            col("a\\b", "bytea", TypeCategory::Bytea),
            col("title", "text", TypeCategory::Text),
            col("x\"; DROP TABLE t; --", "integer", TypeCategory::Other),
            col("$body$", "text", TypeCategory::Text),
        ],
        primary_key: vec!["ID".into()],
        partitioned: false,
        primary_key_btree: true,
        partitions: vec![],
    };
    let unicode = SourceTable {
        schema: "ünïcødé".into(),
        name: "表".into(),
        qualified_name: regclass_text("ünïcødé", "表"),
        owner: "ünï".into(),
        columns: vec![
            col("k1", "text", TypeCategory::Text),
            col("k2", "bigint", TypeCategory::Other),
            col("内容", "text", TypeCategory::Text),
            col("body", "text", TypeCategory::Text),
        ],
        primary_key: vec!["k2".into(), "k1".into()],
        partitioned: false,
        primary_key_btree: true,
        partitions: vec![],
    };
    vec![
        Source {
            table: blog,
            text_column: "content".into(),
            bytea_column: Some("pdf".into()),
            template_column: Some("title".into()),
        },
        Source {
            table: hostile,
            text_column: "co\"l'umn".into(),
            bytea_column: Some("a\\b".into()),
            template_column: Some("title".into()),
        },
        Source {
            table: unicode,
            text_column: "内容".into(),
            bytea_column: None,
            template_column: Some("body".into()),
        },
    ]
}

/// Any identifier PostgreSQL accepts in a quoted name: 1–63 bytes, no NUL.
fn arb_ident() -> BoxedStrategy<String> {
    prop_oneof![
        3 => chars(1..21, false),
        2 => proptest::sample::select(HOSTILE.iter().filter(|s| !s.contains('\0')).copied().collect::<Vec<_>>())
            .prop_map(str::to_string),
        1 => proptest::collection::vec(proptest::sample::select("abcdefghijklmnopqrstuvwxyz_".chars().collect::<Vec<_>>()), 1..64).prop_map(String::from_iter),
        1 => (1usize..22).prop_map(|n| "表".repeat(n)),
    ]
    .prop_map(|s| fit63(&s))
    .boxed()
}

/// At most 63 bytes, cut at a character boundary; never empty.
fn fit63(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > 63 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn arb_source() -> BoxedStrategy<Source> {
    let fixed = fixed_sources();
    let random = (
        arb_ident(),
        arb_ident(),
        arb_ident(),
        proptest::collection::vec(arb_ident(), 4..7).prop_map(|cols| {
            let reserved = [
                "tcol",
                "embedding_uuid",
                "chunk_seq",
                "chunk",
                "embedding",
                "queued_at",
                "loading_retries",
                "loading_retry_after",
            ];
            let mut out: Vec<String> = Vec::new();
            for (i, c) in cols.into_iter().enumerate() {
                // Distinct and not a name the store or queue adds itself.
                let c = if out.contains(&c) || reserved.contains(&c.as_str()) {
                    fit63(&format!("{i}{c}"))
                } else {
                    c
                };
                if !out.contains(&c) && !reserved.contains(&c.as_str()) {
                    out.push(c);
                }
            }
            for pad in ["pad_a", "pad_b", "pad_c"] {
                if out.len() < 3 && !out.iter().any(|c| c == pad) {
                    out.push(pad.to_string());
                }
            }
            out
        }),
        any::<bool>(),
    )
        .prop_map(|(schema, name, owner, cols, composite)| {
            let n = cols.len();
            let mut columns = Vec::new();
            for (i, c) in cols.iter().enumerate() {
                let (t, k) = match i % 3 {
                    0 => ("integer", TypeCategory::Other),
                    1 => ("text", TypeCategory::Text),
                    _ => ("bytea", TypeCategory::Bytea),
                };
                columns.push(col(c, t, k));
            }
            columns.push(col("tcol", "text", TypeCategory::Text));
            let mut primary_key = vec![cols[0].clone()];
            if composite && n > 3 {
                primary_key.push(cols[3].clone());
            }
            Source {
                table: SourceTable {
                    qualified_name: regclass_text(&schema, &name),
                    schema,
                    name,
                    owner,
                    columns,
                    primary_key,
                    partitioned: false,
                    primary_key_btree: true,
                    partitions: vec![],
                },
                text_column: cols[1].clone(),
                bytea_column: cols.get(2).cloned(),
                template_column: Some("tcol".into()),
            }
        });
    prop_oneof![
        2 => proptest::sample::select(fixed),
        1 => random,
    ]
    .boxed()
}

fn arb_env() -> impl Strategy<Value = Environment> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just("public".to_string()),
            Just("vec\"tor'".to_string()),
            arb_ident()
        ],
    )
        .prop_map(
            |(has_vectorscale, has_timescaledb, vector_schema)| Environment {
                vector_schema,
                has_vectorscale,
                has_timescaledb,
            },
        )
}

/// A valid config for `source`, over every implementation of every
/// component, in both spellings, with hostile names where names go.
fn arb_valid_config(source: &Source) -> BoxedStrategy<Value> {
    let s = source.clone();
    let loading = {
        let s = s.clone();
        (any::<bool>(), any::<bool>(), 0i64..10, any::<bool>()).prop_map(move |(uri, pgai, retries, bytea)| {
            let column = match (&s.bytea_column, bytea && !uri) {
                (Some(b), true) => b.clone(),
                _ => s.text_column.clone(),
            };
            let mut o = json!({"implementation": if uri { "uri" } else { "column" }, "column_name": column, "retries": retries});
            if pgai {
                o["config_type"] = json!("loading");
            }
            o
        })
    };
    let embedding = prop_oneof![
        (1i64..=16000, arb_string()).prop_map(|(d, u)| json!({"implementation": "openai", "model": "text-embedding-3-small", "dimensions": d, "user": u})),
        (1i64..=4096).prop_map(|d| json!({"implementation": "ollama", "model": "nomic", "dimensions": d, "options": {"num_ctx": 1}, "keep_alive": "5m", "config_type": "embedding"})),
        (1i64..=4096).prop_map(|d| json!({"implementation": "voyageai", "model": "v", "dimensions": d, "input_type": "query"})),
        (1i64..=4096).prop_map(|d| json!({"implementation": "litellm", "model": "m", "dimensions": d, "extra_options": {}})),
        Just(json!("sentence_transformers")),
    ];
    let chunking = prop_oneof![
        (2i64..5000, any::<bool>(), arb_string()).prop_map(|(size, regex, sep)| json!({"implementation": "character_text_splitter", "chunk_size": size, "chunk_overlap": size / 2, "separator": sep, "is_separator_regex": regex})),
        (proptest::collection::vec(arb_string(), 1..5)).prop_map(|seps| json!({"implementation": "recursive_character_text_splitter", "separators": seps, "config_type": "chunking"})),
        Just(json!("none")),
        Just(Value::Null),
    ];
    let template_column = s.template_column.clone();
    let formatting = prop_oneof![
        Just(json!("chunk_value")),
        Just(Value::Null),
        proptest::sample::select(vec![
            "$chunk",
            "${chunk}",
            "$$ '; DROP TABLE t; -- \\ $chunk",
            "$chunk $$body$$"
        ])
        .prop_map(|t| json!({"implementation": "python_template", "template": t})),
        Just(match template_column {
            Some(c) =>
                json!({"implementation": "python_template", "template": format!("${c} - $chunk")}),
            None => json!("python_template"),
        }),
    ];
    let indexing = prop_oneof![
        Just(json!("none")),
        Just(json!("default")),
        (2i64..=100).prop_map(|m| json!({"implementation": "hnsw", "m": m, "ef_construction": 2 * m, "opclass": "vector_ip_ops"})),
        Just(json!({"implementation": "diskann", "max_alpha": 1.2, "storage_layout": "plain"})),
    ];
    let scheduling = prop_oneof![
        Just(json!("none")),
        Just(json!("default")),
        Just(json!({"implementation": "timescaledb", "schedule_interval": "10m"}))
    ];
    let destination = prop_oneof![
        3 => (proptest::option::of(arb_ident()), proptest::option::of(arb_ident()), proptest::option::of(chars(1..58, false)))
            .prop_map(|(ts, vs, d)| {
                let mut o = json!({"implementation": "table"});
                if let Some(ts) = ts { o["target_schema"] = json!(ts); }
                if let Some(vs) = vs { o["view_schema"] = json!(vs); }
                if let Some(d) = d { o["destination"] = json!(d); }
                o
            }),
        1 => (arb_ident(), arb_ident()).prop_map(|(t, v)| json!({"implementation": "table", "target_table": t, "view_name": v, "config_type": "destination"})),
        1 => arb_ident().prop_map(|c| json!({"implementation": "column", "embedding_column": c})),
        1 => Just(Value::Null),
    ];
    let names = (
        proptest::option::of(arb_string()),
        proptest::option::of(arb_ident()),
        proptest::option::of(arb_ident()),
        proptest::collection::vec(arb_ident(), 0..3),
        any::<bool>(),
    );
    (
        loading,
        embedding,
        chunking,
        formatting,
        indexing,
        scheduling,
        destination,
        names,
    )
        .prop_map(
            move |(
                loading,
                embedding,
                chunking,
                formatting,
                indexing,
                scheduling,
                destination,
                names,
            )| {
                let (name, queue_schema, queue_table, grant_to, enqueue) = names;
                let column_destination = destination["implementation"] == "column";
                let mut m = Map::new();
                m.insert("source".into(), json!(s.table.qualified_name));
                if let Some(n) = name {
                    m.insert("name".into(), json!(n));
                }
                m.insert("loading".into(), loading);
                m.insert("embedding".into(), embedding);
                m.insert(
                    "chunking".into(),
                    if column_destination {
                        json!("none")
                    } else {
                        chunking
                    },
                );
                m.insert("formatting".into(), formatting);
                m.insert("indexing".into(), indexing);
                m.insert("scheduling".into(), scheduling);
                m.insert("destination".into(), destination);
                m.insert(
                    "processing".into(),
                    json!({"implementation": "default", "batch_size": 2048, "concurrency": 1}),
                );
                if let Some(q) = queue_schema {
                    m.insert("queue_schema".into(), json!(q));
                }
                if let Some(q) = queue_table {
                    m.insert("queue_table".into(), json!(q));
                }
                m.insert("grant_to".into(), json!(grant_to));
                m.insert("enqueue_existing".into(), json!(enqueue));
                Value::Object(m)
            },
        )
        .boxed()
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Delete(usize),
    AddKey(usize, String, Value),
    Nest(usize, usize, bool),
    Number(usize, Value),
    LongString(usize, String),
}

fn arb_mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        4 => (any::<usize>(), arb_json()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        3 => any::<usize>().prop_map(Mutation::Delete),
        3 => (any::<usize>(), arb_key(), arb_json()).prop_map(|(p, k, v)| Mutation::AddKey(p, k, v)),
        1 => (any::<usize>(), 1usize..300, any::<bool>()).prop_map(|(p, d, a)| Mutation::Nest(p, d, a)),
        2 => (any::<usize>(), arb_number()).prop_map(|(p, v)| Mutation::Number(p, v)),
        2 => (any::<usize>(), arb_string()).prop_map(|(p, s)| Mutation::LongString(p, s)),
    ]
    .boxed()
}

/// JSON pointers of every value in `v`, root first.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    walk(
                        c,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    )
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    walk(c, format!("{at}/{i}"), out)
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn apply(mut v: Value, m: &Mutation) -> Value {
    let ptrs = pointers(&v);
    let pick = |i: usize| ptrs[i % ptrs.len()].clone();
    match m {
        Mutation::Replace(i, new) | Mutation::Number(i, new) => {
            let p = pick(*i);
            *v.pointer_mut(&p).unwrap() = new.clone();
        }
        Mutation::LongString(i, s) => {
            let p = pick(*i);
            *v.pointer_mut(&p).unwrap() = Value::String(s.clone());
        }
        Mutation::Nest(i, depth, array) => {
            let p = pick(*i);
            let target = v.pointer_mut(&p).unwrap();
            let mut inner = target.take();
            for _ in 0..*depth {
                inner = if *array {
                    Value::Array(vec![inner])
                } else {
                    json!({ "implementation": inner })
                };
            }
            *target = inner;
        }
        Mutation::Delete(i) => {
            let p = pick(*i);
            if let Some((parent, key)) = p.rsplit_once('/') {
                let key = key.replace("~1", "/").replace("~0", "~");
                match v.pointer_mut(parent).unwrap() {
                    Value::Object(o) => {
                        o.remove(&key);
                    }
                    Value::Array(a) => {
                        if let Ok(k) = key.parse::<usize>() {
                            if k < a.len() {
                                a.remove(k);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::AddKey(i, k, new) => {
            let p = pick(*i);
            match v.pointer_mut(&p).unwrap() {
                Value::Object(o) => {
                    o.insert(k.clone(), new.clone());
                }
                Value::Array(a) => a.push(new.clone()),
                other => *other = json!({ k.clone(): new.clone() }),
            }
        }
    }
    v
}

// ------------------------------------------------------------ the checks

#[derive(Default)]
struct Figures {
    cases: AtomicUsize,
    rejected_by_parse: AtomicUsize,
    rejected_by_plan: AtomicUsize,
    planned: AtomicUsize,
    statements: AtomicUsize,
}

impl Figures {
    fn report(&self, name: &str) {
        println!(
            "fuzz_config {name}: {} cases, {} rejected by Config::parse, {} rejected by build_plan, {} planned, {} SQL statements checked",
            self.cases.load(Ordering::Relaxed),
            self.rejected_by_parse.load(Ordering::Relaxed),
            self.rejected_by_plan.load(Ordering::Relaxed),
            self.planned.load(Ordering::Relaxed),
            self.statements.load(Ordering::Relaxed),
        );
    }
}

/// Whether an error path names a place in the input: a chain of existing
/// keys and indexes, possibly ending in a key the parser requires (which is
/// then missing, or lives under a string spelling like `"embedding": "openai"`).
fn path_resolves(v: &Value, path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    // Keys may themselves contain '.' or '[': try every key that prefixes
    // the path before reading the path as an index.
    if let Value::Object(m) = v {
        for (k, child) in m {
            // A key that is not a plain word is shown as a JSON string.
            let plain = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            let shown = if plain {
                k.clone()
            } else {
                Value::String(k.clone()).to_string()
            };
            if let Some(rest) = path.strip_prefix(shown.as_str()) {
                if rest.is_empty() {
                    return true;
                }
                if let Some(rest) = rest.strip_prefix('.') {
                    if path_resolves(child, rest) {
                        return true;
                    }
                }
                if rest.starts_with('[') && path_resolves(child, rest) {
                    return true;
                }
            }
        }
    }
    if let Some(rest) = path.strip_prefix('[') {
        if let Some((idx, rest)) = rest.split_once(']') {
            if let Some(item) = idx
                .parse::<usize>()
                .ok()
                .and_then(|i| v.as_array().and_then(|a| a.get(i)))
            {
                if path_resolves(item, rest.strip_prefix('.').unwrap_or(rest)) {
                    return true;
                }
            }
        }
    }
    // Keys that are required (or read, or derived) here but absent.
    path.split('.').all(|segment| KEYS.contains(&segment))
}

fn check_error(input: &Value, e: &ConfigError) -> Result<(), TestCaseError> {
    let shown = e.to_string();
    prop_assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
    prop_assert!(!shown.trim().is_empty(), "empty Display: {e:?}");
    if e.path.is_empty() {
        prop_assert_eq!(&shown, &e.message);
    } else {
        prop_assert_eq!(shown, format!("{}: {}", e.path, e.message));
        prop_assert!(
            path_resolves(input, &e.path),
            "error path {:?} names nothing in the input: {e:?}\ninput: {input}",
            e.path
        );
    }
    Ok(())
}

// A small SQL lexer: enough to see where every quoted name starts and ends.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(String),
    Word(String),
    Punct(char),
}

fn lex(sql: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated quoted identifier in {sql:?}")),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        s.push(c);
                        i += 1;
                    }
                }
            }
            if s.is_empty() {
                return Err(format!("zero-length quoted identifier in {sql:?}"));
            }
            out.push(Tok::Ident(s));
        } else if c == '\'' || ((c == 'E' || c == 'e') && chars.get(i + 1) == Some(&'\'')) {
            let escapes = c != '\'';
            i += if escapes { 2 } else { 1 };
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string literal in {sql:?}")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if escapes => match chars.get(i + 1) {
                        Some(&n) => {
                            s.push(n);
                            i += 2;
                        }
                        None => return Err(format!("dangling backslash in {sql:?}")),
                    },
                    Some(&c) => {
                        s.push(c);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Lit(s));
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            return Err(format!("comment outside quotes in {sql:?}"));
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            return Err(format!("block comment outside quotes in {sql:?}"));
        } else if c == '$' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            // A bind parameter ($1): digits only, never a dollar quote.
            let mut j = i + 1;
            while chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
            }
            if chars.get(j) == Some(&'$') {
                return Err(format!("dollar quote outside quotes in {sql:?}"));
            }
            out.push(Tok::Word(chars[i..j].iter().collect()));
            i = j;
        } else if c == '$' {
            return Err(format!(
                "bare $ (dollar quoting or parameter) outside quotes in {sql:?}"
            ));
        } else if c.is_ascii_punctuation() {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            return Err(format!("character {c:?} outside quotes in {sql:?}"));
        }
    }
    Ok(out)
}

/// Every piece of SQL text a plan produces, tagged with whether it is a
/// PL/pgSQL body (which may hold several statements).
fn sql_of(plan: &Plan, source: &SourceTable) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    out.extend(plan.create_all());
    out.push(plan.queue_plain.clone());
    out.extend(plan.queue_bulk.iter().cloned());
    out.extend(plan.after_queue.iter().cloned());
    let src = regclass_text(&source.schema, &source.name);
    out.extend(plan.shared_grants.iter().map(|g| g.grant_sql(&src)));
    out.extend(plan.shared_grants.iter().map(|g| g.revoke_sql(&src)));
    out.extend(plan.as_owner.iter().cloned());
    out.extend(plan.index.iter().cloned());
    let queues = [plan.queue.clone(), plan.failed_queue.clone()];
    let triggers: Vec<(String, String)> = ["", "_upd", "_truncate", "_stmt"]
        .iter()
        .map(|s| (src.clone(), format!("{}{s}", plan.trigger_name)))
        .collect();
    out.extend(drop_sql(
        &triggers,
        &queues,
        plan.view.as_ref(),
        plan.store.as_ref(),
    ));
    out.extend(drop_sql(&[], &queues, None, None));
    // What the trigger function runs for this vectorizer.
    let keys: Vec<KeyColumn> = source
        .primary_key
        .iter()
        .map(|k| KeyColumn::from(source.column(k).unwrap()))
        .collect();
    let statements = trigger_statements(
        &src,
        &regclass_text(&plan.queue.schema, &plan.queue.name),
        plan.store
            .as_ref()
            .map(|s| regclass_text(&s.schema, &s.name))
            .as_deref(),
        &keys,
    );
    out.extend([
        statements.enqueue,
        statements.dequeue,
        statements.truncate,
        statements.orphans,
        statements.enqueue_many,
        statements.dequeue_many,
    ]);
    out.extend(statements.forget_store);
    out.extend(statements.forget_store_many);
    out
}

struct Lexed {
    words: BTreeSet<String>,
    idents: BTreeSet<String>,
    body_words: BTreeSet<String>,
}

/// Lex every statement; a statement may not hold a `;` outside quotes, and
/// a function body (the literal after `AS`) is lexed in turn.
fn lex_plan(plan: &Plan, source: &SourceTable) -> Result<(Lexed, usize), String> {
    let mut lexed = Lexed {
        words: BTreeSet::new(),
        idents: BTreeSet::new(),
        body_words: BTreeSet::new(),
    };
    let statements = sql_of(plan, source);
    for sql in &statements {
        let toks = lex(sql)?;
        for (i, t) in toks.iter().enumerate() {
            match t {
                Tok::Punct(';') => return Err(format!("second statement in {sql:?}")),
                Tok::Word(w) => {
                    lexed.words.insert(w.to_ascii_uppercase());
                }
                Tok::Ident(s) => {
                    lexed.idents.insert(s.clone());
                }
                Tok::Lit(body) if i > 0 && toks[i - 1] == Tok::Word("AS".into()) => {
                    for t in lex(body).map_err(|e| format!("in function body: {e}"))? {
                        match t {
                            Tok::Word(w) => {
                                lexed.body_words.insert(w.to_ascii_uppercase());
                            }
                            Tok::Ident(s) => {
                                lexed.idents.insert(s);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for t in lex(&plan.ddl_search_path)? {
        match t {
            Tok::Ident(s) => {
                lexed.idents.insert(s);
            }
            Tok::Punct(',') => {}
            // The fixed path: nothing but the system schemas.
            Tok::Word(w) if w == "pg_catalog" || w == "pg_temp" => {}
            other => {
                return Err(format!(
                    "unexpected {other:?} in ddl_search_path {:?}",
                    plan.ddl_search_path
                ))
            }
        }
    }
    Ok((lexed, statements.len()))
}

/// The bare words the generator writes when every name is ordinary: the
/// SQL vocabulary. Computed from plans over the blog table so it follows
/// the generator as it changes.
fn vocabulary() -> &'static (BTreeSet<String>, BTreeSet<String>) {
    use std::sync::OnceLock;
    static V: OnceLock<(BTreeSet<String>, BTreeSet<String>)> = OnceLock::new();
    V.get_or_init(|| {
        let blog = fixed_sources().remove(0).table;
        // Two key columns, so the key conditions' AND is written too.
        let mut composite = blog.clone();
        composite.primary_key.push("views".into());
        let env = Environment {
            vector_schema: "public".into(),
            has_vectorscale: true,
            has_timescaledb: true,
        };
        let base = json!({
            "source": "blog", "name": "n",
            "loading": {"implementation": "column", "column_name": "content"},
            "embedding": {"implementation": "openai", "model": "m", "dimensions": 3},
            "formatting": {"implementation": "python_template", "template": "$title $chunk"},
            "grant_to": ["worker"],
        });
        let mut column = base.clone();
        column["destination"] = json!({"implementation": "column", "embedding_column": "emb"});
        column["chunking"] = json!("none");
        column["enqueue_existing"] = json!(false);
        let mut words = BTreeSet::new();
        let mut body = BTreeSet::new();
        for v in [base, column] {
            for table in [&blog, &composite] {
                let config = Config::parse(&v).expect("vocabulary config parses");
                let plan = build_plan(
                    &config,
                    &Context {
                        source: table,
                        env: &env,
                        id: 1,
                    },
                )
                .expect("vocabulary config plans");
                let (l, _) = lex_plan(&plan, table).expect("vocabulary plan lexes");
                words.extend(l.words);
                body.extend(l.body_words);
            }
        }
        (words, body)
    })
}

fn type_words(source: &SourceTable) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut words = BTreeSet::new();
    let mut idents = BTreeSet::new();
    for c in &source.columns {
        for t in lex(&c.type_sql).expect("fake type_sql lexes") {
            match t {
                Tok::Word(w) => {
                    words.insert(w.to_ascii_uppercase());
                }
                Tok::Ident(s) => {
                    idents.insert(s);
                }
                _ => {}
            }
        }
    }
    (words, idents)
}

fn check_plan(
    plan: &Plan,
    source: &SourceTable,
    env: &Environment,
    figures: &Figures,
) -> Result<(), TestCaseError> {
    // The stored config is the typed model's serialisation: reading it back
    // into the model and writing it again gives the same text.
    let typed = Evaluated::from_value(&plan.config).map_err(TestCaseError::fail)?;
    prop_assert_eq!(typed.to_value().to_string(), plan.config.to_string());
    let (lexed, n) = lex_plan(plan, source).map_err(TestCaseError::fail)?;
    figures.statements.fetch_add(n, Ordering::Relaxed);
    let (vocab, body_vocab) = vocabulary();
    let (type_words, type_idents) = type_words(source);
    for w in &lexed.words {
        let numeric = w.chars().all(|c| c.is_ascii_digit());
        prop_assert!(
            numeric || vocab.contains(w) || type_words.contains(w),
            "bare word {w:?} outside quotes: a name leaked out of its quotes\n{:#?}",
            sql_of(plan, source)
        );
    }
    for w in &lexed.body_words {
        let numeric = w.chars().all(|c| c.is_ascii_digit());
        prop_assert!(
            numeric || body_vocab.contains(w) || type_words.contains(w),
            "bare word {w:?} in the trigger body\n{:#?}",
            plan.create
        );
    }

    // Names the plan must carry, each as one whole quoted identifier.
    let mut expected: Vec<String> = vec![
        source.schema.clone(),
        source.name.clone(),
        source.owner.clone(),
        plan.queue.schema.clone(),
        plan.queue.name.clone(),
        plan.failed_queue.name.clone(),
        plan.trigger_name.clone(),
        env.vector_schema.clone(),
    ];
    expected.extend(source.primary_key.iter().cloned());
    for r in plan.store.iter().chain(plan.view.iter()) {
        expected.push(r.schema.clone());
        expected.push(r.name.clone());
    }
    expected.extend(plan.embedding_column.iter().cloned());
    expected.extend(
        plan.config["grant_to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string()),
    );
    for name in &expected {
        prop_assert!(
            lexed.idents.contains(name),
            "name {name:?} does not appear as a whole quoted identifier\n{:#?}",
            sql_of(plan, source)
        );
    }
    // And nothing is quoted that is not a whole name.
    let mut known: BTreeSet<String> = expected.into_iter().collect();
    known.extend(source.columns.iter().map(|c| c.name.clone()));
    known.extend(source.columns.iter().map(|c| c.eq_schema.clone()));
    known.extend(source.columns.iter().map(|c| c.type_schema.clone()));
    known.extend(type_idents);
    let base = plan.trigger_name.clone();
    known.extend([
        format!("{base}_upd"),
        format!("{base}_truncate"),
        format!("{base}_stmt"),
        "vector".into(),
        "pg_catalog".into(),
        "pg_temp".into(),
        // Every trigger calls the extension's one trigger function.
        "migrate".into(),
        "_vectorizer_trigger".into(),
    ]);
    for ident in &lexed.idents {
        prop_assert!(
            known.contains(ident),
            "quoted identifier {ident:?} is not one of the plan's names\n{:#?}",
            sql_of(plan, source)
        );
    }
    Ok(())
}

/// Full pipeline for one input.
fn check_case(
    input: &Value,
    source: &SourceTable,
    env: &Environment,
    figures: &Figures,
) -> Result<(), TestCaseError> {
    figures.cases.fetch_add(1, Ordering::Relaxed);
    let config = match Config::parse(input) {
        Err(e) => {
            figures.rejected_by_parse.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(
                e.kind,
                ErrorKind::InvalidConfig,
                "Config::parse only reports 22023: {:?}",
                e
            );
            return check_error(input, &e);
        }
        Ok(c) => c,
    };
    let ctx = Context {
        source,
        env,
        id: 42,
    };
    let plan = match build_plan(&config, &ctx) {
        Err(e) => {
            figures.rejected_by_plan.fetch_add(1, Ordering::Relaxed);
            prop_assert!(
                matches!(
                    e.kind,
                    ErrorKind::InvalidConfig
                        | ErrorKind::ObjectState
                        | ErrorKind::UndefinedColumn
                        | ErrorKind::DatatypeMismatch
                        | ErrorKind::DuplicateColumn
                        | ErrorKind::FeatureNotSupported
                ),
                "unexpected kind from build_plan: {:?}",
                e
            );
            prop_assert!(!e.path.is_empty(), "build_plan error without a path: {e:?}");
            return check_error(input, &e);
        }
        Ok(p) => p,
    };
    figures.planned.fetch_add(1, Ordering::Relaxed);
    check_plan(&plan, source, env, figures)?;

    // The stored config is itself a valid config that evaluates to itself.
    let again = Config::parse(&plan.config).map_err(|e| {
        TestCaseError::fail(format!(
            "stored config does not parse again: {e}\n{}",
            plan.config
        ))
    })?;
    let replanned = build_plan(&again, &ctx).map_err(|e| {
        TestCaseError::fail(format!(
            "stored config does not plan again: {e}\n{}",
            plan.config
        ))
    })?;
    prop_assert_eq!(&replanned.config, &plan.config);
    prop_assert_eq!(&replanned.create_all(), &plan.create_all());
    prop_assert_eq!(&replanned.after_queue, &plan.after_queue);
    Ok(())
}

fn blog_source() -> SourceTable {
    fixed_sources().remove(0).table
}

fn plain_env() -> Environment {
    Environment {
        vector_schema: "public".into(),
        has_vectorscale: false,
        has_timescaledb: false,
    }
}

#[test]
fn random_json_trees() {
    let figures = Figures::default();
    let source = blog_source();
    let env = plain_env();
    runner()
        .run(&arb_tree_config(), |v| {
            check_case(&v, &source, &env, &figures)
        })
        .unwrap();
    figures.report("random_json_trees");
    assert_eq!(figures.cases.load(Ordering::Relaxed), cases() as usize);
}

#[test]
fn mutated_valid_configs() {
    let figures = Figures::default();
    let strategy = (arb_source(), arb_env()).prop_flat_map(|(source, env)| {
        let configs = arb_valid_config(&source);
        (
            Just(source),
            Just(env),
            configs,
            proptest::collection::vec(arb_mutation(), 1..5),
        )
    });
    runner()
        .run(&strategy, |(source, env, config, mutations)| {
            let mutated = mutations.iter().fold(config, apply);
            check_case(&mutated, &source.table, &env, &figures)
        })
        .unwrap();
    figures.report("mutated_valid_configs");
    assert_eq!(figures.cases.load(Ordering::Relaxed), cases() as usize);
    // The mutations must leave enough configs valid to exercise the planner.
    assert!(figures.planned.load(Ordering::Relaxed) > 0);
}

#[test]
fn generated_valid_configs() {
    let figures = Figures::default();
    let strategy = (arb_source(), arb_env()).prop_flat_map(|(source, env)| {
        let configs = arb_valid_config(&source);
        (Just(source), Just(env), configs)
    });
    runner()
        .run(&strategy, |(source, env, config)| {
            check_case(&config, &source.table, &env, &figures)
        })
        .unwrap();
    figures.report("generated_valid_configs");
    let planned = figures.planned.load(Ordering::Relaxed);
    // Most generated configs are valid; they are what reaches the SQL checks.
    assert!(
        planned * 2 > cases() as usize,
        "only {planned} of {} generated configs planned",
        cases()
    );
}

#[test]
fn the_lexer_catches_a_name_outside_its_quotes() {
    // The checks above are only worth something if they fail on broken quoting.
    assert!(lex("CREATE TABLE \"a\"; DROP TABLE t; --\" (x int)").is_err());
    assert!(lex("CREATE TABLE \"a").is_err());
    assert!(lex("SELECT 'it's'").is_err());
    assert!(lex("SELECT $$x$$").is_err());
    assert_eq!(
        lex("CREATE TABLE \"x\"\"; DROP\" (\"a\\b\" int) AS E'it''s \\\\'").unwrap(),
        vec![
            Tok::Word("CREATE".into()),
            Tok::Word("TABLE".into()),
            Tok::Ident("x\"; DROP".into()),
            Tok::Punct('('),
            Tok::Ident("a\\b".into()),
            Tok::Word("int".into()),
            Tok::Punct(')'),
            Tok::Word("AS".into()),
            Tok::Lit("it's \\".into()),
        ]
    );
    // A hostile name that lands outside quotes shows up as an unknown bare
    // word: the vocabulary holds SQL words only, never a name.
    let (vocab, body_vocab) = vocabulary();
    assert!(vocab.contains("CREATE") && vocab.contains("DROP") && vocab.contains("$1"));
    // (PUBLIC is not listed: it is a keyword in REVOKE … FROM PUBLIC.)
    for name in ["BLOG", "CONTENT", "TITLE", "WORKER", "MIGRATE", "N"] {
        assert!(
            !vocab.contains(name) && !body_vocab.contains(name),
            "{name} is a name, not SQL: {vocab:?}"
        );
    }
}

#[test]
fn mutations_and_paths_behave() {
    let v = json!({"a": {"b": [1, {"c": 2}]}, "x.y": 3});
    assert!(path_resolves(&v, "a.b[1].c"));
    // Keys that are not plain words appear as JSON strings in paths.
    assert!(path_resolves(&v, "\"x.y\""));
    assert!(path_resolves(&v, "a.b"));
    assert!(path_resolves(
        &json!({"p": {"[": 1, "a.b": {"c]": 2}}}),
        "p.\"[\""
    ));
    assert!(path_resolves(
        &json!({"p": {"[": 1, "a.b": {"c]": 2}}}),
        "p.\"a.b\".\"c]\""
    ));
    assert!(!path_resolves(&v, "a.b[5]"));
    assert!(path_resolves(&v, "embedding"));
    assert!(!path_resolves(&v, "zz.qq"));
    let nested = apply(json!({"k": 1}), &Mutation::Nest(1, 3, true));
    assert_eq!(nested, json!({"k": [[[1]]]}));
    let deleted = apply(json!({"k": 1, "j": 2}), &Mutation::Delete(1));
    assert_eq!(deleted.as_object().unwrap().len(), 1);
}

#[test]
fn check_plan_fails_on_a_name_outside_its_quotes() {
    // Corrupt a correct plan the way a missing quote_ident would, and make
    // sure the checks used above notice.
    let source = fixed_sources().remove(1).table;
    let env = plain_env();
    let config = Config::parse(&json!({
        "source": "x",
        "loading": {"implementation": "column", "column_name": "co\"l'umn"},
        "embedding": {"implementation": "openai", "model": "m", "dimensions": 3},
        "destination": {"implementation": "table", "destination": "x\"; DROP TABLE t; --"},
    }))
    .unwrap();
    let plan = build_plan(
        &config,
        &Context {
            source: &source,
            env: &env,
            id: 1,
        },
    )
    .unwrap();
    let figures = Figures::default();
    assert!(check_plan(&plan, &source, &env, &figures).is_ok());

    let quoted = "\"x\"\"; DROP TABLE t; --_store\"";
    let leaked = "\"x\"; DROP TABLE t; --_store\"";
    let at = plan
        .store_sql
        .iter()
        .position(|s| s.contains(quoted))
        .expect("the store table is created");
    let mut broken = plan.clone();
    broken.store_sql[at] = broken.store_sql[at].replace(quoted, leaked);
    assert!(check_plan(&broken, &source, &env, &figures).is_err());

    // A name split over two quoted identifiers is caught too.
    let mut split = plan.clone();
    split.store_sql[at] = split.store_sql[at].replace(quoted, "\"x\" \"; DROP TABLE t; --_store\"");
    assert!(check_plan(&split, &source, &env, &figures).is_err());

    // And so is a bare (unquoted) ordinary name.
    let mut bare = plan.clone();
    let q = "\"migrate\".\"_vectorizer_q_failed_1\"";
    let i = bare.create.iter().position(|s| s.contains(q)).unwrap();
    bare.create[i] = bare.create[i].replace(q, "migrate._vectorizer_q_failed_1");
    assert!(check_plan(&bare, &source, &env, &figures).is_err());
}
