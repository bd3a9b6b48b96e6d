//! Changing vectorizers: `alter_vectorizer`, `plan_vectorizer` (what an
//! alter or create would do, without doing it) and `restore_vectorizer`
//! (re-create from history). The merge and the classification of each
//! changed leaf are pure (`pgai_migrate_core::change`); this module reads
//! the database and prepares a change, [`apply`] checks it and runs its
//! steps, [`preview`] is `plan_vectorizer` and [`restore`]
//! `restore_vectorizer`.

use pgai_migrate_core::change::{self, Change};
use pgai_migrate_core::config::read_document;
use pgai_migrate_core::ident::qualified;
use pgai_migrate_core::plan::steps::FIXED_SEARCH_PATH;
use pgai_migrate_core::plan::{check_queue_place, Context};
use pgai_migrate_core::{
    build_plan, Config, ConfigError, Environment, ErrorKind, Plan, SourceTable,
};
use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::api::refuse_old_snapshot;
use crate::catalog::{self, Existing};
use crate::error::{not_null, raise, unknown_vectorizer, OrRaise};
use crate::security::{current_user, search_path};
use crate::spi::{jsonb_text, one};

mod apply;
pub mod preview;
pub mod restore;

/// A change worked out against the database, not yet applied.
pub(crate) struct Prepared {
    source: SourceTable,
    env: Environment,
    plan: Plan,
    changes: Vec<Change>,
}

/// Merges `changes` over the vectorizer's config and plans the result.
/// `source`, when the changes name one, must be the vectorizer's source
/// (resolved with the caller's search_path, before it is fixed).
pub(crate) fn prepare(
    existing: &Existing,
    changes: &Value,
    source_given: Option<pg_sys::Oid>,
) -> Prepared {
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
pub(crate) fn source_rows(relid: pg_sys::Oid, source: &SourceTable) -> i64 {
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
    let _fixed = search_path(FIXED_SEARCH_PATH);
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
    apply::apply(&existing, &p, !stale.is_empty());
    let label = catalog::take_label(label);
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
    existing.id
}
