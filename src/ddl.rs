//! Following DDL on sources and on a vectorizer's own objects. The event
//! triggers (sql/events.sql) call in here; the decisions are made by the
//! pure `pgai_migrate_core::plan::sync`.

use std::collections::HashMap;

use pgai_migrate_core::plan::sync::{sync, Current, Recorded};
use pgai_migrate_core::KeyColumn;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

use crate::catalog::{extension_owner, relation_name};
use crate::error::OrRaise;
use crate::security::{AsRole, RowSecurityOff};
use crate::spi::{one, run, run_with};

thread_local! {
    static IN_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// After ALTER TABLE / SCHEMA / VIEW: follow renames into the config, the
/// catalog's names and the key columns of the queues, store and view;
/// refuse (ERROR, so the DDL rolls back) a changed primary key.
/// `relids`: the relations the DDL touched (NULL: all vectorizers, e.g.
/// after a schema rename).
#[pg_extern(volatile, parallel_unsafe, schema = "migrate")]
fn _vectorizer_sync(relids: Option<Vec<pg_sys::Oid>>) {
    // The renames run here fire the event trigger again: nothing to do
    // then, the outer call is already at it.
    if IN_SYNC.with(|f| f.replace(true)) {
        return;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_SYNC.with(|f| f.set(false));
        }
    }
    let _reset = Reset;
    let touched = relids.clone();
    let rows: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'id', v.id, 'name', v.name, 'source', v.source::pg_catalog.oid::pg_catalog.int8,
                'source_pk', v.source_pk, 'read_columns', pg_catalog.to_jsonb(v.read_columns), 'config', v.config,
                'relids', pg_catalog.jsonb_build_array(v.queue_relid::pg_catalog.oid::pg_catalog.int8, v.queue_failed_relid::pg_catalog.oid::pg_catalog.int8,
                                                      v.store_relid::pg_catalog.oid::pg_catalog.int8, v.view_relid::pg_catalog.oid::pg_catalog.int8)) ORDER BY v.id)
         FROM migrate.vectorizer v
         WHERE $1 IS NULL OR v.source::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) OR v.queue_relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)
            OR v.queue_failed_relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) OR v.store_relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)
            OR v.view_relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)",
        &[relids.into()],
    );
    let rows = rows.map(|j| j.0).unwrap_or(Value::Null);
    let mut schemas = HashMap::new();
    for row in rows.as_array().into_iter().flatten() {
        let oid = |v: &Value| v.as_u64().map(|o| pg_sys::Oid::from(o as u32));
        let id = row["id"].as_i64().unwrap_or_default() as i32;
        let Some(source) = oid(&row["source"]) else {
            continue;
        };
        // regclass text under the fixed search_path: schema-qualified,
        // quoted only where needed, as create recorded it.
        let Some(source_name) = one::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class WHERE oid = $1",
            &[source.into()],
        ) else {
            continue; // dropped: the sql_drop trigger takes care of it
        };
        let relids = &row["relids"];
        let objects: Vec<pg_sys::Oid> = (0..4).filter_map(|i| oid(&relids[i])).collect();
        follow_owner(
            source,
            &objects,
            touched.as_deref(),
            row["name"].as_str().unwrap_or_default(),
        );
        let mut rel = |i: usize| oid(&relids[i]).and_then(|o| relation_name(o, &mut schemas));
        let (Some(queue), Some(failed_queue)) = (rel(0), rel(1)) else {
            continue;
        };
        let (store, view) = (rel(2), rel(3));
        let recorded = Recorded {
            name: row["name"].as_str().unwrap_or_default().to_string(),
            source_pk: serde_json::from_value(row["source_pk"].clone()).unwrap_or_default(),
            read_columns: serde_json::from_value(row["read_columns"].clone()).unwrap_or_default(),
            config: row["config"].clone(),
        };
        let strings = |j: Option<JsonB>| -> Vec<Value> {
            j.and_then(|j| j.0.as_array().cloned()).unwrap_or_default()
        };
        // The key as create read it: names and types as format_type
        // prints them under the fixed search_path.
        let table = crate::catalog::source_table(source);
        let primary_key: Vec<(String, String)> = table
            .primary_key
            .iter()
            .filter_map(|k| table.column(k))
            .map(|c| (c.name.clone(), c.type_sql.clone()))
            .collect();
        let read_now: Vec<String> = strings(one(
            "SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.ord)
             FROM pg_catalog.pg_trigger t
             CROSS JOIN LATERAL pg_catalog.unnest(t.tgattr) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = u.attnum
             WHERE t.tgrelid = $1 AND t.tgfoid = 'migrate._vectorizer_trigger()'::pg_catalog.regprocedure
               AND t.tgargs = (pg_catalog.convert_to($2::pg_catalog.text, 'UTF8') OPERATOR(pg_catalog.||) '\\x00'::pg_catalog.bytea)
               AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 17) OPERATOR(pg_catalog.=) 17",
            &[source.into(), id.into()],
        ))
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
        // No primary key at all: a restore that has not added it yet (a
        // DBA's DROP CONSTRAINT of the key is refused by the sql_drop
        // trigger), or an ALTER between the key's drop and re-add.
        if primary_key.is_empty() {
            continue;
        }
        let now = Current {
            source: source_name,
            primary_key,
            // Without its update trigger (about to be refused by the
            // sql_drop trigger) the read columns stay as recorded.
            read_columns: if read_now.is_empty() {
                recorded.read_columns.clone()
            } else {
                read_now
            },
            queue,
            failed_queue,
            store,
            view,
        };
        let synced = sync(&recorded, &now).or_raise();
        if synced.ddl.is_empty()
            && synced.config == recorded.config
            && synced.source_pk == recorded.source_pk
            && synced.read_columns == recorded.read_columns
        {
            continue;
        }
        let _elevated = AsRole::new(extension_owner(), false);
        for sql in &synced.ddl {
            run(sql);
        }
        let pk: Vec<Value> = synced
            .source_pk
            .iter()
            .map(|k: &KeyColumn| serde_json::to_value(k).expect("plain struct"))
            .collect();
        run_with(
            "UPDATE migrate.vectorizer v SET source_pk = $2, read_columns = ARRAY(SELECT pg_catalog.jsonb_array_elements_text($3)), config = $4,
                    queue_schema = $4 OPERATOR(pg_catalog.->>) 'queue_schema', queue_table = $4 OPERATOR(pg_catalog.->>) 'queue_table',
                    queue_failed_table = (SELECT relname FROM pg_catalog.pg_class WHERE oid = v.queue_failed_relid),
                    target_schema = $4 OPERATOR(pg_catalog.#>>) '{destination,target_schema}', target_table = $4 OPERATOR(pg_catalog.#>>) '{destination,target_table}',
                    view_schema = $4 OPERATOR(pg_catalog.#>>) '{destination,view_schema}', view_name = $4 OPERATOR(pg_catalog.#>>) '{destination,view_name}'
             WHERE v.id = $1",
            &[
                id.into(),
                JsonB(Value::Array(pk)).into(),
                JsonB(serde_json::json!(synced.read_columns)).into(),
                JsonB(synced.config).into(),
            ],
        );
    }
}

