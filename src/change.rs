//! Changing vectorizers: `alter_vectorizer`, `plan_vectorizer` (what an
//! alter or create would do, without doing it) and `restore_vectorizer`
//! (re-create from history). The merge and the classification of each
//! changed leaf are pure (`pgai_migrate_core::change`); this module reads
//! the database and applies them.

use pgai_migrate_core::change::{self, Action, Change};
use pgai_migrate_core::config::read_document;
use pgai_migrate_core::ident::{qualified, quote_ident};
use pgai_migrate_core::plan::{check_queue_place, trigger_ddl, Context, Relation, SharedGrant};
use pgai_migrate_core::{
    build_plan, Config, ConfigError, Environment, ErrorKind, Plan, SourceTable,
};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

use crate::api::{
    check_schema, decide_shared_grants, live_role, refuse_old_snapshot, revoke_recorded,
};
use crate::catalog::{self, Existing};
use crate::error::{not_null, raise, unknown_vectorizer, OrRaise};
use crate::security::{current_user, AsRole, RowSecurityOff};
use crate::spi::{jsonb_text, one, run, set_search_path};

/// A change worked out against the database, not yet applied.
struct Prepared {
    source: SourceTable,
    env: Environment,
    plan: Plan,
    changes: Vec<Change>,
}

/// Merges `changes` over the vectorizer's config and plans the result.
/// `source`, when the changes name one, must be the vectorizer's source
/// (resolved with the caller's search_path, before it is fixed).
fn prepare(existing: &Existing, changes: &Value, source_given: Option<pg_sys::Oid>) -> Prepared {
    let mut merged = change::merge(&existing.config, changes).or_raise();
    if let Some(given) = source_given {
        if given != existing.source {
            raise(
                ConfigError::new(
                    ErrorKind::FeatureNotSupported,
                    "source",
                    "the source table of a vectorizer cannot be changed",
                )
                .with_hint("create a vectorizer on the other table, and drop this one"),
            );
        }
    }
    let mut source = catalog::source_table(existing.source);
    // A column destination's own column is not a source column to plan
    // with (it is renamed, retyped or dropped by the change).
    if let Some(own) = existing.row["embedding_column"].as_str() {
        source.columns.retain(|c| c.name != own);
    }
    merged["source"] = json!(source.qualified_name);
    let config = Config::parse(&merged).or_raise();
    let env = catalog::environment();
    let plan = build_plan(
        &config,
        &Context {
            source: &source,
            env: &env,
            id: existing.id,
        },
    )
    .or_raise();
    // A queue that moves or is renamed must fit where it goes; one that
    // stays (say, named by hand in schema migrate before 0.4.0) is left be.
    let queue_now = (
        existing.row["queue_schema"].as_str(),
        existing.row["queue_table"].as_str(),
    );
    if queue_now
        != (
            Some(plan.queue.schema.as_str()),
            Some(plan.queue.name.as_str()),
        )
    {
        check_queue_place(&plan.queue, Some(existing.id)).or_raise();
    }
    let changes = change::diff(&existing.config, &plan.config);
    Prepared {
        source,
        env,
        plan,
        changes,
    }
}

/// Rows a re-embed queues: every row of the source. Exact when the caller
/// may read the source, else the planner's estimate.
fn source_rows(relid: pg_sys::Oid, source: &SourceTable) -> i64 {
    let readable = one::<bool>(
        "SELECT pg_catalog.has_table_privilege($1, 'SELECT')",
        &[relid.into()],
    ) == Some(true);
    if readable {
        // As the caller, who may read it: a count hidden from them by row
        // security stays hidden.
        one::<i64>(
            &format!(
                "SELECT pg_catalog.count(*) FROM {}",
                qualified(&source.schema, &source.name)
            ),
            &[],
        )
        .unwrap_or(0)
    } else {
        one::<i64>(
            "SELECT GREATEST(pg_catalog.sum(GREATEST(c.reltuples, 0)), 0)::pg_catalog.int8 FROM pg_catalog.pg_class c
             WHERE c.oid = $1 OR c.oid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree($1) t)",
            &[relid.into()],
        )
        .unwrap_or(0)
    }
}

