//! Reading the database for the planner, and writing the extension's own
//! catalog and revision history.

use pgai_migrate_core::{ConfigError, Environment, ErrorKind, Plan, SourceTable};
use std::collections::HashMap;

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

use crate::error::raise;
use crate::spi::{one, run_with};

/// Key space of our advisory locks ("pgai" in ASCII).
const LOCK_SPACE: i32 = 0x7067_6169;

/// Resolve the config's `source` like `regclass` does, with the caller's
/// search_path, and make sure it is a table.
pub fn resolve_source(source: &str) -> pg_sys::Oid {
    // to_regclass still raises on malformed names ("a.b.c.d"); re-raise
    // those as a config error that names the path.
    let found: Option<pg_sys::Oid> = PgTryBuilder::new(|| {
        one(
            "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
            &[source.into()],
        )
    })
    .catch_others(|e| {
        let reason = match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
        };
        raise(ConfigError::invalid(
            "source",
            format!("expected a table name, got \"{source}\": {reason}"),
        ))
    })
    .execute();
    let Some(relid) = found else {
        raise(ConfigError::new(
            ErrorKind::UndefinedTable,
            "source",
            format!("relation \"{source}\" does not exist"),
        ).with_hint("source is resolved like regclass: schema-qualify it or check search_path; quote mixed-case names, e.g. \"\\\"MyTable\\\"\""))
    };
    let kind: Option<String> = one(
        "SELECT relkind::pg_catalog.text OPERATOR(pg_catalog.||) relpersistence::pg_catalog.text FROM pg_catalog.pg_class WHERE oid = $1",
        &[relid.into()],
    );
    let kind = kind.unwrap_or_default();
    if !kind.starts_with('r') && !kind.starts_with('p') {
        raise(ConfigError::new(
            ErrorKind::WrongObjectType,
            "source",
            format!("\"{source}\" is not a table"),
        ))
    }
    // A temporary table vanishes with its session; the queue, store,
    // trigger function and catalog row would not.
    if kind.ends_with('t') {
        raise(
            ConfigError::new(
                ErrorKind::FeatureNotSupported,
                "source",
                format!("\"{source}\" is a temporary table"),
            )
            .with_hint("a vectorizer's objects are permanent; use a permanent table as the source"),
        )
    }
    relid
}

/// Whether the current role has the privileges of the table's owner
/// (superusers do).
pub fn owns_relation(relid: pg_sys::Oid) -> Option<bool> {
    one(
        "SELECT (SELECT pg_catalog.pg_has_role(relowner, 'USAGE') FROM pg_catalog.pg_class WHERE oid = $1)",
        &[relid.into()],
    )
}

/// The owner of a relation.
pub fn owner_of(relid: pg_sys::Oid) -> pg_sys::Oid {
    one(
        "SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1",
        &[relid.into()],
    )
    .expect("relation owner")
}

/// 42P07 when a relation of that name exists (`detail` says why it could
/// not be taken over, where that was tried).
pub fn check_free(r: &pgai_migrate_core::plan::Relation, detail: Option<String>) {
    if relation_exists(&r.schema, &r.name) {
        raise(
            ConfigError::new(
                ErrorKind::DuplicateTable,
                r.path.clone(),
                format!("relation \"{}.{}\" already exists", r.schema, r.name),
            )
            .with_detail_opt(detail),
        );
    }
}

pub fn relation_exists(schema: &str, name: &str) -> bool {
    one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)",
        &[schema.into(), name.into()],
    )
    .unwrap_or(false)
}

