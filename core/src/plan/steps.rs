//! A plan as steps: every statement that creates, changes or drops a
//! vectorizer, in order, with the role it runs as and the `search_path`
//! it runs under. The extension layer runs them one after another and
//! knows nothing else about them.
//!
//! Why the roles: the caller only needs to own the source table; the
//! catalog and the queue schema belong to the extension, so the DDL runs
//! as the extension owner (after the extension's own privilege checks).
//! Statements that read the source's rows or may run user-defined code
//! (domain checks, comparison functions) run as the source's owner, under
//! `SECURITY_RESTRICTED_OPERATION` like `CREATE INDEX`, and with row
//! security off so that a policy hiding rows from the owner is an error
//! rather than rows silently left out.

use crate::ident::{qualified, quote_ident};
use crate::source::SourceTable;

use super::{drop_sql, trigger_ddl, Plan, Relation};

/// The `search_path` of every step: everything the statements name is
/// schema-qualified or pinned by catalog lookup, and pg_temp goes last so
/// no temporary object shadows anything.
pub const FIXED_SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// Who runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The extension's owner: DDL on the extension's objects and on the
    /// vectorizer's, none of which runs user-defined code.
    ExtensionOwner,
    /// The source table's owner; `restricted` adds
    /// `SECURITY_RESTRICTED_OPERATION`, as PostgreSQL does around code a
    /// table's owner supplied.
    SourceOwner { restricted: bool },
    /// Whoever called, unchanged.
    Caller,
}

/// One statement of a plan and how it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub role: Role,
    pub search_path: String,
    /// `row_security = off` while it runs: reading every row of the source
    /// as its owner must fail (42501) rather than miss rows a forced policy
    /// hides.
    pub row_security_off: bool,
    /// What the step is for, in a few words.
    pub purpose: &'static str,
    pub sql: String,
}

impl Step {
    /// DDL as the extension owner under `search_path`.
    pub fn ddl(search_path: &str, purpose: &'static str, sql: impl Into<String>) -> Step {
        Step {
            role: Role::ExtensionOwner,
            search_path: search_path.to_string(),
            row_security_off: false,
            purpose,
            sql: sql.into(),
        }
    }

    /// Reading (or writing) every row of the source: as its owner,
    /// restricted, with row security off.
    pub fn all_rows(purpose: &'static str, sql: impl Into<String>) -> Step {
        Step {
            role: Role::SourceOwner { restricted: true },
            search_path: FIXED_SEARCH_PATH.to_string(),
            row_security_off: true,
            purpose,
            sql: sql.into(),
        }
    }

    /// Whether `other` runs with the same role and settings, so both can
    /// run under one switch.
    pub fn same_setting(&self, other: &Step) -> bool {
        self.role == other.role
            && self.search_path == other.search_path
            && self.row_security_off == other.row_security_off
    }
}

fn ddl_all<'a>(
    out: &mut Vec<Step>,
    search_path: &str,
    purpose: &'static str,
    sql: impl IntoIterator<Item = &'a String>,
) {
    out.extend(sql.into_iter().map(|s| Step::ddl(search_path, purpose, s)));
}

/// The destination's statements when nothing is taken over: the store,
/// the view, or a column destination's column.
pub fn fresh_destination(plan: &Plan) -> Vec<String> {
    [
        plan.store_sql.clone(),
        plan.view_sql.clone(),
        plan.column_sql.clone(),
    ]
    .concat()
}

/// The steps of a create. `destination` is the destination's statements
/// ([`fresh_destination`], less what a kept store or view lets create take
/// over); `shared_grants` the shared privileges to give now (decided from
/// the database: only those a role lacks). The catalog row is written
/// after the last step.
pub fn create_steps(plan: &Plan, destination: &[String], shared_grants: &[String]) -> Vec<Step> {
    let ddl = plan.ddl_search_path.as_str();
    let mut out = Vec::new();
    ddl_all(&mut out, ddl, "create the destination", destination);
    // The triggers lock the source against writes until commit, so no row
    // is missed by what follows.
    ddl_all(
        &mut out,
        ddl,
        "create the failed queue and triggers",
        &plan.create,
    );
    if plan.queue_bulk.is_empty() {
        out.push(Step::ddl(ddl, "create the empty queue", &plan.queue_plain));
    } else {
        ddl_all(
            &mut out,
            ddl,
            "create the queue filled with every key",
            &plan.queue_bulk,
        );
    }
    ddl_all(
        &mut out,
        ddl,
        "give the queues to the owner, grant them",
        &plan.after_queue,
    );
    ddl_all(
        &mut out,
        ddl,
        "grant shared privileges a role lacks",
        shared_grants,
    );
    out.extend(
        plan.as_owner
            .iter()
            .map(|s| Step::all_rows("queue the existing rows", s)),
    );
    // After the rows are queued: one index build is cheaper than one
    // insert into it per row.
    ddl_all(&mut out, FIXED_SEARCH_PATH, "index the queues", &plan.index);
    out
}

