//! `migrate.managed_tables()` in Rust: one catalog scan, then syscache
//! lookups for the current names of the relations (by OID). A SQL join
//! against pg_class costs an index scan per row, ten times slower with
//! thousands of vectorizers.

use std::collections::HashMap;

use pgrx::prelude::*;

/// Backs `migrate.managed_tables()`, which casts the names and `relid` to
/// `name` and `regclass`.
#[pg_extern(stable, parallel_safe, name = "_managed_tables")]
fn managed_tables() -> TableIterator<
    'static,
    (
        name!(vectorizer_id, i32),
        name!(vectorizer_name, String),
        name!(kind, &'static str),
        name!(schema_name, String),
        name!(table_name, String),
        name!(relid, Option<pg_sys::Oid>),
    ),
> {
    const KINDS: [&str; 4] = ["store", "view", "queue", "failed_queue"];
    let mut rows = Vec::new();
    let mut schemas = HashMap::new();
    Spi::connect(|client| {
        // Columns 3..=6 are the relids, 7..=14 the recorded (schema, name)
        // pairs in the same order.
        let table = client.select(
            "SELECT id, name, store_relid::oid, view_relid::oid, queue_relid::oid, queue_failed_relid::oid,
                    target_schema::text, target_table::text, view_schema::text, view_name::text,
                    queue_schema::text, queue_table::text, queue_schema::text, queue_failed_table::text
             FROM migrate.vectorizer ORDER BY id",
            None,
            &[],
        )?;
        for t in table {
            let id: i32 = t.get(1)?.unwrap_or_default();
            let name: String = t.get(2)?.unwrap_or_default();
            for (i, kind) in KINDS.iter().enumerate() {
                let Some(relid) = t.get::<pg_sys::Oid>(3 + i)? else {
                    continue;
                };
                let (schema, table_name, relid) = match crate::catalog::relation_name(relid, &mut schemas) {
                    Some((s, n)) => (s, n, Some(relid)),
                    // Dropped by hand: the recorded names, no relid.
                    None => (
                        t.get(7 + 2 * i)?.unwrap_or_default(),
                        t.get(8 + 2 * i)?.unwrap_or_default(),
                        None,
                    ),
                };
                rows.push((id, name.clone(), *kind, schema, table_name, relid));
            }
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| error!("pgai_migrate: reading the catalog: {e}"));
    TableIterator::new(rows)
}
