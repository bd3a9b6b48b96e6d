//! Turns a parsed [`Config`] plus what the database says about the source
//! table into the evaluated config and the exact SQL that creates or drops a
//! vectorizer. This is the only module that writes SQL text; every
//! identifier goes through [`quote_ident`] and every literal through
//! [`quote_literal`].

use serde_json::{json, Value};

use crate::config::{
    Component, Config, Destination, Evaluated, Indexing, Loading, Parsing, Scheduling,
    StoredDestination,
};
use crate::error::{ConfigError, ErrorKind, Result};
use crate::ident::{qualified, quote_ident, quote_literal, MAX_IDENTIFIER_BYTES};
use crate::source::{Environment, KeyColumn, SourceColumn, SourceTable, TypeCategory};

/// Schema that holds queues and trigger functions unless the config says
/// otherwise.
pub const EXTENSION_SCHEMA: &str = "migrate";
/// The extension's one trigger function (in [`EXTENSION_SCHEMA`]); each
/// trigger passes its vectorizer's id.
pub const TRIGGER_FUNCTION: &str = "_vectorizer_trigger";

/// Columns the store table and view add next to the source's columns.
const STORE_COLUMNS: [&str; 4] = ["embedding_uuid", "chunk_seq", "chunk", "embedding"];
/// Bookkeeping columns of the queue table.
const QUEUE_COLUMNS: [&str; 3] = ["queued_at", "loading_retries", "loading_retry_after"];

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// The config path the name came from, for error messages.
    pub path: String,
    pub schema: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    /// The evaluated config, as stored in the catalog and the revision.
    pub config: Value,
    pub queue: Relation,
    pub failed_queue: Relation,
    pub store: Option<Relation>,
    pub view: Option<Relation>,
    /// Column added to the source table by a column destination.
    pub embedding_column: Option<String>,
    /// Name of the vectorizer's row trigger on the source; the UPDATE,
    /// TRUNCATE and statement-level triggers add `_upd`, `_truncate` and
    /// `_stmt`. All of them call the
    /// extension's one trigger function with the vectorizer's id.
    pub trigger_name: String,
    /// Schemas objects are created in, with the path that named each
    /// (a schema may appear under several paths): they must exist and the
    /// caller must be allowed to create in them.
    pub schemas: Vec<(String, String)>,
    /// `search_path` while running [`Plan::create`]: pg_catalog and pg_temp
    /// last. No schema another role may create objects in is searched, and
    /// nothing generated depends on the search_path anyway.
    pub ddl_search_path: String,
    /// DDL run first with the extension owner's rights, triggers included
    /// (they lock the source against writes until commit, so no row is
    /// missed by what follows). None of it runs user-defined code.
    pub create: Vec<String>,
    /// Creates the empty queue (then [`Plan::as_owner`] fills it).
    pub queue_plain: String,
    /// Creates the queue already filled with every key, by `CREATE TABLE AS`
    /// (bulk-written, much cheaper than an INSERT per row), then gives its
    /// columns their constraints and defaults. Runs with the extension
    /// owner's rights, so it is only planned when reading the source runs no
    /// user code and sees no other role's rows: a plain table, read with
    /// ONLY (partitions may belong to other roles). When empty, the queue
    /// is [`Plan::queue_plain`], filled by [`Plan::as_owner`].
    pub queue_bulk: Vec<String>,
    /// Ownership changes and grants, after the queue exists.
    pub after_queue: Vec<String>,
    /// Privileges `grant_to` roles need on objects the vectorizer does not
    /// own: USAGE on each schema (only where the caller could grant it)
    /// and SELECT on the source. Each is given only to a role that lacks
    /// it, and recorded, so that drop takes back exactly those.
    pub shared_grants: Vec<SharedGrant>,
    /// Run as the source table's owner, because it reads the source's
    /// data: queue the existing rows.
    pub as_owner: Vec<String>,
    /// Indexes on the queues, run after [`Plan::as_owner`] with the
    /// extension owner's rights (PostgreSQL itself runs the index build's
    /// comparisons as the table owner).
    pub index: Vec<String>,
    /// The destination's objects, each list run in order with the
    /// extension owner's rights, before [`Plan::create`]: the store table
    /// (created, given to the source's owner, granted to `grant_to`), the
    /// view (likewise), or a column destination's column. Separate so
    /// that create can adopt a store or view a drop kept, and alter can
    /// rebuild the destination alone.
    pub store_sql: Vec<String>,
    pub view_sql: Vec<String>,
    pub column_sql: Vec<String>,
    /// The columns of the `UPDATE OF` list, in its order: the key, the
    /// loading column and the template's columns. Recorded, so that a
    /// rename (which PostgreSQL follows in the trigger) can be followed in
    /// the config too.
    pub read_columns: Vec<String>,
}

