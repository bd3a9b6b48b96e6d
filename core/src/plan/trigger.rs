//! The triggers on a source and the statements the extension's one
//! trigger function runs for a vectorizer.

use super::*;

/// The vectorizer's four triggers on the source (`src`, qualified), each
/// calling the extension's trigger function with the id. `read` are the
/// columns of the `UPDATE OF` list.
pub fn trigger_ddl(id: i32, name: &str, src: &str, read: &[&SourceColumn]) -> Vec<String> {
    let func = trigger_function_call(id);
    // `UPDATE OF` skips the trigger from the statement's column list alone,
    // before any row is looked at, so an UPDATE that does not set a column
    // the vectorizer reads costs nothing; the WHEN clause then ignores
    // assignments that leave the value as it was.
    let read_list = read
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    // Compared by binary image (NULLs equal): no type's `=` operator is
    // looked up, so nothing another role planted can run here, and types
    // without equality (json, point) work too. A change of representation
    // only (1.0 to 1.00) counts as a change, as it changes the text
    // formatted from it.
    let row = |rec: &str| {
        read.iter()
            .map(|c| format!("{rec}.{}", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        format!(
            "CREATE TRIGGER {} AFTER INSERT OR DELETE ON {src} FOR EACH ROW EXECUTE FUNCTION {func}",
            quote_ident(name)
        ),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE OF {read_list} ON {src} FOR EACH ROW WHEN (NOT pg_catalog.record_image_eq(ROW({}), ROW({}))) EXECUTE FUNCTION {func}",
            quote_ident(&format!("{name}_upd")),
            row("OLD"),
            row("NEW")
        ),
        format!(
            "CREATE TRIGGER {} AFTER TRUNCATE ON {src} FOR EACH STATEMENT EXECUTE FUNCTION {func}",
            quote_ident(&format!("{name}_truncate"))
        ),
        statement_trigger_ddl(name, src, read, &func),
    ]
}

/// The statement-level trigger that writes, in one statement each, the
/// queue and store changes its statement's rows collected (the row
/// triggers only collect keys when it exists, see src/trigger.rs). Its
/// `UPDATE OF` list is the row-level one's, so it fires for every
/// statement the row triggers do and for no UPDATE that sets none of the
/// read columns.
pub fn statement_trigger_ddl(name: &str, src: &str, read: &[&SourceColumn], func: &str) -> String {
    let read_list = read
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE TRIGGER {} AFTER INSERT OR DELETE OR UPDATE OF {read_list} ON {src} FOR EACH STATEMENT EXECUTE FUNCTION {func}",
        quote_ident(&format!("{name}_stmt"))
    )
}

/// The trigger function call of vectorizer `id`'s triggers.
pub fn trigger_function_call(id: i32) -> String {
    format!(
        "{}({})",
        qualified(EXTENSION_SCHEMA, TRIGGER_FUNCTION),
        quote_literal(&id.to_string())
    )
}

/// Queue every row of `rows` (a partition just attached), as `ONLY`.
pub fn queue_rows_sql(queue: &str, rows: &str, keys: &[KeyColumn]) -> String {
    let cols = keys
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO {queue} ({cols}) SELECT {cols} FROM ONLY {rows} ON CONFLICT ({cols}) DO NOTHING")
}