/// Everything the planner needs to know about the source table.
pub fn source_table(relid: pg_sys::Oid) -> SourceTable {
    let json: JsonB = one(
        r#"
SELECT pg_catalog.jsonb_build_object(
    'schema', n.nspname,
    'name', c.relname,
    'qualified_name', c.oid::pg_catalog.regclass::pg_catalog.text,
    'owner', pg_catalog.pg_get_userbyid(c.relowner),
    'partitioned', c.relkind = 'p',
    'partitions', COALESCE((SELECT pg_catalog.jsonb_agg(t.relid::pg_catalog.regclass::pg_catalog.text ORDER BY t.relid)
                            FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf AND c.relkind = 'p'), '[]'),
    'columns', COALESCE((
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
            'name', a.attname,
            'type_sql', pg_catalog.format_type(a.atttypid, a.atttypmod),
            'category', CASE WHEN bt.oid = 'pg_catalog.bytea'::pg_catalog.regtype THEN 'bytea'
                             WHEN bt.typcategory = 'S' THEN 'text' ELSE 'other' END,
            'type_schema', tn.nspname,
            'eq_schema', COALESCE(eq.schema, 'pg_catalog'),
            'eq_name', COALESCE(eq.name, '='),
            'eq_type', eq.input_type
        ) ORDER BY a.attnum)
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
        JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        -- Key columns: the btree equality operator of the primary-key
        -- index's operator class for this column, never one found by name.
        LEFT JOIN LATERAL (
            SELECT opn.nspname AS schema, o.oprname AS name,
                   CASE WHEN it.typtype <> 'p' THEN pg_catalog.quote_ident(itn.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(it.typname) END AS input_type
            FROM pg_catalog.pg_index i
            CROSS JOIN LATERAL pg_catalog.generate_subscripts(i.indkey, 1) AS k(pos)
            JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[k.pos]
            JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoplefttype = oc.opcintype
                 AND ao.amoprighttype = oc.opcintype AND ao.amopstrategy = 3 AND ao.amopmethod = 403
            JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
            JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace
            JOIN pg_catalog.pg_type it ON it.oid = oc.opcintype
            JOIN pg_catalog.pg_namespace itn ON itn.oid = it.typnamespace
            WHERE i.indrelid = c.oid AND i.indisprimary AND i.indkey[k.pos] = a.attnum) AS eq ON true
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'),
    'primary_key', COALESCE((
        SELECT pg_catalog.jsonb_agg(a.attname ORDER BY k.ord)
        FROM pg_catalog.pg_index i
        CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = c.oid AND i.indisprimary AND k.ord <= i.indnkeyatts), '[]'),
    'primary_key_btree', COALESCE((
        SELECT ic.relam = 403 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = c.oid AND i.indisprimary), true))
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1"#,
        &[relid.into()],
    )
    .unwrap_or_else(|| error!("pgai_migrate: source table {relid:?} vanished"));
    serde_json::from_value(json.0)
        .unwrap_or_else(|e| error!("pgai_migrate: reading source table: {e}"))
}

pub fn environment() -> Environment {
    let json: JsonB = one(
        r#"
SELECT pg_catalog.jsonb_build_object(
    'vector_schema', (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'),
    'has_vectorscale', EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'vectorscale'),
    'has_timescaledb', EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'timescaledb'))"#,
        &[],
    )
    .expect("jsonb_build_object returns a row");
    serde_json::from_value(json.0)
        .unwrap_or_else(|e| error!("pgai_migrate: the vector extension is missing: {e}"))
}

pub fn extension_owner() -> pg_sys::Oid {
    one(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pgai_migrate'",
        &[],
    )
    .unwrap_or_else(|| error!("pgai_migrate: extension is not installed"))
}

/// A new vectorizer id. Ids whose generated names are still taken are
/// skipped: after a `--schema-only` restore (the catalog's rows and
/// sequence are data) or a `DROP EXTENSION … CASCADE` and a new install,
/// queues and triggers of earlier ids may still be there.
pub fn next_id() -> i32 {
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    loop {
        let id: i32 = one(
            "SELECT pg_catalog.nextval('migrate.vectorizer_id_seq')::int4",
            &[],
        )
        .expect("nextval");
        let taken = one::<bool>(
            "SELECT EXISTS (SELECT FROM migrate.vectorizer WHERE id = $1)
                 OR pg_catalog.to_regclass(pg_catalog.format('migrate._vectorizer_q_%s', $1)) IS NOT NULL
                 OR pg_catalog.to_regclass(pg_catalog.format('migrate._vectorizer_q_failed_%s', $1)) IS NOT NULL
                 OR EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgname = pg_catalog.format('_vectorizer_src_trg_%s', $1))",
            &[id.into()],
        );
        if taken != Some(true) {
            return id;
        }
    }
}

/// Serialises creates and drops of the same vectorizer name or relation
/// names across sessions until the end of the transaction. All keys are
/// taken in one sorted pass, so two calls with crossed names cannot
/// deadlock.
pub fn lock_names(names: &[String]) {
    run_with(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, k) FROM (SELECT DISTINCT pg_catalog.hashtext(n) AS k FROM pg_catalog.unnest($2::pg_catalog.text[]) AS n ORDER BY 1) AS keys",
        &[LOCK_SPACE.into(), names.to_vec().into()],
    );
}

