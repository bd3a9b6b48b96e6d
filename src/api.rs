//! The SQL API: `migrate.create_vectorizer(jsonb)` and
//! `migrate.drop_vectorizer(name, drop_all, if_exists)`.

use std::collections::HashMap;

use pgai_migrate_core::ident::qualified;
use pgai_migrate_core::plan::steps::{create_steps, drop_steps, FIXED_SEARCH_PATH};
use pgai_migrate_core::plan::{
    check_queue_place, revoke_kept_sql, Context, GrantTarget, Relation, SharedGrant,
    EXTENSION_SCHEMA,
};
use pgai_migrate_core::{build_plan, Config, ConfigError, ErrorKind};
use pgrx::prelude::*;
use serde_json::Value;

use crate::adopt;
use crate::catalog;
use crate::error::{not_null, raise, unknown_vectorizer, OrRaise};
use crate::security::{current_user, search_path};
use crate::spi::{jsonb_text, one};
use crate::steps::run_steps;

/// `migrate.create_vectorizer(config text)`: create a vectorizer from one
/// JSON document; returns its id. The jsonb form passes its text here:
/// reading the text ourselves lets a too-deeply nested document fail as a
/// config error.
#[pg_extern(
    volatile,
    parallel_unsafe,
    schema = "migrate",
    name = "create_vectorizer"
)]
pub fn create_vectorizer_labelled(
    config: Option<&str>,
    label: default!(Option<&str>, "NULL"),
) -> i32 {
    let Some(config) = config else {
        not_null("config")
    };
    let config = Config::parse_text(&jsonb_text(config)).or_raise();
    create(&config, label, None)
}

/// Rows of the source are queued (by create, a re-embedding alter, an
/// attached partition) with statements that, under REPEATABLE READ or
/// SERIALIZABLE, see the transaction's first snapshot: a row committed
/// after it, before the triggers took effect (or after the queue was
/// emptied), would be missed. So those isolation levels are refused.
pub fn refuse_old_snapshot(path: &str, what: &str, hint: &str) {
    let isolation: Option<String> = one(
        "SELECT pg_catalog.current_setting('transaction_isolation')",
        &[],
    );
    if matches!(
        isolation.as_deref(),
        Some("repeatable read" | "serializable")
    ) {
        raise(
            ConfigError::new(
                ErrorKind::ObjectState,
                path,
                format!(
                    "{what} in a {} transaction: rows committed after its snapshot would be missed",
                    isolation.unwrap_or_default().to_uppercase()
                ),
            )
            .with_hint(hint),
        );
    }
}

