//! Taking over what a drop kept. `drop_vectorizer(name)` without
//! `drop_all` leaves the store, the view (or a column destination's
//! column) and their embeddings; creating or restoring the vectorizer
//! again uses them instead of failing on the existing names. Only what
//! has exactly the shape the config makes, belongs to the source table's
//! owner and serves no other vectorizer is taken: a table another role
//! put in the way is never adopted (its owner could read the chunks).

use pgai_migrate_core::plan::Relation;
use pgai_migrate_core::{ConfigError, ErrorKind, Plan, SourceTable};
use pgrx::prelude::*;

use crate::spi::one;

#[derive(Default)]
pub struct Kept {
    pub store: bool,
    pub view: bool,
    column: bool,
    /// Why an existing store or view was not taken over, for the error.
    reasons: Vec<(Relation, String)>,
    /// The embedding column exists and cannot be taken over.
    pub column_error: Option<ConfigError>,
}

impl Kept {
    pub fn why_not(&self, r: &Relation) -> Option<String> {
        self.reasons
            .iter()
            .find(|(k, _)| k == r)
            .map(|(_, why)| why.clone())
    }

    /// The destination's statements, less what is taken over: an adopted
    /// store is not created (its grants still are), an adopted view is
    /// replaced in place (keeping its own grants and dependants), an
    /// adopted column is not added.
    pub fn destination_sql(&self, plan: &Plan) -> Vec<String> {
        let mut out: Vec<String> = if self.store {
            plan.store_sql
                .iter()
                .filter(|s| s.starts_with("GRANT"))
                .cloned()
                .collect()
        } else {
            plan.store_sql.clone()
        };
        out.extend(plan.view_sql.iter().map(|s| {
            if self.view {
                s.replacen("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)
            } else {
                s.clone()
            }
        }));
        if !self.column {
            out.extend(plan.column_sql.iter().cloned());
        }
        out
    }
}

/// What of the plan's destination exists already, and whether it can be
/// taken over.
pub fn find(plan: &Plan, source_relid: pg_sys::Oid, source: &SourceTable) -> Kept {
    let mut kept = Kept::default();
    let dims = plan.config["embedding"]["dimensions"].as_i64().unwrap_or(0) as i32;
    if let Some(store) = &plan.store {
        match check(store, 'r', source_relid, source, dims) {
            Check::Absent => {}
            Check::Adoptable => kept.store = true,
            Check::No(why) => kept.reasons.push((store.clone(), why)),
        }
    }
    if let Some(view) = &plan.view {
        match check(view, 'v', source_relid, source, dims) {
            Check::Absent => {}
            Check::Adoptable => kept.view = true,
            Check::No(why) => kept.reasons.push((view.clone(), why)),
        }
    }
    if let Some(col) = &plan.embedding_column {
        let state: Option<pgrx::JsonB> = one(
            "SELECT pg_catalog.jsonb_build_object(
                 'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                 'fits', a.atttypmod OPERATOR(pg_catalog.=) $3 AND t.typname OPERATOR(pg_catalog.=) 'vector'
                         AND t.typnamespace OPERATOR(pg_catalog.=) (SELECT e.extnamespace FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'vector'),
                 'used_by', (SELECT v.name FROM migrate.vectorizer v WHERE v.source::pg_catalog.oid OPERATOR(pg_catalog.=) $1
                             AND v.embedding_column OPERATOR(pg_catalog.=) $2))
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
             WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2 AND NOT a.attisdropped",
            &[source_relid.into(), col.as_str().into(), dims.into()],
        );
        if let Some(state) = state {
            let s = state.0;
            let why = if let Some(other) = s["used_by"].as_str() {
                Some(format!(
                    "It holds the embeddings of vectorizer \"{other}\"."
                ))
            } else if s["fits"] != true {
                Some(format!(
                    "It is {}, this config makes vector({dims}).",
                    s["type"].as_str().unwrap_or("?")
                ))
            } else {
                None
            };
            match why {
                None => kept.column = true,
                Some(why) => {
                    kept.column_error = Some(
                        ConfigError::new(
                            ErrorKind::DuplicateColumn,
                            "destination.embedding_column",
                            format!(
                                "column \"{col}\" of relation \"{}\" already exists",
                                source.name
                            ),
                        )
                        .with_detail(why),
                    )
                }
            }
        }
    }
    kept
}

enum Check {
    Absent,
    Adoptable,
    No(String),
}