/// How deep an evaluated config may nest. The catalog is read back with
/// the config wrapped in a few more levels (a row, a list of rows), and
/// every read must stay within what the JSON reader takes
/// ([`crate::config::MAX_DEPTH`]); so a config that could be stored but
/// never read again (not even to drop it) is refused here.
pub const STORED_MAX_DEPTH: usize = 100;

/// The path of the first value nested deeper than [`STORED_MAX_DEPTH`]
/// (`level` is the depth of `v`'s own container, 1 for the config).
fn too_deep(v: &Value, path: &str, level: usize) -> Option<String> {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, c)| (crate::json::join(path, k), c))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{path}[{i}]"), c))
            .collect(),
        _ => return None,
    };
    if level > STORED_MAX_DEPTH {
        return Some(path.to_string());
    }
    children
        .into_iter()
        .find_map(|(p, c)| too_deep(c, &p, level + 1))
}

/// The name of vectorizer `id`'s queue when the config names none.
pub fn default_queue_name(id: i32) -> String {
    format!("_vectorizer_q_{id}")
}

/// Schema `migrate` holds only the extension's own names: a queue there
/// has its default name, `_vectorizer_q_<id>`, so no role can take a name
/// that a later version of the extension creates. `id` is None where the
/// id is not known yet (a plan for a create): any default name passes.
pub fn check_queue_place(queue: &Relation, id: Option<i32>) -> Result<()> {
    if queue.schema != EXTENSION_SCHEMA {
        return Ok(());
    }
    let fits = match id {
        Some(id) => queue.name == default_queue_name(id),
        None => queue
            .name
            .strip_prefix("_vectorizer_q_")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
    };
    if fits {
        return Ok(());
    }
    let expected = match id {
        Some(id) => default_queue_name(id),
        None => "_vectorizer_q_<id>".to_string(),
    };
    Err(ConfigError::invalid(
        "queue_table",
        format!(
            "expected the default name \"{expected}\" in schema \"{EXTENSION_SCHEMA}\", got \"{}\"",
            queue.name
        ),
    )
    .with_detail(format!(
        "Schema {EXTENSION_SCHEMA} holds only the extension's own objects."
    ))
    .with_hint("leave out queue_table, or put the queue in a schema of your own with queue_schema"))
}

/// Everything the plan needs besides the config.
pub struct Context<'a> {
    pub source: &'a SourceTable,
    pub env: &'a Environment,
    pub id: i32,
}

