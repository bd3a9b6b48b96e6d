//! `migrate._vectorizer_trigger()`: the one trigger function behind every
//! vectorizer's triggers, each of which passes its vectorizer's id.
//!
//! Being a member of the extension, it ties the vectorizers to the
//! extension through PostgreSQL's own dependencies: `DROP EXTENSION` fails
//! while a trigger uses it, and `DROP EXTENSION … CASCADE` removes the
//! triggers, so no source is left calling a missing function. Nothing is
//! generated per vectorizer, so nothing needs a `regprocedure` in the
//! catalog, and nothing is reached by a name fixed at create time: the
//! statements are planned from the catalog's OIDs, and planned again after
//! any relation changes, so renames of the queue, the store or their
//! schemas are followed, and a store dropped by hand is simply no longer
//! written.
//!
//! EXECUTE is not granted to PUBLIC, so no other role can attach it to a
//! table; and fired by any table other than its vectorizer's source (or a
//! partition of it), it refuses before reading a single value.
//!
//! It writes the queue and the store as their owner (the source's owner),
//! security-restricted like `CREATE INDEX` does, without the GUC save and
//! restore a `SECURITY DEFINER` function with `SET search_path` pays per
//! row; every statement it runs is fully qualified.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::num::NonZeroUsize;
use std::rc::Rc;

use pgai_migrate_core::ident::qualified;
use pgai_migrate_core::plan::trigger_statements;
use pgai_migrate_core::KeyColumn;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::security::AsRole;
use crate::spi::one;

unsafe extern "C-unwind" {
    /// utils/datum.h: equal binary images (detoasting as needed). Called
    /// through pg_guard_ffi_boundary, since it may raise (detoasting).
    fn datum_image_eq(
        value1: pg_sys::Datum,
        value2: pg_sys::Datum,
        typ_by_val: bool,
        typ_len: std::ffi::c_int,
    ) -> bool;
}

/// One vectorizer's kept plans.
struct Vectorizer {
    source: pg_sys::Oid,
    /// Owner of the queue: the source's owner when it was created.
    owner: pg_sys::Oid,
    keys: Vec<KeyColumn>,
    enqueue: pg_sys::SPIPlanPtr,
    dequeue: pg_sys::SPIPlanPtr,
    forget_store: Option<pg_sys::SPIPlanPtr>,
    truncate: CString,
    orphans: CString,
}

impl Drop for Vectorizer {
    fn drop(&mut self) {
        // SAFETY: both plans were kept by SPI_keepplan and are freed once,
        // here, when the last reference (a running trigger holds one) goes.
        unsafe {
            pg_sys::SPI_freeplan(self.enqueue);
            pg_sys::SPI_freeplan(self.dequeue);
            if let Some(p) = self.forget_store {
                pg_sys::SPI_freeplan(p);
            }
        }
    }
}

/// The vectorizer as fired by one relation (the source or a partition):
/// where the key columns are in that relation's rows.
struct Firing {
    vectorizer: Rc<Vectorizer>,
    attnums: Vec<NonZeroUsize>,
}

thread_local! {
    static VECTORIZERS: RefCell<HashMap<i32, Rc<Vectorizer>>> = RefCell::new(HashMap::new());
    static FIRINGS: RefCell<HashMap<(i32, pg_sys::Oid), Rc<Firing>>> = RefCell::new(HashMap::new());
    /// Set by the relcache invalidation callback: a relation changed
    /// (renamed, dropped, altered), so plans are made anew at the next call.
    static STALE: Cell<bool> = const { Cell::new(false) };
}

/// Registered in `_PG_init`. Invalidation callbacks must not do real work,
/// so this only marks the cache stale.
pub unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    STALE.with(|s| s.set(true));
}

pub fn register_callbacks() {
    // SAFETY: called once per backend from _PG_init.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0)) }
}

fn forget_cache_if_stale() {
    if STALE.with(|s| s.replace(false)) {
        // Plans in use by a trigger further up the stack stay alive through
        // its Rc until it returns.
        FIRINGS.with(|f| f.borrow_mut().clear());
        VECTORIZERS.with(|v| v.borrow_mut().clear());
    }
}

