use serde_json::{json, Value};

use super::{build_plan, Context};
use crate::config::Config;
use crate::error::ErrorKind;
use crate::source::{Environment, SourceColumn, SourceTable, TypeCategory};

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

fn blog_table() -> SourceTable {
    SourceTable {
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
    }
}

fn env() -> Environment {
    Environment {
        vector_schema: "public".into(),
        has_vectorscale: false,
        has_timescaledb: false,
    }
}

fn blog() -> Value {
    json!({
        "source": "blog",
        "name": "blog_content_embedder",
        "destination": {"implementation": "table", "destination": "blog_embeddings"},
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
        "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
    })
}

fn plan(v: Value) -> Result<super::Plan, crate::ConfigError> {
    let config = Config::parse(&v)?;
    let source = blog_table();
    let env = env();
    build_plan(
        &config,
        &Context {
            source: &source,
            env: &env,
            id: 7,
        },
    )
}

fn patch(mut v: Value, key: &str, value: Value) -> Value {
    let (parent, k) = key.rsplit_once('/').unwrap();
    let t = if parent.is_empty() {
        &mut v
    } else {
        v.pointer_mut(parent).unwrap()
    };
    t.as_object_mut().unwrap().insert(k.into(), value);
    v
}

#[test]
fn names_follow_pgai() {
    let p = plan(blog()).unwrap();
    assert_eq!(p.store.as_ref().unwrap().name, "blog_embeddings_store");
    assert_eq!(p.view.as_ref().unwrap().name, "blog_embeddings");
    assert_eq!(p.queue.name, "_vectorizer_q_7");
    assert_eq!(p.failed_queue.name, "_vectorizer_q_failed_7");
    assert_eq!(p.queue.schema, "migrate");
    assert_eq!(
        p.config["destination"]["target_table"],
        "blog_embeddings_store"
    );
    assert_eq!(p.config["queue_table"], "_vectorizer_q_7");

    let mut unnamed = blog();
    unnamed.as_object_mut().unwrap().remove("name");
    unnamed.as_object_mut().unwrap().remove("destination");
    let p = plan(unnamed).unwrap();
    assert_eq!(p.name, "public_blog_embedding_store");
    assert_eq!(p.view.unwrap().name, "blog_embedding");
}

#[test]
fn store_view_queue_and_trigger_sql() {
    let p = plan(blog()).unwrap();
    let sql = [
        p.create_all(),
        vec![p.queue_plain.clone()],
        p.after_queue.clone(),
    ]
    .concat()
    .join(";\n");
    assert!(sql.contains("CREATE TABLE \"public\".\"blog_embeddings_store\" (embedding_uuid pg_catalog.uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid() PRIMARY KEY, \"id\" integer NOT NULL, chunk_seq pg_catalog.int4 NOT NULL, chunk pg_catalog.text NOT NULL, embedding \"public\".\"vector\"(768) NOT NULL, UNIQUE (\"id\", chunk_seq))"), "{sql}");
    // The update trigger fires only when a column the vectorizer reads changes.
    // Compared by binary image: no `=` operator is looked up by name.
    assert!(sql.contains("AFTER UPDATE OF \"id\", \"title\", \"content\" ON \"public\".\"blog\" FOR EACH ROW WHEN (NOT pg_catalog.record_image_eq(ROW(OLD.\"id\", OLD.\"title\", OLD.\"content\"), ROW(NEW.\"id\", NEW.\"title\", NEW.\"content\")))"), "{sql}");
    assert!(!sql.contains("IS DISTINCT FROM"), "{sql}");
    assert!(!sql.contains("OLD.\"views\""));
    assert!(sql.contains("ALTER TABLE \"migrate\".\"_vectorizer_q_7\" OWNER TO \"alice\""));
    // A plain table's keys are bulk-copied; a partitioned one's are inserted
    // as the owner, reading every partition.
    assert!(p.as_owner.is_empty());
    let mut partitioned = blog_table();
    partitioned.partitioned = true;
    let config = Config::parse(&blog()).unwrap();
    let pp = build_plan(
        &config,
        &Context {
            source: &partitioned,
            env: &env(),
            id: 7,
        },
    )
    .unwrap();
    assert!(pp.queue_bulk.is_empty());
    assert_eq!(pp.as_owner[0], "INSERT INTO \"migrate\".\"_vectorizer_q_7\" (\"id\") SELECT \"id\" FROM \"public\".\"blog\"");
    assert_eq!(p.queue_bulk[0], "CREATE TABLE \"migrate\".\"_vectorizer_q_7\" AS SELECT \"id\", pg_catalog.now() AS queued_at, 0::pg_catalog.int4 AS loading_retries, NULL::pg_catalog.timestamptz AS loading_retry_after FROM ONLY \"public\".\"blog\"");
}

