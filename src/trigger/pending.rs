//! Keys collected by row triggers for the statement-level trigger, and
//! writing them: per chunk of keys, one statement each; at transaction
//! and subtransaction end, what is left is written or dropped.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::cache::{forget_cache_if_stale, vectorizer, Vectorizer};
use super::keyset::{Fast, KeySet, KeyType};
use crate::security::AsRole;

/// One vectorizer's collected keys: to dequeue (and forget the store
/// rows of), and to queue.
pub(super) struct Pending {
    pub(super) types: Vec<KeyType>,
    pub(super) forget: KeySet,
    pub(super) enqueue: KeySet,
}

thread_local! {
    /// Keys collected by row triggers, per vectorizer id, for the
    /// statement-level trigger to write.
    pub(super) static PENDING: RefCell<HashMap<i32, Pending, Fast>> = RefCell::new(HashMap::default());
}

/// Keys are written early, by the row trigger, when this many are
/// collected (memory stays bounded on huge statements).
pub(super) const MAX_PENDING: usize = 1 << 20;
/// Keys per array passed to one statement.
pub(super) const CHUNK: usize = 1 << 16;

/// Transaction end: collected keys die with an abort (their copies with
/// the transaction's memory); at commit there should be none left, as
/// every statement whose rows collect keys fires the statement-level
/// trigger that writes them; should any be left, they are written now.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            let ids: Vec<i32> = PENDING.with(|p| {
                let mut p = p.borrow_mut();
                p.retain(|_, pending| pending.forget.len() > 0 || pending.enqueue.len() > 0);
                p.keys().copied().collect()
            });
            if !ids.is_empty() {
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
                for id in ids {
                    forget_cache_if_stale();
                    match vectorizer(id) {
                        Some(v) => flush(id, &v),
                        None => {
                            PENDING.with(|p| p.borrow_mut().remove(&id));
                        }
                    }
                }
                pg_sys::PopActiveSnapshot();
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
        | pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            PENDING.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.clear()
                }
            });
        }
        _ => {}
    }
}

/// A subtransaction's abort drops the keys its rows (and its children's)
/// collected.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn subxact_event(
    event: pg_sys::SubXactEvent::Type,
    subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event != pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        return;
    }
    PENDING.with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            return;
        };
        p.retain(|_, pending| {
            let n = pending.types.len();
            let types = pending.types.clone();
            pending.forget.forget_subtransaction(subid, &types);
            pending.enqueue.forget_subtransaction(subid, &types);
            n > 0 && (pending.forget.len() > 0 || pending.enqueue.len() > 0)
        });
    });
}

/// Writes what the row triggers collected for vectorizer `id`: the
/// dequeues, then the store deletes (a later statement, which sees what a
/// worker we waited for stored), then the queue inserts; one statement
/// each per chunk of keys.
pub(super) fn flush(id: i32, v: &Vectorizer) {
    let Some(pending) = PENDING.with(|p| p.borrow_mut().remove(&id)) else {
        return;
    };
    if pending.forget.len() == 0 && pending.enqueue.len() == 0 {
        return;
    }
    let n = v.types.len();
    let _owner = AsRole::new(v.owner, true);
    // SAFETY: one SPI connection for the statements of this call.
    unsafe { pg_sys::SPI_connect() };
    let run = |single: pg_sys::SPIPlanPtr, plan: Option<pg_sys::SPIPlanPtr>, keys: &KeySet| {
        for chunk in keys.datums.chunks(CHUNK * n) {
            let Some(plan) = plan.filter(|_| chunk.len() > n) else {
                for key in chunk.chunks(n) {
                    execute(single, &mut key.to_vec());
                }
                continue;
            };
            let count = chunk.len() / n;
            let mut arrays: Vec<pg_sys::Datum> = v
                .types
                .iter()
                .enumerate()
                .map(|(col, t)| {
                    let mut elems: Vec<pg_sys::Datum> =
                        (0..count).map(|k| chunk[k * n + col]).collect();
                    // SAFETY: elements of the key column's type, copied
                    // into the array (in the SPI procedure's memory).
                    pg_sys::Datum::from(unsafe {
                        pg_sys::construct_array(
                            elems.as_mut_ptr(),
                            count as i32,
                            t.oid,
                            t.len as i32,
                            t.byval,
                            t.align,
                        )
                    })
                })
                .collect();
            execute(plan, &mut arrays);
        }
    };
    let many = v.many.as_ref();
    if pending.forget.len() > 0 {
        run(v.dequeue, many.map(|m| m.dequeue), &pending.forget);
        if let Some(single) = v.forget_store {
            run(single, many.and_then(|m| m.forget_store), &pending.forget);
        }
    }
    if pending.enqueue.len() > 0 {
        run(v.enqueue, many.map(|m| m.enqueue), &pending.enqueue);
    }
    // SAFETY: closes the connection opened above.
    unsafe { pg_sys::SPI_finish() };
}

/// The queue row first (waiting for a worker that holds the key), then,
/// in a later statement that sees what that worker stored, the store rows.
pub(super) fn forget(v: &Vectorizer, key: &mut [pg_sys::Datum]) {
    execute(v.dequeue, key);
    if let Some(forget_store) = v.forget_store {
        execute(forget_store, key);
    }
}

/// Runs a kept plan inside the call's SPI connection; key values are
/// never NULL, which a NULL `Nulls` array tells SPI.
pub(super) fn execute(plan: pg_sys::SPIPlanPtr, values: &mut [pg_sys::Datum]) {
    // SAFETY: a kept plan with as many parameters as key columns.
    let rc =
        unsafe { pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), std::ptr::null(), false, 0) };
    if rc < 0 {
        error!("pgai_migrate: queue maintenance failed ({rc})");
    }
}