fn raise(code: PgSqlErrorCode, message: String, hint: &str) -> ! {
    pgrx::pg_sys::panic::ErrorReport::new(code, message, "pgai_migrate")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

#[pg_trigger(
    sql = "CREATE FUNCTION migrate._vectorizer_trigger() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_vectorizer_trigger_wrapper';"
)]
pub fn _vectorizer_trigger<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let data = trigger.trigger_data();
    // SAFETY: tg_trigger and its tgnargs arguments are valid for the call.
    let id = unsafe {
        let t = &*data.tg_trigger;
        (t.tgnargs == 1)
            .then(|| CStr::from_ptr(*t.tgargs).to_str().ok()?.parse::<i32>().ok())
            .flatten()
    };
    let Some(id) = id else {
        raise(
            PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION,
            "migrate._vectorizer_trigger() needs a vectorizer id as its argument".into(),
            "Create vectorizers with migrate.create_vectorizer.",
        )
    };
    // SAFETY: a trigger call always has its relation.
    let relid = unsafe { (*data.tg_relation).rd_id };
    forget_cache_if_stale();
    let Some(firing) = firing(id, relid) else {
        // No catalog row: leftovers of a vectorizer whose catalog is gone
        // (a schema-only restore before its data); nothing to maintain.
        return Ok(None);
    };
    let v = &firing.vectorizer;
    let tupdesc = unsafe { (*data.tg_relation).rd_att };
    let keys = |tuple: *mut pg_sys::HeapTupleData| -> Vec<pg_sys::Datum> {
        firing
            .attnums
            .iter()
            .map(|&n| {
                // SAFETY: the tuple belongs to this relation; key columns
                // are NOT NULL.
                unsafe { pgrx::heap_getattr_raw(tuple, n, tupdesc) }
                    .expect("primary-key columns are never NULL")
            })
            .collect()
    };
    let _owner = AsRole::new(v.owner, true);
    let op = trigger.op()?;
    // SAFETY: one SPI connection for the statements of this call; an
    // ERROR on the way is cleaned up by the transaction's abort.
    unsafe { pg_sys::SPI_connect() };
    match op {
        PgTriggerOperation::Insert => execute(v.enqueue, &mut keys(data.tg_trigtuple)),
        PgTriggerOperation::Delete => forget(v, &mut keys(data.tg_trigtuple)),
        PgTriggerOperation::Update => {
            let mut old = keys(data.tg_trigtuple);
            let mut new = keys(data.tg_newtuple);
            let moved = old
                .iter()
                .zip(&new)
                .zip(&firing.attnums)
                .any(|((o, n), &attnum)| {
                    // SAFETY: attnum is a column of this tuple descriptor.
                    unsafe {
                        let att = pg_sys::TupleDescAttr(tupdesc, attnum.get() as i32 - 1);
                        !pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| {
                            datum_image_eq(*o, *n, (*att).attbyval, (*att).attlen as i32)
                        })
                    }
                });
            if moved {
                forget(v, &mut old);
            }
            execute(v.enqueue, &mut new);
        }
        PgTriggerOperation::Truncate => {
            // The source itself: empty everything. One partition: forget
            // the keys that no longer hold a row.
            let statement = if relid == v.source {
                &v.truncate
            } else {
                &v.orphans
            };
            // SAFETY: a NUL-terminated statement, inside the connection.
            let rc = unsafe { pg_sys::SPI_exec(statement.as_ptr(), 0) };
            if rc < 0 {
                error!("pgai_migrate: emptying the queue and store failed ({rc})");
            }
        }
    }
    // SAFETY: closes the connection opened above.
    unsafe { pg_sys::SPI_finish() };
    Ok(None)
}

/// The queue row first (waiting for a worker that holds the key), then,
/// in a later statement that sees what that worker stored, the store rows.
fn forget(v: &Vectorizer, key: &mut [pg_sys::Datum]) {
    execute(v.dequeue, key);
    if let Some(forget_store) = v.forget_store {
        execute(forget_store, key);
    }
}

/// Runs a kept plan inside the call's SPI connection; key values are
/// never NULL, which a NULL `Nulls` array tells SPI.
fn execute(plan: pg_sys::SPIPlanPtr, values: &mut [pg_sys::Datum]) {
    // SAFETY: a kept plan with as many parameters as key columns.
    let rc =
        unsafe { pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), std::ptr::null(), false, 0) };
    if rc < 0 {
        error!("pgai_migrate: queue maintenance failed ({rc})");
    }
}

