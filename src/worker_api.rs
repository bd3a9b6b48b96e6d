//! The worker's entry points: `migrate.worker_claim`, `worker_read`,
//! `worker_store` and `worker_retry`.
//!
//! The worker is a privilege boundary: one role serving many vectorizers,
//! each owned by a tenant who may attach code to its source, store and
//! queue (triggers, rules, defaults, checks, index expressions, types'
//! functions, row-security policies). So the worker never touches those
//! relations itself. It calls these functions, which
//! 1. check that the caller holds the privileges the step needs on the
//!    vectorizer's relations (what `grant_to` gives a worker), so they
//!    give no one anything they could not do directly;
//! 2. run the step's fixed statements (`core/src/plan/worker.rs`) as the
//!    source's owner, security-restricted like `CREATE INDEX` (no `SET
//!    ROLE`, no way back to the caller's rights), with `row_security = off`
//!    (a row a policy would hide raises 42501 instead of looking deleted)
//!    and `search_path = pg_catalog, pg_temp`; the two settings are the
//!    functions' own `SET` clauses, undone when they return.
//!
//! Tenant code therefore runs with the tenant's rights only, whoever the
//! worker is (even a superuser).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgai_migrate_core::ident::qualified;
use pgai_migrate_core::plan::worker::{worker_statements, Target, WorkerStatements};
use pgai_migrate_core::KeyColumn;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::security::AsRole;
use crate::spi::{one, run_with};

/// One vectorizer as its worker steps need it.
struct Served {
    name: String,
    /// The source's current owner: the tenant whose rights the steps use.
    owner: pg_sys::Oid,
    source: pg_sys::Oid,
    queue: pg_sys::Oid,
    failed_queue: pg_sys::Oid,
    store: Option<pg_sys::Oid>,
    column: Option<String>,
    sql: WorkerStatements,
}

thread_local! {
    /// Vectorizers loaded by this backend: a worker's connection calls the
    /// steps of one vectorizer many times. Names, keys and owners change
    /// only through DDL on the vectorizer's relations, which invalidates
    /// their relcache entries, and then the cache is dropped.
    static SERVED: RefCell<HashMap<i32, Rc<Served>>> = RefCell::new(HashMap::new());
    static STALE: Cell<bool> = const { Cell::new(false) };
}

unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    STALE.with(|s| s.set(true));
}

/// Registered in `_PG_init`.
pub fn register_callbacks() {
    // SAFETY: called once per backend from _PG_init.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0)) }
}

fn served(id: i32) -> Rc<Served> {
    if STALE.with(|s| s.replace(false)) {
        SERVED.with(|c| c.borrow_mut().clear());
    }
    if let Some(v) = SERVED.with(|c| c.borrow().get(&id).cloned()) {
        return v;
    }
    let v = Rc::new(load(id));
    SERVED.with(|c| c.borrow_mut().insert(id, v.clone()));
    v
}

