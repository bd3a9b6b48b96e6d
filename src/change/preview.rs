//! `migrate.plan_vectorizer`: what a create or an alter would do, without
//! doing it.

use pgai_migrate_core::change::{self, Action};
use pgai_migrate_core::config::read_document;
use pgai_migrate_core::plan::steps::FIXED_SEARCH_PATH;
use pgai_migrate_core::plan::{check_queue_place, Context};
use pgai_migrate_core::{build_plan, Config};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use super::{prepare, source_rows};
use crate::catalog;
use crate::error::{not_null, OrRaise};
use crate::security::search_path;
use crate::spi::jsonb_text;

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
    let _fixed = search_path(FIXED_SEARCH_PATH);
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
    TableIterator::new(rows)
}