/// Creates a vectorizer from a parsed config; `restored_from` names the
/// revision a restore took it from.
pub fn create(config: &Config, label: Option<&str>, restored_from: Option<i64>) -> i32 {
    let (_, caller) = current_user();
    if config.enqueue_existing {
        refuse_old_snapshot(
            "enqueue_existing",
            "cannot queue the existing rows",
            "create the vectorizer in a READ COMMITTED transaction (the default), or pass \"enqueue_existing\": false and queue the rows yourself",
        );
    }

    // The source resolves with the caller's search_path; everything after
    // runs with a fixed one so nothing the caller planted can interfere.
    let relid = catalog::resolve_source(&config.source);
    let _fixed = search_path(FIXED_SEARCH_PATH);
    if catalog::owns_relation(relid) != Some(true) {
        raise(ConfigError::new(
            ErrorKind::InsufficientPrivilege,
            "source",
            format!(
                "must be owner of table {} to create a vectorizer on it",
                config.source
            ),
        ));
    }
    catalog::lock_source(relid, "SHARE ROW EXCLUSIVE");
    let source = catalog::source_table(relid);
    let env = catalog::environment();
    let id = catalog::next_id();
    let plan = build_plan(
        &config,
        &Context {
            source: &source,
            env: &env,
            id,
        },
    )
    .or_raise();

    let mut relations: Vec<&Relation> = vec![&plan.queue, &plan.failed_queue];
    relations.extend(plan.store.iter());
    relations.extend(plan.view.iter());
    // Two vectorizers with different names may still want the same table:
    // serialise on relation names too, so the loser gets a clean 42P07
    // instead of a catalog unique violation.
    let mut locks = vec![plan.name.clone()];
    locks.extend(
        relations
            .iter()
            .map(|r| catalog::relation_lock(&r.schema, &r.name)),
    );
    catalog::lock_names(&locks);
    if let Some(existing) = catalog::find(&plan.name) {
        return already_exists(config, &plan, existing);
    }
    check_queue_place(&plan.queue, Some(id)).or_raise();
    for (path, schema) in &plan.schemas {
        check_schema(path, schema);
    }
    // A store, view or embedding column a drop kept (drop_all => false) is
    // taken over, embeddings and all, when it still has the shape this
    // config makes and belongs to the source's owner; anything else in
    // the way is an error.
    let kept = adopt::find(&plan, relid, &source);
    for r in relations {
        let adopted = [&plan.store, &plan.view]
            .iter()
            .zip([kept.store, kept.view])
            .any(|(p, k)| k && p.as_ref() == Some(r));
        if !adopted {
            catalog::check_free(r, kept.why_not(r));
        }
    }
    if let Some(why) = &kept.column_error {
        raise(why.clone());
    }
    for (i, role) in config.grant_to.iter().enumerate() {
        let exists: bool = one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1)",
            &[role.as_str().into()],
        )
        .unwrap_or(false);
        if !exists {
            raise(ConfigError::new(
                ErrorKind::UndefinedObject,
                format!("grant_to[{i}]"),
                format!("role \"{role}\" does not exist"),
            ));
        }
    }

    // Shared grants are given only where missing (so drop takes back
    // only what this create added); USAGE on a schema is the schema
    // owner's to give, so it is given only where the caller could have.
    let source_sql = qualified(&source.schema, &source.name);
    if !plan.shared_grants.is_empty() {
        catalog::lock_grants();
    }
    let shared_grants = decide_shared_grants(id, relid, &plan.shared_grants);

    let grants: Vec<String> = shared_grants
        .iter()
        .filter(|(_, missing)| *missing)
        .map(|(g, _)| g.grant_sql(&source_sql))
        .collect();
    run_steps(
        &create_steps(&plan, &kept.destination_sql(&plan), &grants),
        relid,
    );
    let granted: Value = shared_grants.iter().map(|(g, _)| g.to_json()).collect();
    catalog::insert(id, &plan, relid, &source, &caller, granted);
    let label = catalog::take_label(label);
    catalog::record_revision(
        id,
        &plan.name,
        "create",
        &plan.config,
        None,
        &caller,
        label.as_deref(),
        restored_from,
    );
    id
}

/// `if_not_exists`: the same evaluated config is a no-op, another one an
/// error listing what differs.
fn already_exists(
    config: &Config,
    plan: &pgai_migrate_core::Plan,
    existing: catalog::Existing,
) -> i32 {
    if !config.if_not_exists {
        raise(
            ConfigError::new(
                ErrorKind::DuplicateObject,
                if config.name.is_some() { "name" } else { "" },
                format!("vectorizer \"{}\" already exists", plan.name),
            )
            .with_hint("drop it first, choose another name, or pass \"if_not_exists\": true"),
        );
    }
    let mut wanted = plan.config.clone();
    if config.queue_table.is_none() {
        // The default queue name carries the id; compare what the user said.
        wanted["queue_table"] = existing.config["queue_table"].clone();
    }
    let differing: Vec<String> = keys(&wanted, &existing.config)
        .into_iter()
        .filter(|k| wanted.get(k) != existing.config.get(k))
        .collect();
    if !differing.is_empty() {
        raise(
            ConfigError::new(
                ErrorKind::DuplicateObject,
                "if_not_exists",
                format!(
                    "vectorizer \"{}\" already exists with a different config",
                    plan.name
                ),
            )
            .with_detail(format!("Differing keys: {}.", differing.join(", ")))
            .with_hint("drop the vectorizer and create it again to change it"),
        );
    }
    notice!("vectorizer \"{}\" already exists, skipping", plan.name);
    // A no-op still ends its migration: its label must not reach the next.
    catalog::take_label(None);
    existing.id
}

