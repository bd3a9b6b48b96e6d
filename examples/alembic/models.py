"""The application's models. Only `blog` is ours to migrate; the vectorizer's
relations are created by migrate.create_vectorizer() in a migration."""

import uuid

from sqlalchemy import Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Blog(Base):
    __tablename__ = "blog"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)


class BlogEmbedding(Base):
    """Read-only mapping of the vectorizer's view (store joined with blog), for
    queries. It is in the metadata but must never be migrated: env.py's
    include_object leaves it out because migrate.managed_tables() lists it.
    (The embedding column is left out here; map it with pgvector's
    SQLAlchemy type if you need it.)"""

    __tablename__ = "blog_embeddings"
    # Before the first upgrade the view does not exist, so managed_tables()
    # cannot name it yet: this flag keeps autogenerate from creating it.
    __table_args__ = {"info": {"pgai_migrate_managed": True}}

    embedding_uuid: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int]
    chunk_seq: Mapped[int]
    chunk: Mapped[str] = mapped_column(Text)