fn check(
    r: &Relation,
    kind: char,
    source_relid: pg_sys::Oid,
    source: &SourceTable,
    dims: i32,
) -> Check {
    let key: Vec<String> = source.primary_key.clone();
    let state: Option<pgrx::JsonB> = one(
        "SELECT pg_catalog.jsonb_build_object(
             'kind', c.relkind::pg_catalog.text,
             'owner', pg_catalog.pg_get_userbyid(c.relowner),
             'source_owner', (SELECT pg_catalog.pg_get_userbyid(s.relowner) FROM pg_catalog.pg_class s WHERE s.oid OPERATOR(pg_catalog.=) $3),
             'used_by', (SELECT v.name FROM migrate.vectorizer v
                         WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY[v.store_relid, v.view_relid, v.queue_relid, v.queue_failed_relid]::pg_catalog.oid[])),
             -- the source of the vectorizer whose last drop kept it (by name)
             'kept_from', (SELECT pg_catalog.jsonb_build_array(r.vectorizer_name, r.config OPERATOR(pg_catalog.->>) 'source')
                           FROM migrate.revision r
                           WHERE r.operation OPERATOR(pg_catalog.=) 'drop' AND r.drop_all IS NOT TRUE
                             AND ((r.config OPERATOR(pg_catalog.#>>) '{destination,target_schema}' OPERATOR(pg_catalog.=) n.nspname::pg_catalog.text
                                   AND r.config OPERATOR(pg_catalog.#>>) '{destination,target_table}' OPERATOR(pg_catalog.=) c.relname::pg_catalog.text)
                               OR (r.config OPERATOR(pg_catalog.#>>) '{destination,view_schema}' OPERATOR(pg_catalog.=) n.nspname::pg_catalog.text
                                   AND r.config OPERATOR(pg_catalog.#>>) '{destination,view_name}' OPERATOR(pg_catalog.=) c.relname::pg_catalog.text))
                           ORDER BY r.id DESC LIMIT 1),
             'embedding', (SELECT a.atttypmod OPERATOR(pg_catalog.=) $5 AND t.typname OPERATOR(pg_catalog.=) 'vector'
                                  AND t.typnamespace OPERATOR(pg_catalog.=) (SELECT e.extnamespace FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'vector')
                           FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
                           WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attname OPERATOR(pg_catalog.=) 'embedding' AND NOT a.attisdropped),
             'embedding_type', (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                                WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attname OPERATOR(pg_catalog.=) 'embedding' AND NOT a.attisdropped),
             -- the store's columns: the four of its own, and the key's with the source's types
             'shape', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                         AND ((a.attname OPERATOR(pg_catalog.=) 'embedding_uuid' AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype)
                           OR (a.attname OPERATOR(pg_catalog.=) 'chunk_seq' AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.int4'::pg_catalog.regtype)
                           OR (a.attname OPERATOR(pg_catalog.=) 'chunk' AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype)
                           OR (a.attname OPERATOR(pg_catalog.=) ANY ($4) AND EXISTS (
                                 SELECT FROM pg_catalog.pg_attribute s WHERE s.attrelid OPERATOR(pg_catalog.=) $3 AND s.attname OPERATOR(pg_catalog.=) a.attname
                                   AND s.atttypid OPERATOR(pg_catalog.=) a.atttypid AND s.atttypmod OPERATOR(pg_catalog.=) a.atttypmod)))))
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
        &[
            r.schema.as_str().into(),
            r.name.as_str().into(),
            source_relid.into(),
            key.clone().into(),
            dims.into(),
        ],
    );
    let Some(state) = state else {
        return Check::Absent;
    };
    let s = state.0;
    let what = if kind == 'r' { "store table" } else { "view" };
    if s["kind"].as_str() != Some(&kind.to_string()) {
        return Check::No(format!("It is not a {what}."));
    }
    if let Some(other) = s["used_by"].as_str() {
        return Check::No(format!("It belongs to vectorizer \"{other}\"."));
    }
    if s["owner"] != s["source_owner"] {
        return Check::No(format!(
            "It belongs to role \"{}\", not to the source table's owner \"{}\", so it is not taken over as the {what}.",
            s["owner"].as_str().unwrap_or("?"),
            s["source_owner"].as_str().unwrap_or("?")
        ));
    }
    if kind == 'r' {
        if s["embedding"] != true {
            return Check::No(format!(
                "Its embedding column is {}, this config makes vector({dims}).",
                s["embedding_type"].as_str().unwrap_or("missing")
            ));
        }
        if s["shape"].as_i64() != Some(3 + key.len() as i64) {
            return Check::No("Its columns are not those of a store table for this source.".into());
        }
    }
    // Made for this source: a store kept from another table's vectorizer
    // would serve that table's chunks through this one's view.
    match s["kept_from"].as_array() {
        None => {
            return Check::No(format!(
                "No drop of a vectorizer on {} kept it, so it is not taken over as the {what}.",
                source.qualified_name
            ))
        }
        Some(k) if k.get(1).and_then(|v| v.as_str()) != Some(source.qualified_name.as_str()) => {
            return Check::No(format!(
                "It was kept by the drop of vectorizer \"{}\" on {}, not on {}, so it is not taken over as the {what}.",
                k.first().and_then(|v| v.as_str()).unwrap_or("?"),
                k.get(1).and_then(|v| v.as_str()).unwrap_or("?"),
                source.qualified_name
            ))
        }
        Some(_) => {}
    }
    Check::Adoptable
}
