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

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
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
    types: Vec<KeyType>,
    enqueue: pg_sys::SPIPlanPtr,
    dequeue: pg_sys::SPIPlanPtr,
    forget_store: Option<pg_sys::SPIPlanPtr>,
    /// The same for arrays of keys; None when a key type has no array type.
    many: Option<ManyPlans>,
    truncate: CString,
    orphans: CString,
}

struct ManyPlans {
    enqueue: pg_sys::SPIPlanPtr,
    dequeue: pg_sys::SPIPlanPtr,
    forget_store: Option<pg_sys::SPIPlanPtr>,
}

/// How a key column's values are stored.
#[derive(Clone, Copy)]
struct KeyType {
    oid: pg_sys::Oid,
    array: pg_sys::Oid,
    len: i16,
    byval: bool,
    align: std::ffi::c_char,
}

impl Drop for Vectorizer {
    fn drop(&mut self) {
        // SAFETY: the plans were kept by SPI_keepplan and are freed once,
        // here, when the last reference (a running trigger holds one) goes.
        unsafe {
            pg_sys::SPI_freeplan(self.enqueue);
            pg_sys::SPI_freeplan(self.dequeue);
            if let Some(p) = self.forget_store {
                pg_sys::SPI_freeplan(p);
            }
            if let Some(m) = &self.many {
                pg_sys::SPI_freeplan(m.enqueue);
                pg_sys::SPI_freeplan(m.dequeue);
                if let Some(p) = m.forget_store {
                    pg_sys::SPI_freeplan(p);
                }
            }
        }
    }
}

/// Keys collected by row triggers, waiting for their statement's
/// statement-level trigger: `ncols` datums per key (by-reference values
/// copied into TopTransactionContext), each with the subtransaction that
/// collected it, distinct by binary image.
struct KeySet {
    datums: Vec<pg_sys::Datum>,
    subids: Vec<pg_sys::SubTransactionId>,
    seen: HashSet<Image, RandomState>,
}

impl Default for KeySet {
    fn default() -> KeySet {
        KeySet {
            datums: Vec::new(),
            subids: Vec::new(),
            seen: HashSet::with_hasher(KEY_HASH.with(RandomState::clone)),
        }
    }
}

thread_local! {
    /// The keyed hash (SipHash, random keys drawn once per backend) of the
    /// key images: the keys are whatever the statement writes, so they must
    /// not be able to collide by construction (multiples of 2^32 all fall
    /// in one bucket of the cheap hasher below, and a statement's
    /// collection turns quadratic).
    static KEY_HASH: RandomState = RandomState::new();
}

/// A multiply-rotate hasher for the per-row look-ups of ids and OIDs,
/// which no writer chooses.
#[derive(Default, Clone, Copy)]
struct Fast;

#[derive(Default)]
struct FastHasher(u64);

impl std::hash::BuildHasher for Fast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_ne_bytes(word));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    fn write_i32(&mut self, v: i32) {
        self.write_u64(v as u32 as u64)
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64)
    }
}

#[derive(PartialEq, Eq, Hash)]
enum Image {
    Word(usize),
    Bytes(Box<[u8]>),
}

impl KeySet {
    fn len(&self) -> usize {
        self.subids.len()
    }

    /// Adds a key (its values as the row holds them) unless an equal
    /// image is already there.
    fn push(&mut self, values: &[pg_sys::Datum], types: &[KeyType]) {
        // SAFETY: values are key values of the types given, not NULL.
        unsafe {
            let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
            let copies: Vec<pg_sys::Datum> = values
                .iter()
                .zip(types)
                .map(|(&d, t)| copy_datum(d, t))
                .collect();
            pg_sys::MemoryContextSwitchTo(old);
            if self.seen.insert(image(&copies, types)) {
                self.datums.extend_from_slice(&copies);
                self.subids.push(pg_sys::GetCurrentSubTransactionId());
            }
        }
    }

    /// Drops the keys of subtransaction `subid` and its children (every
    /// subtransaction started after it, while it is open, is one of them).
    fn forget_subtransaction(&mut self, subid: pg_sys::SubTransactionId, types: &[KeyType]) {
        if !self.subids.iter().any(|&s| s >= subid) {
            return;
        }
        let n = types.len();
        let mut kept = KeySet::default();
        for (i, &s) in self.subids.iter().enumerate() {
            if s < subid {
                let key = &self.datums[i * n..(i + 1) * n];
                // SAFETY: copies made by push, of these types.
                kept.seen.insert(unsafe { image(key, types) });
                kept.datums.extend_from_slice(key);
                kept.subids.push(s);
            }
        }
        *self = kept;
    }
}

