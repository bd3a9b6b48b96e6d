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
//! Multi-row statements: when the source also has the vectorizer's
//! statement-level trigger (`…_stmt`, see `statement_trigger_ddl`), the
//! row-level triggers only collect the keys (copied into the transaction's
//! memory, distinct by binary image), and the statement-level trigger,
//! which fires after every row trigger of its statement, writes them with
//! one statement each (`ROWS FROM (unnest($1), …)`): the queue inserts,
//! the dequeues, then the store deletes, in the order the row-at-a-time
//! path runs them. Without that trigger (a partition, whose statements may
//! fire the parent's statement triggers instead, an installation that has
//! not added it yet, or one disabled), each row writes at once as before.
//! A subtransaction's abort drops the keys its rows collected; keys still
//! collected at commit (there should be none) are written then.
//!
//! It writes the queue and the store as their owner (the source's owner),
//! security-restricted like `CREATE INDEX` does, without the GUC save and
//! restore a `SECURITY DEFINER` function with `SET search_path` pays per
//! row; every statement it runs is fully qualified.

mod cache;
mod keyset;
mod pending;

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

use crate::security::AsRole;
use cache::{firing, forget_cache_if_stale, relcache_changed};
use keyset::KeySet;
use pending::{execute, flush, forget, subxact_event, xact_event, Pending, MAX_PENDING, PENDING};

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

pub fn register_callbacks() {
    // SAFETY: called once per backend from _PG_init.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0));
        pg_sys::RegisterXactCallback(Some(xact_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_event), std::ptr::null_mut());
    }
}

