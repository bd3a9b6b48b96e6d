//! `migrate.managed_tables()`: one catalog scan, then syscache lookups for
//! the current names of the relations (by OID). A SQL join against
//! pg_class costs an index scan per row, ten times slower with thousands
//! of vectorizers. It returns PostgreSQL's own `name` and `regclass`
//! types directly, so no SQL wrapper (and no internal function anyone
//! could call) is needed.

use std::collections::HashMap;
use std::ffi::CString;

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::prelude::*;
use pgrx::IntoDatum;

/// Returned as a column of a set-returning function: the datum from
/// IntoDatum, as pgrx does for its own types.
macro_rules! box_ret_via_into_datum {
    ($t:ty) => {
        // SAFETY: the datum is a valid value of the SQL type declared by
        // impl_sql_translatable for $t.
        unsafe impl BoxRet for $t {
            unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
                match self.into_datum() {
                    Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
                    None => fcinfo.return_null(),
                }
            }
        }
    };
}

/// A value of SQL type `name`.
pub struct PgName(String);

impl IntoDatum for PgName {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // `name` is a fixed-size, NUL-padded 64-byte value passed by
        // reference; namestrcpy truncates like the type input function.
        let s = CString::new(self.0.replace('\0', "")).expect("no NUL left");
        // SAFETY: palloc0 returns NAMEDATALEN zeroed bytes in the current
        // memory context; namestrcpy writes at most NAMEDATALEN - 1 of them.
        unsafe {
            let p = pg_sys::palloc0(pg_sys::NAMEDATALEN as usize) as *mut pg_sys::NameData;
            pg_sys::namestrcpy(p, s.as_ptr());
            Some(pg_sys::Datum::from(p))
        }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::NAMEOID
    }
}
pgrx::impl_sql_translatable!(PgName, "name");
box_ret_via_into_datum!(PgName);

/// A value of SQL type `regclass` (an OID shown as the relation's name).
pub struct RegClass(pg_sys::Oid);

impl IntoDatum for RegClass {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(pg_sys::Datum::from(self.0))
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::REGCLASSOID
    }
}
pgrx::impl_sql_translatable!(RegClass, "regclass");
box_ret_via_into_datum!(RegClass);

/// One row per relation a vectorizer manages (store, view, queue,
/// failed_queue): what schema-diff tools should leave alone.
#[pg_extern(stable, parallel_safe, schema = "migrate", name = "managed_tables")]
pub fn list_managed_tables() -> TableIterator<
    'static,
    (
        name!(vectorizer_id, i32),
        name!(vectorizer_name, String),
        name!(kind, &'static str),
        name!(schema_name, PgName),
        name!(table_name, PgName),
        name!(relid, Option<RegClass>),
    ),
> {
    const KINDS: [&str; 4] = ["store", "view", "queue", "failed_queue"];
    let mut rows = Vec::new();
    let mut schemas = HashMap::new();
    Spi::connect(|client| {
        // Columns 3..=6 are the relids, 7..=14 the recorded (schema, name)
        // pairs in the same order.
        let table = client.select(
            "SELECT id, name, store_relid::pg_catalog.oid, view_relid::pg_catalog.oid, queue_relid::pg_catalog.oid, queue_failed_relid::pg_catalog.oid,
                    target_schema::pg_catalog.text, target_table::pg_catalog.text, view_schema::pg_catalog.text, view_name::pg_catalog.text,
                    queue_schema::pg_catalog.text, queue_table::pg_catalog.text, queue_schema::pg_catalog.text, queue_failed_table::pg_catalog.text
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
                let (schema, table_name, relid) =
                    match crate::catalog::relation_name(relid, &mut schemas) {
                        Some((s, n)) => (s, n, Some(RegClass(relid))),
                        // Dropped by hand: the recorded names, no relid.
                        None => (
                            t.get(7 + 2 * i)?.unwrap_or_default(),
                            t.get(8 + 2 * i)?.unwrap_or_default(),
                            None,
                        ),
                    };
                rows.push((
                    id,
                    name.clone(),
                    *kind,
                    PgName(schema),
                    PgName(table_name),
                    relid,
                ));
            }
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| error!("pgai_migrate: reading the catalog: {e}"));
    TableIterator::new(rows)
}
