//! Moving vectorizers made by an earlier version onto this one's objects;
//! called once by the update script (`sql/pgai_migrate--0.1.0--0.2.0.sql`),
//! which declares this function for the duration of the update only.

use pgai_migrate_core::ident::{qualified, quote_ident};
use pgai_migrate_core::plan::steps::FIXED_SEARCH_PATH;
use pgai_migrate_core::plan::{
    partition_trigger_ddl, statement_trigger_ddl, trigger_ddl, trigger_function_call, view_query,
};
use pgai_migrate_core::{KeyColumn, SourceColumn};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

use crate::catalog;
use crate::security::search_path;
use crate::spi::{one, run, run_with};

/// 0.1.0 → 0.2.0: each vectorizer's generated PL/pgSQL trigger function
/// and its triggers give way to triggers calling
/// `migrate._vectorizer_trigger('<id>')`; the catalog gains the read
/// columns and the key's pinned equality operators; a view whose join was
/// bound to an operator outside pg_catalog (0.1.0 found a varchar key's
/// `=` by name) is rebuilt with the pinned one.
#[pg_extern(sql = false)]
fn upgrade_from_0_1_0() {
    let _fixed = search_path(FIXED_SEARCH_PATH);
    let rows: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'id', v.id, 'source', v.source::pg_catalog.oid::pg_catalog.int8,
                'trigger_schema', v.trigger_schema, 'trigger_function', v.trigger_function,
                'store', v.store_relid::pg_catalog.oid::pg_catalog.int8, 'view', v.view_relid::pg_catalog.oid::pg_catalog.int8) ORDER BY v.id)
         FROM migrate.vectorizer v",
        &[],
    );
    let rows = rows.map(|j| j.0).unwrap_or(Value::Null);
    let mut schemas = std::collections::HashMap::new();
    for row in rows.as_array().into_iter().flatten() {
        let oid = |v: &Value| v.as_u64().map(|o| pg_sys::Oid::from(o as u32));
        let id = row["id"].as_i64().unwrap_or_default() as i32;
        let base = row["trigger_function"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let function = qualified(row["trigger_schema"].as_str().unwrap_or_default(), &base);
        let Some(relid) = oid(&row["source"]) else {
            continue;
        };
        if catalog::relation_name(relid, &mut schemas).is_none() {
            // The source is gone, and its triggers with it.
            run(&format!("DROP FUNCTION IF EXISTS {function}()"));
            continue;
        }
        let source = catalog::source_table(relid);
        let src = qualified(&source.schema, &source.name);
        // The UPDATE OF list of 0.1.0's update trigger, by column number.
        let listed: Option<JsonB> = one(
            "SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.ord)
             FROM pg_catalog.pg_trigger t
             CROSS JOIN LATERAL pg_catalog.unnest(t.tgattr) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = u.attnum
             WHERE t.tgrelid = $1 AND t.tgname = $2",
            &[relid.into(), format!("{base}_upd").into()],
        );
        let listed: Vec<String> = listed
            .and_then(|j| serde_json::from_value(j.0).ok())
            .unwrap_or_else(|| source.primary_key.clone());
        let read: Vec<&SourceColumn> = listed.iter().filter_map(|n| source.column(n)).collect();
        for suffix in ["", "_upd", "_truncate"] {
            run(&format!(
                "DROP TRIGGER IF EXISTS {} ON {src}",
                quote_ident(&format!("{base}{suffix}"))
            ));
        }
        run(&format!("DROP FUNCTION IF EXISTS {function}()"));
        for sql in trigger_ddl(id, &base, &src, &read) {
            run(&sql);
        }
        for leaf in &source.partitions {
            run(&partition_trigger_ddl(id, &base, leaf));
        }
        if let (Some(view), Some(store)) = (oid(&row["view"]), oid(&row["store"])) {
            rebuild_view_if_unpinned(&source, view, store, &mut schemas);
        }
        let pk: Vec<Value> = source
            .primary_key
            .iter()
            .filter_map(|k| source.column(k))
            .map(|c| serde_json::to_value(KeyColumn::from(c)).expect("plain struct"))
            .collect();
        run_with(
            "UPDATE migrate.vectorizer SET source_pk = $2, read_columns = $3 WHERE id = $1",
            &[
                id.into(),
                JsonB(Value::Array(pk)).into(),
                read.iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .into(),
            ],
        );
    }
}

fn rebuild_view_if_unpinned(
    source: &pgai_migrate_core::SourceTable,
    view: pg_sys::Oid,
    store: pg_sys::Oid,
    schemas: &mut std::collections::HashMap<pg_sys::Oid, String>,
) {
    let unpinned: bool = one(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_rewrite w
                        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
                             AND d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass
                        JOIN pg_catalog.pg_operator o ON o.oid = d.refobjid
                        WHERE w.ev_class = $1 AND o.oprnamespace <> 'pg_catalog'::pg_catalog.regnamespace)",
        &[view.into()],
    )
    .unwrap_or(false);
    let (Some(v), Some(s)) = (
        catalog::relation_name(view, schemas),
        catalog::relation_name(store, schemas),
    ) else {
        return;
    };
    if !unpinned {
        return;
    }
    // The view's own names for the source's columns (after the store's
    // four), which CREATE OR REPLACE VIEW must keep.
    let names: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_agg(attname ORDER BY attnum) FROM pg_catalog.pg_attribute
         WHERE attrelid = $1 AND attnum > 4 AND NOT attisdropped",
        &[view.into()],
    );
    let names: Vec<String> = names
        .and_then(|j| serde_json::from_value(j.0).ok())
        .unwrap_or_default();
    // The view is the user's, not the extension's: replaced as if outside
    // the update script, so it is neither refused as a non-member nor
    // made a member (which would drop it from pg_dump).
    let _outside = OutsideExtensionScript::new();
    run(&format!(
        "CREATE OR REPLACE VIEW {} AS {}",
        qualified(&v.0, &v.1),
        view_query(source, &qualified(&s.0, &s.1), Some(&names))
    ));
}