fn raise(code: PgSqlErrorCode, message: String, hint: &str) -> ! {
    ErrorReport::new(code, message, "pgai_migrate")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

fn arg<T>(value: Option<T>, name: &str) -> T {
    value.unwrap_or_else(|| crate::error::not_null(name))
}

fn load(id: i32) -> Served {
    let row: Option<JsonB> = {
        let _ext = AsRole::new(crate::catalog::extension_owner(), false);
        one(
            "SELECT pg_catalog.jsonb_build_object('name', v.name,
                    'owner', c.relowner::pg_catalog.int8, 'source', v.source::pg_catalog.oid::pg_catalog.int8,
                    'queue', v.queue_relid::pg_catalog.oid::pg_catalog.int8,
                    'failed', v.queue_failed_relid::pg_catalog.oid::pg_catalog.int8,
                    'store', v.store_relid::pg_catalog.oid::pg_catalog.int8,
                    'column', v.embedding_column, 'keys', v.source_pk,
                    'column_type', (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                                    WHERE a.attrelid OPERATOR(pg_catalog.=) v.source
                                      AND a.attname OPERATOR(pg_catalog.=) v.embedding_column AND NOT a.attisdropped))
             FROM migrate.vectorizer v JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) v.source
             WHERE v.id OPERATOR(pg_catalog.=) $1",
            &[id.into()],
        )
    };
    let Some(JsonB(row)) = row else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("vectorizer {id} does not exist"),
            "The worker reads the vectorizers from migrate.vectorizer.",
        )
    };
    let name = row["name"].as_str().unwrap_or_default().to_string();
    let oid = |k: &str| row[k].as_u64().map(|o| pg_sys::Oid::from(o as u32));
    let mut schemas = HashMap::new();
    let mut sql_name = |o: Option<pg_sys::Oid>, what: &str| -> Option<String> {
        let o = o?;
        match crate::catalog::relation_name(o, &mut schemas) {
            Some((s, n)) => Some(qualified(&s, &n)),
            None => raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the {what} of vectorizer {name:?} no longer exists"),
                "Drop the vectorizer with migrate.drop_vectorizer, or restore the relation.",
            ),
        }
    };
    let source = sql_name(oid("source"), "source").unwrap_or_default();
    let queue = sql_name(oid("queue"), "queue").unwrap_or_default();
    let failed_queue = sql_name(oid("failed"), "failed queue").unwrap_or_default();
    let store = sql_name(oid("store"), "store");
    let keys: Vec<KeyColumn> = serde_json::from_value(row["keys"].clone()).unwrap_or_default();
    if keys.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the catalog lists no primary-key columns for vectorizer {name:?} (migrate.vectorizer.source_pk)"),
            "Restore the vectorizer with migrate.restore_vectorizer, or create it again.",
        )
    }
    let column = row["column"].as_str().map(String::from);
    let column_type = row["column_type"].as_str().map(String::from);
    let target = match (&store, &column, &column_type) {
        (Some(store), _, _) => Target::Store(store),
        (None, Some(c), Some(t)) => Target::Column {
            name: c,
            type_sql: t,
        },
        (None, Some(c), None) => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("the source of vectorizer {name:?} has no column {c:?}"),
            "Restore the embedding column, or drop the vectorizer.",
        ),
        (None, None, _) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("vectorizer {name:?} has neither a store table nor an embedding column"),
            "Restore the vectorizer with migrate.restore_vectorizer.",
        ),
    };
    let sql = worker_statements(&source, &queue, &failed_queue, &target, &keys);
    Served {
        owner: oid("owner").unwrap_or(pg_sys::Oid::INVALID),
        source: oid("source").unwrap_or(pg_sys::Oid::INVALID),
        queue: oid("queue").unwrap_or(pg_sys::Oid::INVALID),
        failed_queue: oid("failed").unwrap_or(pg_sys::Oid::INVALID),
        store: oid("store"),
        column,
        name,
        sql,
    }
}