/// `migrate.alter_vectorizer(name, changes text, reembed, label)`; the
/// jsonb form (sql/call_forms.sql) passes its text here, so a document
/// nested too deeply is a config error.
#[pg_extern(
    volatile,
    parallel_unsafe,
    schema = "migrate",
    name = "alter_vectorizer"
)]
pub fn alter_vectorizer_text(
    name: Option<&str>,
    changes: Option<&str>,
    reembed: default!(Option<bool>, false),
    label: default!(Option<&str>, "NULL"),
) -> i32 {
    let name = name.unwrap_or_else(|| not_null("name"));
    let changes = changes.unwrap_or_else(|| not_null("changes"));
    let changes = read_document(&jsonb_text(changes), "the changes are").or_raise();
    let reembed = reembed.unwrap_or_else(|| not_null("reembed"));
    let (_, caller) = current_user();
    let source_given = changes
        .get("source")
        .and_then(Value::as_str)
        .map(catalog::resolve_source);
    let caller_path = set_search_path("pg_catalog, pg_temp");
    // Both names at once (a rename's new one too), sorted: see lock_names.
    let mut names = vec![name.to_string()];
    names.extend(
        changes
            .get("name")
            .and_then(Value::as_str)
            .map(String::from),
    );
    catalog::lock_names(&names);
    let existing = catalog::find(name).unwrap_or_else(|| unknown_vectorizer(name));
    if catalog::owns_relation(existing.source) != Some(true) {
        raise(ConfigError::new(
            ErrorKind::InsufficientPrivilege,
            "",
            format!("must be owner of the source table of vectorizer \"{name}\" to alter it"),
        ))
    }
    catalog::lock_source(existing.source, "SHARE ROW EXCLUSIVE");
    let p = prepare(&existing, &changes, source_given);
    if p.changes.is_empty() {
        notice!("vectorizer \"{name}\" already has this config, nothing to change");
        catalog::take_label(label);
        set_search_path(&caller_path);
        return existing.id;
    }
    let stale = change::reembed_paths(&p.changes);
    if !stale.is_empty() && !reembed {
        let rows = source_rows(existing.source, &p.source);
        let clears = change::clears_embeddings(&p.changes);
        raise(
            ConfigError::invalid(
                stale[0],
                format!("this change invalidates the stored embeddings of vectorizer \"{name}\""),
            )
            .with_detail(format!(
                "Changed: {}. Applying it queues all {rows} rows of {} again for the worker to embed{}.",
                stale.join(", "),
                p.source.qualified_name,
                if clears {
                    ", and empties the store first (vectors of another model or size cannot be kept)"
                } else {
                    "; the stored chunks stay until each row is embedded again"
                }
            ))
            .with_hint("pass reembed => true to apply it; migrate.plan_vectorizer(config) shows every change and its cost"),
        );
    }
    if !stale.is_empty() {
        refuse_old_snapshot(
            "",
            &format!("cannot queue the rows of vectorizer \"{name}\" again"),
            "alter the vectorizer in a READ COMMITTED transaction (the default)",
        );
    }
    if p.plan.name != name {
        catalog::lock_names(&[p.plan.name.clone()]);
        if catalog::find(&p.plan.name).is_some() {
            raise(ConfigError::new(
                ErrorKind::DuplicateObject,
                "name",
                format!("vectorizer \"{}\" already exists", p.plan.name),
            ));
        }
    }
    apply(&existing, &p, !stale.is_empty());
    let label = catalog::take_label(label);
    let _elevated = AsRole::new(catalog::extension_owner(), false);
    catalog::record_revision(
        existing.id,
        &p.plan.name,
        "alter",
        &p.plan.config,
        None,
        &caller,
        label.as_deref(),
        None,
    );
    set_search_path(&caller_path);
    existing.id
}

