"""include_object / include_name hooks that keep a vectorizer's relations
(store, view, queue, failed queue) and the extension's schema `migrate` out
of autogenerate.

    from pgai_migrate.alembic import include_name, include_object

    context.configure(connection=connection, target_metadata=Base.metadata,
                      include_name=include_name, include_object=include_object)

What is excluded:
  * every relation `migrate.managed_tables()` lists, read once per migration
    context on Alembic's own connection (nothing is read when the extension
    is not installed yet: the schema and function are looked up first);
  * the schema `migrate`;
  * relations the declared vectorizers will create (so a model mapped onto a
    vectorizer's view is not created as a table before the vectorizer
    exists), tables `vectorizer_relationship()` maps, names in
    `metadata.info["pgai_managed_tables"]` (pgai's key) and tables whose
    `info` has `pgai_migrate_managed: True`.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import text

from ..vectorizer import PGAI_MANAGED_TABLES, declared_vectorizers

EXTENSION_SCHEMA = "migrate"
MANAGED_INFO = "pgai_migrate_managed"

_cache: "weakref.WeakKeyDictionary[Any, _Managed]" = weakref.WeakKeyDictionary()


class _Managed:
    def __init__(self, default_schema: str, relations: set[tuple[str, str]], installed: bool):
        self.default_schema = default_schema
        self.relations = relations
        self.installed = installed


def extension_installed(connection) -> bool:
    """migrate.managed_tables() exists (no error, so no aborted transaction,
    when it does not)."""
    return bool(
        connection.execute(
            text(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'migrate') "
                "AND pg_catalog.to_regprocedure('migrate.managed_tables()') IS NOT NULL"
            )
        ).scalar()
    )


def read_managed(connection) -> tuple[str, set[tuple[str, str]], bool]:
    """(current schema, {(schema, relation)} of managed relations, installed)."""
    default_schema = connection.execute(text("SELECT pg_catalog.current_schema()")).scalar() or "public"
    installed = extension_installed(connection)
    relations: set[tuple[str, str]] = set()
    if installed:
        rows = connection.execute(
            text("SELECT schema_name::text, table_name::text FROM migrate.managed_tables()")
        )
        relations = {(schema, name) for schema, name in rows}
    return default_schema, relations, installed


def _context():
    try:
        from alembic import context

        return context.get_context()
    except Exception:  # outside env.py: no migration context
        return None


def _managed() -> _Managed:
    ctx = _context()
    key = ctx if ctx is not None else _managed
    found = _cache.get(key) if ctx is not None else None
    if found is not None:
        return found
    connection = getattr(ctx, "connection", None) if ctx is not None else None
    if connection is None:  # offline mode: only the declarations count
        found = _Managed("public", set(), False)
    else:
        found = _Managed(*read_managed(connection))
    if ctx is not None:
        _cache[ctx] = found
    return found


def _declared_relations(default_schema: str) -> set[tuple[str, str]]:
    ctx = _context()
    metadata = ctx.opts.get("target_metadata") if ctx is not None else None
    out: set[tuple[str, str]] = set()
    for vectorizer in declared_vectorizers(metadata) or []:
        for schema, name in vectorizer.relations(default_schema):
            out.add((schema or default_schema, name))
    metadatas = [] if metadata is None else (metadata if isinstance(metadata, (list, tuple)) else [metadata])
    for m in metadatas:
        for name in m.info.get(PGAI_MANAGED_TABLES, ()):  # pgai's key: bare names
            if name:
                schema, _, table = name.rpartition(".")
                out.add((schema or default_schema, table))
    return out


def is_managed(schema: str | None, name: str) -> bool:
    """True for the relation `schema.name` (schema None: the default one)
    when a vectorizer owns it or will own it, or it is in schema migrate."""
    managed = _managed()
    schema = schema or managed.default_schema
    if schema == EXTENSION_SCHEMA:
        return True
    if (schema, name) in managed.relations:
        return True
    return (schema, name) in _declared_relations(managed.default_schema)


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic's include_name hook: leaves out schema migrate and managed
    relations before they are reflected."""
    if type_ == "schema":
        return name != EXTENSION_SCHEMA
    if type_ == "table" and name is not None:
        return not is_managed(parent_names.get("schema_name"), name)
    return True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's include_object hook: leaves out managed relations, in the
    database and in the models (a model may map a vectorizer's view or store
    to read it, never to migrate it)."""
    if type_ == "table" and name is not None:
        info = getattr(obj, "info", None) or {}
        if info.get(MANAGED_INFO):
            return False
        return not is_managed(getattr(obj, "schema", None), name)
    return True


def forget() -> None:
    """Drop what was read (the next call reads managed_tables() again)."""
    _cache.clear()
