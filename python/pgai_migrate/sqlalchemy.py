"""SQLAlchemy helpers: read a vectorizer's embeddings from a model, and
declare the vectorizer on the model.

    class Blog(Base):
        __tablename__ = "blog"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        content: Mapped[str]

        content_embeddings = vectorizer_relationship(
            name="blog_content_embedder",
            destination=DestinationTableConfig(destination="blog_embeddings"),
            loading=LoadingColumnConfig(column_name="content"),
            embedding=EmbeddingOpenaiConfig(model="text-embedding-3-small", dimensions=768),
        )

    Blog.content_embeddings          # the mapped store table (a model class)
    blog.content_embeddings          # that row's chunks, ordered by chunk_seq
    select(Blog.content_embeddings.chunk).where(...)

As pgai's `vectorizer_relationship(dimensions=768)`, it maps the store table
`<destination>_store` / `<table>_embedding_store` (or `target_table`) read-only.
Given `loading` and `embedding` it also declares the vectorizer (source: the
model's table) for autogenerate. The store table is kept out of autogenerate
by `pgai_migrate.alembic.include_object` (its Table has
`info["pgai_migrate_managed"]`, and its name is in
`metadata.info["pgai_managed_tables"]`, pgai's key).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Text, and_, inspect
from sqlalchemy.orm import foreign, mapped_column, relationship, remote
from sqlalchemy.types import UserDefinedType
from sqlalchemy.dialects.postgresql import UUID

from .vectorizer import PGAI_MANAGED_TABLES, Vectorizer, declare_vectorizer, manage_vectorizers

try:  # pgvector's type if it is installed, else a minimal one
    from pgvector.sqlalchemy import Vector  # type: ignore
except ImportError:

    class Vector(UserDefinedType):  # type: ignore[no-redef]
        """pgvector's `vector(n)`: Python lists of floats."""

        cache_ok = True

        def __init__(self, dim: int | None = None):
            self.dim = dim

        def get_col_spec(self, **kw: Any) -> str:
            return "vector" if self.dim is None else f"vector({self.dim})"

        def bind_processor(self, dialect):
            def process(value):
                if value is None or isinstance(value, str):
                    return value
                return "[" + ",".join(repr(float(v)) for v in value) + "]"

            return process

        def result_processor(self, dialect, coltype):
            def process(value):
                if value is None or not isinstance(value, str):
                    return value
                body = value.strip()[1:-1]
                return [float(v) for v in body.split(",")] if body else []

            return process


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in "".join(c if c.isalnum() else " " for c in name).split())


class _VectorizerRelationship:
    def __init__(
        self,
        dimensions: int | None = None,
        target_schema: str | None = None,
        target_table: str | None = None,
        *,
        source: str | None = None,
        name: str | None = None,
        loading: Any = None,
        embedding: Any = None,
        relationship_args: dict[str, Any] | None = None,
        **vectorizer_args: Any,
    ):
        self.dimensions = dimensions
        self.target_schema = target_schema
        self.target_table = target_table
        self.source = source
        self.vectorizer_name = name
        self.loading = loading
        self.embedding = embedding
        self.vectorizer_args = vectorizer_args
        self.relationship_args = relationship_args or {}
        self.owner: Any = None
        self.attribute: str | None = None
        self.vectorizer: Vectorizer | None = None
        self._model: Any = None

    # -- declaration, when the model class is built

    def __set_name__(self, owner: Any, attribute: str) -> None:
        self.owner = owner
        self.attribute = attribute
        metadata = owner.metadata
        table_args = owner.__dict__.get("__table_args__")
        schema = table_args.get("schema") if isinstance(table_args, dict) else None
        table = owner.__dict__.get("__tablename__")
        if table is None:
            raise TypeError("vectorizer_relationship() needs a model with __tablename__")
        source = self.source or (f"{schema}.{table}" if schema else table)
        if self.loading is not None or self.embedding is not None:
            if self.loading is None or self.embedding is None:
                raise TypeError("vectorizer_relationship() declares a vectorizer only with both loading and embedding")
            self.vectorizer = declare_vectorizer(
                metadata,
                source,
                name=self.vectorizer_name,
                loading=self.loading,
                embedding=self.embedding,
                **self.vectorizer_args,
            )
            store_schema, store = self.vectorizer.relations(schema)[0]
            self.target_table = self.target_table or store
            self.target_schema = self.target_schema or store_schema
            if self.dimensions is None:
                embedding = self.vectorizer.config()["embedding"]
                self.dimensions = embedding.get("dimensions")
        self.target_table = self.target_table or f"{table}_embedding_store"
        self.target_schema = self.target_schema or schema
        qualified = f"{self.target_schema}.{self.target_table}" if self.target_schema else self.target_table
        metadata.info.setdefault(PGAI_MANAGED_TABLES, set()).add(qualified)

    # -- the store model, built on first use (the owner must be mapped by then)

    def _build(self) -> Any:
        owner = self.owner
        mapper = inspect(owner)
        pk = list(mapper.primary_key)
        base = next(b for b in owner.__mro__[1:] if hasattr(b, "registry") and hasattr(b, "metadata"))
        table_args: dict[str, Any] = {"info": {"pgai_migrate_managed": True}}
        if self.target_schema:
            table_args["schema"] = self.target_schema
        attrs: dict[str, Any] = {
            "__tablename__": self.target_table,
            "__table_args__": table_args,
            "embedding_uuid": mapped_column(UUID(as_uuid=True), primary_key=True),
            "chunk_seq": mapped_column(Integer, nullable=False),
            "chunk": mapped_column(Text, nullable=False),
            "embedding": mapped_column(Vector(self.dimensions)),
        }
        for col in pk:
            attrs[col.key] = mapped_column(col.name, col.type, nullable=False)
        model = type(f"{_pascal(owner.__name__)}{_pascal(self.attribute or '')}", (base,), attrs)
        join = and_(*[getattr(owner, c.key) == foreign(remote(getattr(model, c.key))) for c in pk])
        args = {"viewonly": True, "order_by": model.chunk_seq, "lazy": "select", **self.relationship_args}
        mapper.add_property(f"_{self.attribute}_relationship", relationship(model, primaryjoin=join, **args))
        return model

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if self._model is None:
            self._model = self._build()
        if obj is None:
            return self._model
        return getattr(obj, f"_{self.attribute}_relationship")


def vectorizer_relationship(
    dimensions: int | None = None,
    target_schema: str | None = None,
    target_table: str | None = None,
    **kwargs: Any,
) -> Any:
    """Read access to a vectorizer's embeddings from a model (class access:
    the store's model; instance access: that row's chunks). With `loading=`
    and `embedding=` (and any other `op.create_vectorizer` argument) it also
    declares the vectorizer for autogenerate."""
    return _VectorizerRelationship(dimensions, target_schema, target_table, **kwargs)


__all__ = ["Vector", "declare_vectorizer", "manage_vectorizers", "vectorizer_relationship"]
