import uuid

from django.db import models


class Post(models.Model):
    title = models.TextField()
    content = models.TextField()

    class Meta:
        db_table = "blog_post"


class PostEmbedding(models.Model):
    """The vectorizer's view (store joined with blog_post), read-only. The
    vectorizer creates it, so Django must not: managed = False."""

    embedding_uuid = models.UUIDField(primary_key=True, default=uuid.uuid4)
    post = models.ForeignKey(Post, on_delete=models.DO_NOTHING, db_column="id", related_name="embeddings")
    chunk_seq = models.IntegerField()
    chunk = models.TextField()

    class Meta:
        managed = False
        db_table = "blog_embeddings"
