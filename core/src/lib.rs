//! Pure-Rust heart of `pgai_migrate`: vectorizer config parsing and
//! validation, and the one place that builds SQL text. Nothing here needs a
//! PostgreSQL server, so it is unit-tested with plain `cargo test`.

pub mod change;
pub mod config;
pub mod error;
pub mod ident;
mod json;
pub mod plan;
pub mod source;
pub mod template;

pub use config::Config;
pub use error::{ConfigError, ErrorKind};
pub use plan::{build_plan, Plan};
pub use source::{Environment, KeyColumn, SourceColumn, SourceTable, TypeCategory};