/// The vectorizer `id` as fired by relation `relid`, checked: None when the
/// catalog has no such vectorizer; an ERROR when `relid` is neither its
/// source nor a partition of it.
fn firing(id: i32, relid: pg_sys::Oid) -> Option<Rc<Firing>> {
    if let Some(f) = FIRINGS.with(|f| f.borrow().get(&(id, relid)).cloned()) {
        return Some(f);
    }
    let vectorizer = vectorizer(id)?;
    // Catalog lookups as the extension owner: the writer may not even
    // have USAGE on schema migrate.
    let _elevated = AsRole::new(crate::catalog::extension_owner(), false);
    let serves = relid == vectorizer.source
        || one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors($1) a WHERE a.relid OPERATOR(pg_catalog.=) $2)",
            &[relid.into(), vectorizer.source.into()],
        ) == Some(true);
    if !serves {
        let name = relation_text(relid);
        raise(
            PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION,
            format!("vectorizer {id} serves only its source table, not {name}"),
            "Each vectorizer's triggers belong to its source; create a vectorizer for this table instead.",
        )
    }
    let attnums = vectorizer
        .keys
        .iter()
        .map(|k| {
            let name = CString::new(k.name.as_str()).expect("no NUL in names");
            // SAFETY: get_attnum returns 0 for a missing column.
            let n = unsafe { pg_sys::get_attnum(relid, name.as_ptr()) };
            NonZeroUsize::new(n.max(0) as usize).unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "vectorizer {id}: key column \"{}\" is missing from {}",
                        k.name,
                        relation_text(relid)
                    ),
                    "The source's primary key must stay as the vectorizer was created with; drop the vectorizer first.",
                )
            })
        })
        .collect();
    let f = Rc::new(Firing {
        vectorizer,
        attnums,
    });
    FIRINGS.with(|m| m.borrow_mut().insert((id, relid), f.clone()));
    Some(f)
}

fn vectorizer(id: i32) -> Option<Rc<Vectorizer>> {
    if let Some(v) = VECTORIZERS.with(|v| v.borrow().get(&id).cloned()) {
        return Some(v);
    }
    let _elevated = AsRole::new(crate::catalog::extension_owner(), false);
    let row: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_build_object('source', v.source::pg_catalog.oid::pg_catalog.int8,
                'owner', q.relowner::pg_catalog.int8, 'queue', v.queue_relid::pg_catalog.oid::pg_catalog.int8,
                'store', v.store_relid::pg_catalog.oid::pg_catalog.int8, 'keys', v.source_pk)
         FROM migrate.vectorizer v LEFT JOIN pg_catalog.pg_class q ON q.oid OPERATOR(pg_catalog.=) v.queue_relid
         WHERE v.id OPERATOR(pg_catalog.=) $1",
        &[id.into()],
    );
    // Not cached when missing: a data-only restore may add the row later
    // without any invalidation reaching this backend.
    let row = row?.0;
    let oid = |k: &str| row[k].as_u64().map(|o| pg_sys::Oid::from(o as u32));
    let mut schemas = HashMap::new();
    let mut name = |k: &str| {
        oid(k)
            .and_then(|o| crate::catalog::relation_name(o, &mut schemas))
            .map(|(s, n)| qualified(&s, &n))
    };
    let Some(queue) = name("queue") else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the queue of vectorizer {id} no longer exists"),
            "Drop the vectorizer with migrate.drop_vectorizer, or restore its queue.",
        )
    };
    let store = name("store");
    let source_sql = name("source").unwrap_or_default();
    let keys: Vec<KeyColumn> = serde_json::from_value(row["keys"].clone())
        .unwrap_or_else(|e| error!("pgai_migrate: vectorizer {id}: bad source_pk: {e}"));
    let sql = trigger_statements(&source_sql, &queue, store.as_deref(), &keys);
    let source = oid("source").unwrap_or(pg_sys::Oid::INVALID);
    let mut types: Vec<pg_sys::Oid> = keys
        .iter()
        .map(|k| {
            let name = CString::new(k.name.as_str()).expect("no NUL in names");
            // SAFETY: syscache lookups by OID and name.
            unsafe {
                let n = pg_sys::get_attnum(source, name.as_ptr());
                pg_sys::get_atttype(source, n)
            }
        })
        .collect();
    let v = Rc::new(Vectorizer {
        source,
        owner: oid("owner").unwrap_or(pg_sys::Oid::INVALID),
        enqueue: prepare(&sql.enqueue, &mut types),
        dequeue: prepare(&sql.dequeue, &mut types),
        forget_store: sql.forget_store.as_deref().map(|q| prepare(q, &mut types)),
        truncate: CString::new(sql.truncate).expect("no NUL in SQL"),
        orphans: CString::new(sql.orphans).expect("no NUL in SQL"),
        keys,
    });
    VECTORIZERS.with(|m| m.borrow_mut().insert(id, v.clone()));
    Some(v)
}

fn prepare(sql: &str, types: &mut [pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
    let text = CString::new(sql).expect("no NUL in SQL");
    // SAFETY: SPI calls within one connect/finish; the plan is kept past it.
    unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(text.as_ptr(), types.len() as i32, types.as_mut_ptr());
        if plan.is_null() {
            error!("pgai_migrate: could not plan {sql}");
        }
        pg_sys::SPI_keepplan(plan);
        pg_sys::SPI_finish();
        plan
    }
}

fn relation_text(relid: pg_sys::Oid) -> String {
    crate::catalog::relation_name(relid, &mut HashMap::new())
        .map(|(s, n)| qualified(&s, &n))
        .unwrap_or_else(|| format!("relation {}", u32::from(relid)))
}
