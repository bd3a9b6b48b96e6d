"""Vectorizers declared next to the models, for Alembic's autogenerate.

    from pgai_migrate.vectorizer import declare_vectorizer

    declare_vectorizer(
        Base.metadata,
        source="blog",
        name="blog_content_embedder",
        loading=LoadingColumnConfig(column_name="content"),
        embedding=EmbeddingOpenaiConfig(model="text-embedding-3-small", dimensions=768),
    )

The declarations live in `metadata.info["pgai_migrate_vectorizers"]` (a list
of `Vectorizer`). Once that key exists, autogenerate treats the list as the
complete set of this project's vectorizers: a vectorizer in the database
that is not declared is proposed for dropping only when it is the
project's, that is

  * its history in `migrate.revision` (through restores too) has a row
    labelled with the revision id of one of the project's migration
    scripts (the label Alembic's operations record), and
  * its source table is in a schema the metadata covers: the schema of a
    table in the metadata or of a declared vectorizer's source (no schema:
    the connection's current schema).

Vectorizers made by hand or by another service, and any in another schema,
are left alone. `manage_vectorizers()` changes the rule (in
`metadata.info["pgai_migrate_manage"]`). `vectorizer_relationship()` in
`pgai_migrate.sqlalchemy` declares a vectorizer from a model too.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import MetaData

from .configuration import vectorizer_config

INFO_KEY = "pgai_migrate_vectorizers"
# Which undeclared vectorizers autogenerate may drop (manage_vectorizers()).
MANAGE_KEY = "pgai_migrate_manage"
# pgai's key: table names its vectorizer_relationship() maps.
PGAI_MANAGED_TABLES = "pgai_managed_tables"


class Vectorizer:
    """One declared vectorizer: the arguments of `op.create_vectorizer`."""

    def __init__(self, source: str, **kwargs: Any):
        self.source = source
        self.kwargs = kwargs

    @property
    def name(self) -> str | None:
        return self.kwargs.get("name")

    def config(self) -> dict[str, Any]:
        """The JSON config (what `migrate.create_vectorizer` takes)."""
        return vectorizer_config(source=self.source, **self.kwargs)

    def __repr__(self) -> str:
        return f"Vectorizer({self.source!r}, name={self.name!r})"

    # Derived names, mirroring the extension's defaults, so that the store
    # and view can be recognised before the vectorizer exists.

    def source_parts(self, default_schema: str | None = None) -> tuple[str | None, str]:
        schema, table = split_name(self.source)
        return schema or default_schema, table

    def relations(self, default_schema: str | None = None) -> list[tuple[str | None, str]]:
        """(schema, name) of the store table and the view this vectorizer
        makes; schema None means the source's (default) schema."""
        dest = self.config().get("destination") or {"implementation": "table"}
        if dest.get("implementation") != "table":
            return []
        schema, table = self.source_parts(default_schema)
        if dest.get("destination"):
            store, view = dest["destination"] + "_store", dest["destination"]
        else:
            store = dest.get("target_table") or f"{table}_embedding_store"
            view = dest.get("view_name") or f"{table}_embedding"
        return [
            (dest.get("target_schema") or schema, store),
            (dest.get("view_schema") or schema, view),
        ]

    def resolved_name(self, default_schema: str = "public") -> str:
        """The vectorizer's name: given, or the extension's default
        (`<target_schema>_<target_table>`, `<schema>_<table>_<column>`)."""
        if self.name:
            return self.name
        config = self.config()
        dest = config.get("destination") or {"implementation": "table"}
        schema, table = self.source_parts(default_schema)
        if dest.get("implementation") == "column":
            return f"{schema}_{table}_{dest['embedding_column']}"
        store_schema, store = self.relations(default_schema)[0]
        return f"{store_schema}_{store}"


def split_name(name: str) -> tuple[str | None, str]:
    """`schema.table` (with optional double quotes) into its parts."""
    parts: list[str] = []
    current, quoted, i = "", False, 0
    while i < len(name):
        ch = name[i]
        if quoted:
            if ch == '"' and i + 1 < len(name) and name[i + 1] == '"':
                current += '"'
                i += 1
            elif ch == '"':
                quoted = False
            else:
                current += ch
        elif ch == '"':
            quoted = True
        elif ch == ".":
            parts.append(current)
            current = ""
        else:
            current += ch.lower()
        i += 1
    parts.append(current)
    if len(parts) == 1:
        return None, parts[0]
    return parts[-2], parts[-1]