/// The one lock order of vectorizer DDL on a source: name locks
/// ([`lock_names`]), then the source itself in the strongest mode the
/// call will need (SHARE ROW EXCLUSIVE for CREATE TRIGGER, ACCESS
/// EXCLUSIVE for DROP TRIGGER), before anything else touches it. A weaker
/// lock taken first (reading its partitions, say) and upgraded later is
/// how two DDL calls, or DDL and the application's writes, deadlock.
/// Recursive like the trigger DDL: partitions are locked too. Called only
/// after the caller's ownership is checked, so no one else can hold a
/// table this way.
pub fn lock_source(relid: pg_sys::Oid, mode: &str) {
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    let name: Option<String> = one(
        "SELECT $1::pg_catalog.regclass::pg_catalog.text",
        &[relid.into()],
    );
    if let Some(name) = name {
        crate::spi::run(&format!("LOCK TABLE {name} IN {mode} MODE"));
    }
}

/// Serialises the bookkeeping of shared grants (which vectorizer still
/// needs a privilege) across sessions until the end of the transaction:
/// two drops deciding at once would each see the other's record and keep
/// a privilege neither needs. Taken after [`lock_names`], so in one order.
pub fn lock_grants() {
    run_with(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext('shared grants'))",
        &[LOCK_SPACE.into()],
    );
}

/// The lock key of a relation name; see [`lock_names`].
pub fn relation_lock(schema: &str, name: &str) -> String {
    format!("relation {schema}.{name}")
}

/// Current `(schema, name)` of a relation by OID, from the syscache, or
/// None if it no longer exists. `schemas` remembers schema names across
/// calls: most relations share a few.
pub fn relation_name(
    relid: pg_sys::Oid,
    schemas: &mut HashMap<pg_sys::Oid, String>,
) -> Option<(String, String)> {
    // SAFETY: lsyscache lookups return NULL for a missing OID and palloc'd
    // strings otherwise.
    unsafe {
        let name = c_string(pg_sys::get_rel_name(relid))?;
        let schema = schema_name(pg_sys::get_rel_namespace(relid), schemas)?;
        Some((schema, name))
    }
}

unsafe fn schema_name(
    nsp: pg_sys::Oid,
    schemas: &mut HashMap<pg_sys::Oid, String>,
) -> Option<String> {
    if let Some(s) = schemas.get(&nsp) {
        return Some(s.clone());
    }
    let s = c_string(pg_sys::get_namespace_name(nsp))?;
    schemas.insert(nsp, s.clone());
    Some(s)
}

unsafe fn c_string(p: *mut std::ffi::c_char) -> Option<String> {
    (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
}

pub struct Existing {
    pub id: i32,
    pub source: pg_sys::Oid,
    pub config: Value,
    pub row: Value,
    /// OIDs of queue, failed queue, view and store (None where absent).
    pub queue: pg_sys::Oid,
    pub failed_queue: pg_sys::Oid,
    pub view: Option<pg_sys::Oid>,
    pub store: Option<pg_sys::Oid>,
}

/// The vectorizer's triggers, wherever they are, as (qualified table,
/// trigger name): those calling the extension's trigger function with its
/// id (clones on partitions go with their parent trigger).
pub fn triggers(id: i32) -> Vec<(String, String)> {
    let found: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(t.tgrelid::pg_catalog.int8, t.tgname) ORDER BY t.tgname)
         FROM pg_catalog.pg_trigger t
         WHERE t.tgfoid OPERATOR(pg_catalog.=) 'migrate._vectorizer_trigger()'::pg_catalog.regprocedure
           AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND t.tgnargs OPERATOR(pg_catalog.=) 1
           AND t.tgargs OPERATOR(pg_catalog.=) (pg_catalog.convert_to($1::pg_catalog.text, 'UTF8') OPERATOR(pg_catalog.||) '\\x00'::pg_catalog.bytea)",
        &[id.into()],
    );
    let mut schemas = HashMap::new();
    found
        .and_then(|j| j.0.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let relid = pg_sys::Oid::from(t[0].as_u64()? as u32);
            let name = t[1].as_str()?.to_string();
            let (schema, table) = relation_name(relid, &mut schemas)?;
            Some((pgai_migrate_core::ident::qualified(&schema, &table), name))
        })
        .collect()
}

