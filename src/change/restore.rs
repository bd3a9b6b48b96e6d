//! `migrate.restore_vectorizer`: a dropped vectorizer created again from
//! its history.

use pgai_migrate_core::change;
use pgai_migrate_core::plan::steps::FIXED_SEARCH_PATH;
use pgai_migrate_core::{Config, ConfigError, ErrorKind};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use crate::catalog;
use crate::error::{not_null, raise, OrRaise};
use crate::security::search_path;
use crate::spi::one;

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
    let fixed = search_path(FIXED_SEARCH_PATH);
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
    // The source by its name at the time; resolved with the caller's
    // search_path (it is schema-qualified).
    drop(fixed);
    let parsed = Config::parse(&config).or_raise();
    crate::api::create(&parsed, label, Some(from))
}
