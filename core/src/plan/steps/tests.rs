use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::plan::{build_plan, Context};
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

fn table(partitioned: bool) -> SourceTable {
    SourceTable {
        schema: "public".into(),
        name: "blog".into(),
        qualified_name: "public.blog".into(),
        owner: "alice".into(),
        columns: vec![
            col("id", "integer", TypeCategory::Other),
            col("title", "text", TypeCategory::Text),
            col("content", "text", TypeCategory::Text),
        ],
        primary_key: vec!["id".into()],
        partitioned,
        primary_key_btree: true,
        partitions: vec![],
    }
}

fn config(extra: Value) -> Config {
    let mut v = json!({
        "source": "blog",
        "name": "blog_content_embedder",
        "destination": {"implementation": "table", "destination": "blog_embeddings"},
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
        "formatting": {"implementation": "python_template", "template": "$title - $chunk"},
        "grant_to": ["bob"]
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    Config::parse(&v).unwrap()
}

fn plan_of(source: &SourceTable, extra: Value) -> Plan {
    let env = Environment {
        vector_schema: "public".into(),
        has_vectorscale: false,
        has_timescaledb: false,
    };
    build_plan(
        &config(extra),
        &Context {
            source,
            env: &env,
            id: 7,
        },
    )
    .unwrap()
}

fn roles(steps: &[Step]) -> Vec<(Role, bool, &str)> {
    steps
        .iter()
        .map(|s| (s.role, s.row_security_off, s.purpose))
        .collect()
}

const EXT: Role = Role::ExtensionOwner;
const OWNER: Role = Role::SourceOwner { restricted: true };

#[test]
fn create_runs_ddl_as_the_extension_owner_and_bulk_fills_a_plain_table() {
    let source = table(false);
    let plan = plan_of(&source, json!({}));
    let steps = create_steps(&plan, &fresh_destination(&plan), &["GRANT x".into()]);
    assert!(steps
        .iter()
        .all(|s| s.role == EXT && !s.row_security_off && s.search_path == plan.ddl_search_path));
    assert_eq!(plan.ddl_search_path, FIXED_SEARCH_PATH);
    let purposes: Vec<&str> = steps.iter().map(|s| s.purpose).collect();
    let mut order = purposes.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            "create the destination",
            "create the failed queue and triggers",
            "create the queue filled with every key",
            "give the queues to the owner, grant them",
            "grant shared privileges a role lacks",
            "index the queues",
        ]
    );
    // The destination comes first, the queue's primary key last.
    assert!(steps[0]
        .sql
        .starts_with("CREATE TABLE \"public\".\"blog_embeddings_store\""));
    assert_eq!(
        steps.last().unwrap().sql,
        "CREATE INDEX ON \"migrate\".\"_vectorizer_q_failed_7\" (\"id\")"
    );
    let triggers = steps
        .iter()
        .position(|s| s.sql.contains("CREATE TRIGGER"))
        .unwrap();
    let queue = steps
        .iter()
        .position(|s| {
            s.sql
                .starts_with("CREATE TABLE \"migrate\".\"_vectorizer_q_7\" AS")
        })
        .unwrap();
    assert!(
        triggers < queue,
        "triggers lock the source before it is read"
    );
}

#[test]
fn create_queues_a_partitioned_tables_rows_as_the_owner_with_row_security_off() {
    let source = table(true);
    let plan = plan_of(&source, json!({}));
    let steps = create_steps(&plan, &fresh_destination(&plan), &[]);
    let filled: Vec<&Step> = steps.iter().filter(|s| s.role != EXT).collect();
    assert_eq!(filled.len(), 1);
    assert_eq!(filled[0].role, OWNER);
    assert!(filled[0].row_security_off);
    assert_eq!(filled[0].search_path, FIXED_SEARCH_PATH);
    assert_eq!(
        filled[0].sql,
        "INSERT INTO \"migrate\".\"_vectorizer_q_7\" (\"id\") SELECT \"id\" FROM \"public\".\"blog\""
    );
    // The empty queue exists before, its index is built after.
    let at = |p: &str| steps.iter().position(|s| s.purpose == p).unwrap();
    assert!(at("create the empty queue") < at("queue the existing rows"));
    assert!(at("queue the existing rows") < at("index the queues"));
}

#[test]
fn create_without_existing_rows_queues_nothing() {
    let source = table(true);
    let plan = plan_of(&source, json!({"enqueue_existing": false}));
    let steps = create_steps(&plan, &fresh_destination(&plan), &[]);
    assert!(steps.iter().all(|s| s.role == EXT));
    assert!(steps.iter().any(|s| s.purpose == "create the empty queue"));
}

#[test]
fn drop_takes_back_grants_before_removing_objects() {
    let q = Relation {
        path: String::new(),
        schema: "migrate".into(),
        name: "_vectorizer_q_7".into(),
    };
    let d = drop_steps(
        &["REVOKE SELECT ON \"public\".\"blog\" FROM \"bob\"".into()],
        &[("\"public\".\"blog\"".into(), "_vectorizer_src_trg_7".into())],
        &[q],
        None,
        None,
    );
    assert_eq!(
        roles(&d.revoke),
        [(EXT, false, "take back what create granted")]
    );
    assert_eq!(
        d.remove.iter().map(|s| s.sql.as_str()).collect::<Vec<_>>(),
        [
            "DROP TRIGGER IF EXISTS \"_vectorizer_src_trg_7\" ON \"public\".\"blog\"",
            "DROP TABLE IF EXISTS \"migrate\".\"_vectorizer_q_7\"",
        ]
    );
    assert!(d
        .remove
        .iter()
        .all(|s| s.role == EXT && s.search_path == FIXED_SEARCH_PATH));
}