/// Forget the keys of every row of `rows` (a partition just detached):
/// their store rows and queue rows.
pub fn forget_rows_sql(queue: &str, store: Option<&str>, rows: &str, keys: &[KeyColumn]) -> String {
    let m = |t: &str| {
        keys.iter()
            .map(|c| {
                c.eq(
                    &format!("{t}.{}", quote_ident(&c.name)),
                    &format!("d.{}", quote_ident(&c.name)),
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let dequeue = format!("DELETE FROM {queue} q USING ONLY {rows} d WHERE {}", m("q"));
    match store {
        Some(store) => format!(
            "WITH gone AS (DELETE FROM {store} t USING ONLY {rows} d WHERE {}) {dequeue}",
            m("t")
        ),
        None => dequeue,
    }
}

/// The TRUNCATE trigger of one leaf partition (`leaf` as regclass text):
/// truncating a partition fires no trigger of the partitioned table.
pub fn partition_trigger_ddl(id: i32, name: &str, leaf: &str) -> String {
    format!(
        "CREATE TRIGGER {} AFTER TRUNCATE ON {leaf} FOR EACH STATEMENT EXECUTE FUNCTION {}({})",
        quote_ident(&format!("{name}_truncate")),
        qualified(EXTENSION_SCHEMA, TRIGGER_FUNCTION),
        quote_literal(&id.to_string())
    )
}

/// The statements the extension's trigger function runs for one
/// vectorizer, planned once per backend and kept: `$1…$n` are the key
/// values (typed as the source's key columns).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerStatements {
    /// Queue a key. An already-queued key is not queued twice, but its
    /// queue row is locked (DO UPDATE … WHERE false locks without writing a
    /// new version) until this transaction ends: a worker draining with
    /// SKIP LOCKED cannot take it and read the row before this change
    /// commits, and a worker already holding it makes us wait and then
    /// queue the key anew.
    pub enqueue: String,
    /// Forget a key (deleted, or moved away by an UPDATE of the key), in
    /// two statements run in this order: first its queue row, unless a row
    /// with that key exists now (another row of the same statement took
    /// it: `SET id = id + 1` with a deferrable key) — this waits for a
    /// worker holding the key to commit — then, with a new snapshot that
    /// sees what that worker stored, its store rows.
    pub dequeue: String,
    pub forget_store: Option<String>,
    /// The same three for many keys at once, run by the statement-level
    /// trigger with the keys its statement's rows collected: `$1…$n` are
    /// arrays of the key columns' values (one element per key), read with
    /// `ROWS FROM (pg_catalog.unnest($1), …)`. The keys are distinct (by
    /// binary image): ON CONFLICT DO UPDATE refuses a key twice.
    pub enqueue_many: String,
    pub dequeue_many: String,
    pub forget_store_many: Option<String>,
    /// Empty the store and the queue.
    pub truncate: String,
    /// Forget every key that no longer holds a row of the source (after a
    /// partition was truncated, detached or dropped).
    pub orphans: String,
}

pub fn trigger_statements(
    source: &str,
    queue: &str,
    store: Option<&str>,
    keys: &[KeyColumn],
) -> TriggerStatements {
    let cols = keys
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let params = (1..=keys.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let matches = keys
        .iter()
        .enumerate()
        .map(|(i, c)| c.eq(&quote_ident(&c.name), &format!("${}", i + 1)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let unnest = (1..=keys.len())
        .map(|i| format!("pg_catalog.unnest(${i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let k_cols = (1..=keys.len())
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let k_select = (1..=keys.len())
        .map(|i| format!("k.k{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let k_from = format!("ROWS FROM ({unnest}) AS k({k_cols})");
    let k_matches = |t: &str| {
        keys.iter()
            .enumerate()
            .map(|(i, c)| {
                c.eq(
                    &format!("{t}.{}", quote_ident(&c.name)),
                    &format!("k.k{}", i + 1),
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    TriggerStatements {
        enqueue_many: format!(
            "INSERT INTO {queue} AS q ({cols}) SELECT {k_select} FROM {k_from} ON CONFLICT ({cols}) DO UPDATE SET queued_at = q.queued_at WHERE false"
        ),
        dequeue_many: format!(
            "DELETE FROM {queue} q USING {k_from} WHERE {} AND NOT EXISTS (SELECT FROM {source} s WHERE {})",
            k_matches("q"),
            k_matches("s")
        ),
        forget_store_many: store
            .map(|store| format!("DELETE FROM {store} t USING {k_from} WHERE {}", k_matches("t"))),
        enqueue: format!(
            "INSERT INTO {queue} AS q ({cols}) VALUES ({params}) ON CONFLICT ({cols}) DO UPDATE SET queued_at = q.queued_at WHERE false"
        ),
        dequeue: format!(
            "DELETE FROM {queue} WHERE {matches} AND NOT EXISTS (SELECT FROM {source} WHERE {matches})"
        ),
        forget_store: store.map(|store| format!("DELETE FROM {store} WHERE {matches}")),
        orphans: {
            let gone = |t: &str| {
                let m = keys
                    .iter()
                    .map(|c| c.eq(&format!("{t}.{}", quote_ident(&c.name)), &format!("s.{}", quote_ident(&c.name))))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!("NOT EXISTS (SELECT FROM {source} s WHERE {m})")
            };
            let dequeue = format!("DELETE FROM {queue} q WHERE {}", gone("q"));
            match store {
                Some(store) => format!("WITH gone AS (DELETE FROM {store} t WHERE {}) {dequeue}", gone("t")),
                None => dequeue,
            }
        },
        truncate: match store {
            Some(store) => format!("TRUNCATE {store}, {queue}"),
            None => format!("TRUNCATE {queue}"),
        },
    }
}