#[test]
fn hostile_identifiers_stay_inside_quotes() {
    let v = patch(
        blog(),
        "/destination/destination",
        json!("x\"; DROP TABLE t; --"),
    );
    let p = plan(v).unwrap();
    let sql = p.create_all().join("\n");
    assert!(sql.contains("\"x\"\"; DROP TABLE t; --_store\""));
    // The trigger's statements name the queue as one quoted identifier.
    let t = super::trigger_statements(
        "\"public\".\"blog\"",
        &crate::ident::qualified("migrate", "q\"; DROP TABLE t; --"),
        None,
        &[],
    );
    assert!(
        t.truncate
            .ends_with("\"migrate\".\"q\"\"; DROP TABLE t; --\""),
        "{}",
        t.truncate
    );
}

#[test]
fn enqueue_existing_false_only_indexes_the_queue() {
    let p = plan(patch(blog(), "/enqueue_existing", json!(false))).unwrap();
    assert!(p.as_owner.is_empty() && p.queue_bulk.is_empty());
    assert_eq!(p.index.len(), 2);
}

#[test]
fn grants_are_exactly_the_listed_privileges() {
    let p = plan(patch(blog(), "/grant_to", json!(["worker"]))).unwrap();
    let all = [
        p.store_sql.clone(),
        p.view_sql.clone(),
        p.after_queue.clone(),
    ]
    .concat();
    let grants: Vec<&String> = all.iter().filter(|s| s.starts_with("GRANT")).collect();
    assert_eq!(grants.len(), 3, "{grants:?}");
    // USAGE on the two schemas and SELECT on the source are shared
    // objects: granted only when missing, recorded, taken back by drop.
    assert_eq!(p.shared_grants.len(), 3);
    let source = super::SharedGrant {
        target: super::GrantTarget::Source,
        role: "worker".into(),
    };
    assert!(p.shared_grants.contains(&source));
    assert_eq!(
        source.grant_sql("\"public\".\"blog\""),
        "GRANT SELECT ON \"public\".\"blog\" TO \"worker\""
    );
    assert_eq!(
        source.revoke_sql("\"public\".\"blog\""),
        "REVOKE SELECT ON \"public\".\"blog\" FROM \"worker\""
    );
    for g in &p.shared_grants {
        assert_eq!(
            super::SharedGrant::from_json(&g.to_json()).as_ref(),
            Some(g)
        );
    }
}

#[test]
fn column_destination_adds_a_column_and_no_store() {
    let v = patch(
        patch(
            blog(),
            "/destination",
            json!({"implementation": "column", "embedding_column": "emb"}),
        ),
        "/chunking",
        json!("none"),
    );
    let mut v = v;
    v.as_object_mut().unwrap().remove("name");
    let p = plan(v).unwrap();
    assert!(p.store.is_none() && p.view.is_none());
    assert_eq!(p.name, "public_blog_emb");
    assert!(p
        .create_all()
        .iter()
        .any(|s| s
            == "ALTER TABLE \"public\".\"blog\" ADD COLUMN \"emb\" \"public\".\"vector\"(768)"));
}

#[test]
fn checks_against_the_source_table() {
    let cases: Vec<(Value, ErrorKind, &str)> = vec![
        (patch(blog(), "/loading/column_name", json!("body")), ErrorKind::UndefinedColumn, "loading.column_name: column \"body\" does not exist in public.blog"),
        (patch(blog(), "/loading/column_name", json!("views")), ErrorKind::DatatypeMismatch, "loading.column_name: expected a text, varchar, char or bytea column, \"views\" is integer"),
        (patch(blog(), "/formatting/template", json!("$author: $chunk")), ErrorKind::UndefinedColumn, "formatting.template: $author refers to column \"author\""),
        (patch(blog(), "/parsing", json!("pymupdf")), ErrorKind::InvalidConfig, "parsing: parsing \"pymupdf\" needs a bytea column"),
        (patch(patch(blog(), "/loading/column_name", json!("pdf")), "/parsing", json!("none")), ErrorKind::InvalidConfig, "parsing: parsing \"none\" cannot read the bytea column"),
        (patch(blog(), "/indexing", json!("diskann")), ErrorKind::FeatureNotSupported, "indexing.implementation: diskann indexing needs the vectorscale extension"),
        (patch(blog(), "/scheduling", json!("timescaledb")), ErrorKind::FeatureNotSupported, "scheduling.implementation: timescaledb scheduling needs"),
        (patch(patch(blog(), "/destination", json!({"implementation": "column", "embedding_column": "title"})), "/chunking", json!("none")), ErrorKind::DuplicateColumn, "destination.embedding_column: column \"title\" already exists"),
        (patch(blog(), "/destination/destination", json!("d".repeat(60))), ErrorKind::InvalidConfig, "destination.destination: the derived name"),
    ];
    for (v, kind, expected) in cases {
        let e = plan(v).unwrap_err();
        assert_eq!(e.kind, kind, "{e}");
        assert!(
            e.to_string().starts_with(expected),
            "got {e}, expected {expected}"
        );
    }
}

