"""Alembic support for pgai_migrate.

    from pgai_migrate.alembic import register_operations, include_name, include_object

    register_operations()   # op.create_vectorizer / alter_vectorizer / drop_vectorizer / restore_vectorizer
    context.configure(..., include_name=include_name, include_object=include_object)

Importing this package also registers the autogenerate comparator and the
renderers for vectorizers declared with the models (pgai_migrate.vectorizer).
"""

from .autogenerate import compare_vectorizers
from .filter import EXTENSION_SCHEMA, include_name, include_object, is_managed
from .operations import (
    AlterVectorizerOp,
    CreateVectorizerOp,
    DropVectorizerOp,
    RestoreVectorizerOp,
    current_revision,
)


def register_operations() -> None:
    """Make op.create_vectorizer, op.alter_vectorizer, op.drop_vectorizer and
    op.restore_vectorizer available (and the autogenerate comparator). The
    operations are registered when this package is imported; calling this
    (as pgai's documentation says to) is harmless and keeps env.py explicit."""


__all__ = [
    "AlterVectorizerOp",
    "CreateVectorizerOp",
    "DropVectorizerOp",
    "EXTENSION_SCHEMA",
    "RestoreVectorizerOp",
    "compare_vectorizers",
    "current_revision",
    "include_name",
    "include_object",
    "is_managed",
    "register_operations",
]