fn rel(pair: Option<(String, String)>) -> Option<Relation> {
    pair.map(|(schema, name)| Relation {
        path: String::new(),
        schema,
        name,
    })
}

/// `ALTER … SET SCHEMA` and `RENAME TO` taking `from` to `to`.
fn move_sql(kind: &str, from: &Relation, to: &Relation) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = from.clone();
    if from.schema != to.schema {
        out.push(format!(
            "ALTER {kind} {} SET SCHEMA {}",
            qualified(&at.schema, &at.name),
            quote_ident(&to.schema)
        ));
        at.schema = to.schema.clone();
    }
    if from.name != to.name {
        out.push(format!(
            "ALTER {kind} {} RENAME TO {}",
            qualified(&at.schema, &at.name),
            quote_ident(&to.name)
        ));
    }
    out
}

fn roles(config: &Value) -> Vec<String> {
    config["grant_to"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect()
}

fn apply(existing: &Existing, p: &Prepared, reembed: bool) {
    let plan = &p.plan;
    let id = existing.id;
    let mut schemas = std::collections::HashMap::new();
    let mut by_oid = |oid: pg_sys::Oid| rel(catalog::relation_name(oid, &mut schemas));
    let queue = by_oid(existing.queue).expect("queue");
    let failed = by_oid(existing.failed_queue).expect("failed queue");
    let store = existing.store.and_then(&mut by_oid);
    let view = existing.view.and_then(&mut by_oid);
    let src = qualified(&p.source.schema, &p.source.name);
    let old_dims = existing.config["embedding"]["dimensions"].as_i64();
    let new_dims = plan.config["embedding"]["dimensions"].as_i64();
    let kind_changed = existing.config["destination"]["implementation"]
        != plan.config["destination"]["implementation"];
    // The destination is made again when embeddings cannot be kept in it:
    // another kind, or another vector size.
    let rebuild = kind_changed || old_dims != new_dims;
    let clears = change::clears_embeddings(&p.changes);

    for (path, schema) in &plan.schemas {
        check_schema(path, schema);
    }
    let owner = catalog::owner_of(existing.source);
    let rows = if p.source.partitioned {
        src.clone()
    } else {
        format!("ONLY {src}")
    };
    if reembed {
        // Every row is queued again as the owner: a policy hiding rows
        // from the owner (FORCE ROW LEVEL SECURITY) is refused here, by
        // PostgreSQL (42501), before anything is emptied, rather than
        // leaving those rows without embeddings.
        let _owner = AsRole::new(owner, true);
        let _all_rows = RowSecurityOff::new();
        run(&format!("SELECT FROM {rows} LIMIT 0"));
    }
    // New names must be free (a relation keeping its name is not in the way).
    let moved = |from: &Option<Relation>, to: &Option<Relation>| match (from, to) {
        (Some(f), Some(t)) => f.schema != t.schema || f.name != t.name,
        (None, Some(_)) => true,
        _ => false,
    };
    let q_moved = moved(&Some(queue.clone()), &Some(plan.queue.clone()));
    let fq_moved = moved(&Some(failed.clone()), &Some(plan.failed_queue.clone()));
    if q_moved {
        catalog::check_free(&plan.queue, None);
    }
    if fq_moved {
        catalog::check_free(&plan.failed_queue, None);
    }
    if !kind_changed && moved(&store, &plan.store) {
        catalog::check_free(plan.store.as_ref().expect("store"), None);
    }
    if !kind_changed && moved(&view, &plan.view) {
        catalog::check_free(plan.view.as_ref().expect("view"), None);
    }
    if kind_changed {
        for r in plan.store.iter().chain(plan.view.iter()) {
            catalog::check_free(r, None);
        }
    }
    let old_column = existing.row["embedding_column"].as_str().map(String::from);
    if let (Some(new), true) = (&plan.embedding_column, kind_changed) {
        let taken = one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped)",
            &[existing.source.into(), new.as_str().into()],
        ) == Some(true);
        if taken {
            raise(ConfigError::new(
                ErrorKind::DuplicateColumn,
                "destination.embedding_column",
                format!(
                    "column \"{new}\" of relation \"{}\" already exists",
                    p.source.name
                ),
            ));
        }
    }

    let old_roles = roles(&existing.config);
    let new_roles = roles(&plan.config);
    let gone: Vec<String> = old_roles
        .iter()
        .filter(|r| !new_roles.contains(r) && live_role(r))
        .cloned()
        .collect();
    let added: Vec<String> = new_roles
        .iter()
        .filter(|r| !old_roles.contains(r))
        .cloned()
        .collect();
    let recorded: Vec<Value> = existing.row["grants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wanted: Vec<Value> = plan
        .shared_grants
        .iter()
        .map(SharedGrant::to_json)
        .collect();
    let recorded_kept: Vec<Value> = recorded
        .iter()
        .filter(|g| wanted.contains(g))
        .cloned()
        .collect();
    let to_give: Vec<SharedGrant> = plan
        .shared_grants
        .iter()
        .filter(|g| !recorded.contains(&g.to_json()))
        .cloned()
        .collect();
    let to_take: Vec<Value> = recorded
        .iter()
        .filter(|g| !wanted.contains(g))
        .cloned()
        .collect();
    if !to_give.is_empty() || !to_take.is_empty() {
        catalog::lock_grants();
    }
    // Decided as the caller: USAGE on a schema is given only where the
    // caller could give it.
    let given = decide_shared_grants(id, existing.source, &to_give);
    // Written now, so the DDL event triggers below compare the database
    // with the new config and the new UPDATE OF list.
    {
        // The catalog is the extension owner's to write.
        let _elevated = AsRole::new(catalog::extension_owner(), false);
        catalog::update_config(id, plan);
        if rebuild {
            catalog::forget_destination(id);
        }
    }
    let q = qualified(&plan.queue.schema, &plan.queue.name);
    let fq = qualified(&plan.failed_queue.schema, &plan.failed_queue.name);
    let mut recorded_now = recorded_kept;
    {
        let _elevated = AsRole::new(catalog::extension_owner(), false);
        set_search_path(&plan.ddl_search_path);
        // The update trigger's column list first (the event triggers
        // compare it with the catalog's after every command below).
        let read: Vec<&pgai_migrate_core::SourceColumn> = plan
            .read_columns
            .iter()
            .filter_map(|c| p.source.column(c))
            .collect();
        for sql in trigger_ddl(id, &plan.trigger_name, &src, &read) {
            run(&sql.replacen("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1));
        }
        for sql in move_sql("TABLE", &queue, &plan.queue) {
            run(&sql);
        }
        for sql in move_sql("TABLE", &failed, &plan.failed_queue) {
            run(&sql);
        }

        // Revokes go while the objects they name still exist.
        let mut revokes = revoke_recorded(id, existing.source, Some(&src), &to_take);
        for role in &gone {
            let r = quote_ident(role);
            revokes.push(format!(
                "REVOKE SELECT, INSERT, UPDATE, DELETE ON {q}, {fq} FROM {r}"
            ));
            if !rebuild {
                if let Some(s) = &store {
                    revokes.push(format!(
                        "REVOKE SELECT, INSERT, UPDATE, DELETE ON {} FROM {r}",
                        qualified(&s.schema, &s.name)
                    ));
                }
                if let Some(v) = &view {
                    revokes.push(format!(
                        "REVOKE SELECT ON {} FROM {r}",
                        qualified(&v.schema, &v.name)
                    ));
                }
            }
        }
        for sql in &revokes {
            run(sql);
        }

        if rebuild {
            // Vectors of another size or kind: the old destination goes,
            // the new one is made as create makes it.
            if let Some(v) = &view {
                run(&format!("DROP VIEW {}", qualified(&v.schema, &v.name)));
            }
            if let Some(s) = &store {
                run(&format!("DROP TABLE {}", qualified(&s.schema, &s.name)));
            }
            if let Some(col) = &old_column {
                run(&format!(
                    "ALTER TABLE {src} DROP COLUMN {}",
                    quote_ident(col)
                ));
            }
            for sql in plan
                .store_sql
                .iter()
                .chain(&plan.view_sql)
                .chain(&plan.column_sql)
            {
                run(sql);
            }
        } else {
            if let (Some(from), Some(to)) = (&store, &plan.store) {
                for sql in move_sql("TABLE", from, to) {
                    run(&sql);
                }
            }
            if let (Some(from), Some(to)) = (&view, &plan.view) {
                for sql in move_sql("VIEW", from, to) {
                    run(&sql);
                }
            }
            if let (Some(from), Some(to)) = (&old_column, &plan.embedding_column) {
                if from != to {
                    run(&format!(
                        "ALTER TABLE {src} RENAME COLUMN {} TO {}",
                        quote_ident(from),
                        quote_ident(to)
                    ));
                }
            }
            if clears {
                if let Some(col) = &plan.embedding_column {
                    // Another model's vectors of the same size: gone, with
                    // no trigger fired (no UPDATE runs).
                    let vector = format!(
                        "{}({})",
                        qualified(&p.env.vector_schema, "vector"),
                        new_dims.unwrap_or(0)
                    );
                    // The rewrite checks the table's constraints, which
                    // may call the owner's functions: run it as the owner.
                    let _owner = AsRole::new(owner, false);
                    run(&format!(
                        "ALTER TABLE {src} ALTER COLUMN {c} TYPE {vector} USING NULL::{vector}",
                        c = quote_ident(col)
                    ));
                }
            }
            for role in &added {
                let r = quote_ident(role);
                if let Some(s) = &plan.store {
                    run(&format!(
                        "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {r}",
                        qualified(&s.schema, &s.name)
                    ));
                }
                if let Some(v) = &plan.view {
                    run(&format!(
                        "GRANT SELECT ON {} TO {r}",
                        qualified(&v.schema, &v.name)
                    ));
                }
            }
        }
        for role in &added {
            let r = quote_ident(role);
            run(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {q}, {fq} TO {r}"
            ));
        }
        for (g, missing) in given {
            if missing {
                run(&g.grant_sql(&src));
            }
            recorded_now.push(g.to_json());
        }
        set_search_path("pg_catalog, pg_temp");

        if reembed {
            // User data and user-owned tables: as the owner, restricted,
            // like create's queueing. The failed queue's keys get a new
            // chance under the new config.
            let _owner = AsRole::new(owner, true);
            let _all_rows = RowSecurityOff::new();
            let keys = p
                .source
                .primary_key
                .iter()
                .map(|k| quote_ident(k))
                .collect::<Vec<_>>()
                .join(", ");
            if clears && !rebuild {
                if let Some(s) = &plan.store {
                    run(&format!("TRUNCATE {}", qualified(&s.schema, &s.name)));
                }
            }
            run(&format!("TRUNCATE {q}, {fq}"));
            run(&format!(
                "INSERT INTO {q} ({keys}) SELECT {keys} FROM {rows}"
            ));
        }
    }
    let _elevated = AsRole::new(catalog::extension_owner(), false);
    catalog::update(id, plan, Some(Value::Array(recorded_now)));
}

/// `migrate.plan_vectorizer(config)`: what `create_vectorizer(config)`
/// (no vectorizer of its name yet) or `alter_vectorizer(name, config)`
/// would do; changes nothing. Takes the document's text, like create and
/// alter (the jsonb form is in sql/call_forms.sql).
#[pg_extern(
    volatile,
    parallel_unsafe,
    schema = "migrate",
    name = "plan_vectorizer"
)]
pub fn plan_vectorizer_text(
    config: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(path, Option<String>),
        name!(old_value, Option<JsonB>),
        name!(new_value, Option<JsonB>),
        name!(action, String),
        name!(queued_rows, i64),
    ),