def declare_vectorizer(metadata: MetaData, source: str, **kwargs: Any) -> Vectorizer:
    """Declare a vectorizer in `metadata` (arguments as `op.create_vectorizer`)."""
    vectorizer = Vectorizer(source, **kwargs)
    declared = metadata.info.setdefault(INFO_KEY, [])
    if vectorizer.name and any(v.name == vectorizer.name for v in declared):
        raise ValueError(f"vectorizer {vectorizer.name!r} is declared twice")
    declared.append(vectorizer)
    return vectorizer


def declared_vectorizers(metadata: MetaData | Iterable[MetaData] | None) -> list[Vectorizer] | None:
    """The declared vectorizers, or None when no metadata declares any (then
    autogenerate leaves vectorizers alone)."""
    found = [m.info[INFO_KEY] for m in _metadatas(metadata) if INFO_KEY in m.info]
    if not found:
        return None
    return [v for group in found for v in group]


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    names = list(value)
    if not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"{what} must be names (strings)")
    return names


def manage_vectorizers(
    metadata: MetaData,
    *,
    drop: bool = True,
    names: Iterable[str] | str = (),
    schemas: Iterable[str] | str | None = None,
) -> dict[str, Any]:
    """Set which vectorizers that are not declared autogenerate may propose
    to drop (by default: those this project's migrations created or changed,
    on tables of the schemas the metadata covers).

    drop:    False: never propose a drop (declarations are only created and
             altered).
    names:   vectorizers to count as this project's although no migration of
             it recorded them (made by hand before the project declared its
             vectorizers); still only in the schemas below.
    schemas: the schemas whose vectorizers may be dropped, instead of those
             of the metadata's tables and declared sources.

    Stored as a dict in `metadata.info["pgai_migrate_manage"]` (written by
    hand, it has the same keys); returns it."""
    rule = {
        "drop": bool(drop),
        "names": _names(names, "names"),
        "schemas": None if schemas is None else _names(schemas, "schemas"),
    }
    metadata.info[MANAGE_KEY] = rule
    return rule


class DropRule:
    """What the metadata says about dropping undeclared vectorizers (the
    union of every metadata's manage_vectorizers())."""

    def __init__(self, drop: bool = True, names: Iterable[str] = (), schemas: Iterable[str] | None = None):
        self.drop = drop
        self.names = set(names)
        self.schemas = None if schemas is None else set(schemas)

    @classmethod
    def of(cls, metadata: MetaData | Iterable[MetaData] | None) -> "DropRule":
        drop, names, schemas = True, set(), None
        for m in _metadatas(metadata):
            rule = m.info.get(MANAGE_KEY)
            if rule is None:
                continue
            if not isinstance(rule, dict) or set(rule) - {"drop", "names", "schemas"}:
                raise ValueError(
                    f'metadata.info["{MANAGE_KEY}"] must be a dict with keys drop, names, schemas '
                    f"(see manage_vectorizers()), not {rule!r}"
                )
            drop = drop and bool(rule.get("drop", True))
            names |= set(_names(rule.get("names") or (), "names"))
            if rule.get("schemas") is not None:
                schemas = (schemas or set()) | set(_names(rule["schemas"], "schemas"))
        return cls(drop, names, schemas)


def _metadatas(metadata: MetaData | Iterable[MetaData] | None) -> list[MetaData]:
    if metadata is None:
        return []
    return [metadata] if isinstance(metadata, MetaData) else list(metadata)


def covered_schemas(metadata: MetaData | Iterable[MetaData] | None, default_schema: str) -> set[str]:
    """The schemas of the metadata's tables and of the declared vectorizers'
    sources (no schema: `default_schema`)."""
    schemas = set()
    for m in _metadatas(metadata):
        for table in m.tables.values():
            schemas.add(table.schema or default_schema)
    for vectorizer in declared_vectorizers(metadata) or []:
        schemas.add(vectorizer.source_parts(default_schema)[0])
    return schemas