/// A key's binary image, for telling keys apart (copy_datum detoasted the
/// values, so equal values have equal images).
unsafe fn image(key: &[pg_sys::Datum], types: &[KeyType]) -> Image {
    if key.len() == 1 && types[0].byval {
        return Image::Word(key[0].value());
    }
    let mut bytes = Vec::new();
    for (&d, t) in key.iter().zip(types) {
        let word;
        let b: &[u8] = if t.byval {
            word = d.value().to_ne_bytes();
            &word
        } else {
            match t.len {
                -1 => {
                    let v = d.cast_mut_ptr::<pg_sys::varlena>();
                    std::slice::from_raw_parts(
                        pgrx::vardata_any(v) as *const u8,
                        pgrx::varsize_any_exhdr(v),
                    )
                }
                -2 => CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>()).to_bytes(),
                n => std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), n as usize),
            }
        };
        bytes.extend_from_slice(&(b.len() as u32).to_ne_bytes());
        bytes.extend_from_slice(b);
    }
    Image::Bytes(bytes.into_boxed_slice())
}

/// A copy of a key value in the current memory context; varlena values
/// detoasted (so that the copy never points into the source's TOAST
/// table, and equal values have equal images).
unsafe fn copy_datum(d: pg_sys::Datum, t: &KeyType) -> pg_sys::Datum {
    if t.byval {
        return d;
    }
    match t.len {
        -1 => pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(d.cast_mut_ptr())),
        -2 => pg_sys::Datum::from(pg_sys::pstrdup(d.cast_mut_ptr())),
        n => {
            let p = pg_sys::palloc(n as usize);
            std::ptr::copy_nonoverlapping(d.cast_mut_ptr::<u8>(), p as *mut u8, n as usize);
            pg_sys::Datum::from(p)
        }
    }
}

/// One vectorizer's collected keys: to dequeue (and forget the store
/// rows of), and to queue.
struct Pending {
    types: Vec<KeyType>,
    forget: KeySet,
    enqueue: KeySet,
}

/// The vectorizer as fired by one relation (the source or a partition):
/// where the key columns are in that relation's rows.
struct Firing {
    vectorizer: Rc<Vectorizer>,
    attnums: Vec<NonZeroUsize>,
}

thread_local! {
    static VECTORIZERS: RefCell<HashMap<i32, Rc<Vectorizer>>> = RefCell::new(HashMap::new());
    static FIRINGS: RefCell<HashMap<(i32, pg_sys::Oid), Rc<Firing>, Fast>> = RefCell::new(HashMap::default());
    /// Set by the relcache invalidation callback: a relation changed
    /// (renamed, dropped, altered), so plans are made anew at the next call.
    static STALE: Cell<bool> = const { Cell::new(false) };
    /// Keys collected by row triggers, per vectorizer id, for the
    /// statement-level trigger to write.
    static PENDING: RefCell<HashMap<i32, Pending, Fast>> = RefCell::new(HashMap::default());
}

/// Keys are written early, by the row trigger, when this many are
/// collected (memory stays bounded on huge statements).
const MAX_PENDING: usize = 1 << 20;
/// Keys per array passed to one statement.
const CHUNK: usize = 1 << 16;

/// Registered in `_PG_init`. Invalidation callbacks must not do real work,
/// so this only marks the cache stale.
pub unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    STALE.with(|s| s.set(true));
}

pub fn register_callbacks() {
    // SAFETY: called once per backend from _PG_init.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0));
        pg_sys::RegisterXactCallback(Some(xact_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_event), std::ptr::null_mut());
    }
}

/// Transaction end: collected keys die with an abort (their copies with
/// the transaction's memory); at commit there should be none left, as
/// every statement whose rows collect keys fires the statement-level
/// trigger that writes them; should any be left, they are written now.
#[pg_guard]
unsafe extern "C-unwind" fn xact_event(
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
unsafe extern "C-unwind" fn subxact_event(
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
                    let att = pg_sys::TupleDescAttr(tupdesc, attnum.get() as i32 - 1);
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

/// Writes what the row triggers collected for vectorizer `id`: the
/// dequeues, then the store deletes (a later statement, which sees what a
/// worker we waited for stored), then the queue inserts; one statement
/// each per chunk of keys.
fn flush(id: i32, v: &Vectorizer) {
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
    let key_types: Vec<KeyType> = types
        .iter()
        .map(|&oid| {
            let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
            // SAFETY: syscache lookups of an existing type.
            unsafe {
                pg_sys::get_typlenbyvalalign(oid, &mut len, &mut byval, &mut align);
                KeyType {
                    oid,
                    array: pg_sys::get_array_type(oid),
                    len,
                    byval,
                    align,
                }
            }
        })
        .collect();
    let mut array_types: Vec<pg_sys::Oid> = key_types.iter().map(|t| t.array).collect();
    let many = array_types
        .iter()
        .all(|&a| a != pg_sys::Oid::INVALID)
        .then(|| ManyPlans {
            enqueue: prepare(&sql.enqueue_many, &mut array_types),
            dequeue: prepare(&sql.dequeue_many, &mut array_types),
            forget_store: sql
                .forget_store_many
                .as_deref()
                .map(|q| prepare(q, &mut array_types)),
        });
    let v = Rc::new(Vectorizer {
        source,
        owner: oid("owner").unwrap_or(pg_sys::Oid::INVALID),
        types: key_types,
        many,
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