impl Served {
    /// The caller (the worker role) must hold `privilege` on `relid`
    /// itself: the steps add no right, they only change whose code runs.
    fn require(&self, relid: pg_sys::Oid, privilege: &str, column: Option<&str>) {
        let granted: Option<bool> = match column {
            None => one(
                "SELECT pg_catalog.has_table_privilege($1, $2)",
                &[relid.into(), privilege.into()],
            ),
            Some(c) => one(
                "SELECT pg_catalog.has_column_privilege($1, $2::pg_catalog.text, $3)",
                &[relid.into(), c.into(), privilege.into()],
            ),
        };
        if granted != Some(true) {
            let (_, role) = crate::security::current_user();
            let what: Option<String> = one(
                "SELECT $1::pg_catalog.regclass::pg_catalog.text",
                &[relid.into()],
            );
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied for vectorizer {:?}: role {role:?} needs {privilege} on {}{}",
                    self.name,
                    what.unwrap_or_default(),
                    column.map(|c| format!(" (column {c:?})")).unwrap_or_default()
                ),
                "A vectorizer's workers are the roles in its grant_to.",
            )
        }
    }

    /// Runs `f` as the source's owner, security-restricted.
    fn as_owner<T>(&self, f: impl FnOnce() -> T) -> T {
        let _owner = AsRole::new(self.owner, true);
        f()
    }
}

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION migrate.worker_claim(vectorizer_id int4, max_keys int4, after text) RETURNS text
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_claim_wrapper';
CREATE FUNCTION migrate.worker_claim(vectorizer_id int4, max_keys int4, after jsonb DEFAULT NULL) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_claim(vectorizer_id, max_keys, after::pg_catalog.text)::pg_catalog.jsonb $$;"
)]
fn worker_claim(vectorizer_id: Option<i32>, max_keys: Option<i32>, after: Option<&str>) -> String {
    let v = served(arg(vectorizer_id, "vectorizer_id"));
    let max_keys = arg(max_keys, "max_keys");
    v.require(v.queue, "SELECT", None);
    v.require(v.queue, "DELETE", None);
    let claimed = v.as_owner(|| match after {
        None => one::<String>(&v.sql.claim, &[max_keys.into()]),
        Some(a) => one::<String>(&v.sql.claim_after, &[max_keys.into(), a.into()]),
    });
    claimed.unwrap_or_else(|| "[]".into())
}

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION migrate.worker_read(vectorizer_id int4, keys text) RETURNS text
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_read_wrapper';
CREATE FUNCTION migrate.worker_read(vectorizer_id int4, keys jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_read(vectorizer_id, keys::pg_catalog.text)::pg_catalog.jsonb $$;"
)]
fn worker_read(vectorizer_id: Option<i32>, keys: Option<&str>) -> String {
    let v = served(arg(vectorizer_id, "vectorizer_id"));
    let keys = arg(keys, "keys");
    v.require(v.source, "SELECT", None);
    let rows = v.as_owner(|| one::<String>(&v.sql.read, &[keys.into()]));
    rows.unwrap_or_else(|| "[]".into())
}

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION migrate.worker_store(vectorizer_id int4, keys text, rows text) RETURNS void
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_store_wrapper';
CREATE FUNCTION migrate.worker_store(vectorizer_id int4, keys jsonb, rows jsonb) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_store(vectorizer_id, keys::pg_catalog.text, rows::pg_catalog.text) $$;"
)]
fn worker_store(vectorizer_id: Option<i32>, keys: Option<&str>, rows: Option<&str>) {
    let v = served(arg(vectorizer_id, "vectorizer_id"));
    let (keys, rows) = (arg(keys, "keys"), arg(rows, "rows"));
    match (v.store, &v.column) {
        (Some(store), _) => {
            v.require(store, "DELETE", None);
            v.require(store, "INSERT", None);
        }
        (None, Some(c)) => v.require(v.source, "UPDATE", Some(c)),
        (None, None) => {}
    }
    v.as_owner(|| {
        if let Some(forget) = &v.sql.forget {
            run_with(forget, &[keys.into()]);
        }
        run_with(&v.sql.write, &[rows.into()]);
    });
}

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION migrate.worker_retry(vectorizer_id int4, requeue text, failed text) RETURNS void
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_retry_wrapper';
CREATE FUNCTION migrate.worker_retry(vectorizer_id int4, requeue jsonb, failed jsonb) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_retry(vectorizer_id, requeue::pg_catalog.text, failed::pg_catalog.text) $$;"
)]
fn worker_retry(vectorizer_id: Option<i32>, requeue: Option<&str>, failed: Option<&str>) {
    let v = served(arg(vectorizer_id, "vectorizer_id"));
    let (requeue, failed) = (arg(requeue, "requeue"), arg(failed, "failed"));
    // An empty array needs no statement (nor the privilege it uses).
    let nonempty = |j: &str| !j.trim_start_matches(['[', ' ', '\n']).starts_with(']');
    let (do_requeue, do_fail) = (nonempty(requeue), nonempty(failed));
    if do_requeue {
        v.require(v.queue, "INSERT", None);
    }
    if do_fail {
        v.require(v.failed_queue, "INSERT", None);
    }
    v.as_owner(|| {
        if do_requeue {
            run_with(&v.sql.requeue, &[requeue.into()]);
        }
        if do_fail {
            run_with(&v.sql.fail, &[failed.into()]);
        }
    });
}

