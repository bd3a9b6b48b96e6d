//! Each vectorizer's kept plans, per backend, until a relation changes
//! (relcache invalidation): read from the catalog as the extension owner
//! at a trigger's first call.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::num::NonZeroUsize;
use std::rc::Rc;

use pgai_migrate_core::ident::qualified;
use pgai_migrate_core::plan::trigger_statements;
use pgai_migrate_core::KeyColumn;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::JsonB;

use super::keyset::{Fast, KeyType};
use super::raise;
use crate::security::AsRole;
use crate::spi::one;

/// One vectorizer's kept plans.
pub(super) struct Vectorizer {
    pub(super) source: pg_sys::Oid,
    /// Owner of the queue: the source's owner when it was created.
    pub(super) owner: pg_sys::Oid,
    pub(super) keys: Vec<KeyColumn>,
    pub(super) types: Vec<KeyType>,
    pub(super) enqueue: pg_sys::SPIPlanPtr,
    pub(super) dequeue: pg_sys::SPIPlanPtr,
    pub(super) forget_store: Option<pg_sys::SPIPlanPtr>,
    /// The same for arrays of keys; None when a key type has no array type.
    pub(super) many: Option<ManyPlans>,
    pub(super) truncate: CString,
    pub(super) orphans: CString,
}

pub(super) struct ManyPlans {
    pub(super) enqueue: pg_sys::SPIPlanPtr,
    pub(super) dequeue: pg_sys::SPIPlanPtr,
    pub(super) forget_store: Option<pg_sys::SPIPlanPtr>,
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

/// The vectorizer as fired by one relation (the source or a partition):
/// where the key columns are in that relation's rows.
pub(super) struct Firing {
    pub(super) vectorizer: Rc<Vectorizer>,
    pub(super) attnums: Vec<NonZeroUsize>,
}

thread_local! {
    static VECTORIZERS: RefCell<HashMap<i32, Rc<Vectorizer>>> = RefCell::new(HashMap::new());
    static FIRINGS: RefCell<HashMap<(i32, pg_sys::Oid), Rc<Firing>, Fast>> = RefCell::new(HashMap::default());
    /// Set by the relcache invalidation callback: a relation changed
    /// (renamed, dropped, altered), so plans are made anew at the next call.
    static STALE: Cell<bool> = const { Cell::new(false) };
}

/// Registered in `_PG_init`. Invalidation callbacks must not do real work,
/// so this only marks the cache stale.
pub(super) unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    STALE.with(|s| s.set(true));
}

pub(super) fn forget_cache_if_stale() {
    if STALE.with(|s| s.replace(false)) {
        // Plans in use by a trigger further up the stack stay alive through
        // its Rc until it returns.
        FIRINGS.with(|f| f.borrow_mut().clear());
        VECTORIZERS.with(|v| v.borrow_mut().clear());
    }
}

/// The vectorizer `id` as fired by relation `relid`, checked: None when the
/// catalog has no such vectorizer; an ERROR when `relid` is neither its
/// source nor a partition of it.
pub(super) fn firing(id: i32, relid: pg_sys::Oid) -> Option<Rc<Firing>> {
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

pub(super) fn vectorizer(id: i32) -> Option<Rc<Vectorizer>> {
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

pub(super) fn prepare(sql: &str, types: &mut [pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
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

pub(super) fn relation_text(relid: pg_sys::Oid) -> String {
    crate::catalog::relation_name(relid, &mut HashMap::new())
        .map(|(s, n)| qualified(&s, &n))
        .unwrap_or_else(|| format!("relation {}", u32::from(relid)))
}
