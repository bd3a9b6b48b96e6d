"""Autogenerate for vectorizers.

The comparator reads the declared vectorizers (`metadata.info`, see
`pgai_migrate.vectorizer`) and asks the database what each would change,
with `migrate.plan_vectorizer(config)`:

  * `create`  -> op.create_vectorizer(...)      downgrade: op.drop_vectorizer(name, drop_all=True)
  * changes   -> op.alter_vectorizer(name, ...) downgrade: op.alter_vectorizer back to the old values
                 (with reembed=True and a comment saying how many rows are
                 queued again when the change invalidates the embeddings)
  * a vectorizer of this project in the database that is not declared
              -> op.drop_vectorizer(name, drop_all=True)  downgrade: op.restore_vectorizer(name)

Nothing is compared unless some metadata declares vectorizers (has the
`pgai_migrate_vectorizers` key), so projects that manage vectorizers by hand
get no surprise drops. Even then a drop is proposed only for a vectorizer
that is this project's:

  * its history in `migrate.revision` (followed through restores) has a row
    whose label is the revision id of one of the project's scripts (the
    operations label their rows so), or `manage_vectorizers(names=...)`
    names it; and
  * its source table is in a schema the metadata covers (its tables' and the
    declared sources' schemas; none: the current schema), or in one of
    `manage_vectorizers(schemas=...)` when given.

`manage_vectorizers(drop=False)` turns drops off. Without a script directory
(a MigrationContext configured by hand) only named vectorizers are dropped.
"""

from __future__ import annotations

import json
from typing import Any

from alembic.autogenerate import comparators, renderers
from sqlalchemy import text

from ..configuration import CONFIG_KEYS, Config, config_class
from ..vectorizer import DropRule, covered_schemas, declared_vectorizers
from .filter import extension_installed
from .operations import (
    AlterVectorizerOp,
    CreateExtensionOp,
    CreateVectorizerOp,
    DropVectorizerOp,
    KeepExtensionOp,
    RestoreVectorizerOp,
)

# op.create_vectorizer's keyword order, for readable generated migrations.
ARGUMENT_ORDER = (
    "source", "name", "destination", "loading", "parsing", "embedding", "chunking", "formatting",
    "indexing", "scheduling", "processing", "queue_schema", "queue_table", "grant_to",
    "enqueue_existing", "if_not_exists",
)
IMPORTS = "import pgai_migrate.configuration as pgai_config"


def _plan(connection, config: dict[str, Any]) -> list[dict[str, Any]]:
    rows = connection.execute(
        text("SELECT path, old_value, new_value, action, queued_rows FROM migrate.plan_vectorizer(CAST(:c AS jsonb))"),
        {"c": json.dumps(config)},
    ).mappings()
    return [dict(r) for r in rows]


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _changes(rows: list[dict[str, Any]], config: dict[str, Any], old: dict[str, Any]) -> tuple[dict, dict]:
    """(changes, old values) for alter_vectorizer from a plan. A config
    object whose implementation changes is given whole (it replaces the old
    one); otherwise only the changed leaves."""
    new_changes: dict[str, Any] = {}
    old_changes: dict[str, Any] = {}
    def whole(path: str) -> bool:
        # the implementation changed, or a path this code cannot nest (inside a list)
        parts = path.split(".")
        return len(parts) == 1 or parts[-1] == "implementation" or len(parts) > 2 or "[" in path

    replaced = {r["path"].split(".")[0] for r in rows if r["path"].split(".")[0] in CONFIG_KEYS and whole(r["path"])}
    for key in replaced:
        new_changes[key] = config.get(key)
        old_changes[key] = old.get(key)
    for r in rows:
        top = r["path"].split(".")[0]
        if top in replaced:
            continue
        _set_path(new_changes, r["path"], r["new_value"])
        _set_path(old_changes, r["path"], r["old_value"])
    return new_changes, old_changes


def _render_value(key: str, value: Any, autogen_context) -> str:
    """A config value as Python: a config class where one fits."""
    if isinstance(value, Config):
        autogen_context.imports.add(IMPORTS)
        return "pgai_config." + value.render()
    if isinstance(value, dict) and key in CONFIG_KEYS and "implementation" in value:
        cls = config_class(key, value["implementation"])
        if cls is not None:
            try:
                obj = cls.from_config(value)
            except (TypeError, ValueError):
                return repr(value)
            autogen_context.imports.add(IMPORTS)
            return "pgai_config." + obj.render()
    return repr(value)