#[test]
fn a_table_without_primary_key_is_rejected() {
    let config = Config::parse(&blog()).unwrap();
    let mut source = blog_table();
    source.primary_key.clear();
    let e = build_plan(
        &config,
        &Context {
            source: &source,
            env: &env(),
            id: 1,
        },
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ObjectState);
    assert_eq!(
        e.to_string(),
        "source: table public.blog has no primary key"
    );
}

#[test]
fn key_equality_is_the_pinned_operator_with_casts() {
    let mut source = blog_table();
    let id = source.columns.iter_mut().find(|c| c.name == "id").unwrap();
    id.type_sql = "character varying(20)".into();
    id.eq_schema = "pg_catalog".into();
    id.eq_type = Some("pg_catalog.text".into());
    let env = env();
    let config = Config::parse(&blog()).unwrap();
    let p = build_plan(
        &config,
        &Context {
            source: &source,
            env: &env,
            id: 7,
        },
    )
    .unwrap();
    let sql = p.create_all().join(";\n");
    // The view join names the operator class's operator and casts both
    // sides to its input type; so do the trigger's statements.
    assert!(
        sql.contains(
            "ON (t.\"id\")::pg_catalog.text OPERATOR(\"pg_catalog\".=) (s.\"id\")::pg_catalog.text"
        ),
        "{sql}"
    );
    let key = crate::KeyColumn::from(source.column("id").unwrap());
    let t = super::trigger_statements(
        "\"public\".\"docs\"",
        "\"migrate\".\"q\"",
        Some("\"public\".\"s\""),
        &[key],
    );
    let m = "(\"id\")::pg_catalog.text OPERATOR(\"pg_catalog\".=) ($1)::pg_catalog.text";
    assert_eq!(t.dequeue, format!("DELETE FROM \"migrate\".\"q\" WHERE {m} AND NOT EXISTS (SELECT FROM \"public\".\"docs\" WHERE {m})"));
    assert_eq!(
        t.forget_store,
        Some(format!("DELETE FROM \"public\".\"s\" WHERE {m}"))
    );
    assert_eq!(t.enqueue, "INSERT INTO \"migrate\".\"q\" AS q (\"id\") VALUES ($1) ON CONFLICT (\"id\") DO UPDATE SET queued_at = q.queued_at WHERE false");
    assert_eq!(t.truncate, "TRUNCATE \"public\".\"s\", \"migrate\".\"q\"");
    // The same for arrays of keys, with the pinned operator.
    let k = |t: &str| {
        format!("({t}.\"id\")::pg_catalog.text OPERATOR(\"pg_catalog\".=) (k.k1)::pg_catalog.text")
    };
    let rows = "ROWS FROM (pg_catalog.unnest($1)) AS k(k1)";
    assert_eq!(t.enqueue_many, format!("INSERT INTO \"migrate\".\"q\" AS q (\"id\") SELECT k.k1 FROM {rows} ON CONFLICT (\"id\") DO UPDATE SET queued_at = q.queued_at WHERE false"));
    assert_eq!(t.dequeue_many, format!("DELETE FROM \"migrate\".\"q\" q USING {rows} WHERE {} AND NOT EXISTS (SELECT FROM \"public\".\"docs\" s WHERE {})", k("q"), k("s")));
    assert_eq!(
        t.forget_store_many,
        Some(format!(
            "DELETE FROM \"public\".\"s\" t USING {rows} WHERE {}",
            k("t")
        ))
    );
    assert_eq!(p.ddl_search_path, "pg_catalog, pg_temp");
}

