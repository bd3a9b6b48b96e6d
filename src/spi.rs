//! Thin helpers over SPI. Values always travel as parameters.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{FromDatum, IntoDatum, PgOid};

thread_local! {
    /// Plans of the catalog queries, kept for the life of the backend like
    /// PL/pgSQL keeps its plans; PostgreSQL's plan cache revalidates them.
    static PLANS: RefCell<HashMap<String, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Run a parameterized query through a kept plan; `read` gets the first
/// column of the first row when `T` is wanted.
fn cached<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid], read: bool) -> Option<T> {
    Spi::connect_mut(|client| {
        let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
        PLANS.with(|plans| {
            let mut plans = plans.borrow_mut();
            if !plans.contains_key(sql) {
                let plan = client.prepare_mut(sql, &types)?.keep();
                plans.insert(sql.to_string(), plan);
            }
            let plan = plans.get(sql).expect("just inserted");
            let table = client.update(plan, None, args)?;
            if !read || table.is_empty() {
                return Ok(None);
            }
            table.first().get_one::<T>()
        })
    })
    .unwrap_or_else(|e: pgrx::spi::Error| error!("pgai_migrate: {e}: {sql}"))
}

/// One value from a query that always returns exactly one row.
pub fn one<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid]) -> Option<T> {
    cached(sql, args, true)
}

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| error!("pgai_migrate: {e}: {sql}"))
}

pub fn run_with(sql: &str, args: &[DatumWithOid]) {
    let _: Option<bool> = cached(sql, args, false);
}

/// The text of `text` read as jsonb and printed again: duplicate keys,
/// syntax errors and number forms behave exactly as for a jsonb argument.
/// The entry points take their document as text and parse it themselves,
/// so a document too deep for the parser is a config error, not an
/// internal one.
pub fn jsonb_text(text: &str) -> String {
    one(
        "SELECT $1::pg_catalog.jsonb::pg_catalog.text",
        &[text.into()],
    )
    .expect("not NULL")
}
