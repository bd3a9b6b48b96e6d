"""blog table and its vectorizer

Revision ID: 0001
Revises:
Create Date: 2025-06-01 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blog",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("title", sa.Text()),
        sa.Column("content", sa.Text()),
    )
    # Label the history rows this migration writes (migrate.revision.label).
    # SET LOCAL ends with the transaction; env.py gives each migration its own.
    op.execute(f"SET LOCAL migrate.revision_label = '{revision}'")
    # op.execute() reads ":word" as a bind parameter: keep a space after
    # every JSON colon (or write "\:").
    op.execute(
        """
        SELECT migrate.create_vectorizer('{
            "source": "blog",
            "name": "blog_content_embedder",
            "destination": {"implementation": "table", "destination": "blog_embeddings"},
            "loading": {"implementation": "column", "column_name": "content"},
            "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
            "chunking": {"implementation": "character_text_splitter", "chunk_size": 800,
                         "chunk_overlap": 400, "separator": ".", "is_separator_regex": false},
            "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
        }'::jsonb)
        """
    )


def downgrade() -> None:
    op.execute(f"SET LOCAL migrate.revision_label = '{revision}'")
    op.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
    op.drop_table("blog")
