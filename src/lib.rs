//! `pgai_migrate`: vectorizer definitions as versioned PostgreSQL schema.
//!
//! The config is parsed, validated and turned into SQL by the pure crate
//! `pgai_migrate_core`; this crate only talks to the server: it reads the
//! source table, checks privileges, runs the planned SQL and keeps the
//! catalog and revision history.

use pgrx::prelude::*;

mod api;
mod catalog;
mod error;
mod introspection;
mod security;
mod spi;

::pgrx::pg_module_magic!(name, version);

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
extension_sql_file!("../sql/call_forms.sql", name = "call_forms", finalize);
