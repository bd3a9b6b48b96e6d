"""Alembic environment for the pgai_migrate blog example.

A vectorizer's store table, view, queue and failed queue are made by
migrate.create_vectorizer() inside a migration, not by models. Autogenerate
must not propose to drop them (or to create the view a model maps), so
include_name / include_object leave out

  * every relation migrate.managed_tables() lists (schema and name), and
  * the extension's own schema, migrate (its catalog tables and queues).

The database URL comes from PGAI_MIGRATE_DATABASE_URL, e.g.
postgresql+psycopg://postgres@/mydb?host=/tmp/pgai_migrate&port=54329
"""

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

from models import Base

EXTENSION_SCHEMA = "migrate"

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = os.environ.get("PGAI_MIGRATE_DATABASE_URL")
if not url:
    raise SystemExit("set PGAI_MIGRATE_DATABASE_URL, e.g. postgresql+psycopg://user@host:5432/dbname")

# Only for demonstrating that the filter matters: PGAI_MIGRATE_ALEMBIC_FILTER=off
# turns it off (the project's tests do, and then expect autogenerate to
# propose dropping the vectorizer's tables).
FILTER = os.environ.get("PGAI_MIGRATE_ALEMBIC_FILTER", "on") != "off"

# (schema, relation) pairs from migrate.managed_tables(), read once per run.
managed: set[tuple[str, str]] = set()
default_schema = "public"


def read_managed(connection):
    """Read the managed relations on Alembic's connection, then end that
    implicit transaction so Alembic starts its own."""
    global default_schema
    default_schema = connection.execute(text("SELECT current_schema()")).scalar() or "public"
    # No error (and so no aborted transaction) before the extension exists.
    installed = connection.execute(
        text("SELECT to_regprocedure('migrate.managed_tables()') IS NOT NULL")
    ).scalar()
    if installed:
        rows = connection.execute(text("SELECT schema_name, table_name FROM migrate.managed_tables()"))
        managed.update((schema, name) for schema, name in rows)
    connection.commit()


def include_name(name, type_, parent_names):
    """Called with names from the database before they are reflected."""
    if not FILTER:
        return True
    if type_ == "schema":
        return name != EXTENSION_SCHEMA  # the default schema comes as None
    if type_ == "table":  # tables and views alike
        schema = parent_names.get("schema_name") or default_schema
        return schema != EXTENSION_SCHEMA and (schema, name) not in managed
    return True


def include_object(obj, name, type_, reflected, compare_to):
    """Called for model and database objects alike: a model may map the
    vectorizer's view or store to read it, but must not migrate it."""
    if not FILTER:
        return True
    if type_ == "table":
        if obj.info.get("pgai_migrate_managed"):  # a model of a vectorizer's view or store
            return False
        schema = obj.schema or default_schema
        return schema != EXTENSION_SCHEMA and (schema, name) not in managed
    return True


options = dict(
    target_metadata=Base.metadata,
    include_schemas=True,
    include_name=include_name,
    include_object=include_object,
    # One transaction per migration, so a migration's
    # SET LOCAL migrate.revision_label applies to that migration only.
    transaction_per_migration=True,
)


def run_migrations_offline():
    """alembic ... --sql: emit the SQL instead of running it."""
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        read_managed(connection)
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