pub(super) fn raise(code: PgSqlErrorCode, message: String, hint: &str) -> ! {
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
    let op = trigger.op()?;
    let row_level = matches!(trigger.level(), PgTriggerLevel::Row);
    let truncate = matches!(op, PgTriggerOperation::Truncate);
    if !row_level && !truncate && PENDING.with(|p| p.borrow().is_empty()) {
        // The statement-level trigger of a statement whose rows wrote
        // everything themselves (one row, or none): nothing to do.
        return Ok(None);
    }
    forget_cache_if_stale();
    let Some(firing) = firing(id, relid) else {
        // No catalog row: leftovers of a vectorizer whose catalog is gone
        // (a schema-only restore before its data); nothing to maintain.
        return Ok(None);
    };
    // After-row triggers of a big statement all fire at its end, in one
    // loop that does not look for interrupts: look here, so that
    // statement_timeout and cancels still reach a long statement.
    pgrx::check_for_interrupts!();
    let v = &firing.vectorizer;
    if !row_level && !truncate {
        // The statement-level trigger: write what the rows collected.
        flush(id, v);
        return Ok(None);
    }
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
    let moved = |old: &[pg_sys::Datum], new: &[pg_sys::Datum]| {
        old.iter()
            .zip(new)
            .zip(&firing.attnums)
            .any(|((o, n), &attnum)| {
                // SAFETY: attnum is a column of this tuple descriptor.
                unsafe {
                    let att = tuple_desc_attr(tupdesc, attnum.get() as usize - 1);
                    !pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| {
                        datum_image_eq(*o, *n, (*att).attbyval, (*att).attlen as i32)
                    })
                }
            })
    };
    // The statement's first row writes at once (a one-row statement then
    // costs the statement-level trigger nothing but a look-up); the
    // following ones are collected for the statement-level trigger.
    if !truncate && v.many.is_some() && batched(data, &op) {
        let (first, full) = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let Some(pending) = p.get_mut(&id) else {
                p.insert(
                    id,
                    Pending {
                        types: v.types.clone(),
                        forget: KeySet::default(),
                        enqueue: KeySet::default(),
                    },
                );
                return (true, false);
            };
            match op {
                PgTriggerOperation::Insert => {
                    pending.enqueue.push(&keys(data.tg_trigtuple), &v.types)
                }
                PgTriggerOperation::Delete => {
                    pending.forget.push(&keys(data.tg_trigtuple), &v.types)
                }
                _ => {
                    let old = keys(data.tg_trigtuple);
                    let new = keys(data.tg_newtuple);
                    if moved(&old, &new) {
                        pending.forget.push(&old, &v.types);
                    }
                    pending.enqueue.push(&new, &v.types);
                }
            }
            (
                false,
                pending.forget.len() + pending.enqueue.len() >= MAX_PENDING,
            )
        });
        if full {
            flush(id, v);
        }
        if !first {
            return Ok(None);
        }
    }
    let _owner = AsRole::new(v.owner, true);
    // SAFETY: one SPI connection for the statements of this call; an
    // ERROR on the way is cleaned up by the transaction's abort.
    unsafe { pg_sys::SPI_connect() };
    match op {
        PgTriggerOperation::Insert => execute(v.enqueue, &mut keys(data.tg_trigtuple)),
        PgTriggerOperation::Delete => forget(v, &mut keys(data.tg_trigtuple)),
        PgTriggerOperation::Update => {
            let mut old = keys(data.tg_trigtuple);
            let mut new = keys(data.tg_newtuple);
            if moved(&old, &new) {
                forget(v, &mut old);
            }
            execute(v.enqueue, &mut new);
        }
        PgTriggerOperation::Truncate => {
            // The source itself: empty everything. One partition: forget
            // the keys that no longer hold a row.
            let (statement, _all_rows) = if relid == v.source {
                (&v.truncate, None)
            } else {
                // Reads the source: a policy hiding rows from the owner
                // must be an error, not a reason to delete their keys.
                (&v.orphans, Some(crate::security::RowSecurityOff::new()))
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

/// Whether this row trigger's statement is sure to fire the vectorizer's
/// statement-level trigger on the same relation afterwards: a plain table
/// (not a partition: rows routed into a partition fire the statement
/// triggers of the table the statement named), with an AFTER … FOR EACH
/// STATEMENT trigger calling this function with the same argument, for
/// this event, enabled exactly as the firing trigger is, and for UPDATE
/// listing at least the firing trigger's columns.
fn batched(data: &pg_sys::TriggerData, op: &PgTriggerOperation) -> bool {
    const ROW: i16 = 1 << 0;
    const BEFORE: i16 = 1 << 1;
    const INSERT: i16 = 1 << 2;
    const DELETE: i16 = 1 << 3;
    const UPDATE: i16 = 1 << 4;
    const INSTEAD: i16 = 1 << 6;
    let event = match op {
        PgTriggerOperation::Insert => INSERT,
        PgTriggerOperation::Delete => DELETE,
        PgTriggerOperation::Update => UPDATE,
        PgTriggerOperation::Truncate => return false,
    };
    // SAFETY: the trigger data, its relation and trigger descriptor are
    // valid for the call.
    unsafe {
        let rel = &*data.tg_relation;
        let form = &*rel.rd_rel;
        if form.relispartition || form.relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char {
            return false;
        }
        let me = &*data.tg_trigger;
        let Some(desc) = rel.trigdesc.as_ref() else {
            return false;
        };
        let triggers = std::slice::from_raw_parts(desc.triggers, desc.numtriggers.max(0) as usize);
        let arg = CStr::from_ptr(*me.tgargs);
        let columns = |t: &pg_sys::Trigger| -> &[i16] {
            if t.tgnattr > 0 {
                std::slice::from_raw_parts(t.tgattr, t.tgnattr as usize)
            } else {
                &[]
            }
        };
        triggers.iter().any(|t| {
            t.tgfoid == me.tgfoid
                && t.tgtype & (ROW | BEFORE | INSTEAD) == 0
                && t.tgtype & event != 0
                && t.tgenabled == me.tgenabled
                && t.tgnargs == 1
                && CStr::from_ptr(*t.tgargs) == arg
                && (event != UPDATE
                    || columns(t).is_empty()
                    || (!columns(me).is_empty()
                        && columns(me).iter().all(|c| columns(t).contains(c))))
        })
    }
}

/// The `i`th attribute of a tuple descriptor: a function from PostgreSQL 18
/// (the attributes follow its compact copies), an array before.
///
/// # Safety
/// `i` is below the descriptor's `natts`.
#[cfg(any(feature = "pg16", feature = "pg17"))]
unsafe fn tuple_desc_attr(desc: pg_sys::TupleDesc, i: usize) -> *mut pg_sys::FormData_pg_attribute {
    (*desc).attrs.as_mut_ptr().add(i)
}

/// See above.
///
/// # Safety
/// `i` is below the descriptor's `natts`.
#[cfg(not(any(feature = "pg16", feature = "pg17")))]
unsafe fn tuple_desc_attr(desc: pg_sys::TupleDesc, i: usize) -> *mut pg_sys::FormData_pg_attribute {
    pg_sys::TupleDescAttr(desc, i as i32)
}
