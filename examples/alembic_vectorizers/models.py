"""The blog and its vectorizer, declared together. `alembic revision
--autogenerate` turns a new, changed or removed vectorizer into
op.create_vectorizer / op.alter_vectorizer / op.drop_vectorizer."""

import uuid

from sqlalchemy import Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgai_migrate.configuration import (
    ChunkingCharacterTextSplitterConfig,
    DestinationTableConfig,
    EmbeddingOpenaiConfig,
    FormattingPythonTemplateConfig,
    LoadingColumnConfig,
)
from pgai_migrate.sqlalchemy import vectorizer_relationship


class Base(DeclarativeBase):
    pass


class Blog(Base):
    __tablename__ = "blog"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)

    # Declares the vectorizer (for autogenerate) and maps its store table:
    # Blog.content_embeddings is the store's model, blog.content_embeddings
    # a post's chunks.
    content_embeddings = vectorizer_relationship(
        name="blog_content_embedder",
        destination=DestinationTableConfig(destination="blog_embeddings"),
        loading=LoadingColumnConfig(column_name="content"),
        embedding=EmbeddingOpenaiConfig(model="text-embedding-3-small", dimensions=768),
        chunking=ChunkingCharacterTextSplitterConfig(
            chunk_size=800, chunk_overlap=400, separator=".", is_separator_regex=False
        ),
        formatting=FormattingPythonTemplateConfig(template="$title - $chunk"),
    )


class BlogEmbedding(Base):
    """The vectorizer's view (store joined with blog), mapped for queries.
    include_object knows the declared vectorizer makes it, so autogenerate
    never creates it as a table."""

    __tablename__ = "blog_embeddings"

    embedding_uuid: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int]
    chunk_seq: Mapped[int]
    chunk: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