pub fn build_plan(config: &Config, ctx: &Context<'_>) -> Result<Plan> {
    let source = ctx.source;
    check_source(config, source, ctx.env)?;
    let pk: Vec<&SourceColumn> = source
        .primary_key
        .iter()
        .map(|n| {
            source
                .column(n)
                .expect("primary key columns are source columns")
        })
        .collect();

    let queue_schema = config
        .queue_schema
        .clone()
        .unwrap_or_else(|| EXTENSION_SCHEMA.to_string());
    let queue = Relation {
        path: "queue_table".into(),
        schema: queue_schema.clone(),
        name: config
            .queue_table
            .clone()
            .unwrap_or_else(|| default_queue_name(ctx.id)),
    };
    let failed_queue = Relation {
        path: "queue_table".into(),
        schema: queue_schema.clone(),
        name: format!("_vectorizer_q_failed_{}", ctx.id),
    };
    let trigger_name = format!("_vectorizer_src_trg_{}", ctx.id);

    let (store, view, embedding_column, destination_json, default_name) = match &config.destination
    {
        Destination::Table {
            destination,
            target_schema,
            target_table,
            view_schema,
            view_name,
        } => {
            let target_schema = target_schema
                .clone()
                .unwrap_or_else(|| source.schema.clone());
            let view_schema = view_schema.clone().unwrap_or_else(|| source.schema.clone());
            let (target_table, view_name, path) = match destination {
                Some(d) => (format!("{d}_store"), d.clone(), "destination.destination"),
                None => (
                    target_table
                        .clone()
                        .unwrap_or_else(|| format!("{}_embedding_store", source.name)),
                    view_name
                        .clone()
                        .unwrap_or_else(|| format!("{}_embedding", source.name)),
                    "destination.target_table",
                ),
            };
            for derived in [&target_table, &view_name] {
                if derived.len() > MAX_IDENTIFIER_BYTES {
                    return Err(ConfigError::invalid(
                        path,
                        format!(
                            "the derived name \"{derived}\" is {} bytes long; PostgreSQL names are at most {MAX_IDENTIFIER_BYTES} bytes",
                            derived.len()
                        ),
                    )
                    .with_hint("give a shorter destination, or target_table and view_name"));
                }
            }
            let d = StoredDestination::Table {
                target_schema: target_schema.clone(),
                target_table: target_table.clone(),
                view_schema: view_schema.clone(),
                view_name: view_name.clone(),
            };
            let default_name = format!("{target_schema}_{target_table}");
            (
                Some(Relation {
                    path: if destination.is_some() {
                        "destination.destination".into()
                    } else {
                        "destination.target_table".into()
                    },
                    schema: target_schema,
                    name: target_table,
                }),
                Some(Relation {
                    path: if destination.is_some() {
                        "destination.destination".into()
                    } else {
                        "destination.view_name".into()
                    },
                    schema: view_schema,
                    name: view_name,
                }),
                None,
                d,
                default_name,
            )
        }
        Destination::Column { embedding_column } => {
            let d = StoredDestination::Column {
                embedding_column: embedding_column.clone(),
            };
            (
                None,
                None,
                Some(embedding_column.clone()),
                d,
                format!("{}_{}_{}", source.schema, source.name, embedding_column),
            )
        }
    };
    let name = config.name.clone().unwrap_or(default_name);

    // Columns whose change means the embedding is stale.
    let template_refs: Vec<String> = match config.formatting.template() {
        Some(t) => crate::template::references(t).unwrap_or_default(),
        None => Vec::new(),
    };
    let read: Vec<&SourceColumn> = source
        .columns
        .iter()
        .filter(|c| {
            source.primary_key.contains(&c.name)
                || c.name == config.loading.column_name()
                || template_refs.contains(&c.name)
        })
        .collect();

    let mut schemas: Vec<(String, String)> = Vec::new();
    // Every (path, schema) pair is checked: the same schema may be allowed
    // for the queue and not for the store.
    let mut add_schema = |path: &str, schema: &str| {
        schemas.push((path.to_string(), schema.to_string()));
    };
    add_schema("queue_schema", &queue_schema);
    if let Some(s) = &store {
        add_schema("destination.target_schema", &s.schema);
    }
    if let Some(v) = &view {
        add_schema("destination.view_schema", &v.schema);
    }

    // Everything the DDL names is schema-qualified or pinned by catalog
    // lookup; pg_temp goes last so no temporary object shadows anything.
    let ddl_search_path = "pg_catalog, pg_temp".to_string();

    let owner = quote_ident(&source.owner);
    let src = qualified(&source.schema, &source.name);
    let q = qualified(&queue.schema, &queue.name);
    let fq = qualified(&failed_queue.schema, &failed_queue.name);
    let pk_list = pk
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let pk_defs = pk
        .iter()
        .map(|c| format!("{} {} NOT NULL", quote_ident(&c.name), c.type_sql))
        .collect::<Vec<_>>()
        .join(", ");
    let vector_type = format!(
        "{}({})",
        qualified(&ctx.env.vector_schema, "vector"),
        config.embedding.dimensions()
    );

    let mut create = Vec::new();
    let mut owned = Vec::new();
    let mut store_sql = Vec::new();
    let mut view_sql = Vec::new();
    let mut column_sql = Vec::new();

    if let Some(s) = &store {
        let st = qualified(&s.schema, &s.name);
        store_sql.push(format!(
            "CREATE TABLE {st} (embedding_uuid pg_catalog.uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid() PRIMARY KEY, {pk_defs}, chunk_seq pg_catalog.int4 NOT NULL, chunk pg_catalog.text NOT NULL, embedding {vector_type} NOT NULL, UNIQUE ({pk_list}, chunk_seq))"
        ));
        store_sql.push(format!("ALTER TABLE {st} OWNER TO {owner}"));
    }
    if let (Some(s), Some(v)) = (&store, &view) {
        let vw = qualified(&v.schema, &v.name);
        view_sql.push(format!(
            "CREATE VIEW {vw} AS {}",
            view_query(source, &qualified(&s.schema, &s.name), None)
        ));
        view_sql.push(format!("ALTER VIEW {vw} OWNER TO {owner}"));
    }
    if let Some(col) = &embedding_column {
        column_sql.push(format!(
            "ALTER TABLE {src} ADD COLUMN {} {vector_type}",
            quote_ident(col)
        ));
    }
    // The queue is created after the triggers, and its primary key added
    // after existing rows are queued: building the index once is much
    // cheaper than maintaining it per row.
    let queue_plain = format!(
        "CREATE TABLE {q} ({pk_defs}, queued_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(), loading_retries pg_catalog.int4 NOT NULL DEFAULT 0, loading_retry_after pg_catalog.timestamptz)"
    );
    let rows = if source.partitioned {
        src.clone()
    } else {
        format!("ONLY {src}")
    };
    let mut queue_bulk = Vec::new();
    let mut as_owner = Vec::new();
    if config.enqueue_existing && source.partitioned {
        as_owner.push(format!(
            "INSERT INTO {q} ({pk_list}) SELECT {pk_list} FROM {rows}"
        ));
    } else if config.enqueue_existing {
        queue_bulk.push(format!(
            "CREATE TABLE {q} AS SELECT {pk_list}, pg_catalog.now() AS queued_at, 0::pg_catalog.int4 AS loading_retries, NULL::pg_catalog.timestamptz AS loading_retry_after FROM {rows}"
        ));
        let not_null = pk
            .iter()
            .map(|c| format!("ALTER COLUMN {} SET NOT NULL", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ");
        queue_bulk.push(format!(
            "ALTER TABLE {q} {not_null}, ALTER COLUMN queued_at SET NOT NULL, ALTER COLUMN queued_at SET DEFAULT pg_catalog.now(), ALTER COLUMN loading_retries SET NOT NULL, ALTER COLUMN loading_retries SET DEFAULT 0"
        ));
    }
    owned.push(format!("ALTER TABLE {q} OWNER TO {owner}"));
    create.push(format!(
        "CREATE TABLE {fq} ({pk_defs}, created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(), failure_step pg_catalog.text NOT NULL DEFAULT '')"
    ));
    owned.push(format!("ALTER TABLE {fq} OWNER TO {owner}"));

    create.extend(trigger_ddl(ctx.id, &trigger_name, &src, &read));
    for leaf in &source.partitions {
        create.push(partition_trigger_ddl(ctx.id, &trigger_name, leaf));
    }
    let mut after_queue = owned;

    // Grants: exactly the privileges a worker running as these roles needs.
    // Those on the vectorizer's own objects go with the objects; those on
    // shared objects (schemas, the source) are recorded, so a drop takes
    // back exactly what this create added.
    let mut shared_grants = Vec::new();
    for role in &config.grant_to {
        let r = quote_ident(role);
        let mut granted: Vec<&String> = Vec::new();
        for (_, schema) in &schemas {
            if granted.contains(&schema) {
                continue;
            }
            granted.push(schema);
            shared_grants.push(SharedGrant {
                target: GrantTarget::Schema(schema.clone()),
                role: role.clone(),
            });
        }
        shared_grants.push(SharedGrant {
            target: GrantTarget::Source,
            role: role.clone(),
        });
        // A worker writes a column destination's embeddings into the source.
        if let Some(col) = &embedding_column {
            shared_grants.push(SharedGrant {
                target: GrantTarget::EmbeddingColumn(col.clone()),
                role: role.clone(),
            });
        }
        if let Some(s) = &store {
            store_sql.push(format!(
                "GRANT {STORE_PRIVILEGES} ON {} TO {r}",
                qualified(&s.schema, &s.name)
            ));
        }
        if let Some(v) = &view {
            view_sql.push(format!(
                "GRANT {VIEW_PRIVILEGES} ON {} TO {r}",
                qualified(&v.schema, &v.name)
            ));
        }
        after_queue.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {q}, {fq} TO {r}"
        ));
    }

    let index = vec![
        format!("ALTER TABLE {q} ADD PRIMARY KEY ({pk_list})"),
        format!("CREATE INDEX ON {fq} ({pk_list})"),
    ];

    let cfg = Evaluated {
        name: name.clone(),
        source: source.qualified_name.clone(),
        destination: destination_json,
        loading: config.loading.clone(),
        parsing: config.parsing,
        embedding: config.embedding.clone(),
        chunking: config.chunking.clone(),
        formatting: config.formatting.clone(),
        indexing: config.indexing.clone(),
        scheduling: config.scheduling.clone(),
        processing: config.processing.clone(),
        queue_schema: queue.schema.clone(),
        queue_table: queue.name.clone(),
        grant_to: config.grant_to.clone(),
    }
    .to_value();
    if let Some(path) = too_deep(&cfg, "", 1) {
        return Err(ConfigError::invalid(
            path,
            format!("the config is nested more than {STORED_MAX_DEPTH} levels deep here"),
        ));
    }

    Ok(Plan {
        name,
        config: cfg,
        queue,
        failed_queue,
        store,
        view,
        embedding_column,
        trigger_name,
        schemas,
        ddl_search_path,
        create,
        queue_plain,
        queue_bulk,
        after_queue,
        shared_grants,
        as_owner,
        index,
        store_sql,
        view_sql,
        column_sql,
        read_columns: read.iter().map(|c| c.name.clone()).collect(),
    })
}

