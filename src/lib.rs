//! `pgai_migrate`: vectorizer definitions as versioned PostgreSQL schema.
//!
//! The config is parsed, validated and turned into SQL by the pure crate
//! `pgai_migrate_core`; this crate only talks to the server: it reads the
//! source table, checks privileges, runs the planned SQL and keeps the
//! catalog and revision history.
//!
//! The Rust names of the SQL entry points differ from their SQL names
//! (and from 0.1.0's), so their C symbols do too: an older version's SQL
//! bound to this library, after a package upgrade and before `ALTER
//! EXTENSION pgai_migrate UPDATE`, finds no symbol and errors cleanly
//! instead of running code written for another catalog.

use pgrx::prelude::*;

mod adopt;
mod api;
mod catalog;
mod change;
mod ddl;
mod embed_api;
mod error;
mod introspection;
mod security;
mod spi;
mod steps;
mod trigger;
mod upgrade;
mod worker_api;

::pgrx::pg_module_magic!(name, version);

/// The extension's schema (created first, by sql/catalog.sql, so that it is
/// a member of the extension); declared here for the functions that name
/// it with `schema = "migrate"`.
#[pg_schema]
mod migrate {}

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    trigger::register_callbacks();
    worker_api::register_callbacks();
    embed_api::register_settings();
}

extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
extension_sql_file!(
    "../sql/introspection.sql",
    name = "introspection",
    requires = ["catalog"]
);
extension_sql_file!(
    "../sql/helpers.sql",
    name = "helpers",
    requires = ["catalog"]
);
extension_sql_file!("../sql/worker.sql", name = "worker", requires = ["catalog"]);
extension_sql_file!("../sql/embed.sql", name = "embed", requires = ["catalog"]);
extension_sql_file!(
    "../sql/call_forms.sql",
    name = "call_forms",
    requires = [
        "helpers",
        api::create_vectorizer_labelled,
        api::drop_vectorizer_labelled,
        change::alter_vectorizer_text,
        change::preview::plan_vectorizer_text,
        introspection::list_managed_tables,
        trigger::_vectorizer_trigger
    ]
);
extension_sql_file!(
    "../sql/operations.sql",
    name = "operations",
    requires = ["catalog", "helpers"]
);
extension_sql_file!("../sql/events.sql", name = "events", finalize);
