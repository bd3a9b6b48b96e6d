"""Alembic operations: op.create_vectorizer, op.alter_vectorizer,
op.drop_vectorizer and op.restore_vectorizer.

Each renders one SQL call with every value as a literal, run through
`op.execute`, so the same text is executed online and printed by
`alembic upgrade --sql`. The revision label is the migration's revision id
(found from the migration script that calls the operation) unless `label=` is
given.
"""

from __future__ import annotations

import sys
from typing import Any

from alembic.operations import MigrateOperation, Operations
from sqlalchemy import text

from .. import sql
from ..configuration import CONFIG_KEYS, to_json, vectorizer_config


def current_revision() -> str | None:
    """The revision id of the migration script being run: the `revision`
    global of the nearest calling module that also defines `down_revision`
    (what every Alembic script does)."""
    frame = sys._getframe(1)
    while frame is not None:
        g = frame.f_globals
        if "down_revision" in g and isinstance(g.get("revision"), str):
            return g["revision"]
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _execute(operations: Operations, statement: str) -> None:
    # text() reads ":name" as a bind parameter; the statement has none, so
    # every colon is escaped (text() turns "\:" back into ":").
    operations.execute(text(statement.replace(":", "\\:")))


_UNSET: Any = object()


@Operations.register_operation("create_vectorizer")
class CreateVectorizerOp(MigrateOperation):
    """Create a vectorizer (`migrate.create_vectorizer`)."""

    def __init__(self, config: dict[str, Any], label: str | None = None, comment: str | None = None):
        self.config = config
        self.label = label
        self.comment = comment  # for generated migrations: what it costs

    @property
    def name(self) -> str | None:
        return self.config.get("name")

    @classmethod
    def create_vectorizer(
        cls,
        operations: Operations,
        source: str | None = None,
        *,
        name: str | None = None,
        destination: Any = None,
        loading: Any = None,
        parsing: Any = None,
        embedding: Any = None,
        chunking: Any = None,
        formatting: Any = None,
        indexing: Any = None,
        scheduling: Any = None,
        processing: Any = None,
        queue_schema: str | None = None,
        queue_table: str | None = None,
        grant_to: list[str] | str | None = None,
        enqueue_existing: bool | None = None,
        if_not_exists: bool | None = None,
        label: str | None = None,
        source_table: str | None = None,
    ) -> None:
        """Create a vectorizer. Config objects come from
        `pgai_migrate.configuration` (or are plain dicts of the JSON form)."""
        config = vectorizer_config(
            source=source or source_table,
            name=name,
            destination=destination,
            loading=loading,
            parsing=parsing,
            embedding=embedding,
            chunking=chunking,
            formatting=formatting,
            indexing=indexing,
            scheduling=scheduling,
            processing=processing,
            queue_schema=queue_schema,
            queue_table=queue_table,
            grant_to=grant_to,
            enqueue_existing=enqueue_existing,
            if_not_exists=if_not_exists,
        )
        if "source" not in config:
            raise TypeError("create_vectorizer() needs source")
        return operations.invoke(cls(config, label=label or current_revision()))

    def reverse(self) -> MigrateOperation:
        if not self.name:
            raise ValueError("a vectorizer created without a name cannot be reversed automatically")
        return DropVectorizerOp(self.name, drop_all=True)

    def to_diff_tuple(self) -> tuple:
        return ("create_vectorizer", self.name, self.config)

    def to_sql(self) -> str:
        return sql.create_vectorizer_sql(self.config, self.label)


@Operations.register_operation("drop_vectorizer")
class DropVectorizerOp(MigrateOperation):
    """Drop a vectorizer (`migrate.drop_vectorizer`)."""

    def __init__(
        self,
        name: str,
        drop_all: bool = False,
        if_exists: bool = False,
        label: str | None = None,
        comment: str | None = None,
        restore_revision: int | None = None,
    ):
        self.name = name
        self.drop_all = drop_all
        self.if_exists = if_exists
        self.label = label
        self.comment = comment
        self.restore_revision = restore_revision

    @classmethod
    def drop_vectorizer(
        cls,
        operations: Operations,
        name: str,
        drop_all: bool = False,
        *,
        if_exists: bool = False,
        label: str | None = None,
    ) -> None:
        """Drop a vectorizer; `drop_all=True` drops its store table and view too."""
        return operations.invoke(cls(name, drop_all=drop_all, if_exists=if_exists, label=label or current_revision()))

    def reverse(self) -> MigrateOperation:
        return RestoreVectorizerOp(self.name, revision_id=self.restore_revision)

    def to_diff_tuple(self) -> tuple:
        return ("drop_vectorizer", self.name)

    def to_sql(self) -> str:
        return sql.drop_vectorizer_sql(self.name, self.drop_all, self.if_exists, self.label)


