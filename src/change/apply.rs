//! Applying a prepared change: the checks and grant decisions that need
//! the database, then the alter's steps
//! (`pgai_migrate_core::plan::steps::alter_steps`) through the executor.

use pgai_migrate_core::change;
use pgai_migrate_core::ident::qualified;
use pgai_migrate_core::plan::steps::{alter_steps, reembed_probe, Alter};
use pgai_migrate_core::plan::{Relation, SharedGrant};
use pgai_migrate_core::{ConfigError, ErrorKind};
use pgrx::prelude::*;
use serde_json::Value;

use super::Prepared;
use crate::api::{check_schema, decide_shared_grants, live_role, revoke_recorded};
use crate::catalog::{self, Existing};
use crate::error::raise;
use crate::spi::one;
use crate::steps::run_steps;

fn rel(pair: Option<(String, String)>) -> Option<Relation> {
    pair.map(|(schema, name)| Relation {
        path: String::new(),
        schema,
        name,
    })
}

fn roles(config: &Value) -> Vec<String> {
    config["grant_to"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect()
}

pub(super) fn apply(existing: &Existing, p: &Prepared, reembed: bool) {
    let plan = &p.plan;
    let id = existing.id;
    let mut schemas = std::collections::HashMap::new();
    let mut by_oid = |oid: pg_sys::Oid| rel(catalog::relation_name(oid, &mut schemas));
    let queue = by_oid(existing.queue).expect("queue");
    let failed = by_oid(existing.failed_queue).expect("failed queue");
    let store = existing.store.and_then(&mut by_oid);
    let view = existing.view.and_then(&mut by_oid);
    let src = qualified(&p.source.schema, &p.source.name);
    let old_dims = existing.config["embedding"]["dimensions"].as_i64();
    let new_dims = plan.config["embedding"]["dimensions"].as_i64();
    let kind_changed = existing.config["destination"]["implementation"]
        != plan.config["destination"]["implementation"];
    // The destination is made again when embeddings cannot be kept in it:
    // another kind, or another vector size.
    let rebuild = kind_changed || old_dims != new_dims;
    let clears = change::clears_embeddings(&p.changes);
    let old_column = existing.row["embedding_column"].as_str().map(String::from);

    let old_roles = roles(&existing.config);
    let new_roles = roles(&plan.config);
    let gone: Vec<String> = old_roles
        .iter()
        .filter(|r| !new_roles.contains(r) && live_role(r))
        .cloned()
        .collect();
    let added: Vec<String> = new_roles
        .iter()
        .filter(|r| !old_roles.contains(r))
        .cloned()
        .collect();
    let mut alter = Alter {
        id,
        plan,
        source: &p.source,
        vector_schema: &p.env.vector_schema,
        queue: &queue,
        failed_queue: &failed,
        store: store.as_ref(),
        view: view.as_ref(),
        embedding_column: old_column.as_deref(),
        rebuild,
        clears,
        reembed,
        gone: &gone,
        added: &added,
        revokes: &[],
        grants: &[],
    };

    for (path, schema) in &plan.schemas {
        check_schema(path, schema);
    }
    run_steps(&reembed_probe(&alter), existing.source);
    // New names must be free (a relation keeping its name is not in the way).
    let moved = |from: &Option<Relation>, to: &Option<Relation>| match (from, to) {
        (Some(f), Some(t)) => f.schema != t.schema || f.name != t.name,
        (None, Some(_)) => true,
        _ => false,
    };
    let q_moved = moved(&Some(queue.clone()), &Some(plan.queue.clone()));
    let fq_moved = moved(&Some(failed.clone()), &Some(plan.failed_queue.clone()));
    if q_moved {
        catalog::check_free(&plan.queue, None);
    }
    if fq_moved {
        catalog::check_free(&plan.failed_queue, None);
    }
    if !kind_changed && moved(&store, &plan.store) {
        catalog::check_free(plan.store.as_ref().expect("store"), None);
    }
    if !kind_changed && moved(&view, &plan.view) {
        catalog::check_free(plan.view.as_ref().expect("view"), None);
    }
    if kind_changed {
        for r in plan.store.iter().chain(plan.view.iter()) {
            catalog::check_free(r, None);
        }
    }
    if let (Some(new), true) = (&plan.embedding_column, kind_changed) {
        let taken = one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped)",
            &[existing.source.into(), new.as_str().into()],
        ) == Some(true);
        if taken {
            raise(ConfigError::new(
                ErrorKind::DuplicateColumn,
                "destination.embedding_column",
                format!(
                    "column \"{new}\" of relation \"{}\" already exists",
                    p.source.name
                ),
            ));
        }
    }

    let recorded: Vec<Value> = existing.row["grants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wanted: Vec<Value> = plan
        .shared_grants
        .iter()
        .map(SharedGrant::to_json)
        .collect();
    let recorded_kept: Vec<Value> = recorded
        .iter()
        .filter(|g| wanted.contains(g))
        .cloned()
        .collect();
    let to_give: Vec<SharedGrant> = plan
        .shared_grants
        .iter()
        .filter(|g| !recorded.contains(&g.to_json()))
        .cloned()
        .collect();
    let to_take: Vec<Value> = recorded
        .iter()
        .filter(|g| !wanted.contains(g))
        .cloned()
        .collect();
    if !to_give.is_empty() || !to_take.is_empty() {
        catalog::lock_grants();
    }
    // Decided as the caller: USAGE on a schema is given only where the
    // caller could give it.
    let given = decide_shared_grants(id, existing.source, &to_give);
    let grants: Vec<String> = given
        .iter()
        .filter(|(_, missing)| *missing)
        .map(|(g, _)| g.grant_sql(&src))
        .collect();
    let mut recorded_now = recorded_kept;
    recorded_now.extend(given.iter().map(|(g, _)| g.to_json()));
    let revokes = revoke_recorded(id, existing.source, Some(&src), &to_take);
    alter.revokes = &revokes;
    alter.grants = &grants;

    // Written now, so the DDL event triggers the steps fire compare the
    // database with the new config and the new UPDATE OF list.
    catalog::update_config(id, plan);
    if rebuild {
        catalog::forget_destination(id);
    }
    run_steps(&alter_steps(&alter), existing.source);
    catalog::update(id, plan, Some(Value::Array(recorded_now)));
}
