import json

from django.db import migrations

LABEL = "blog.0002_vectorizer"  # recorded in migrate.revision.label
CONFIG = {
    "source": "blog_post",
    "name": "blog_content_embedder",
    "destination": {"implementation": "table", "destination": "blog_embeddings"},
    "loading": {"implementation": "column", "column_name": "content"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "formatting": {"implementation": "python_template", "template": "$title - $chunk"},
}


class Migration(migrations.Migration):
    dependencies = [("blog", "0001_initial")]

    operations = [
        migrations.RunSQL(
            # set_config(..., true) is SET LOCAL: Django runs each migration
            # in its own transaction, so the label applies to this one only.
            sql=[
                ("SELECT set_config('migrate.revision_label', %s, true)", [LABEL]),
                ("SELECT migrate.create_vectorizer(%s::jsonb)", [json.dumps(CONFIG)]),
            ],
            reverse_sql=[
                ("SELECT set_config('migrate.revision_label', %s, true)", [LABEL]),
                ("SELECT migrate.drop_vectorizer(%s, drop_all => true)", [CONFIG["name"]]),
            ],
        ),
    ]