fn keys(a: &Value, b: &Value) -> Vec<String> {
    let mut out: Vec<String> = a
        .as_object()
        .into_iter()
        .chain(b.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn check_schema(path: &str, schema: &str) {
    let state: Option<bool> = one(
        "SELECT (SELECT pg_catalog.has_schema_privilege(oid, 'CREATE') FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[schema.into()],
    );
    match state {
        None => raise(ConfigError::new(
            ErrorKind::UndefinedSchema,
            path,
            format!("schema \"{schema}\" does not exist"),
        )),
        // The queue may go in the extension's own schema, which the
        // extension writes; nothing else may.
        Some(false) if !(path == "queue_schema" && schema == EXTENSION_SCHEMA) => {
            raise(ConfigError::new(
                ErrorKind::InsufficientPrivilege,
                path,
                format!("permission denied to create objects in schema \"{schema}\""),
            ))
        }
        Some(_) => {}
    }
}

/// Remove a vectorizer: its triggers, queue and failed queue and catalog
/// row; with `drop_all` also its view and store table.
#[pg_extern(
    volatile,
    parallel_unsafe,
    schema = "migrate",
    name = "drop_vectorizer"
)]
pub fn drop_vectorizer_labelled(
    name: Option<&str>,
    drop_all: default!(Option<bool>, false),
    if_exists: default!(Option<bool>, false),
    label: default!(Option<&str>, "NULL"),
) {
    let name = name.unwrap_or_else(|| not_null("name"));
    let drop_all = drop_all.unwrap_or_else(|| not_null("drop_all"));
    let if_exists = if_exists.unwrap_or_else(|| not_null("if_exists"));
    let (_, caller) = current_user();
    let _fixed = search_path(FIXED_SEARCH_PATH);
    catalog::lock_names(&[name.to_string()]);
    let Some(existing) = catalog::find(name) else {
        if if_exists {
            notice!("vectorizer \"{name}\" does not exist, skipping");
            catalog::take_label(label);
            return;
        }
        unknown_vectorizer(name)
    };
    // What exists now of what create made, by OID: a name that has since
    // been given to another relation is never dropped.
    let mut schemas = HashMap::new();
    let mut by_oid = |oid: pg_sys::Oid| -> Option<Relation> {
        catalog::relation_name(oid, &mut schemas).map(|(schema, name)| Relation {
            path: String::new(),
            schema,
            name,
        })
    };
    let queue = by_oid(existing.queue);
    let failed = by_oid(existing.failed_queue);
    // Owner of the source table, or — when the source is gone — of the queue.
    let allowed =
        catalog::owns_relation(existing.source).or_else(|| catalog::owns_relation(existing.queue));
    let allowed = allowed.unwrap_or_else(|| unsafe { pg_sys::superuser() });
    if !allowed {
        raise(ConfigError::new(
            ErrorKind::InsufficientPrivilege,
            "",
            format!("must be owner of the source table of vectorizer \"{name}\" to drop it"),
        ))
    }

    let (view, store) = if drop_all {
        (
            existing.view.and_then(&mut by_oid),
            existing.store.and_then(&mut by_oid),
        )
    } else {
        (None, None)
    };
    let source = by_oid(existing.source).map(|s| qualified(&s.schema, &s.name));
    let triggers = catalog::triggers(existing.id);
    let queues: Vec<Relation> = queue.into_iter().chain(failed).collect();
    // One lock order for everything on one source (catalog::lock_source):
    // the source first, in the mode DROP TRIGGER takes.
    if source.is_some() {
        catalog::lock_source(existing.source, "ACCESS EXCLUSIVE");
    }
    // Take back what create granted: on a kept store and view, and each
    // shared grant no other vectorizer still records. A role dropped
    // since (after DROP OWNED) has nothing left to revoke.
    let mut revokes = Vec::new();
    if !drop_all {
        let roles: Vec<String> = existing.config["grant_to"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .filter(|r| live_role(r))
            .map(String::from)
            .collect();
        let kept_view = existing.view.and_then(&mut by_oid);
        let kept_store = existing.store.and_then(&mut by_oid);
        revokes.extend(revoke_kept_sql(
            kept_store.as_ref(),
            kept_view.as_ref(),
            &roles,
        ));
    }
    let recorded = existing.row["grants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !recorded.is_empty() {
        catalog::lock_grants();
    }
    revokes.extend(revoke_recorded(
        existing.id,
        existing.source,
        source.as_deref(),
        &recorded,
    ));
    let steps = drop_steps(&revokes, &triggers, &queues, view.as_ref(), store.as_ref());
    run_steps(&steps.revoke, existing.source);
    // The catalog row goes first, so the sql_drop event trigger sees
    // these objects as no one's.
    catalog::delete(existing.id);
    run_steps(&steps.remove, existing.source);
    let label = catalog::take_label(label);
    catalog::record_revision(
        existing.id,
        name,
        "drop",
        &existing.config,
        Some(drop_all),
        &caller,
        label.as_deref(),
        None,
    );
}

/// Which of `grants` (shared privileges `grant_to` roles need) to record
/// for vectorizer `id`, and whether each must be given now (the role lacks
/// it). One another vectorizer recorded is recorded too, so the privilege
/// stays until the last vectorizer needing it goes. USAGE on a schema is
/// the schema owner's to give, so it is given only where the caller could
/// have.
pub fn decide_shared_grants(
    id: i32,
    relid: pg_sys::Oid,
    grants: &[SharedGrant],
) -> Vec<(SharedGrant, bool)> {
    let mut grantable: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::new();
    for g in grants {
        let missing = match &g.target {
            GrantTarget::Source => one::<bool>(
                "SELECT NOT pg_catalog.has_table_privilege(r.oid, $2, 'SELECT') FROM pg_catalog.pg_roles r WHERE r.rolname = $1",
                &[g.role.as_str().into(), relid.into()],
            ),
            GrantTarget::EmbeddingColumn(column) => one::<bool>(
                // No row while the column does not exist yet: nobody holds it.
                "SELECT NOT pg_catalog.has_column_privilege(r.oid, $2, a.attnum, 'UPDATE') FROM pg_catalog.pg_roles r, pg_catalog.pg_attribute a
                 WHERE r.rolname = $1 AND a.attrelid = $2 AND a.attname = $3 AND NOT a.attisdropped",
                &[g.role.as_str().into(), relid.into(), column.as_str().into()],
            )
            .or(Some(true)),
            GrantTarget::Schema(schema) => {
                // Superusers and the extension owner hold every grant option
                // on migrate; other callers only what they were given.
                let ok = *grantable.entry(schema.clone()).or_insert_with(|| {
                    one::<bool>(
                        "SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION') FROM pg_catalog.pg_namespace n WHERE n.nspname = $1",
                        &[schema.as_str().into()],
                    ) == Some(true)
                });
                let lacks = one::<bool>(
                    "SELECT NOT pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE') FROM pg_catalog.pg_roles r, pg_catalog.pg_namespace n WHERE r.rolname = $1 AND n.nspname = $2",
                    &[g.role.as_str().into(), schema.as_str().into()],
                );
                if ok {
                    lacks
                } else if schema == EXTENSION_SCHEMA && lacks == Some(true) {
                    // USAGE on migrate is what lets a role create
                    // vectorizers: grant_vectorizer_usage's to give, not a
                    // side effect of grant_to.
                    raise(
                        ConfigError::new(
                            ErrorKind::InsufficientPrivilege,
                            "grant_to",
                            format!(
                                "permission denied to grant USAGE on schema \"{EXTENSION_SCHEMA}\" to role \"{}\"",
                                g.role
                            ),
                        )
                        .with_detail(format!(
                            "A grant_to role needs USAGE on schema {EXTENSION_SCHEMA} for the queue; only a role holding USAGE WITH GRANT OPTION on it may give that."
                        ))
                        .with_hint(format!(
                            "Have a superuser or the extension's owner run SELECT migrate.grant_vectorizer_usage('{}') first.",
                            g.role.replace('\'', "''")
                        )),
                    )
                } else {
                    if lacks == Some(true) {
                        notice!("grant_to: not granting USAGE on schema \"{schema}\"; its owner must grant it");
                    }
                    Some(false)
                }
            }
        };
        if missing == Some(true) || catalog::grant_still_needed(id, relid, &g.to_json()) {
            out.push((g.clone(), missing == Some(true)));
        }
    }
    out
}

/// REVOKEs for shared grants vectorizer `id` recorded and no longer needs,
/// except those another vectorizer still records (the caller holds
/// [`catalog::lock_grants`]) and those of roles dropped since.
pub fn revoke_recorded(
    id: i32,
    source_relid: pg_sys::Oid,
    source_sql: Option<&str>,
    recorded: &[Value],
) -> Vec<String> {
    let mut revokes = Vec::new();
    for g in recorded {
        let Some(grant) = SharedGrant::from_json(g) else {
            continue;
        };
        if !live_role(&grant.role) || catalog::grant_still_needed(id, source_relid, g) {
            continue;
        }
        match &grant.target {
            GrantTarget::Source => {
                if let Some(src) = source_sql {
                    revokes.push(grant.revoke_sql(src));
                }
            }
            GrantTarget::EmbeddingColumn(column) => {
                let present = one::<bool>(
                    "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped)",
                    &[source_relid.into(), column.as_str().into()],
                ) == Some(true);
                if let (Some(src), true) = (source_sql, present) {
                    revokes.push(grant.revoke_sql(src));
                }
            }
            GrantTarget::Schema(schema) => {
                if catalog::schema_exists(schema) {
                    revokes.push(grant.revoke_sql(""));
                }
            }
        }
    }
    revokes
}

pub fn live_role(role: &str) -> bool {
    one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1)",
        &[role.into()],
    ) == Some(true)
}
