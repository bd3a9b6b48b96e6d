//! The statements behind the worker's entry points (`migrate.worker_*`).
//!
//! The extension runs them as the vectorizer's owner, security-restricted
//! and with `row_security = off` (see `src/worker_api.rs`), never as the
//! worker role: so code a table owner attaches to its source, store or
//! queue (triggers, rules, defaults, checks, index expressions, types'
//! functions, row-security policies) runs with that owner's rights only.
//!
//! Keys travel as a jsonb array of objects (`$1`), read back with the
//! queue's row type, and are compared with the key index's pinned equality
//! operator ([`KeyColumn::eq`]), like the trigger's statements.

use crate::ident::quote_ident;
use crate::source::KeyColumn;

/// The documents travel as text (the functions read them in SQL, so a
/// too-deep one is PostgreSQL's own error, never a parse in Rust).
const J1: &str = "$1::pg_catalog.jsonb";

/// Where a vectorizer's embeddings go.
pub enum Target<'a> {
    /// A store table `(key…, chunk_seq, chunk, embedding)`.
    Store(&'a str),
    /// A column of the source, with its type as SQL (`public.vector(384)`).
    Column { name: &'a str, type_sql: &'a str },
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStatements {
    /// `$1` the number of keys: claims the first claimable keys in key
    /// order; one value, a jsonb array (as text) of the claimed queue rows.
    pub claim: String,
    /// The same after a cursor (`$2`, a key as jsonb).
    pub claim_after: String,
    /// `$1` keys: a jsonb array (as text) of the source rows that hold them.
    pub read: String,
    /// `$1` keys: forget the keys' stored chunks (store targets only).
    pub forget: Option<String>,
    /// `$1` rows: the store's rows to insert, or the keys with their
    /// embedding (`{…key, "embedding": "[…]" | null}`) for a column target.
    pub write: String,
    /// `$1` queue rows with `retries` and `delay` (seconds): back to the
    /// queue with their retry count, unless queued again meanwhile.
    pub requeue: String,
    /// `$1` queue rows with `step`: into the failed queue.
    pub fail: String,
}

pub fn worker_statements(
    source: &str,
    queue: &str,
    failed_queue: &str,
    target: &Target<'_>,
    keys: &[KeyColumn],
) -> WorkerStatements {
    let list = |prefix: &str| {
        keys.iter()
            .map(|c| format!("{prefix}{}", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cols = list("");
    let matches = |a: &str, b: &str| {
        keys.iter()
            .map(|c| {
                let n = quote_ident(&c.name);
                c.eq(&format!("{a}.{n}"), &format!("{b}.{n}"))
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let rows =
        |param: &str, ty: &str| format!("pg_catalog.jsonb_populate_recordset(NULL::{ty}, {param})");
    // Key order along the queue's primary key, resuming after the last key
    // claimed: each claim reads about one batch of the index however long
    // the queue. Row comparison `>` resolves in pg_catalog (the caller's
    // search_path is fixed), like the btree order it follows.
    let claim = |after: &str| {
        format!(
            "WITH claimed AS (DELETE FROM {queue} q USING (SELECT {cols} FROM {queue} \
               WHERE (loading_retry_after IS NULL OR loading_retry_after OPERATOR(pg_catalog.<=) pg_catalog.now()){after} \
               ORDER BY {cols} LIMIT $1 FOR UPDATE SKIP LOCKED) c \
             WHERE {} RETURNING pg_catalog.to_jsonb(q) AS r) \
             SELECT COALESCE(pg_catalog.jsonb_agg(claimed.r), '[]'::pg_catalog.jsonb)::pg_catalog.text FROM claimed",
            matches("q", "c")
        )
    };
    let cursor = keys
        .iter()
        .map(|c| {
            format!(
                "(pg_catalog.jsonb_populate_record(NULL::{queue}, $2::pg_catalog.jsonb)).{}",
                quote_ident(&c.name)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (forget, write) = match target {
        Target::Store(store) => (
            Some(format!(
                "DELETE FROM {store} t USING {} k WHERE {}",
                rows(J1, queue),
                matches("t", "k")
            )),
            format!(
                "INSERT INTO {store} ({cols}, chunk_seq, chunk, embedding) \
                 SELECT {cols}, chunk_seq, chunk, embedding FROM {}",
                rows(J1, store)
            ),
        ),
        Target::Column { name, type_sql } => (
            None,
            format!(
                "UPDATE {source} s SET {c} = (x.e OPERATOR(pg_catalog.->>) 'embedding')::{type_sql} \
                 FROM (SELECT pg_catalog.jsonb_populate_record(NULL::{queue}, e) AS k, e \
                       FROM pg_catalog.jsonb_array_elements($1::pg_catalog.jsonb) e) x \
                 WHERE {}",
                matches("s", "(x.k)"),
                c = quote_ident(name),
            ),
        ),
    };
    let elements = format!(
        "(SELECT pg_catalog.jsonb_populate_record(NULL::{queue}, e) AS r, e FROM pg_catalog.jsonb_array_elements($1::pg_catalog.jsonb) e) x"
    );
    let r_cols = list("(x.r).");
    WorkerStatements {
        claim: claim(""),
        claim_after: claim(&format!(" AND ({cols}) > ({cursor})")),
        read: format!(
            "SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s)), '[]'::pg_catalog.jsonb)::pg_catalog.text FROM {source} s, {} k WHERE {}",
            rows(J1, queue),
            matches("s", "k")
        ),
        forget,
        write,
        requeue: format!(
            "INSERT INTO {queue} ({cols}, queued_at, loading_retries, loading_retry_after) \
             SELECT {r_cols}, COALESCE((x.r).queued_at, pg_catalog.now()), \
                    (x.e OPERATOR(pg_catalog.->>) 'retries')::pg_catalog.int4, \
                    pg_catalog.now() OPERATOR(pg_catalog.+) \
                      pg_catalog.make_interval(secs => (x.e OPERATOR(pg_catalog.->>) 'delay')::pg_catalog.float8) \
             FROM {elements} ON CONFLICT DO NOTHING"
        ),
        fail: format!(
            "INSERT INTO {failed_queue} ({cols}, created_at, failure_step) \
             SELECT {r_cols}, pg_catalog.now(), x.e OPERATOR(pg_catalog.->>) 'step' FROM {elements}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<KeyColumn> {
        vec![
            KeyColumn {
                name: "id".into(),
                type_sql: "integer".into(),
                eq_schema: "pg_catalog".into(),
                eq_name: "=".into(),
                eq_type: None,
            },
            KeyColumn {
                name: "we\"ird".into(),
                type_sql: "character varying".into(),
                eq_schema: "pg_catalog".into(),
                eq_name: "=".into(),
                eq_type: Some("pg_catalog.text".into()),
            },
        ]
    }

    #[test]
    fn statements_quote_keys_pin_equality_and_claim_with_skip_locked() {
        let s = worker_statements(
            "public.blog",
            "migrate._vectorizer_q_1",
            "migrate._vectorizer_q_failed_1",
            &Target::Store("public.blog_store"),
            &keys(),
        );
        assert!(
            s.claim
                .contains("ORDER BY \"id\", \"we\"\"ird\" LIMIT $1 FOR UPDATE SKIP LOCKED"),
            "{}",
            s.claim
        );
        assert!(
            s.claim
                .contains("q.\"id\" OPERATOR(\"pg_catalog\".=) c.\"id\""),
            "{}",
            s.claim
        );
        assert!(
            s.read.contains("(s.\"we\"\"ird\")::pg_catalog.text OPERATOR(\"pg_catalog\".=) (k.\"we\"\"ird\")::pg_catalog.text"),
            "{}",
            s.read
        );
        assert!(s
            .forget
            .as_deref()
            .unwrap()
            .starts_with("DELETE FROM public.blog_store t USING"));
        assert!(s
            .write
            .starts_with("INSERT INTO public.blog_store (\"id\", \"we\"\"ird\", chunk_seq"));
        // No operator is left to the search path but the cursor's row comparison.
        for sql in [&s.claim, &s.read, &s.write, &s.requeue, &s.fail] {
            assert!(!sql.contains(" = "), "{sql}");
        }
    }

    #[test]
    fn a_column_target_updates_the_source() {
        let s = worker_statements(
            "public.blog",
            "migrate.q",
            "migrate.f",
            &Target::Column {
                name: "emb",
                type_sql: "public.vector(3)",
            },
            &keys()[..1],
        );
        assert!(s.forget.is_none());
        assert!(
            s.write.starts_with("UPDATE public.blog s SET \"emb\" = "),
            "{}",
            s.write
        );
        assert!(s.write.contains("::public.vector(3)"));
    }
}