/// The steps of a drop, in two parts: the catalog row is deleted between
/// them, so that the `sql_drop` event trigger sees the dropped objects as
/// no one's while the grants are taken back with the vectorizer still
/// recorded.
pub struct DropSteps {
    pub revoke: Vec<Step>,
    pub remove: Vec<Step>,
}

/// `revokes` are what create granted and nobody needs any longer;
/// `triggers`, `queues`, `view` and `store` what still exists of the
/// vectorizer's objects (see [`drop_sql`]).
pub fn drop_steps(
    revokes: &[String],
    triggers: &[(String, String)],
    queues: &[Relation],
    view: Option<&Relation>,
    store: Option<&Relation>,
) -> DropSteps {
    let mut revoke = Vec::new();
    ddl_all(
        &mut revoke,
        FIXED_SEARCH_PATH,
        "take back what create granted",
        revokes,
    );
    let mut remove = Vec::new();
    ddl_all(
        &mut remove,
        FIXED_SEARCH_PATH,
        "drop the triggers, queues and destination",
        &drop_sql(triggers, queues, view, store),
    );
    DropSteps { revoke, remove }
}

/// `ALTER … SET SCHEMA` and `RENAME TO` taking `from` to `to`.
pub fn move_sql(kind: &str, from: &Relation, to: &Relation) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = from.clone();
    if from.schema != to.schema {
        out.push(format!(
            "ALTER {kind} {} SET SCHEMA {}",
            qualified(&at.schema, &at.name),
            quote_ident(&to.schema)
        ));
        at.schema = to.schema.clone();
    }
    if from.name != to.name {
        out.push(format!(
            "ALTER {kind} {} RENAME TO {}",
            qualified(&at.schema, &at.name),
            quote_ident(&to.name)
        ));
    }
    out
}

/// What an alter found in the database and decided, besides the new plan:
/// where the vectorizer's objects are now, and which grants change.
pub struct Alter<'a> {
    pub id: i32,
    /// The plan of the new config.
    pub plan: &'a Plan,
    pub source: &'a SourceTable,
    /// Schema of the `vector` type.
    pub vector_schema: &'a str,
    pub queue: &'a Relation,
    pub failed_queue: &'a Relation,
    pub store: Option<&'a Relation>,
    pub view: Option<&'a Relation>,
    /// A column destination's column as it is named now.
    pub embedding_column: Option<&'a str>,
    /// The destination is made again (another kind, or another vector
    /// size): embeddings cannot be kept in it.
    pub rebuild: bool,
    /// The stored embeddings are of another model and go.
    pub clears: bool,
    /// Every row is queued again.
    pub reembed: bool,
    /// `grant_to` roles no longer listed (and still existing), and new ones.
    pub gone: &'a [String],
    pub added: &'a [String],
    /// Shared grants to take back, and to give.
    pub revokes: &'a [String],
    pub grants: &'a [String],
}

impl Alter<'_> {
    fn src(&self) -> String {
        qualified(&self.source.schema, &self.source.name)
    }

    /// The rows of the source every row of which is read: a plain table's
    /// own (ONLY; its inheritance children are not covered), a partitioned
    /// one's partitions.
    fn rows(&self) -> String {
        if self.source.partitioned {
            self.src()
        } else {
            format!("ONLY {}", self.src())
        }
    }
}

/// Run first by a re-embedding alter, before anything is checked or
/// emptied: a policy hiding rows from the owner (FORCE ROW LEVEL SECURITY)
/// is refused here, by PostgreSQL (42501).
pub fn reembed_probe(a: &Alter) -> Vec<Step> {
    if !a.reembed {
        return Vec::new();
    }
    vec![Step::all_rows(
        "refuse a policy hiding rows from the owner",
        format!("SELECT FROM {} LIMIT 0", a.rows()),
    )]
}