#[test]
fn every_trigger_calls_the_extension_function_with_the_id() {
    let p = plan(blog()).unwrap();
    let triggers: Vec<&String> = p
        .create
        .iter()
        .filter(|s| s.starts_with("CREATE TRIGGER"))
        .collect();
    assert_eq!(triggers.len(), 4);
    assert!(triggers.iter().any(|t| t.starts_with(
        "CREATE TRIGGER \"_vectorizer_src_trg_7_stmt\" AFTER INSERT OR DELETE OR UPDATE OF "
    ) && t.contains(" FOR EACH STATEMENT ")));
    for t in triggers {
        assert!(
            t.ends_with("EXECUTE FUNCTION \"migrate\".\"_vectorizer_trigger\"('7')"),
            "{t}"
        );
    }
    assert!(!p.create.iter().any(|s| s.contains("CREATE FUNCTION")));
}

#[test]
fn without_overlaps_key_is_refused() {
    let mut source = blog_table();
    source.primary_key_btree = false;
    let env = env();
    let config = Config::parse(&blog()).unwrap();
    let e = build_plan(
        &config,
        &Context {
            source: &source,
            env: &env,
            id: 7,
        },
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::FeatureNotSupported);
    assert_eq!(e.path, "source");
}

#[test]
fn each_leaf_partition_gets_a_truncate_trigger() {
    let mut source = blog_table();
    source.partitioned = true;
    source.partitions = vec!["public.blog_2024".into(), "\"odd\"\"name\"".into()];
    let env = env();
    let config = Config::parse(&blog()).unwrap();
    let p = build_plan(
        &config,
        &Context {
            source: &source,
            env: &env,
            id: 7,
        },
    )
    .unwrap();
    let leaf: Vec<&String> = p
        .create
        .iter()
        .filter(|s| {
            s.contains("AFTER TRUNCATE ON public.blog_2024") || s.contains("ON \"odd\"\"name\"")
        })
        .collect();
    assert_eq!(leaf.len(), 2, "{:#?}", p.create);
    assert!(leaf[0]
        .ends_with("FOR EACH STATEMENT EXECUTE FUNCTION \"migrate\".\"_vectorizer_trigger\"('7')"));
    let key = crate::KeyColumn::from(source.column("id").unwrap());
    let t = super::trigger_statements(
        "\"public\".\"blog\"",
        "\"migrate\".\"q\"",
        Some("\"public\".\"s\""),
        &[key],
    );
    assert_eq!(t.orphans, "WITH gone AS (DELETE FROM \"public\".\"s\" t WHERE NOT EXISTS (SELECT FROM \"public\".\"blog\" s WHERE t.\"id\" OPERATOR(\"pg_catalog\".=) s.\"id\")) DELETE FROM \"migrate\".\"q\" q WHERE NOT EXISTS (SELECT FROM \"public\".\"blog\" s WHERE q.\"id\" OPERATOR(\"pg_catalog\".=) s.\"id\")");
}

#[test]
fn a_queue_in_schema_migrate_keeps_its_default_name() {
    use super::{check_queue_place, Relation};
    let q = |schema: &str, name: &str| Relation {
        path: "queue_table".into(),
        schema: schema.into(),
        name: name.into(),
    };
    assert!(check_queue_place(&q("migrate", "_vectorizer_q_7"), Some(7)).is_ok());
    assert!(check_queue_place(&q("migrate", "_vectorizer_q_7"), None).is_ok());
    assert!(check_queue_place(&q("public", "_vectorizer_disabled"), Some(7)).is_ok());
    let e = check_queue_place(&q("migrate", "_vectorizer_disabled"), Some(7)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    assert_eq!(
        e.to_string(),
        "queue_table: expected the default name \"_vectorizer_q_7\" in schema \"migrate\", got \"_vectorizer_disabled\""
    );
    assert!(check_queue_place(&q("migrate", "_vectorizer_q_8"), Some(7)).is_err());
    for name in [
        "_vectorizer_q_",
        "_vectorizer_q_1x",
        "_vectorizer_q_failed_1",
    ] {
        assert!(
            check_queue_place(&q("migrate", name), None).is_err(),
            "{name}"
        );
    }
}

#[test]
fn a_config_too_deep_to_read_back_is_refused() {
    let nested = |depth: usize| {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    };
    let ollama = |depth: usize| {
        patch(
            blog(),
            "/embedding",
            json!({"implementation": "ollama", "model": "m", "dimensions": 3, "options": {"o": nested(depth)}}),
        )
    };
    // config, embedding, options, then the arrays: 3 + depth levels.
    assert!(plan(ollama(97)).is_ok());
    let e = plan(ollama(98)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    assert_eq!(
        e.to_string(),
        format!(
            "embedding.options.o{}: the config is nested more than 100 levels deep here",
            "[0]".repeat(97)
        )
    );
}