@Operations.register_operation("restore_vectorizer")
class RestoreVectorizerOp(MigrateOperation):
    """Re-create a dropped vectorizer from its history (`migrate.restore_vectorizer`)."""

    def __init__(self, name: str, revision_id: int | None = None, label: str | None = None):
        self.name = name
        self.revision_id = revision_id
        self.label = label

    @classmethod
    def restore_vectorizer(
        cls,
        operations: Operations,
        name: str,
        revision_id: int | None = None,
        *,
        label: str | None = None,
    ) -> None:
        """Re-create vectorizer `name` from its last revision (or `revision_id`)."""
        return operations.invoke(cls(name, revision_id=revision_id, label=label or current_revision()))

    def reverse(self) -> MigrateOperation:
        return DropVectorizerOp(self.name, drop_all=True)

    def to_diff_tuple(self) -> tuple:
        return ("restore_vectorizer", self.name)

    def to_sql(self) -> str:
        return sql.restore_vectorizer_sql(self.name, self.revision_id, self.label)


@Operations.register_operation("alter_vectorizer")
class AlterVectorizerOp(MigrateOperation):
    """Change a vectorizer (`migrate.alter_vectorizer`): `changes` is a
    partial config merged over the current one."""

    def __init__(
        self,
        name: str,
        changes: dict[str, Any],
        reembed: bool = False,
        label: str | None = None,
        old_changes: dict[str, Any] | None = None,
        comment: str | None = None,
    ):
        self.name = name
        self.changes = changes
        self.reembed = reembed
        self.label = label
        self.old_changes = old_changes  # the reverse, when known (autogenerate)
        self.comment = comment

    @classmethod
    def alter_vectorizer(
        cls,
        operations: Operations,
        name: str,
        changes: dict[str, Any] | None = None,
        *,
        new_name: str | None = None,
        destination: Any = None,
        loading: Any = None,
        parsing: Any = None,
        embedding: Any = None,
        chunking: Any = None,
        formatting: Any = None,
        indexing: Any = None,
        scheduling: Any = None,
        processing: Any = None,
        grant_to: list[str] | str | None = None,
        reembed: bool = False,
        label: str | None = None,
    ) -> None:
        """Change vectorizer `name`. Each keyword is a config object (an
        object of another implementation replaces the current one) or a dict
        of the keys to change (`chunking={"chunk_size": 500}`). Changes that
        invalidate the stored embeddings need `reembed=True`."""
        merged = dict(changes or {})
        merged.update(
            vectorizer_config(
                name=new_name,
                destination=destination,
                loading=loading,
                parsing=parsing,
                embedding=embedding,
                chunking=chunking,
                formatting=formatting,
                indexing=indexing,
                scheduling=scheduling,
                processing=processing,
                grant_to=grant_to,
            )
        )
        if not merged:
            raise TypeError("alter_vectorizer() needs at least one change")
        return operations.invoke(cls(name, merged, reembed=reembed, label=label or current_revision()))

    def reverse(self) -> MigrateOperation:
        if self.old_changes is None:
            raise ValueError("alter_vectorizer() cannot be reversed without the old values")
        new_name = self.changes.get("name", self.name)
        return AlterVectorizerOp(
            new_name, self.old_changes, reembed=self.reembed, old_changes=self.changes, comment=self.comment
        )

    def to_diff_tuple(self) -> tuple:
        return ("alter_vectorizer", self.name, self.changes, self.reembed)

    def to_sql(self) -> str:
        return sql.alter_vectorizer_sql(self.name, self.changes, self.reembed, self.label)


class CreateExtensionOp(MigrateOperation):
    """CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE, which autogenerate
    puts before the first vectorizer of a database without the extension.
    Rendered as op.execute(); its reverse leaves the extension installed."""

    def reverse(self) -> MigrateOperation:
        return KeepExtensionOp()

    def to_diff_tuple(self) -> tuple:
        return ("create_extension", "pgai_migrate")


class KeepExtensionOp(MigrateOperation):
    def reverse(self) -> MigrateOperation:
        return CreateExtensionOp()

    def to_diff_tuple(self) -> tuple:
        return ("keep_extension", "pgai_migrate")


@Operations.implementation_for(CreateVectorizerOp)
def _create_vectorizer(operations: Operations, operation: CreateVectorizerOp) -> None:
    _execute(operations, operation.to_sql())


@Operations.implementation_for(DropVectorizerOp)
def _drop_vectorizer(operations: Operations, operation: DropVectorizerOp) -> None:
    _execute(operations, operation.to_sql())


@Operations.implementation_for(RestoreVectorizerOp)
def _restore_vectorizer(operations: Operations, operation: RestoreVectorizerOp) -> None:
    _execute(operations, operation.to_sql())


@Operations.implementation_for(AlterVectorizerOp)
def _alter_vectorizer(operations: Operations, operation: AlterVectorizerOp) -> None:
    _execute(operations, operation.to_sql())


__all__ = [
    "AlterVectorizerOp",
    "CreateExtensionOp",
    "KeepExtensionOp",
    "CreateVectorizerOp",
    "DropVectorizerOp",
    "RestoreVectorizerOp",
    "current_revision",
    "CONFIG_KEYS",
    "to_json",
]