thread_local! {
    /// Leaf partitions of each partitioned source when the current DDL
    /// command started, by vectorizer id.
    static LEAVES_BEFORE: std::cell::RefCell<HashMap<i32, Vec<pg_sys::Oid>>> =
        std::cell::RefCell::new(HashMap::new());
}

/// What the partition bookkeeping needs of each vectorizer on a
/// partitioned source: (id, source, queue owner, source's regclass text,
/// queue, store, key columns, leaves now).
/// A vectorizer's queues, store and view belong to its source's owner:
/// the trigger writes and the worker's steps run as that role, and only it
/// may read the embeddings. So after `ALTER TABLE source OWNER TO …` they
/// move to the new owner (grants move with them, and the old owner keeps
/// nothing); an owner change of one of them alone is refused.
fn follow_owner(
    source: pg_sys::Oid,
    objects: &[pg_sys::Oid],
    touched: Option<&[pg_sys::Oid]>,
    name: &str,
) {
    let differ: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(c.oid::pg_catalog.regclass::pg_catalog.text,
                    c.relkind OPERATOR(pg_catalog.=) 'v', pg_catalog.pg_get_userbyid(s.relowner)) ORDER BY c.oid)
         FROM pg_catalog.pg_class c, pg_catalog.pg_class s
         WHERE s.oid OPERATOR(pg_catalog.=) $1 AND c.oid OPERATOR(pg_catalog.=) ANY ($2)
           AND c.relowner OPERATOR(pg_catalog.<>) s.relowner",
        &[source.into(), objects.to_vec().into()],
    );
    let Some(JsonB(Value::Array(differ))) = differ else {
        return;
    };
    if !touched.is_none_or(|t| t.contains(&source)) {
        let rel = differ[0][0].as_str().unwrap_or_default();
        pgrx::pg_sys::panic::ErrorReport::new(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot change the owner of {rel}: it belongs to vectorizer \"{name}\", whose relations belong to the owner of its source table"),
            "pgai_migrate",
        )
        .set_hint("ALTER TABLE on the source table … OWNER TO … moves the vectorizer's relations with it")
        .report(PgLogLevel::ERROR);
    }
    let _elevated = AsRole::new(extension_owner(), false);
    for d in &differ {
        let (rel, view, owner) = (
            d[0].as_str().unwrap_or_default(),
            d[1].as_bool() == Some(true),
            d[2].as_str().unwrap_or_default(),
        );
        let kind = if view { "VIEW" } else { "TABLE" };
        run(&format!(
            "ALTER {kind} {rel} OWNER TO {}",
            pgai_migrate_core::ident::quote_ident(owner)
        ));
    }
}