/// The steps of an alter, run after the catalog holds the new config (the
/// DDL event triggers compare the database with it after every command).
pub fn alter_steps(a: &Alter) -> Vec<Step> {
    let plan = a.plan;
    let ddl = plan.ddl_search_path.as_str();
    let step = |purpose: &'static str, sql: String| Step::ddl(ddl, purpose, sql);
    let src = a.src();
    let q = qualified(&plan.queue.schema, &plan.queue.name);
    let fq = qualified(&plan.failed_queue.schema, &plan.failed_queue.name);
    let mut out = Vec::new();

    // The update trigger's column list first (the event triggers compare
    // it with the catalog's after every command below).
    let read: Vec<&crate::SourceColumn> = plan
        .read_columns
        .iter()
        .filter_map(|c| a.source.column(c))
        .collect();
    for sql in trigger_ddl(a.id, &plan.trigger_name, &src, &read) {
        out.push(step(
            "replace the triggers",
            sql.replacen("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1),
        ));
    }
    for sql in move_sql("TABLE", a.queue, &plan.queue) {
        out.push(step("move the queue", sql));
    }
    for sql in move_sql("TABLE", a.failed_queue, &plan.failed_queue) {
        out.push(step("move the failed queue", sql));
    }

    // Revokes go while the objects they name still exist.
    for sql in a.revokes {
        out.push(step("take back shared grants", sql.clone()));
    }
    for role in a.gone {
        let r = quote_ident(role);
        let purpose = "take back a dropped role's grants";
        out.push(step(
            purpose,
            format!("REVOKE SELECT, INSERT, UPDATE, DELETE ON {q}, {fq} FROM {r}"),
        ));
        if !a.rebuild {
            if let Some(s) = a.store {
                out.push(step(
                    purpose,
                    format!(
                        "REVOKE SELECT, INSERT, UPDATE, DELETE ON {} FROM {r}",
                        qualified(&s.schema, &s.name)
                    ),
                ));
            }
            if let Some(v) = a.view {
                out.push(step(
                    purpose,
                    format!(
                        "REVOKE SELECT ON {} FROM {r}",
                        qualified(&v.schema, &v.name)
                    ),
                ));
            }
        }
    }

    if a.rebuild {
        // Vectors of another size or kind: the old destination goes, the
        // new one is made as create makes it.
        let purpose = "drop the old destination";
        if let Some(v) = a.view {
            out.push(step(
                purpose,
                format!("DROP VIEW {}", qualified(&v.schema, &v.name)),
            ));
        }
        if let Some(s) = a.store {
            out.push(step(
                purpose,
                format!("DROP TABLE {}", qualified(&s.schema, &s.name)),
            ));
        }
        if let Some(col) = a.embedding_column {
            out.push(step(
                purpose,
                format!("ALTER TABLE {src} DROP COLUMN {}", quote_ident(col)),
            ));
        }
        for sql in fresh_destination(plan) {
            out.push(step("create the new destination", sql));
        }
    } else {
        if let (Some(from), Some(to)) = (a.store, &plan.store) {
            for sql in move_sql("TABLE", from, to) {
                out.push(step("move the store", sql));
            }
        }
        if let (Some(from), Some(to)) = (a.view, &plan.view) {
            for sql in move_sql("VIEW", from, to) {
                out.push(step("move the view", sql));
            }
        }
        if let (Some(from), Some(to)) = (a.embedding_column, &plan.embedding_column) {
            if from != to {
                out.push(step(
                    "rename the embedding column",
                    format!(
                        "ALTER TABLE {src} RENAME COLUMN {} TO {}",
                        quote_ident(from),
                        quote_ident(to)
                    ),
                ));
            }
        }
        if let (true, Some(col)) = (a.clears, &plan.embedding_column) {
            // Another model's vectors of the same size: gone, with no
            // trigger fired (no UPDATE runs).
            let vector = format!(
                "{}({})",
                qualified(a.vector_schema, "vector"),
                plan.config["embedding"]["dimensions"].as_i64().unwrap_or(0)
            );
            // The rewrite checks the table's constraints, which may call
            // the owner's functions: run it as the owner.
            out.push(Step {
                role: Role::SourceOwner { restricted: false },
                ..step(
                    "empty the embedding column",
                    format!(
                        "ALTER TABLE {src} ALTER COLUMN {c} TYPE {vector} USING NULL::{vector}",
                        c = quote_ident(col)
                    ),
                )
            });
        }
        for role in a.added {
            let r = quote_ident(role);
            if let Some(s) = &plan.store {
                out.push(step(
                    "grant the store to a new role",
                    format!(
                        "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {r}",
                        qualified(&s.schema, &s.name)
                    ),
                ));
            }
            if let Some(v) = &plan.view {
                out.push(step(
                    "grant the view to a new role",
                    format!("GRANT SELECT ON {} TO {r}", qualified(&v.schema, &v.name)),
                ));
            }
        }
    }
    for role in a.added {
        let r = quote_ident(role);
        out.push(step(
            "grant the queues to a new role",
            format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {q}, {fq} TO {r}"),
        ));
    }
    for sql in a.grants {
        out.push(step("grant shared privileges a role lacks", sql.clone()));
    }

    if a.reembed {
        // User data and user-owned tables: as the owner, restricted, like
        // create's queueing. The failed queue's keys get a new chance
        // under the new config.
        let keys = a
            .source
            .primary_key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        if let (true, false, Some(s)) = (a.clears, a.rebuild, &plan.store) {
            out.push(Step::all_rows(
                "empty the store",
                format!("TRUNCATE {}", qualified(&s.schema, &s.name)),
            ));
        }
        out.push(Step::all_rows(
            "empty the queues",
            format!("TRUNCATE {q}, {fq}"),
        ));
        out.push(Step::all_rows(
            "queue every row again",
            format!("INSERT INTO {q} ({keys}) SELECT {keys} FROM {}", a.rows()),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