/// Arbitrary first key of the advisory lock that makes one worker at a
/// time decide a vectorizer's index (the second key is the vectorizer id).
const INDEX_LOCK: i32 = 0x7067_6169; // "pgai"

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION migrate.worker_index(vectorizer_id int4) RETURNS text
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_index_wrapper';"
)]
fn worker_index(vectorizer_id: Option<i32>) -> Option<String> {
    use pgai_migrate_core::config::Evaluated;
    use pgai_migrate_core::plan::index;

    let id = arg(vectorizer_id, "vectorizer_id");
    let v = served(id);
    // The worker's own right on this vectorizer; building the index is
    // then done with the owner's.
    v.require(v.queue, "DELETE", None);
    // One worker decides at a time; the others find the index built.
    run_with(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
        &[INDEX_LOCK.into(), id.into()],
    );
    let config: Option<JsonB> = {
        let _ext = AsRole::new(crate::catalog::extension_owner(), false);
        one(
            "SELECT config FROM migrate.vectorizer WHERE id OPERATOR(pg_catalog.=) $1",
            &[id.into()],
        )
    };
    let indexing = config
        .and_then(|JsonB(c)| Evaluated::from_value(&c).ok())
        .map(|e| e.indexing)
        .unwrap_or_default();
    let vectorscale: bool =
        one("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'vectorscale')", &[])
            .unwrap_or(false);
    let (table, column) = match (v.store, &v.column) {
        (Some(store), _) => (store, "embedding".to_string()),
        (None, Some(c)) => (v.source, c.clone()),
        (None, None) => return None,
    };
    let mut schemas = HashMap::new();
    let Some((schema, table_name)) = crate::catalog::relation_name(table, &mut schemas) else {
        return None;
    };
    let table_sql = qualified(&schema, &table_name);
    let existing: Option<JsonB> = one(
        "SELECT pg_catalog.jsonb_build_object('name', c.relname, 'marker', d.description)
         FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
         JOIN pg_catalog.pg_description d ON d.objoid OPERATOR(pg_catalog.=) i.indexrelid
          AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid OPERATOR(pg_catalog.=) 0
         WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND pg_catalog.starts_with(d.description, $2)
         ORDER BY c.oid LIMIT 1",
        &[table.into(), index::MARKER.into()],
    );
    let wanted = index::wanted(&indexing, vectorscale);
    let mut done = Vec::new();
    if let Some(JsonB(e)) = existing {
        let name = e["name"].as_str().unwrap_or_default().to_string();
        if wanted
            .as_ref()
            .is_some_and(|w| e["marker"].as_str() == Some(w.marker().as_str()))
        {
            return None;
        }
        // indexing changed (an alter), or is now none: the old index goes.
        v.as_owner(|| crate::spi::run(&format!("DROP INDEX {}", qualified(&schema, &name))));
        done.push(format!("dropped index {name}"));
    }
    let Some(w) = wanted else {
        return (!done.is_empty()).then(|| done.join("; "));
    };
    if w.extension == "vectorscale" && !vectorscale {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("vectorizer {:?}: indexing_diskann needs the vectorscale extension (pgvectorscale), which is not installed in this database", v.name),
            "CREATE EXTENSION vectorscale, or alter the vectorizer to indexing_hnsw.",
        )
    }
    // A vector index of the user's own on the column (built CONCURRENTLY
    // on a busy table, say) is the index: none of ours beside it.
    let own: bool = one(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
           JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam
           JOIN pg_catalog.pg_attribute t ON t.attrelid OPERATOR(pg_catalog.=) i.indrelid
            AND t.attname OPERATOR(pg_catalog.=) $2 AND t.attnum OPERATOR(pg_catalog.=) ANY (i.indkey)
          WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND a.amname OPERATOR(pg_catalog.=) ANY ('{hnsw,ivfflat,diskann}'))",
        &[table.into(), column.as_str().into()],
    )
    .unwrap_or(false);
    if own {
        return (!done.is_empty()).then(|| done.join("; "));
    }
    let col = pgai_migrate_core::ident::quote_ident(&column);
    // Enough embeddings yet, and (if asked) nothing queued: read as the
    // owner, with row security off (a forced policy raises 42501).
    let ready = v.as_owner(|| {
        let rows: i64 = one(
            &format!("SELECT pg_catalog.count(*) FROM (SELECT FROM {table_sql} WHERE {col} IS NOT NULL LIMIT $1) s"),
            &[w.min_rows.into()],
        )
        .unwrap_or(0);
        let queue_empty = !w.when_queue_empty
            || one::<bool>(
                &format!("SELECT NOT EXISTS (SELECT FROM {})", crate::catalog::relation_name(v.queue, &mut HashMap::new())
                    .map(|(s, n)| qualified(&s, &n))
                    .unwrap_or_default()),
                &[],
            )
            .unwrap_or(false);
        rows >= w.min_rows && queue_empty
    });
    if !ready {
        return (!done.is_empty()).then(|| done.join("; "));
    }
    // The operator class of the extension that provides the method, never
    // one of the same name a tenant made: index builds call its functions.
    let opclass: Option<String> = one(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.opcname)
         FROM pg_catalog.pg_opclass c
         JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.opcmethod
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.opcnamespace
         JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_opclass'::pg_catalog.regclass
          AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
         JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
         WHERE c.opcname OPERATOR(pg_catalog.=) $1 AND a.amname OPERATOR(pg_catalog.=) $2 AND e.extname OPERATOR(pg_catalog.=) $3",
        &[w.opclass.as_str().into(), w.method.into(), w.extension.into()],
    );
    let Some(opclass) = opclass else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "vectorizer {:?}: indexing.opclass {:?} is not an operator class of {} for {}",
                v.name, w.opclass, w.extension, w.method
            ),
            "pgvector's hnsw classes are vector_cosine_ops, vector_l2_ops, vector_ip_ops, vector_l1_ops (and halfvec_*, sparsevec_*, bit_*).",
        )
    };
    let name = (0..100)
        .map(|n| index::index_name(&table_name, &column, n))
        .find(|n| !crate::catalog::relation_exists(&schema, n))
        .unwrap_or_else(|| index::index_name(&table_name, &column, 100));
    let create = w.create_sql(&name, &table_sql, &column, &opclass);
    let comment = format!(
        "COMMENT ON INDEX {} IS {}",
        qualified(&schema, &name),
        pgai_migrate_core::ident::quote_literal(&w.marker())
    );
    v.as_owner(|| {
        crate::spi::run(&create);
        crate::spi::run(&comment);
    });
    done.push(format!("created index {name}"));
    Some(done.join("; "))
}