fn partitioned_vectorizers() -> Vec<(i32, Value)> {
    let rows: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'id', v.id, 'owner', q.relowner::pg_catalog.int8, 'source', v.source::pg_catalog.text,
                'queue', v.queue_relid::pg_catalog.text, 'store', v.store_relid::pg_catalog.text, 'keys', v.source_pk,
                'leaves', (SELECT pg_catalog.jsonb_agg(t.relid::pg_catalog.oid::pg_catalog.int8)
                           FROM pg_catalog.pg_partition_tree(v.source) t WHERE t.isleaf)))
         FROM migrate.vectorizer v
         JOIN pg_catalog.pg_class c ON c.oid = v.source AND c.relkind = 'p'
         JOIN pg_catalog.pg_class q ON q.oid = v.queue_relid",
        &[],
    );
    rows.and_then(|j| j.0.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v["id"].as_i64().unwrap_or_default() as i32, v))
        .collect()
}

fn leaves(v: &Value) -> Vec<pg_sys::Oid> {
    v["leaves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_u64().map(|o| pg_sys::Oid::from(o as u32)))
        .collect()
}

/// ddl_command_start: remember the partitions of partitioned sources.
#[pg_extern(volatile, parallel_unsafe, schema = "migrate")]
fn _vectorizer_ddl_start() {
    let before: HashMap<i32, Vec<pg_sys::Oid>> = partitioned_vectorizers()
        .iter()
        .map(|(id, v)| (*id, leaves(v)))
        .collect();
    LEAVES_BEFORE.with(|l| *l.borrow_mut() = before);
}

/// ddl_command_end: a partition attached (or created) has its rows queued
/// and gets the TRUNCATE trigger; one detached has its rows' embeddings and
/// queue entries removed and loses the trigger; one dropped leaves keys
/// without rows, which are forgotten.
#[pg_extern(volatile, parallel_unsafe, schema = "migrate")]
fn _vectorizer_partitions() {
    let before = LEAVES_BEFORE.with(|l| std::mem::take(&mut *l.borrow_mut()));
    if before.is_empty() {
        return;
    }
    for (id, v) in partitioned_vectorizers() {
        let Some(was) = before.get(&id) else { continue };
        let now = leaves(&v);
        let keys: Vec<KeyColumn> = serde_json::from_value(v["keys"].clone()).unwrap_or_default();
        let queue = v["queue"].as_str().unwrap_or_default();
        let store = v["store"].as_str();
        let source = v["source"].as_str().unwrap_or_default();
        let owner = pg_sys::Oid::from(v["owner"].as_u64().unwrap_or_default() as u32);
        let name = format!("_vectorizer_src_trg_{id}");
        let text = |oid: pg_sys::Oid| {
            one::<String>(
                "SELECT $1::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class WHERE oid = $1",
                &[oid.into()],
            )
        };
        let mut dropped = false;
        for &oid in now.iter().filter(|l| !was.contains(l)) {
            let Some(leaf) = text(oid) else { continue };
            // A table made in this transaction (CREATE TABLE … PARTITION
            // OF) has no rows another transaction could have committed.
            if !created_in_this_transaction(oid) {
                crate::api::refuse_old_snapshot(
                    "",
                    &format!("cannot queue the rows of partition {leaf}"),
                    "attach the partition in a READ COMMITTED transaction (the default)",
                );
            }
            {
                let _ext = AsRole::new(extension_owner(), false);
                run(&pgai_migrate_core::plan::partition_trigger_ddl(
                    id, &name, &leaf,
                ));
            }
            let _owner = AsRole::new(owner, true);
            let _all_rows = RowSecurityOff::new();
            run(&pgai_migrate_core::plan::queue_rows_sql(
                queue, &leaf, &keys,
            ));
        }
        for leaf in was.iter().filter(|l| !now.contains(l)) {
            match text(*leaf) {
                Some(detached) => {
                    {
                        let _owner = AsRole::new(owner, true);
                        let _all_rows = RowSecurityOff::new();
                        run(&pgai_migrate_core::plan::forget_rows_sql(
                            queue, store, &detached, &keys,
                        ));
                    }
                    let _ext = AsRole::new(extension_owner(), false);
                    run(&format!(
                        "DROP TRIGGER IF EXISTS {} ON {detached}",
                        pgai_migrate_core::ident::quote_ident(&format!("{name}_truncate"))
                    ));
                }
                None => dropped = true,
            }
        }
        if dropped {
            let sql = pgai_migrate_core::plan::trigger_statements(source, queue, store, &keys);
            let _owner = AsRole::new(owner, true);
            let _all_rows = RowSecurityOff::new();
            run(&sql.orphans);
        }
    }
}

/// Whether relation `relid` was created by the current transaction (the
/// relcache knows: `rd_createSubid`).
fn created_in_this_transaction(relid: pg_sys::Oid) -> bool {
    // SAFETY: the relation exists (its name was just read); the reference
    // taken is released before returning.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return false;
        }
        let created = (*rel).rd_createSubid != 0; // InvalidSubTransactionId
        pg_sys::RelationClose(rel);
        created
    }
}
