//! Thin helpers over SPI. Values always travel as parameters.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{FromDatum, IntoDatum};

/// One value from a query that always returns exactly one row.
pub fn one<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid]) -> Option<T> {
    Spi::get_one_with_args(sql, args).unwrap_or_else(|e| error!("pgai_migrate: {e}: {sql}"))
}

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| error!("pgai_migrate: {e}: {sql}"))
}

pub fn run_with(sql: &str, args: &[DatumWithOid]) {
    Spi::run_with_args(sql, args).unwrap_or_else(|e| error!("pgai_migrate: {e}: {sql}"))
}

/// Set `search_path` for the rest of the call and return the old value;
/// `set_config(…, true)` is undone by transaction or savepoint rollback.
pub fn set_search_path(path: &str) -> String {
    one::<String>("SELECT pg_catalog.current_setting('search_path')", &[])
        .map(|old| {
            run_with(
                "SELECT pg_catalog.set_config('search_path', $1, true)",
                &[path.into()],
            );
            old
        })
        .unwrap_or_default()
}