def _project_revisions(autogen_context) -> list[str]:
    """The revision ids of the project's migration scripts (none without a
    script directory)."""
    migration_context = getattr(autogen_context, "migration_context", None)
    script = getattr(migration_context, "script", None)
    if script is None:
        return []
    return sorted({s.revision for s in script.walk_revisions()})


def _has_restored_from(connection) -> bool:
    # migrate.revision.restored_from exists since the extension's 0.3.0.
    return bool(
        connection.execute(
            text(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute "
                "WHERE attrelid = 'migrate.revision'::pg_catalog.regclass "
                "AND attname = 'restored_from' AND NOT attisdropped)"
            )
        ).scalar()
    )


def _existing(connection, labels: list[str]) -> list[tuple[str, dict[str, Any], str, bool]]:
    """(name, config, source schema, whether its history has one of
    `labels`) of every vectorizer. The history of a restored vectorizer
    includes the one it was restored from."""
    if _has_restored_from(connection):
        lineage = (
            "WITH RECURSIVE lineage(root, vectorizer_id) AS ("
            " SELECT v.id, v.id FROM migrate.vectorizer v"
            " UNION"
            " SELECT l.root, origin.vectorizer_id FROM lineage l"
            " JOIN migrate.revision r ON r.vectorizer_id = l.vectorizer_id AND r.restored_from IS NOT NULL"
            " JOIN migrate.revision origin ON origin.id = r.restored_from) "
        )
    else:
        lineage = "WITH lineage(root, vectorizer_id) AS (SELECT v.id, v.id FROM migrate.vectorizer v) "
    rows = connection.execute(
        text(
            lineage
            + "SELECT v.name, v.config, n.nspname::text, EXISTS ("
            " SELECT FROM lineage l JOIN migrate.revision r ON r.vectorizer_id = l.vectorizer_id"
            " WHERE l.root = v.id AND r.label = ANY (CAST(:labels AS text[])))"
            " FROM migrate.vectorizer v"
            " JOIN pg_catalog.pg_class c ON c.oid = v.source"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " ORDER BY v.id"
        ),
        {"labels": labels},
    )
    return [tuple(r) for r in rows]


def compare_vectorizers(autogen_context, upgrade_ops, schemas) -> None:
    metadata = autogen_context.metadata
    declared = declared_vectorizers(metadata)
    connection = autogen_context.connection
    if declared is None or connection is None:
        return
    installed = extension_installed(connection)
    default_schema = connection.execute(text("SELECT pg_catalog.current_schema()")).scalar() or "public"

    existing: dict[str, dict[str, Any]] = {}
    owned: set[str] = set()
    rule = DropRule.of(metadata)
    if installed:
        labels = _project_revisions(autogen_context) if rule.drop else []
        droppable_schemas = rule.schemas if rule.schemas is not None else covered_schemas(metadata, default_schema)
        for name, config, source_schema, labelled in _existing(connection, labels):
            existing[name] = config
            if rule.drop and (labelled or name in rule.names) and source_schema in droppable_schemas:
                owned.add(name)

    drops, later = [], []
    declared_names = set()
    for vectorizer in declared:
        config = vectorizer.config()
        name = vectorizer.resolved_name(default_schema)
        declared_names.add(name)
        if not installed or name not in existing:
            comment = None
            source_exists = connection.execute(
                text("SELECT pg_catalog.to_regclass(:s) IS NOT NULL"), {"s": config["source"]}
            ).scalar()
            if installed and source_exists:  # else the migration creates the source: nothing to queue
                plan = _plan(connection, config)
                if plan and plan[0]["action"] == "create" and config.get("enqueue_existing", True):
                    comment = f"queues the {plan[0]['queued_rows']} existing rows of {config['source']} for embedding"
            if "name" not in config:
                config = {**config, "name": name}
            later.append(CreateVectorizerOp(config, comment=comment))
            continue
        plan = [r for r in _plan(connection, config) if r["action"] != "none"]
        if not plan:
            continue
        reembed = any(r["action"] == "reembed" for r in plan)
        changes, old_changes = _changes(plan, config, existing[name])
        paths = ", ".join(sorted(r["path"] for r in plan))
        if reembed:
            queued = max(r["queued_rows"] or 0 for r in plan)
            comment = (
                f"re-embeds: changes {paths}; queues all {queued} rows of {existing[name]['source']} "
                f"again and rebuilds their embeddings (the provider is called for each)"
            )
        else:
            comment = f"in place: changes {paths}; stored embeddings stay valid"
        later.append(AlterVectorizerOp(name, changes, reembed=reembed, old_changes=old_changes, comment=comment))

    for name, config in existing.items():
        if name not in declared_names and name in owned:
            drops.append(
                DropVectorizerOp(
                    name,
                    drop_all=True,
                    comment=f"not declared any more: drops its queue, store and view ({config['source']} stays)",
                )
            )
    if later and not installed:
        later.insert(0, CreateExtensionOp())
    # Drops before table changes (a source table may be dropped after its
    # vectorizer), creates and alters after them (a source may be created).
    upgrade_ops.ops[:0] = drops
    upgrade_ops.ops.extend(later)


