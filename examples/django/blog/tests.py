from django.db import connection
from django.test import TestCase

from .models import Post, PostEmbedding


class VectorizerInTheTestDatabase(TestCase):
    def test_the_test_database_has_the_vectorizer_and_its_view(self):
        with connection.cursor() as cur:
            cur.execute("SELECT name FROM migrate.vectorizer")
            self.assertEqual(cur.fetchall(), [("blog_content_embedder",)])
        post = Post.objects.create(title="Hello", content="First post.")
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM migrate._vectorizer_q_1")
            self.assertEqual(cur.fetchall(), [(post.id,)])
        # The unmanaged model reads the vectorizer's view (empty until a worker runs).
        self.assertEqual(list(PostEmbedding.objects.filter(post=post)), [])