> {
    let config = config.unwrap_or_else(|| not_null("config"));
    let config = read_document(&jsonb_text(config), "the config is").or_raise();
    let parsed = Config::parse(&config).or_raise();
    let relid = catalog::resolve_source(&parsed.source);
    let caller_path = set_search_path("pg_catalog, pg_temp");
    let source = catalog::source_table(relid);
    let env = catalog::environment();
    let named = build_plan(
        &parsed,
        &Context {
            source: &source,
            env: &env,
            id: 0,
        },
    )
    .or_raise();
    let rows = match catalog::find(&named.name) {
        None => {
            check_queue_place(&named.queue, None).or_raise();
            let queued = if parsed.enqueue_existing {
                source_rows(relid, &source)
            } else {
                0
            };
            vec![(None, None, None, "create".to_string(), queued)]
        }
        Some(existing) if existing.source != relid => {
            vec![(
                Some("source".to_string()),
                Some(JsonB(existing.config["source"].clone())),
                Some(JsonB(json!(source.qualified_name))),
                "recreate".to_string(),
                source_rows(relid, &source),
            )]
        }
        Some(existing) => {
            let changes = change::strip_create_only(&config);
            let p = prepare(&existing, &changes, None);
            if p.changes.is_empty() {
                vec![(None, None, None, "none".to_string(), 0)]
            } else {
                let all = source_rows(relid, &source);
                p.changes
                    .into_iter()
                    .map(|c| {
                        let queued = if c.action == Action::Reembed { all } else { 0 };
                        (
                            Some(c.path),
                            c.old.map(JsonB),
                            c.new.map(JsonB),
                            c.action.as_str().to_string(),
                            queued,
                        )
                    })
                    .collect()
            }
        }
    };
    set_search_path(&caller_path);
    TableIterator::new(rows)
}