try:  # Alembic >= 1.18 orders comparators by priority; ours must run after the tables'.
    from alembic.util import DispatchPriority
except ImportError:  # older Alembic runs them in registration order: the tables' first
    comparators.dispatch_for("schema")(compare_vectorizers)
else:
    comparators.dispatch_for("schema", priority=DispatchPriority.LAST)(compare_vectorizers)


def _comment_lines(comment: str | None) -> list[str]:
    return [f"# {comment}"] if comment else []


@renderers.dispatch_for(CreateVectorizerOp)
def render_create_vectorizer(autogen_context, op: CreateVectorizerOp) -> list[str]:
    args = []
    order = {key: i for i, key in enumerate(ARGUMENT_ORDER)}
    for key, value in sorted(op.config.items(), key=lambda kv: order.get(kv[0], len(order))):
        args.append(f"    {key}={_render_value(key, value, autogen_context)},")
    return _comment_lines(op.comment) + ["op.create_vectorizer(", *args, ")"]


@renderers.dispatch_for(CreateExtensionOp)
def render_create_extension(autogen_context, op: CreateExtensionOp) -> list[str]:
    return [
        "# the vectorizers need the extension (CASCADE installs pgvector too)",
        "op.execute('CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE')",
    ]


@renderers.dispatch_for(KeepExtensionOp)
def render_keep_extension(autogen_context, op: KeepExtensionOp) -> list[str]:
    return ["# the extension pgai_migrate stays installed (DROP EXTENSION it by hand if you want)"]


@renderers.dispatch_for(DropVectorizerOp)
def render_drop_vectorizer(autogen_context, op: DropVectorizerOp) -> list[str]:
    return _comment_lines(op.comment) + [f"op.drop_vectorizer({op.name!r}, drop_all={op.drop_all!r})"]


@renderers.dispatch_for(RestoreVectorizerOp)
def render_restore_vectorizer(autogen_context, op: RestoreVectorizerOp) -> list[str]:
    extra = "" if op.revision_id is None else f", revision_id={op.revision_id!r}"
    return [
        "# re-creates it from its last revision in migrate.revision; its rows are queued again",
        f"op.restore_vectorizer({op.name!r}{extra})",
    ]


@renderers.dispatch_for(AlterVectorizerOp)
def render_alter_vectorizer(autogen_context, op: AlterVectorizerOp) -> list[str]:
    args = [repr(op.name)]
    other = {}
    for key, value in op.changes.items():
        if key == "name":
            args.append(f"new_name={value!r}")
        elif key in CONFIG_KEYS or key == "grant_to":
            args.append(f"{key}={_render_value(key, value, autogen_context)}")
        else:
            other[key] = value
    if other:
        args.insert(1, f"changes={other!r}")
    if op.reembed:
        args.append("reembed=True")
    return _comment_lines(op.comment) + [f"op.alter_vectorizer({', '.join(args)})"]