pub fn find(name: &str) -> Option<Existing> {
    let found: Option<JsonB> = one(
        "SELECT (SELECT pg_catalog.jsonb_build_object('row', pg_catalog.to_jsonb(v), 'oids', pg_catalog.jsonb_build_array(
                    v.source::pg_catalog.oid::pg_catalog.int8, v.queue_relid::pg_catalog.oid::pg_catalog.int8, v.queue_failed_relid::pg_catalog.oid::pg_catalog.int8,
                    v.view_relid::pg_catalog.oid::pg_catalog.int8, v.store_relid::pg_catalog.oid::pg_catalog.int8))
                 FROM migrate.vectorizer v WHERE v.name = $1)",
        &[name.into()],
    );
    let found = found?.0;
    let oid = |i: usize| {
        found["oids"][i]
            .as_u64()
            .map(|o| pg_sys::Oid::from(o as u32))
    };
    let row = found["row"].clone();
    Some(Existing {
        id: row["id"].as_i64().expect("id") as i32,
        source: oid(0).expect("source"),
        queue: oid(1).expect("queue"),
        failed_queue: oid(2).expect("failed queue"),
        view: oid(3),
        store: oid(4),
        config: row["config"].clone(),
        row,
    })
}

pub fn insert(
    id: i32,
    plan: &Plan,
    relid: pg_sys::Oid,
    source: &SourceTable,
    caller: &str,
    grants: Value,
) {
    // The catalog is the extension owner's to write.
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    let pk: Value = source
        .primary_key
        .iter()
        .map(|n| {
            let c = source.column(n).expect("pk column");
            serde_json::to_value(pgai_migrate_core::KeyColumn::from(c)).expect("plain struct")
        })
        .collect();
    let (ts, tt) = split(plan.store.as_ref());
    let (vs, vn) = split(plan.view.as_ref());
    // OIDs are looked up by the names just created, in the same statement.
    run_with(
        "INSERT INTO migrate.vectorizer (id, name, source, source_pk, queue_schema, queue_table, queue_failed_table, target_schema, target_table, view_schema, view_name, embedding_column, config, created_by,
                                         queue_relid, queue_failed_relid, store_relid, view_relid, grants, read_columns)
         VALUES ($1, $2, $3::pg_catalog.oid::pg_catalog.regclass, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                 pg_catalog.format('%I.%I', $5, $6)::pg_catalog.regclass,
                 pg_catalog.format('%I.%I', $5, $7)::pg_catalog.regclass,
                 CASE WHEN $9 IS NOT NULL THEN pg_catalog.format('%I.%I', $8, $9)::pg_catalog.regclass END,
                 CASE WHEN $11 IS NOT NULL THEN pg_catalog.format('%I.%I', $10, $11)::pg_catalog.regclass END,
                 $15, $16)",
        &[
            id.into(),
            plan.name.as_str().into(),
            relid.into(),
            JsonB(pk).into(),
            plan.queue.schema.as_str().into(),
            plan.queue.name.as_str().into(),
            plan.failed_queue.name.as_str().into(),
            ts.into(),
            tt.into(),
            vs.into(),
            vn.into(),
            plan.embedding_column.clone().into(),
            JsonB(plan.config.clone()).into(),
            caller.into(),
            JsonB(grants).into(),
            plan.read_columns.clone().into(),
        ],
    );
}

/// Whether another vectorizer recorded the same shared grant (for a grant
/// on the source or one of its columns: on the same source), so a drop
/// must leave it.
pub fn grant_still_needed(id: i32, source: pg_sys::Oid, grant: &Value) -> bool {
    one::<bool>(
        "SELECT EXISTS (SELECT FROM migrate.vectorizer v WHERE v.id OPERATOR(pg_catalog.<>) $1
                          AND v.grants OPERATOR(pg_catalog.@>) pg_catalog.jsonb_build_array($3::pg_catalog.jsonb)
                          AND ($3::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'on' OPERATOR(pg_catalog.=) 'schema'
                               OR v.source::pg_catalog.oid OPERATOR(pg_catalog.=) $2))",
        &[id.into(), source.into(), JsonB(grant.clone()).into()],
    ) == Some(true)
}

pub fn schema_exists(schema: &str) -> bool {
    one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[schema.into()],
    ) == Some(true)
}

fn split(r: Option<&pgai_migrate_core::plan::Relation>) -> (Option<String>, Option<String>) {
    match r {
        Some(r) => (Some(r.schema.clone()), Some(r.name.clone())),
        None => (None, None),
    }
}

pub fn delete(id: i32) {
    // The catalog is the extension owner's to write.
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    run_with("DELETE FROM migrate.vectorizer WHERE id = $1", &[id.into()]);
}