/// `migrate.restore_vectorizer(name, revision_id, label)`: create again
/// from the config a revision recorded (the last one of that name unless
/// one is given).
#[pg_extern(
    volatile,
    parallel_unsafe,
    schema = "migrate",
    name = "restore_vectorizer"
)]
pub fn restore_vectorizer_named(
    name: Option<&str>,
    revision_id: default!(Option<i64>, "NULL"),
    label: default!(Option<&str>, "NULL"),
) -> i32 {
    let name = name.unwrap_or_else(|| not_null("name"));
    let caller_path = set_search_path("pg_catalog, pg_temp");
    catalog::lock_names(&[name.to_string()]);
    if catalog::find(name).is_some() {
        raise(
            ConfigError::new(
                ErrorKind::DuplicateObject,
                "",
                format!("vectorizer \"{name}\" already exists"),
            )
            .with_hint("restore re-creates a dropped vectorizer; use alter_vectorizer to change a live one"),
        );
    }
    let found: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_build_object('id', r.id, 'vectorizer_id', r.vectorizer_id, 'config', r.config)
         FROM migrate.revision r
         WHERE r.vectorizer_name = $1 AND ($2::pg_catalog.int8 IS NULL OR r.id = $2)
         ORDER BY r.id DESC LIMIT 1",
        &[name.into(), revision_id.into()],
    );
    let Some(found) = found else {
        raise(
            ConfigError::new(
                ErrorKind::UndefinedObject,
                "",
                match revision_id {
                    Some(r) => format!("vectorizer \"{name}\" has no revision {r}"),
                    None => format!("no revision records a vectorizer \"{name}\""),
                },
            )
            .with_hint(
                "SELECT id, vectorizer_name, operation FROM migrate.revision lists the history",
            ),
        )
    };
    let found = found.0;
    let from = found["id"].as_i64().expect("revision id");
    let mut config = change::without_default_queue(
        &found["config"],
        found["vectorizer_id"].as_i64().unwrap_or(0),
    );
    config["name"] = json!(name);
    // The source by its name at the time; resolved with a fixed search_path
    // (it is schema-qualified).
    set_search_path(&caller_path);
    let parsed = Config::parse(&config).or_raise();
    crate::api::create(&parsed, label, Some(from))
}