fn alter_of<'a>(
    plan: &'a Plan,
    old: &'a Plan,
    source: &'a SourceTable,
    reembed: bool,
    clears: bool,
    rebuild: bool,
) -> Alter<'a> {
    Alter {
        id: 7,
        plan,
        source,
        vector_schema: "public",
        queue: &old.queue,
        failed_queue: &old.failed_queue,
        store: old.store.as_ref(),
        view: old.view.as_ref(),
        embedding_column: old.embedding_column.as_deref(),
        rebuild,
        clears,
        reembed,
        gone: &[],
        added: &[],
        revokes: &[],
        grants: &[],
    }
}

#[test]
fn alter_refills_the_queue_as_the_owner_last() {
    let source = table(false);
    let old = plan_of(&source, json!({}));
    let new = plan_of(&source, json!({"queue_table": "q_new"}));
    let a = alter_of(&new, &old, &source, true, true, false);
    let probe = reembed_probe(&a);
    assert_eq!(
        roles(&probe),
        [(OWNER, true, "refuse a policy hiding rows from the owner")]
    );
    assert_eq!(probe[0].sql, "SELECT FROM ONLY \"public\".\"blog\" LIMIT 0");
    let steps = alter_steps(&a);
    let tail: Vec<_> = roles(&steps).into_iter().rev().take(3).collect();
    assert_eq!(
        tail,
        [
            (OWNER, true, "queue every row again"),
            (OWNER, true, "empty the queues"),
            (OWNER, true, "empty the store"),
        ]
    );
    assert!(steps[..steps.len() - 3].iter().all(|s| s.role == EXT));
    assert_eq!(steps[0].purpose, "replace the triggers");
    assert!(steps[0]
        .sql
        .starts_with("CREATE OR REPLACE TRIGGER \"_vectorizer_src_trg_7\""));
    assert!(steps
        .iter()
        .any(|s| s.sql == "ALTER TABLE \"migrate\".\"_vectorizer_q_7\" RENAME TO \"q_new\""));
    assert!(steps.iter().any(|s| s.sql.starts_with(
        "INSERT INTO \"migrate\".\"q_new\" (\"id\") SELECT \"id\" FROM ONLY \"public\".\"blog\""
    )));
}

#[test]
fn alter_without_reembed_touches_no_rows() {
    let source = table(false);
    let plan = plan_of(&source, json!({}));
    let a = alter_of(&plan, &plan, &source, false, false, false);
    assert!(reembed_probe(&a).is_empty());
    let steps = alter_steps(&a);
    assert!(steps.iter().all(|s| s.role == EXT));
    assert!(steps.iter().all(|s| s.purpose == "replace the triggers"));
}

#[test]
fn alter_clearing_a_column_rewrites_it_as_the_owner_unrestricted() {
    let source = table(false);
    let column = json!({"destination": {"implementation": "column", "embedding_column": "emb"}, "chunking": {"implementation": "none"}});
    let plan = plan_of(&source, column);
    let a = alter_of(&plan, &plan, &source, false, true, false);
    let steps = alter_steps(&a);
    let rewrite = steps
        .iter()
        .find(|s| s.purpose == "empty the embedding column")
        .unwrap();
    assert_eq!(rewrite.role, Role::SourceOwner { restricted: false });
    assert!(!rewrite.row_security_off);
    assert_eq!(
        rewrite.sql,
        "ALTER TABLE \"public\".\"blog\" ALTER COLUMN \"emb\" TYPE \"public\".\"vector\"(768) USING NULL::\"public\".\"vector\"(768)"
    );
}

#[test]
fn alter_rebuilding_drops_the_old_destination_then_creates_the_new() {
    let source = table(false);
    let old = plan_of(&source, json!({}));
    let new = plan_of(
        &source,
        json!({"destination": {"implementation": "column", "embedding_column": "emb"}, "chunking": {"implementation": "none"}}),
    );
    let mut a = alter_of(&new, &old, &source, true, true, true);
    let gone = vec!["bob".to_string()];
    a.gone = &gone;
    let steps = alter_steps(&a);
    let sql: Vec<&str> = steps.iter().map(|s| s.sql.as_str()).collect();
    let at = |p: &str| sql.iter().position(|s| s.starts_with(p)).unwrap();
    assert!(at("REVOKE") < at("DROP VIEW \"public\".\"blog_embeddings\""));
    assert!(at("DROP VIEW") < at("DROP TABLE \"public\".\"blog_embeddings_store\""));
    assert!(at("DROP TABLE") < at("ALTER TABLE \"public\".\"blog\" ADD COLUMN \"emb\""));
    // A rebuilt destination's store is gone: only the queues are revoked,
    // and no store is emptied.
    assert_eq!(sql.iter().filter(|s| s.starts_with("REVOKE")).count(), 1);
    assert!(!steps.iter().any(|s| s.purpose == "empty the store"));
}

#[test]
fn steps_with_the_same_role_and_settings_share_a_switch() {
    let a = Step::ddl(FIXED_SEARCH_PATH, "a", "SELECT 1");
    let b = Step::ddl(FIXED_SEARCH_PATH, "b", "SELECT 2");
    let c = Step::all_rows("c", "SELECT 3");
    assert!(a.same_setting(&b));
    assert!(!a.same_setting(&c));
}
