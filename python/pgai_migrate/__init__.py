"""Python support for the pgai_migrate PostgreSQL extension: vectorizer
configuration classes, Alembic operations and autogenerate, SQLAlchemy
helpers."""

__version__ = "0.2.0"