struct OutsideExtensionScript(bool);

impl OutsideExtensionScript {
    fn new() -> Self {
        // SAFETY: a backend-global flag; put back on drop (and reset by
        // the extension machinery itself if an error ends the update).
        unsafe {
            let was = pg_sys::creating_extension;
            pg_sys::creating_extension = false;
            OutsideExtensionScript(was)
        }
    }
}

impl Drop for OutsideExtensionScript {
    fn drop(&mut self) {
        // SAFETY: restores the value saved in new().
        unsafe { pg_sys::creating_extension = self.0 }
    }
}

/// Entry points of earlier versions whose SQL signature changed since.
/// Their symbols stay, so that an update script of an earlier step (run
/// by `ALTER EXTENSION … UPDATE` before the step that replaces them) can
/// still create them, and so that an older version's SQL bound to this
/// library says what to do instead of running code written for other
/// arguments. They read no argument.
fn replaced(function: &str) -> ! {
    pgrx::pg_sys::panic::ErrorReport::new(
        pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "{function} belongs to an older version of pgai_migrate than the installed library"
        ),
        "pgai_migrate",
    )
    .set_hint("run ALTER EXTENSION pgai_migrate UPDATE in this database")
    .report(pgrx::PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// 0.2.0's `migrate.create_vectorizer(config text)`.
#[pg_extern(sql = false)]
fn create_vectorizer_text() -> i32 {
    replaced("migrate.create_vectorizer(text)")
}

/// 0.2.0's `migrate.drop_vectorizer(name text, drop_all bool, if_exists bool)`.
#[pg_extern(sql = false)]
fn drop_vectorizer_by_name() {
    replaced("migrate.drop_vectorizer(text, boolean, boolean)")
}

/// 0.3.0's `migrate.alter_vectorizer(name text, changes jsonb, reembed bool, label text)`.
#[pg_extern(sql = false)]
fn alter_vectorizer_named() -> i32 {
    replaced("migrate.alter_vectorizer(text, jsonb, boolean, text)")
}

/// 0.3.0's `migrate.plan_vectorizer(config jsonb)`.
#[pg_extern(sql = false)]
fn plan_vectorizer_config() -> i32 {
    replaced("migrate.plan_vectorizer(jsonb)")
}

/// Multi-row statements write the queue once per statement (see
/// src/trigger.rs): each existing vectorizer gains its statement-level
/// trigger, `<row trigger>_stmt`, with the `UPDATE OF` list of its
/// row-level update trigger. Until this runs, the row triggers write per
/// row, as before. Called by the update script that follows 0.2.0 (the
/// statements to run are at the end of `sql/pgai_migrate--0.2.0--0.3.0.sql`); idempotent.
#[pg_extern(sql = false)]
fn upgrade_add_statement_triggers() {
    let _fixed = search_path(FIXED_SEARCH_PATH);
    let rows: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'id', v.id, 'source', v.source::pg_catalog.oid::pg_catalog.int8,
                'read', pg_catalog.to_jsonb(v.read_columns),
                'trigger', (SELECT t.tgname FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = v.source AND t.tgparentid = 0
                              AND t.tgfoid = 'migrate._vectorizer_trigger()'::pg_catalog.regprocedure
                              AND t.tgargs = (pg_catalog.convert_to(v.id::pg_catalog.text, 'UTF8') OPERATOR(pg_catalog.||) '\\x00'::pg_catalog.bytea)
                              AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 5) = 5),
                'has', EXISTS (SELECT FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = v.source AND t.tgparentid = 0
                              AND t.tgfoid = 'migrate._vectorizer_trigger()'::pg_catalog.regprocedure
                              AND t.tgargs = (pg_catalog.convert_to(v.id::pg_catalog.text, 'UTF8') OPERATOR(pg_catalog.||) '\\x00'::pg_catalog.bytea)
                              AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 5) = 4)) ORDER BY v.id)
         FROM migrate.vectorizer v",
        &[],
    );
    let rows = rows.map(|j| j.0).unwrap_or(Value::Null);
    let mut schemas = std::collections::HashMap::new();
    for row in rows.as_array().into_iter().flatten() {
        let id = row["id"].as_i64().unwrap_or_default() as i32;
        let (Some(relid), Some(base), Some(false)) = (
            row["source"].as_u64().map(|o| pg_sys::Oid::from(o as u32)),
            row["trigger"].as_str(),
            row["has"].as_bool(),
        ) else {
            // No source, no row trigger, or the statement trigger exists.
            continue;
        };
        if catalog::relation_name(relid, &mut schemas).is_none() {
            continue;
        }
        let source = catalog::source_table(relid);
        let src = qualified(&source.schema, &source.name);
        let listed: Vec<String> = serde_json::from_value(row["read"].clone()).unwrap_or_default();
        let read: Vec<&SourceColumn> = listed.iter().filter_map(|n| source.column(n)).collect();
        if read.is_empty() {
            continue;
        }
        run(&statement_trigger_ddl(
            base,
            &src,
            &read,
            &trigger_function_call(id),
        ));
    }
}