/// The label of a revision: the `label` argument, else the setting
/// `migrate.revision_label`. The setting is consumed by the first
/// operation that records a revision (an explicit label consumes it too),
/// and by an operation that records none because there was nothing to do
/// (a drop with `if_exists` of a missing name, a create with
/// `if_not_exists` of an existing one, an alter to the same config), so a
/// label one migration set never reaches the next migration's rows when a
/// tool runs several migrations in one transaction.
pub fn take_label(explicit: Option<&str>) -> Option<String> {
    let set: Option<String> = one(
        "SELECT NULLIF(pg_catalog.current_setting('migrate.revision_label', true), '')",
        &[],
    );
    if set.is_some() {
        run_with(
            "SELECT pg_catalog.set_config('migrate.revision_label', '', false)",
            &[],
        );
    }
    explicit.map(String::from).or(set)
}

/// One row of history.
#[allow(clippy::too_many_arguments)]
pub fn record_revision(
    id: i32,
    name: &str,
    operation: &str,
    config: &Value,
    drop_all: Option<bool>,
    caller: &str,
    label: Option<&str>,
    restored_from: Option<i64>,
) {
    // The catalog is the extension owner's to write.
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    run_with(
        "INSERT INTO migrate.revision (vectorizer_id, vectorizer_name, operation, config, drop_all, applied_by, label, restored_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            id.into(),
            name.into(),
            operation.into(),
            JsonB(config.clone()).into(),
            drop_all.into(),
            caller.into(),
            label.into(),
            restored_from.into(),
        ],
    );
}

/// Writes what a change makes of a vectorizer: name, config, the names
/// and OIDs of its objects (looked up by the plan's names, which exist by
/// now), what its update trigger reads, and the shared grants it holds.
pub fn update(id: i32, plan: &Plan, grants: Option<Value>) {
    // The catalog is the extension owner's to write.
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    let (ts, tt) = split(plan.store.as_ref());
    let (vs, vn) = split(plan.view.as_ref());
    run_with(
        "UPDATE migrate.vectorizer SET name = $2, config = $3, queue_schema = $4, queue_table = $5, queue_failed_table = $6,
                target_schema = $7, target_table = $8, view_schema = $9, view_name = $10, embedding_column = $11, read_columns = $12,
                queue_relid = pg_catalog.format('%I.%I', $4, $5)::pg_catalog.regclass,
                queue_failed_relid = pg_catalog.format('%I.%I', $4, $6)::pg_catalog.regclass,
                store_relid = CASE WHEN $8 IS NOT NULL THEN pg_catalog.to_regclass(pg_catalog.format('%I.%I', $7, $8)) END,
                view_relid = CASE WHEN $10 IS NOT NULL THEN pg_catalog.to_regclass(pg_catalog.format('%I.%I', $9, $10)) END,
                grants = COALESCE($13, grants)
         WHERE id = $1",
        &[
            id.into(),
            plan.name.as_str().into(),
            JsonB(plan.config.clone()).into(),
            plan.queue.schema.as_str().into(),
            plan.queue.name.as_str().into(),
            plan.failed_queue.name.as_str().into(),
            ts.into(),
            tt.into(),
            vs.into(),
            vn.into(),
            plan.embedding_column.clone().into(),
            plan.read_columns.clone().into(),
            grants.map(JsonB).into(),
        ],
    );
}

/// The part of [`update`] written before a change's DDL runs, so that the
/// DDL event triggers, which compare the catalog with the database after
/// each command, see the new config and update trigger columns.
pub fn update_config(id: i32, plan: &Plan) {
    // The catalog is the extension owner's to write.
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    run_with(
        "UPDATE migrate.vectorizer SET name = $2, config = $3, read_columns = $4, embedding_column = $5 WHERE id = $1",
        &[
            id.into(),
            plan.name.as_str().into(),
            JsonB(plan.config.clone()).into(),
            plan.read_columns.clone().into(),
            plan.embedding_column.clone().into(),
        ],
    );
}

/// Forgets the store and view of a vectorizer before they are dropped and
/// made again by a change (the drop event trigger refuses to drop a live
/// vectorizer's objects).
pub fn forget_destination(id: i32) {
    // The catalog is the extension owner's to write.
    let _elevated = crate::security::AsRole::new(extension_owner(), false);
    run_with(
        "UPDATE migrate.vectorizer SET store_relid = NULL, view_relid = NULL WHERE id = $1",
        &[id.into()],
    );
}