impl Plan {
    /// Every statement that creates the vectorizer's objects before its
    /// queue, in order: the destination's, then [`Plan::create`].
    pub fn create_all(&self) -> Vec<String> {
        [
            self.store_sql.clone(),
            self.view_sql.clone(),
            self.column_sql.clone(),
            self.create.clone(),
        ]
        .concat()
    }
}

impl KeyColumn {
    /// `a = b` with the equality operator of the key index's operator
    /// class, schema-qualified, both operands cast to its input type: no
    /// other operator can match better, whatever another role creates.
    pub fn eq(&self, left: &str, right: &str) -> String {
        let op = format!(
            "OPERATOR({}.{})",
            quote_ident(&self.eq_schema),
            self.eq_name
        );
        match &self.eq_type {
            Some(t) => format!("({left})::{t} {op} ({right})::{t}"),
            None => format!("{left} {op} {right}"),
        }
    }
}

fn eq(left: &str, col: &SourceColumn, right: &str) -> String {
    KeyColumn::from(col).eq(left, right)
}

/// The view's query: the store's columns, then every column of the source
/// (the key's from the store), joined on the key. `names` are the view's
/// own names for the source's columns, in order, when an existing view is
/// replaced (its column names cannot change); None for the source's names.
pub fn view_query(source: &SourceTable, store: &str, names: Option<&[String]>) -> String {
    let cols = source
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let alias = if source.primary_key.contains(&c.name) {
                "t"
            } else {
                "s"
            };
            let col = format!("{alias}.{}", quote_ident(&c.name));
            match names.and_then(|n| n.get(i)) {
                Some(n) if n != &c.name => format!("{col} AS {}", quote_ident(n)),
                _ => col,
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let join = source
        .primary_key
        .iter()
        .filter_map(|k| source.column(k))
        .map(|c| {
            eq(
                &format!("t.{}", quote_ident(&c.name)),
                c,
                &format!("s.{}", quote_ident(&c.name)),
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "SELECT t.embedding_uuid, t.chunk_seq, t.chunk, t.embedding, {cols} FROM {store} t LEFT JOIN {} s ON {join}",
        qualified(&source.schema, &source.name)
    )
}

/// SQL that removes what is left of a vectorizer. `triggers` are the
/// vectorizer's triggers that still exist, as (qualified table, trigger
/// name); the relations are those that still exist, found by OID.
pub fn drop_sql(
    triggers: &[(String, String)],
    queues: &[Relation],
    view: Option<&Relation>,
    store: Option<&Relation>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, name) in triggers {
        out.push(format!(
            "DROP TRIGGER IF EXISTS {} ON {table}",
            quote_ident(name)
        ));
    }
    for q in queues {
        out.push(format!(
            "DROP TABLE IF EXISTS {}",
            qualified(&q.schema, &q.name)
        ));
    }
    if let Some(v) = view {
        out.push(format!(
            "DROP VIEW IF EXISTS {}",
            qualified(&v.schema, &v.name)
        ));
    }
    if let Some(s) = store {
        out.push(format!(
            "DROP TABLE IF EXISTS {}",
            qualified(&s.schema, &s.name)
        ));
    }
    out
}

mod check;
mod grants;
pub mod index;
pub mod steps;
pub mod sync;
mod trigger;
pub mod worker;

use check::check_source;
pub use grants::{revoke_kept_sql, GrantTarget, SharedGrant};
use grants::{STORE_PRIVILEGES, VIEW_PRIVILEGES};
pub use trigger::{
    forget_rows_sql, partition_trigger_ddl, queue_rows_sql, statement_trigger_ddl, trigger_ddl,
    trigger_function_call, trigger_statements, TriggerStatements,
};

#[cfg(test)]
mod tests;
